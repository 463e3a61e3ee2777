"""``tutela server results``: a completed study on a loopback deployment (live TLS
coordinator, three real site agents) fetched into a run directory that ``tutela report``,
``tutela comply`` and ``tutela audit verify`` read as they read the demo's; a log rewritten
after download fails both checks; bad requests are one line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.report.test_report import tutela
from tests.server.conftest import Live, small_config
from tests.server.loopback import FEATURES, SITE_NAMES, run_agents
from tutela.fl.config import parse_study
from tutela.governance.results import load_results
from tutela.server.serve import coordinator_verifier_key


def _fetch(live: Live, study: str, out: Path, cwd: Path, role: str = "admin") -> object:
    return tutela(
        "server", "results", study, "--out", str(out), "--coordinator", live.url,
        "--ca", str(live.ca), "--token", live.tokens[role], cwd=cwd,
    )  # fmt: skip


def _one_line_error(proc: object, needle: str) -> None:
    assert proc.returncode != 0  # type: ignore[attr-defined]
    err = proc.stderr.strip()  # type: ignore[attr-defined]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert needle in err, err


def test_results_of_a_real_deployment_read_like_the_demo(live: Live, tmp_path: Path) -> None:
    config = parse_study({**small_config().resolved(), "data": {"sites": 3, "columns": FEATURES}})
    study = live.new_study(config)
    run_agents(live, tmp_path / "sites", study)
    with live.admin() as c:
        status = c.get(f"/v1/admin/studies/{study}").json()
    key = coordinator_verifier_key(live.server.settings.data_dir).encode()
    out = tmp_path / "results"

    fetched = _fetch(live, study, out, tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    results = load_results(out / "results.json")
    # the rounds carry the sites' combined evaluations, as the coordinator combined them
    assert [h.round for h in results.history] == [1, 2]
    for entry, r in zip(results.history, status["rounds"], strict=True):
        assert entry.accuracy == pytest.approx(r["evaluation"]["aggregate"]["accuracy"])
        assert entry.log_loss == pytest.approx(r["evaluation"]["aggregate"]["loss"])
    assert results.federated.accuracy == pytest.approx(
        status["rounds"][-1]["evaluation"]["aggregate"]["accuracy"]
    )
    assert results.sites is not None and {s.site for s in results.sites} == set(SITE_NAMES)
    assert sorted(p.name for p in (out / "site-reports").iterdir()) == [
        f"{s}.json" for s in SITE_NAMES
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics["rounds"]) == ["0", "1", "2"]
    assert (out / "model.safetensors.enc").is_file() and (out / "audit.checkpoint").is_file()
    assert list((out / "cosignatures").glob("*.checkpoint"))  # the sites witnessed the log

    # the same commands as on the demo, under the audit key pinned out of band
    verify = tutela("audit", "verify", str(out / "audit.jsonl"), "--trusted-key", key, cwd=tmp_path)
    assert verify.returncode == 0, verify.stderr
    comply = tutela("comply", str(out), "--trusted-key", key, "--json", cwd=tmp_path)
    assert comply.returncode == 0, comply.stdout + comply.stderr
    checks = {c["id"]: c["status"] for c in json.loads(comply.stdout)["checks"]}
    assert checks["audit-log-verified"] == "pass" and checks["site-reports-verified"] == "pass"
    report = tutela("report", str(out), "--pdf", "no", "--trusted-key", key, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (out / "report.html").is_file()
    # without the pinned key nothing the directory carries is trusted
    unpinned = tutela("comply", str(out), cwd=tmp_path)
    assert unpinned.returncode == 1 and "audit-log-verified" in unpinned.stderr

    # the study completed, so only the role stops these: a data scientist may not read the
    # audit log, an auditor not the model
    for role, permission in (("data-scientist", "audit:read"), ("auditor", "model:read")):
        refused = _fetch(live, study, tmp_path / role, tmp_path, role)
        _one_line_error(refused, "403")
        assert permission in refused.stderr  # type: ignore[attr-defined]
        assert not (tmp_path / role).exists()

    # someone who controls the results directory rewrites one record after download
    log = out / "audit.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    record = json.loads(lines[3])
    record["actor"] = "admin-who-was-never-here"
    lines[3] = json.dumps(record, sort_keys=True) + "\n"
    log.write_text("".join(lines), encoding="utf-8")
    verify = tutela("audit", "verify", str(log), "--trusted-key", key, cwd=tmp_path)
    assert verify.returncode == 1 and "does not verify" in verify.stderr
    comply = tutela("comply", str(out), "--trusted-key", key, "--json", cwd=tmp_path)
    assert comply.returncode == 1
    checks = {c["id"]: c["status"] for c in json.loads(comply.stdout)["checks"]}
    assert checks["audit-log-verified"] == "fail"


def test_results_refuse_unknown_unfinished_and_unpermitted_in_one_line(
    live: Live, tmp_path: Path
) -> None:
    _one_line_error(_fetch(live, "no-such-study", tmp_path / "a", tmp_path), "404")
    study = live.new_study()  # created, never run
    _one_line_error(_fetch(live, study, tmp_path / "b", tmp_path), "is created")
    with live.admin() as c:
        assert c.post(f"/v1/admin/studies/{study}/cancel").status_code == 200
    _one_line_error(_fetch(live, study, tmp_path / "c", tmp_path), "is cancelled")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
