"""One entry point for tables: classify, apply a profile, k-anonymise, verify, report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from tutela.anonymize.classify import ColumnInfo, ColumnRole, classify_columns
from tutela.anonymize.detector import PiiDetector
from tutela.anonymize.hierarchy import Hierarchy
from tutela.anonymize.mondrian import LDiversity, PrivacyModel, coded_formatter, mondrian
from tutela.anonymize.privacy import (
    PrivacyCheck,
    RiskReport,
    check_privacy,
    reidentification_risk,
    utility_metrics,
)
from tutela.anonymize.safe_harbor import (
    ColumnAction,
    DirectIdentifierPolicy,
    apply_safe_harbor,
)
from tutela.errors import AnonymizationError


class Profile(StrEnum):
    """Column-rule profiles applied before k-anonymisation."""

    HIPAA_SAFE_HARBOR = "hipaa-safe-harbor"
    """The 18 Safe Harbor identifiers as column rules plus free-text detection."""
    NONE = "none"
    """Only direct identifiers are removed; everything else is left to k-anonymity."""


@dataclass(frozen=True)
class AnonymizationReport:
    """Everything a privacy officer (and ``tutela comply``) needs about one run.

    ``k_achieved``, ``l_achieved``, ``t_achieved`` are measured on the released table by
    the independent checker (:func:`~tutela.anonymize.privacy.check_privacy`), not taken
    from the algorithm.
    """

    profile: str
    rows_in: int
    rows_out: int
    k_requested: int
    k_achieved: int
    suppressed_rows: int
    suppression_fraction: float
    equivalence_classes: int
    ncp: float
    ncp_per_column: dict[str, float]
    discernibility: int
    aecs: float
    quasi_identifiers: list[str]
    sensitive: str | None
    roles: dict[str, str]
    kinds: dict[str, str | None]
    actions: dict[str, str]
    notes: list[str]
    risk: dict[str, float]
    l_requested: int | None = None
    l_kind: str | None = None
    l_achieved: int | None = None
    l_entropy: float | None = None
    recursive_c: float | None = None
    t_requested: float | None = None
    t_achieved: float | None = None
    safe_harbor_strict: bool | None = None
    text_spans: dict[str, dict[str, int]] = field(default_factory=dict)
    verified: bool = True

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (infinite ``recursive_c`` becomes ``None``)."""
        data = asdict(self)
        if data["recursive_c"] is not None and not np.isfinite(data["recursive_c"]):
            data["recursive_c"] = None
        return data


@dataclass(frozen=True)
class AnonymizationResult:
    """The released table and its report."""

    table: pd.DataFrame
    report: AnonymizationReport


def _pick_sensitive(
    sensitive: str | None, infos: Mapping[str, ColumnInfo], needed: bool
) -> str | None:
    if sensitive is not None or not needed:
        return sensitive
    candidates = [c for c, i in infos.items() if i.role is ColumnRole.SENSITIVE]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise AnonymizationError(
            "l-diversity/t-closeness need a sensitive column; none was detected"
        )
    raise AnonymizationError(
        f"several sensitive columns detected ({', '.join(candidates)}); name one with sensitive="
    )


def anonymize_table(
    df: pd.DataFrame,
    *,
    profile: Profile = Profile.HIPAA_SAFE_HARBOR,
    k: int = 5,
    l: int | None = None,  # noqa: E741
    l_kind: LDiversity = LDiversity.DISTINCT,
    c: float = 2.0,
    t: float | None = None,
    quasi_identifiers: Sequence[str] | None = None,
    sensitive: str | None = None,
    roles: Mapping[str, ColumnRole] | None = None,
    hierarchies: Mapping[str, Hierarchy] | None = None,
    max_suppression: float = 0.05,
    key: bytes | None = None,
    direct_identifiers: DirectIdentifierPolicy = "drop",
    detector: PiiDetector | None = None,
    population: pd.DataFrame | None = None,
    today: dt.date | None = None,
) -> AnonymizationResult:
    """Anonymise a table: classify columns, apply ``profile``, k-anonymise, verify, report.

    Args:
        df: input table (not modified).
        profile: column rules applied first (Safe Harbor by default).
        k: minimum equivalence-class size over the quasi-identifiers.
        l: l-diversity of ``sensitive`` (``None``: not required).
        l_kind: distinct, entropy or recursive (c, l).
        c: ``c`` for recursive (c, l)-diversity.
        t: t-closeness of ``sensitive`` (``None``: not required).
        quasi_identifiers: QI columns (default: the columns classified as QIs).
        sensitive: sensitive column (default: the one detected, when l or t is asked).
        roles: role overrides per column.
        hierarchies: generalisation hierarchies for categorical QIs; QIs without one get
            set-valued generalisation (``"F|M"``).
        max_suppression: fraction of rows that may be suppressed.
        key: pseudonym key (only with ``direct_identifiers="pseudonymize"``).
        direct_identifiers: drop (Safe Harbor) or pseudonymise direct identifiers.
        detector: PII detector for free-text columns.
        population: population table for journalist risk (same coding as the release).
        today: reference date for the Safe Harbor birth-year rule.

    Returns:
        The released table (suppressed rows removed) and its report.

    Raises:
        ValueError: an unknown column is named (the message names it).
        AnonymizationError: k larger than the table, or l/t unattainable.

    Privacy: the release is k-anonymous (and l-diverse / t-close when asked) over the
    quasi-identifiers, verified on the output by an independent checker; columns not
    declared or detected as QIs are released as they are (after the profile's rules).
    """
    PrivacyModel(k=k, l=l, l_kind=l_kind, c=c, t=t, max_suppression=max_suppression)  # validate
    for col in [*(quasi_identifiers or []), *([sensitive] if sensitive else [])]:
        if col not in df.columns:
            raise ValueError(f"unknown column {col!r}")
    if sensitive is not None and sensitive in (quasi_identifiers or []):
        raise ValueError(f"column {sensitive!r} cannot be both a quasi-identifier and sensitive")
    if k > len(df):
        raise AnonymizationError(f"k={k} is larger than the table ({len(df)} rows)")
    overrides: dict[str, ColumnRole] = dict(roles or {})
    for col in quasi_identifiers or []:
        overrides[col] = ColumnRole.QUASI_IDENTIFIER
    if sensitive:
        overrides[sensitive] = ColumnRole.SENSITIVE
    infos = classify_columns(df, overrides=overrides)
    if quasi_identifiers is not None:
        for name, info in infos.items():
            if info.role is ColumnRole.QUASI_IDENTIFIER and name not in quasi_identifiers:
                infos[name] = ColumnInfo(name, ColumnRole.OTHER, info.kind, "not a listed QI")
    notes: list[str] = []
    if profile is Profile.HIPAA_SAFE_HARBOR:
        sh = apply_safe_harbor(
            df,
            infos,
            key=key,
            direct_identifiers=direct_identifiers,
            detector=detector,
            today=today,
        )
    else:
        none_infos = {
            name: (
                info
                if info.role is ColumnRole.DIRECT_IDENTIFIER
                else ColumnInfo(name, info.role, None, info.reason)
            )
            for name, info in infos.items()
        }
        sh = apply_safe_harbor(
            df, none_infos, key=key, direct_identifiers=direct_identifiers, detector=detector
        )
    table = sh.table
    actions: dict[str, ColumnAction] = {a.column: a for a in sh.actions}
    if quasi_identifiers is not None:
        qis = [q for q in quasi_identifiers if q in table.columns]
        dropped = [q for q in quasi_identifiers if q not in table.columns]
        if dropped:
            notes.append(f"QIs removed by the profile: {', '.join(dropped)}")
    else:
        qis = [
            name
            for name, info in infos.items()
            if info.role is ColumnRole.QUASI_IDENTIFIER and name in table.columns
        ]
    sens = _pick_sensitive(sensitive, infos, needed=(l is not None and l > 1) or t is not None)
    if sens is not None and sens not in table.columns:
        raise AnonymizationError(f"sensitive column {sens!r} was removed by the profile")
    rows_in = len(df)
    pre_suppressed = 0
    if qis:
        numeric = [
            q
            for q in qis
            if q not in (hierarchies or {}) and pd.api.types.is_numeric_dtype(table[q])
        ]
        missing = (
            table[numeric].isna().any(axis=1) if numeric else pd.Series(False, index=table.index)
        )
        pre_suppressed = int(missing.sum())
        if pre_suppressed > max_suppression * rows_in:
            worst = table[numeric].isna().sum().idxmax()
            raise AnonymizationError(
                f"{pre_suppressed} rows have missing values in numeric QIs (most in {worst!r}), "
                f"more than the suppression budget {max_suppression:.0%}"
            )
        if pre_suppressed:
            notes.append(f"{pre_suppressed} rows with missing numeric QI values suppressed")
        work = table[~missing].reset_index(drop=True)
        if k > len(work):
            raise AnonymizationError(f"k={k} is larger than the table ({len(work)} usable rows)")
        remaining = max(0.0, max_suppression - pre_suppressed / max(rows_in, 1))
        eff_model = PrivacyModel(
            k=k, l=l, l_kind=l_kind, c=c, t=t, max_suppression=min(remaining, 0.999)
        )
        if k == 1 and (l is None or l <= 1) and t is None:
            released = work.copy()
            for col in numeric:
                show = coded_formatter(sh.top_codes.get(col), sh.bottom_codes.get(col))
                released[col] = [show(float(v)) for v in work[col]]
            ncp, ncp_cols = 0.0, dict.fromkeys(qis, 0.0)
        else:
            res = mondrian(
                work,
                qis,
                eff_model,
                sensitive=sens,
                hierarchies=hierarchies,
                numeric=numeric,
                top_codes=sh.top_codes,
                bottom_codes=sh.bottom_codes,
            )
            released = res.released
            # rows suppressed before partitioning count as fully generalised as well
            ncp = (res.ncp * len(work) + pre_suppressed) / max(rows_in, 1)
            ncp_cols = {
                c_: (v * len(work) + pre_suppressed) / max(rows_in, 1)
                for c_, v in res.ncp_per_column.items()
            }
    else:
        notes.append("no quasi-identifiers: k-anonymity is vacuous")
        released = table.reset_index(drop=True)
        ncp, ncp_cols = 0.0, {}
    check: PrivacyCheck = (
        check_privacy(released, qis, sens, recursive_l=max(l or 2, 2))
        if qis
        else (PrivacyCheck(rows=len(released), classes=1 if len(released) else 0, k=len(released)))
    )
    verified = check.k >= k or check.rows == 0
    if l is not None and l > 1 and sens is not None:
        if l_kind is LDiversity.DISTINCT:
            verified &= (check.l_distinct or 0) >= l
        elif l_kind is LDiversity.ENTROPY:
            verified &= (check.l_entropy or 0.0) >= l - 1e-9
        else:
            verified &= check.recursive_c is not None and c > check.recursive_c
    if t is not None:
        verified &= check.t is not None and check.t <= t + 1e-9
    if not verified:
        raise AnonymizationError(
            f"the release failed independent verification (k={check.k}, l={check.l_distinct}, "
            f"t={check.t}); nothing was released"
        )
    risk: RiskReport = (
        reidentification_risk(released, qis, population)
        if qis
        else reidentification_risk(released.assign(_all=1), ["_all"])
    )
    util = utility_metrics(released, qis or [], k=k, total_rows=rows_in, ncp=ncp) if qis else None
    suppressed = rows_in - len(released)
    report = AnonymizationReport(
        profile=profile.value,
        rows_in=rows_in,
        rows_out=len(released),
        k_requested=k,
        k_achieved=check.k,
        suppressed_rows=suppressed,
        suppression_fraction=suppressed / max(rows_in, 1),
        equivalence_classes=check.classes,
        ncp=ncp,
        ncp_per_column=ncp_cols,
        discernibility=util.discernibility if util else len(released) ** 2,
        aecs=util.aecs if util else float(len(released)) / k,
        quasi_identifiers=list(qis),
        sensitive=sens,
        roles={name: info.role.value for name, info in infos.items()},
        kinds={name: (info.kind.value if info.kind else None) for name, info in infos.items()},
        actions={
            name: (a.action.value + (f" ({a.note})" if a.note else ""))
            for name, a in actions.items()
        },
        notes=notes,
        risk={
            "prosecutor_max": risk.prosecutor_max,
            "prosecutor_avg": risk.prosecutor_avg,
            "journalist_max": risk.journalist_max,
            "journalist_avg": risk.journalist_avg,
            "marketer": risk.marketer,
            "records_at_risk": risk.records_at_risk,
            "threshold": risk.threshold,
        },
        l_requested=l,
        l_kind=l_kind.value if l is not None else None,
        l_achieved=check.l_distinct,
        l_entropy=check.l_entropy,
        recursive_c=check.recursive_c,
        t_requested=t,
        t_achieved=check.t,
        safe_harbor_strict=sh.strict if profile is Profile.HIPAA_SAFE_HARBOR else None,
        text_spans=sh.text_spans,
        verified=True,
    )
    return AnonymizationResult(table=released, report=report)
