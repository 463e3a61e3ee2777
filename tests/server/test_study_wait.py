"""Waiting for a study's status to change: one held request instead of polling.

``GET /v1/admin/studies/{id}?wait=...&seen=<status>`` is held until the study's status is
no longer ``seen`` (woken by the commit that changed it, not by a timer), or the wait runs
out; it is bounded like the sites' held requests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.server.conftest import Live
from tutela.cli.main import app
from tutela.server import push
from tutela.server.push import PushLimits, StudyWatch


def _watch(live: Live) -> StudyWatch:
    assert live.server.coordinator is not None
    return live.server.coordinator.core.studies


def _held_wait(live: Live, study: str, params: dict[str, Any]) -> tuple[threading.Thread, dict]:
    """Start a held status request on a thread; return it and where its outcome lands."""
    out: dict[str, Any] = {}

    def ask() -> None:
        started = time.monotonic()
        with live.admin() as admin:
            r = admin.get(f"/v1/admin/studies/{study}", params=params, timeout=60)
        out.update(status=r.status_code, body=r.json(), elapsed=time.monotonic() - started)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while _watch(live).held < 1:  # held on the coordinator before anything changes
        assert time.monotonic() < deadline, "the request was never held"
        assert thread.is_alive(), f"answered at once: {out}"
        time.sleep(0.01)
    return thread, out


def test_a_wait_ends_when_the_commit_that_changes_the_status_lands(live: Live) -> None:
    study = live.new_study()
    thread, out = _held_wait(live, study, {"brief": True, "wait": 60, "seen": "created"})
    with live.admin() as admin:
        assert admin.post(f"/v1/admin/studies/{study}/cancel").status_code == 200
    thread.join(30)
    assert out["status"] == 200 and out["body"]["status"] == "cancelled"
    # woken by the change: the coordinator's own limit on a hold is 30 s
    assert out["elapsed"] < 20
    assert _watch(live).held == 0


def test_a_full_status_waits_the_same_way(live: Live) -> None:
    study = live.new_study()
    thread, out = _held_wait(live, study, {"wait": 60, "seen": "created"})
    with live.admin() as admin:
        admin.post(f"/v1/admin/studies/{study}/cancel").raise_for_status()
        full = admin.get(f"/v1/admin/studies/{study}").json()
    thread.join(30)
    assert out["body"] == full and "rounds" in full


def test_a_wait_answers_at_once_when_the_status_is_not_the_one_seen(live: Live) -> None:
    study = live.new_study()
    with live.admin() as admin:
        for params in (
            {"brief": True, "wait": 60, "seen": "running"},  # not what it is
            {"brief": True, "wait": 60},  # no status seen
            {"brief": True, "seen": "created"},  # no wait
        ):
            r = admin.get(f"/v1/admin/studies/{study}", params=params, timeout=10)
            assert r.status_code == 200 and r.json()["status"] == "created"
        r = admin.get(f"/v1/admin/studies/{study}", params={"wait": 0.3, "seen": "created"})
        assert r.status_code == 200 and r.json()["status"] == "created"  # ran out: as it is
        bad = admin.get(f"/v1/admin/studies/{study}", params={"wait": 301, "seen": "created"})
        assert bad.status_code == 422
        bad = admin.get(f"/v1/admin/studies/{study}", params={"wait": 1, "seen": "RUN NING"})
        assert bad.status_code == 422
        missing = admin.get("/v1/admin/studies/nope", params={"wait": 5, "seen": "created"})
        assert missing.status_code == 404
    with live.client(site="hospital-1") as site:  # sites wait on no study's status
        r = site.get(f"/v1/admin/studies/{study}", params={"wait": 5, "seen": "created"})
        assert r.status_code == 403
    assert _watch(live).held == 0


def test_waits_over_the_bound_are_refused_at_once(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = _watch(live)
    monkeypatch.setattr(watch, "limits", PushLimits(max_total=1))
    study = live.new_study()
    thread, out = _held_wait(live, study, {"brief": True, "wait": 60, "seen": "created"})
    with live.admin() as admin:
        refused = admin.get(
            f"/v1/admin/studies/{study}", params={"brief": True, "wait": 60, "seen": "created"}
        )
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert "at most 1" in refused.json()["detail"]
        admin.post(f"/v1/admin/studies/{study}/cancel").raise_for_status()
    thread.join(30)
    assert out["body"]["status"] == "cancelled"
    assert watch.held == 0


def _status_cli(live: Live, study: str, *extra: str) -> Any:
    args = ["server", "status", study, "--coordinator", live.url, "--ca", str(live.ca)]
    return CliRunner().invoke(app, [*args, "--token", live.tokens["admin"], *extra])


def test_cli_status_waits_for_the_end_of_a_study(live: Live) -> None:
    study = live.new_study()

    def cancel() -> None:
        with live.admin() as admin:
            admin.post(f"/v1/admin/studies/{study}/cancel").raise_for_status()

    canceller = threading.Timer(0.5, cancel)
    canceller.start()
    out = _status_cli(live, study, "--wait", "60")
    canceller.join()
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["status"] == "cancelled"


def test_cli_status_wait_that_runs_out_is_one_line_and_non_zero(live: Live) -> None:
    study = live.new_study()
    base = [sys.executable, "-m", "tutela", "server", "status"]
    tail = ["--coordinator", live.url, "--ca", str(live.ca), "--token", live.tokens["admin"]]
    r = subprocess.run(
        [*base, study, *tail, "--wait", "0.3"], check=False, capture_output=True, text=True
    )
    assert r.returncode == 1
    assert r.stderr == f"error: study {study} is still created after 0.3 s\n"
    assert json.loads(r.stdout)["status"] == "created"  # the status is printed all the same
    r = subprocess.run(
        [*base, "nope", *tail, "--wait", "5"], check=False, capture_output=True, text=True
    )
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "404" in r.stderr


def test_one_caller_cannot_take_every_wait(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(push, "MAX_STUDY_WAITS_PER_CALLER", 1)
    study = live.new_study()
    thread, out = _held_wait(live, study, {"brief": True, "wait": 60, "seen": "created"})
    params = {"brief": True, "wait": 60, "seen": "created"}
    with live.admin() as admin:  # the same token again: over its own bound
        refused = admin.get(f"/v1/admin/studies/{study}", params=params)
        assert refused.status_code == 429 and "at most 1" in refused.json()["detail"]
    with live.client("auditor") as other:  # another person still waits
        second = threading.Thread(
            target=lambda: other.get(f"/v1/admin/studies/{study}", params=params, timeout=60)
        )
        second.start()
        deadline = time.monotonic() + 20
        while _watch(live).held < 2:
            assert time.monotonic() < deadline, "the other caller's wait was not held"
            time.sleep(0.01)
        with live.admin() as admin:
            admin.post(f"/v1/admin/studies/{study}/cancel").raise_for_status()
        second.join(30)
    thread.join(30)
    assert out["body"]["status"] == "cancelled"
    assert _watch(live).held == 0
