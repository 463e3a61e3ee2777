"""The minimum cohort decided on noisy counts: random near the threshold, the exact decision
far from it (within the stated failure probability), charged to the ledger before it is
decided, and a refusal charges the test and nothing more; a coordinator or analyst that
probes a cohort again and again pays for every probe until the budget refuses.

Statistical checks use fixed seeds, so they are deterministic. For a fresh seed: the
near-threshold test (refusal frequency within 5 binomial standard deviations of p / (1 + p))
fails with probability about 6e-7; each far-from-threshold run fails with probability at
most beta = 1e-9 per group and decision (1e-6 over the 1,000 decisions below).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tests.analytics.conftest import POLICY, ehr
from tutela.dp.events import DiscreteLaplaceEvent, GaussianEvent
from tutela.dp.ledger import PrivacyLedger
from tutela.dp.sql import SqlPolicy, SqlTable
from tutela.dp.sql.cohort import CohortTest, cohort_test
from tutela.dp.sql.engine import SiteStatistics, shape_of
from tutela.dp.sql.parse import parse_sql
from tutela.errors import BudgetExceeded, PolicyViolation
from tutela.fl.queries import QueryRequest, query_scopes, site_verdict
from tutela.governance.minimisation import SitePolicy
from tutela.hazmat.rng import SecureRandom

CATS = SqlPolicy(categories={"sex": ("F", "M")})
SITE_POLICY = SitePolicy.from_mapping(tomllib.loads(POLICY))


def _stats(counts: tuple[int, ...], sql: str = "SELECT count(*) FROM t") -> SiteStatistics:
    shape = shape_of(parse_sql(sql), CATS)
    return SiteStatistics(shape, np.asarray(counts, np.float64), counts)


def _test(min_cohort: int = 50, epsilon: float = 1.0, share: float = 0.2) -> CohortTest:
    test = cohort_test(min_cohort, share, epsilon)
    assert test is not None
    return test


def test_the_decision_is_random_at_the_threshold() -> None:
    test = _test()
    p = math.exp(-test.epsilon)
    rng = SecureRandom(31)
    trials = 2000
    refused = sum(test.decide(_stats((50,)), rng=rng) is not None for _ in range(trials))
    expected = p / (1 + p)  # P(noise <= -1) for discrete Laplace: about 0.45 here
    sd = math.sqrt(expected * (1 - expected) / trials)
    assert abs(refused / trials - expected) < 5 * sd, refused
    # one row either side moves it by a factor of about exp(epsilon): still random
    below = sum(test.decide(_stats((49,)), rng=rng) is not None for _ in range(trials))
    assert refused < below < trials


def test_far_from_the_threshold_the_decision_is_the_exact_one() -> None:
    test = _test()
    beta = 1e-9
    t = test.margin(beta)
    p = math.exp(-test.epsilon)
    assert p**t / (1 + p) <= beta < p ** (t - 1) / (1 + p)  # the least such margin
    rng = SecureRandom(32)
    assert all(test.decide(_stats((50 + t,)), rng=rng) is None for _ in range(500))
    refusals = [test.decide(_stats((50 - t,)), rng=rng) for _ in range(500)]
    assert all(r is not None and "cohort is below" in r for r in refusals)
    # the counts themselves never appear in a reason
    assert all(str(50 - t) not in r for r in refusals if r is not None)


def test_grouped_the_refusal_names_the_small_group_only() -> None:
    test = _test()
    t = test.margin(1e-9)
    stats = _stats((50 + t, 0), "SELECT count(*) FROM t GROUP BY sex")
    reason = test.decide(stats, rng=SecureRandom(33))
    assert reason is not None and "group(s) M are below" in reason and "F" not in reason


def test_no_minimum_runs_no_test_and_bad_shares_are_refused() -> None:
    assert cohort_test(1, 0.1, 0.5) is None
    with pytest.raises(ValueError, match="share"):
        cohort_test(10, 0.0, 0.5)
    with pytest.raises(ValueError, match="share"):
        cohort_test(10, 1.5, 0.5)
    with pytest.raises(ValueError, match="cohort_share must be in"):
        SqlPolicy(min_cohort=10, cohort_share=2.0)


def _table(
    tmp_path: Path, policy: SqlPolicy, budget: float = 2.0
) -> tuple[SqlTable, PrivacyLedger]:
    path = tmp_path / "t.parquet"
    ehr(3000, 10).to_parquet(path)
    ledger = PrivacyLedger(tmp_path / "ledger.db")
    ledger.create_scope("data", budget, 1e-6)
    return SqlTable(path, policy=policy, ledger=ledger, scope="data", rng=SecureRandom(5)), ledger


def test_a_refusal_charges_the_test_and_nothing_more(tmp_path: Path) -> None:
    strict = SqlPolicy(min_cohort=100_000, cohort_share=0.1)  # 3,000 rows: far below
    table, ledger = _table(tmp_path, strict)
    with pytest.raises(PolicyViolation, match="cohort is below this site's minimum of 100000"):
        table.query("SELECT count(*) FROM t", 0.5)
    (record,) = ledger.records("data")
    assert isinstance(record.event, DiscreteLaplaceEvent)
    assert record.label.startswith("minimum-cohort test of ")
    assert record.epsilon_after == pytest.approx(0.05, abs=1e-3)
    assert not any(isinstance(r.event, GaussianEvent) for r in ledger.records())


def test_the_budget_covers_the_test_and_the_release_before_either_is_charged(
    tmp_path: Path,
) -> None:
    policy = SqlPolicy(min_cohort=10, cohort_share=0.5)
    table, ledger = _table(tmp_path, policy, budget=0.55)
    # the release alone (0.5) fits the budget; with its test (0.25 more) it does not
    with pytest.raises(BudgetExceeded, match="nothing was spent"):
        table.query("SELECT count(*) FROM t", 0.5)
    assert ledger.records() == ()


def test_a_site_that_is_probed_again_and_again_pays_for_every_probe(tmp_path: Path) -> None:
    """A coordinator (or analyst) re-sends a query whose cohort sits at the site's minimum
    to learn the exact-count bit by repetition: every invitation charges the site's test to
    both scopes, so the probes run into the budget; none of them is free."""
    frame = ehr(1500, 44)
    near = int((frame.age > 90).sum())
    policy = dataclasses.replace(
        SITE_POLICY, analytics=dataclasses.replace(SITE_POLICY.analytics, min_cohort=near)
    )
    ledger = PrivacyLedger(tmp_path / "site.sqlite")
    request = QueryRequest(
        "SELECT count(*) FROM p WHERE age > 90", 1.0, 1e-6, "cohort-discovery", "mallory"
    )
    verdicts = []
    for probe in range(60):
        verdict = site_verdict(frame, policy, request, ledger, key=f"probe-{probe}")
        verdicts.append(verdict)
        if verdict.reason is not None and "past its budget" in verdict.reason:
            break
    decided = [v for v in verdicts if v.charged]
    assert all(len(v.charged) == 2 for v in decided)  # the analyst's scope and the study's
    # each probe cost 0.1 of epsilon 1 in both scopes; the analyst's budget is 2.0
    analyst, study = query_scopes(request)
    assert len(ledger.records(analyst)) == len(decided) == len(ledger.records(study))
    assert verdicts[-1].reason is not None and "past its budget" in verdicts[-1].reason
    assert not verdicts[-1].charged
    assert ledger.spent(analyst) <= 2.0 * (1 + 1e-9)


def test_a_retried_invitation_charges_its_test_once(tmp_path: Path) -> None:
    frame = ehr(1500, 45)
    ledger = PrivacyLedger(tmp_path / "site.sqlite")
    request = QueryRequest("SELECT count(*) FROM p", 0.5, 1e-6, "cohort-discovery", "alice")
    first = site_verdict(frame, SITE_POLICY, request, ledger, key="query/q1")
    again = site_verdict(frame, SITE_POLICY, request, ledger, key="query/q1")
    assert first.stats is not None and again.stats is not None
    assert [r.id for r in first.charged] == [r.id for r in again.charged]
    assert len(ledger.records()) == 2
