"""Differential-privacy mechanisms that state their guarantee.

Every mechanism answers "what epsilon (and delta) for this sensitivity" (``epsilon``),
emits the event an accountant or the ledger reads (``event``), and releases noisy values
from the CSPRNG (``release`` / ``select``). Continuous mechanisms round the exact answer
to a power-of-two grid g and add noise on that grid, so outputs carry no low-order float
bits; the stated guarantee includes the grid (sensitivity D + g per coordinate).

Privacy: the neighbouring relation is whatever the caller's sensitivity is computed for
(add/remove one record in Tutela's analytics and accountants).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from tutela.dp.accounting import AccountantKind, compute_epsilon
from tutela.dp.accounting import analytic_gaussian_delta as _unit_gaussian_delta
from tutela.dp.events import (
    DiscreteGaussianEvent,
    DiscreteLaplaceEvent,
    Event,
    GaussianEvent,
    LaplaceEvent,
    PureDPEvent,
)
from tutela.hazmat.noise import (
    effective_discrete_laplace_scale,
    sample_discrete_gaussian,
    sample_discrete_laplace,
    sample_gaussian,
    sample_laplace,
)
from tutela.hazmat.rng import SecureRandom

__all__ = [
    "DiscreteGaussianMechanism",
    "DiscreteLaplaceMechanism",
    "ExponentialMechanism",
    "GaussianMechanism",
    "LaplaceMechanism",
    "ReportNoisyMax",
    "analytic_gaussian_delta",
    "analytic_gaussian_sigma",
]

_MECH_GRID_BITS = 20  # output grid: scale * 2**-20 (sensitivity grows by at most that)

Values = float | npt.NDArray[np.floating]


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return v


def _grid(scale: float) -> float:
    return math.ldexp(1.0, math.floor(math.log2(scale)) - _MECH_GRID_BITS)


def _as_array(value: Values) -> tuple[npt.NDArray[np.float64], bool]:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("values must be finite")
    return arr.reshape(-1), arr.ndim == 0


def analytic_gaussian_delta(sigma: float, epsilon: float, sensitivity: float) -> float:
    """Exact delta of the Gaussian mechanism at epsilon (Balle and Wang 2018, Theorem 8).

    delta = Phi(D/(2s) - eps s/D) - exp(eps) Phi(-D/(2s) - eps s/D).
    """
    s, d = _positive("sigma", sigma), _positive("sensitivity", sensitivity)
    return _unit_gaussian_delta(s / d, epsilon)


def analytic_gaussian_sigma(
    epsilon: float, delta: float, sensitivity: float, *, tolerance: float = 1e-9
) -> float:
    """Smallest sigma with :func:`analytic_gaussian_delta` <= delta (bisection)."""
    eps = _positive("epsilon", epsilon)
    if not 0 < delta < 1:
        raise ValueError("delta must be in (0, 1)")
    d = _positive("sensitivity", sensitivity)
    lo, hi = 1e-6 * d, d
    while analytic_gaussian_delta(hi, eps, d) > delta:
        lo, hi = hi, 2 * hi
    while analytic_gaussian_delta(lo, eps, d) <= delta and lo > 1e-12 * d:
        lo, hi = lo / 2, lo
    while hi - lo > tolerance * hi:
        mid = (lo + hi) / 2
        if analytic_gaussian_delta(mid, eps, d) <= delta:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True, slots=True)
class LaplaceMechanism:
    """Laplace noise of scale ``scale`` on a real (vector) query, grid-rounded.

    Privacy: for L1 sensitivity D over d coordinates, (D + d g) / scale -DP (pure), g the
    output grid (scale * 2**-20 or finer).
    """

    scale: float

    def __post_init__(self) -> None:
        _positive("scale", self.scale)

    @property
    def granularity(self) -> float:
        """The output grid g."""
        return _grid(self.scale)

    @classmethod
    def for_epsilon(
        cls, epsilon: float, sensitivity: float, *, dimension: int = 1
    ) -> LaplaceMechanism:
        """The least noise giving epsilon-DP for L1 ``sensitivity`` (grid included)."""
        eps, d = _positive("epsilon", epsilon), _positive("sensitivity", sensitivity)
        scale = d / eps
        while (d + dimension * _grid(scale)) / scale > eps:
            scale = (d + dimension * _grid(scale)) / eps
        return cls(scale)

    def epsilon(self, sensitivity: float, *, dimension: int = 1) -> float:
        """Pure epsilon for L1 ``sensitivity`` over ``dimension`` coordinates."""
        return (_positive("sensitivity", sensitivity) + dimension * self.granularity) / self.scale

    def event(self, sensitivity: float, *, dimension: int = 1) -> Event:
        """The event to charge (grid included in the sensitivity)."""
        return LaplaceEvent(self.scale, sensitivity + dimension * self.granularity)

    def release(self, value: Values, *, rng: SecureRandom | None = None) -> Values:
        """``round_g(value) + noise``, same shape as ``value``."""
        arr, scalar = _as_array(value)
        g = self.granularity
        noise = sample_laplace(self.scale, arr.size, rng=rng, granularity=g)
        out = np.rint(arr / g) * g + noise
        return float(out[0]) if scalar else out.reshape(np.shape(value))


@dataclass(frozen=True, slots=True)
class GaussianMechanism:
    """Gaussian noise of standard deviation ``sigma``, analytic calibration, grid-rounded.

    Privacy: for L2 sensitivity D over d coordinates, (epsilon, delta)-DP with delta =
    :func:`analytic_gaussian_delta` (sigma, epsilon, D + sqrt(d) g): the exact privacy
    profile of the Gaussian (Balle and Wang 2018), grid included.
    """

    sigma: float

    def __post_init__(self) -> None:
        _positive("sigma", self.sigma)

    @property
    def granularity(self) -> float:
        """The output grid g."""
        return _grid(self.sigma)

    def _sens(self, sensitivity: float, dimension: int) -> float:
        return _positive("sensitivity", sensitivity) + math.sqrt(dimension) * self.granularity

    @classmethod
    def for_epsilon(
        cls, epsilon: float, delta: float, sensitivity: float, *, dimension: int = 1
    ) -> GaussianMechanism:
        """The least sigma (to 1e-9 relative) giving (epsilon, delta)-DP."""
        sigma = analytic_gaussian_sigma(epsilon, delta, sensitivity)
        for _ in range(8):
            needed = analytic_gaussian_sigma(
                epsilon, delta, sensitivity + math.sqrt(dimension) * _grid(sigma)
            )
            if needed <= sigma:
                break
            sigma = needed
        return cls(sigma)

    def delta(self, epsilon: float, sensitivity: float, *, dimension: int = 1) -> float:
        """Exact delta at ``epsilon``."""
        return analytic_gaussian_delta(self.sigma, epsilon, self._sens(sensitivity, dimension))

    def epsilon(self, sensitivity: float, delta: float, *, dimension: int = 1) -> float:
        """Smallest epsilon (to 1e-9) with delta(epsilon) <= ``delta``."""
        if not 0 < delta < 1:
            raise ValueError("delta must be in (0, 1)")
        sens = self._sens(sensitivity, dimension)
        if analytic_gaussian_delta(self.sigma, 0.0, sens) <= delta:
            return 0.0
        lo, hi = 0.0, 1.0
        while analytic_gaussian_delta(self.sigma, hi, sens) > delta:
            lo, hi = hi, 2 * hi
        while hi - lo > 1e-9 * max(1.0, hi):
            mid = (lo + hi) / 2
            if analytic_gaussian_delta(self.sigma, mid, sens) <= delta:
                hi = mid
            else:
                lo = mid
        return hi

    def event(self, sensitivity: float, *, dimension: int = 1) -> Event:
        """The event to charge: a Gaussian with z = sigma / (D + sqrt(d) g)."""
        return GaussianEvent(self.sigma / self._sens(sensitivity, dimension))

    def release(self, value: Values, *, rng: SecureRandom | None = None) -> Values:
        """``round_g(value) + noise``, same shape as ``value``."""
        arr, scalar = _as_array(value)
        g = self.granularity
        noise = sample_gaussian(self.sigma, arr.size, rng=rng, granularity=g)
        out = np.rint(arr / g) * g + noise
        return float(out[0]) if scalar else out.reshape(np.shape(value))


def _as_int_array(value: int | npt.ArrayLike) -> tuple[npt.NDArray[np.int64], bool]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError("a discrete mechanism releases integer queries")
    return arr.astype(np.int64).reshape(-1), arr.ndim == 0


@dataclass(frozen=True, slots=True)
class DiscreteLaplaceMechanism:
    """Exact discrete Laplace noise on an integer query (no floating point anywhere).

    Privacy: for integer L1 sensitivity D, (D / t)-DP (pure), t the effective rational
    scale (:func:`~tutela.hazmat.noise.effective_discrete_laplace_scale`).
    """

    scale: float

    def __post_init__(self) -> None:
        _positive("scale", self.scale)

    @classmethod
    def for_epsilon(cls, epsilon: float, sensitivity: int) -> DiscreteLaplaceMechanism:
        """The least noise giving epsilon-DP (checked on the effective rational scale)."""
        scale = sensitivity / _positive("epsilon", epsilon)
        while sensitivity / float(effective_discrete_laplace_scale(scale)) > epsilon:
            scale = math.nextafter(scale, math.inf) * (1 + 1e-12)
        return cls(scale)

    def epsilon(self, sensitivity: int) -> float:
        """Pure epsilon for integer L1 ``sensitivity``."""
        return sensitivity / float(effective_discrete_laplace_scale(self.scale))

    def event(self, sensitivity: int) -> Event:
        """The event to charge."""
        return DiscreteLaplaceEvent(self.scale, int(sensitivity))

    def release(
        self, value: int | npt.ArrayLike, *, rng: SecureRandom | None = None
    ) -> int | npt.NDArray[np.int64]:
        """``value + noise`` (integers)."""
        arr, scalar = _as_int_array(value)
        out = arr + sample_discrete_laplace(self.scale, arr.size, rng=rng)
        return int(out[0]) if scalar else out.reshape(np.shape(value))


@dataclass(frozen=True, slots=True)
class DiscreteGaussianMechanism:
    """Exact discrete Gaussian noise on an integer (vector) query.

    Privacy: for integer L2 sensitivity D, (D**2 / (2 sigma**2))-zCDP (Canonne, Kamath and
    Steinke 2020); :meth:`epsilon` converts that with the RDP accountant.
    """

    sigma: float

    def __post_init__(self) -> None:
        _positive("sigma", self.sigma)

    def rho(self, sensitivity: float) -> float:
        """zCDP parameter for L2 ``sensitivity``."""
        return _positive("sensitivity", sensitivity) ** 2 / (2 * self.sigma**2)

    def epsilon(self, sensitivity: float, delta: float) -> float:
        """(epsilon, delta) via the RDP conversion of the zCDP guarantee."""
        return compute_epsilon(self.event(sensitivity), delta, AccountantKind.RDP)

    def event(self, sensitivity: float) -> Event:
        """The event to charge (RDP accountant)."""
        return DiscreteGaussianEvent(self.sigma, float(sensitivity))

    def release(
        self, value: int | npt.ArrayLike, *, rng: SecureRandom | None = None
    ) -> int | npt.NDArray[np.int64]:
        """``value + noise`` (integers)."""
        arr, scalar = _as_int_array(value)
        out = arr + sample_discrete_gaussian(self.sigma, arr.size, rng=rng)
        return int(out[0]) if scalar else out.reshape(np.shape(value))


@dataclass(frozen=True, slots=True)
class ExponentialMechanism:
    """Select a candidate with probability proportional to exp(epsilon u / (2 D)).

    ``monotonic=True`` (utilities that all move the same way between neighbours, e.g.
    counts) uses exp(epsilon u / D).

    Privacy: epsilon-DP for utilities with sensitivity D (McSherry and Talwar 2007); the
    selection probabilities are computed in float64 (relative error about 1e-15), and the
    uniform draw comes from the CSPRNG.
    """

    epsilon: float
    sensitivity: float
    monotonic: bool = False

    def __post_init__(self) -> None:
        _positive("epsilon", self.epsilon)
        _positive("sensitivity", self.sensitivity)

    def probabilities(self, utilities: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The selection distribution over candidates."""
        u = np.asarray(utilities, dtype=np.float64).reshape(-1)
        if u.size == 0 or not np.all(np.isfinite(u)):
            raise ValueError("need at least one finite utility")
        factor = self.epsilon / (self.sensitivity * (1 if self.monotonic else 2))
        logits = factor * (u - u.max())
        p = np.exp(logits - special.logsumexp(logits))
        return np.asarray(p / p.sum(), dtype=np.float64)

    def select(self, utilities: npt.ArrayLike, *, rng: SecureRandom | None = None) -> int:
        """Index of the selected candidate."""
        cdf = np.cumsum(self.probabilities(utilities))
        u = (rng if rng is not None else SecureRandom()).uniform(1)[0] * cdf[-1]
        return int(min(np.searchsorted(cdf, u, side="right"), cdf.size - 1))

    def event(self) -> Event:
        """The event to charge."""
        return PureDPEvent(self.epsilon)


@dataclass(frozen=True, slots=True)
class ReportNoisyMax:
    """Index of the largest utility after adding grid-rounded Laplace noise of ``scale``.

    Privacy: for utilities with sensitivity D, (2 (D + g) / scale)-DP, or
    ((D + g) / scale)-DP when ``monotonic`` (Dwork and Roth 2014, Claim 3.9), g the grid.
    """

    scale: float
    monotonic: bool = False

    def __post_init__(self) -> None:
        _positive("scale", self.scale)

    @property
    def granularity(self) -> float:
        """The noise grid g."""
        return _grid(self.scale)

    @classmethod
    def for_epsilon(
        cls, epsilon: float, sensitivity: float, *, monotonic: bool = False
    ) -> ReportNoisyMax:
        """The least noise giving epsilon-DP."""
        eps, d = _positive("epsilon", epsilon), _positive("sensitivity", sensitivity)
        k = 1 if monotonic else 2
        scale = k * d / eps
        while k * (d + _grid(scale)) / scale > eps:
            scale = k * (d + _grid(scale)) / eps
        return cls(scale, monotonic)

    def epsilon(self, sensitivity: float) -> float:
        """Pure epsilon for utilities with ``sensitivity``."""
        k = 1 if self.monotonic else 2
        return k * (_positive("sensitivity", sensitivity) + self.granularity) / self.scale

    def event(self, sensitivity: float) -> Event:
        """The event to charge."""
        return PureDPEvent(self.epsilon(sensitivity))

    def select(self, utilities: npt.ArrayLike, *, rng: SecureRandom | None = None) -> int:
        """Index of the noisy maximum."""
        u = np.asarray(utilities, dtype=np.float64).reshape(-1)
        if u.size == 0 or not np.all(np.isfinite(u)):
            raise ValueError("need at least one finite utility")
        g = self.granularity
        noisy = np.rint(u / g) * g + sample_laplace(self.scale, u.size, rng=rng, granularity=g)
        return int(np.argmax(noisy))
