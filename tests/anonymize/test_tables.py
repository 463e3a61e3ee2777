"""Mondrian k-anonymity, l-diversity and t-closeness, verified by the independent checker,
which is itself cross-checked against pycanon on generated tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.anonymize import (
    Hierarchy,
    LDiversity,
    PrivacyModel,
    check_privacy,
    mondrian,
    reidentification_risk,
    utility_metrics,
)
from tutela.anonymize.hierarchy import CompiledHierarchy
from tutela.errors import AnonymizationError

QIS = ["age", "zip", "sex", "race"]
RACE_H = Hierarchy.from_paths(
    {
        "White": ["European"],
        "Black": ["African"],
        "Asian": ["Asian-Pacific"],
        "Pacific": ["Asian-Pacific"],
        "Other": [],
    }
)


def make_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 95, n),
            "zip": rng.choice(["02114", "02115", "02139", "10001", "10002", "94103"], n),
            "sex": rng.choice(["F", "M"], n),
            "race": rng.choice(
                ["White", "Black", "Asian", "Pacific", "Other"], n, p=[0.5, 0.2, 0.15, 0.05, 0.1]
            ),
            "diagnosis": rng.choice(["flu", "hiv", "diabetes", "asthma", "cancer"], n),
            "charges": rng.integers(1, 12, n) * 100,
        }
    )


HIER = {
    "zip": Hierarchy.prefix(["02114", "02115", "02139", "10001", "10002", "94103"]),
    "race": RACE_H,
}


def kept_rows(result, n):
    keep = np.ones(n, dtype=bool)
    keep[result.suppressed] = False
    return np.flatnonzero(keep)


def assert_truthful(original: pd.DataFrame, result, hierarchies) -> None:
    """Every released value generalises the original value of its row."""
    rows = kept_rows(result, len(original))
    released = result.released
    for col in result.columns:
        for orig, gen in zip(original[col].to_numpy()[rows], released[col].to_numpy(), strict=True):
            if col == "age":
                if gen.startswith("["):
                    lo, hi = (float(x) for x in gen[1:-1].split("-"))
                    assert lo <= orig <= hi
                else:
                    assert float(gen) == orig
            else:
                h = hierarchies.get(col) if hierarchies else None
                if h is not None:
                    assert gen in h.ancestors(str(orig)), (col, orig, gen)
                else:  # set-valued generalisation
                    assert gen == "*" or str(orig) in gen.split("|"), (col, orig, gen)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [2, 5, 10])
def test_k_anonymity_holds_and_is_truthful(seed, k):
    df = make_table(300, seed)
    res = mondrian(df, QIS, PrivacyModel(k=k, max_suppression=0.05), hierarchies=HIER)
    check = check_privacy(res.released, QIS)
    assert check.k >= k
    assert len(res.suppressed) <= 0.05 * len(df)
    assert check.rows + len(res.suppressed) == len(df)
    assert_truthful(df, res, HIER)
    # the non-QI columns of released rows are untouched
    rows = kept_rows(res, len(df))
    assert (res.released["diagnosis"].to_numpy() == df["diagnosis"].to_numpy()[rows]).all()
    assert 0.0 <= res.ncp <= 1.0


@pytest.mark.parametrize(
    ("kind", "ell"), [(LDiversity.DISTINCT, 3), (LDiversity.ENTROPY, 3), (LDiversity.RECURSIVE, 2)]
)
def test_l_diversity_holds(kind, ell):
    df = make_table(400, 7)
    model = PrivacyModel(k=4, l=ell, l_kind=kind, c=3.0)
    res = mondrian(df, QIS, model, sensitive="diagnosis", hierarchies=HIER)
    check = check_privacy(res.released, QIS, "diagnosis", recursive_l=ell)
    assert check.k >= 4
    if kind is LDiversity.DISTINCT:
        assert check.l_distinct is not None and check.l_distinct >= ell
    elif kind is LDiversity.ENTROPY:
        assert check.l_entropy is not None and check.l_entropy >= ell - 1e-9
    else:
        assert check.recursive_c is not None and check.recursive_c < 3.0


@pytest.mark.parametrize("sensitive", ["diagnosis", "charges"])
def test_t_closeness_holds(sensitive):
    df = make_table(400, 8)
    res = mondrian(df, QIS, PrivacyModel(k=3, t=0.3), sensitive=sensitive, hierarchies=HIER)
    check = check_privacy(res.released, QIS, sensitive)
    assert check.t is not None and check.t <= 0.3 + 1e-9
    assert len(res.suppressed) == 0  # suppression is off under t-closeness


def test_requirements_make_a_difference():
    """Without l the partitioning is finer; with l it must respect diversity."""
    df = make_table(400, 3)
    plain = mondrian(df, QIS, PrivacyModel(k=2), hierarchies=HIER)
    assert check_privacy(plain.released, QIS, "diagnosis").l_distinct == 1
    diverse = mondrian(df, QIS, PrivacyModel(k=2, l=3), sensitive="diagnosis", hierarchies=HIER)
    assert check_privacy(diverse.released, QIS, "diagnosis").l_distinct >= 3


def test_impossible_requests_name_the_problem():
    df = make_table(20, 1)
    with pytest.raises(AnonymizationError, match="k=21 is larger than the table"):
        mondrian(df, QIS, PrivacyModel(k=21))
    with pytest.raises(ValueError, match="'nope'"):
        mondrian(df, [*QIS, "nope"], PrivacyModel(k=2))
    mono = df.assign(diagnosis="flu")
    with pytest.raises(AnonymizationError, match="l=2"):
        mondrian(mono, QIS, PrivacyModel(k=2, l=2), sensitive="diagnosis")
    with pytest.raises(ValueError, match="sensitive"):
        mondrian(df, QIS, PrivacyModel(k=2, l=2))
    with pytest.raises(ValueError):
        PrivacyModel(k=0)


def test_suppression_budget_is_respected_and_used_for_outliers():
    rng = np.random.default_rng(5)
    df = pd.DataFrame(
        {
            "country": ["US"] * 500 + ["MX"] * 100 + ["NL", "FR", "JP"],
            "age": rng.integers(20, 60, 603),
        }
    )
    flat = {"country": Hierarchy.flat(["US", "MX", "NL", "FR", "JP"])}
    res = mondrian(
        df, ["country", "age"], PrivacyModel(k=5, max_suppression=0.01), hierarchies=flat
    )
    assert len(res.suppressed) == 3  # the three one-off countries
    assert set(res.released["country"]) == {"US", "MX"}
    none = mondrian(
        df, ["country", "age"], PrivacyModel(k=5, max_suppression=0.0), hierarchies=flat
    )
    assert len(none.suppressed) == 0
    assert "*" in set(none.released["country"])  # pooled under the root instead
    assert check_privacy(none.released, ["country", "age"]).k >= 5
    # set-valued generalisation (no hierarchy) needs no suppression for the outliers
    sets = mondrian(df, ["country", "age"], PrivacyModel(k=5, max_suppression=0.01))
    assert len(sets.suppressed) == 0
    assert check_privacy(sets.released, ["country", "age"]).k >= 5


def test_hierarchy_building_and_lca():
    h = Hierarchy.from_paths({"a": ["ab"], "b": ["ab"], "c": ["cd", "top"], "d": ["cd", "top"]})
    assert h.ancestors("c") == ["c", "cd", "top", "*"]
    ch = CompiledHierarchy.build(h, ["a", "b", "c", "d"])
    code = ch.leaf_codes
    assert ch.labels[ch.lca(np.array([code["a"], code["b"]]))] == "ab"
    assert ch.labels[ch.lca(np.array([code["c"], code["d"], code["c"]]))] == "cd"
    assert ch.labels[ch.lca(np.array([code["a"], code["d"]]))] == "*"
    assert ch.labels[ch.lca(np.array([code["d"]]))] == "d"
    with pytest.raises(ValueError, match="two parents"):
        Hierarchy.from_paths({"a": ["x"], "x": ["y"]})
    assert Hierarchy.prefix(["02114"]).ancestors("02114") == ["02114", "021**", "0****", "*"]


def test_two_parents_rejected():
    with pytest.raises(ValueError, match="two parents"):
        Hierarchy.from_paths({"a": ["x", "y"], "b": ["x", "z"]})


# --------------------------------------------------------------- the checker vs pycanon


def _pycanon():
    return pytest.importorskip("pycanon.anonymity")


def generalised_tables():
    for seed in range(6):
        df = make_table(80, 100 + seed)
        k = [2, 3, 4][seed % 3]
        res = mondrian(df, QIS, PrivacyModel(k=k, max_suppression=0.0), hierarchies=HIER)
        out = res.released.copy()
        out["charges"] = out["charges"].astype(np.int64)
        out["diagnosis"] = out["diagnosis"].astype(str)
        yield seed, out


@pytest.mark.parametrize(("seed", "table"), list(generalised_tables()))
def test_checker_agrees_with_pycanon(seed, table):
    pc = _pycanon()
    ours = check_privacy(table, QIS, "diagnosis")
    assert ours.k == pc.k_anonymity(table, QIS)
    assert ours.l_distinct == pc.l_diversity(table, QIS, ["diagnosis"])
    # pycanon truncates exp(entropy) to an int
    theirs = pc.entropy_l_diversity(table, QIS, ["diagnosis"])
    assert theirs in {math.floor(ours.l_entropy), math.floor(ours.l_entropy + 1e-9) - 1}
    assert ours.t == pytest.approx(pc.t_closeness(table, QIS, ["diagnosis"]), abs=1e-9)
    num = check_privacy(table, QIS, "charges")
    assert num.t == pytest.approx(pc.t_closeness(table, QIS, ["charges"]), abs=1e-9)


def test_recursive_diversity_matches_the_definition():
    # Machanavajjhala et al.: r1 < c (r_l + ... + r_m) with r sorted descending. (pycanon
    # 1.0.1.post2 sorts ascending, so it is not used as the reference here.)
    table = pd.DataFrame(
        {"q": ["a"] * 6 + ["b"] * 5, "s": ["x", "x", "x", "y", "y", "z", "x", "x", "x", "x", "y"]}
    )
    check = check_privacy(table, ["q"], "s", recursive_l=2)
    # class a: r = (3, 2, 1) -> 3 / (2 + 1) = 1.0; class b: r = (4, 1) -> 4 / 1 = 4.0
    assert check.recursive_c == pytest.approx(4.0)
    assert check_privacy(table[:6], ["q"], "s", recursive_l=3).recursive_c == pytest.approx(3.0)
    assert check_privacy(table[6:], ["q"], "s", recursive_l=3).recursive_c == math.inf


def test_utility_and_risk_metrics():
    table = pd.DataFrame({"q": ["a"] * 2 + ["b"] * 3 + ["c"] * 5})
    util = utility_metrics(table, ["q"], k=2, total_rows=12, ncp=0.25)
    assert util.classes == 3
    assert util.suppressed == 2
    assert util.discernibility == 4 + 9 + 25 + 2 * 12
    assert util.aecs == pytest.approx((10 / 3) / 2)
    risk = reidentification_risk(table, ["q"])
    assert risk.prosecutor_max == pytest.approx(0.5)
    assert risk.prosecutor_avg == pytest.approx(3 / 10)
    assert risk.journalist_max == pytest.approx(0.5)  # census: population = sample
    assert risk.marketer == pytest.approx(3 / 10)
    assert risk.records_at_risk == pytest.approx(5 / 10)  # classes a (1/2) and b (1/3) > 0.2
    population = pd.concat([table, pd.DataFrame({"q": ["a"] * 8 + ["b"] * 7})])
    risk2 = reidentification_risk(table, ["q"], population)
    assert risk2.journalist_max == pytest.approx(1 / 5)
    assert risk2.marketer == pytest.approx((2 / 10 + 3 / 10 + 5 / 5) / 10)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(10, 120),
    k=st.integers(1, 10),
    use_hier=st.booleans(),
    ell=st.sampled_from([None, 2]),
)
def test_any_table_any_k_is_anonymous_and_truthful(seed, n, k, use_hier, ell):
    df = make_table(n, seed)
    hier = HIER if use_hier else None
    model = PrivacyModel(k=min(k, n), l=ell, max_suppression=0.05)
    try:
        res = mondrian(df, QIS, model, sensitive="diagnosis", hierarchies=hier)
    except AnonymizationError:
        assert ell is not None and df["diagnosis"].nunique() < ell
        return
    check = check_privacy(res.released, QIS, "diagnosis")
    assert check.k >= min(k, n)
    if ell is not None:
        assert check.l_distinct >= ell
    assert len(res.suppressed) <= 0.05 * n
    assert_truthful(df, res, hier or {})
