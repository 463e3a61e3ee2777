"""Compliance checks on run directories built here, with and without seeded violations."""

from __future__ import annotations

import copy
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.errors import DataError
from tutela.governance.audit import AuditLog, VerifierKey
from tutela.governance.comply import (
    CHECKS,
    Framework,
    Status,
    StudyClaim,
    check_run,
    policy_shortfalls,
)
from tutela.governance.site_report import sign_site_report
from tutela.governance.trust import pin

AUDIT_KEY = Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)
"""Signs the runs' audit checkpoints; pinned in the trust store every test here uses."""


@pytest.fixture(autouse=True)
def _audit_key_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "trusted-audit-keys"
    pin(VerifierKey.of(AUDIT_KEY), store)
    monkeypatch.setenv("TUTELA_TRUST_STORE", str(store))


STRONG_SITE_POLICY: dict[str, Any] = {
    "site": "a",
    "purposes": {"readmission-risk": {"columns": ["age", "bmi", "hba1c"]}},
    "floor": {
        "dp_required": True,
        "max_epsilon": 2.0,
        "max_delta": 1e-6,
        "secure_aggregation_required": True,
        "min_k": 5,
    },
}


SITE_KEYS = {
    name: Ed25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32)
    for i, name in enumerate(("a", "b"))
}
"""Each site's identity key (fixed, so the run documents below are the same every time)."""


def _site_key_hex(site: str) -> str:
    return SITE_KEYS[site].public_key().public_bytes_raw().hex()


def _site_report(
    site: str, policy: dict[str, Any], key: Ed25519PrivateKey | None = None
) -> dict[str, Any]:
    """A site report signed by the site's identity key (or by ``key``)."""
    ledger = {"scope": f"site:{site}", "spent_epsilon": 1.8}
    return sign_site_report(site, {**policy, "site": site}, ledger, key or SITE_KEYS[site])


def _site_privacy(epsilon: float) -> dict[str, Any]:
    return {"epsilon": epsilon, "delta": 1e-6, "noise_multiplier": 1.1}


def _metrics() -> dict[str, Any]:
    return {"accuracy": 0.8, "auc": 0.85, "log_loss": 0.45}


GOOD: dict[str, Any] = {
    "schema_version": 1,
    "run_dir": "run",
    "dataset": {
        "name": "readmissions",
        "rows": 400,
        "sites": 2,
        "features": ["age", "bmi", "hba1c"],
        "outcome": "readmitted",
        "train_rows_per_site": {"a": 150, "b": 150},
        "test_rows": 100,
    },
    "rounds": 1,
    "history": [
        {
            "round": 1,
            "status": "aggregated",
            "sites": ["a", "b"],
            "failed": [],
            "num_examples": 300,
            "loss": 0.45,
            **_metrics(),
        }
    ],
    "federated": _metrics(),
    "centralized": None,
    "local_only": None,
    "local_only_per_site": None,
    "config": {
        "study": {"name": "s1", "purpose": "readmission-risk", "seed": 0},
        "data": {"dataset": "readmissions", "columns": ["age", "bmi", "hba1c"], "sites": 2},
        "privacy": {"mode": "sample", "epsilon": 2.0, "delta": 1e-6},
        "secure_aggregation": {"protocol": "secagg+"},
    },
    "privacy": {
        "mode": "sample",
        "level": "record",
        "mechanism": "DP-SGD",
        "neighbouring": "add/remove one record",
        "accountant": "rdp",
        "epsilon": 1.9,
        "target_epsilon": 2.0,
        "delta": 1e-6,
        "max_grad_norm": 1.0,
        "per_site": {"a": _site_privacy(1.9), "b": _site_privacy(1.7)},
        "ledger": None,
    },
    "secure_aggregation": {
        "protocol": "secagg+",
        "n": 2,
        "k": 1,
        "threshold": 2,
        "min_survivors": 2,
        "modulus_bits": 32,
        "rounds": 1,
        "dropped_per_stage": {"masked_input": 0},
        "quantization_error_bound": 1e-5,
    },
    "governance": {
        "purpose": "readmission-risk",
        "shared_columns": ["age", "bmi", "hba1c"],
        "minimisation": {
            "purpose": "readmission-risk",
            "requested": ["age", "bmi", "hba1c", "name"],
            "kept": ["age", "bmi", "hba1c"],
            "dropped": {"name": "a direct identifier"},
        },
        "encryption_at_rest": True,
        "audit_log": "audit.sqlite",
        "policy": {"dp_required": True, "max_epsilon": 3.0, "secure_aggregation_required": True},
    },
    "sites": [_site_report("a", STRONG_SITE_POLICY), _site_report("b", STRONG_SITE_POLICY)],
    "site_keys": {"a": _site_key_hex("a"), "b": _site_key_hex("b")},
    "deployment": None,
    "elapsed_s": 1.5,
}


def _make_run(root: Path, results: dict[str, Any], *, checkpoint: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps(results))
    log = AuditLog.open(root / "audit.sqlite")
    with log.batch():
        for r in range(5):
            log.append("coordinator", "round:complete", f"study/s1/round/{r}", "success", {"r": r})
    if checkpoint:
        log.checkpoint(AUDIT_KEY, store=False).save(root / "audit.checkpoint")
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
    bad["config"]["privacy"] = {"mode": "none", "epsilon": None, "delta": 1e-5}
    bad["privacy"] = None
    bad["sites"] = None
    bad["site_keys"] = None
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
            lambda d: d["privacy"]["per_site"].update(c=_site_privacy(7.0)),
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
        (lambda d: d.update(governance=None), "encryption-at-rest", "no evidence"),
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
        (lambda d: d["governance"].update(minimisation=None), "minimisation-applied", "missing"),
        (lambda d: d.update(governance=None), "dp-required", "no evidence"),
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
    (run / "audit.checkpoint").write_bytes((other / "audit.checkpoint").read_bytes())
    result = next(r for r in check_run(run, "gdpr").results if r.id == "audit-log-verified")
    assert result.status is Status.FAIL
    assert "another log" in result.reason


def test_empty_results_are_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text("{}")
    with pytest.raises(DataError, match=r"not a valid results document: run_dir: Field required"):
        check_run(run, "gdpr")


def test_run_without_governance_fails_closed(tmp_path: Path) -> None:
    run = _variant(tmp_path, lambda d: d.update(governance=None, privacy=None, sites=None))
    statuses = {r.id: r.status for r in check_run(run, "gdpr").results}
    assert {c for c, s in statuses.items() if s is Status.NOT_APPLICABLE} == {
        "anonymisation-k",
        "dp-epsilon-within-policy",
        "site-policy-floor",
    }
    assert {s for c, s in statuses.items() if s is not Status.NOT_APPLICABLE} == {Status.FAIL}


def test_reports_render(tmp_path: Path) -> None:
    run = _make_run(tmp_path / "run", GOOD)
    report = check_run(run, "gdpr")
    md = report.to_markdown()
    assert "| no-direct-identifiers | pass | GDPR Art. 5(1)(c); GDPR Art. 25(1) |" in md
    assert "Record of processing" in md
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["passed"] is True
    assert doc["record_of_processing"]["purpose"] == "readmission-risk"
    assert doc["summary"] == {"pass": 11, "fail": 0, "not-applicable": 1}


def test_bad_run_dirs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        check_run(tmp_path / "nope", "gdpr")
    (tmp_path / "r").mkdir()
    with pytest.raises(DataError, match=r"no results\.json"):
        check_run(tmp_path / "r", "gdpr")
    (tmp_path / "r" / "results.json").write_text("[1]")
    with pytest.raises(DataError, match="JSON object"):
        check_run(tmp_path / "r", "gdpr")
    (tmp_path / "r" / "results.json").write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        check_run(tmp_path / "r", "gdpr")
    with pytest.raises(ValueError):
        check_run(tmp_path / "r", "pipeda")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(notes="hand-written"), "notes: unknown key"),
        (lambda d: d["governance"].update(encrypted=True), "governance.encrypted: unknown key"),
        (lambda d: d["privacy"].update(epsilon="1.9"), "privacy.sample.epsilon: Input should be"),
        (lambda d: d.update(rounds="1"), "rounds: Input should be a valid integer"),
        (
            lambda d: d["governance"].pop("encryption_at_rest"),
            "governance.encryption_at_rest: Field required",
        ),
        (
            lambda d: d["history"][0].update(status="ok"),
            "history.0.status: Input should be 'aggregated' or 'quorum-not-met'",
        ),
    ],
)
def test_hand_edited_results_are_refused_naming_the_field(
    tmp_path: Path, mutate: Any, field: str
) -> None:
    run = _variant(tmp_path, mutate)
    with pytest.raises(DataError) as info:
        check_run(run, "gdpr")
    message = str(info.value)
    assert "\n" not in message
    assert f"is not a valid results document: {field}" in message


def test_comply_command_refuses_an_invalid_results_file_in_one_line(tmp_path: Path) -> None:
    run = _variant(tmp_path, lambda d: d["federated"].update(f1=0.7))
    r = subprocess.run(
        [sys.executable, "-m", "tutela", "comply", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and "federated.f1: unknown key" in lines[0]


@pytest.mark.parametrize(
    ("floor", "fragment"),
    [
        ({"dp_required": False}, "does not require DP"),
        ({"max_epsilon": 3.0}, "allows epsilon up to 3 (the study claims 2)"),
        ({"max_delta": 1e-5}, "allows delta up to 1e-05 (the study claims 1e-06)"),
        ({"max_epsilon": None}, "sets no epsilon bound"),
        ({"secure_aggregation_required": False}, "does not require secure aggregation"),
    ],
)
def test_a_site_policy_weaker_than_the_study_claims_fails(
    tmp_path: Path, floor: dict[str, Any], fragment: str
) -> None:
    weak = copy.deepcopy(STRONG_SITE_POLICY)
    weak["floor"].update(floor)
    run = _variant(tmp_path, lambda d: d["sites"].__setitem__(1, _site_report("b", weak)))
    for fw in Framework:
        report = check_run(run, fw)
        assert report.failed == ("site-policy-floor",)
    result = next(r for r in check_run(run, "gdpr").results if r.id == "site-policy-floor")
    assert result.reason.startswith("site policy weaker than the study claims: b ")
    assert fragment in result.reason
    assert set(result.evidence["shortfalls"]) == {"b"}


def test_a_site_policy_without_a_floor_is_weaker_on_every_claim(tmp_path: Path) -> None:
    bare = {k: v for k, v in STRONG_SITE_POLICY.items() if k != "floor"}
    run = _variant(tmp_path, lambda d: d["sites"].__setitem__(0, _site_report("a", bare)))
    result = next(r for r in check_run(run, "gdpr").results if r.id == "site-policy-floor")
    assert result.status is Status.FAIL
    assert result.evidence["shortfalls"]["a"] == [
        "does not require DP",
        "sets no epsilon bound",
        "sets no delta bound",
        "does not require secure aggregation",
    ]


def test_policy_shortfalls_compare_against_the_claim() -> None:
    strong = STRONG_SITE_POLICY
    no_dp = StudyClaim(dp=False, epsilon=None, delta=None, secure_aggregation=False)
    assert policy_shortfalls({"floor": {"dp_required": False}}, no_dp) == []
    claim = StudyClaim(dp=True, epsilon=2.0, delta=1e-6, secure_aggregation=True)
    assert policy_shortfalls(strong, claim) == []
    tighter = StudyClaim(dp=True, epsilon=1.5, delta=1e-6, secure_aggregation=False)
    assert policy_shortfalls(strong, tighter) == ["allows epsilon up to 2 (the study claims 1.5)"]


def test_site_reports_are_not_applicable_until_sites_sign(tmp_path: Path) -> None:
    run = _variant(tmp_path, lambda d: d.update(sites=None, site_keys=None))
    assert _statuses(run, "gdpr")["site-policy-floor"] is Status.NOT_APPLICABLE
    assert _statuses(run, "gdpr")["site-reports-verified"] is Status.NOT_APPLICABLE
    assert check_run(run, "gdpr").passed


def test_a_site_ledger_that_enforced_the_claimed_budget_meets_the_dp_claim() -> None:
    """A standing floor below the claim is met by the site's own signed ledger for this study,
    but only when that ledger is private, no looser than the claim and not overspent."""
    lax = {"floor": {"dp_required": False, "max_epsilon": 10.0, "max_delta": 1e-5}}
    claim = StudyClaim(dp=True, epsilon=3.0, delta=1e-5, secure_aggregation=False)
    enforced = {"private": True, "budget_epsilon": 3.0, "delta": 1e-5, "spent_epsilon": 2.9}
    assert policy_shortfalls(lax, claim, enforced) == []
    assert policy_shortfalls(lax, claim, None) != []
    looser = {**enforced, "budget_epsilon": 5.0}
    assert "does not require DP" in policy_shortfalls(lax, claim, looser)
    overspent = {**enforced, "spent_epsilon": 3.5}
    assert policy_shortfalls(lax, claim, overspent) != []
    assert policy_shortfalls(lax, claim, {"private": False}) != []
    wider_delta = {**enforced, "delta": 1e-3}
    assert policy_shortfalls(lax, claim, wider_delta) != []
