"""Federated queries in process: the distributed noise has the variance the answer states and
never less than the query's calibration, the released statistics are unbiased, a site checks
the round's plan before it charges, and refusals charge nothing beyond a site's noisy cohort
test. The cohorts here hold about 330 rows per group against a minimum of 10 at test epsilon
0.05: a wrongful cohort refusal has probability under 1e-6 per group (fresh OS noise).

Statistical checks use fixed seeds (deterministic) except the SecAgg+ rounds, whose noise
comes from the OS CSPRNG as in deployment. False-failure rates for a fresh draw: each mean
z-test at |z| < 5, 6e-7 per coordinate; each variance test (sample variance within 5
standard errors of the stated variance, normal approximation), about 6e-7 per coordinate.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tests.analytics.conftest import POLICY, ehr
from tutela.dp.events import DiscreteLaplaceEvent
from tutela.dp.ledger import PrivacyLedger
from tutela.dp.sql.engine import SqlPolicy, shape_of
from tutela.dp.sql.parse import parse_sql
from tutela.errors import PolicyViolation, QuorumNotMet
from tutela.fl.queries import (
    QueryRequest,
    check_secure,
    federated_query,
    guaranteed_multiplier,
    query_scopes,
    released_sigma,
    secure_config,
    site_verdict,
)
from tutela.governance.minimisation import SitePolicy
from tutela.hazmat.noise import sample_discrete_gaussian
from tutela.hazmat.rng import SecureRandom
from tutela.secagg import secure_sum

SQL = "SELECT count(*), sum(clamp(bmi, 0, 50)) FROM patients WHERE age > 60 GROUP BY sex"
SITE_POLICY = SitePolicy.from_mapping(tomllib.loads(POLICY))


def _request(epsilon: float = 0.5, analyst: str = "alice") -> QueryRequest:
    return QueryRequest(SQL, epsilon, 1e-6, "cohort-discovery", analyst)


def _shape():  # type: ignore[no-untyped-def]
    return shape_of(parse_sql(SQL), SqlPolicy(categories={"sex": ("F", "M")}))


@pytest.mark.parametrize("sites", [3, 5, 20])
def test_the_planned_noise_meets_the_calibration_at_the_minimum_of_survivors(sites: int) -> None:
    shape, request = _shape(), _request()
    params = secure_config(shape, request.noise_multiplier, sites, 2**24).plan(
        tuple(range(sites)), shape.dim, max_weight=1.0, round_id=bytes(32)
    )
    z = guaranteed_multiplier(params, shape.sensitivity)
    assert request.noise_multiplier <= z <= 1.05 * request.noise_multiplier
    # the sigma stated with the minimum of survivors carries the query's noise by itself
    assert released_sigma(params, params.min_survivors) >= request.noise_multiplier * (
        shape.sensitivity + math.sqrt(shape.dim) / params.scale
    )


def test_the_summed_shares_have_the_stated_variance() -> None:
    """The noise function itself: every survivor's share is the discrete Gaussian the SecAgg+
    client draws (same sampler, same parameter), the released sum's noise is their sum times
    the quantisation step; mean zero and variance ``released_sigma**2``."""
    shape = _shape()
    params = secure_config(shape, _request().noise_multiplier, 5, 2**24).plan(
        tuple(range(5)), shape.dim, max_weight=1.0, round_id=bytes(32)
    )
    rng = SecureRandom(21)
    n, survivors = 20_000, 4
    share_sigma = float(np.sqrt(params.noise_variance))
    shares = [sample_discrete_gaussian(share_sigma, n, rng=rng) for _ in range(survivors)]
    noise = np.sum(shares, axis=0).astype(np.float64) * (params.max_weight / params.scale)
    sigma = released_sigma(params, survivors)
    assert abs(noise.mean()) / (sigma / math.sqrt(n)) < 5
    assert abs(noise.var(ddof=1) / sigma**2 - 1) < 5 * math.sqrt(2 / (n - 1))


def test_secure_sums_of_a_query_are_unbiased_around_the_exact_total() -> None:
    shape = _shape()
    request = _request()
    config = secure_config(shape, request.noise_multiplier, 4, 2**24)
    rng = np.random.default_rng(3)
    vectors = {i: np.round(rng.uniform(100, 1000, shape.dim)) for i in range(4)}
    exact = np.sum(list(vectors.values()), axis=0)
    runs = [secure_sum(vectors, None, config) for _ in range(60)]
    sigma = released_sigma(runs[0].params, 4)
    errors = np.array([r.total for r in runs]) - exact
    assert np.all(np.abs(errors.mean(axis=0)) / (sigma / math.sqrt(len(runs))) < 5)
    # and the spread is the stated one (a loose check at 60 runs: 5 standard errors)
    ratio = errors.var(axis=0, ddof=1) / sigma**2
    assert np.all(np.abs(ratio - 1) < 5 * math.sqrt(2 / (len(runs) - 1))), ratio


def _sites(tmp_path: Path, n: int = 4) -> tuple[dict[str, object], dict[str, PrivacyLedger]]:
    tables = {f"h{i}": ehr(1500, 40 + i) for i in range(n)}
    ledgers = {name: PrivacyLedger(tmp_path / f"{name}.sqlite") for name in tables}
    return tables, ledgers  # type: ignore[return-value]


def test_a_federated_answer_is_read_from_the_noisy_sum_and_charged_at_every_site(
    tmp_path: Path,
) -> None:
    tables, ledgers = _sites(tmp_path)
    policies = dict.fromkeys(tables, SITE_POLICY)
    answer = federated_query(tables, _request(), policies, ledgers)  # type: ignore[arg-type]
    pooled = np.concatenate([t[t.age > 60].sex.to_numpy() for t in tables.values()])  # type: ignore[attr-defined]
    for row in answer.frame.itertuples():
        truth = int((pooled == row.sex).sum())
        assert abs(row.count - truth) < 5 * answer.sigma
    for ledger in ledgers.values():
        for scope in query_scopes(_request()):
            test, release = ledger.records(scope)  # the cohort test first, then the release
            assert isinstance(test.event, DiscreteLaplaceEvent)
            assert test.epsilon_after == pytest.approx(0.05, abs=1e-3)  # 0.1 of 0.5
            assert release.event == _request().event


def test_refusals_carry_their_reason_and_charge_nothing_beyond_the_cohort_test(
    tmp_path: Path,
) -> None:
    tables, ledgers = _sites(tmp_path, 5)
    strict = dataclasses.replace(
        SITE_POLICY, analytics=dataclasses.replace(SITE_POLICY.analytics, min_cohort=100_000)
    )
    poor = dataclasses.replace(
        SITE_POLICY, analytics=dataclasses.replace(SITE_POLICY.analytics, study_epsilon=0.3)
    )
    policies = dict.fromkeys(tables, SITE_POLICY) | {"h3": strict, "h4": poor}
    answer = federated_query(tables, _request(), policies, ledgers)  # type: ignore[arg-type]
    assert answer.sites == ["h0", "h1", "h2"]
    assert "below this site's minimum of 100000 rows" in answer.refused["h3"]
    assert "past its budget" in answer.refused["h4"]
    # the small cohort (far below: certain within 1e-9) charged its test to both scopes only
    assert [r.label.startswith("minimum-cohort test") for r in ledgers["h3"].records()] == [
        True,
        True,
    ]
    assert not ledgers["h4"].records()
    outside = QueryRequest(
        "SELECT count(*) FROM p WHERE postcode = 'AB1'", 0.5, 1e-6, "cohort-discovery", "a"
    )
    with pytest.raises(QuorumNotMet, match="never-share"):
        federated_query(tables, outside, policies, ledgers)  # type: ignore[arg-type]
    assert [len(ledgers[n].records()) for n in sorted(tables)] == [4, 4, 4, 2, 0]


def test_a_site_refuses_a_round_whose_noise_is_below_the_query_calibration(tmp_path: Path) -> None:
    tables, ledgers = _sites(tmp_path, 1)
    request = _request()
    verdict = site_verdict(tables["h0"], SITE_POLICY, request, ledgers["h0"], key="q")  # type: ignore[arg-type]
    assert verdict.stats is not None
    shape = verdict.stats.shape
    honest = secure_config(shape, request.noise_multiplier, 5, 2**24)
    params = honest.plan(tuple(range(5)), shape.dim, max_weight=1.0, round_id=bytes(32))
    check_secure(params, verdict.stats, request, 2**24)
    cheap = dataclasses.replace(params, noise_variance=params.noise_variance // 2)
    with pytest.raises(PolicyViolation, match=r"below the .* the query.s epsilon needs"):
        check_secure(cheap, verdict.stats, request, 2**24)
    wide = dataclasses.replace(params, clip=2.0**30)
    with pytest.raises(PolicyViolation, match="row bound"):
        check_secure(wide, verdict.stats, request, 2**24)
    assert len(ledgers["h0"].records()) == 2  # the invitation's cohort test, nothing more
