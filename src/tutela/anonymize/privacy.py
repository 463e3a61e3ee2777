"""An independent checker for released tables: k, l, t, utility and re-identification risk.

Nothing here reuses the anonymiser's internals: every measure is recomputed from the
released table itself by grouping on the (generalised) quasi-identifier values, so a bug in
the partitioning cannot hide from it. The tests cross-check it against ``pycanon``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd


def _keys(df: pd.DataFrame, qis: Sequence[str]) -> npt.NDArray[np.int64]:
    missing = [c for c in qis if c not in df.columns]
    if missing:
        raise ValueError(f"unknown column {missing[0]!r}")
    if not len(df):
        return np.empty(0, dtype=np.int64)
    frame = df[list(qis)].astype("string").fillna("\x00NA")
    groups = frame.groupby(list(qis), sort=False, dropna=False).ngroup()
    return np.asarray(groups, dtype=np.int64)


def class_sizes(df: pd.DataFrame, qis: Sequence[str]) -> npt.NDArray[np.int64]:
    """Sizes of the equivalence classes (rows sharing every QI value)."""
    keys = _keys(df, qis)
    return np.bincount(keys).astype(np.int64) if len(keys) else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class PrivacyCheck:
    """What a released table actually achieves.

    Attributes:
        rows: released rows.
        classes: number of equivalence classes.
        k: smallest class size (0 for an empty table).
        l_distinct: fewest distinct sensitive values in a class (``None`` without one).
        l_entropy: ``exp`` of the smallest class entropy of the sensitive attribute.
        recursive_c: smallest ``c`` for which recursive (c, ``l``)-diversity holds at the
            ``l`` given to :func:`check_privacy` (holds iff ``c > recursive_c``).
        t: largest earth mover's distance between a class and the whole table.
    """

    rows: int
    classes: int
    k: int
    l_distinct: int | None = None
    l_entropy: float | None = None
    recursive_c: float | None = None
    t: float | None = None


def check_privacy(
    df: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    sensitive: str | None = None,
    *,
    recursive_l: int = 2,
) -> PrivacyCheck:
    """Measure k-anonymity, l-diversity (distinct, entropy, recursive) and t-closeness.

    t-closeness uses the ordered distance for numeric sensitive attributes and the equal
    distance for categorical ones, relative to the distribution over ``df`` itself.
    """
    keys = _keys(df, quasi_identifiers)
    n = len(keys)
    if n == 0:
        return PrivacyCheck(rows=0, classes=0, k=0)
    sizes = np.bincount(keys)
    base = PrivacyCheck(rows=n, classes=len(sizes), k=int(sizes.min()))
    if sensitive is None:
        return base
    if sensitive not in df.columns:
        raise ValueError(f"unknown column {sensitive!r}")
    col = df[sensitive]
    numeric = bool(pd.api.types.is_numeric_dtype(col)) and not col.isna().any()
    if numeric:
        _, sa = np.unique(col.to_numpy(dtype=np.float64), return_inverse=True)
    else:
        _, sa = np.unique(
            col.astype("string").fillna("\x00NA").to_numpy(dtype=str), return_inverse=True
        )
    sa = sa.ravel().astype(np.int64)
    m = int(sa.max()) + 1
    table = np.bincount(keys * m + sa, minlength=len(sizes) * m).reshape(len(sizes), m)
    distinct = (table > 0).sum(axis=1)
    q = table / sizes[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(q > 0, q * np.log(q), 0.0).sum(axis=1)
    rc = 0.0
    ordered = -np.sort(-table, axis=1)
    for row, d in zip(ordered, distinct, strict=True):
        if d < recursive_l:
            rc = math.inf
            break
        tail = float(row[recursive_l - 1 :].sum())
        rc = max(rc, float(row[0]) / tail)
    p = np.bincount(sa, minlength=m) / n
    diff = q - p[None, :]
    if numeric:
        emd = np.abs(np.cumsum(diff, axis=1)).sum(axis=1) / max(m - 1, 1)
    else:
        emd = 0.5 * np.abs(diff).sum(axis=1)
    return PrivacyCheck(
        rows=n,
        classes=len(sizes),
        k=int(sizes.min()),
        l_distinct=int(distinct.min()),
        l_entropy=float(math.exp(ent.min())),
        recursive_c=rc,
        t=float(emd.max()),
    )


@dataclass(frozen=True)
class UtilityMetrics:
    """Information loss of a release.

    Attributes:
        ncp: normalised certainty penalty in [0, 1] (suppressed rows count 1).
        discernibility: sum of squared class sizes plus ``suppressed * total`` rows.
        aecs: average equivalence class size divided by k (1 is ideal).
        classes: number of equivalence classes.
        suppressed: suppressed rows.
    """

    ncp: float
    discernibility: int
    aecs: float
    classes: int
    suppressed: int


def utility_metrics(
    released: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    *,
    k: int,
    total_rows: int,
    ncp: float,
) -> UtilityMetrics:
    """Discernibility, AECS and class count of ``released`` (``ncp`` from the anonymiser)."""
    sizes = class_sizes(released, quasi_identifiers)
    suppressed = total_rows - len(released)
    disc = int((sizes.astype(np.int64) ** 2).sum()) + suppressed * total_rows
    aecs = (len(released) / len(sizes)) / k if len(sizes) else 0.0
    return UtilityMetrics(
        ncp=ncp, discernibility=disc, aecs=aecs, classes=len(sizes), suppressed=suppressed
    )


@dataclass(frozen=True)
class RiskReport:
    """Re-identification risk of a release (El Emam's three attacker models).

    Attributes:
        prosecutor_max: 1 / smallest class (attacker knows the target is in the data).
        prosecutor_avg: classes / rows.
        journalist_max: 1 / smallest matching population class (target may not be in it).
        journalist_avg: average over released classes of 1 / population class size.
        marketer: expected fraction of records re-identified when matching all of them.
        records_at_risk: fraction of released rows whose prosecutor risk exceeds the
            threshold.
        threshold: the threshold used for ``records_at_risk``.
    """

    prosecutor_max: float
    prosecutor_avg: float
    journalist_max: float
    journalist_avg: float
    marketer: float
    records_at_risk: float
    threshold: float


def reidentification_risk(
    released: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    population: pd.DataFrame | None = None,
    *,
    threshold: float = 0.2,
) -> RiskReport:
    """Prosecutor, journalist and marketer risk of ``released``.

    Args:
        released: the released table.
        quasi_identifiers: the QI columns.
        population: the population the sample was drawn from, in the same generalised
            coding (default: the release itself, i.e. a census release, where journalist
            risk equals prosecutor risk).
        threshold: prosecutor-risk threshold for ``records_at_risk``.

    Privacy: these are the standard equivalence-class estimates; they assume the attacker
    knows exactly the declared quasi-identifiers and nothing else.
    """
    qis = list(quasi_identifiers)
    n = len(released)
    if n == 0:
        return RiskReport(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, threshold)
    frame = released[qis].astype("string").fillna("\x00NA")
    f = frame.value_counts(dropna=False)
    pop = population if population is not None else released
    F_all = pop[qis].astype("string").fillna("\x00NA").value_counts(dropna=False)
    F = F_all.reindex(f.index).fillna(0).to_numpy(dtype=np.float64)
    fv = f.to_numpy(dtype=np.float64)
    F = np.maximum(F, fv)  # a class is never smaller in the population than in the sample
    per_record = 1.0 / fv
    return RiskReport(
        prosecutor_max=float(per_record.max()),
        prosecutor_avg=float(len(fv) / n),
        journalist_max=float((1.0 / F).max()),
        journalist_avg=float((1.0 / F).mean()),
        marketer=float((fv / F).sum() / n),
        records_at_risk=float(fv[per_record > threshold].sum() / n),
        threshold=threshold,
    )
