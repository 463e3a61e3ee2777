"""What sites did with DP queries, held against the analytics policy each one signs.

A site signs its whole policy into its reports (``SitePolicy.to_json()``, its ``analytics``
table included). The coordinator's audit log records every federated query: what it reads
(``query.submit``: the SQL, epsilon, purpose, analyst, and the columns it reads and groups
by) and each site's acceptance with the categories it declared (``query.accept``). An
acceptance is the site's statement that its policy allows the query, so a site that signs
one analytics policy but enforces another shows up here: it accepted what its signed policy
refuses.

:func:`analytics_contradictions` lists, per site, every accepted query its signed policy
forbids:

- the signed policy has no ``analytics`` table, or does not accept the query's purpose;
- the query's epsilon is above the signed ``max_query_epsilon``;
- the query reads a column outside the purpose's columns, on the never-share list or a
  direct identifier (when the policy blocks them);
- the site declared categories for a grouped column that differ from the signed ones (or
  grouped by a column the signed policy declares none for).

Not checked here: the budgets per analyst and per study (their composition needs the
accountant; each site's signed ledger summary is checked by :mod:`site_evidence`), and the
minimum cohort (a noisy decision: a single answer cannot contradict it).

Security: the audit events must come from a log that verifies under a pinned key and the
policies from reports that verify under the sites' pinned keys; this module only compares.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from tutela.errors import AuditError
from tutela.governance.audit import AuditLog
from tutela.governance.minimisation import is_direct_identifier, normalise_column

__all__ = ["analytics_contradictions", "log_events"]


def log_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of an audit log file as mappings (empty when it is missing or unreadable:
    whether it verifies is the audit check's finding, not this one's)."""
    try:
        with AuditLog.open_existing(path) as log:
            return [
                {"actor": r.actor, "action": r.action, "resource": r.resource,
                 "details": dict(r.details)}
                for r in log.records()
            ]  # fmt: skip
    except (FileNotFoundError, AuditError):
        return []


def _queries(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Accepted queries from the audit events: per accepting site, the request, what it
    reads and the categories the site declared."""
    submitted: dict[str, Mapping[str, Any]] = {}
    accepted: list[tuple[str, str, Any]] = []
    for event in events:
        action, resource = event.get("action"), str(event.get("resource") or "")
        details = event.get("details", event.get("detail"))  # the log's name, the store's
        details = details if isinstance(details, Mapping) else {}
        if not resource.startswith("query/"):
            continue
        query_id = resource.removeprefix("query/")
        if action == "query.submit":
            submitted[query_id] = details
        elif action == "query.accept":
            site = str(event.get("actor") or "").removeprefix("site:")
            accepted.append((query_id, site, details.get("categories")))
    return [
        {"id": query_id, "site": site, "request": submitted[query_id], "categories": cats}
        for query_id, site, cats in accepted
        if query_id in submitted
    ]


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _problems(policy: Mapping[str, Any], accepted: Mapping[str, Any]) -> list[str]:
    request = accepted["request"]
    name = f"query {accepted['id']}"
    analytics = policy.get("analytics")
    if not isinstance(analytics, Mapping):
        return [f"accepted {name} but signs no analytics policy"]
    problems: list[str] = []
    epsilon = _number(request.get("epsilon"))
    cap = _number(analytics.get("max_query_epsilon"))
    if epsilon is None or cap is None or epsilon > cap * (1 + 1e-9):
        problems.append(
            f"accepted {name} at epsilon {request.get('epsilon')} above its signed maximum of "
            f"{analytics.get('max_query_epsilon')} per query"
        )
    purposes = policy.get("purposes")
    purpose = str(request.get("purpose"))
    spec = purposes.get(purpose) if isinstance(purposes, Mapping) else None
    allowed = spec.get("columns") if isinstance(spec, Mapping) else None
    if not isinstance(allowed, list):
        problems.append(f"accepted {name} for purpose {purpose!r}, which its signed policy lacks")
        allowed = []
    allowed_set = {normalise_column(str(c)) for c in allowed}
    never = {normalise_column(str(c)) for c in policy.get("never_share") or []}
    block = policy.get("block_direct_identifiers") is not False
    reads = request.get("reads")
    reads = reads if isinstance(reads, Mapping) else {}
    for column in reads.get("columns") or []:
        norm = normalise_column(str(column))
        if norm in never or (block and is_direct_identifier(str(column))):
            problems.append(f"accepted {name}, which reads {column!r} that its policy never shares")
        elif allowed and norm not in allowed_set:
            problems.append(f"accepted {name}, which reads {column!r} outside purpose {purpose!r}")
    signed = analytics.get("categories")
    signed = {normalise_column(str(k)): v for k, v in (signed or {}).items()}
    sent = accepted.get("categories")
    sent = sent if isinstance(sent, Mapping) else {}
    for column in reads.get("grouped") or []:
        mine = signed.get(normalise_column(str(column)))
        if mine is None:
            problems.append(
                f"accepted {name}, grouped by {column!r} for which it signs no categories"
            )
        elif [str(v) for v in sent.get(column) or []] != [str(v) for v in mine]:
            problems.append(
                f"accepted {name} declaring categories {sent.get(column)} for {column!r}, "
                f"not its signed {list(mine)}"
            )
    return problems


def analytics_contradictions(
    policies: Mapping[str, Mapping[str, Any]], events: Iterable[Mapping[str, Any]]
) -> dict[str, list[str]]:
    """Per site, the accepted queries its signed policy forbids (see the module docstring).

    Args:
        policies: site -> the policy it signed (``SitePolicy.to_json()`` from a verified
            report).
        events: the coordinator's audit records as mappings with ``actor``, ``action``,
            ``resource`` and ``details`` (or ``detail``, as the coordinator's store names
            it); see :func:`log_events`.

    Returns:
        One reason per contradiction, by site; sites without any are left out. A site
        that accepted a query but has no signed policy here is not judged.
    """
    out: dict[str, list[str]] = {}
    for accepted in _queries(events):
        policy = policies.get(accepted["site"])
        if policy is None:
            continue
        problems = _problems(policy, accepted)
        if problems:
            out.setdefault(accepted["site"], []).extend(problems)
    return out
