"""The restricted SQL: what parses, what it means, and what is refused with where and why."""

from __future__ import annotations

import pytest

from tutela.dp.sql.parse import (
    AggregateKind,
    And,
    Between,
    BoolColumn,
    Comparison,
    InList,
    IsNull,
    Not,
    Or,
    SqlError,
    parse_sql,
)


def test_a_cohort_query_parses_into_its_parts() -> None:
    q = parse_sql(
        "select COUNT(*), avg(clamp(bmi, 10, 60)) AS mean_bmi FROM patients "
        "WHERE age > 60 AND diabetic GROUP BY sex;"
    )
    assert [a.kind for a in q.aggregates] == [AggregateKind.COUNT, AggregateKind.AVG]
    assert q.aggregates[0].column is None and q.aggregates[0].name == "count"
    assert q.aggregates[1].name == "mean_bmi"
    assert q.aggregates[1].bounds is not None and q.aggregates[1].bounds.upper == 60
    assert q.where == And(Comparison("age", ">", 60.0), BoolColumn("diabetic"))
    assert q.group_by == ("sex",)
    assert q.columns == ("bmi", "age", "diabetic", "sex")


def test_conditions_bind_not_before_and_before_or() -> None:
    q = parse_sql(
        "SELECT count(*) FROM t WHERE NOT a = 'x' OR b IN (1, 2) AND c IS NOT NULL "
        "OR (d NOT BETWEEN 1 AND 5)"
    )
    assert q.where == Or(
        Or(
            Not(Comparison("a", "=", "x")),
            And(InList("b", (1.0, 2.0)), IsNull("c", negated=True)),
        ),
        Between("d", 1.0, 5.0, negated=True),
    )


def test_quoted_names_strings_and_every_function() -> None:
    q = parse_sql(
        'SELECT count("Patient Age"), sum(clamp(x, -1, 1)), variance(clamp(x, 0, 2)), '
        "histogram(sex), histogram(clamp(x, 0, 10), 5), quantile(clamp(x, 0, 1), 0.9), "
        "median(clamp(y, 0, 1)) FROM t WHERE s = 'O''Brien'"
    )
    kinds = [a.kind.value for a in q.aggregates]
    assert kinds == ["count", "sum", "variance", "histogram", "histogram", "quantile", "quantile"]
    assert q.aggregates[0].column == "Patient Age"
    assert q.aggregates[4].bins == 5
    assert q.aggregates[5].quantile == 0.9 and q.aggregates[6].quantile == 0.5
    assert q.where == Comparison("s", "=", "O'Brien")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT avg(bmi) FROM t", "needs declared bounds"),
        ("SELECT count(*) FROM t; DROP TABLE t", "expected the end of the query"),
        ("SELECT count(*) FROM t ORDER BY age", "expected the end of the query"),
        ("SELECT age FROM t", "expected an aggregate"),
        ("SELECT * FROM t", "expected an aggregate"),
        ("SELECT count(*) FROM read_parquet('/etc/passwd')", "expected the end"),
        ("SELECT count(*) FROM t WHERE age > (SELECT 1)", "a number, a 'string'"),
        ("SELECT count(*) FROM t WHERE age + 1 > 2", "unexpected character '+'"),
        ("SELECT count(*) FROM t WHERE select = 1", "quote 'select'"),
        ("SELECT avg(clamp(bmi, 60, 10)) FROM t", "lower < upper"),
        ("SELECT quantile(clamp(bmi, 0, 1), 2) FROM t", "quantile q must be in [0, 1]"),
        ("SELECT histogram(clamp(bmi, 0, 1), 0) FROM t", "histogram bins"),
        ("SELECT count(*), count(*) FROM t", "same name"),
        ("SELECT count(*) FROM t GROUP BY sex, sex", "grouped by twice"),
        ("SELECT count(*) FROM t WHERE a NOT = 1", "IN or BETWEEN after NOT"),
        ("", "empty"),
        ("SELECT count(*) FROM t WHERE x = 1e999", "not finite"),
    ],
)
def test_anything_outside_the_grammar_is_refused_naming_what_was_expected(
    text: str, message: str
) -> None:
    with pytest.raises(SqlError, match="." if not message else None) as info:
        parse_sql(text)
    assert message in str(info.value)


def test_an_overlong_query_is_refused() -> None:
    with pytest.raises(SqlError, match="at most"):
        parse_sql("SELECT count(*) FROM t WHERE " + " OR ".join(["a = 1"] * 1000))
