"""Secure noise samplers: exact discrete Laplace / Gaussian, Skellam, grid-rounded floats.

All samplers draw from :class:`tutela.hazmat.rng.SecureRandom` (a fresh OS-keyed instance
unless ``rng`` is given) and work on numpy batches: each rejection round draws candidates
for every missing value at once (a few more than needed, so one round usually suffices).

Security: the discrete samplers are exact (Canonne, Kamath and Steinke, "The Discrete
Gaussian for Differential Privacy", NeurIPS 2020): every probability is an exact rational,
so the output distribution is the stated one with no floating-point error. Parameters given
as floats are first turned into rationals (``effective_*`` functions say which); the
guarantee is for those rationals. The continuous samplers return a multiple of a power-of-two
granularity drawn from the exact discrete samplers, which removes the low-order-bit leakage
of textbook floating-point Laplace/Gaussian (Mironov 2012). Sampling time depends on the
random draws (not constant-time).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln

from tutela.hazmat.rng import SecureRandom

__all__ = [
    "default_granularity",
    "effective_discrete_gaussian_sigma2",
    "effective_discrete_laplace_scale",
    "rounded_gaussian32_granularity",
    "rounded_gaussian64_granularity",
    "sample_discrete_gaussian",
    "sample_discrete_laplace",
    "sample_gaussian",
    "sample_laplace",
    "sample_poisson",
    "sample_rounded_gaussian32",
    "sample_rounded_gaussian64",
    "sample_skellam",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_MAX_DENOMINATOR = 1 << 20
_INT64_SAFE = 1 << 62
_SQRT_SAFE = 1 << 31
_GRID_BITS = 10  # the grid resolves the noise scale to about 2**-10 of itself


def _rng(rng: SecureRandom | None) -> SecureRandom:
    if rng is None:
        return SecureRandom()
    if not isinstance(rng, SecureRandom):
        raise TypeError("rng must be a tutela.hazmat.rng.SecureRandom")
    return rng


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 0:
        raise ValueError(f"size must be a non-negative int, got {size!r}")
    return int(size)


def _positive_finite(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def effective_discrete_laplace_scale(scale: float) -> Fraction:
    """The exact rational scale :func:`sample_discrete_laplace` uses for ``scale``.

    The float is replaced by the closest fraction with denominator at most 2**20 (relative
    change below 1e-12 for scales >= 1).
    """
    s = Fraction(_positive_finite("scale", scale)).limit_denominator(_MAX_DENOMINATOR)
    if s == 0:
        raise ValueError("scale is too small")
    return s


def effective_discrete_gaussian_sigma2(sigma: float) -> Fraction:
    """The exact rational variance parameter :func:`sample_discrete_gaussian` uses.

    sigma**2 is replaced by the closest fraction whose denominator keeps the sampler's
    integer arithmetic in 64 bits where possible (at most 2**20; 1 for very large sigma).
    """
    s = _positive_finite("sigma", sigma)
    t = math.floor(s) + 1
    # keep 2 * p * t**2 * q below 2**62 when that is possible (p ~ sigma**2 * q)
    budget = _INT64_SAFE / (2.0 * s * s * t * t)
    max_den = int(min(_MAX_DENOMINATOR, max(1.0, math.sqrt(budget))))
    s2 = Fraction(s * s).limit_denominator(max_den)
    if s2 == 0:
        s2 = Fraction(1, max_den)
    return s2


def sample_discrete_laplace(
    scale: float, size: int, *, rng: SecureRandom | None = None
) -> IntArray:
    """Exact discrete Laplace on the integers: P(x) proportional to exp(-|x| / scale).

    Canonne, Kamath and Steinke (2020), Algorithm 2, vectorised.

    Args:
        scale: positive scale t (see :func:`effective_discrete_laplace_scale`).
        size: number of samples.
        rng: generator; a fresh OS-keyed :class:`SecureRandom` by default.

    Returns:
        int64 array of ``size`` samples.

    Privacy: adding it to an integer query with L1 sensitivity D gives (D / t)-DP
    (pure), for the effective rational scale t.
    """
    n = _check_size(size)
    frac = effective_discrete_laplace_scale(scale)
    return _discrete_laplace(frac.numerator, frac.denominator, n, _rng(rng))


def _discrete_laplace(t: int, s: int, size: int, rng: SecureRandom) -> IntArray:
    """CKS Algorithm 2 for scale t/s (integers 1 <= t <= 2**62, s >= 1).

    Candidates are drawn in batches a little larger than the number still missing, so one
    or two passes usually suffice; the accepted candidates, taken in order, are independent
    draws of the target, and the first ones needed are kept (which ones are kept depends
    only on the accept/reject pattern, not on the values).
    """
    out = np.empty(size, dtype=np.int64)
    filled = 0
    den = np.array([t], dtype=np.int64)
    acceptance = _laplace_acceptance(t, s)
    while filled < size:
        need = size - filled
        m = _batch(need, acceptance)
        if t == 1:
            u = np.zeros(m, dtype=np.int64)
        else:
            u = rng.integers(t, m)
            u = u[rng.bernoulli_exp_neg(u, den)]
        v = rng.geometric_exp_neg1(u.size)
        if u.size and int(v.max()) > (_INT64_SAFE - t) // t:
            raise OverflowError("a discrete Laplace draw exceeded 2**62")  # P < exp(-2**62 / t)
        y = (u + t * v) // s
        b = rng.bits(u.size)
        values = np.where(b, -y, y)[~(b & (y == 0))][:need]
        out[filled : filled + values.size] = values
        filled += values.size
    return out


def _batch(need: int, acceptance: float) -> int:
    """Candidates to draw for ``need`` accepted ones: about 5% spare plus 16.

    Floating point only sizes the batch; it never takes part in an accept/reject decision.
    """
    return int(need / acceptance * 1.05) + 16


def _laplace_acceptance(t: int, s: int) -> float:
    """P(a candidate u of CKS Algorithm 2 for scale t/s yields a sample)."""
    p_u = 1.0 if t == 1 else -math.expm1(-1.0) / (t * -math.expm1(-1.0 / t))
    p_zero = -math.expm1(-s / t)  # P(floor(x / s) == 0)
    return p_u * (1.0 - p_zero / 2.0)


def _gaussian_acceptance(sigma2: float, t: int) -> float:
    """P(a discrete Laplace candidate of CKS Algorithm 3 is accepted).

    L(y) exp(-(|y| - sigma2/t)**2 / (2 sigma2)) = tanh(1/(2t)) exp(-sigma2/(2t**2))
    exp(-y**2 / (2 sigma2)), summed over y.
    """
    if sigma2 >= 4.0:
        z = math.sqrt(2.0 * math.pi * sigma2)
    else:
        z = 1.0 + 2.0 * sum(math.exp(-(y * y) / (2.0 * sigma2)) for y in range(1, 16))
    return math.tanh(0.5 / t) * math.exp(-sigma2 / (2.0 * t * t)) * z


def sample_discrete_gaussian(
    sigma: float, size: int, *, rng: SecureRandom | None = None
) -> IntArray:
    """Exact discrete Gaussian on the integers: P(x) proportional to exp(-x**2 / (2 sigma**2)).

    Canonne, Kamath and Steinke (2020), Algorithm 3 (rejection from a discrete Laplace of
    scale floor(sigma) + 1), vectorised; all arithmetic exact (Python integers where 64 bits
    would not suffice).

    Args:
        sigma: positive parameter (see :func:`effective_discrete_gaussian_sigma2`). The
            variance is slightly below sigma**2 for small sigma and equal to it to within
            1e-10 relative for sigma >= 1.
        size: number of samples.
        rng: generator; a fresh OS-keyed :class:`SecureRandom` by default.

    Returns:
        int64 array of ``size`` samples.

    Privacy: adding independent samples to each coordinate of an integer vector query with
    L2 sensitivity D gives (D**2 / (2 sigma**2))-zCDP (CKS Theorem 14), the same as the
    continuous Gaussian; sums of independent discrete Gaussians (distributed DP) are close
    to, not exactly, discrete Gaussian.
    """
    n = _check_size(size)
    sigma2 = effective_discrete_gaussian_sigma2(sigma)
    return _discrete_gaussian(sigma2, n, _rng(rng))


def _discrete_gaussian(sigma2: Fraction, size: int, rng: SecureRandom) -> IntArray:
    """CKS Algorithm 3 for variance parameter sigma2, in batches (see _discrete_laplace).

    A discrete Laplace draw y of scale t = floor(sigma) + 1 is kept with probability
    exp(-(|y| - sigma2 / t)**2 / (2 sigma2)).
    """
    p, q = sigma2.numerator, sigma2.denominator
    t = math.isqrt(p // q) + 1  # floor(sigma) + 1
    den = 2 * p * t * t * q
    den_arr = np.array([den], dtype=np.int64 if den < _INT64_SAFE else object)
    tq = t * q
    limit = (_SQRT_SAFE - p - 1) // tq  # |y| <= limit: |y| t q + p < 2**31 (negative: none)
    out = np.empty(size, dtype=np.int64)
    filled = 0
    acceptance = _gaussian_acceptance(float(sigma2), t)
    while filled < size:
        need = size - filled
        m = _batch(need, acceptance)
        y = _discrete_laplace(t, 1, m, rng)
        absy = np.abs(y)
        # gamma = (|y| t q - p)**2 / (2 p t**2 q): on int64 where |y| t q + p < 2**31, on
        # Python integers for the (usually few) larger |y|
        c = np.zeros(m, dtype=bool)
        fits = absy <= limit
        for part, wide in ((np.flatnonzero(fits), False), (np.flatnonzero(~fits), True)):
            if part.size:
                a: npt.NDArray[Any] = (absy[part].astype(object) if wide else absy[part]) * tq - p
                c[part] = rng.bernoulli_exp_neg(a * a, den_arr)
        values = y[c][:need]
        out[filled : filled + values.size] = values
        filled += values.size
    return out


def sample_poisson(mu: float, size: int, *, rng: SecureRandom | None = None) -> IntArray:
    """Poisson(mu) variates from the CSPRNG, vectorised.

    mu < 10: multiplication of uniforms (Knuth); otherwise Hörmann's PTRS transformed
    rejection (1993), the algorithm numpy uses. Both compute in double precision, so the pmf
    is exact up to floating-point rounding of the acceptance tests (not bit-exact like the
    discrete Gaussian sampler); the output is an integer.
    """
    n = _check_size(size)
    lam = float(mu)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"mu must be a non-negative finite number, got {mu!r}")
    if lam > 1e15:
        raise ValueError("mu is too large for an int64 Poisson sampler")
    gen = _rng(rng)
    if lam == 0 or n == 0:
        return np.zeros(n, dtype=np.int64)
    if lam < 10:
        return _poisson_knuth(lam, n, gen)
    return _poisson_ptrs(lam, n, gen)


def _poisson_knuth(lam: float, size: int, rng: SecureRandom) -> IntArray:
    limit = math.exp(-lam)
    k = np.zeros(size, dtype=np.int64)
    prod = np.ones(size)
    pending = np.arange(size)
    while pending.size:
        prod[pending] *= rng.uniform(pending.size)
        more = prod[pending] > limit
        k[pending[more]] += 1
        pending = pending[more]
    return k


def _poisson_ptrs(lam: float, size: int, rng: SecureRandom) -> IntArray:
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    log_invalpha = math.log(1.1239 + 1.1328 / (b - 3.4))
    vr = 0.9277 - 3.6224 / (b - 2)
    out = np.empty(size, dtype=np.int64)
    pending = np.arange(size)
    while pending.size:
        m = pending.size
        u = rng.uniform(m) - 0.5
        v = rng.uniform(m)
        us = 0.5 - np.abs(u)
        k = np.floor((2 * a / us + b) * u + lam + 0.43)
        quick = (us >= 0.07) & (v <= vr)
        bad = (k < 0) | ((us < 0.013) & (v > us))
        with np.errstate(divide="ignore", invalid="ignore"):
            slow = (~quick) & (~bad)
            ks = np.where(slow, k, 0.0)
            lhs = np.log(v) + log_invalpha - np.log(a / (us * us) + b)
            rhs = -lam + ks * loglam - gammaln(ks + 1)
            slow_ok = slow & (lhs <= rhs)
        accept = quick | slow_ok
        out[pending[accept]] = k[accept].astype(np.int64)
        pending = pending[~accept]
    return out


def sample_skellam(mu: float, size: int, *, rng: SecureRandom | None = None) -> IntArray:
    """Symmetric Skellam Sk(mu, mu): the difference of two independent Poisson(mu) draws.

    Mean 0, variance 2 mu. The sum of n independent Sk(mu) is Sk(n mu), which is why it
    suits distributed DP under secure aggregation.

    Privacy: added to an integer vector with L1 sensitivity D1 and L2 sensitivity D2 it
    satisfies, for integer alpha > 1, (alpha, eps(alpha))-RDP with
    eps(alpha) <= alpha D2**2 / (4 mu) + min(((2 alpha - 1) D2**2 + 6 D1) / (16 mu**2),
    3 D1 / (4 mu)) (Agarwal, Kairouz and Liu, NeurIPS 2021, Theorem 3.5). See
    :func:`sample_poisson` for the precision of the Poisson draws.
    """
    n = _check_size(size)
    gen = _rng(rng)
    if float(mu) <= 0:
        raise ValueError("mu must be positive")
    return sample_poisson(mu, n, rng=gen) - sample_poisson(mu, n, rng=gen)


def default_granularity(scale: float) -> float:
    """The power of two used as output grid for a noise scale: about scale / 2**10."""
    s = _positive_finite("scale", scale)
    return math.ldexp(1.0, math.floor(math.log2(s)) - _GRID_BITS)


def _granularity(scale: float, granularity: float | None) -> float:
    if granularity is None:
        return default_granularity(scale)
    g = _positive_finite("granularity", granularity)
    mantissa, _ = math.frexp(g)
    if mantissa != 0.5:
        raise ValueError("granularity must be a power of two (e.g. 2**-20)")
    if scale / g > 2.0**40:
        raise ValueError("granularity is too fine for this noise scale (scale / g > 2**40)")
    return g


def sample_gaussian(
    sigma: float,
    size: int,
    *,
    rng: SecureRandom | None = None,
    granularity: float | None = None,
) -> FloatArray:
    """Floating-point-safe Gaussian noise: ``g * DiscreteGaussian(sigma / g)``.

    Args:
        sigma: standard deviation.
        size: number of samples.
        rng: generator; a fresh OS-keyed :class:`SecureRandom` by default.
        granularity: output grid g, a power of two; default :func:`default_granularity`.

    Returns:
        float64 array; every value is an exact multiple of g.

    Privacy: a mechanism must also round its exact answer to the grid (``g * round(x / g)``)
    before adding this noise; then the L2 sensitivity becomes at most D + g and the release
    is ((D + g)**2 / (2 sigma**2))-zCDP, with no leakage through low-order float bits.
    """
    n = _check_size(size)
    s = _positive_finite("sigma", sigma)
    g = _granularity(s, granularity)
    ints = sample_discrete_gaussian(s / g, n, rng=_rng(rng))
    return ints.astype(np.float64) * g


def sample_laplace(
    scale: float,
    size: int,
    *,
    rng: SecureRandom | None = None,
    granularity: float | None = None,
) -> FloatArray:
    """Floating-point-safe Laplace noise: ``g * DiscreteLaplace(scale / g)``.

    Args:
        scale: Laplace scale b.
        size: number of samples.
        rng: generator; a fresh OS-keyed :class:`SecureRandom` by default.
        granularity: output grid g, a power of two; default :func:`default_granularity`.

    Returns:
        float64 array; every value is an exact multiple of g.

    Privacy: with the exact answer rounded to the grid first, L1 sensitivity D gives
    ((D + g) / b)-DP (pure).
    """
    n = _check_size(size)
    b = _positive_finite("scale", scale)
    g = _granularity(b, granularity)
    ints = sample_discrete_laplace(b / g, n, rng=_rng(rng))
    return ints.astype(np.float64) * g


_GRID32_BITS = 16  # grid of sigma * 2**-16: 16x coarser than float32 noise error at 8 sigma


def rounded_gaussian32_granularity(sigma: float) -> float:
    """The power-of-two grid of :func:`sample_rounded_gaussian32` for ``sigma``."""
    s = _positive_finite("sigma", sigma)
    return math.ldexp(1.0, math.floor(math.log2(s)) - _GRID32_BITS)


def sample_rounded_gaussian32(
    sigma: float,
    size: int,
    *,
    rng: SecureRandom | None = None,
    unit: Literal["value", "grid"] = "value",
) -> npt.NDArray[np.float32]:
    """Fast Gaussian noise for large vectors (DP-SGD): Box-Muller over CSPRNG uniforms,
    computed in float32 and rounded to the grid :func:`rounded_gaussian32_granularity`.

    The radius uses a 54-bit uniform on odd multiples of 2**-54 (kept in float32's
    exponent range), so the tail is Gaussian out to 8.65 sigma and cut there (mass beyond:
    about 5e-18 per value); the angle uses 24 bits.
    Float32 rounding error (below sigma * 2**-20) is 16x finer than the output grid.

    ``unit="grid"`` returns the noise in grid units (integers stored as float32, i.e. the
    values divided by g), which saves a pass when the caller works on the grid anyway.

    Privacy: a mechanism must round its exact answer to the same grid before adding this
    noise (``g * round(x / g)``); in d dimensions the L2 sensitivity then grows from D to
    at most D + g * sqrt(d), which callers must account for. Unlike
    :func:`sample_gaussian` this is not an exact sampler: it is the rounded continuous
    Gaussian up to float32 transcendental error and the 8.5-sigma tail cut. It removes the
    low-order-bit leakage of raw floating-point noise.
    """
    n = _check_size(size)
    s = _positive_finite("sigma", sigma)
    gen = _rng(rng)
    m = (n + 1) // 2
    out = np.empty(2 * m, dtype=np.float32)
    g = rounded_gaussian32_granularity(s)
    for lo in range(0, m, _GRID32_BLOCK):  # cache-sized blocks
        hi = min(m, lo + _GRID32_BLOCK)
        raw = gen.bytes(12 * (hi - lo))
        _box_muller_block(raw, s, g, out[lo:hi], out[m + lo : m + hi], unit == "value")
    return out[:n]


_GRID32_BLOCK = 1 << 14


def _box_muller_block(
    raw: bytes | bytearray | memoryview,
    sigma: float,
    g: float,
    out_cos: npt.NDArray[np.float32],
    out_sin: npt.NDArray[np.float32],
    scale_to_value: bool,
) -> None:
    k = out_cos.shape[0]  # raw: exactly 12 * k bytes of CSPRNG output
    # radius: a 53-bit uniform (2j + 1) * 2**-54, kept in float32's exponent range
    k53 = np.frombuffer(raw, dtype="<u8", count=k) >> np.uint64(10)
    k53 |= np.uint64(1)
    u1 = k53.astype(np.float32)
    u1 *= np.float32(2.0**-54)
    words = np.frombuffer(raw, dtype="<u4", offset=8 * k)
    radius = np.log(u1)
    radius *= np.float32(-2.0 * sigma * sigma / (g * g))  # radius in grid units
    np.sqrt(radius, out=radius)
    theta = (words >> np.uint32(8)).astype(np.float32)
    theta *= np.float32(2.0 * math.pi * 2.0**-24)
    np.cos(theta, out=out_cos)
    out_cos *= radius
    np.sin(theta, out=out_sin)
    out_sin *= radius
    np.rint(out_cos, out=out_cos)
    np.rint(out_sin, out=out_sin)
    if scale_to_value:
        out_cos *= np.float32(g)
        out_sin *= np.float32(g)


_GRID64_BITS = 40  # float64 Box-Muller error (~1e-15 relative) is far below sigma * 2**-40


def rounded_gaussian64_granularity(sigma: float) -> float:
    """The power-of-two grid of :func:`sample_rounded_gaussian64` for ``sigma``."""
    s = _positive_finite("sigma", sigma)
    return math.ldexp(1.0, math.floor(math.log2(s)) - _GRID64_BITS)


def sample_rounded_gaussian64(
    sigma: float, size: int, *, rng: SecureRandom | None = None
) -> FloatArray:
    """Gaussian noise for vectors, double precision: Box-Muller over CSPRNG uniforms,
    rounded to the grid :func:`rounded_gaussian64_granularity` (sigma * 2**-40 or finer).

    Slower than :func:`sample_rounded_gaussian32` (about 4x) but with a grid so fine that
    rounding the exact answer to it adds at most g * sqrt(d) <= sigma * 2**-40 * sqrt(d)
    to the L2 sensitivity (1e-8 sigma for d = 1e8). The radius uses a 64-bit uniform, so
    the tail is Gaussian out to 9.4 sigma (mass beyond: about 3e-21 per value).

    Privacy: as for :func:`sample_rounded_gaussian32` (round the answer to the grid first).
    """
    n = _check_size(size)
    s = _positive_finite("sigma", sigma)
    gen = _rng(rng)
    m = (n + 1) // 2
    words = np.frombuffer(gen.bytes(16 * m), dtype="<u8")
    u1 = (words[:m] >> np.uint64(11)).astype(np.float64)
    u1 += 0.5
    u1 *= 2.0**-53
    # extend the radius uniform below 2**-53 with 11 more bits: u1 in (0, 1), min 2**-64
    small = u1 < 2.0**-40
    if small.any():
        extra = (words[m:][small] & np.uint64(0x7FF)).astype(np.float64) + 0.5
        u1[small] = (u1[small] - 0.5 * 2.0**-53) + extra * 2.0**-64
    theta = (words[m:] >> np.uint64(11)).astype(np.float64) * (2.0 * math.pi * 2.0**-53)
    radius = np.sqrt(-2.0 * np.log(u1))
    g = rounded_gaussian64_granularity(s)
    radius *= s / g
    out = np.concatenate([radius * np.cos(theta), radius * np.sin(theta)])[:n]
    np.rint(out, out=out)
    out *= g
    return out
