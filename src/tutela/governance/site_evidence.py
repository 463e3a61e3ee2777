"""The sites' own evidence in a run: what a study claimed of each site, the floor each
site's signed policy and ledger must show for it (:func:`policy_shortfalls`), and whether
each signed report verifies under the key the auditor pinned (:func:`load_trusted_keys`,
:func:`site_report_problems`). :mod:`tutela.governance.comply` turns these into checks."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutela.errors import DataError
from tutela.governance.results import (
    AggregationProtocol,
    PrivacyMode,
    RunResults,
    SignedSiteReport,
)
from tutela.governance.site_report import verify_site_report


@dataclass(frozen=True)
class StudyClaim:
    """The protections a study states it gives (read from its configuration).

    ``epsilon`` and ``delta`` are ``None`` when the study claims no DP.
    """

    dp: bool
    epsilon: float | None
    delta: float | None
    secure_aggregation: bool

    @classmethod
    def of(cls, results: RunResults) -> StudyClaim:
        """What ``results.config`` claims."""
        p = results.config.privacy
        dp = p.mode is not PrivacyMode.NONE
        return cls(
            dp=dp,
            epsilon=p.epsilon if dp else None,
            delta=p.delta if dp else None,
            secure_aggregation=results.config.secure_aggregation.protocol
            is not AggregationProtocol.NONE,
        )


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _ledger_enforces(ledger: Mapping[str, Any] | None, claim: StudyClaim) -> bool:
    """True when a site's signed ledger shows it enforced the study's DP claim itself: a
    private budget no looser than the claim, with no more spent than that budget."""
    if not isinstance(ledger, Mapping) or ledger.get("private") is not True:
        return False
    budget = _number(ledger.get("budget_epsilon"))
    delta = _number(ledger.get("delta"))
    spent = _number(ledger.get("spent_epsilon"))
    if budget is None or delta is None or spent is None:
        return False
    if claim.epsilon is not None and budget > claim.epsilon * (1 + 1e-9):
        return False
    if claim.delta is not None and delta > claim.delta * (1 + 1e-9):
        return False
    return spent <= budget * (1 + 1e-9)


def policy_shortfalls(
    policy: Mapping[str, Any], claim: StudyClaim, ledger: Mapping[str, Any] | None = None
) -> list[str]:
    """Where a site's enforced policy is weaker than what the study claims.

    ``policy`` is the policy a site signed (``SitePolicy.to_json()``: its ``floor`` table
    holds ``dp_required``, ``max_epsilon``, ``max_delta`` and
    ``secure_aggregation_required``). A policy is weaker when it would have let the study
    run with less protection than it claims: DP not required, or an epsilon or delta bound
    that is missing or looser than the study's, or secure aggregation not required while
    the study claims it. A floor that is missing or unreadable is weaker in every respect
    the study claims (fail closed).

    A site whose signed ``ledger`` shows it enforced the claimed budget itself (a private
    ledger with a budget no looser than the study's epsilon and delta, and no more spent)
    meets the DP claim for this study even when its standing floor is lower.

    Returns:
        One reason per shortfall; empty when the policy is at least as strong as the claim.
    """
    raw = policy.get("floor")
    floor: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    problems: list[str] = []
    if claim.dp and not _ledger_enforces(ledger, claim):
        if floor.get("dp_required") is not True:
            problems.append("does not require DP")
        for key, claimed, what in (
            ("max_epsilon", claim.epsilon, "epsilon"),
            ("max_delta", claim.delta, "delta"),
        ):
            bound = _number(floor.get(key))
            if bound is None:
                problems.append(f"sets no {what} bound")
            elif claimed is not None and bound > claimed:
                problems.append(f"allows {what} up to {bound:g} (the study claims {claimed:g})")
    if claim.secure_aggregation and floor.get("secure_aggregation_required") is not True:
        problems.append("does not require secure aggregation")
    return problems


def load_trusted_keys(path: str | os.PathLike[str]) -> dict[str, bytes]:
    """Site keys an auditor pinned: a JSON object mapping each site to its raw 32-byte
    Ed25519 public key in hex.

    Raises:
        DataError: unreadable, not such an object, or a key that is not 64 hex digits (one
            line naming the site).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"trusted keys file {p} not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read trusted keys file {p}: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"trusted keys file {p} must hold a JSON object: site -> hex key")
    keys: dict[str, bytes] = {}
    for site, value in data.items():
        key = _raw_key(value)
        if key is None:
            raise DataError(
                f"trusted keys file {p}: the key for site {site!r} is not 64 hex digits "
                "(a raw Ed25519 public key)"
            )
        keys[str(site)] = key
    return keys


def _raw_key(value: Any) -> bytes | None:
    if not isinstance(value, str) or len(value) != 64:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def site_report_problems(
    reports: list[SignedSiteReport], pinned: Mapping[str, bytes]
) -> dict[str, str]:
    """Why each site report that fails verification fails, by site (empty: all verify).

    A report verifies when a key is pinned for the site it names, the report is signed by
    that key (not merely by the key it carries), and its signature covers exactly its site,
    policy and ledger. A site that sent two reports fails if either does.
    """
    problems: dict[str, str] = {}
    for report in reports:
        site = report.site
        key = pinned.get(site)
        if key is None:
            problem = "no key is pinned for this site"
        elif report.public_key != key.hex():
            problem = (
                f"signed by key {report.public_key[:16]}..., not the key pinned for the site "
                f"({key.hex()[:16]}...)"
            )
        elif not verify_site_report(report.model_dump(mode="json"), trusted_keys=[key]):
            problem = "its signature does not cover its content (altered after signing)"
        else:
            continue
        problems.setdefault(site, problem)
    return problems
