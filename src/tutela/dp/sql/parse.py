"""The restricted SQL of DP queries: a tokenizer and a recursive-descent parser.

Only this grammar is accepted (keywords in any case; nothing else parses)::

    query      := SELECT aggregate ("," aggregate)* FROM name
                  [WHERE condition] [GROUP BY name ("," name)*] [";"]
    aggregate  := function [AS name]
    function   := COUNT "(" "*" ")" | COUNT "(" name ")"
                | SUM "(" clamp ")" | AVG "(" clamp ")" | VARIANCE "(" clamp ")"
                | HISTOGRAM "(" name ")" | HISTOGRAM "(" clamp "," integer ")"
                | QUANTILE "(" clamp "," number ")" | MEDIAN "(" clamp ")"
    clamp      := CLAMP "(" name "," number "," number ")"
    condition  := conjunct (OR conjunct)*
    conjunct   := negation (AND negation)*
    negation   := NOT negation | "(" condition ")" | predicate
    predicate  := name op literal | name [NOT] IN "(" literal ("," literal)* ")"
                | name IS [NOT] NULL | name [NOT] BETWEEN number AND number | name
    op         := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    literal    := number | 'string' | TRUE | FALSE
    name       := identifier | "double-quoted identifier"

``MEAN`` and ``VAR`` are accepted for ``AVG`` and ``VARIANCE``. Sums, means, variances and
quantiles need declared bounds (``clamp(bmi, 10, 60)``): values are clipped to them, so the
sensitivity is fixed before any row is read. A bare ``name`` in a condition is a boolean
column (``WHERE diabetic``). The query is a value (frozen dataclasses) that names every
column it touches (:attr:`SelectQuery.columns`), so a policy can judge it before any data is
read; it is compiled to a parameterised DuckDB query by :mod:`tutela.dp.sql.engine` and never
passed to a database as text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

from tutela.dp.query_model import Bounds, QueryError

__all__ = [
    "Aggregate",
    "AggregateKind",
    "And",
    "Between",
    "BoolColumn",
    "Comparison",
    "Condition",
    "InList",
    "IsNull",
    "Literal",
    "Not",
    "Or",
    "SelectQuery",
    "SqlError",
    "parse_sql",
]

MAX_SQL_CHARS = 4000
"""Longest query text accepted."""
MAX_HISTOGRAM_BINS = 1000
"""Most bins a numeric histogram may ask for."""
DEFAULT_QUANTILE_BINS = 32
"""Bins of the histogram a quantile is read from (equal width over the declared bounds)."""

Literal: TypeAlias = float | str | bool


class SqlError(QueryError):
    """A query is not in the restricted SQL (the message says where and what was expected)."""


class AggregateKind(StrEnum):
    """The functions a query may select."""

    COUNT = "count"
    SUM = "sum"
    AVG = "avg"
    VARIANCE = "variance"
    HISTOGRAM = "histogram"
    QUANTILE = "quantile"


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One selected function.

    Attributes:
        kind: what it computes.
        column: its column (``None`` for ``count(*)``).
        bounds: the declared range values are clipped to (sum, avg, variance, quantile,
            numeric histogram).
        quantile: q in [0, 1] (quantile only).
        bins: equal-width bins over the bounds (numeric histogram and quantile).
        alias: the output column's name.
    """

    kind: AggregateKind
    column: str | None
    bounds: Bounds | None = None
    quantile: float | None = None
    bins: int | None = None
    alias: str = ""

    @property
    def name(self) -> str:
        """The output column's name (the alias, else e.g. ``avg_age``)."""
        if self.alias:
            return self.alias
        if self.column is None:
            return "count"
        if self.kind is AggregateKind.QUANTILE:
            return f"quantile_{self.column}_{self.quantile:g}"
        return f"{self.kind.value}_{self.column}"


@dataclass(frozen=True, slots=True)
class Comparison:
    """``column op value``."""

    column: str
    op: str
    value: Literal


@dataclass(frozen=True, slots=True)
class InList:
    """``column [NOT] IN (values)``."""

    column: str
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull:
    """``column IS [NOT] NULL``."""

    column: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Between:
    """``column [NOT] BETWEEN low AND high`` (inclusive)."""

    column: str
    low: float
    high: float
    negated: bool = False


@dataclass(frozen=True, slots=True)
class BoolColumn:
    """A boolean column used as a condition."""

    column: str


@dataclass(frozen=True, slots=True)
class Not:
    """``NOT operand``."""

    operand: Condition


@dataclass(frozen=True, slots=True)
class And:
    """``left AND right``."""

    left: Condition
    right: Condition


@dataclass(frozen=True, slots=True)
class Or:
    """``left OR right``."""

    left: Condition
    right: Condition


Condition: TypeAlias = Comparison | InList | IsNull | Between | BoolColumn | Not | And | Or


def condition_columns(cond: Condition | None) -> tuple[str, ...]:
    """Every column a condition reads, in order of appearance (no repeats)."""
    out: list[str] = []

    def walk(c: Condition) -> None:
        if isinstance(c, Not):
            walk(c.operand)
        elif isinstance(c, And | Or):
            walk(c.left)
            walk(c.right)
        elif c.column not in out:
            out.append(c.column)

    if cond is not None:
        walk(cond)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SelectQuery:
    """A parsed query: its aggregates, table, filter and grouping."""

    aggregates: tuple[Aggregate, ...]
    table: str
    where: Condition | None = None
    group_by: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the query reads (aggregates, filter, grouping), no repeats."""
        out: list[str] = []
        names = [a.column for a in self.aggregates if a.column is not None]
        for name in [*names, *condition_columns(self.where), *self.group_by]:
            if name not in out:
                out.append(name)
        return tuple(out)


# -- tokens --------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")+")
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|<>|!=|[=<>(),*;])
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset(
    {
        "select", "from", "where", "group", "by", "and", "or", "not", "in", "is", "null",
        "between", "true", "false", "as", "clamp", "count", "sum", "avg", "mean", "variance",
        "var", "histogram", "quantile", "median",
    }
)  # fmt: skip
_FUNCTIONS = {
    "count": AggregateKind.COUNT,
    "sum": AggregateKind.SUM,
    "avg": AggregateKind.AVG,
    "mean": AggregateKind.AVG,
    "variance": AggregateKind.VARIANCE,
    "var": AggregateKind.VARIANCE,
    "histogram": AggregateKind.HISTOGRAM,
    "quantile": AggregateKind.QUANTILE,
    "median": AggregateKind.QUANTILE,
}
_COMPARISONS = frozenset({"=", "!=", "<>", "<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, string, name, keyword, op, end
    text: str
    value: Literal
    pos: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SqlError(f"unexpected character {text[pos]!r} at position {pos + 1}")
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "number":
            value = float(raw)
            if not math.isfinite(value):
                raise SqlError(f"number {raw!r} at position {pos + 1} is not finite")
            out.append(_Token("number", raw, value, pos))
        elif kind == "string":
            out.append(_Token("string", raw, raw[1:-1].replace("''", "'"), pos))
        elif kind == "quoted":
            out.append(_Token("name", raw, raw[1:-1].replace('""', '"'), pos))
        elif kind == "word":
            low = raw.lower()
            if low in _KEYWORDS:
                out.append(_Token("keyword", low, low, pos))
            else:
                out.append(_Token("name", raw, raw, pos))
        elif kind == "op":
            out.append(_Token("op", raw, raw, pos))
        pos = m.end()
    out.append(_Token("end", "end of query", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def fail(self, expected: str) -> SqlError:
        t = self.tok
        shown = t.text if t.kind != "end" else "the end of the query"
        where = f" at position {t.pos + 1}" if t.kind != "end" else ""
        return SqlError(f"expected {expected}{where}, found {shown}")

    def take(self) -> _Token:
        t = self.tok
        self.i += 1
        return t

    def accept(self, kind: str, text: str | None = None) -> _Token | None:
        t = self.tok
        if t.kind == kind and (text is None or t.text == text):
            self.i += 1
            return t
        return None

    def expect(self, kind: str, text: str | None = None, what: str | None = None) -> _Token:
        t = self.accept(kind, text)
        if t is None:
            raise self.fail(what or (text or kind))
        return t

    def keyword(self, word: str) -> bool:
        return self.accept("keyword", word) is not None

    def name(self, what: str = "a column name") -> str:
        t = self.accept("name")
        if t is None:
            if self.tok.kind == "keyword":
                raise self.fail(f"{what} (quote {self.tok.text!r} to use it as a name)")
            raise self.fail(what)
        return str(t.value)

    def number(self, what: str = "a number") -> float:
        return float(self.expect("number", what=what).value)

    # query ---------------------------------------------------------------------------

    def query(self) -> SelectQuery:
        self.expect("keyword", "select", "SELECT")
        aggregates = [self.aggregate()]
        while self.accept("op", ","):
            aggregates.append(self.aggregate())
        self.expect("keyword", "from", "FROM or ','")
        table = self.name("a table name")
        where = self.condition() if self.keyword("where") else None
        group: list[str] = []
        if self.keyword("group"):
            self.expect("keyword", "by", "BY")
            group.append(self.name())
            while self.accept("op", ","):
                group.append(self.name())
        self.accept("op", ";")
        if self.tok.kind != "end":
            raise self.fail("the end of the query (only WHERE and GROUP BY may follow FROM)")
        names = [a.name for a in aggregates]
        if len(set(names)) != len(names):
            raise SqlError("two selected columns have the same name; use AS to tell them apart")
        if len(set(group)) != len(group):
            raise SqlError("a column is grouped by twice")
        return SelectQuery(tuple(aggregates), table, where, tuple(group))

    def aggregate(self) -> Aggregate:
        t = self.tok
        if t.kind != "keyword" or t.text not in _FUNCTIONS:
            raise self.fail("an aggregate: count, sum, avg, variance, histogram, quantile, median")
        self.take()
        kind = _FUNCTIONS[t.text]
        self.expect("op", "(", "'('")
        agg = self._arguments(kind, t.text)
        self.expect("op", ")", "')'")
        if self.keyword("as"):
            alias = self.name("an alias")
            agg = Aggregate(agg.kind, agg.column, agg.bounds, agg.quantile, agg.bins, alias)
        return agg

    def _arguments(self, kind: AggregateKind, word: str) -> Aggregate:
        if kind is AggregateKind.COUNT:
            if self.accept("op", "*"):
                return Aggregate(kind, None)
            return Aggregate(kind, self.name("a column name or *"))
        if kind is AggregateKind.HISTOGRAM and not (
            self.tok.kind == "keyword" and self.tok.text == "clamp"
        ):
            return Aggregate(kind, self.name("a categorical column or clamp(column, low, high)"))
        column, bounds = self.clamp(word)
        if kind is AggregateKind.HISTOGRAM:
            self.expect("op", ",", "',' and the number of bins")
            bins = self.number("the number of bins")
            if not (bins.is_integer() and 1 <= bins <= MAX_HISTOGRAM_BINS):
                raise SqlError(f"histogram bins must be an integer in [1, {MAX_HISTOGRAM_BINS}]")
            return Aggregate(kind, column, bounds, bins=int(bins))
        if kind is AggregateKind.QUANTILE:
            if word == "median":
                q = 0.5
            else:
                self.expect("op", ",", "',' and the quantile q")
                q = self.number("the quantile q")
                if not 0 <= q <= 1:
                    raise SqlError(f"quantile q must be in [0, 1], got {q:g}")
            return Aggregate(kind, column, bounds, quantile=q, bins=DEFAULT_QUANTILE_BINS)
        return Aggregate(kind, column, bounds)

    def clamp(self, word: str) -> tuple[str, Bounds]:
        if not self.keyword("clamp"):
            raise self.fail(
                f"clamp(column, low, high): {word} needs declared bounds, e.g. "
                f"{word}(clamp(age, 0, 120))"
            )
        self.expect("op", "(", "'('")
        column = self.name()
        self.expect("op", ",", "','")
        low = self.number("the lower bound")
        self.expect("op", ",", "','")
        high = self.number("the upper bound")
        self.expect("op", ")", "')'")
        try:
            return column, Bounds(low, high)
        except QueryError as exc:
            raise SqlError(str(exc)) from None

    # conditions -------------------------------------------------------------------------

    def condition(self) -> Condition:
        left = self.conjunct()
        while self.keyword("or"):
            left = Or(left, self.conjunct())
        return left

    def conjunct(self) -> Condition:
        left = self.negation()
        while self.keyword("and"):
            left = And(left, self.negation())
        return left

    def negation(self) -> Condition:
        if self.keyword("not"):
            return Not(self.negation())
        if self.accept("op", "("):
            inner = self.condition()
            self.expect("op", ")", "')'")
            return inner
        return self.predicate()

    def literal(self) -> Literal:
        t = self.tok
        if t.kind in ("number", "string"):
            self.take()
            return t.value
        if t.kind == "keyword" and t.text in ("true", "false"):
            self.take()
            return t.text == "true"
        raise self.fail("a number, a 'string', TRUE or FALSE")

    def predicate(self) -> Condition:
        column = self.name("a column name or a condition")
        t = self.tok
        if t.kind == "op" and t.text in _COMPARISONS:
            self.take()
            op = "!=" if t.text == "<>" else t.text
            return Comparison(column, op, self.literal())
        if self.keyword("is"):
            negated = self.keyword("not")
            self.expect("keyword", "null", "NULL")
            return IsNull(column, negated)
        negated = self.keyword("not")
        if self.keyword("in"):
            self.expect("op", "(", "'('")
            values = [self.literal()]
            while self.accept("op", ","):
                values.append(self.literal())
            self.expect("op", ")", "')'")
            return InList(column, tuple(values), negated)
        if self.keyword("between"):
            low = self.number("the lower end of BETWEEN")
            self.expect("keyword", "and", "AND")
            high = self.number("the upper end of BETWEEN")
            return Between(column, low, high, negated)
        if negated:
            raise self.fail("IN or BETWEEN after NOT")
        return BoolColumn(column)


def parse_sql(text: str) -> SelectQuery:
    """Parse one query of the restricted SQL (see the module docstring).

    Raises:
        SqlError: anything outside the grammar, with the position and what was expected.
    """
    if not isinstance(text, str):
        raise SqlError("a query must be a string")
    if len(text) > MAX_SQL_CHARS:
        raise SqlError(f"a query may be at most {MAX_SQL_CHARS} characters")
    if not text.strip():
        raise SqlError("the query is empty")
    return _Parser(text).query()
