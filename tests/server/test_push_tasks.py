"""Tasks pushed to site agents by long polling (``GET /v1/site/tasks?wait=..&seen=..``).

Each test plays against a real coordinator over HTTPS with mutual TLS. Waiting is checked by
events (the coordinator's count of held requests, the order of answers), never by timings;
the generous ``join`` guards only stop a broken test from hanging.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import Live, model_params, small_config, start_live
from tutela.fl.config import parse_study
from tutela.fl.models import get_parameters
from tutela.fl.records import parameters_to_bytes
from tutela.fl.study import prepare_data, prepare_sites
from tutela.server import pki
from tutela.server.agent import run_site
from tutela.server.deploy import write_site_files
from tutela.server.push import PushLimits, TaskBell, is_news, versioned
from tutela.server.serve import BackgroundServer, ServerSettings
from tutela.server.tls import client_context

GUARD_S = 60.0
"""How long a test waits for an event before it fails (never reached when the code works)."""


def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


class Poll(threading.Thread):
    """One long poll on a thread; ``answer`` and ``status`` once it returns."""

    def __init__(self, client: httpx.Client, **params: Any) -> None:
        super().__init__(daemon=True)
        self.client, self.params = client, params
        self.status: int | None = None
        self.answer: dict[str, Any] = {}

    def run(self) -> None:
        r = self.client.get("/v1/site/tasks", params=self.params, timeout=GUARD_S * 2)
        self.status, self.answer = r.status_code, r.json()


@pytest.fixture
def live(tmp_path: Path, pki_dir: Path, db_url: str) -> Iterator[Live]:
    """A running coordinator on SQLite, and on PostgreSQL when one is available."""
    handle = start_live(tmp_path, pki_dir, db_url)
    try:
        yield handle
    finally:
        handle.server.stop()


def _bell(live: Live) -> TaskBell:
    assert live.server.coordinator is not None
    return live.server.coordinator.core.bell


def _plain(client: httpx.Client) -> dict[str, Any]:
    r = client.get("/v1/site/tasks")
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def test_a_task_reaches_a_waiting_agent_when_the_coordinator_creates_it(live: Live) -> None:
    bell = _bell(live)
    bell.limits = PushLimits(max_wait_s=300.0)  # only a ring can end the wait in time
    study = live.new_study()
    with live.client(site="hospital-1") as site:
        before = _plain(site)
        assert before["tasks"] == [] and "version" in before  # created, not started
        poll = Poll(site, wait=300, seen=before["version"])
        poll.start()
        _until(lambda: bell.held_by("hospital-1") == 1, "the request is held")
        assert poll.status is None  # held: nothing answered while nothing changed
        with live.admin() as admin:
            assert admin.post(f"/v1/admin/studies/{study}/start").status_code == 200
        poll.join(GUARD_S)
        assert not poll.is_alive(), "the start did not wake the held request"
    assert poll.status == 200
    assert [t["kind"] for t in poll.answer["tasks"]] == ["join"]
    assert poll.answer["tasks"][0]["study_id"] == study
    assert poll.answer["version"] != before["version"]
    assert bell.held == 0


def test_a_held_request_ends_at_its_wait_limit_with_no_task(live: Live) -> None:
    bell = _bell(live)
    with live.client(site="hospital-2") as site:
        before = _plain(site)
        poll = Poll(site, wait=1, seen=before["version"])
        poll.start()
        _until(lambda: bell.held_by("hospital-2") == 1, "the request is held")
        bell.ring()  # a ring that changes nothing for this site: it keeps waiting
        poll.join(GUARD_S)
    assert poll.status == 200
    assert poll.answer == before  # the same answer and version: nothing to do
    assert bell.held == 0


def test_over_the_bounds_a_long_poll_is_refused_with_the_reason(live: Live) -> None:
    bell = _bell(live)
    bell.limits = PushLimits(max_wait_s=300.0, max_per_site=1, max_total=2)
    with (
        live.client(site="hospital-1") as one,
        live.client(site="hospital-2") as two,
        live.client(site="hospital-3") as three,
    ):
        v1, v2, v3 = (_plain(c)["version"] for c in (one, two, three))
        first = Poll(one, wait=300, seen=v1)
        first.start()
        _until(lambda: bell.held_by("hospital-1") == 1, "the first request is held")
        r = one.get("/v1/site/tasks", params={"wait": 300, "seen": v1})
        assert r.status_code == 429
        assert "hospital-1 already holds 1" in r.json()["detail"]
        assert r.headers["Retry-After"] == "1"
        assert one.get("/v1/site/tasks").status_code == 200  # a plain poll still works
        second = Poll(two, wait=300, seen=v2)
        second.start()
        _until(lambda: bell.held == 2, "two requests are held")
        r = three.get("/v1/site/tasks", params={"wait": 300, "seen": v3})
        assert r.status_code == 503
        assert "holds 2 waiting task requests (at most 2)" in r.json()["detail"]
        study = live.new_study()  # invitations for all three end both held requests
        with live.admin() as admin:
            assert admin.post(f"/v1/admin/studies/{study}/start").status_code == 200
        first.join(GUARD_S)
        second.join(GUARD_S)
    assert first.status == second.status == 200
    assert [t["kind"] for t in first.answer["tasks"]] == ["join"]


def test_a_site_cannot_receive_another_sites_task_by_long_polling(live: Live) -> None:
    bell = _bell(live)
    bell.limits = PushLimits(max_wait_s=2.0)
    config = small_config()
    with live.admin() as admin:
        r = admin.post(
            "/v1/admin/studies",
            json={
                "config": config.resolved(),
                "deployment": {"sites": ["hospital-1", "hospital-2"]},
            },
        )
        assert r.status_code == 201, r.text
        study = r.json()["id"]
        r = admin.put(
            f"/v1/admin/studies/{study}/model",
            content=parameters_to_bytes(model_params()),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 204, r.text
    with live.client(site="hospital-1") as one, live.client(site="hospital-3") as three:
        mine, theirs = _plain(three), _plain(one)
        outsider = Poll(three, wait=300, seen=mine["version"])
        outsider.start()
        _until(lambda: bell.held_by("hospital-3") == 1, "the outsider's request is held")
        with live.admin() as admin:  # rings every site: a study's status changed
            assert admin.post(f"/v1/admin/studies/{study}/start").status_code == 200
        invited = _plain(one)
        assert [t["study_id"] for t in invited["tasks"]] == [study]
        # Naming the invited site's version gets the caller its own answer, never theirs.
        r = three.get("/v1/site/tasks", params={"wait": 300, "seen": invited["version"]})
        outsider.join(GUARD_S)
    assert r.status_code == 200 and r.json()["tasks"] == [] and r.json()["studies"] == {}
    assert outsider.status == 200
    assert outsider.answer == mine  # woken, re-read, still nothing: ends at its wait limit
    assert theirs["version"] != invited["version"]


def test_the_answer_version_is_a_digest_and_only_news_ends_a_wait() -> None:
    a = versioned({"tasks": [], "studies": {"s": "running"}})
    b = versioned({"studies": {"s": "running"}, "tasks": []})
    c = versioned({"tasks": [], "studies": {"s": "completed"}})
    assert a == b and a["version"] != c["version"]
    assert versioned(a) == a  # an answer's own version is not part of its digest
    fit = {"kind": "fit", "study_id": "s", "round": 1}
    working = versioned({"tasks": [fit], "studies": {"s": "running"}})
    assert not is_news(a, working["version"])  # only the task the agent did is gone
    assert not is_news(working, working["version"])
    assert is_news(working, a["version"])  # a task it has not seen
    assert is_news(versioned({"tasks": [{**fit, "round": 2}], "studies": {"s": "running"}}),
                   working["version"])  # fmt: skip
    assert is_news(c, working["version"])  # a study's status changed
    with pytest.raises(Exception, match="max_wait_s"):
        PushLimits(max_wait_s=0)


def test_a_restarted_coordinator_loses_no_held_request(tmp_path: Path) -> None:
    """Two agents hold long polls while the study recruits; the coordinator stops (its held
    requests cut) and starts again on the same store and port; the agents reconnect, the
    third joins, and every round completes with all three."""
    config = parse_study(
        {
            "study": {"seed": 3},
            "data": {"dataset": "pima-diabetes", "sites": 3},
            "training": {"rounds": 2, "local_epochs": 1, "min_quorum": 3, "min_fit_sites": 3},
        }
    )
    pki_dir = tmp_path / "pki"
    pki.init_ca(pki_dir)
    pki.issue_to_files(pki_dir, kind="server", name="localhost", sans=["127.0.0.1"])
    ca = pki.PkiLayout(pki_dir).ca.cert
    data = prepare_data(config)
    site_dirs = write_site_files(config, data, tmp_path / "sites")
    settings = ServerSettings(tmp_path / "coordinator", pki_dir, port=0, tick_interval=0.05)
    server = BackgroundServer(settings).start()
    settings = ServerSettings(tmp_path / "coordinator", pki_dir, port=server.port)
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    http = httpx.Client(base_url=server.url, verify=client_context(ca), headers=headers)
    threads: list[threading.Thread] = []
    try:
        tokens = {
            n: http.post("/v1/admin/sites", json={"name": n}).json()["enrolment_token"]
            for n in data.site_names
        }
        cfg = config.with_overrides(data={"columns": list(data.columns)}).resolved()
        deployment = {"stage_timeout_s": 60, "join_timeout_s": 120, "sites": data.site_names}
        study = http.post("/v1/admin/studies", json={"config": cfg, "deployment": deployment})
        study_id = study.json()["id"]
        initial = get_parameters(prepare_sites(config, data).model_factory())
        http.put(f"/v1/admin/studies/{study_id}/model", content=parameters_to_bytes(initial))
        http.post(f"/v1/admin/studies/{study_id}/start").raise_for_status()

        def agent(i: int) -> threading.Thread:
            name = data.site_names[i]
            d = site_dirs[name]
            kwargs = {
                "coordinator": server.url, "name": name, "ca_file": ca,
                "cert_file": d / "site.pem", "key_file": d / "site.key",
                "enrol_token": tokens[name], "data": d / "data.csv",
                "policy_file": d / "site-policy.toml", "state_dir": d / "state",
                "seed": i, "max_runtime_s": 300.0,
            }  # fmt: skip
            thread = threading.Thread(target=run_site, kwargs=kwargs, daemon=True)
            thread.start()
            threads.append(thread)
            return thread

        agent(0), agent(1)
        assert server.coordinator is not None
        first_bell = server.coordinator.core.bell
        _until(lambda: first_bell.held == 2, "both joined agents hold a long poll")
        http.close()
        server.stop()  # the held requests are cut
        server = BackgroundServer(settings).start()
        http = httpx.Client(base_url=server.url, verify=client_context(ca), headers=headers)
        assert server.coordinator is not None
        bell = server.coordinator.core.bell
        _until(lambda: bell.held == 2, "both agents hold a long poll again")
        agent(2)
        _until(
            lambda: http.get(f"/v1/admin/studies/{study_id}").json()["status"] == "completed",
            "the study completes",
        )
        status = http.get(f"/v1/admin/studies/{study_id}").json()
        for thread in threads:
            thread.join(GUARD_S)
    finally:
        http.close()
        server.stop()
    assert [r["round"] for r in status["rounds"]] == [1, 2]
    assert all(r["status"] == "aggregated" for r in status["rounds"])
    assert all(r["sites"] == sorted(data.site_names) for r in status["rounds"])
    assert not any(t.is_alive() for t in threads)
