"""The coordinator's side of federated queries, without the network: who may submit and
read a query, invitations and their answers, failures with their reasons, and how many
finished queries it keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tutela.errors import DataError, PermissionDenied
from tutela.server import queries as queries_module
from tutela.server.authz import Principal, Role
from tutela.server.coordinator import Coordinator
from tutela.server.core import ConflictError, NotFoundError
from tutela.server.queries import INVITE_STAGE, QueryStatus
from tutela.server.sealing import open_sealer
from tutela.server.store import Store, sqlite_url

ADMIN = Principal("root", Role.ADMIN)
ALICE = Principal("alice", Role.ANALYST)
BOB = Principal("bob", Role.ANALYST)
SITES = ("a", "b", "c", "d")
SQL = "SELECT count(*) FROM patients GROUP BY sex"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def co(tmp_path: Path) -> tuple[Coordinator, Clock]:
    clock = Clock()
    coordinator = Coordinator(
        Store(sqlite_url(tmp_path / "c.db"), open_sealer(tmp_path / "keyring")), clock=clock
    )
    for site in SITES:
        coordinator.activate_site(ADMIN, site)
    return coordinator, clock


def test_submission_is_checked_and_the_analyst_is_the_caller(co: tuple[Coordinator, Clock]) -> None:
    coordinator, _ = co
    q = coordinator.queries
    with pytest.raises(DataError, match="expected the end of the query"):
        q.submit(ALICE, SQL + "; DROP TABLE x", 0.5, purpose="p")
    with pytest.raises(DataError, match="not enrolled: zz"):
        q.submit(ALICE, SQL, 0.5, purpose="p", sites=["a", "b", "zz"])
    with pytest.raises(DataError, match="at least 3"):
        q.submit(ALICE, SQL, 0.5, purpose="p", sites=["a", "b"])
    with pytest.raises(DataError, match="epsilon must be in"):
        q.submit(ALICE, SQL, 50.0, purpose="p")
    query_id = q.submit(ALICE, SQL, 0.5, purpose="p")
    assert q.status(ALICE, query_id)["request"]["analyst"] == "alice"
    assert q.status(ADMIN, query_id)["status"] == QueryStatus.INVITING.value
    with pytest.raises(PermissionDenied, match="another analyst"):
        q.status(BOB, query_id)
    tasks = coordinator.tasks_for("a")["tasks"]
    assert [(t["kind"], t["stage"]) for t in tasks] == [("query", INVITE_STAGE)]
    submitted = [e for e in coordinator.audit_events() if e["action"] == "query.submit"]
    assert submitted[-1]["actor"] == "analyst:alice"


def test_refusals_are_audited_and_too_few_acceptances_fail_the_query(
    co: tuple[Coordinator, Clock],
) -> None:
    coordinator, clock = co
    q = coordinator.queries
    query_id = q.submit(ALICE, SQL, 0.5, purpose="p", timeout_s=30)
    with pytest.raises(PermissionDenied):
        q.answer("zz", query_id, {"accept": False, "reason": "x"})
    q.answer("a", query_id, {"accept": False, "reason": "the cohort is below the minimum"})
    q.answer("a", query_id, {"accept": False, "reason": "again"})  # a retry: kept once
    with pytest.raises(ConflictError, match="already answered"):
        q.answer("a", query_id, {"accept": True})
    with pytest.raises(DataError, match="identity"):
        q.answer("b", query_id, {"accept": True})
    assert coordinator.tasks_for("a")["tasks"] == []
    assert not coordinator.tick()  # b, c, d have until the deadline
    clock.now += 31
    assert coordinator.tick()
    status = q.status(ALICE, query_id)
    assert status["status"] == "failed" and "0 site(s) accepted" in status["error"]
    assert status["refused"] == {"a": "the cohort is below the minimum"}
    events = coordinator.audit_events()
    refusal = [e for e in events if e["action"] == "query.refuse"]
    assert len(refusal) == 1 and refusal[0]["detail"]["reason"].startswith("the cohort")
    assert next(e for e in events if e["action"] == "query.fail")["outcome"] == "failed"
    with pytest.raises(ConflictError, match="no longer takes answers"):
        q.answer("b", query_id, {"accept": False, "reason": "late"})


def _accept(categories: dict[str, list[str]]) -> dict[str, object]:
    return {"accept": True, "identity": "00" * 32, "certificate": "pem", "binding": "00",
            "categories": categories}  # fmt: skip


def test_sites_that_declare_different_categories_fail_the_query(
    co: tuple[Coordinator, Clock],
) -> None:
    coordinator, _ = co
    q = coordinator.queries
    query_id = q.submit(ALICE, SQL, 0.5, purpose="p", sites=["a", "b", "c"])
    q.answer("a", query_id, _accept({"sex": ["F", "M"]}))
    q.answer("b", query_id, _accept({"sex": ["F", "M"]}))
    q.answer("c", query_id, _accept({"sex": ["F", "M", "X"]}))
    assert coordinator.tick()
    assert "different categories" in q.status(ALICE, query_id)["error"]


def test_only_the_latest_finished_queries_are_kept(
    co: tuple[Coordinator, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    coordinator, clock = co
    monkeypatch.setattr(queries_module, "MAX_KEPT", 2)
    q = coordinator.queries
    ids = []
    for _ in range(4):
        ids.append(q.submit(ALICE, SQL, 0.5, purpose="p", timeout_s=1))
        clock.now += 2
        coordinator.tick()  # no site answered: failed
    live = q.submit(ALICE, SQL, 0.5, purpose="p")
    for gone in ids[:2]:
        with pytest.raises(NotFoundError, match="unknown query"):
            q.status(ALICE, gone)
    assert [q.status(ALICE, i)["status"] for i in ids[2:]] == ["failed", "failed"]
    assert q.status(ALICE, live)["status"] == "inviting"
    assert len([e for e in coordinator.audit_events() if e["action"] == "query.fail"]) == 4
