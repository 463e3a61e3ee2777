"""Compliance checks: what a run actually did, checked against GDPR, HIPAA and CCPA controls.

The checks read only the run directory the FL engine writes; evidence that is missing
makes a check fail with reason "no evidence" (fail closed). Reports state which technical
controls were evidenced, never that a study "is compliant".

Run directory schema (keys read; anything else is ignored)::

    RUN_DIR/results.json
      config.study.purpose                  str    purpose the study declared
      config.data.columns                   [str]  feature columns the study used
      config.privacy.mode                   "none" | "sample" | "client"
      config.privacy.epsilon, .delta        numbers (targets)
      config.secure_aggregation.protocol    "none" | "secagg+" | "ckks"
      privacy                               null | {mechanism, accountant, epsilon, delta,
                                                    per_site: {site: {epsilon, ...} | number}}
      secure_aggregation                    null | report object
      governance.purpose                    str
      governance.shared_columns             [str]  columns whose information left the sites
      governance.minimisation               {kept: [str], dropped: [str] | {col: reason}}
      governance.encryption_at_rest         bool
      governance.audit_log                  path relative to RUN_DIR (e.g. "audit.sqlite")
      governance.policy                     {dp_required: bool, max_epsilon?: number,
                                             min_epsilon?: number, max_delta?: number,
                                             secure_aggregation_required: bool, min_k?: int}
      governance.anonymisation              optional {k_achieved: int, k_required?|k?: int, ...}
    RUN_DIR/<governance.audit_log>          a Tutela audit log (SQLite or JSON lines)
    RUN_DIR/audit.checkpoint.json           optional signed checkpoint the log must match

Checks (id: what passes):

- ``purpose-declared``: ``governance.purpose`` is set and equals ``config.study.purpose``.
- ``minimisation-applied``: a minimisation record exists and every used/shared column is
  among its ``kept`` columns.
- ``no-direct-identifiers``: no shared or used column is a direct identifier by name
  (:func:`tutela.governance.minimisation.is_direct_identifier`).
- ``dp-required``: when the policy requires DP, DP was on and a privacy report exists
  (not applicable when the policy does not require DP).
- ``dp-epsilon-within-policy``: when DP was on and the policy bounds epsilon/delta, the
  spent epsilon (overall and per site) and delta are within the bounds.
- ``secure-aggregation``: when the policy requires it, SecAgg+ ran and reported.
- ``audit-log-verified``: the audit log exists and verifies (and matches the checkpoint).
- ``encryption-at-rest``: ``governance.encryption_at_rest`` is true.
- ``anonymisation-k``: when record-level data was shared (an anonymisation report exists),
  ``k_achieved`` reaches the required k (``k_required``, else ``k``, else the policy's
  ``min_k``, else 5).
- ``record-of-processing``: a record of processing (GDPR Art. 30) can be generated from the
  run: purpose, data categories and security measures are all evidenced.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from tutela.errors import AuditError, DataError
from tutela.governance.audit import Checkpoint, verify_log
from tutela.governance.minimisation import is_direct_identifier

__all__ = [
    "CHECKS",
    "CheckResult",
    "ComplianceReport",
    "Framework",
    "Status",
    "check_run",
]


class Framework(StrEnum):
    """Regulatory frameworks the checks are mapped to."""

    GDPR = "gdpr"
    HIPAA = "hipaa"
    CCPA = "ccpa"


class Status(StrEnum):
    """Outcome of one check."""

    PASS = "pass"  # noqa: S105 - a check outcome, not a password
    FAIL = "fail"
    NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict, with the evidence it read and the provisions it maps to."""

    id: str
    title: str
    status: Status
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    references: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "reason": self.reason,
            "references": list(self.references),
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class ComplianceReport:
    """All checks of one framework on one run."""

    framework: Framework
    run_dir: str
    results: tuple[CheckResult, ...]
    record_of_processing: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(r.status is not Status.FAIL for r in self.results)

    @property
    def failed(self) -> tuple[str, ...]:
        """Ids of failed checks."""
        return tuple(r.id for r in self.results if r.status is Status.FAIL)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        counts = {s.value: sum(r.status is s for r in self.results) for s in Status}
        return {
            "framework": self.framework.value,
            "run_dir": self.run_dir,
            "passed": self.passed,
            "summary": counts,
            "checks": [r.to_json() for r in self.results],
            "record_of_processing": dict(self.record_of_processing),
        }

    def to_markdown(self) -> str:
        """A Markdown report."""
        name = self.framework.value.upper()
        verdict = (
            "all evidenced controls passed" if self.passed else "FAILED: " + ", ".join(self.failed)
        )
        lines = [
            f"# {name} controls report",
            "",
            f"Run: `{self.run_dir}`  ",
            f"Result: **{verdict}**",
            "",
            "Technical controls evidenced by the run; this is not a legal opinion.",
            "",
            "| Check | Status | Provisions | Reason |",
            "|---|---|---|---|",
        ]
        for r in self.results:
            reason = r.reason.replace("|", "\\|")
            lines.append(f"| {r.id} | {r.status.value} | {'; '.join(r.references)} | {reason} |")
        lines += ["", "## Evidence", ""]
        for r in self.results:
            lines.append(f"- **{r.id}**: `{json.dumps(dict(r.evidence), sort_keys=True)}`")
        if self.record_of_processing:
            lines += [
                "",
                "## Record of processing (generated)",
                "",
                "```json",
                json.dumps(dict(self.record_of_processing), indent=2, sort_keys=True),
                "```",
            ]
        return "\n".join(lines) + "\n"


# evidence access ---------------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def _get(doc: Any, dotted: str) -> Any:
    node = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING
        node = node[part]
    return node


def _ev(value: Any) -> Any:
    return None if value is MISSING else value


def _str_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@dataclass(frozen=True)
class _Run:
    path: Path
    results: Mapping[str, Any]

    def get(self, dotted: str) -> Any:
        return _get(self.results, dotted)


def _result(
    cid: str, status: Status, reason: str, evidence: Mapping[str, Any] | None = None
) -> CheckResult:
    return CheckResult(cid, TITLES[cid], status, reason, evidence or {})


def _no_evidence(cid: str, what: str, evidence: Mapping[str, Any] | None = None) -> CheckResult:
    return _result(cid, Status.FAIL, f"no evidence: {what}", evidence)


# the checks ---------------------------------------------------------------------------------


def _purpose(run: _Run) -> CheckResult:
    cid = "purpose-declared"
    gov, cfg = run.get("governance.purpose"), run.get("config.study.purpose")
    ev = {"governance.purpose": _ev(gov), "config.study.purpose": _ev(cfg)}
    if not isinstance(gov, str) or not gov.strip():
        return _no_evidence(cid, "governance.purpose is missing or empty", ev)
    if cfg is not MISSING and cfg != gov:
        return _result(cid, Status.FAIL, f"declared purpose {cfg!r} differs from {gov!r}", ev)
    return _result(cid, Status.PASS, f"purpose {gov!r} declared", ev)


def _used_columns(run: _Run) -> tuple[list[str] | None, list[str] | None]:
    return _str_list(run.get("governance.shared_columns")), _str_list(
        run.get("config.data.columns")
    )


def _minimisation(run: _Run) -> CheckResult:
    cid = "minimisation-applied"
    record = run.get("governance.minimisation")
    shared, used = _used_columns(run)
    ev = {"minimisation": _ev(record), "shared_columns": shared, "config.data.columns": used}
    if not isinstance(record, Mapping):
        return _no_evidence(cid, "governance.minimisation is missing", ev)
    kept = _str_list(record.get("kept"))
    dropped = record.get("dropped")
    if kept is None or not isinstance(dropped, list | Mapping):
        return _no_evidence(cid, "minimisation record lacks kept/dropped", ev)
    if shared is None:
        return _no_evidence(cid, "governance.shared_columns is missing", ev)
    outside = sorted((set(shared) | set(used or [])) - set(kept))
    if outside:
        return _result(cid, Status.FAIL, f"columns used but not kept: {', '.join(outside)}", ev)
    n_dropped = len(dropped)
    return _result(cid, Status.PASS, f"{len(kept)} columns kept, {n_dropped} dropped", ev)


def _identifiers(run: _Run) -> CheckResult:
    cid = "no-direct-identifiers"
    shared, used = _used_columns(run)
    ev = {"shared_columns": shared, "config.data.columns": used}
    if shared is None:
        return _no_evidence(cid, "governance.shared_columns is missing", ev)
    found = sorted({c for c in [*shared, *(used or [])] if is_direct_identifier(c)})
    if found:
        return _result(
            cid,
            Status.FAIL,
            f"direct identifiers in shared columns: {', '.join(found)}",
            {**ev, "identifiers": found},
        )
    return _result(cid, Status.PASS, f"none of {len(shared)} shared columns is an identifier", ev)


def _dp_on(run: _Run) -> bool:
    mode = run.get("config.privacy.mode")
    return isinstance(mode, str) and mode != "none" and isinstance(run.get("privacy"), Mapping)


def _dp_required(run: _Run) -> CheckResult:
    cid = "dp-required"
    policy = run.get("governance.policy")
    mode, report = run.get("config.privacy.mode"), run.get("privacy")
    ev = {
        "policy.dp_required": _ev(_get(policy, "dp_required")),
        "config.privacy.mode": _ev(mode),
        "privacy.mechanism": _ev(_get(report, "mechanism")),
        "privacy.epsilon": _ev(_get(report, "epsilon")),
    }
    required = _get(policy, "dp_required")
    if not isinstance(required, bool):
        return _no_evidence(cid, "governance.policy.dp_required is missing", ev)
    if not required:
        return _result(cid, Status.NOT_APPLICABLE, "the policy does not require DP", ev)
    if mode not in ("sample", "client"):
        return _result(
            cid, Status.FAIL, f"policy requires DP but privacy mode is {_ev(mode)!r}", ev
        )
    if not isinstance(report, Mapping):
        return _result(cid, Status.FAIL, "DP configured but the run has no privacy report", ev)
    return _result(cid, Status.PASS, f"DP on ({mode}-level)", ev)


def _dp_epsilon(run: _Run) -> CheckResult:
    cid = "dp-epsilon-within-policy"
    policy = run.get("governance.policy")
    report = run.get("privacy")
    bounds = {k: _number(_get(policy, k)) for k in ("max_epsilon", "min_epsilon", "max_delta")}
    ev: dict[str, Any] = {"policy": {k: v for k, v in bounds.items() if v is not None}}
    if not _dp_on(run):
        return _result(cid, Status.NOT_APPLICABLE, "DP was off (see dp-required)", ev)
    if all(v is None for v in bounds.values()):
        return _result(cid, Status.NOT_APPLICABLE, "the policy sets no epsilon/delta bound", ev)
    eps = _number(_get(report, "epsilon"))
    delta = _number(_get(report, "delta"))
    per_site = _get(report, "per_site")
    site_eps: dict[str, float] = {}
    if isinstance(per_site, Mapping):
        for site, value in per_site.items():
            number = (
                _number(value) if not isinstance(value, Mapping) else _number(value.get("epsilon"))
            )
            if number is not None:
                site_eps[str(site)] = number
    ev.update({"privacy.epsilon": eps, "privacy.delta": delta, "per_site_epsilon": site_eps})
    if eps is None:
        return _no_evidence(cid, "privacy.epsilon is missing", ev)
    worst = max([eps, *site_eps.values()])
    problems = []
    if bounds["max_epsilon"] is not None and worst > bounds["max_epsilon"]:
        problems.append(f"epsilon {worst:g} exceeds the policy maximum {bounds['max_epsilon']:g}")
    if bounds["min_epsilon"] is not None and eps < bounds["min_epsilon"]:
        problems.append(f"epsilon {eps:g} is below the policy minimum {bounds['min_epsilon']:g}")
    if bounds["max_delta"] is not None:
        if delta is None:
            problems.append("no evidence: privacy.delta is missing")
        elif delta > bounds["max_delta"]:
            problems.append(f"delta {delta:g} exceeds the policy maximum {bounds['max_delta']:g}")
    if problems:
        return _result(cid, Status.FAIL, "; ".join(problems), ev)
    return _result(cid, Status.PASS, f"epsilon {worst:g} within policy", ev)


def _secagg(run: _Run) -> CheckResult:
    cid = "secure-aggregation"
    required = run.get("governance.policy.secure_aggregation_required")
    proto, report = run.get("config.secure_aggregation.protocol"), run.get("secure_aggregation")
    ev = {
        "policy.secure_aggregation_required": _ev(required),
        "config.secure_aggregation.protocol": _ev(proto),
        "secure_aggregation_report": isinstance(report, Mapping),
    }
    if not isinstance(required, bool):
        return _no_evidence(cid, "governance.policy.secure_aggregation_required is missing", ev)
    if not required:
        return _result(cid, Status.NOT_APPLICABLE, "the policy does not require it", ev)
    names = {"secagg+": "SecAgg+", "ckks": "CKKS encrypted aggregation"}
    if proto not in names:
        return _result(cid, Status.FAIL, f"required but protocol is {_ev(proto)!r}", ev)
    if not isinstance(report, Mapping):
        return _result(cid, Status.FAIL, f"{names[proto]} configured but the run has no report", ev)
    return _result(cid, Status.PASS, f"{names[proto]} ran and reported", ev)


def _audit(run: _Run) -> CheckResult:
    cid = "audit-log-verified"
    rel = run.get("governance.audit_log")
    ev: dict[str, Any] = {"governance.audit_log": _ev(rel)}
    if not isinstance(rel, str) or not rel:
        return _no_evidence(cid, "governance.audit_log is missing", ev)
    path = run.path / rel
    if not path.is_file():
        return _no_evidence(cid, f"audit log {rel} not found in the run directory", ev)
    checkpoints = []
    cp_path = run.path / "audit.checkpoint.json"
    try:
        if cp_path.is_file():
            checkpoints.append(Checkpoint.load(cp_path))
            ev["checkpoint"] = "audit.checkpoint.json"
        report = verify_log(path, checkpoints)
    except AuditError as exc:
        return _result(cid, Status.FAIL, f"audit log unreadable: {exc}", ev)
    ev.update(report.to_json())
    if not report.ok:
        return _result(cid, Status.FAIL, f"audit log does not verify: {report.problem}", ev)
    extra = f", consistent with {report.checkpoints_verified} checkpoint(s)"
    return _result(cid, Status.PASS, f"{report.size} records verified{extra}", ev)


def _encryption(run: _Run) -> CheckResult:
    cid = "encryption-at-rest"
    value = run.get("governance.encryption_at_rest")
    ev = {"governance.encryption_at_rest": _ev(value)}
    if not isinstance(value, bool):
        return _no_evidence(cid, "governance.encryption_at_rest is missing", ev)
    if not value:
        return _result(cid, Status.FAIL, "stored artefacts were not encrypted", ev)
    return _result(cid, Status.PASS, "stored artefacts encrypted (AES-256-GCM envelope)", ev)


def _anonymisation(run: _Run) -> CheckResult:
    cid = "anonymisation-k"
    anon = run.get("governance.anonymisation")
    ev: dict[str, Any] = {"governance.anonymisation": _ev(anon)}
    if anon is MISSING or anon is None:
        return _result(cid, Status.NOT_APPLICABLE, "no record-level data was shared", ev)
    if not isinstance(anon, Mapping):
        return _no_evidence(cid, "governance.anonymisation is not a report", ev)
    achieved = anon.get("k_achieved")
    required = anon.get("k_required", anon.get("k", run.get("governance.policy.min_k")))
    if required is MISSING or required is None:
        required = 5
    ev["k_required"] = required
    if not isinstance(achieved, int) or isinstance(achieved, bool):
        return _no_evidence(cid, "k_achieved is missing", ev)
    if not isinstance(required, int) or isinstance(required, bool):
        return _no_evidence(cid, "required k is not an integer", ev)
    if achieved < required:
        return _result(cid, Status.FAIL, f"k={achieved} below the required {required}", ev)
    return _result(cid, Status.PASS, f"shared records are {achieved}-anonymous (>= {required})", ev)


def _ropa(run: _Run) -> dict[str, Any]:
    shared, used = _used_columns(run)
    return {
        "purpose": _ev(run.get("governance.purpose")),
        "data_categories": shared,
        "features_used": used,
        "recipients": ["study coordinator (aggregate model updates only)"],
        "security_measures": {
            "differential_privacy": _ev(run.get("config.privacy.mode")),
            "secure_aggregation": _ev(run.get("config.secure_aggregation.protocol")),
            "encryption_at_rest": _ev(run.get("governance.encryption_at_rest")),
            "audit_log": _ev(run.get("governance.audit_log")),
        },
    }


def _record_of_processing(run: _Run) -> CheckResult:
    cid = "record-of-processing"
    ropa = _ropa(run)
    missing = [k for k in ("purpose", "data_categories") if not ropa[k]]
    missing += [f"security_measures.{k}" for k, v in ropa["security_measures"].items() if v is None]
    if missing:
        return _no_evidence(cid, "cannot describe " + ", ".join(missing), {"record": ropa})
    return _result(
        cid, Status.PASS, "record of processing generated from the run", {"record": ropa}
    )


TITLES: Mapping[str, str] = {
    "purpose-declared": "Purpose declared",
    "minimisation-applied": "Data minimised to the purpose",
    "no-direct-identifiers": "No direct identifiers left the sites",
    "dp-required": "Differential privacy on where policy requires it",
    "dp-epsilon-within-policy": "Privacy loss within policy",
    "secure-aggregation": "Secure aggregation where policy requires it",
    "audit-log-verified": "Tamper-evident audit log verifies",
    "encryption-at-rest": "Encryption at rest",
    "anonymisation-k": "Shared records k-anonymous",
    "record-of-processing": "Record of processing",
}

_Check = Callable[[_Run], CheckResult]

CHECKS: Mapping[str, tuple[_Check, Mapping[Framework, tuple[str, ...]]]] = {
    "purpose-declared": (
        _purpose,
        {
            Framework.GDPR: ("GDPR Art. 5(1)(b)",),
            Framework.HIPAA: ("45 CFR 164.502(b)",),
            Framework.CCPA: ("Cal. Civ. Code 1798.100(c)",),
        },
    ),
    "minimisation-applied": (
        _minimisation,
        {
            Framework.GDPR: ("GDPR Art. 5(1)(c)", "GDPR Art. 25(2)"),
            Framework.HIPAA: ("45 CFR 164.502(b)", "45 CFR 164.514(d)"),
            Framework.CCPA: ("Cal. Civ. Code 1798.100(c)",),
        },
    ),
    "no-direct-identifiers": (
        _identifiers,
        {
            Framework.GDPR: ("GDPR Art. 5(1)(c)", "GDPR Art. 25(1)"),
            Framework.HIPAA: ("45 CFR 164.514(b)(2)",),
            Framework.CCPA: ("Cal. Civ. Code 1798.140(m)",),
        },
    ),
    "dp-required": (
        _dp_required,
        {
            Framework.GDPR: ("GDPR Art. 25(1)",),
            Framework.HIPAA: ("45 CFR 164.514(b)(1)",),
            Framework.CCPA: ("Cal. Civ. Code 1798.140(m)",),
        },
    ),
    "dp-epsilon-within-policy": (
        _dp_epsilon,
        {
            Framework.GDPR: ("GDPR Art. 25(1)",),
            Framework.HIPAA: ("45 CFR 164.514(b)(1)",),
            Framework.CCPA: ("Cal. Civ. Code 1798.140(m)",),
        },
    ),
    "secure-aggregation": (
        _secagg,
        {
            Framework.GDPR: ("GDPR Art. 32(1)",),
            Framework.HIPAA: ("45 CFR 164.312(e)(1)",),
            Framework.CCPA: ("Cal. Civ. Code 1798.100(e)",),
        },
    ),
    "audit-log-verified": (
        _audit,
        {
            Framework.GDPR: ("GDPR Art. 5(2)", "GDPR Art. 30", "GDPR Art. 32(1)(b)"),
            Framework.HIPAA: ("45 CFR 164.312(b)", "45 CFR 164.312(c)(1)"),
            Framework.CCPA: ("Cal. Civ. Code 1798.100(e)",),
        },
    ),
    "encryption-at-rest": (
        _encryption,
        {
            Framework.GDPR: ("GDPR Art. 32(1)(a)",),
            Framework.HIPAA: ("45 CFR 164.312(a)(2)(iv)",),
            Framework.CCPA: ("Cal. Civ. Code 1798.150(a)(1)", "Cal. Civ. Code 1798.100(e)"),
        },
    ),
    "anonymisation-k": (
        _anonymisation,
        {
            Framework.GDPR: ("GDPR Recital 26", "GDPR Art. 89(1)"),
            Framework.HIPAA: ("45 CFR 164.514(b)",),
            Framework.CCPA: ("Cal. Civ. Code 1798.140(m)",),
        },
    ),
    "record-of-processing": (
        _record_of_processing,
        {
            Framework.GDPR: ("GDPR Art. 30",),
            Framework.HIPAA: ("45 CFR 164.316(b)(1)",),
        },
    ),
}
"""Check id → (check, provisions per framework). A check runs for the frameworks it maps to."""


def load_results(run_dir: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Read ``RUN_DIR/results.json``.

    Raises:
        DataError: missing, unreadable or not a JSON object.
    """
    path = Path(run_dir) / "results.json"
    if not Path(run_dir).is_dir():
        raise DataError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise DataError(f"no results.json in {run_dir}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{path} must hold a JSON object")
    return doc


def check_run(run_dir: str | os.PathLike[str], framework: Framework | str) -> ComplianceReport:
    """Run every check mapped to ``framework`` on a run directory.

    Raises:
        DataError: no readable ``results.json``.
        ValueError: unknown framework.
    """
    fw = Framework(framework)
    run = _Run(Path(run_dir), load_results(run_dir))
    results = []
    for _cid, (fn, refs) in CHECKS.items():
        if fw not in refs:
            continue
        result = fn(run)
        results.append(
            CheckResult(
                result.id, result.title, result.status, result.reason, result.evidence, refs[fw]
            )
        )
    ropa = _ropa(run) if fw is Framework.GDPR else {}
    return ComplianceReport(fw, str(run_dir), tuple(results), ropa)
