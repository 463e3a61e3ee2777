"""Statistical tests of the secure noise samplers.

Every test uses a fixed seed, so it is deterministic. The thresholds are chosen so that for
a random seed a single check would fail with small probability: z-tests at |z| < 5 (false
failure < 6e-7) and chi-square goodness of fit against the exact pmf at p > 1e-6 (false
failure 1e-6). A variance check uses the sample variance's standard error
sqrt((m4 - s**4) / n) with the empirical fourth moment m4.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats

from tutela.hazmat import noise
from tutela.hazmat.rng import SecureRandom

N = 40_000


def _check_mean_var(x: npt.NDArray[np.floating | np.integer], var: float) -> None:
    x = x.astype(np.float64)
    n = x.size
    assert abs(x.mean()) / math.sqrt(var / n) < 5
    m4 = float(np.mean((x - x.mean()) ** 4))
    se = math.sqrt(max(m4 - var**2, 1e-300) / n)
    assert abs(x.var() - var) / se < 5


def _chi2_against_pmf(
    x: npt.NDArray[np.int64], pmf: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float64]]
) -> float:
    """Chi-square p-value of integer samples against an exact pmf, tails pooled (E >= 5)."""
    lo, hi = int(x.min()), int(x.max())
    support = np.arange(lo - 1, hi + 2)
    probs = pmf(support)
    inside = probs.sum()
    # pool the tails beyond the observed range into the end bins
    probs[0] += max(0.0, (1 - inside) / 2)
    probs[-1] += max(0.0, (1 - inside) / 2)
    counts = np.bincount(x - (lo - 1), minlength=support.size).astype(np.float64)
    expected = probs * x.size
    obs, exp = [], []
    acc_o = acc_e = 0.0
    for o, e in zip(counts, expected, strict=True):
        acc_o += o
        acc_e += e
        if acc_e >= 5:
            obs.append(acc_o)
            exp.append(acc_e)
            acc_o = acc_e = 0.0
    obs[-1] += acc_o
    exp[-1] += acc_e
    exp_arr = np.array(exp) * (sum(obs) / sum(exp))
    return float(stats.chisquare(np.array(obs), exp_arr).pvalue)


def _dgauss_pmf(
    sigma2: float, bound: int
) -> Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float64]]:
    full = np.arange(-bound, bound + 1)
    z = np.exp(-(full.astype(np.float64) ** 2) / (2 * sigma2)).sum()
    return lambda k: np.exp(-(k.astype(np.float64) ** 2) / (2 * sigma2)) / z


def _dgauss_var(sigma2: float) -> float:
    bound = int(40 * math.sqrt(sigma2)) + 10
    k = np.arange(-bound, bound + 1).astype(np.float64)
    w = np.exp(-(k**2) / (2 * sigma2))
    return float((w * k**2).sum() / w.sum())


@pytest.mark.parametrize(
    "sigma",
    [0.4, 0.5, 1.0, 3.7, 25.0, 200.0, 3000.3, pytest.param(math.sqrt(9_000_001), id="sqrt9000001")],
)
def test_discrete_gaussian_fits_exact_pmf(sigma: float) -> None:
    # 3000.3: gamma's numerator beyond 64 bits (Python integers); sqrt(9_000_001): an
    # integer variance, as SecAgg+ distributed DP uses, on 64-bit integers
    x = noise.sample_discrete_gaussian(sigma, N, rng=SecureRandom(11))
    assert x.dtype == np.int64
    assert x.shape == (N,)
    sigma2 = float(noise.effective_discrete_gaussian_sigma2(sigma))
    _check_mean_var(x, _dgauss_var(sigma2))
    bound = int(40 * sigma) + 10
    assert _chi2_against_pmf(x, _dgauss_pmf(sigma2, bound)) > 1e-6


@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_discrete_gaussian_small_sigma_large_sample(sigma: float) -> None:
    # 400,000 draws: a relative error of about 1% in any probability above 0.01 fails
    n = 400_000
    x = noise.sample_discrete_gaussian(sigma, n, rng=SecureRandom(21))
    sigma2 = float(noise.effective_discrete_gaussian_sigma2(sigma))
    assert _chi2_against_pmf(x, _dgauss_pmf(sigma2, 50)) > 1e-6


def test_discrete_gaussian_batches_are_exact_for_every_size() -> None:
    # many small calls (one batch each, first accepted kept) pool to the exact pmf
    rng = SecureRandom(22)
    x = np.concatenate([noise.sample_discrete_gaussian(1.0, k % 7, rng=rng) for k in range(12_000)])
    sigma2 = float(noise.effective_discrete_gaussian_sigma2(1.0))
    assert _chi2_against_pmf(x, _dgauss_pmf(sigma2, 50)) > 1e-6


def test_discrete_gaussian_detects_a_wrong_sigma() -> None:
    # the same goodness-of-fit test rejects a 10% error in sigma: the test has power
    x = noise.sample_discrete_gaussian(25.0, N, rng=SecureRandom(11))
    assert _chi2_against_pmf(x, _dgauss_pmf(27.5**2, 2000)) < 1e-6


def test_discrete_gaussian_large_sigma_uses_exact_big_integers() -> None:
    sigma = 2e5  # 64-bit arithmetic would overflow; the Python-integer path is used
    x = noise.sample_discrete_gaussian(sigma, 20_000, rng=SecureRandom(12))
    _check_mean_var(x, sigma**2)
    bins = np.linspace(-4, 4, 17)
    counts = np.histogram(x / sigma, bins=np.concatenate([[-np.inf], bins, [np.inf]]))[0]
    cdf = stats.norm.cdf(np.concatenate([[-np.inf], bins, [np.inf]]))
    assert stats.chisquare(counts, np.diff(cdf) * x.size).pvalue > 1e-6


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.5, 30.0, 1000.3])
def test_discrete_laplace_fits_exact_pmf(scale: float) -> None:
    x = noise.sample_discrete_laplace(scale, N, rng=SecureRandom(13))
    assert x.dtype == np.int64
    t = float(noise.effective_discrete_laplace_scale(scale))
    p = math.exp(-1 / t)
    _check_mean_var(x, 2 * p / (1 - p) ** 2)

    def pmf(k: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        return (1 - p) / (1 + p) * p ** np.abs(k).astype(np.float64)

    assert _chi2_against_pmf(x, pmf) > 1e-6


@pytest.mark.parametrize("mu", [0.3, 4.0, 9.99, 10.0, 250.0])
def test_poisson_fits_exact_pmf(mu: float) -> None:
    x = noise.sample_poisson(mu, N, rng=SecureRandom(14))
    _check_mean_var(x - mu, mu)  # centred
    assert _chi2_against_pmf(x, lambda k: stats.poisson.pmf(k, mu)) > 1e-6


@pytest.mark.parametrize("mu", [0.7, 12.0, 400.0])
def test_skellam_fits_exact_pmf(mu: float) -> None:
    x = noise.sample_skellam(mu, N, rng=SecureRandom(15))
    _check_mean_var(x, 2 * mu)
    assert _chi2_against_pmf(x, lambda k: stats.skellam.pmf(k, mu, mu)) > 1e-6


def test_continuous_gaussian_is_on_a_power_of_two_grid() -> None:
    sigma = 1.37
    x = noise.sample_gaussian(sigma, N, rng=SecureRandom(16))
    g = noise.default_granularity(sigma)
    assert g == 2.0**-10  # floor(log2(1.37)) - 10
    assert np.all(np.floor(x / g) == x / g)  # exact multiples: no low-order float bits
    _check_mean_var(x, sigma**2)
    assert stats.kstest(x / sigma, "norm").pvalue > 1e-6


def test_continuous_laplace_is_on_a_power_of_two_grid() -> None:
    b = 3.0
    g = 2.0**-6
    x = noise.sample_laplace(b, N, rng=SecureRandom(17), granularity=g)
    assert np.all(np.floor(x / g) == x / g)
    _check_mean_var(x, 2 * b**2)
    assert stats.kstest(x / b, "laplace").pvalue > 1e-6


def test_reproducible_with_seed_and_fresh_without() -> None:
    a = noise.sample_discrete_gaussian(5.0, 1000, rng=SecureRandom(1))
    b = noise.sample_discrete_gaussian(5.0, 1000, rng=SecureRandom(1))
    assert np.array_equal(a, b)
    c = noise.sample_discrete_gaussian(5.0, 1000)
    d = noise.sample_discrete_gaussian(5.0, 1000)
    assert not np.array_equal(c, d)


def test_empty_and_invalid() -> None:
    assert noise.sample_discrete_gaussian(1.0, 0).shape == (0,)
    assert noise.sample_skellam(1.0, 0).shape == (0,)
    assert noise.sample_gaussian(1.0, 0).shape == (0,)
    with pytest.raises(ValueError):
        noise.sample_discrete_gaussian(0.0, 3)
    with pytest.raises(ValueError):
        noise.sample_discrete_gaussian(float("nan"), 3)
    with pytest.raises(ValueError):
        noise.sample_discrete_laplace(-1.0, 3)
    with pytest.raises(ValueError):
        noise.sample_gaussian(1.0, 3, granularity=0.3)
    with pytest.raises(ValueError):
        noise.sample_gaussian(1.0, -1)
    with pytest.raises(ValueError):
        noise.sample_skellam(0.0, 3)
    with pytest.raises(TypeError):
        noise.sample_discrete_gaussian(1.0, 3, rng=np.random.default_rng(0))  # type: ignore[arg-type]


@pytest.mark.parametrize("sigma", [0.013, 1.1, 300.0])
def test_rounded_gaussian32_is_gaussian_on_its_grid(sigma: float) -> None:
    x = noise.sample_rounded_gaussian32(sigma, 60_001, rng=SecureRandom(18))
    assert x.dtype == np.float32
    assert x.shape == (60_001,)
    g = noise.rounded_gaussian32_granularity(sigma)
    assert sigma * 2.0**-17 < g <= sigma * 2.0**-16
    units = x.astype(np.float64) / g
    np.testing.assert_array_equal(np.rint(units), units)
    _check_mean_var(x, sigma**2)
    assert stats.kstest(x / sigma, "norm").pvalue > 1e-6
    grid_units = noise.sample_rounded_gaussian32(sigma, 60_001, rng=SecureRandom(18), unit="grid")
    np.testing.assert_array_equal(grid_units.astype(np.float64) * g, x.astype(np.float64))


class _ZeroStream(SecureRandom):
    """A generator whose keystream is all zero bytes: drives the samplers to their extremes."""

    def bytes(self, n: int) -> bytes:
        return bytes(n)


def test_rounded_gaussian_tails_reach_the_documented_bound() -> None:
    # the smallest radius uniform (all-zero bits) must give the largest radius, 8.65 sigma
    # for the float32 sampler (54-bit uniform) and 9.4+ sigma for the float64 one; a
    # sampler built on 24-bit floats would stop at 5.8 sigma
    x32 = noise.sample_rounded_gaussian32(1.0, 2, rng=_ZeroStream())
    assert float(x32[0]) == pytest.approx(math.sqrt(2 * 54 * math.log(2)), rel=1e-4)
    x64 = noise.sample_rounded_gaussian64(1.0, 2, rng=_ZeroStream())
    assert float(x64[0]) == pytest.approx(math.sqrt(2 * 65 * math.log(2)), rel=1e-4)
    assert float(x64[0]) > 9.4


def test_rounded_gaussian_tail_mass() -> None:
    # P(|N| > 4) = 6.3e-5: about 63 of 1e6 draws
    x = noise.sample_rounded_gaussian32(1.0, 1_000_000, rng=SecureRandom(19))
    beyond = int(np.sum(np.abs(x) > 4.0))
    expected = 1_000_000 * 2 * stats.norm.sf(4.0)
    assert abs(beyond - expected) / math.sqrt(expected) < 5


@pytest.mark.parametrize("sigma", [0.5, 1e4])
def test_rounded_gaussian64_is_gaussian_on_its_grid(sigma: float) -> None:
    x = noise.sample_rounded_gaussian64(sigma, 40_001, rng=SecureRandom(20))
    assert x.dtype == np.float64
    g = noise.rounded_gaussian64_granularity(sigma)
    assert sigma * 2.0**-41 < g <= sigma * 2.0**-40
    np.testing.assert_array_equal(np.rint(x / g), x / g)
    _check_mean_var(x, sigma**2)
    assert stats.kstest(x / sigma, "norm").pvalue > 1e-6
