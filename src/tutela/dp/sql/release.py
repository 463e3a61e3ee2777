"""Releasing a query's statistics with Gaussian noise, reading answers and confidence
intervals from them, and the single-site entry point that charges a ledger first.

One release mechanism serves a single site and a consortium: Gaussian noise of standard
deviation ``sigma`` on every coordinate of the statistics vector (:mod:`tutela.dp.sql.engine`),
whose L2 sensitivity is the shape's. At one site the noise is drawn here
(:func:`release_local`); across sites it is the distributed discrete-Gaussian noise inside a
SecAgg+ sum, whose total is at least ``sigma`` with the round's minimum of survivors. Either
way the noise multiplier ``z = sigma / sensitivity`` is calibrated from the query's epsilon
at the budget's delta (:func:`noise_multiplier`) and the ledger is charged
``GaussianEvent(z)`` before anything is computed from noise.

Answers (:func:`answer_frame`) are post-processing of the noisy vector: counts and sums are
the noisy statistics themselves (unbiased: the noise has mean zero, so a count may come out
fractional or, for a tiny cohort, negative); a mean is ``mid + half * sum(u) / count``
clipped to the bounds; a variance ``half^2 * (sum(u^2)/n - (sum(u)/n)^2)`` clipped to
``[0, half^2]``; a quantile is read from the noisy histogram's cumulative counts. Confidence
intervals cover the noise only (not sampling): exact normal intervals for counts, sums and
histogram bins, and for means, variances and quantiles the percentiles of the same
post-processing over simulated noise of the stated ``sigma`` around the released statistics
(a parametric bootstrap: it uses only public values).

Privacy: a release with ``sigma >= z * (sensitivity + g sqrt(dim))`` (``g`` the rounding
grid) is ``GaussianEvent(z)``: (epsilon, delta)-DP under adding or removing one row, for the
epsilon the accountant gives at delta; it is what :class:`SqlTable` charges.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pandas as pd

from tutela.dp.accounting import AccountantKind, calibrate_noise_multiplier, compute_epsilon
from tutela.dp.events import ComposedEvent, Event, GaussianEvent
from tutela.dp.ledger import PrivacyLedger, SpendRecord
from tutela.dp.sql.engine import (
    QueryShape,
    SiteStatistics,
    SqlPolicy,
    TableSource,
    check,
    evaluate,
)
from tutela.dp.sql.parse import Aggregate, AggregateKind, SelectQuery, SqlError, parse_sql
from tutela.errors import BudgetExceeded, PolicyViolation
from tutela.hazmat.noise import rounded_gaussian64_granularity, sample_rounded_gaussian64
from tutela.hazmat.rng import SecureRandom

__all__ = [
    "SqlAnswer",
    "SqlTable",
    "answer_frame",
    "noise_multiplier",
    "query_epsilon",
    "release_local",
]

CONFIDENCE = 0.95
"""Coverage of the confidence intervals."""
_SIMULATIONS = 4000


def noise_multiplier(epsilon: float, delta: float) -> float:
    """z of one Gaussian release that is (epsilon, delta)-DP (the ledger's PLD accountant).

    Raises:
        ValueError: epsilon not positive and finite, or delta not in (0, 1).
    """
    eps = float(epsilon)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"epsilon must be positive and finite, got {epsilon!r}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    return calibrate_noise_multiplier(eps, delta, 1.0, 1, AccountantKind.PLD)


def query_epsilon(z: float, delta: float) -> float:
    """Epsilon at ``delta`` of one Gaussian release with noise multiplier ``z``."""
    return compute_epsilon(GaussianEvent(z), delta, AccountantKind.PLD)


def release_local(
    stats: SiteStatistics, z: float, *, rng: SecureRandom | None = None
) -> tuple[npt.NDArray[np.float64], float]:
    """The statistics with Gaussian noise of multiplier at least ``z``, and its sigma.

    The vector is rounded to the noise's grid ``g`` first and the noise is a multiple of
    ``g``, so the sensitivity grows by at most ``g sqrt(dim)``, which sigma covers.

    Privacy: ``GaussianEvent(z)`` under adding or removing one row (the caller charges it).
    """
    shape = stats.shape
    delta2 = shape.sensitivity
    sigma = z * delta2 * (1 + 1e-6)
    grid = rounded_gaussian64_granularity(sigma)
    while sigma < z * (delta2 + grid * math.sqrt(shape.dim)):  # pragma: no cover - 2**-40
        sigma *= 1 + 1e-6
        grid = rounded_gaussian64_granularity(sigma)
    noise = sample_rounded_gaussian64(sigma, shape.dim, rng=rng)
    return np.rint(stats.vector / grid) * grid + noise, sigma


# -- answers -------------------------------------------------------------------------------


def _quantile(counts: npt.NDArray[np.float64], agg: Aggregate) -> npt.NDArray[np.float64]:
    """The q-quantile read from noisy bin counts (rows: simulations), linear within a bin."""
    assert agg.bounds is not None
    assert agg.quantile is not None
    assert agg.bins is not None
    c = np.clip(np.atleast_2d(counts), 0.0, None)
    total = c.sum(axis=1)
    cum = np.cumsum(c, axis=1)
    target = agg.quantile * total
    k = np.minimum((cum < target[:, None]).sum(axis=1), agg.bins - 1)
    rows = np.arange(c.shape[0])
    before = np.where(k > 0, cum[rows, np.maximum(k - 1, 0)], 0.0)
    inside = np.where(
        c[rows, k] > 0, (target - before) / np.where(c[rows, k] > 0, c[rows, k], 1), 0.5
    )
    width = (agg.bounds.upper - agg.bounds.lower) / agg.bins
    value = agg.bounds.lower + (k + np.clip(inside, 0.0, 1.0)) * width
    return np.asarray(np.where(total > 0, value, agg.bounds.centre), np.float64)


def _ratio(
    kind: AggregateKind, agg: Aggregate, parts: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Mean or variance from (count, sum u[, sum u^2]) columns (rows: simulations)."""
    assert agg.bounds is not None
    n = np.maximum(parts[:, 0], 1.0)
    m = parts[:, 1] / n
    half = agg.bounds.half_width
    if kind is AggregateKind.AVG:
        return np.clip(agg.bounds.centre + half * m, agg.bounds.lower, agg.bounds.upper)
    var = half * half * (parts[:, 2] / n - m * m)
    return np.clip(var, 0.0, half * half)


def answer_frame(shape: QueryShape, noisy: npt.NDArray[np.float64], sigma: float) -> pd.DataFrame:
    """The answer table: one row per group, one column per aggregate (a histogram: one per
    bin), each with ``<name>_ci_low`` and ``<name>_ci_high`` at :data:`CONFIDENCE`.

    ``sigma`` is the noise's standard deviation on every statistic.
    """
    noisy = np.asarray(noisy, np.float64)
    if noisy.shape != (shape.dim,):
        raise ValueError(f"expected {shape.dim} statistics, got {noisy.shape}")
    zq = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    lo_p, hi_p = 100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2
    # Simulated noise for the intervals of non-linear answers: post-processing of public
    # values (the released vector and the stated sigma), seeded by them so that the same
    # answer always gets the same intervals. Not privacy noise.
    seed = int.from_bytes(hashlib.sha256(noisy.tobytes()).digest()[:8], "big")
    sim = np.random.default_rng(seed)
    q = shape.query
    records: list[dict[str, object]] = []
    for g, key in enumerate(shape.group_keys):
        row: dict[str, object] = dict(zip(q.group_by, key, strict=True))

        def put(
            name: str, value: float, low: float, high: float, row: dict[str, object] = row
        ) -> None:
            row[name] = float(value)
            row[f"{name}_ci_low"] = float(low)
            row[f"{name}_ci_high"] = float(high)

        for i, agg in enumerate(q.aggregates):
            if agg.kind in (AggregateKind.COUNT, AggregateKind.SUM):
                scale = 1.0
                if agg.kind is AggregateKind.SUM:
                    assert agg.bounds is not None
                    scale = max(abs(agg.bounds.lower), abs(agg.bounds.upper))
                v = noisy[shape.index(g, i, agg.kind.value)] * scale
                put(agg.name, v, v - zq * sigma * scale, v + zq * sigma * scale)
            elif agg.kind in (AggregateKind.AVG, AggregateKind.VARIANCE):
                stats = ["count", "sum"] + (
                    ["sum_sq"] if agg.kind is AggregateKind.VARIANCE else []
                )
                parts = np.array([noisy[shape.index(g, i, s)] for s in stats])
                value = _ratio(agg.kind, agg, parts[None, :])[0]
                draws = parts + sigma * sim.standard_normal((_SIMULATIONS, parts.size))
                spread = _ratio(agg.kind, agg, draws)
                put(agg.name, value, *np.percentile(spread, [lo_p, hi_p]))
            elif agg.kind is AggregateKind.HISTOGRAM:
                for label, j in zip(shape.bin_labels(i), shape.bin_indices(g, i), strict=True):
                    v = noisy[j]
                    put(f"{agg.name}[{label}]", v, v - zq * sigma, v + zq * sigma)
            else:
                counts = noisy[shape.bin_indices(g, i)]
                value = _quantile(counts, agg)[0]
                draws = counts + sigma * sim.standard_normal((_SIMULATIONS, counts.size))
                put(agg.name, value, *np.percentile(_quantile(draws, agg), [lo_p, hi_p]))
        records.append(row)
    return pd.DataFrame.from_records(records)


# -- one site ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlAnswer:
    """A released answer, its noise and what it cost.

    Attributes:
        frame: the answer table (see :func:`answer_frame`).
        shape: the query's layout.
        statistics: the noisy statistics the answer was read from.
        sigma: the noise's standard deviation on every statistic.
        noise_multiplier: sigma over the sensitivity (at least the calibrated z).
        epsilon: the query's epsilon at ``delta``.
        delta: the budget's delta.
        record: the ledger record that paid for it (``None`` when a caller charged
            elsewhere).
        cohort_record: the ledger record of the minimum-cohort test (``None`` without
            a minimum).
    """

    frame: pd.DataFrame
    shape: QueryShape
    statistics: npt.NDArray[np.float64]
    sigma: float
    noise_multiplier: float
    epsilon: float
    delta: float
    record: SpendRecord | None = None
    cohort_record: SpendRecord | None = None


def check_query_epsilon(epsilon: float, policy: SqlPolicy) -> None:
    """Refuse an epsilon above the site's per-query cap.

    Raises:
        PolicyViolation: over the cap (nothing charged).
    """
    cap = policy.max_query_epsilon
    if cap is not None and epsilon > cap * (1 + 1e-9):
        raise PolicyViolation(
            f"query refused: epsilon {epsilon:g} exceeds this site's maximum of {cap:g} per query"
        )


class SqlTable:
    """One table behind a site's limits and a privacy ledger: DP SQL at a single site.

    Args:
        data: a CSV or Parquet file (scanned by DuckDB) or a DataFrame.
        policy: what queries may touch (columns, categories, minimum cohort, epsilon cap).
        ledger: where every query is charged before its answer is computed.
        scope: the ledger scope (it must exist); the data's content fingerprint (see
            :func:`~tutela.dp.analytics.fingerprint`) shares one budget among its copies.
        rng: noise source; the OS CSPRNG by default.

    Privacy: each :meth:`query` is ``GaussianEvent(z)`` with ``z`` calibrated to its
    epsilon at the scope's delta, charged before noise is drawn. With a minimum cohort the
    query first runs the noisy cohort test (:mod:`tutela.dp.sql.cohort`) at
    ``policy.cohort_share`` of its epsilon, charged before it is decided; a cohort refusal
    charges the test and nothing more. Other refusals (policy, budget: checked for the test
    and the release together) charge nothing and release nothing.
    """

    def __init__(
        self,
        data: str | Path | pd.DataFrame,
        *,
        policy: SqlPolicy,
        ledger: PrivacyLedger,
        scope: str,
        rng: SecureRandom | None = None,
    ) -> None:
        self._source = TableSource.of(data)
        self._policy = policy
        self._ledger = ledger
        self._scope = scope
        self._rng = rng if rng is not None else SecureRandom()
        self._header = self._source.header()

    @property
    def columns(self) -> dict[str, str]:
        """The table's columns and their types (public schema)."""
        return dict(self._header)

    def shape(self, sql: str | SelectQuery) -> QueryShape:
        """Parse and check a query (reads no row, spends nothing)."""
        query = parse_sql(sql) if isinstance(sql, str) else sql
        return check(query, self._policy, self._header)

    def query(
        self, sql: str | SelectQuery, epsilon: float, *, label: str | None = None
    ) -> SqlAnswer:
        """Check, evaluate, charge the ledger, then release the answer.

        Raises:
            SqlError: the query is not in the restricted SQL or does not fit the table.
            PolicyViolation: a column outside the policy or an epsilon above its cap
                (nothing charged); a cohort below its minimum by the noisy test (the test
                charged, nothing more).
            BudgetExceeded: the scope cannot afford the test and the release (nothing
                charged).
        """
        from tutela.dp.sql.cohort import cohort_test

        shape = self.shape(sql)
        check_query_epsilon(float(epsilon), self._policy)
        delta = self._ledger.budget(self._scope).delta
        z = noise_multiplier(epsilon, delta)
        policy = self._policy
        test = cohort_test(policy.min_cohort, policy.cohort_share, float(epsilon))
        event = GaussianEvent(z)
        self._preview(event if test is None else ComposedEvent([test.event, event]))
        stats = evaluate(shape, self._source)
        text = sql if isinstance(sql, str) else "query"
        text = label or f"dp sql: {text}"
        cohort_record = None
        if test is not None:
            cohort_record = self._ledger.charge(
                self._scope, test.event, label=f"minimum-cohort test of {text}"[:500]
            )
            refused = test.decide(stats, rng=self._rng)
            if refused is not None:
                raise PolicyViolation(refused)
        record = self._ledger.charge(self._scope, event, label=text[:500])
        noisy, sigma = release_local(stats, z, rng=self._rng)
        return SqlAnswer(
            answer_frame(shape, noisy, sigma), shape, noisy, sigma, sigma / shape.sensitivity,
            query_epsilon(z, delta), delta, record, cohort_record,
        )  # fmt: skip

    def _preview(self, event: Event) -> None:
        """Refuse, charging nothing, what the scope cannot afford."""
        after = self._ledger.preview(self._scope, event)
        budget = self._ledger.budget(self._scope)
        if after > budget.epsilon * (1 + 1e-9):
            raise BudgetExceeded(
                f"privacy budget of {self._scope!r} exceeded: this query would bring epsilon "
                f"to {after:.4g} (delta={budget.delta:g}) but the budget is "
                f"{budget.epsilon:g}; nothing was spent"
            )


__all__ += ["SqlError", "check_query_epsilon"]
