"""The coordinator's dashboard over real TLS: each role sees what its permissions allow and
gets 403 otherwise; the event stream pushes a round event when a round closes; the page
and its assets ship in the package and load nothing from elsewhere."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import httpx
import numpy as np

from tests.report.html_check import check_html
from tests.server.conftest import Live, model_params
from tutela.fl.client import FeatureMoments
from tutela.fl.records import parameters_to_bytes
from tutela.server.coordinator import Coordinator

VIEWS = {
    "studies": "/v1/dashboard/studies",
    "sites": "/v1/dashboard/sites",
    "audit": "/v1/dashboard/audit?q=study",
}
EXPECTED = {  # the built-in RBAC policy
    "admin": {"studies": 200, "sites": 200, "privacy": 200, "audit": 200, "compliance": 200},
    "data-scientist": {
        "studies": 200,
        "sites": 403,
        "privacy": 200,
        "audit": 403,
        "compliance": 403,
    },
    "auditor": {"studies": 200, "sites": 403, "privacy": 200, "audit": 200, "compliance": 200},
}
SITES = ("hospital-1", "hospital-2", "hospital-3")


def test_each_role_sees_what_it_may_and_gets_403_otherwise(live: Live) -> None:
    study = live.new_study()
    paths = {
        **VIEWS,
        "privacy": f"/v1/dashboard/studies/{study}/privacy",
        "compliance": f"/v1/dashboard/studies/{study}/compliance",
    }
    for role, expected in EXPECTED.items():
        with live.client(role) as c:
            me = c.get("/v1/dashboard/me")
            assert me.status_code == 200
            assert me.json()["role"] == role
            assert me.json()["views"] == {v: code == 200 for v, code in expected.items()}
            for view, code in expected.items():
                r = c.get(paths[view])
                assert r.status_code == code, (role, view, r.text)
                if code == 403:
                    assert "lacks permission" in r.json()["detail"]
            studies = c.get("/v1/dashboard/studies").json()
            assert [s["id"] for s in studies] == [study]
    with live.client() as anon:
        for path in [*paths.values(), "/v1/dashboard/me", "/v1/dashboard/events"]:
            assert anon.get(path).status_code == 401
    with live.client(site="hospital-1") as site:  # a site certificate is no person
        assert site.get("/v1/dashboard/studies").status_code == 403
    with live.client("auditor") as c:  # the refusals are in the audit log
        denied = c.get("/v1/dashboard/audit", params={"q": "access.denied"}).json()
        assert any(e["resource"] == "/v1/dashboard/sites" for e in denied["events"])


def test_audit_search_filters_and_names_the_witnessed_checkpoint(live: Live) -> None:
    study = live.new_study()
    with live.client("auditor") as c:
        everything = c.get("/v1/dashboard/audit").json()
        found = c.get("/v1/dashboard/audit", params={"q": study}).json()
        none = c.get("/v1/dashboard/audit", params={"q": "no-such-thing-anywhere"}).json()
    assert found["matches"] >= 1 and found["matches"] < everything["matches"]
    assert all(study in json.dumps(e) for e in found["events"])
    assert none["matches"] == 0 and none["events"] == []


def test_page_and_assets_ship_inside_the_package_and_load_nothing_else(live: Live) -> None:
    with live.client() as anon:  # the page holds no data: no credentials needed
        page = anon.get("/dashboard")
        js = anon.get("/dashboard/static/dashboard.js")
        css = anon.get("/dashboard/static/dashboard.css")
        assert anon.get("/dashboard/static/..%2Fviews.py").status_code == 404
        assert anon.get("/dashboard/static/other.js").status_code == 404
    for r in (page, js, css):
        assert r.status_code == 200
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert "connect-src 'self'" in r.headers["content-security-policy"]
    html = check_html(page.text)
    assert html.problems == []
    # same-origin paths, in-page anchors, and an empty icon (no request for /favicon.ico)
    urls = [v for _, _, v in html.urls]
    assert all(v.startswith(("/dashboard/static/", "#")) or v == "data:," for v in urls), urls
    assert not re.search(r"https?://", page.text + css.text)
    # the only URL in the script is the SVG namespace, which is a name, not a load
    assert set(re.findall(r"https?://[^\s\"']+", js.text)) == {"http://www.w3.org/2000/svg"}
    assert ".innerHTML" not in js.text  # data is written as text only


def _join_and_open_round_one(co: Coordinator, study: str) -> None:
    for i, site in enumerate(SITES):
        moments = FeatureMoments(100 * (i + 1), np.ones(7), np.full(7, 3.0))
        co.answer_invitation(site, study, accept=True, num_examples=100 * (i + 1), moments=moments)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = co.study_status(study)
        if status["status"] == "running" and status["rounds"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"round 1 never opened: {co.study_status(study)['status']}")


def _submit_round(co: Coordinator, study: str, round_no: int) -> None:
    for i, site in enumerate(SITES):
        n = 100 * (i + 1)
        params = {k: np.full_like(v, 0.1 * (i + 1)) for k, v in model_params().items()}
        body = parameters_to_bytes(
            params, metadata={"study": study, "round": str(round_no), "num_examples": str(n)}
        )
        co.submit(site, study, round_no, "fit", f"{site}-{round_no}", body)


def _read_events(client: httpx.Client, out: list[tuple[str, dict[str, Any]]]) -> None:
    with client.stream("GET", "/v1/dashboard/events", timeout=120) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append((kind, json.loads(line[6:])))
                if kind == "study" and out[-1][1]["status"] == "completed":
                    return


def test_the_event_stream_pushes_each_round_as_it_closes(live: Live) -> None:
    """A real coordinator runs a two-round study; a data scientist's stream receives round 1
    when it closes, before round 2 is even submitted, then round 2 and the completion."""
    co = live.server.coordinator
    assert co is not None
    study = live.new_study()
    with live.client("data-scientist") as c:
        assert c.post(f"/v1/admin/studies/{study}/start").status_code == 200
        _join_and_open_round_one(co, study)
        events: list[tuple[str, dict[str, Any]]] = []
        reader = threading.Thread(target=_read_events, args=(c, events), daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while not events and time.monotonic() < deadline:  # the snapshot: stream is open
            time.sleep(0.05)
        assert events and events[0][0] == "snapshot"
        assert events[0][1][study] == ["running", 0]
        _submit_round(co, study, 1)
        deadline = time.monotonic() + 60
        while ("round", {"study": study, "round": 1}) not in events:
            assert time.monotonic() < deadline, events
            time.sleep(0.05)
        assert not any(k == "round" and e["round"] == 2 for k, e in events)
        while co.study_status(study)["current_round"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _submit_round(co, study, 2)
        reader.join(timeout=60)
    assert not reader.is_alive()
    rounds = [e["round"] for k, e in events if k == "round"]
    assert rounds == [1, 2]
    assert events[-1] == ("study", {"study": study, "status": "completed"})


def test_the_event_stream_ends_when_no_study_is_live(live: Live) -> None:
    """With nothing running the stream sends its snapshot and a retry, then ends (the page
    reconnects), so an idle dashboard holds no connection open."""
    live.new_study()  # created, not started
    with live.client("auditor") as c:
        r = c.get("/v1/dashboard/events", timeout=30)
    assert r.status_code == 200
    assert r.text.startswith("retry: ")
    assert "event: snapshot" in r.text and "event: round" not in r.text


def test_compliance_per_framework_for_a_completed_study(live: Live) -> None:
    co = live.server.coordinator
    assert co is not None
    study = live.new_study()
    with live.client("auditor") as c:  # not run yet: nothing to check, and the page says so
        early = c.get(f"/v1/dashboard/studies/{study}/compliance").json()
    assert early["frameworks"] is None and "is created" in early["note"]
    with live.admin() as c:
        assert c.post(f"/v1/admin/studies/{study}/start").status_code == 200
    _join_and_open_round_one(co, study)
    for round_no in (1, 2):
        _wait_round_open(co, study, round_no)
        _submit_round(co, study, round_no)
    _wait_status(co, study, "completed")
    with live.client("auditor") as c:
        got = c.get(f"/v1/dashboard/studies/{study}/compliance")
        assert got.status_code == 200, got.text
        result = got.json()
    assert set(result["frameworks"]) == {"gdpr", "hipaa", "ccpa"}
    gdpr = {c["id"]: c for c in result["frameworks"]["gdpr"]["checks"]}
    # the coordinator's own log verifies under its own key; the references name provisions
    assert gdpr["audit-log-verified"]["status"] == "pass"
    assert any("Art." in ref for ref in gdpr["audit-log-verified"]["references"])
    hipaa = {c["id"]: c for c in result["frameworks"]["hipaa"]["checks"]}
    assert any("CFR" in ref for ref in hipaa["audit-log-verified"]["references"])
    assert "tutela comply" in result["note"]

    # the log edited on the coordinator's disk: the same view now fails the check
    log = live.server.settings.data_dir / "audit.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    record = json.loads(lines[2])
    record["actor"] = "someone-else"
    lines[2] = json.dumps(record, sort_keys=True) + "\n"
    log.write_text("".join(lines), encoding="utf-8")
    with live.client("admin") as c:
        after = c.get(f"/v1/dashboard/studies/{study}/compliance").json()
    checks = {c["id"]: c for c in after["frameworks"]["gdpr"]["checks"]}
    assert checks["audit-log-verified"]["status"] == "fail"
    assert after["frameworks"]["gdpr"]["passed"] is False


def _wait_round_open(co: Coordinator, study: str, round_no: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rounds = co.study_status(study)["rounds"]
        if any(r["round"] == round_no and r["status"] == "open" for r in rounds):
            return
        time.sleep(0.05)
    raise AssertionError(f"round {round_no} never opened")


def _wait_status(co: Coordinator, study: str, status: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if co.study_status(study)["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"study never became {status}: {co.study_status(study)['status']}")
