"""A parsed query checked against the site's limits, laid out as a statistics vector, and
evaluated by DuckDB over the site's CSV or Parquet file (or a DataFrame).

Every query becomes one vector of *sufficient statistics* per group (the groups are the
product of the grouped columns' declared categories, in the policy's order):

============  ====================================================  =====================
aggregate     statistics per group (one row adds to each at most 1)  slots a row touches
============  ====================================================  =====================
count         rows (``count(*)``) or non-missing values              1
sum           sum of clamp(x) / M, M = max(|low|, |high|)            1
avg           non-missing values; sum of u = (clamp(x) - mid) / half  2
variance      non-missing values; sum of u; sum of u^2                3
histogram     rows per category, or per equal-width bin of clamp(x)  1
quantile      rows per equal-width bin of clamp(x)                   1
============  ====================================================  =====================

Every statistic moves by at most 1 when one row is added or removed, and a row touches only
the slots of its own group, so the vector's L2 sensitivity is ``sqrt(slots a row touches)``
summed over the selected aggregates (:attr:`QueryShape.sensitivity`), whatever the data. The
shape (its length, labels and sensitivity) depends on the query and the declared categories
only, so every site of a consortium computes the same one before reading a row.

The query is compiled to parameterised DuckDB SQL: column names are quoted identifiers that
exist in the file's header (checked first), every literal is a bound parameter, and the file
path is a parameter too. The query text itself never reaches the database.

Privacy: nothing here is private on its own. :func:`evaluate` computes exact statistics
that only :mod:`tutela.dp.sql.release` (noise added at the site) or a secure sum with
distributed noise may release. :func:`check` refuses, before any row is read, a column
outside the site's allowed set and a grouping over a column without declared categories;
:mod:`tutela.dp.sql.cohort` decides the site's minimum cohort on noisy counts (a DP
test charged to the ledger), never on the exact ones computed here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tutela.dp.query_model import Bounds
from tutela.dp.sql.parse import (
    Aggregate,
    AggregateKind,
    And,
    Between,
    BoolColumn,
    Comparison,
    Condition,
    InList,
    IsNull,
    Not,
    Or,
    SelectQuery,
    SqlError,
)
from tutela.errors import DataError, PolicyViolation

__all__ = [
    "DEFAULT_COHORT_SHARE",
    "QueryShape",
    "SiteStatistics",
    "SqlPolicy",
    "TableSource",
    "check",
    "evaluate",
    "shape_of",
]

_NUMERIC_TYPES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL",
)  # fmt: skip
DEFAULT_COHORT_SHARE = 0.1
"""Share of a query's epsilon a site spends on its minimum-cohort test by default."""
_SLOTS = {
    AggregateKind.COUNT: ("count",),
    AggregateKind.SUM: ("sum",),
    AggregateKind.AVG: ("count", "sum"),
    AggregateKind.VARIANCE: ("count", "sum", "sum_sq"),
}


@dataclass(frozen=True)
class SqlPolicy:
    """What a site allows queries to touch (built from its site policy by the caller).

    Attributes:
        columns: the columns queries may read, as the table names them (``None``: all).
        categories: the columns queries may group by (or take a categorical histogram
            of), each with its declared categories (compared as text).
        min_cohort: the fewest rows the filter may keep, overall and in every group
            (decided on noisy counts, :mod:`tutela.dp.sql.cohort`; 1: no minimum).
        cohort_share: the share of a query's epsilon its minimum-cohort test spends.
        max_query_epsilon: the largest epsilon one query may spend (``None``: no cap).
        refusals: why a column outside ``columns`` is refused (column -> reason), for
            clearer messages (e.g. "a direct identifier").
    """

    columns: frozenset[str] | None = None
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    min_cohort: int = 1
    cohort_share: float = DEFAULT_COHORT_SHARE
    max_query_epsilon: float | None = None
    refusals: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.min_cohort, bool) or not (
            isinstance(self.min_cohort, int) and self.min_cohort >= 1
        ):
            raise ValueError("min_cohort must be a positive integer")
        if not 0 < self.cohort_share <= 1:
            raise ValueError("cohort_share must be in (0, 1]")
        cats = {str(k): tuple(str(v) for v in vs) for k, vs in self.categories.items()}
        for name, values in cats.items():
            if not values or len(set(values)) != len(values):
                raise ValueError(f"categories of {name!r} must be non-empty and distinct")
        object.__setattr__(self, "categories", cats)
        if self.max_query_epsilon is not None and not (
            math.isfinite(self.max_query_epsilon) and self.max_query_epsilon > 0
        ):
            raise ValueError("max_query_epsilon must be positive and finite")


@dataclass(frozen=True)
class QueryShape:
    """The public layout of a query's statistics vector (see the module docstring).

    Attributes:
        query: the parsed query.
        group_keys: the groups, in vector order (one empty tuple without GROUP BY).
        slots: per group, the (aggregate index, statistic, label) of each coordinate.
    """

    query: SelectQuery
    group_keys: tuple[tuple[str, ...], ...]
    slots: tuple[tuple[int, str, str], ...]

    @property
    def per_group(self) -> int:
        """Coordinates per group."""
        return len(self.slots)

    @property
    def dim(self) -> int:
        """Length of the vector."""
        return len(self.group_keys) * self.per_group

    @property
    def touched(self) -> int:
        """Coordinates one row can change (at most 1 each)."""
        out = 0
        for agg in self.query.aggregates:
            out += len(_SLOTS.get(agg.kind, ("bin",)))
        return out

    @property
    def sensitivity(self) -> float:
        """L2 sensitivity of the vector under adding or removing one row."""
        return math.sqrt(self.touched)

    def index(self, group: int, aggregate: int, statistic: str) -> int:
        """Position of one statistic of one group's aggregate in the vector."""
        for j, (a, stat, _) in enumerate(self.slots):
            if a == aggregate and stat == statistic:
                return group * self.per_group + j
        raise KeyError((aggregate, statistic))

    def bin_indices(self, group: int, aggregate: int) -> list[int]:
        """Positions of a histogram's or quantile's bins for one group."""
        return [
            group * self.per_group + j
            for j, (a, stat, _) in enumerate(self.slots)
            if a == aggregate and stat.startswith("bin")
        ]

    def bin_labels(self, aggregate: int) -> list[str]:
        """The labels of a histogram's bins (categories or ``[low, high)`` ranges)."""
        return [label for a, stat, label in self.slots if a == aggregate and stat.startswith("bin")]


def _edges(bounds: Bounds, bins: int) -> npt.NDArray[np.float64]:
    return np.linspace(bounds.lower, bounds.upper, bins + 1)


def shape_of(query: SelectQuery, policy: SqlPolicy) -> QueryShape:
    """The vector layout of a checked query (reads no data)."""
    groups = list(itertools.product(*(policy.categories[g] for g in query.group_by)))
    slots: list[tuple[int, str, str]] = []
    for i, agg in enumerate(query.aggregates):
        if agg.kind in _SLOTS:
            slots.extend((i, stat, stat) for stat in _SLOTS[agg.kind])
        elif agg.bounds is None:  # categorical histogram
            assert agg.column is not None
            cats = policy.categories[agg.column]
            slots.extend((i, f"bin{k}", c) for k, c in enumerate(cats))
        else:
            assert agg.bins is not None
            e = _edges(agg.bounds, agg.bins)
            last = agg.bins - 1
            slots.extend(
                (i, f"bin{k}", f"[{e[k]:g}, {e[k + 1]:g}{']' if k == last else ')'}")
                for k in range(agg.bins)
            )
    return QueryShape(query, tuple(tuple(g) for g in groups), tuple(slots))


def check(query: SelectQuery, policy: SqlPolicy, header: Mapping[str, str]) -> QueryShape:
    """Check a query against the table's header and the site's limits; its shape.

    Args:
        query: the parsed query.
        policy: the site's limits.
        header: the table's columns and their DuckDB types.

    Raises:
        SqlError: a column the table does not have, or a numeric aggregate over a
            column that is not numeric (schema, public).
        PolicyViolation: every column outside the allowed set, every grouping (or
            categorical histogram) over a column without declared categories.
    """
    missing = [c for c in query.columns if c not in header]
    if missing:
        shown = ", ".join(sorted(header)[:20])
        raise SqlError(f"unknown column(s) {', '.join(map(repr, missing))}; the table has: {shown}")
    reasons: list[str] = []
    if policy.columns is not None:
        for c in query.columns:
            if c not in policy.columns:
                why = policy.refusals.get(c, "not allowed for this purpose")
                reasons.append(f"column {c!r} is outside the site policy ({why})")
    categorical = list(query.group_by)
    categorical += [
        a.column
        for a in query.aggregates
        if a.kind is AggregateKind.HISTOGRAM and a.bounds is None and a.column is not None
    ]
    for c in categorical:
        if c not in policy.categories and (policy.columns is None or c in policy.columns):
            reasons.append(
                f"column {c!r} has no declared categories in the site policy, so it cannot "
                "be grouped by"
            )
    if reasons:
        raise PolicyViolation("query refused: " + "; ".join(reasons))
    for a in query.aggregates:
        if a.bounds is not None and a.column is not None:
            kind = header[a.column].upper()
            if not kind.startswith(_NUMERIC_TYPES):
                raise SqlError(
                    f"column {a.column!r} is not numeric ({kind}): {a.kind.value}({a.column}) "
                    "needs a numeric column"
                )
    return shape_of(query, policy)


# -- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSource:
    """A CSV or Parquet file, or a DataFrame, that DuckDB reads.

    Files are scanned (DuckDB streams them: a file larger than memory is fine); nothing is
    loaded into Python but the aggregated statistics.
    """

    path: Path | None = None
    frame: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.frame is None):
            raise ValueError("give exactly one of path and frame")
        if self.path is not None:
            p = Path(self.path)
            if not p.is_file():
                raise DataError(f"cannot read {p}: no such file")
            if p.suffix.lower() not in (".csv", ".parquet", ".pq"):
                raise DataError(f"cannot read {p}: expected a .csv or .parquet file")
            object.__setattr__(self, "path", p)

    @classmethod
    def of(cls, data: str | Path | pd.DataFrame) -> TableSource:
        """A source for a path or a DataFrame."""
        if isinstance(data, pd.DataFrame):
            return cls(frame=data)
        return cls(path=Path(data))

    def _from(self) -> tuple[str, list[Any]]:
        if self.path is None:
            return "__tutela_frame", []
        if self.path.suffix.lower() == ".csv":
            return "read_csv(?)", [str(self.path)]
        return "read_parquet(?)", [str(self.path)]

    def connect(self) -> Any:
        """A fresh in-memory DuckDB connection that sees this source."""
        import duckdb

        con = duckdb.connect(":memory:")
        if self.frame is not None:
            con.register("__tutela_frame", self.frame)
        return con

    def header(self) -> dict[str, str]:
        """Column name -> DuckDB type (reads the schema, no rows).

        Raises:
            DataError: the file cannot be read.
        """
        import duckdb

        source, params = self._from()
        con = self.connect()
        try:
            sql = f"DESCRIBE SELECT * FROM {source}"  # noqa: S608 - a constant, path bound
            rows = con.execute(sql, params).fetchall()
        except duckdb.Error as exc:
            raise DataError(f"cannot read {self.path}: {_first_line(exc)}") from None
        finally:
            con.close()
        return {str(r[0]): str(r[1]) for r in rows}


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _condition(c: Condition, params: list[Any]) -> str:
    if isinstance(c, Not):
        return f"(NOT {_condition(c.operand, params)})"
    if isinstance(c, And):
        return f"({_condition(c.left, params)} AND {_condition(c.right, params)})"
    if isinstance(c, Or):
        return f"({_condition(c.left, params)} OR {_condition(c.right, params)})"
    col = _ident(c.column)
    if isinstance(c, Comparison):
        params.append(c.value)
        return f"({col} {c.op} ?)"
    if isinstance(c, InList):
        params.extend(c.values)
        marks = ", ".join("?" for _ in c.values)
        return f"({col} {'NOT IN' if c.negated else 'IN'} ({marks}))"
    if isinstance(c, IsNull):
        return f"({col} IS {'NOT NULL' if c.negated else 'NULL'})"
    if isinstance(c, Between):
        params.extend([c.low, c.high])
        return f"({col} {'NOT BETWEEN' if c.negated else 'BETWEEN'} ? AND ?)"
    assert isinstance(c, BoolColumn)
    return f"(CAST({col} AS BOOLEAN))"


def _clamped(agg: Aggregate, params: list[Any]) -> str:
    assert agg.column is not None
    assert agg.bounds is not None
    low, high = agg.bounds.lower, agg.bounds.upper
    params.extend([low, low, high, high])
    x = f"CAST({_ident(agg.column)} AS DOUBLE)"
    # not least/greatest: they skip NULLs, and a missing value must stay missing
    return f"(CASE WHEN {x} < ? THEN ? WHEN {x} > ? THEN ? ELSE {x} END)"


@dataclass(frozen=True)
class SiteStatistics:
    """A site's exact statistics for one query (never released as such).

    Attributes:
        shape: the query's layout.
        vector: the statistics, in the shape's order.
        cohort: rows the filter kept in the declared groups, per group.
    """

    shape: QueryShape
    vector: npt.NDArray[np.float64]
    cohort: tuple[int, ...]

    @property
    def rows(self) -> int:
        """Rows the filter kept, over every declared group."""
        return sum(self.cohort)


def evaluate(shape: QueryShape, source: TableSource) -> SiteStatistics:
    """The exact statistics of a checked query over ``source`` (DuckDB).

    Raises:
        SqlError: DuckDB cannot evaluate a filter over the column's type (e.g. a string
            compared with a number).
        DataError: the file cannot be read.
    """
    import duckdb

    q = shape.query
    source_sql, source_params = source._from()
    where_params: list[Any] = []
    where = f" WHERE {_condition(q.where, where_params)}" if q.where is not None else ""
    keys = [f"CAST({_ident(g)} AS VARCHAR)" for g in q.group_by]
    index = {k: i for i, k in enumerate(shape.group_keys)}
    vector = np.zeros(shape.dim, np.float64)
    cohort = [0] * len(shape.group_keys)
    con = source.connect()

    def run(select: list[str], select_params: list[Any], extra_key: str | None) -> list[Any]:
        group_cols = [*keys, *([extra_key] if extra_key else [])]
        head = ", ".join([*group_cols, *select]) if group_cols else ", ".join(select)
        # quoted header names and placeholders only; every value is a bound parameter
        sql = f"SELECT {head} FROM {source_sql}{where}"  # noqa: S608
        if group_cols:
            sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(group_cols)))
        try:
            rows: list[Any] = con.execute(
                sql, [*select_params, *source_params, *where_params]
            ).fetchall()
        except duckdb.Error as exc:
            raise SqlError(f"the query cannot be evaluated: {_first_line(exc)}") from None
        return rows

    try:
        select: list[str] = ["count(*)"]
        params: list[Any] = []
        plain: list[tuple[int, str]] = []
        for i, agg in enumerate(q.aggregates):
            if agg.kind not in _SLOTS:
                continue
            for stat in _SLOTS[agg.kind]:
                plain.append((i, stat))
                if stat == "count":
                    select.append(
                        "count(*)" if agg.column is None else f"count({_ident(agg.column)})"
                    )
                elif agg.kind is AggregateKind.SUM:
                    assert agg.bounds is not None
                    clamped = _clamped(agg, params)
                    params.append(max(abs(agg.bounds.lower), abs(agg.bounds.upper)))
                    select.append(f"coalesce(sum({clamped} / ?), 0)")
                else:  # u = (clamp(x) - mid) / half, summed or squared and summed
                    assert agg.bounds is not None
                    u = f"(({_clamped(agg, params)} - ?) / ?)"
                    params.extend([agg.bounds.centre, agg.bounds.half_width])
                    if stat == "sum_sq":
                        u = f"power({u}, 2)"
                    select.append(f"coalesce(sum({u}), 0)")
        for row in run(select, params, None):
            g = index.get(tuple(row[: len(keys)]))
            if g is None:
                continue  # a value outside the declared categories (or missing): not counted
            values = row[len(keys) :]
            cohort[g] = int(values[0])
            for (i, stat), value in zip(plain, values[1:], strict=True):
                vector[shape.index(g, i, stat)] = float(value)
        for i, agg in enumerate(q.aggregates):
            if agg.kind in _SLOTS:
                continue
            assert agg.column is not None
            col = _ident(agg.column)
            bin_params: list[Any] = []
            if agg.bounds is None:
                bin_key = f"CAST({col} AS VARCHAR)"
                labels = {c: k for k, c in enumerate(shape.bin_labels(i))}
            else:
                assert agg.bins is not None
                width = (agg.bounds.upper - agg.bounds.lower) / agg.bins
                bin_key = f"least(CAST(floor(({_clamped(agg, bin_params)} - ?) / ?) AS BIGINT), ?)"
                bin_params.extend([agg.bounds.lower, width, agg.bins - 1])
                labels = None
            # the bin key's parameters come first: it is the first selected expression
            rows = _run_bins(con, keys, bin_key, bin_params, col, source_sql, source_params,
                             where, where_params)  # fmt: skip
            positions = shape.bin_indices
            for row in rows:
                g = index.get(tuple(row[: len(keys)]))
                if g is None or row[len(keys)] is None:
                    continue
                key = row[len(keys)]
                k = labels.get(str(key)) if labels is not None else int(key)
                if k is None:
                    continue
                vector[positions(g, i)[k]] += float(row[-1])
    finally:
        con.close()
    return SiteStatistics(shape, vector, tuple(cohort))


def _run_bins(
    con: Any,
    keys: Sequence[str],
    bin_key: str,
    bin_params: list[Any],
    column: str,
    source_sql: str,
    source_params: list[Any],
    where: str,
    where_params: list[Any],
) -> list[Any]:
    import duckdb

    filt = f"{where} AND {column} IS NOT NULL" if where else f" WHERE {column} IS NOT NULL"
    head = ", ".join([*keys, bin_key, "count(*)"])
    groups = ", ".join(str(i + 1) for i in range(len(keys) + 1))
    # quoted header names and placeholders only; every value is a bound parameter
    sql = f"SELECT {head} FROM {source_sql}{filt} GROUP BY {groups}"  # noqa: S608
    try:
        rows: list[Any] = con.execute(sql, [*bin_params, *source_params, *where_params]).fetchall()
    except duckdb.Error as exc:
        raise SqlError(f"the query cannot be evaluated: {_first_line(exc)}") from None
    return rows
