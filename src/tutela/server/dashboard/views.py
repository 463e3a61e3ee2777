"""What each dashboard view shows, as JSON built from the coordinator (no I/O of its own).

Each view maps to one permission (:data:`VIEWS`); the routes declare it, so a role sees a
view only when the RBAC policy grants it (an auditor sees the audit log and the ledgers,
not the site registry; a data scientist the studies and ledgers, not the audit log).
Site ledgers are shown against their budget and marked verified only when the site's
signed report verifies under the key the site registered at join.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tutela.fl.rounds import RoundStatus
from tutela.governance.checkpoint import VerifierKey
from tutela.governance.comply import site_report_problems
from tutela.governance.rbac import Permission
from tutela.governance.results import SignedSiteReport
from tutela.governance.witness import load_cosigned
from tutela.server.authz import Principal, RbacPolicy
from tutela.server.coordinator import Coordinator
from tutela.server.core import StudyStatus

__all__ = [
    "VIEWS",
    "audit_view",
    "compliance_view",
    "live_state",
    "me_view",
    "privacy_view",
    "sites_view",
    "studies_view",
]

VIEWS: Mapping[str, Permission] = {
    "studies": Permission.STUDY_READ,
    "sites": Permission.SITE_MANAGE,
    "privacy": Permission.LEDGER_READ,
    "audit": Permission.AUDIT_READ,
    "compliance": Permission.AUDIT_READ,  # the checks read the audit log and every ledger
}
"""Dashboard view -> the permission its route declares."""

CLOSED = (RoundStatus.AGGREGATED.value, RoundStatus.QUORUM_NOT_MET.value)
"""Round statuses that mean the round closed."""


def me_view(principal: Principal, policy: RbacPolicy) -> dict[str, Any]:
    """Who is signed in and which views their role may open."""
    who = principal.for_rbac()
    return {
        "name": principal.name,
        "role": principal.role.value,
        "views": {v: policy.allows(who, p, f"/dashboard/{v}") for v, p in VIEWS.items()},
    }


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def studies_view(coordinator: Coordinator) -> list[dict[str, Any]]:
    """Every study: state, progress, participation (refusals with their reasons), rounds
    with their metrics (``loss``, ``accuracy``, ``auc``: the sites' evaluations of the model
    after the round on their held-out rows, weighted by rows; see
    :mod:`tutela.server.round_metrics`)."""
    out = []
    for study in coordinator.list_studies():
        status = coordinator.study_status(study["id"])
        rounds = []
        for r in status["rounds"]:
            metrics = _numbers(r.get("metrics") or {}) | _numbers(r)
            metrics.pop("round", None)
            # the sites' evaluation of the model after this round, weighted by their rows
            evaluation = (r.get("evaluation") or {}).get("aggregate") or {}
            metrics |= _numbers({k: evaluation.get(k) for k in ("loss", "accuracy", "auc")})
            if evaluation:
                metrics["evaluated_rows"] = float(evaluation["rows"])
            rounds.append(
                {
                    "round": r["round"],
                    "status": r["status"],
                    "stage": r["stage"],
                    "participants": len(r.get("participants") or []),
                    "dropped": r.get("dropped") or r.get("dropped_per_stage") or {},
                    "metrics": metrics,
                }
            )
        out.append(
            {
                "id": status["id"],
                "name": status["name"],
                "status": status["status"],
                "current_round": status["current_round"],
                "total_rounds": status["total_rounds"],
                "completed_rounds": len({r["round"] for r in rounds if r["status"] in CLOSED}),
                "error": status["error"],
                "participation": status["participation"],
                "rounds": rounds,
            }
        )
    return out


def live_state(coordinator: Coordinator) -> dict[str, tuple[str, int]]:
    """Study id -> (status, rounds closed): what the event stream watches for changes."""
    return {s["id"]: (s["status"], s["completed_rounds"]) for s in studies_view(coordinator)}


def is_live(state: Mapping[str, tuple[str, int]]) -> bool:
    """Whether some study is recruiting or running (the stream stays open while one is)."""
    return any(
        status in (StudyStatus.RECRUITING, StudyStatus.RUNNING) for status, _ in state.values()
    )


def sites_view(coordinator: Coordinator) -> list[dict[str, Any]]:
    """Every site with its enrolment, and each study's answer from it (refusals and why)."""
    studies = {s["id"]: coordinator.study_status(s["id"]) for s in coordinator.list_studies()}
    out = []
    for site in coordinator.list_sites():
        answers = [
            {"study": sid, "status": p["status"], "reason": p["reason"]}
            for sid, st in studies.items()
            for name, p in st["participation"].items()
            if name == site["name"]
        ]
        out.append({**site, "studies": answers})
    return out


def privacy_view(coordinator: Coordinator, study_id: str) -> dict[str, Any]:
    """The study's privacy ledger and each site's own ledger against its budget."""
    ledger = coordinator.privacy_ledger(study_id)
    signed = coordinator.site_reports(study_id)
    reports = [SignedSiteReport.model_validate(r, strict=False) for r in signed["reports"]]
    keys = {site: bytes.fromhex(key) for site, key in signed["site_keys"].items()}
    problems = site_report_problems(reports, keys)
    sites = []
    for report in reports:
        spends = report.ledger.get("spends")
        series = [
            {"label": str(s.get("label", "")), "epsilon": float(s["epsilon_after"])}
            for s in (spends if isinstance(spends, list) else [])
            if isinstance(s, dict) and isinstance(s.get("epsilon_after"), int | float)
        ]
        budget = report.ledger.get("budget_epsilon")
        sites.append(
            {
                "site": report.site,
                "budget": float(budget) if isinstance(budget, int | float) else None,
                "spends": series,
                "verified": report.site not in problems,
                "problem": problems.get(report.site),
            }
        )
    return {
        "study_id": study_id,
        "privacy": ledger["privacy"],
        "secure_aggregation": ledger["secure_aggregation"],
        "sites": sites,
    }


def audit_view(coordinator: Coordinator, query: str, limit: int) -> dict[str, Any]:
    """Audit events matching ``query`` (a case-insensitive substring of actor, action,
    resource, outcome or detail), newest last, and the log's checkpoint and witnesses."""
    needle = query.casefold()
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = coordinator.audit_events(limit=1000, after_id=after)
        if not page:
            break
        after = int(page[-1]["id"])
        for event in page:
            text = " ".join(str(v) for v in event.values()).casefold()
            if needle in text:
                events.append(event)
    # the witnesses' view, read from what they cosigned (never signing anything here)
    directory = getattr(coordinator.core.audit_hook, "cosigned_dir", None)
    checkpoint = None
    cosigned = load_cosigned(directory) if directory is not None and directory.is_dir() else []
    if cosigned:
        latest = cosigned[-1]
        checkpoint = {
            "size": latest.size,
            "root": latest.root.hex(),
            "origin": latest.origin,
            "cosigned_by": [n for n in latest.signer_names if n.startswith("tutela.witness/")],
        }
    return {
        "query": query,
        "matches": len(events),
        "events": events[-limit:],
        "checkpoint": checkpoint,
        "cosigned_checkpoints": len(cosigned),
    }


def compliance_view(coordinator: Coordinator, study_id: str) -> dict[str, Any]:
    """A completed study's compliance checks per framework (GDPR, HIPAA, CCPA), run on the
    run directory ``tutela server results`` would fetch (built in a temporary directory,
    without the model), each check with its status, reason and the provisions it maps to.

    Security: this is the coordinator checking itself: its audit log is verified under its
    own audit key, the site reports under the keys the sites registered at join. An auditor
    who trusts neither fetches the results and runs ``tutela comply`` under keys pinned out
    of band; the page says so.
    """
    from tutela.governance.comply import Framework, check_run
    from tutela.server.core import ConflictError
    from tutela.server.results import evidence_of, write_results

    try:
        evidence = evidence_of(coordinator, study_id)
    except ConflictError as exc:
        return {"study_id": study_id, "frameworks": None, "note": str(exc)}
    key = VerifierKey.parse(evidence.export["audit_key"])
    frameworks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tutela-comply-") as tmp:
        run_dir = Path(tmp) / "run"
        write_results(evidence, run_dir, seal_model=False)
        for framework in Framework:
            report = check_run(run_dir, framework, audit_keys=[key])
            frameworks[framework.value] = {
                "passed": report.passed,
                "checks": [
                    {k: v for k, v in check.to_json().items() if k != "evidence"}
                    for check in report.results
                ],
            }
    return {
        "study_id": study_id,
        "frameworks": frameworks,
        "audit_key": evidence.export["audit_key"],
        "note": "Checked by this coordinator under its own audit key; for an independent "
        "check, fetch the results (tutela server results) and run tutela comply under the "
        "keys you pinned.",
    }
