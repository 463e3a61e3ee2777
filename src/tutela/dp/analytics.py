"""Differentially private analytics over a table: count, sum, mean, variance, histogram, quantile.

A query names a column and, where the answer depends on the values, *declared* bounds (or
bins / categories). Bounds are never read from the data: values outside them are clamped,
so the sensitivity, the noise and the cost are fixed before any row is read. Every query is
planned first (:func:`plan`), which fixes its mechanisms, its events and its epsilon; a
:class:`PrivateTable` then charges the plan's event to the
:class:`~tutela.dp.ledger.PrivacyLedger` (scope: the dataset's content fingerprint, see
:func:`fingerprint`, or a name the caller chooses) and only then releases the noisy answer.

Budget splits (epsilon is the query's total):

========== ===================================================================
count      count: epsilon (discrete Laplace, sensitivity 1)
sum        sum: epsilon (Laplace, grid-rounded, sensitivity max(|L|, |U|))
mean       centred sum: epsilon/2 + count: epsilon/2
variance   centred sum: epsilon/3 + centred sum of squares: epsilon/3 + count: epsilon/3
histogram  counts: epsilon (discrete Laplace per bin; the bins are disjoint)
quantile   selection: epsilon (exponential mechanism over [L, U], Smith 2011)
========== ===================================================================

Split parts are put on the ledger's PLD grid (multiples of 1e-4 that add up to epsilon when
epsilon is itself such a multiple), so the ledger charges exactly the planned total.

Privacy: every query is pure epsilon-DP under add/remove one row, epsilon =
``QueryPlan.epsilon`` (at most the requested epsilon). Missing values count as absent
(they change nothing), so the behaviour does not depend on which rows hold them. Column
names and types are treated as public schema: a query that needs numbers (sum, mean,
variance, quantile, binned histogram) refuses a column holding any non-numeric value before
anything is charged, rather than answering over the numeric part of it.

The query model (:class:`Query`, :class:`Bounds`, :func:`parse_query`) lives in
:mod:`tutela.dp.query_model` and the table's ledger scope (:func:`fingerprint`) in
:mod:`tutela.dp.table_fingerprint`; both are re-exported here.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from tutela.dp.accounting import DEFAULT_PLD_DISCRETIZATION
from tutela.dp.events import ComposedEvent, Event
from tutela.dp.ledger import PrivacyLedger, SpendRecord
from tutela.dp.mechanisms import (
    DiscreteLaplaceMechanism,
    ExponentialMechanism,
    LaplaceMechanism,
)
from tutela.dp.query_model import (
    ALL_ROWS,
    NEEDS_BOUNDS,
    Bounds,
    Query,
    QueryError,
    QueryKind,
    parse_query,
)
from tutela.dp.table_fingerprint import fingerprint, read_csv
from tutela.hazmat.rng import SecureRandom

__all__ = [
    "Bounds",
    "PlannedStep",
    "PrivateTable",
    "Query",
    "QueryError",
    "QueryKind",
    "QueryPlan",
    "QueryResult",
    "fingerprint",
    "parse_query",
    "plan",
    "read_csv",
]

_SPLIT_GRID = round(1 / DEFAULT_PLD_DISCRETIZATION)  # parts are multiples of 1 / this

Answer: TypeAlias = int | float | dict[str, int]
Mechanism: TypeAlias = DiscreteLaplaceMechanism | LaplaceMechanism | ExponentialMechanism


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One mechanism of a plan: what it releases, its epsilon, sensitivity and event."""

    name: str
    epsilon: float
    sensitivity: float
    mechanism: Mechanism
    event: Event

    def describe(self) -> str:
        """e.g. ``"sum: epsilon 0.25 (Laplace b=240, sensitivity 60)"``."""
        m = self.mechanism
        if isinstance(m, DiscreteLaplaceMechanism):
            how = f"discrete Laplace b={m.scale:.6g}"
        elif isinstance(m, LaplaceMechanism):
            how = f"Laplace b={m.scale:.6g}, grid 2^{int(math.log2(m.granularity))}"
        else:
            how = "exponential mechanism"
        return f"{self.name}: epsilon {self.epsilon:.6g} ({how}, sensitivity {self.sensitivity:g})"


def _split(epsilon: float, parts: int) -> tuple[float, ...]:
    """``parts`` epsilons adding up to ``epsilon``, on the PLD grid when epsilon is on it."""
    units = epsilon * _SPLIT_GRID
    n = round(units)
    if abs(units - n) <= 1e-9 * max(1.0, units) and n >= parts:
        base = n // parts
        counts = [base] * (parts - 1) + [n - base * (parts - 1)]
        return tuple(c / _SPLIT_GRID for c in counts)
    return (epsilon / parts,) * parts


def _count_step(name: str, epsilon: float) -> PlannedStep:
    mech = DiscreteLaplaceMechanism.for_epsilon(epsilon, 1)
    return PlannedStep(name, mech.epsilon(1), 1.0, mech, mech.event(1))


def _laplace_step(name: str, epsilon: float, sensitivity: float) -> PlannedStep:
    mech = LaplaceMechanism.for_epsilon(epsilon, sensitivity)
    return PlannedStep(name, mech.epsilon(sensitivity), sensitivity, mech, mech.event(sensitivity))


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """What a query will release and what it costs, fixed before any data is read."""

    query: Query
    requested_epsilon: float
    steps: tuple[PlannedStep, ...]

    @property
    def epsilon(self) -> float:
        """Pure epsilon of the whole query (sum over its steps; at most the requested)."""
        return math.fsum(s.epsilon for s in self.steps)

    @property
    def event(self) -> Event:
        """The single event the ledger is charged with."""
        if len(self.steps) == 1:
            return self.steps[0].event
        return ComposedEvent(s.event for s in self.steps)

    def describe(self) -> str:
        """One line: the query, its total epsilon and its split."""
        parts = " + ".join(s.describe() for s in self.steps)
        return f"{self.query}: epsilon {self.epsilon:.6g} = {parts}"

    def _step(self, name: str) -> PlannedStep:
        return next(s for s in self.steps if s.name == name)

    def release_unaccounted(self, frame: pd.DataFrame, *, rng: SecureRandom) -> Answer:
        """Compute and noise the answer WITHOUT charging any ledger.

        Use :meth:`PrivateTable.query`, which charges first. This exists for callers that
        account elsewhere and for statistical tests of the mechanisms.
        """
        return _release(self, _exact(self.query, frame), rng)


def plan(query: Query, epsilon: float) -> QueryPlan:
    """The mechanisms, events and epsilon of ``query`` at total ``epsilon`` (reads no data).

    Privacy: the returned plan's release is ``plan.epsilon``-DP (pure) under add/remove
    one row, with ``plan.epsilon <= epsilon``; see the module docstring for the split.
    """
    eps = float(epsilon)
    if not (math.isfinite(eps) and eps > 0):
        raise QueryError(f"epsilon must be positive and finite, got {epsilon!r}")
    kind = query.kind
    steps: tuple[PlannedStep, ...]
    if kind in ("count", "histogram"):
        steps = (_count_step("count" if kind == "count" else "counts", eps),)
    elif kind == "sum":
        assert query.bounds is not None
        sens = max(abs(query.bounds.lower), abs(query.bounds.upper))
        steps = (_laplace_step("sum", eps, sens),)
    elif kind == "mean":
        assert query.bounds is not None
        e_sum, e_count = _split(eps, 2)
        steps = (
            _laplace_step("centred sum", e_sum, query.bounds.half_width),
            _count_step("count", e_count),
        )
    elif kind == "variance":
        assert query.bounds is not None
        h = query.bounds.half_width
        e1, e2, e3 = _split(eps, 3)
        steps = (
            _laplace_step("centred sum", e1, h),
            _laplace_step("centred sum of squares", e2, h * h / 2),
            _count_step("count", e3),
        )
    else:
        mech = ExponentialMechanism(eps, 1.0)
        steps = (PlannedStep("selection", eps, 1.0, mech, mech.event()),)
    return QueryPlan(query, eps, steps)


# -- exact statistics (never released as such) -----------------------------------------


@dataclass(frozen=True, slots=True)
class _Exact:
    count: int = 0
    sums: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()
    values: npt.NDArray[np.float64] | None = None


def _needs_numbers(query: Query) -> bool:
    return query.kind in NEEDS_BOUNDS or (query.kind == "histogram" and query.bins is not None)


def _numeric(frame: pd.DataFrame, column: str) -> npt.NDArray[np.float64]:
    """Finite numeric values of ``column`` (missing ones dropped).

    Raises:
        QueryError: the column holds a value that is not a number (the value is not shown).
    """
    raw = frame[column]
    coerced = pd.to_numeric(raw, errors="coerce")
    if bool((coerced.isna() & raw.notna()).any()):
        raise QueryError(
            f"column {column!r} is not numeric: it holds values that are not numbers; "
            "sum, mean, variance, quantile and histogram bins need a numeric column"
        )
    values = np.asarray(coerced.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    return np.asarray(values[np.isfinite(values)], dtype=np.float64)


def _check_column(query: Query, frame: pd.DataFrame) -> None:
    """The column exists and, where the query needs numbers, holds only numbers."""
    col = query.column
    if col == ALL_ROWS:
        return
    if col not in frame.columns:
        raise QueryError(_unknown_column(col, frame))
    if _needs_numbers(query):
        _numeric(frame, col)


def _exact(query: Query, frame: pd.DataFrame) -> _Exact:
    col = query.column
    if col != ALL_ROWS and col not in frame.columns:
        raise QueryError(_unknown_column(col, frame))
    if query.kind == "count":
        n = len(frame) if col == ALL_ROWS else int(frame[col].notna().sum())
        return _Exact(count=n)
    if query.kind == "histogram":
        if query.categories is not None:
            present = frame[col].dropna().astype(str)
            counts = tuple(int((present == c).sum()) for c in query.categories)
            return _Exact(counts=counts, labels=query.categories)
        assert query.bins is not None
        edges = np.asarray(query.bins, dtype=np.float64)
        x = np.clip(_numeric(frame, col), edges[0], edges[-1])
        idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
        counts = tuple(int(c) for c in np.bincount(idx, minlength=edges.size - 1))
        labels = tuple(
            f"[{a:g}, {b:g}{']' if i == edges.size - 2 else ')'}"
            for i, (a, b) in enumerate(itertools.pairwise(edges))
        )
        return _Exact(counts=counts, labels=labels)
    assert query.bounds is not None
    x = query.bounds.clamp(_numeric(frame, col))
    if query.kind == "sum":
        return _Exact(count=x.size, sums=(math.fsum(x),))
    if query.kind == "quantile":
        return _Exact(count=x.size, values=np.sort(x))
    y = x - query.bounds.centre
    h = query.bounds.half_width
    sums = (math.fsum(y), math.fsum(y * y - h * h / 2))
    return _Exact(count=x.size, sums=sums)


def _unknown_column(column: str, frame: pd.DataFrame) -> str:
    names = [str(c) for c in frame.columns]
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"unknown column {column!r}; the table has: {shown or '(no columns)'}"


def _release(p: QueryPlan, exact: _Exact, rng: SecureRandom) -> Answer:
    q = p.query
    if q.kind in ("count", "histogram"):
        mech = p.steps[0].mechanism
        assert isinstance(mech, DiscreteLaplaceMechanism)
        if q.kind == "count":
            return int(mech.release(exact.count, rng=rng))  # type: ignore[arg-type]
        noisy = np.asarray(mech.release(np.asarray(exact.counts, dtype=np.int64), rng=rng))
        return {label: int(v) for label, v in zip(exact.labels, noisy, strict=True)}
    assert q.bounds is not None
    if q.kind == "sum":
        return _laplace(p.steps[0], exact.sums[0], rng)
    if q.kind == "quantile":
        assert exact.values is not None
        assert q.quantile is not None
        return _smith_quantile(exact.values, q.bounds, q.quantile, p.steps[0].mechanism, rng)
    count_mech = p._step("count").mechanism
    assert isinstance(count_mech, DiscreteLaplaceMechanism)
    s1 = _laplace(p._step("centred sum"), exact.sums[0], rng)
    s2 = (
        _laplace(p._step("centred sum of squares"), exact.sums[1], rng)
        if q.kind == "variance"
        else 0.0
    )
    n = max(1, int(count_mech.release(exact.count, rng=rng)))  # type: ignore[arg-type]
    h = q.bounds.half_width
    mean_c = s1 / n
    if q.kind == "mean":
        return float(np.clip(q.bounds.centre + mean_c, q.bounds.lower, q.bounds.upper))
    var = s2 / n + h * h / 2 - mean_c * mean_c
    return float(np.clip(var, 0.0, h * h))


def _laplace(step: PlannedStep, value: float, rng: SecureRandom) -> float:
    mech = step.mechanism
    assert isinstance(mech, LaplaceMechanism)
    return float(mech.release(value, rng=rng))  # type: ignore[arg-type]


def _smith_quantile(
    values: npt.NDArray[np.float64],
    bounds: Bounds,
    q: float,
    mech: Mechanism,
    rng: SecureRandom,
) -> float:
    """Smith (2011): pick a gap between sorted clamped values with probability
    proportional to length x exp(epsilon u / 2), u = -|rank - q n|, then a uniform point."""
    assert isinstance(mech, ExponentialMechanism)
    edges = np.concatenate(([bounds.lower], values, [bounds.upper]))
    lengths = np.diff(edges)
    ranks = np.arange(lengths.size, dtype=np.float64)  # values below gap i: i
    utility = -np.abs(ranks - q * values.size)
    keep = lengths > 0  # zero-length gaps have probability 0
    lo, widths = edges[:-1][keep], lengths[keep]
    # exp(eps u' / 2) = length * exp(eps u / 2) with u' = u + (2 / eps) log(length)
    adjusted = utility[keep] + (2 * mech.sensitivity / mech.epsilon) * np.log(widths)
    i = mech.select(adjusted, rng=rng)
    point = lo[i] + rng.uniform(1)[0] * widths[i]
    return float(min(max(point, bounds.lower), bounds.upper))


# -- the table ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryResult:
    """A released answer with its cost and the ledger record that paid for it."""

    query: Query
    answer: Answer
    epsilon: float
    record: SpendRecord


class PrivateTable:
    """A DataFrame behind a privacy ledger: only DP answers come out, each paid for first.

    Args:
        data: the rows (neighbouring tables differ by one added or removed row).
        name: the ledger scope; it must exist in ``ledger``. Use :func:`fingerprint` of
            the data so that every copy of it shares one budget.
        ledger: where every query is charged before its answer is released.
        rng: noise source; a fresh OS-keyed :class:`SecureRandom` by default.

    Privacy: each :meth:`query` is ``plan.epsilon``-DP (pure, add/remove one row) and the
    ledger refuses it, releasing nothing, if the scope's composed epsilon would pass its
    budget.
    """

    def __init__(
        self,
        data: pd.DataFrame,
        *,
        name: str,
        ledger: PrivacyLedger,
        rng: SecureRandom | None = None,
    ) -> None:
        if not isinstance(data, pd.DataFrame):
            raise TypeError("data must be a pandas DataFrame")
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty string")
        self._data = data
        self._name = name
        self._ledger = ledger
        self._rng = rng if rng is not None else SecureRandom()

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        *,
        ledger: PrivacyLedger,
        name: str | None = None,
        rng: SecureRandom | None = None,
    ) -> PrivateTable:
        """Load a CSV; the scope defaults to its content :func:`fingerprint`."""
        frame = read_csv(path)
        return cls(frame, name=name or fingerprint(frame), ledger=ledger, rng=rng)

    @property
    def scope(self) -> str:
        """The ledger scope charged by this table's queries."""
        return self._name

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names (public schema)."""
        return tuple(str(c) for c in self._data.columns)

    def _query(self, query: Query | str) -> Query:
        q = parse_query(query) if isinstance(query, str) else query
        _check_column(q, self._data)
        return q

    def plan(self, query: Query | str, epsilon: float) -> QueryPlan:
        """The cost of ``query`` before it runs: mechanisms, events, epsilon (no spend)."""
        return plan(self._query(query), epsilon)

    def preview(self, query_plan: QueryPlan) -> float:
        """The scope's composed epsilon if ``query_plan`` were charged now (no spend)."""
        return self._ledger.preview(self._name, query_plan.event)

    def query(
        self,
        query: Query | str | QueryPlan,
        epsilon: float | None = None,
        *,
        label: str | None = None,
    ) -> QueryResult:
        """Charge the ledger, then release the DP answer.

        Args:
            query: a :class:`Query`, a query string (``count`` only needs no bounds) or a
                plan from :meth:`plan` (then ``epsilon`` must be ``None``).
            epsilon: the query's total epsilon.
            label: ledger label; the query text by default.

        Raises:
            BudgetExceeded: the scope cannot afford it; nothing was spent or released.
            LedgerError: the scope does not exist in the ledger.
            QueryError: unknown or non-numeric column, or malformed query (before any
                spend).

        Privacy: the answer is ``plan.epsilon``-DP (pure, add/remove one row); the ledger
        records ``plan.event`` before the answer is computed from noise.
        """
        if isinstance(query, QueryPlan):
            if epsilon is not None:
                raise ValueError("pass either a plan or a query and epsilon")
            p = plan(self._query(query.query), query.requested_epsilon)
        else:
            if epsilon is None:
                raise ValueError("epsilon is required")
            p = self.plan(query, epsilon)
        exact = _exact(p.query, self._data)  # validate and compute before spending
        record = self._ledger.charge(self._name, p.event, label=label or f"dp query {p.query}")
        answer = _release(p, exact, self._rng)
        return QueryResult(p.query, answer, p.epsilon, record)
