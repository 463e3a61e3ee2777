"""DuckDB evaluation of checked queries: exact statistics equal a pandas reference; the site
policy refuses columns and groupings before any row is read (small cohorts: test_cohort)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.analytics.conftest import ehr
from tutela.dp.sql.engine import SqlPolicy, TableSource, check, evaluate, shape_of
from tutela.dp.sql.parse import SqlError, parse_sql
from tutela.errors import PolicyViolation
from tutela.fl.queries import sql_policy
from tutela.governance.minimisation import SitePolicy

CATS = SqlPolicy(categories={"sex": ("F", "M"), "diabetic": ("true", "false")})


def _stats(sql: str, data: object, policy: SqlPolicy = CATS) -> tuple[object, np.ndarray]:
    source = TableSource.of(data)  # type: ignore[arg-type]
    shape = check(parse_sql(sql), policy, source.header())
    stats = evaluate(shape, source)
    return shape, stats.vector


def test_exact_statistics_match_pandas_over_parquet_csv_and_a_frame(tmp_path: Path) -> None:
    frame = ehr(2000, 3)
    pq, csv = tmp_path / "t.parquet", tmp_path / "t.csv"
    frame.to_parquet(pq)
    frame.to_csv(csv, index=False)
    sql = (
        "SELECT count(*), count(bmi), sum(clamp(bmi, 10, 40)), avg(clamp(bmi, 10, 40)), "
        "variance(clamp(bmi, 10, 40)), histogram(clamp(age, 0, 100), 4) FROM t "
        "WHERE age >= 40 AND (diabetic OR bmi > 30) GROUP BY sex"
    )
    shape, vec = _stats(sql, pq)
    assert np.allclose(_stats(sql, csv)[1], vec) and np.allclose(_stats(sql, frame)[1], vec)
    kept = frame[(frame.age >= 40) & (frame.diabetic | (frame.bmi > 30))]
    for g, sex in enumerate(("F", "M")):
        rows = kept[kept.sex == sex]
        x = rows.bmi.dropna().clip(10, 40)
        u = (x - 25) / 15
        expected = [len(rows), x.size, x.sum() / 40, x.size, u.sum(), x.size, u.sum(), (u**2).sum()]
        expected += np.histogram(rows.age.clip(0, 100), bins=[0, 25, 50, 75, 100])[0].tolist()
        got = vec[g * shape.per_group : (g + 1) * shape.per_group]  # type: ignore[attr-defined]
        assert np.allclose(got, expected), (sex, got, expected)


def test_categorical_histogram_and_boolean_groups() -> None:
    frame = ehr(500, 4)
    shape, vec = _stats("SELECT histogram(sex) FROM t GROUP BY diabetic", frame)
    assert shape.group_keys == (("true",), ("false",))  # type: ignore[attr-defined]
    for g, flag in enumerate((True, False)):
        rows = frame[frame.diabetic == flag]
        assert vec[2 * g : 2 * g + 2].tolist() == [(rows.sex == "F").sum(), (rows.sex == "M").sum()]


def test_values_outside_the_declared_categories_are_not_counted() -> None:
    frame = pd.DataFrame({"sex": ["F", "M", "X", None, "F"]})
    _, vec = _stats("SELECT count(*) FROM t GROUP BY sex", frame)
    assert vec.tolist() == [2.0, 1.0]


def test_a_column_name_with_quotes_is_an_identifier_not_sql() -> None:
    name = 'a" = 1 OR "b'
    frame = pd.DataFrame({name: [1.0, 2.0, 3.0], "b": [0, 0, 0]})
    _, vec = _stats(
        f'SELECT count(*) FROM t WHERE "{name.replace(chr(34), chr(34) * 2)}" > 1', frame
    )
    assert vec.tolist() == [2.0]


def test_a_string_compared_with_a_number_is_a_query_error() -> None:
    with pytest.raises(SqlError, match="cannot be evaluated"):
        _stats("SELECT count(*) FROM t WHERE age = 'old'", ehr(50, 1))


def test_unknown_and_non_numeric_columns_are_refused_before_reading() -> None:
    with pytest.raises(SqlError, match="unknown column"):
        _stats("SELECT count(*) FROM t WHERE weight > 1", ehr(50, 1))
    with pytest.raises(SqlError, match="needs a numeric column"):
        _stats("SELECT avg(clamp(sex, 0, 1)) FROM t", ehr(50, 1))


def test_the_site_policy_refuses_every_column_outside_it(policy_file: Path) -> None:
    frame = ehr(200, 2)
    policy = sql_policy(SitePolicy.from_toml(policy_file), "cohort-discovery", frame.columns)
    header = TableSource.of(frame).header()
    with pytest.raises(PolicyViolation) as info:
        check(
            parse_sql(
                "SELECT count(*) FROM t WHERE postcode = 'AB1' AND mrn = 'M1' AND patient_id > 3"
            ),
            policy,
            header,
        )
    text = str(info.value)
    assert "'postcode' is outside the site policy (on the site's never-share list)" in text
    assert "'mrn' is outside the site policy (a direct identifier)" in text
    assert "'patient_id' is outside the site policy (not allowed for purpose" in text
    with pytest.raises(PolicyViolation, match="'age' has no declared categories"):
        check(parse_sql("SELECT count(*) FROM t GROUP BY age"), policy, header)
    with pytest.raises(PolicyViolation, match="purpose 'marketing' is not accepted"):
        sql_policy(SitePolicy.from_toml(policy_file), "marketing", frame.columns)


def test_the_shape_depends_on_the_query_and_categories_only() -> None:
    q = parse_sql(
        "SELECT count(*), avg(clamp(b, 0, 1)), variance(clamp(b, 0, 1)), "
        "quantile(clamp(b, 0, 1), 0.5) FROM t GROUP BY sex"
    )
    shape = shape_of(q, CATS)
    assert shape.per_group == 1 + 2 + 3 + 32 and shape.dim == 2 * shape.per_group
    assert shape.sensitivity == pytest.approx(np.sqrt(1 + 2 + 3 + 1))
