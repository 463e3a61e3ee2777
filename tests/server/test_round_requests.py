"""What a round costs in requests: the coordinator's message and the global model travel in
the task, a stage submission waits for the site's next task, an unchanged site report is
not sent again, and the site witnesses the audit log on a cadence rather than every round.

Each test runs a real study through a real TLS coordinator and real site agents, and reads
the requests the coordinator served (the app is wrapped to record each request's method,
path and query; nothing else changes). The paths that carry nothing in the task (a model or
a message over the inline bound) are run too: both give the same model, up to SecAgg+'s
stochastic quantisation. The parties that could make a carried payload wrong are played
too: a study row read before the round moved on, a site suspended while its request was
held, a next-tasks read that fails after the submission was accepted.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from tests.server import loopback
from tests.server.conftest import Live, model_params, small_config, start_live
from tests.server.test_bounds_update_norm import HONEST, LIAR, _body, _running, _scaled
from tests.server.test_store import ADMIN, Clock, open_coordinator
from tutela.fl.client import FeatureMoments
from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.records import parameters_to_bytes
from tutela.server import participation, serve
from tutela.server.coordinator import DeploymentSettings
from tutela.server.deploy import run_study_over_network
from tutela.server.store import SiteRow, StudyRow, UpdateRow
from tutela.server.wire import parse_tensors

Request = tuple[str, str, str]
"""(method, path, query string) of one request the coordinator served."""


def _record(monkeypatch: pytest.MonkeyPatch) -> list[Request]:
    """Record every HTTP request of the coordinators started from now on."""
    served: list[Request] = []
    original = serve.create_app

    def create_app(*args: Any, **kwargs: Any) -> Callable[..., Any]:
        app = original(*args, **kwargs)

        async def recorded(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                query = scope.get("query_string", b"").decode()
                served.append((scope["method"], scope["path"], query))
            await app(scope, receive, send)

        return recorded

    monkeypatch.setattr(serve, "create_app", create_app)
    return served


def _config(rounds: int) -> StudyConfig:
    return parse_study(
        {
            "study": {"seed": 3},
            "data": {"dataset": "pima-diabetes", "sites": 4},
            "training": {"rounds": rounds, "local_epochs": 1, "min_quorum": 3},
            "secure_aggregation": {"protocol": "secagg+"},
        }
    )


def _count(served: list[Request], method: str, test: Callable[[str, str], bool]) -> int:
    return sum(1 for m, path, query in served if m == method and test(path, query))


def _run(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, rounds: int
) -> tuple[dict[str, Any], list[Request]]:
    served = _record(monkeypatch)
    result = run_study_over_network(
        _config(rounds), tmp, sites_as_processes=False, with_baselines=False
    )
    assert [h["round"] for h in result["history"]] == list(range(1, rounds + 1))
    return result, served


def test_a_secagg_round_needs_one_request_per_stage_and_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds, sites = 3, 4
    inline, served = _run(tmp_path / "inline", monkeypatch, rounds)
    stage_posts = [(p, q) for m, p, q in served if m == "POST" and "/stages/" in p]
    # rounds 0 (the secure standardisation round) to 3, five SecAgg+ stages, every site
    assert len(stage_posts) == (rounds + 1) * 5 * sites
    assert all("wait=" in q and "seen=" in q for _, q in stage_posts), stage_posts[:3]
    # the next task came back with each submission: a site polls only around the rounds
    polls = _count(served, "GET", lambda p, _q: p == "/v1/site/tasks")
    assert polls <= 4 * sites, polls
    # the coordinator's messages and the model came in the tasks
    assert _count(served, "GET", lambda p, _q: "/relay/" in p) == 0
    assert _count(served, "GET", _site_model) == 0
    # no DP: a site's signed report never changes after it joined, and is sent once
    assert _count(served, "POST", lambda p, _q: p.endswith("/site-report")) == sites

    # Over the inline bounds, sites fetch both: one more request each, the same model.
    monkeypatch.setattr(participation, "INLINE_MODEL_BYTES", 0)
    monkeypatch.setattr(participation, "INLINE_MESSAGE_BYTES", 0)
    fetched, served = _run(tmp_path / "fetched", monkeypatch, rounds)
    assert _count(served, "GET", lambda p, _q: "/relay/" in p) == (rounds + 1) * 5 * sites
    assert _count(served, "GET", _site_model) == rounds * sites
    # the same model up to SecAgg+'s stochastic quantisation (its bound on each round's sum)
    bound = rounds * 2 * inline["secure_aggregation"]["quantization_error_bound"]
    assert 0 < bound < 1e-3
    assert set(inline["final_parameters"]) == set(fetched["final_parameters"])
    for name, value in inline["final_parameters"].items():
        other = np.asarray(fetched["final_parameters"][name])
        np.testing.assert_allclose(np.asarray(value), other, rtol=0, atol=bound)


def _site_model(path: str, _query: str) -> bool:
    return path.startswith("/v1/site/") and path.endswith("/model")


def _cosignatures(
    tmp: Path, pki_dir: Path, monkeypatch: pytest.MonkeyPatch, interval: float
) -> int:
    """Cosignatures the coordinator received in a six-round study whose three sites witness
    at most every ``interval`` seconds."""
    served = _record(monkeypatch)
    live: Live = start_live(tmp, pki_dir)
    try:
        study = live.new_study(small_config(rounds=6))
        deployment = loopback.run_agents(live, tmp / "sites", study, witness_interval_s=interval)
    finally:
        live.server.stop()
    assert all(r["witness_refused"] is None for r in deployment.results.values())
    return _count(served, "POST", lambda p, _q: p == "/v1/site/audit/cosignature")


def test_a_site_witnesses_every_round_or_on_its_cadence(
    tmp_path: Path, pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sites, rounds = 3, 6
    every_round = _cosignatures(tmp_path / "every", pki_dir, monkeypatch, 0.0)
    assert every_round >= rounds * sites
    on_cadence = _cosignatures(tmp_path / "cadence", pki_dir, monkeypatch, 3600.0)
    # before the study, when it recruits, runs and completes, and before leaving
    assert sites <= on_cadence <= 5 * sites < every_round


def test_a_task_carries_the_model_only_when_the_study_row_is_at_that_round(
    db_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL the study row and the open round are read by separate statements: a
    round that closed and reopened between them must not hand out the older model."""
    co = open_coordinator(db_url, tmp_path / "keyring", Clock())
    _running(co, Clock(), liar_rows=100)
    task = co.tasks_for(HONEST[0])["tasks"][0]
    assert task["stage"] == "fit" and task["round"] == 1
    model = base64.b64decode(task["model"])
    assert parse_tensors(model)[0].keys() == model_params().keys()
    study = task["study_id"]
    with co.core.store.session() as s:  # the study row as a statement read earlier saw it
        row = s.get(StudyRow, study)
        assert row is not None
        row.current_round = 0
    stale = co.tasks_for(HONEST[0])["tasks"][0]
    assert stale["round"] == 1 and "model" not in stale  # the site fetches it instead
    co.store.close()


def test_a_site_suspended_while_its_request_is_held_gets_no_task(
    db_url: str, tmp_path: Path
) -> None:
    co = open_coordinator(db_url, tmp_path / "keyring", Clock())
    _running(co, Clock(), liar_rows=100)
    assert co.tasks_for(LIAR)["tasks"]
    with co.core.store.session() as s:
        row = s.get(SiteRow, LIAR)
        assert row is not None
        row.status = "suspended"
    assert co.tasks_for(LIAR)["tasks"] == []
    assert co.tasks_for(HONEST[0])["tasks"]  # the others keep theirs
    co.store.close()


def test_an_accepted_submission_keeps_its_receipt_when_the_next_answer_fails(
    tmp_path: Path, pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = start_live(tmp_path, pki_dir)
    try:
        co = live.server.coordinator
        assert co is not None
        study = co.create_study(
            ADMIN, small_config(rounds=1), DeploymentSettings(join_timeout_s=30)
        )
        co.set_initial_model(ADMIN, study, parameters_to_bytes(model_params()))
        co.start(ADMIN, study)
        for name in (*HONEST, LIAR):
            moments = FeatureMoments(100, np.ones(7), np.full(7, 3.0))
            co.answer_invitation(name, study, accept=True, num_examples=100, moments=moments)
        with live.client(site=HONEST[0]) as site:
            deadline = time.monotonic() + 60  # the server's own ticker opens round 1
            while not (answer := site.get("/v1/site/tasks").json())["tasks"]:
                assert time.monotonic() < deadline, "round 1 never opened"
                time.sleep(0.05)
            assert answer["tasks"][0]["stage"] == "fit"
            seen = answer["version"]

            def broken(_site: str) -> dict[str, Any]:
                raise RuntimeError("the store went away")

            monkeypatch.setattr(co, "tasks_for", broken)
            r = site.post(
                f"/v1/site/studies/{study}/rounds/1/stages/fit",
                params={"wait": 5, "seen": seen},
                content=_body(study, _scaled(0.5), 100),
                headers={"Idempotency-Key": "k-1"},
            )
        assert r.status_code == 200, r.text
        receipt = r.json()
        assert receipt["site"] == HONEST[0] and "next_tasks" not in receipt
        with co.core.store.read() as s:  # and the update is stored
            assert s.scalar(select(UpdateRow.site).where(UpdateRow.study_id == study)) == HONEST[0]
    finally:
        live.server.stop()
