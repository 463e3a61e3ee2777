"""The function form of a DP query over one column: ``mean(age)`` with declared bounds.

:func:`parse_query` reads ``"count(*)"``, ``"mean(age)"``, ``"histogram(sex)"``,
``"quantile(age, 0.5)"``; the bounds, bins and categories a query depends on are declared
by the caller (:class:`Bounds`), never read from the data. :mod:`tutela.dp.analytics` plans
and answers these queries behind a ledger; ``tutela dp query`` writes them as restricted SQL
for :mod:`tutela.dp.sql`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

__all__ = ["ALL_ROWS", "Bounds", "Query", "QueryError", "QueryKind", "parse_query"]

QueryKind: TypeAlias = Literal["count", "sum", "mean", "variance", "histogram", "quantile"]
_KINDS: tuple[str, ...] = get_args(QueryKind)
NEEDS_BOUNDS = frozenset({"sum", "mean", "variance", "quantile"})
"""The kinds that need declared bounds."""
ALL_ROWS = "*"
"""The column of ``count(*)``."""


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
        if self.column == ALL_ROWS and self.kind != "count":
            raise QueryError(f"{self.kind}(*) is not defined; name a column")
        if self.kind in NEEDS_BOUNDS and self.bounds is None:
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
