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
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias, get_args

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
from tutela.errors import DataError
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

QueryKind: TypeAlias = Literal["count", "sum", "mean", "variance", "histogram", "quantile"]
_KINDS: tuple[str, ...] = get_args(QueryKind)
_NEEDS_BOUNDS = frozenset({"sum", "mean", "variance", "quantile"})
_FINGERPRINT_PREFIX = "table:sha256:"
_SPLIT_GRID = round(1 / DEFAULT_PLD_DISCRETIZATION)  # parts are multiples of 1 / this
_ALL_ROWS = "*"

Answer: TypeAlias = int | float | dict[str, int]
Mechanism: TypeAlias = DiscreteLaplaceMechanism | LaplaceMechanism | ExponentialMechanism


class QueryError(ValueError):
    """A query is malformed: unknown function or column, missing bounds, bad parameters."""


def _finite(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise QueryError(f"{name} must be finite, got {value!r}")
    return v


@dataclass(frozen=True, slots=True)
class Bounds:
    """Declared value range [lower, upper] of a numeric column (never read from data)."""

    lower: float
    upper: float

    def __post_init__(self) -> None:
        lo, hi = _finite("lower bound", self.lower), _finite("upper bound", self.upper)
        if not lo < hi:
            raise QueryError(f"bounds need lower < upper, got {self.lower}, {self.upper}")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @classmethod
    def parse(cls, text: str) -> Bounds:
        """Parse ``"LOWER,UPPER"`` (e.g. ``"0,120"``)."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2:
            raise QueryError(f"bounds must be 'LOWER,UPPER', got {text!r}")
        try:
            return cls(float(parts[0]), float(parts[1]))
        except ValueError as exc:
            if isinstance(exc, QueryError):
                raise
            raise QueryError(f"bounds must be two numbers 'LOWER,UPPER', got {text!r}") from None

    @property
    def centre(self) -> float:
        """(lower + upper) / 2."""
        return (self.lower + self.upper) / 2

    @property
    def half_width(self) -> float:
        """(upper - lower) / 2."""
        return (self.upper - self.lower) / 2

    def clamp(self, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Values clipped into [lower, upper]."""
        return np.clip(np.asarray(values, dtype=np.float64), self.lower, self.upper)


@dataclass(frozen=True, slots=True)
class Query:
    """One DP query over a column.

    Args:
        kind: count, sum, mean, variance, histogram or quantile.
        column: the column; ``"*"`` for ``count(*)`` (all rows).
        bounds: declared range; required for sum, mean, variance and quantile.
        quantile: the quantile q in [0, 1] (quantile queries only).
        bins: strictly increasing numeric bin edges (histogram; values are clamped to
            [first edge, last edge], bins are [e_i, e_i+1) and the last one is closed).
        categories: declared categories (histogram; values compared as strings, rows with
            other values are not counted).

    Privacy: each kind at total epsilon e is pure e-DP under add/remove one row, values
    clamped to the declared bounds [L, U] (h = (U - L) / 2):

    - count: discrete Laplace of scale 1/e on the number of non-missing values (``*``:
      rows); sensitivity 1.
    - sum: grid-rounded Laplace of scale max(|L|, |U|)/e on the clamped sum.
    - mean: centred sum (sensitivity h) at e/2 and count at e/2; the answer
      (L + U)/2 + sum / max(1, count), clipped to [L, U], is post-processing.
    - variance: centred sum (h) at e/3, centred sum of squares (h**2 / 2) at e/3 and count
      at e/3; the population variance, clipped to [0, h**2], is post-processing.
    - histogram: discrete Laplace of scale 1/e on every bin count; one row is in at most
      one bin, so the L1 sensitivity is 1.
    - quantile: exponential mechanism with utility -|rank - q n| (sensitivity 1) over
      [L, U], density proportional to exp(e u / 2) (Smith 2011).
    """

    kind: QueryKind
    column: str
    bounds: Bounds | None = None
    quantile: float | None = None
    bins: tuple[float, ...] | None = None
    categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise QueryError(f"unknown function {self.kind!r}; expected one of {', '.join(_KINDS)}")
        if not isinstance(self.column, str) or not self.column:
            raise QueryError("a query needs a column name")
        if self.column == _ALL_ROWS and self.kind != "count":
            raise QueryError(f"{self.kind}(*) is not defined; name a column")
        if self.kind in _NEEDS_BOUNDS and self.bounds is None:
            raise QueryError(
                f"{self.kind}({self.column}) needs declared bounds (e.g. --bounds 0,120); "
                "they are never read from the data"
            )
        if self.kind == "quantile":
            if self.quantile is None:
                raise QueryError("quantile needs q, e.g. quantile(age, 0.5)")
            q = _finite("quantile", self.quantile)
            if not 0 <= q <= 1:
                raise QueryError(f"quantile must be in [0, 1], got {self.quantile}")
        elif self.quantile is not None:
            raise QueryError(f"{self.kind} takes no quantile")
        if self.kind == "histogram":
            if (self.bins is None) == (self.categories is None):
                raise QueryError(
                    f"histogram({self.column}) needs declared bins or categories (exactly one)"
                )
            if self.bins is not None:
                edges = tuple(_finite("bin edge", e) for e in self.bins)
                if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
                    raise QueryError("bins must be at least two strictly increasing edges")
                object.__setattr__(self, "bins", edges)
            if self.categories is not None:
                cats = tuple(str(c) for c in self.categories)
                if not cats or len(set(cats)) != len(cats):
                    raise QueryError("categories must be non-empty and distinct")
                object.__setattr__(self, "categories", cats)
        elif self.bins is not None or self.categories is not None:
            raise QueryError(f"{self.kind} takes no bins or categories")

    def __str__(self) -> str:
        if self.kind == "quantile":
            return f"quantile({self.column}, {self.quantile:g})"
        return f"{self.kind}({self.column})"


_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$", re.DOTALL)


def _unquote(text: str) -> str:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"`":
        t = t[1:-1]
    return t


def parse_query(
    text: str,
    *,
    bounds: Bounds | tuple[float, float] | None = None,
    bins: Sequence[float] | None = None,
    categories: Sequence[str] | None = None,
) -> Query:
    """Parse ``"mean(age)"``, ``"count(*)"``, ``"histogram(sex)"``, ``"quantile(age, 0.5)"``.

    Bounds, bins and categories are declared by the caller (not in the string). Bounds are
    ignored by ``count`` and ``histogram``, so one ``--bounds`` can serve several queries.

    Raises:
        QueryError: malformed text, unknown function, missing bounds or parameters.
    """
    if not isinstance(text, str):
        raise QueryError("a query must be a string like 'mean(age)'")
    match = _CALL.match(text)
    if match is None:
        raise QueryError(f"cannot parse query {text!r}; expected e.g. 'mean(age)'")
    name, args_text = match.group(1).lower(), match.group(2)
    if name not in _KINDS:
        raise QueryError(
            f"unknown function {match.group(1)!r} in {text.strip()!r}; "
            f"expected one of {', '.join(_KINDS)}"
        )
    kind: QueryKind = name  # type: ignore[assignment]
    args = [_unquote(a) for a in args_text.split(",")] if args_text.strip() else []
    if kind == "quantile":
        if len(args) != 2:
            raise QueryError(
                f"quantile takes a column and q, e.g. quantile(age, 0.5); got {text!r}"
            )
        try:
            q: float | None = float(args[1])
        except ValueError:
            raise QueryError(f"quantile q must be a number, got {args[1]!r}") from None
    else:
        if len(args) != 1:
            raise QueryError(f"{kind} takes one column, e.g. {kind}(age); got {text!r}")
        q = None
    if not args[0]:
        raise QueryError(f"{kind} needs a column name")
    declared: Bounds | None
    if bounds is None or kind in ("count", "histogram"):
        declared = None
    elif isinstance(bounds, Bounds):
        declared = bounds
    else:
        declared = Bounds(*bounds)
    return Query(
        kind,
        args[0],
        bounds=declared,
        quantile=q,
        bins=tuple(bins) if bins is not None and kind == "histogram" else None,
        categories=tuple(categories) if categories is not None and kind == "histogram" else None,
    )


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
    return query.kind in _NEEDS_BOUNDS or (query.kind == "histogram" and query.bins is not None)


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
    if col == _ALL_ROWS:
        return
    if col not in frame.columns:
        raise QueryError(_unknown_column(col, frame))
    if _needs_numbers(query):
        _numeric(frame, col)


def _exact(query: Query, frame: pd.DataFrame) -> _Exact:
    col = query.column
    if col != _ALL_ROWS and col not in frame.columns:
        raise QueryError(_unknown_column(col, frame))
    if query.kind == "count":
        n = len(frame) if col == _ALL_ROWS else int(frame[col].notna().sum())
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


def _canonical_cell(value: object) -> object:
    """A JSON value that two parses of the same table agree on (1 and 1.0 alike)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isnan(f):
            return None
        if f.is_integer() and abs(f) < 2**53:
            return int(f)
        return f  # repr round-trips; infinities become JSON Infinity, never a string
    return str(value)


def fingerprint(data: pd.DataFrame) -> str:
    """The ledger scope of a table: SHA-256 over a canonical form of its content.

    The canonical form is the column names in sorted order, then every row (cells in that
    column order, numbers normalised so that ``1`` and ``1.0`` agree, missing values as
    null) as JSON, the rows sorted. The scope therefore follows the data, not its name: a
    copy, rename or hard link of a file, a re-encoded CSV, or the same rows and columns in
    another order all get the same fingerprint and share one budget.

    Privacy: this stops the budget being reset by copying the data. It cannot tell an
    edited table (a row added or dropped, a column added) from new data; who may bring a
    table to the ledger is a matter for access control, not for the ledger.

    Returns:
        ``"table:sha256:<64 hex digits>"``.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError("data must be a pandas DataFrame")
    names = [str(c) for c in data.columns]
    order = sorted(range(len(names)), key=lambda i: names[i])
    digest = hashlib.sha256()
    digest.update(json.dumps([names[i] for i in order]).encode() + b"\n")
    rows = sorted(
        json.dumps([_canonical_cell(v) for v in row], separators=(",", ":"))
        for row in data.iloc[:, order].astype(object).itertuples(index=False, name=None)
    )
    for row in rows:
        digest.update(row.encode() + b"\n")
    return _FINGERPRINT_PREFIX + digest.hexdigest()


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV file; any failure is one :class:`~tutela.errors.DataError` line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"cannot read {p}: no such file")
    try:
        return pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise DataError(f"cannot read {p}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        detail = " ".join(str(exc).split())
        raise DataError(f"cannot read {p} as CSV: {detail}") from None


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
