"""The release: unbiased statistics whose empirical variance is the stated sigma, intervals
that cover at their stated rate, and a ledger charged before anything is released (and not
at all on a policy or budget refusal; the noisy cohort test: tests/analytics/test_cohort.py).

Statistical checks use fixed seeds, so they are deterministic. For a fresh seed the
false-failure rates would be: each mean z-test at |z| < 5, 6e-7 per coordinate; each
variance test (the sample variance within 5 standard errors of sigma^2, normal
approximation of the chi-square with N - 1 degrees of freedom), about 6e-7 per coordinate;
each coverage test (within 5 binomial standard deviations of 95%), 6e-7.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.analytics.conftest import ehr
from tutela.dp.accounting import compute_epsilon
from tutela.dp.events import DiscreteLaplaceEvent, GaussianEvent
from tutela.dp.ledger import PrivacyLedger
from tutela.dp.sql import SqlPolicy, SqlTable, TableSource
from tutela.dp.sql.engine import check, evaluate
from tutela.dp.sql.parse import parse_sql
from tutela.dp.sql.release import answer_frame, noise_multiplier, release_local
from tutela.errors import BudgetExceeded, PolicyViolation
from tutela.hazmat.rng import SecureRandom

POLICY = SqlPolicy(categories={"sex": ("F", "M")}, min_cohort=10, max_query_epsilon=1.0)
SQL = "SELECT count(*), avg(clamp(bmi, 10, 40)) FROM t WHERE age > 50 GROUP BY sex"


def _stats(frame: object) -> object:
    source = TableSource.of(frame)  # type: ignore[arg-type]
    return evaluate(check(parse_sql(SQL), POLICY, source.header()), source)


def test_local_noise_is_unbiased_with_the_stated_variance() -> None:
    stats = _stats(ehr(2000, 8))
    z = noise_multiplier(0.5, 1e-6)
    rng = SecureRandom(11)
    n = 4000
    draws = np.empty((n, stats.shape.dim))  # type: ignore[attr-defined]
    sigma = 0.0
    for i in range(n):
        draws[i], sigma = release_local(stats, z, rng=rng)  # type: ignore[arg-type]
    assert sigma == pytest.approx(z * stats.shape.sensitivity, rel=1e-5)  # type: ignore[attr-defined]
    noise = draws - stats.vector  # type: ignore[attr-defined]
    z_means = noise.mean(axis=0) / (sigma / math.sqrt(n))
    assert np.all(np.abs(z_means) < 5), z_means
    ratio = noise.var(axis=0, ddof=1) / sigma**2
    assert np.all(np.abs(ratio - 1) < 5 * math.sqrt(2 / (n - 1))), ratio


def test_count_intervals_cover_at_the_stated_rate_and_mean_intervals_about_it() -> None:
    stats = _stats(ehr(2000, 9))
    shape = stats.shape  # type: ignore[attr-defined]
    truth_count = stats.vector[shape.index(0, 0, "count")]  # type: ignore[attr-defined]
    n_f = stats.vector[shape.index(0, 1, "count")]  # type: ignore[attr-defined]
    s_f = stats.vector[shape.index(0, 1, "sum")]  # type: ignore[attr-defined]
    truth_mean = 25 + 15 * s_f / n_f
    z = noise_multiplier(0.2, 1e-6)
    rng = SecureRandom(12)
    trials = 600
    count_in = mean_in = 0
    for _ in range(trials):
        noisy, sigma = release_local(stats, z, rng=rng)  # type: ignore[arg-type]
        row = answer_frame(shape, noisy, sigma).iloc[0]
        count_in += row["count_ci_low"] <= truth_count <= row["count_ci_high"]
        mean_in += row["avg_bmi_ci_low"] <= truth_mean <= row["avg_bmi_ci_high"]
    sd = math.sqrt(0.95 * 0.05 / trials)
    assert abs(count_in / trials - 0.95) < 5 * sd, count_in
    assert abs(mean_in / trials - 0.95) < 5 * sd, mean_in


def _table(
    tmp_path: Path, budget: float = 1.5, policy: SqlPolicy = POLICY
) -> tuple[SqlTable, PrivacyLedger]:
    path = tmp_path / "t.parquet"
    ehr(3000, 10).to_parquet(path)
    ledger = PrivacyLedger(tmp_path / "ledger.db")
    ledger.create_scope("data", budget, 1e-6)
    return SqlTable(path, policy=policy, ledger=ledger, scope="data", rng=SecureRandom(5)), ledger


def test_a_query_is_charged_its_epsilon_before_release(tmp_path: Path) -> None:
    table, ledger = _table(tmp_path)
    answer = table.query(SQL, 0.5)
    assert list(answer.frame["sex"]) == ["F", "M"]
    assert answer.epsilon == pytest.approx(0.5, abs=1e-3) and answer.epsilon <= 0.5 + 1e-9
    test, record = ledger.records("data")  # the minimum-cohort test, then the release
    assert isinstance(test.event, DiscreteLaplaceEvent) and test.event.sensitivity == 1
    assert test.epsilon_after == pytest.approx(0.05, abs=1e-3)  # 0.1 of the query's epsilon
    assert record.event == GaussianEvent(noise_multiplier(0.5, 1e-6))
    assert answer.record == record and answer.cohort_record == test
    assert 0.5 < ledger.spent("data") < 0.55 + 1e-3
    assert compute_epsilon(GaussianEvent(answer.noise_multiplier), 1e-6) <= 0.5 + 1e-9


@pytest.mark.parametrize(
    ("sql", "epsilon", "error", "message"),
    [
        (
            "SELECT count(*) FROM t GROUP BY diabetic",
            0.5,
            PolicyViolation,
            "no declared categories",
        ),
        (SQL, 1.5, PolicyViolation, "exceeds this site's maximum of 1 per query"),
        (SQL, 1.0, BudgetExceeded, "budget"),
    ],
)
def test_refusals_charge_nothing(
    tmp_path: Path, sql: str, epsilon: float, error: type[Exception], message: str
) -> None:
    table, ledger = _table(tmp_path, budget=1.2)
    table.query(SQL, 0.8)
    with pytest.raises(error, match=message):
        table.query(sql, epsilon)
    assert len(ledger.records("data")) == 2  # the first query's test and release
