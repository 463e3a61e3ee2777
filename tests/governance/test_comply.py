"""Compliance checks on run directories built here, with and without seeded violations."""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.errors import DataError
from tutela.governance.audit import AuditLog
from tutela.governance.comply import CHECKS, Framework, Status, check_run

GOOD: dict[str, Any] = {
    "config": {
        "study": {"purpose": "readmission-risk"},
        "data": {"columns": ["age", "bmi", "hba1c"]},
        "privacy": {"mode": "client", "epsilon": 2.0, "delta": 1e-6},
        "secure_aggregation": {"protocol": "secagg+"},
    },
    "privacy": {
        "mechanism": "gaussian",
        "accountant": "rdp",
        "epsilon": 1.9,
        "delta": 1e-6,
        "per_site": {"a": {"epsilon": 1.9}, "b": {"epsilon": 1.7}},
    },
    "secure_aggregation": {"protocol": "secagg+", "dropouts": 0},
    "governance": {
        "purpose": "readmission-risk",
        "shared_columns": ["age", "bmi", "hba1c"],
        "minimisation": {"kept": ["age", "bmi", "hba1c"], "dropped": {"name": "identifier"}},
        "encryption_at_rest": True,
        "audit_log": "audit.sqlite",
        "policy": {"dp_required": True, "max_epsilon": 3.0, "secure_aggregation_required": True},
    },
}


def _make_run(root: Path, results: dict[str, Any], *, checkpoint: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps(results))
    log = AuditLog.open(root / "audit.sqlite")
    with log.batch():
        for r in range(5):
            log.append("coordinator", "round:complete", f"study/s1/round/{r}", "success", {"r": r})
    if checkpoint:
        log.checkpoint(Ed25519PrivateKey.generate(), store=False).save(
            root / "audit.checkpoint.json"
        )
    log.close()
    return root


def _statuses(run: Path, fw: str) -> dict[str, Status]:
    return {r.id: r.status for r in check_run(run, fw).results}


@pytest.mark.parametrize("fw", list(Framework))
def test_good_run_passes(tmp_path: Path, fw: Framework) -> None:
    run = _make_run(tmp_path / "run", GOOD)
    report = check_run(run, fw)
    assert report.passed, [r.reason for r in report.results if r.status is Status.FAIL]
    statuses = {r.id: r.status for r in report.results}
    assert statuses.pop("anonymisation-k") is Status.NOT_APPLICABLE
    assert set(statuses.values()) == {Status.PASS}
    assert set(statuses) | {"anonymisation-k"} == {c for c, (_, m) in CHECKS.items() if fw in m}
    audit = next(r for r in report.results if r.id == "audit-log-verified")
    assert audit.evidence["checkpoints_verified"] == 1
    assert all(r.references for r in report.results)


@pytest.mark.parametrize("fw", list(Framework))
def test_seeded_violation_fails_exactly_those_checks(tmp_path: Path, fw: Framework) -> None:
    bad = copy.deepcopy(GOOD)
    bad["governance"]["shared_columns"] = ["age", "bmi", "hba1c", "ssn"]
    bad["governance"]["minimisation"]["kept"].append("ssn")
    bad["config"]["privacy"] = {"mode": "none"}
    bad["privacy"] = None
    run = _make_run(tmp_path / "run", bad)
    report = check_run(run, fw)
    assert not report.passed
    assert set(report.failed) == {"no-direct-identifiers", "dp-required"}
    by_id = {r.id: r for r in report.results}
    assert "ssn" in by_id["no-direct-identifiers"].reason
    assert by_id["dp-required"].reason == "policy requires DP but privacy mode is 'none'"
    assert by_id["dp-epsilon-within-policy"].status is Status.NOT_APPLICABLE


def _variant(tmp_path: Path, mutate: Any) -> Path:
    doc = copy.deepcopy(GOOD)
    mutate(doc)
    return _make_run(tmp_path / "run", doc)


@pytest.mark.parametrize(
    ("mutate", "check", "fragment"),
    [
        (lambda d: d["privacy"].update(epsilon=4.5), "dp-epsilon-within-policy", "4.5 exceeds"),
        (
            lambda d: d["privacy"]["per_site"].update(c={"epsilon": 7.0}),
            "dp-epsilon-within-policy",
            "epsilon 7 exceeds",
        ),
        (
            lambda d: d["governance"]["policy"].update(max_delta=1e-8),
            "dp-epsilon-within-policy",
            "delta 1e-06 exceeds",
        ),
        (
            lambda d: d["config"]["secure_aggregation"].update(protocol="none"),
            "secure-aggregation",
            "required but protocol is 'none'",
        ),
        (lambda d: d.update(secure_aggregation=None), "secure-aggregation", "no report"),
        (
            lambda d: d["governance"].update(encryption_at_rest=False),
            "encryption-at-rest",
            "not encrypted",
        ),
        (
            lambda d: d["governance"].pop("encryption_at_rest"),
            "encryption-at-rest",
            "no evidence",
        ),
        (lambda d: d["governance"].update(purpose="marketing"), "purpose-declared", "differs"),
        (
            lambda d: d["config"]["data"]["columns"].append("religion"),
            "minimisation-applied",
            "used but not kept: religion",
        ),
        (
            lambda d: d["governance"].update(anonymisation={"k_achieved": 3, "k_required": 5}),
            "anonymisation-k",
            "k=3 below the required 5",
        ),
        (
            lambda d: d["governance"].update(audit_log="missing.sqlite"),
            "audit-log-verified",
            "no evidence",
        ),
        (lambda d: d["governance"].pop("policy"), "dp-required", "no evidence"),
    ],
)
def test_each_violation_is_caught(tmp_path: Path, mutate: Any, check: str, fragment: str) -> None:
    report = check_run(_variant(tmp_path, mutate), "gdpr")
    by_id = {r.id: r for r in report.results}
    assert by_id[check].status is Status.FAIL, by_id[check].reason
    assert fragment in by_id[check].reason
    assert not report.passed


def test_anonymisation_passes_when_k_met(tmp_path: Path) -> None:
    run = _variant(tmp_path, lambda d: d["governance"].update(anonymisation={"k_achieved": 7}))
    # default required k is 5 (no k_required, no policy min_k)
    assert _statuses(run, "hipaa")["anonymisation-k"] is Status.PASS


def test_tampered_or_forked_audit_log_fails(tmp_path: Path) -> None:
    run = _make_run(tmp_path / "run", GOOD)
    conn = sqlite3.connect(str(run / "audit.sqlite"), isolation_level=None)
    conn.execute("UPDATE records SET outcome = 'failure' WHERE idx = 2")
    conn.close()
    result = next(r for r in check_run(run, "hipaa").results if r.id == "audit-log-verified")
    assert result.status is Status.FAIL
    assert "record 2" in result.reason
    assert result.evidence["first_bad"] == 2


def test_audit_log_not_matching_the_checkpoint_fails(tmp_path: Path) -> None:
    run = _make_run(tmp_path / "run", GOOD)
    other = _make_run(tmp_path / "other", GOOD)
    (run / "audit.checkpoint.json").write_bytes((other / "audit.checkpoint.json").read_bytes())
    result = next(r for r in check_run(run, "gdpr").results if r.id == "audit-log-verified")
    assert result.status is Status.FAIL
    assert "another log" in result.reason


def test_empty_results_fail_closed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text("{}")
    report = check_run(run, "gdpr")
    statuses = {r.id: r.status for r in report.results}
    not_applicable = {"anonymisation-k", "dp-epsilon-within-policy"}  # no DP, no release
    assert {c for c, s in statuses.items() if s is Status.NOT_APPLICABLE} == not_applicable
    assert {s for c, s in statuses.items() if c not in not_applicable} == {Status.FAIL}
    assert all("no evidence" in r.reason for r in report.results if r.status is Status.FAIL)


def test_reports_render(tmp_path: Path) -> None:
    run = _make_run(tmp_path / "run", GOOD)
    report = check_run(run, "gdpr")
    md = report.to_markdown()
    assert "| no-direct-identifiers | pass | GDPR Art. 5(1)(c); GDPR Art. 25(1) |" in md
    assert "Record of processing" in md
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["passed"] is True
    assert doc["record_of_processing"]["purpose"] == "readmission-risk"
    assert doc["summary"] == {"pass": 9, "fail": 0, "not-applicable": 1}


def test_bad_run_dirs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        check_run(tmp_path / "nope", "gdpr")
    (tmp_path / "r").mkdir()
    with pytest.raises(DataError, match=r"no results\.json"):
        check_run(tmp_path / "r", "gdpr")
    (tmp_path / "r" / "results.json").write_text("[1]")
    with pytest.raises(DataError, match="JSON object"):
        check_run(tmp_path / "r", "gdpr")
    with pytest.raises(ValueError):
        check_run(tmp_path / "r", "pipeda")
