"""A coordinator restart does not lose federated queries: their lasting state is in the
store (migration 0004), a query the previous process left running is closed with the
reason, every site that accepted it is told (a ``closed`` task, until it says it dropped
its state), and finished queries stay readable by their analyst. Each restart is a new
coordinator over the same database file, as after a process restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.test_store import Clock
from tutela.server.authz import Principal, Role
from tutela.server.coordinator import Coordinator
from tutela.server.core import ConflictError
from tutela.server.queries import CLOSED_STAGE, INVITE_STAGE, QueryStatus
from tutela.server.query_store import RESTART_ERROR
from tutela.server.sealing import open_sealer
from tutela.server.store import Store, schema_revision, sqlite_url

ADMIN = Principal("root", Role.ADMIN)
ALICE = Principal("alice", Role.ANALYST)
SQL = "SELECT count(*) FROM patients GROUP BY sex"


def _open(tmp_path: Path, clock: Clock) -> Coordinator:
    store = Store(sqlite_url(tmp_path / "c.db"), open_sealer(tmp_path / "keyring"))
    return Coordinator(store, clock=clock)


def _accept() -> dict[str, object]:
    return {"accept": True, "identity": "11" * 32, "certificate": "pem", "binding": "sig",
            "categories": {"sex": ["F", "M"]}}  # fmt: skip


def _closed_tasks(co: Coordinator, site: str) -> list[dict[str, object]]:
    return [t for t in co.tasks_for(site)["tasks"] if t.get("stage") == CLOSED_STAGE]


def test_a_restart_closes_running_queries_tells_their_sites_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    clock = Clock()
    first = _open(tmp_path, clock)
    assert schema_revision(first.core.store.engine) == "0004"
    for site in ("a", "b", "c", "d"):
        first.activate_site(ADMIN, site)
    running = first.queries.submit(ALICE, SQL, 0.5, purpose="p", timeout_s=60)
    first.queries.answer("a", running, _accept())
    first.queries.answer("b", running, _accept())
    first.queries.answer("c", running, {"accept": False, "reason": "past its budget"})
    failed = first.queries.submit(ALICE, SQL, 0.5, purpose="p", timeout_s=10)
    for site in ("a", "b", "c", "d"):
        first.queries.answer(site, failed, {"accept": False, "reason": "no"})
    first.tick()
    assert first.queries.status(ALICE, failed)["status"] == QueryStatus.FAILED.value
    del first  # the process ends: its memory (the SecAgg+ state included) is gone

    second = _open(tmp_path, clock)
    status = second.queries.status(ALICE, running)
    assert status["status"] == QueryStatus.FAILED.value and status["error"] == RESTART_ERROR
    assert status["accepted"] == ["a", "b"] and status["refused"] == {"c": "past its budget"}
    assert status["request"]["sql"] == SQL and status["request"]["analyst"] == "alice"
    before = second.queries.status(ALICE, failed)
    assert before["error"].startswith("0 site(s) accepted")  # closed before: as it was
    # the sites that accepted are told, with the reason; the others have nothing to do
    for site in ("a", "b"):
        (task,) = _closed_tasks(second, site)
        assert task["query_id"] == running and task["reason"] == RESTART_ERROR
    assert not _closed_tasks(second, "c") and not _closed_tasks(second, "d")
    assert not [t for t in second.tasks_for("d")["tasks"] if t.get("stage") == INVITE_STAGE]
    with pytest.raises(ConflictError, match="no longer takes answers"):
        second.queries.answer("d", running, _accept())
    closes = [e for e in second.audit_events() if e["action"] == "query.fail"]
    assert [e["resource"] for e in closes][-1] == f"query/{running}"
    assert closes[-1]["detail"]["error"] == RESTART_ERROR
    second.queries.closed("a", running)  # a dropped its state
    assert not _closed_tasks(second, "a") and _closed_tasks(second, "b")
    del second

    third = _open(tmp_path, clock)  # what was said and done survives another restart
    assert not _closed_tasks(third, "a") and _closed_tasks(third, "b")
    assert third.queries.status(ALICE, running)["error"] == RESTART_ERROR
    fails = [e for e in third.audit_events() if e["action"] == "query.fail"]
    assert len(fails) == len(closes)  # closed once, not again at every restart
