"""The coordinator's own audit trail: checkpointed when each round closes and at shutdown,
signed by the coordinator's key; refusals survive the rollback of what they refused;
anonymous failures cannot grow the log without bound."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from tests.server.conftest import Live
from tests.server.test_store import Clock, running_study, update_body
from tutela.governance.audit import AuditLog, VerifierKey
from tutela.server import pki
from tutela.server.api import FailureLimiter
from tutela.server.app import create_app
from tutela.server.authz import Role
from tutela.server.coordinator import Coordinator
from tutela.server.sealing import open_sealer
from tutela.server.serve import (
    AUDIT_LOG,
    MerkleAuditHook,
    coordinator_signing_key,
    coordinator_verifier_key,
)
from tutela.server.store import Store, sqlite_url


def _never_signs(_csr: bytes, _site: str) -> bytes:
    raise AssertionError("no enrolment here has a valid token")


def _coordinator(data_dir: Path, clock: Clock) -> Coordinator:
    store = Store(sqlite_url(data_dir / "coordinator.db"), open_sealer(data_dir / "keyring"))
    hook = MerkleAuditHook(data_dir / AUDIT_LOG, coordinator_signing_key(data_dir))
    return Coordinator(store, clock=clock, signer=_never_signs, audit_hook=hook)


def _log(data_dir: Path) -> AuditLog:
    return AuditLog.open_existing(data_dir / AUDIT_LOG)


def test_every_closed_round_and_shutdown_leave_a_signed_checkpoint(tmp_path: Path) -> None:
    clock = Clock()
    co = _coordinator(tmp_path, clock)
    pinned = [coordinator_verifier_key(tmp_path)]
    study = running_study(co, clock, rounds=2)
    sizes = []
    for round_no in (1, 2):
        participants = co.study_status(study)["rounds"][-1]["participants"]
        for j, site in enumerate(participants):
            body = update_body(study, round_no, 0.1 * (j + 1), 100)
            co.submit(site, study, round_no, "fit", f"{round_no}-{site}", body)
        assert co.tick()  # round closes (the next opens on a later tick)
        with _log(tmp_path) as log:
            cps = log.checkpoints()
            sizes.append(cps[-1].size)
            # the checkpoint comes after the round's own records
            actions = [r.action for r in log.records(0, cps[-1].size)]
            assert actions.count("round.close") == round_no
        if round_no == 1:
            assert co.tick()  # round 2 opens
    assert sizes[0] < sizes[1]
    co.create_token(Role.AUDITOR, "carol", actor="alice")  # after the last round checkpoint
    with _log(tmp_path) as log:
        assert "covers" in (log.verify(pinned).problem or "")
    co.core.checkpoint_audit()  # what serve() and BackgroundServer.stop() do at shutdown
    with _log(tmp_path) as log:
        report = log.verify(pinned)
        assert report.ok, report.problem
        assert report.covered_by == (pinned[0].name,)
        assert not log.verify([VerifierKey.of(coordinator_signing_key(tmp_path / "other"))]).ok
    co.store.close()


def test_a_truncated_coordinator_log_fails_against_its_last_checkpoint(tmp_path: Path) -> None:
    co = _coordinator(tmp_path, Clock())
    for i in range(40):
        co.create_token(Role.AUDITOR, f"auditor-{i}", actor="alice")
    co.core.checkpoint_audit()
    co.store.close()
    path = tmp_path / AUDIT_LOG
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines) == 41  # the header and 40 records
    path.write_text("".join(lines[:20]), encoding="utf-8")  # cut from 40 to 19 records
    with _log(tmp_path) as log:
        assert log.verify_unanchored().ok  # consistent by itself: only a checkpoint can tell
        report = log.verify([coordinator_verifier_key(tmp_path)])
    assert not report.ok
    assert "log truncated" in (report.problem or "")
    assert (report.first_bad, report.first_bad_end) == (19, 40)


def test_a_refused_enrolment_leaves_an_audit_record(live: Live) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.PkiLayout(live.pki_dir).ca.cert))
    with httpx.Client(base_url=live.url, verify=ctx) as c:
        csr = pki.make_csr(pki.new_private_key(), "hospital-9").decode()
        r = c.post("/v1/enrol", json={"token": "tte_not-a-token", "csr_pem": csr})
    assert r.status_code == 403
    coordinator = live.server.coordinator
    assert coordinator is not None
    refused = [
        e
        for e in coordinator.audit_events()
        if e["action"] == "site.enrol" and e["outcome"] == "denied"
    ]
    assert len(refused) == 1 and refused[0]["detail"] == {"reason": "invalid token"}
    with _log(live.server.settings.data_dir) as log:
        assert any(r.action == "site.enrol" and r.outcome == "denied" for r in log.records())


Call = tuple[str, str, dict[str, Any]]


def _send(app: FastAPI, calls: list[Call]) -> list[int]:
    """Status codes of ``calls`` made in order to the app in process (from 127.0.0.1)."""

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://coordinator") as c:
            return [(await c.request(m, url, **kw)).status_code for m, url, kw in calls]

    return anyio.run(go)


@pytest.fixture
def in_process(tmp_path: Path) -> tuple[FastAPI, Coordinator, Clock]:
    clock = Clock()
    co = _coordinator(tmp_path, clock)
    app = create_app(co)
    app.state.tutela.limiter = FailureLimiter(limit=25, window_s=60.0)
    return app, co, clock


def test_anonymous_failures_add_a_bounded_number_of_records(
    in_process: tuple[FastAPI, Coordinator, Clock],
) -> None:
    app, co, clock = in_process
    admin = co.create_token(Role.ADMIN, "admin", actor="bootstrap")
    before = len(co.audit_events(limit=10_000))
    bad: list[Call] = [
        ("GET", "/v1/admin/studies", {})  # no credentials
        if i % 2
        else ("GET", "/v1/admin/studies", {"headers": {"Authorization": f"Bearer tta_bad{i}"}})
        for i in range(1000)
    ]
    codes = _send(app, bad)
    assert codes[:25] == [401] * 25
    assert set(codes[25:]) == {429}
    # the same address is refused before the enrolment handler runs; a caller with valid
    # credentials is never refused by the limiter
    enrol: Call = ("POST", "/v1/enrol", {"json": {"token": "tte_x", "csr_pem": "x"}})
    good: Call = ("GET", "/v1/admin/studies", {"headers": {"Authorization": f"Bearer {admin}"}})
    assert _send(app, [enrol, good]) == [429, 200]
    assert len(co.audit_events(limit=10_000)) - before == 25
    clock.now += 61  # the window ends: one summary record, and failures are audited again
    assert _send(app, [("GET", "/v1/admin/studies", {})]) == [401]
    events = co.audit_events(limit=10_000)[before:]
    (summary,) = [e for e in events if e["action"] == "access.rate_limited"]
    assert summary["detail"]["refused"] == 1000 - 25 + 1
    assert summary["resource"] == "address/127.0.0.1"
    assert len(events) == 25 + 1 + 1
    co.store.close()


def test_failed_enrolments_count_against_the_limit(
    in_process: tuple[FastAPI, Coordinator, Clock],
) -> None:
    app, co, _clock = in_process
    calls: list[Call] = [
        ("POST", "/v1/enrol", {"json": {"token": f"tte_{i}", "csr_pem": "x"}}) for i in range(60)
    ]
    # each refused enrolment is audited (in its own transaction) until the limit; then the
    # address is refused before the coordinator is asked
    assert _send(app, calls) == [403] * 25 + [429] * 35
    refused = [e for e in co.audit_events(limit=10_000) if e["action"] == "site.enrol"]
    assert len(refused) == 25 and {e["outcome"] for e in refused} == {"denied"}
    co.store.close()


def test_a_transactions_events_reach_the_log_in_one_write_and_a_rollback_in_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tutela.governance import audit_store

    co = _coordinator(tmp_path, Clock())
    writes: list[int] = []
    original = audit_store._JsonlStore.write

    def counting(self: Any, rows: Any, state: Any) -> None:
        writes.append(len(rows))
        original(self, rows, state)

    monkeypatch.setattr(audit_store._JsonlStore, "write", counting)
    with co.core.store.session() as s:
        for i in range(5):
            co.core.audit("alice", "test.event", f"thing/{i}", session=s)
    assert writes == [5]

    def failing_change() -> None:
        with co.core.store.session() as s:
            co.core.audit("alice", "test.event", "thing/rolled-back", session=s)
            raise RuntimeError("the change fails")

    with pytest.raises(RuntimeError):
        failing_change()
    assert writes == [5]
    with _log(tmp_path) as log:
        resources = [r.resource for r in log.records(0, log.size) if r.action == "test.event"]
    assert resources == [f"thing/{i}" for i in range(5)]
    co.store.close()
