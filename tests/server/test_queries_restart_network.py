"""A real coordinator restart in the middle of a federated query: five hospital agents in
their own processes, a TLS coordinator that is stopped and started again on the same port
and database while the query waits for its last site. The new coordinator closes the query
with the reason, the sites that accepted it are told and drop their state (saying so), and
none of them is charged for a release that never happened (only its cohort test)."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

from tests.server.test_queries_network import COHORT, Deployment
from tutela.dp.events import GaussianEvent
from tutela.server.authz import Principal, Role
from tutela.server.query_demo import DEMO_PURPOSE
from tutela.server.query_store import RESTART_ERROR
from tutela.server.serve import BackgroundServer


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_restart_mid_query_closes_it_and_tells_the_sites(tmp_path: Path) -> None:
    net = Deployment(tmp_path)
    late = net.procs[list(net.sites).index("hospital-5")]
    try:
        os.kill(late.pid, signal.SIGSTOP)  # hospital-5 will not answer: the query waits
        assert net.server.coordinator is not None
        queries = net.server.coordinator.queries
        alice = Principal("alice", Role.ANALYST)
        query_id = queries.submit(alice, COHORT, 0.5, purpose=DEMO_PURPOSE, timeout_s=600)

        def answered() -> int:
            status = queries.status(alice, query_id)
            return len(status["accepted"]) + len(status["refused"])

        _wait(lambda: answered() == 4, 180, "four answers")
        accepted = queries.status(alice, query_id)["accepted"]
        assert accepted == ["hospital-1", "hospital-2", "hospital-3"]

        port = net.server.port
        net.server.stop()  # the coordinator process goes away mid-query
        net.server = BackgroundServer(dataclasses.replace(net.server.settings, port=port))
        net.server.start()
        assert net.server.coordinator is not None
        again = net.server.coordinator.queries
        status = again.status(alice, query_id)
        assert status["status"] == "failed" and status["error"] == RESTART_ERROR
        # every site that accepted is told and drops its state (it says so)
        _wait(lambda: not again._queries[query_id].closing, 120, "the sites to drop the query")
        for site in accepted:
            log = (net.sites[site] / "agent.log").read_text(errors="replace")
            assert f"query {query_id} closed: the coordinator restarted" in log, site
            # charged only the cohort test (both scopes): the release never ran
            records = net.ledger(site).records()
            assert [r.label.startswith("minimum-cohort test") for r in records] == [True, True]
            assert not any(isinstance(r.event, GaussianEvent) for r in records)
        os.kill(late.pid, signal.SIGCONT)
        # hospital-5 wakes to a closed query. The invitation may still reach it: its held
        # task request was answered before the restart, while it was stopped. It then pays at
        # most its cohort test (charged before any answer leaves a site), its answer is not
        # taken, and the release is never charged.
        _wait(lambda: net.spends()["hospital-5"] in (0, 2), 30, "hospital-5 to settle")
        time.sleep(2)
        late_records = net.ledger("hospital-5").records()
        assert all(r.label.startswith("minimum-cohort test") for r in late_records)
        assert not any(isinstance(r.event, GaussianEvent) for r in late_records)
        if late_records:
            log = (net.sites["hospital-5"] / "agent.log").read_text(errors="replace")
            assert f"query {query_id} no longer takes answers" in log
    finally:
        os.kill(late.pid, signal.SIGCONT)
        net.close()
