"""Mechanisms state their guarantee: each claim holds just above and fails just below.

Statistical checks use fixed seeds (deterministic); for a random seed each z-test at
|z| < 5 would fail with probability below 6e-7 and the chi-square test at p > 1e-6 with
probability 1e-6.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tutela.dp.accounting import AccountantKind, compute_epsilon
from tutela.dp.events import DiscreteGaussianEvent, GaussianEvent, LaplaceEvent, PureDPEvent
from tutela.dp.mechanisms import (
    DiscreteGaussianMechanism,
    DiscreteLaplaceMechanism,
    ExponentialMechanism,
    GaussianMechanism,
    LaplaceMechanism,
    ReportNoisyMax,
    analytic_gaussian_delta,
    analytic_gaussian_sigma,
)
from tutela.hazmat.rng import SecureRandom


def test_analytic_gaussian_matches_known_values_and_pld() -> None:
    # classic calibration sqrt(2 ln(1.25/delta)) / eps is loose; the analytic one is smaller
    eps, delta = 1.0, 1e-5
    sigma = analytic_gaussian_sigma(eps, delta, 1.0)
    assert sigma < math.sqrt(2 * math.log(1.25 / delta)) / eps
    assert sigma == pytest.approx(3.73, abs=0.01)  # Balle and Wang (2018), Figure 2 region
    # the exact delta agrees with dp-accounting's PLD (an upper bound) to within 1%
    pld = compute_epsilon(GaussianEvent(sigma), delta)
    assert pld == pytest.approx(eps, rel=0.01)
    assert pld >= eps * (1 - 1e-4)


@pytest.mark.parametrize(
    ("eps", "delta", "sens"), [(0.5, 1e-6, 1.0), (2.0, 1e-5, 3.0), (8.0, 1e-9, 0.1)]
)
def test_gaussian_mechanism_holds_at_its_sigma_and_fails_below(
    eps: float, delta: float, sens: float
) -> None:
    mech = GaussianMechanism.for_epsilon(eps, delta, sens)
    assert mech.delta(eps, sens) <= delta
    assert mech.epsilon(sens, delta) <= eps
    smaller = GaussianMechanism(mech.sigma * (1 - 1e-6))
    assert smaller.delta(eps, sens) > delta
    # the event reads back as the same guarantee
    z = sens / mech.sigma
    assert isinstance(mech.event(sens), GaussianEvent)
    assert mech.event(sens).noise_multiplier == pytest.approx(1 / z, rel=1e-5)  # type: ignore[union-attr]


def test_gaussian_mechanism_vector_grid_is_in_the_guarantee() -> None:
    mech = GaussianMechanism.for_epsilon(1.0, 1e-6, 1.0, dimension=10_000)
    assert mech.delta(1.0, 1.0, dimension=10_000) <= 1e-6
    assert mech.delta(1.0, 1.0, dimension=1) < mech.delta(1.0, 1.0, dimension=10_000)
    assert analytic_gaussian_delta(mech.sigma, 1.0, 1.0) <= 1e-6


def test_gaussian_release_is_on_grid_and_unbiased() -> None:
    mech = GaussianMechanism(2.0)
    values = np.full(4000, 10.3)
    out = mech.release(values, rng=SecureRandom(1))
    assert isinstance(out, np.ndarray)
    assert out.shape == (4000,)
    g = mech.granularity
    np.testing.assert_array_equal(np.rint(out / g), out / g)
    assert abs(out.mean() - 10.3) / (2.0 / math.sqrt(4000)) < 5
    assert abs(out.std() - 2.0) / (2.0 / math.sqrt(8000)) < 5
    scalar = mech.release(1.5, rng=SecureRandom(2))
    assert isinstance(scalar, float)


@pytest.mark.parametrize(("eps", "sens"), [(0.1, 1.0), (1.0, 5.0), (3.0, 0.01)])
def test_laplace_mechanism_holds_and_is_tight(eps: float, sens: float) -> None:
    mech = LaplaceMechanism.for_epsilon(eps, sens)
    assert mech.epsilon(sens) <= eps
    assert LaplaceMechanism(mech.scale * (1 - 1e-6)).epsilon(sens) > eps
    ev = mech.event(sens)
    assert isinstance(ev, LaplaceEvent)
    assert compute_epsilon(ev, 1e-12) == pytest.approx(mech.epsilon(sens), abs=2e-3)


def test_laplace_release_statistics() -> None:
    mech = LaplaceMechanism.for_epsilon(0.5, 1.0)
    out = mech.release(np.zeros(20_000), rng=SecureRandom(3))
    assert isinstance(out, np.ndarray)
    assert stats.kstest(out / mech.scale, "laplace").pvalue > 1e-6


def test_discrete_laplace_mechanism() -> None:
    mech = DiscreteLaplaceMechanism.for_epsilon(0.3, 2)
    assert mech.epsilon(2) <= 0.3
    assert DiscreteLaplaceMechanism(mech.scale * (1 - 1e-6)).epsilon(2) > 0.3
    out = mech.release(np.array([5, 7, 9]), rng=SecureRandom(4))
    assert out.dtype == np.int64  # type: ignore[union-attr]
    assert isinstance(mech.release(3, rng=SecureRandom(4)), int)
    with pytest.raises(TypeError):
        mech.release(np.array([0.5]))
    assert compute_epsilon(mech.event(2), 1e-12) == pytest.approx(0.3, abs=2e-3)


def test_discrete_gaussian_mechanism_states_zcdp() -> None:
    mech = DiscreteGaussianMechanism(10.0)
    assert mech.rho(3.0) == pytest.approx(9 / 200)
    assert mech.event(3.0) == DiscreteGaussianEvent(10.0, 3.0)
    eps = mech.epsilon(3.0, 1e-5)
    # never better than the continuous Gaussian's exact epsilon with the same parameters
    assert eps >= GaussianMechanism(10.0).epsilon(3.0, 1e-5) * (1 - 1e-3)
    assert eps == pytest.approx(
        compute_epsilon(DiscreteGaussianEvent(10.0, 3.0), 1e-5, AccountantKind.RDP)
    )
    out = mech.release(np.zeros(20_000, dtype=np.int64), rng=SecureRandom(5))
    assert abs(float(np.var(out)) - 100.0) < 5 * 100 * math.sqrt(2 / 20_000)


def test_exponential_mechanism_selects_with_the_stated_probabilities() -> None:
    mech = ExponentialMechanism(epsilon=1.0, sensitivity=1.0)
    utilities = np.array([0.0, 1.0, 2.0, 4.0])
    p = mech.probabilities(utilities)
    expected = np.exp(0.5 * utilities) / np.exp(0.5 * utilities).sum()
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    # the ratio between neighbouring utility vectors is bounded by e^epsilon
    p2 = mech.probabilities(utilities + np.array([1.0, -1.0, 1.0, -1.0]))
    assert np.max(np.abs(np.log(p / p2))) <= 1.0 + 1e-12
    rng = SecureRandom(6)
    draws = [mech.select(utilities, rng=rng) for _ in range(4000)]
    counts = np.bincount(draws, minlength=4)
    assert stats.chisquare(counts, expected * 4000).pvalue > 1e-6
    assert mech.event() == PureDPEvent(1.0)


def test_report_noisy_max() -> None:
    mech = ReportNoisyMax.for_epsilon(1.0, 1.0)
    assert mech.epsilon(1.0) <= 1.0
    assert ReportNoisyMax(mech.scale * (1 - 1e-6)).epsilon(1.0) > 1.0
    mono = ReportNoisyMax.for_epsilon(1.0, 1.0, monotonic=True)
    assert mono.scale < mech.scale
    rng = SecureRandom(7)
    wins = sum(mech.select([0.0, 0.0, 30.0], rng=rng) == 2 for _ in range(200))
    assert wins > 190  # a clear winner almost always wins
    assert isinstance(mech.event(1.0), PureDPEvent)
    with pytest.raises(ValueError):
        mech.select([])
