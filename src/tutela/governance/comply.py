"""Compliance checks: what a run actually did, checked against GDPR, HIPAA and CCPA controls.

The checks read only the run directory the FL engine writes. ``results.json`` is read
through the typed results model (:class:`~tutela.governance.results.RunResults`): a document
that does not validate (an unknown key, a value of the wrong type, a missing section) is
refused with one line naming the field, and evidence a valid document leaves out (no
governance section, no minimisation record) makes a check fail with reason "no evidence"
(fail closed). Reports state which technical controls were evidenced, never that a study
"is compliant".

Run directory::

    RUN_DIR/results.json                    a RunResults document (results.schema.json)
    RUN_DIR/<governance.audit_log>          a Tutela audit log (SQLite or JSON lines)
    RUN_DIR/audit.checkpoint                C2SP signed checkpoint of the log (optional: the
                                            log keeps its own checkpoints too)

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
- ``secure-aggregation``: when the policy requires it, SecAgg+ or CKKS ran and reported.
- ``site-reports-verified``: every site report (``sites``) verifies under the key pinned
  for its site, and every site that contributed to a round sent one. The pinned keys are
  the auditor's (``trusted_keys``, e.g. ``tutela comply --site-keys FILE``) when given,
  else the identity keys the sites registered when they joined (``site_keys``, recorded by
  the coordinator apart from the reports); never the key a report carries (not applicable
  while the run carries neither reports nor registered keys).
- ``site-policy-floor``: every site's signed report shows an enforced policy at least as
  strong as what the study claims: DP required with epsilon and delta bounds no looser than
  the study's, and secure aggregation required when the study uses it; a report that does
  not verify (see ``site-reports-verified``) is no evidence and fails it too (not
  applicable while the run carries no site reports; see :func:`policy_shortfalls`).
- ``audit-log-verified``: the audit log exists, verifies, and a checkpoint signed by a key
  the auditor pinned (``audit_keys``, by default the trust store of
  :mod:`tutela.governance.trust`) covers all of it; a key the run directory carries is
  never trusted, so a log rewritten and re-signed with a fresh key, or stripped of its
  checkpoints, fails.
- ``encryption-at-rest``: ``governance.encryption_at_rest`` is true.
- ``anonymisation-k``: when record-level data was shared (an anonymisation report exists),
  ``k_achieved`` reaches the required k (``k_required``, else the policy's ``min_k``,
  else 5).
- ``record-of-processing``: a record of processing (GDPR Art. 30) can be generated from the
  run: purpose, data categories and security measures are all evidenced.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutela.errors import AuditError, DataError
from tutela.governance.audit import RUN_CHECKPOINT, Checkpoint, VerifierKey, verify_log
from tutela.governance.comply_report import CheckResult, ComplianceReport, Framework, Status
from tutela.governance.minimisation import is_direct_identifier
from tutela.governance.query_evidence import analytics_contradictions, log_events
from tutela.governance.results import (
    AggregationProtocol,
    GovernanceReport,
    PrivacyMode,
    RunResults,
    SampleLevelPrivacy,
    load_results,
)
from tutela.governance.site_evidence import (
    StudyClaim,
    load_trusted_keys,
    policy_shortfalls,
    site_report_problems,
)
from tutela.governance.trust import TrustStore
from tutela.governance.witness import witness_status

__all__ = [
    "CHECKS",
    "CheckResult",
    "ComplianceReport",
    "Framework",
    "Status",
    "StudyClaim",
    "check_run",
    "load_trusted_keys",
    "policy_shortfalls",
    "site_report_problems",
]


@dataclass(frozen=True)
class _Run:
    path: Path
    results: RunResults
    trusted_keys: Mapping[str, bytes] | None = None
    audit_keys: tuple[VerifierKey, ...] = ()

    @property
    def pinned_keys(self) -> tuple[str, Mapping[str, bytes]]:
        """Where the site keys come from and the keys: the auditor's when given, else the
        keys the sites registered (recorded apart from the reports)."""
        if self.trusted_keys is not None:
            return "auditor's trusted keys", self.trusted_keys
        registered = self.results.site_keys or {}
        keys = {site: bytes.fromhex(value) for site, value in registered.items()}
        return "keys the sites registered at join (site_keys)", keys

    @property
    def unverified_sites(self) -> dict[str, str]:
        _source, keys = self.pinned_keys
        return site_report_problems(list(self.results.sites or ()), keys)

    @property
    def governance(self) -> GovernanceReport | None:
        return self.results.governance

    @property
    def used_columns(self) -> list[str] | None:
        return self.results.config.data.columns

    @property
    def shared_columns(self) -> list[str] | None:
        gov = self.results.governance
        return list(gov.shared_columns) if gov is not None else None

    @property
    def dp_mode(self) -> PrivacyMode:
        return self.results.config.privacy.mode


def _result(
    cid: str, status: Status, reason: str, evidence: Mapping[str, Any] | None = None
) -> CheckResult:
    return CheckResult(cid, TITLES[cid], status, reason, evidence or {})


def _no_evidence(cid: str, what: str, evidence: Mapping[str, Any] | None = None) -> CheckResult:
    return _result(cid, Status.FAIL, f"no evidence: {what}", evidence)


_NO_GOVERNANCE = "the run has no governance section"


# the checks ---------------------------------------------------------------------------------


def _purpose(run: _Run) -> CheckResult:
    cid = "purpose-declared"
    gov, declared = run.governance, run.results.config.study.purpose
    ev = {
        "governance.purpose": gov.purpose if gov is not None else None,
        "config.study.purpose": declared,
    }
    if gov is None:
        return _no_evidence(cid, _NO_GOVERNANCE, ev)
    if not gov.purpose.strip():
        return _no_evidence(cid, "governance.purpose is empty", ev)
    if declared != gov.purpose:
        return _result(
            cid, Status.FAIL, f"declared purpose {declared!r} differs from {gov.purpose!r}", ev
        )
    return _result(cid, Status.PASS, f"purpose {gov.purpose!r} declared", ev)


def _minimisation(run: _Run) -> CheckResult:
    cid = "minimisation-applied"
    gov = run.governance
    record = gov.minimisation if gov is not None else None
    shared, used = run.shared_columns, run.used_columns
    ev = {
        "minimisation": record.model_dump(mode="json") if record is not None else None,
        "shared_columns": shared,
        "config.data.columns": used,
    }
    if gov is None:
        return _no_evidence(cid, _NO_GOVERNANCE, ev)
    if record is None:
        return _no_evidence(cid, "governance.minimisation is missing", ev)
    outside = sorted((set(gov.shared_columns) | set(used or [])) - set(record.kept))
    if outside:
        return _result(cid, Status.FAIL, f"columns used but not kept: {', '.join(outside)}", ev)
    return _result(
        cid, Status.PASS, f"{len(record.kept)} columns kept, {len(record.dropped)} dropped", ev
    )


def _identifiers(run: _Run) -> CheckResult:
    cid = "no-direct-identifiers"
    shared, used = run.shared_columns, run.used_columns
    ev = {"shared_columns": shared, "config.data.columns": used}
    if shared is None:
        return _no_evidence(cid, _NO_GOVERNANCE, ev)
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
    return run.dp_mode is not PrivacyMode.NONE and run.results.privacy is not None


def _dp_required(run: _Run) -> CheckResult:
    cid = "dp-required"
    gov, report = run.governance, run.results.privacy
    ev = {
        "policy.dp_required": gov.policy.dp_required if gov is not None else None,
        "config.privacy.mode": run.dp_mode.value,
        "privacy.mechanism": report.mechanism if report is not None else None,
        "privacy.epsilon": report.epsilon if report is not None else None,
    }
    if gov is None:
        return _no_evidence(cid, _NO_GOVERNANCE, ev)
    if not gov.policy.dp_required:
        return _result(cid, Status.NOT_APPLICABLE, "the policy does not require DP", ev)
    if run.dp_mode is PrivacyMode.NONE:
        return _result(cid, Status.FAIL, "policy requires DP but privacy mode is 'none'", ev)
    if report is None:
        return _result(cid, Status.FAIL, "DP configured but the run has no privacy report", ev)
    return _result(cid, Status.PASS, f"DP on ({run.dp_mode.value}-level)", ev)


def _dp_epsilon(run: _Run) -> CheckResult:
    cid = "dp-epsilon-within-policy"
    gov, report = run.governance, run.results.privacy
    policy = gov.policy if gov is not None else None
    bounds = {
        "max_epsilon": policy.max_epsilon if policy is not None else None,
        "min_epsilon": policy.min_epsilon if policy is not None else None,
        "max_delta": policy.max_delta if policy is not None else None,
    }
    ev: dict[str, Any] = {"policy": {k: v for k, v in bounds.items() if v is not None}}
    if report is None or not _dp_on(run):
        return _result(cid, Status.NOT_APPLICABLE, "DP was off (see dp-required)", ev)
    if all(v is None for v in bounds.values()):
        return _result(cid, Status.NOT_APPLICABLE, "the policy sets no epsilon/delta bound", ev)
    eps, delta = report.epsilon, report.delta
    site_eps = (
        {site: entry.epsilon for site, entry in report.per_site.items()}
        if isinstance(report, SampleLevelPrivacy)
        else {}
    )
    ev.update({"privacy.epsilon": eps, "privacy.delta": delta, "per_site_epsilon": site_eps})
    worst = max([eps, *site_eps.values()])
    problems = []
    if bounds["max_epsilon"] is not None and worst > bounds["max_epsilon"]:
        problems.append(f"epsilon {worst:g} exceeds the policy maximum {bounds['max_epsilon']:g}")
    if bounds["min_epsilon"] is not None and eps < bounds["min_epsilon"]:
        problems.append(f"epsilon {eps:g} is below the policy minimum {bounds['min_epsilon']:g}")
    if bounds["max_delta"] is not None and delta > bounds["max_delta"]:
        problems.append(f"delta {delta:g} exceeds the policy maximum {bounds['max_delta']:g}")
    if problems:
        return _result(cid, Status.FAIL, "; ".join(problems), ev)
    return _result(cid, Status.PASS, f"epsilon {worst:g} within policy", ev)


_PROTOCOL_NAMES = {
    AggregationProtocol.SECAGG_PLUS: "SecAgg+",
    AggregationProtocol.CKKS: "CKKS encrypted aggregation",
}


def _secagg(run: _Run) -> CheckResult:
    cid = "secure-aggregation"
    gov, report = run.governance, run.results.secure_aggregation
    proto = run.results.config.secure_aggregation.protocol
    ev = {
        "policy.secure_aggregation_required": gov.policy.secure_aggregation_required
        if gov is not None
        else None,
        "config.secure_aggregation.protocol": proto.value,
        "secure_aggregation_report": report is not None,
    }
    if gov is None:
        return _no_evidence(cid, _NO_GOVERNANCE, ev)
    if not gov.policy.secure_aggregation_required:
        return _result(cid, Status.NOT_APPLICABLE, "the policy does not require it", ev)
    if proto not in _PROTOCOL_NAMES:
        return _result(cid, Status.FAIL, f"required but protocol is {proto.value!r}", ev)
    name = _PROTOCOL_NAMES[proto]
    if report is None:
        return _result(cid, Status.FAIL, f"{name} configured but the run has no report", ev)
    if report.protocol is not proto:
        return _result(
            cid, Status.FAIL, f"{name} configured but the report is {report.protocol.value}", ev
        )
    return _result(cid, Status.PASS, f"{name} ran and reported", ev)


def _site_signatures(run: _Run) -> CheckResult:
    cid = "site-reports-verified"
    reports = list(run.results.sites or ())
    source, keys = run.pinned_keys
    ev: dict[str, Any] = {
        "pinned_by": source,
        "pinned_sites": sorted(keys),
        "reports": [r.site for r in reports],
    }
    if not reports and not run.results.site_keys and run.trusted_keys is None:
        return _result(cid, Status.NOT_APPLICABLE, "the run carries no signed site reports", ev)
    problems = {site: f"{site}'s report {why}" for site, why in run.unverified_sites.items()}
    reported = {r.site for r in reports}
    for entry in run.results.history:
        for site in entry.sites:
            if site not in reported and site not in problems:
                problems[site] = (
                    f"{site} contributed to round {entry.round} but sent no signed report"
                )
    ev["problems"] = problems
    if problems:
        reason = "; ".join(problems[site] for site in sorted(problems))
        return _result(cid, Status.FAIL, f"site reports not verified ({source}): {reason}", ev)
    return _result(
        cid, Status.PASS, f"all {len(reports)} site reports verify under the {source}", ev
    )


def _site_floors(run: _Run) -> CheckResult:
    cid = "site-policy-floor"
    claim = StudyClaim.of(run.results)
    sites = run.results.sites
    ev: dict[str, Any] = {
        "claim": {
            "dp": claim.dp,
            "epsilon": claim.epsilon,
            "delta": claim.delta,
            "secure_aggregation": claim.secure_aggregation,
        },
        "sites": [s.site for s in sites or ()],
    }
    if not sites:
        return _result(cid, Status.NOT_APPLICABLE, "the run carries no signed site reports", ev)
    unverified = run.unverified_sites
    weaker = {
        s.site: ["sent a report that does not verify (see site-reports-verified)"]
        if s.site in unverified
        else policy_shortfalls(s.policy, claim, s.ledger)
        for s in sites
    }
    weaker = {site: reasons for site, reasons in weaker.items() if reasons}
    gov = run.governance  # the queries the sites accepted, against the analytics they sign
    events = log_events(run.path / gov.audit_log) if gov is not None and gov.audit_log else []
    signed = {s.site: s.policy for s in sites if s.site not in unverified}
    for site, reasons in analytics_contradictions(signed, events).items():
        weaker.setdefault(site, []).extend(reasons)
    ev["shortfalls"] = weaker
    if weaker:
        reason = "; ".join(f"{site} {', '.join(r)}" for site, r in sorted(weaker.items()))
        return _result(cid, Status.FAIL, f"site policy weaker than the study claims: {reason}", ev)
    return _result(
        cid, Status.PASS, f"all {len(sites)} sites enforced at least what the study claims", ev
    )


def _audit(run: _Run) -> CheckResult:
    cid = "audit-log-verified"
    gov = run.governance
    rel = gov.audit_log if gov is not None else None
    ev: dict[str, Any] = {
        "governance.audit_log": rel,
        "trusted_keys": [key.encode() for key in run.audit_keys],
    }
    if not rel:
        return _no_evidence(cid, "governance.audit_log is missing", ev)
    path = run.path / rel
    if not path.is_file():
        return _no_evidence(cid, f"audit log {rel} not found in the run directory", ev)
    checkpoints = []
    cp_path = run.path / RUN_CHECKPOINT
    try:
        if cp_path.is_file():
            checkpoints.append(Checkpoint.load(cp_path))
            ev["checkpoint"] = RUN_CHECKPOINT
        report = verify_log(path, run.audit_keys, checkpoints)
    except AuditError as exc:
        return _result(cid, Status.FAIL, f"audit log unreadable: {exc}", ev)
    ev.update(report.to_json())
    if not report.ok:
        return _result(cid, Status.FAIL, f"audit log does not verify: {report.problem}", ev)
    witnessed = witness_status(run.path, run.audit_keys)  # the coordinator's log, if witnessed
    if witnessed is not None:
        ev["witnesses"] = witnessed
    note = f"; witnesses: {witnessed.get('describe') or witnessed['problem']}" if witnessed else ""
    return _result(
        cid,
        Status.PASS,
        f"{report.size} records verified, all covered by a checkpoint signed by a pinned key "
        f"({', '.join(report.covered_by)}){note}",
        ev,
    )


def _encryption(run: _Run) -> CheckResult:
    cid = "encryption-at-rest"
    gov = run.governance
    ev = {"governance.encryption_at_rest": gov.encryption_at_rest if gov is not None else None}
    if gov is None:
        return _no_evidence(cid, _NO_GOVERNANCE, ev)
    if not gov.encryption_at_rest:
        return _result(cid, Status.FAIL, "stored artefacts were not encrypted", ev)
    return _result(cid, Status.PASS, "stored artefacts encrypted (AES-256-GCM envelope)", ev)


def _anonymisation(run: _Run) -> CheckResult:
    cid = "anonymisation-k"
    gov = run.governance
    anon = gov.anonymisation if gov is not None else None
    ev: dict[str, Any] = {
        "governance.anonymisation": anon.model_dump(mode="json") if anon is not None else None
    }
    if gov is None or anon is None:
        return _result(cid, Status.NOT_APPLICABLE, "no record-level data was shared", ev)
    required = anon.k_required
    if required is None:
        required = gov.policy.min_k if gov.policy.min_k is not None else 5
    ev["k_required"] = required
    if anon.k_achieved < required:
        return _result(cid, Status.FAIL, f"k={anon.k_achieved} below the required {required}", ev)
    return _result(
        cid, Status.PASS, f"shared records are {anon.k_achieved}-anonymous (>= {required})", ev
    )


def _ropa(run: _Run) -> dict[str, Any]:
    gov = run.governance
    return {
        "purpose": gov.purpose if gov is not None else None,
        "data_categories": run.shared_columns,
        "features_used": run.used_columns,
        "recipients": ["study coordinator (aggregate model updates only)"],
        "security_measures": {
            "differential_privacy": run.dp_mode.value,
            "secure_aggregation": run.results.config.secure_aggregation.protocol.value,
            "encryption_at_rest": gov.encryption_at_rest if gov is not None else None,
            "audit_log": gov.audit_log if gov is not None else None,
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
    "site-reports-verified": "Site reports signed under the sites' pinned keys",
    "site-policy-floor": "Every site enforced what the study claims",
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
    "site-reports-verified": (
        _site_signatures,
        {
            Framework.GDPR: ("GDPR Art. 5(2)", "GDPR Art. 24(1)"),
            Framework.HIPAA: ("45 CFR 164.312(c)(1)", "45 CFR 164.312(d)"),
            Framework.CCPA: ("Cal. Civ. Code 1798.100(e)",),
        },
    ),
    "site-policy-floor": (
        _site_floors,
        {
            Framework.GDPR: ("GDPR Art. 25(1)", "GDPR Art. 32(1)"),
            Framework.HIPAA: ("45 CFR 164.514(b)(1)", "45 CFR 164.312(e)(1)"),
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


def check_run(
    run_dir: str | os.PathLike[str],
    framework: Framework | str,
    *,
    trusted_keys: Mapping[str, bytes] | None = None,
    audit_keys: Iterable[VerifierKey] | None = None,
) -> ComplianceReport:
    """Run every check mapped to ``framework`` on a run directory.

    Args:
        run_dir: the run directory.
        framework: gdpr, hipaa or ccpa.
        trusted_keys: site -> raw Ed25519 public key the auditor pinned (see
            :func:`load_trusted_keys`); when given, site reports are verified against these
            keys only (a site missing from it fails), not against the keys the sites
            registered at join that the run records.
        audit_keys: the audit-signing keys the auditor pinned (default: the trust store,
            :class:`~tutela.governance.trust.TrustStore`); never a key the run carries.

    Raises:
        DataError: no readable, valid ``results.json``.
        ValueError: unknown framework.
    """
    fw = Framework(framework)
    if not Path(run_dir).is_dir():
        raise DataError(f"run directory {run_dir} does not exist")
    pins = dict(trusted_keys) if trusted_keys is not None else None
    if audit_keys is None:
        audit_keys = TrustStore.load().keys
    run = _Run(
        Path(run_dir),
        load_results(Path(run_dir) / "results.json"),
        pins,
        audit_keys=tuple(audit_keys),
    )
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
