"""DP analytics: parsing, cost before running, ledger charges, clamping, noise statistics.

Statistical checks use fixed seeds; each compares a statistic with its exact (or
delta-method) value at 5 standard errors, a false-failure rate of about 6e-7 per check
under the normal approximation (about 1e-5 for the whole file).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tutela.dp.accounting import calibrate_noise_multiplier, compute_epsilon, dpsgd_event
from tutela.dp.analytics import (
    Bounds,
    PrivateTable,
    Query,
    QueryError,
    QueryPlan,
    fingerprint,
    parse_query,
    plan,
    read_csv,
)
from tutela.dp.events import ComposedEvent, DiscreteLaplaceEvent, LaplaceEvent, PureDPEvent
from tutela.dp.ledger import LedgerError, PrivacyLedger
from tutela.dp.mechanisms import DiscreteLaplaceMechanism, LaplaceMechanism
from tutela.errors import BudgetExceeded, DataError
from tutela.hazmat.noise import effective_discrete_laplace_scale
from tutela.hazmat.rng import SecureRandom

Z = 5.0  # standard errors allowed in every statistical check
R = 1000  # repetitions per statistical check
R_SLOW = 500  # for the composite estimators (mean, variance)
AGE = Bounds(0.0, 120.0)


def _frame(n: int = 1000) -> pd.DataFrame:
    x = np.linspace(20.0, 80.0, n)
    sex = np.where(np.arange(n) % 3 == 0, "F", "M")
    return pd.DataFrame({"age": x, "sex": sex})


def _table(
    tmp_path: Path, frame: pd.DataFrame, budget: float = 10.0, seed: int = 1
) -> PrivateTable:
    ledger = PrivacyLedger(tmp_path / "ledger.db")
    ledger.create_scope("people", budget, 1e-6)
    return PrivateTable(frame, name="people", ledger=ledger, rng=SecureRandom(seed))


def _draws(p: QueryPlan, frame: pd.DataFrame, seed: int, reps: int = R) -> list[object]:
    rng = SecureRandom(seed)
    return [p.release_unaccounted(frame, rng=rng) for _ in range(reps)]


def _discrete_laplace_moments(scale: float) -> tuple[float, float]:
    """(E|X|, E X**2) of the discrete Laplace with the sampler's effective scale."""
    p = math.exp(-1 / float(effective_discrete_laplace_scale(scale)))
    return 2 * p / ((1 - p) * (1 + p)), 2 * p / (1 - p) ** 2


def _check_noise(noise: np.ndarray, mean_abs: float, second: float) -> None:
    """Unbiased (mean 0) and the right scale (mean |noise|), both at Z standard errors."""
    n = noise.size
    assert abs(noise.mean()) < Z * math.sqrt(second / n)
    var_abs = second - mean_abs**2
    assert abs(np.abs(noise).mean() - mean_abs) < Z * math.sqrt(var_abs / n)


# -- parsing ------------------------------------------------------------------------------


def test_parse_queries() -> None:
    assert parse_query("count(age)") == Query("count", "age")
    assert parse_query(" COUNT( * ) ") == Query("count", "*")
    assert parse_query("mean(age)", bounds=(0, 120)) == Query("mean", "age", bounds=AGE)
    q = parse_query("quantile(age, 0.25)", bounds=AGE)
    assert (q.kind, q.quantile, str(q)) == ("quantile", 0.25, "quantile(age, 0.25)")
    h = parse_query("histogram('sex')", categories=["F", "M"], bounds=AGE)
    assert h == Query("histogram", "sex", categories=("F", "M"))
    assert parse_query("count(age)", bounds=AGE).bounds is None  # count ignores bounds


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("median(age)", {}, "unknown function 'median'"),
        ("mean age", {}, "cannot parse"),
        ("mean(age)", {}, "needs declared bounds"),
        ("sum(age)", {}, "needs declared bounds"),
        ("quantile(age)", {"bounds": AGE}, "column and q"),
        ("quantile(age, 1.5)", {"bounds": AGE}, "in [0, 1]"),
        ("quantile(age, x)", {"bounds": AGE}, "must be a number"),
        ("histogram(sex)", {}, "bins or categories"),
        ("histogram(age)", {"bins": [0, 10, 5]}, "strictly increasing"),
        ("mean(*)", {"bounds": AGE}, "name a column"),
        ("count(a, b)", {}, "one column"),
        ("count()", {}, "one column"),
    ],
)
def test_parse_errors_are_clear(text: str, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(QueryError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_query(text, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("lower", "upper"), [(1, 1), (5, 0), (0, float("inf"))])
def test_bad_bounds(lower: float, upper: float) -> None:
    with pytest.raises(QueryError):
        Bounds(lower, upper)


def test_unknown_column_is_refused_before_any_spend(tmp_path: Path) -> None:
    table = _table(tmp_path, _frame(10))
    with pytest.raises(QueryError, match="unknown column 'agee'; the table has: age, sex"):
        table.query("count(agee)", 0.5)
    with pytest.raises(QueryError, match="unknown column"):
        table.plan(Query("mean", "nope", bounds=AGE), 0.5)
    assert table._ledger.records() == ()


def test_read_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_csv(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_csv(tmp_path / "empty.csv")
    (tmp_path / "bad.csv").write_text('a,b\n1,2,3,4\n"x\n')
    with pytest.raises(DataError, match="as CSV"):
        read_csv(tmp_path / "bad.csv")


# -- cost before running --------------------------------------------------------------------


def test_cost_splits_are_stated_and_exact() -> None:
    mean = plan(Query("mean", "age", bounds=AGE), 0.5)
    assert [s.name for s in mean.steps] == ["centred sum", "count"]
    assert [s.epsilon for s in mean.steps] == [0.25, 0.25]
    assert mean.epsilon == pytest.approx(0.5, abs=1e-12) and mean.epsilon <= 0.5
    assert mean.steps[0].sensitivity == 60.0  # half width: the sum is centred
    assert isinstance(mean.event, ComposedEvent)
    var = plan(Query("variance", "age", bounds=AGE), 0.5)
    assert [s.name for s in var.steps] == ["centred sum", "centred sum of squares", "count"]
    assert [s.epsilon for s in var.steps] == pytest.approx([0.1666, 0.1666, 0.1668], abs=1e-12)
    assert var.steps[1].sensitivity == 1800.0  # (h**2) / 2 with h = 60
    total = plan(Query("sum", "age", bounds=Bounds(-10, 120)), 1.0)
    assert total.steps[0].sensitivity == 120.0 and isinstance(total.event, LaplaceEvent)
    count = plan(Query("count", "age"), 0.3)
    assert isinstance(count.event, DiscreteLaplaceEvent) and count.epsilon <= 0.3
    quant = plan(Query("quantile", "age", bounds=AGE, quantile=0.5), 0.7)
    assert quant.event == PureDPEvent(0.7)
    assert "centred sum: epsilon 0.25" in mean.describe()
    with pytest.raises(QueryError):
        plan(Query("count", "age"), 0.0)


@pytest.mark.parametrize(
    "query",
    [
        Query("count", "age"),
        Query("sum", "age", bounds=AGE),
        Query("mean", "age", bounds=AGE),
        Query("variance", "age", bounds=AGE),
        Query("histogram", "sex", categories=("F", "M")),
        Query("quantile", "age", bounds=AGE, quantile=0.5),
    ],
)
def test_cost_shown_before_equals_the_charge(tmp_path: Path, query: Query) -> None:
    table = _table(tmp_path, _frame(50))
    table.query("count(*)", 0.25)  # a previous spend in the scope
    p = table.plan(query, 0.5)
    before = table.preview(p)
    result = table.query(p)
    assert result.record.event == p.event
    assert result.record.epsilon_after == before  # exactly what was shown
    assert result.epsilon == p.epsilon
    # pure-DP total: the ledger's composed epsilon is the sum, on the PLD grid
    assert before <= 0.25 + p.epsilon + 1e-9
    assert before == pytest.approx(0.25 + p.epsilon, abs=2e-4)
    assert table._ledger.records("people")[-1].event == p.event


def test_plan_reads_no_data(tmp_path: Path) -> None:
    """Bounds are declared: two tables with different ranges get identical mechanisms."""
    small = _frame(20).assign(age=lambda f: f.age / 10)
    big = _frame(200).assign(age=lambda f: f.age + 1000)
    q = Query("variance", "age", bounds=AGE)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = _table(tmp_path / "a", small), _table(tmp_path / "b", big)
    assert a.plan(q, 0.9) == b.plan(q, 0.9) == plan(q, 0.9)


def test_budget_is_enforced_and_nothing_is_released_past_it(tmp_path: Path) -> None:
    table = _table(tmp_path, _frame(100), budget=1.0)
    table.query(Query("mean", "age", bounds=AGE), 0.5)
    table.query(Query("variance", "age", bounds=AGE), 0.5)  # exactly the rest of the budget
    assert table._ledger.spent("people") <= 1.0
    with pytest.raises(BudgetExceeded, match="nothing was spent"):
        table.query(Query("count", "age"), 0.01)
    assert len(table._ledger.records("people")) == 2


def test_unknown_scope_spends_and_releases_nothing(tmp_path: Path) -> None:
    ledger = PrivacyLedger(tmp_path / "l.db")
    table = PrivateTable(_frame(10), name="nobody", ledger=ledger)
    with pytest.raises(LedgerError, match="unknown privacy scope"):
        table.query("count(age)", 0.5)
    assert ledger.records() == ()


def test_from_csv_scope_is_the_content_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    _frame(30).to_csv(path, index=False)
    copy = tmp_path / "copy.csv"
    copy.write_bytes(path.read_bytes())
    ledger = PrivacyLedger(tmp_path / "l.db")
    table = PrivateTable.from_csv(path, ledger=ledger)
    assert table.scope == fingerprint(_frame(30)) and table.columns == ("age", "sex")
    assert PrivateTable.from_csv(copy, ledger=ledger).scope == table.scope
    ledger.create_scope(table.scope, 1.0, 1e-6)
    table.query("count(*)", 1.0)
    with pytest.raises(BudgetExceeded):
        PrivateTable.from_csv(copy, ledger=ledger).query("count(*)", 0.1)


def test_fingerprint_follows_the_content_not_its_layout() -> None:
    frame = pd.DataFrame({"age": [30, 41, None], "sex": ["F", "M", "F"], "w": [0.1, 2.0, 3.5]})
    base = fingerprint(frame)
    assert base.startswith("table:sha256:") and len(base) == len("table:sha256:") + 64
    same = [
        frame[["w", "sex", "age"]],  # columns reordered
        frame.iloc[::-1].reset_index(drop=True),  # rows reordered
        frame.assign(age=frame.age.astype("Int64")),  # 30 and 30.0 alike
        frame.set_index(pd.Index([7, 8, 9])),  # the index is not data
    ]
    for other in same:
        assert fingerprint(other) == base
    different = [
        frame.iloc[:2],  # a row removed
        frame.assign(age=[30, 42, None]),  # a value changed
        frame.assign(sex=["F", "M", None]),  # a value missing
        frame.rename(columns={"w": "weight"}),  # a column renamed
        frame.assign(extra=1),  # a column added
        frame.assign(age=["30", "41", None]),  # numbers and strings differ
    ]
    assert len({fingerprint(f) for f in different} | {base}) == len(different) + 1


def test_a_non_numeric_column_is_refused_before_any_spend(tmp_path: Path) -> None:
    frame = _frame(20).assign(code=["1", "2", "x", *["3"] * 17], digits=["4"] * 20)
    table = _table(tmp_path, frame)
    for query in (
        Query("sum", "sex", bounds=AGE),
        Query("mean", "code", bounds=AGE),  # one bad value is enough
        Query("variance", "sex", bounds=AGE),
        Query("quantile", "sex", bounds=AGE, quantile=0.5),
        Query("histogram", "sex", bins=(0, 1, 2)),
    ):
        with pytest.raises(QueryError, match=f"column '{query.column}' is not numeric"):
            table.plan(query, 0.5)
        with pytest.raises(QueryError, match="is not numeric"):
            table.query(query, 0.5)
        with pytest.raises(QueryError, match="is not numeric"):
            plan(query, 0.5).release_unaccounted(frame, rng=SecureRandom(1))
    assert table._ledger.records() == ()
    # what needs no numbers still works, and numbers written as strings are numbers
    table.query(Query("count", "sex"), 0.5)
    table.query(Query("histogram", "sex", categories=("F", "M")), 0.5)
    table.query(Query("mean", "digits", bounds=AGE), 0.5)
    assert len(table._ledger.records()) == 3


# -- clamping to the declared bounds ----------------------------------------------------


def _once(query: Query, frame: pd.DataFrame, epsilon: float, seed: int = 5) -> object:
    return plan(query, epsilon).release_unaccounted(frame, rng=SecureRandom(seed))


def test_values_outside_the_bounds_are_clamped(tmp_path: Path) -> None:
    n = 100
    frame = pd.DataFrame({"age": [1000.0] * (n - 10) + [-500.0] * 10, "note": ["x"] * n})
    # epsilon 50: discrete noise is 0 with probability 1 - 1e-10, Laplace noise b <= 2.4
    total = _once(Query("sum", "age", bounds=AGE), frame, 50.0)
    assert isinstance(total, float) and abs(total - (n - 10) * 120.0) < 50  # not 85000
    mean = _once(Query("mean", "age", bounds=AGE), frame, 50.0)
    assert isinstance(mean, float) and abs(mean - 108.0) < 1.0 and mean <= 120.0
    var = _once(Query("variance", "age", bounds=AGE), frame, 50.0)
    assert isinstance(var, float) and abs(var - 0.1 * 0.9 * 120**2) < 30 and var <= 3600
    hist = _once(Query("histogram", "age", bins=(0, 50, 120)), frame, 50.0)
    assert hist == {"[0, 50)": 10, "[50, 120]": n - 10}
    quantile = Query("quantile", "age", bounds=AGE, quantile=0.5)
    for seed in range(20):
        q = _once(quantile, frame, 1.0, seed)
        assert isinstance(q, float) and 0.0 <= q <= 120.0
    # missing values are absent rows: they change nothing
    gaps = frame.assign(age=[*[None] * 10, *frame.age[10:]])
    total = _once(Query("sum", "age", bounds=AGE), gaps, 50.0)
    assert isinstance(total, float) and abs(total - (n - 20) * 120.0) < 50
    # through the table too: the ledger is charged and the clamped answer released
    table = _table(tmp_path, frame, budget=5.0)
    result = table.query(Query("mean", "age", bounds=AGE), 4.0)
    assert isinstance(result.answer, float) and 0.0 <= result.answer <= 120.0


def test_categories_outside_the_declared_ones_are_not_counted() -> None:
    frame = pd.DataFrame({"sex": ["F"] * 5 + ["M"] * 7 + ["X"] * 4 + [None]})
    hist = Query("histogram", "sex", categories=("F", "M"))
    assert _once(hist, frame, 60.0) == {"F": 5, "M": 7}
    assert _once(Query("count", "sex"), frame, 60.0) == 16
    assert _once(Query("count", "*"), frame, 60.0) == 17


# -- noise scale and unbiasedness ---------------------------------------------------------


def test_count_noise_scale_and_unbiased() -> None:
    frame = _frame(300)
    p = plan(Query("count", "age"), 0.5)
    mech = p.steps[0].mechanism
    assert isinstance(mech, DiscreteLaplaceMechanism) and mech.scale == pytest.approx(2.0)
    noise = np.array(_draws(p, frame, seed=11), dtype=float) - 300
    _check_noise(noise, *_discrete_laplace_moments(mech.scale))


def test_histogram_noise_scale_and_unbiased() -> None:
    frame = _frame(300)  # 100 F, 200 M
    p = plan(Query("histogram", "sex", categories=("F", "M")), 1.0)
    mech = p.steps[0].mechanism
    assert isinstance(mech, DiscreteLaplaceMechanism) and mech.scale == pytest.approx(1.0)
    draws = _draws(p, frame, seed=12, reps=600)
    noise = np.array([[d["F"] - 100, d["M"] - 200] for d in draws], dtype=float)  # type: ignore[index]
    _check_noise(noise.ravel(), *_discrete_laplace_moments(mech.scale))


def test_sum_noise_scale_and_unbiased() -> None:
    frame = _frame(300)
    p = plan(Query("sum", "age", bounds=AGE), 1.0)
    mech = p.steps[0].mechanism
    assert isinstance(mech, LaplaceMechanism)
    assert mech.scale == pytest.approx(120.0, rel=1e-5)  # sensitivity / epsilon
    noise = np.array(_draws(p, frame, seed=13), dtype=float) - frame.age.sum()
    _check_noise(noise, mech.scale, 2 * mech.scale**2)


def test_mean_unbiased_with_the_predicted_spread() -> None:
    n = 1000
    frame = _frame(n)
    p = plan(Query("mean", "age", bounds=AGE), 1.0)
    b_sum = p.steps[0].mechanism.scale  # type: ignore[union-attr]
    count_mech = p.steps[1].mechanism
    assert isinstance(count_mech, DiscreteLaplaceMechanism)
    var_count = _discrete_laplace_moments(count_mech.scale)[1]
    assert b_sum == pytest.approx(120.0, rel=1e-5)  # 60 / 0.5
    answers = np.array(_draws(p, frame, seed=14, reps=R_SLOW), dtype=float)
    true = float(frame.age.mean())
    centred = true - 60.0
    # delta method: (2 b**2 + centred**2 Var(count noise)) / n**2
    sd = math.sqrt(2 * b_sum**2 + centred**2 * var_count) / n
    assert abs(answers.mean() - true) < Z * sd / math.sqrt(R_SLOW)
    assert 0.75 < answers.std() / sd < 1.25


def test_variance_unbiased_with_the_predicted_spread() -> None:
    n = 1000
    frame = _frame(n)
    p = plan(Query("variance", "age", bounds=AGE), 3.0)
    b1 = p.steps[0].mechanism.scale  # type: ignore[union-attr]
    b2 = p.steps[1].mechanism.scale  # type: ignore[union-attr]
    assert b2 == pytest.approx(1800.0, rel=1e-5)  # (60**2 / 2) / 1.0
    count_mech = p.steps[2].mechanism
    assert isinstance(count_mech, DiscreteLaplaceMechanism)
    var_count = _discrete_laplace_moments(count_mech.scale)[1]
    y = frame.age.to_numpy() - 60.0
    s1, s2 = y.sum(), (y * y - 1800.0).sum()
    true = float(frame.age.var(ddof=0))
    # delta method for s2/n + h**2/2 - (s1/n)**2
    d_s1, d_s2, d_n = -2 * s1 / n**2, 1 / n, -s2 / n**2 + 2 * s1**2 / n**3
    sd = math.sqrt(d_s2**2 * 2 * b2**2 + d_s1**2 * 2 * b1**2 + d_n**2 * var_count)
    bias = 2 * b1**2 / n**2  # E[(noise / n)**2] of the squared mean term
    answers = np.array(_draws(p, frame, seed=15, reps=R_SLOW), dtype=float)
    assert abs(answers.mean() - true) < Z * sd / math.sqrt(R_SLOW) + bias
    assert 0.75 < answers.std() / sd < 1.25


def test_quantile_matches_the_exponential_mechanism_distribution() -> None:
    """Smith (2011): P(output <= t) from the exact density, checked at several t."""
    values = np.sort(np.concatenate([np.linspace(30, 50, 30), np.linspace(70, 75, 10)]))
    frame = pd.DataFrame({"age": values})
    eps, q = 0.5, 0.5
    p = plan(Query("quantile", "age", bounds=AGE, quantile=q), eps)
    edges = np.concatenate([[0.0], values, [120.0]])
    lengths = np.diff(edges)
    weights = lengths * np.exp(-eps * np.abs(np.arange(lengths.size) - q * values.size) / 2)
    weights /= weights.sum()

    def cdf(t: float) -> float:
        part = np.clip((t - edges[:-1]) / np.where(lengths > 0, lengths, 1), 0, 1)
        return float((weights * part).sum())

    out = np.array(_draws(p, frame, seed=16), dtype=float)
    assert out.min() >= 0 and out.max() <= 120
    for t in (25.0, 38.0, 42.0, 50.0, 60.0, 80.0):
        expected = cdf(t)
        se = math.sqrt(max(expected * (1 - expected), 1e-4) / R)
        assert abs((out <= t).mean() - expected) < Z * se, t


def test_quantile_is_accurate_at_large_epsilon() -> None:
    frame = _frame(1001)
    p = plan(Query("quantile", "age", bounds=AGE, quantile=0.25), 5.0)
    out = np.array(_draws(p, frame, seed=17, reps=100), dtype=float)
    # rank error of the exponential mechanism: P(|rank - qn| > 10) < 1001 e^-12.5 < 4e-3
    true = float(np.quantile(frame.age, 0.25))
    assert np.all(np.abs(out - true) < 10 * 60 / 1000 + 0.1)


# -- calibration on a ledger's grid (accounting hook) -------------------------------------


def test_calibrate_on_a_coarser_grid_meets_the_target_on_that_grid() -> None:
    vdi = 1e-3
    z = calibrate_noise_multiplier(2.0, 1e-5, 0.01, 100, value_discretization_interval=vdi)

    def eps(zz: float) -> float:
        return compute_epsilon(dpsgd_event(zz, 0.01, 100), 1e-5, value_discretization_interval=vdi)

    assert eps(z) <= 2.0 < eps(z * (1 - 2e-3))
    with pytest.raises(ValueError, match="value_discretization_interval"):
        calibrate_noise_multiplier(2.0, 1e-5, 0.01, 100, value_discretization_interval=0.5)
