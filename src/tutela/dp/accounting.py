"""Privacy accountants over :mod:`tutela.dp.events`, built on Google's dp-accounting.

Two accountants: :class:`PLDAccountant` (privacy loss distributions, the default: tight,
pessimistic discretisation, so the reported epsilon is an upper bound) and
:class:`RDPAccountant` (Rényi DP, looser, but it also covers discrete Gaussian and Skellam
noise). No Gaussian-DP / CLT approximation is used anywhere: those can under-report epsilon.

An accountant refuses an event it cannot account for with :class:`AccountingError` before
it changes any state. Histories are kept as multisets of events, so T identical steps cost
one self-composition, not T compositions.

Privacy: every epsilon is for the add-or-remove-one neighbouring relation.
"""

from __future__ import annotations

import enum
import functools
import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import dp_accounting
from dp_accounting.pld import common as pld_common
from dp_accounting.pld import privacy_loss_distribution as pld_lib
from scipy import special

from tutela.dp.events import (
    ComposedEvent,
    DiscreteGaussianEvent,
    DiscreteLaplaceEvent,
    Event,
    GaussianEvent,
    LaplaceEvent,
    PoissonSampledEvent,
    PureDPEvent,
    SelfComposedEvent,
    SkellamEvent,
)
from tutela.errors import AccountingError

__all__ = [
    "Accountant",
    "AccountantKind",
    "PLDAccountant",
    "RDPAccountant",
    "calibrate",
    "calibrate_noise_multiplier",
    "compute_epsilon",
    "dpsgd_event",
    "make_accountant",
]

DEFAULT_PLD_DISCRETIZATION = 1e-4
_COARSE_PLD_DISCRETIZATION = 1e-3
_INTEGER_ORDERS: tuple[float, ...] = (*map(float, range(2, 65)), 128.0, 256.0, 512.0, 1024.0)


class AccountantKind(enum.Enum):
    """Which accountant to use."""

    PLD = "pld"
    RDP = "rdp"


class Accountant(Protocol):
    """What the ledger, DP-SGD and FL code need from an accountant."""

    kind: AccountantKind

    def check(self, event: Event) -> None: ...
    def compose(self, event: Event, count: int = 1) -> None: ...
    def get_epsilon(self, delta: float) -> float: ...
    def get_delta(self, epsilon: float) -> float: ...
    @property
    def history(self) -> tuple[tuple[Event, int], ...]: ...


def _check_delta(delta: float) -> None:
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")


def _check_count(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")


class _Base:
    kind: AccountantKind

    def __init__(self) -> None:
        self._history: Counter[Event] = Counter()

    @property
    def history(self) -> tuple[tuple[Event, int], ...]:
        """Distinct events composed so far with their multiplicities."""
        return tuple(self._history.items())

    def check(self, event: Event) -> None:
        """Raise :class:`AccountingError` if this accountant cannot account for ``event``."""
        raise NotImplementedError

    def compose(self, event: Event, count: int = 1) -> None:
        """Add ``count`` runs of ``event``; checks first, changes nothing if it is refused."""
        _check_count(count)
        self.check(event)
        self._history[event] += count
        self._invalidate()

    def _invalidate(self) -> None:
        """Drop cached results after the history changed."""


@functools.lru_cache(maxsize=16)
def _leaf_pld(event: Event, count: int, vdi: float) -> Any:
    """PLD of ``count`` runs of a supported event (checked beforehand).

    Memoised on (event, count, grid): events are frozen and hashable, and PLD objects are
    never mutated (``compose`` and ``self_compose`` return new ones), so a ledger that
    previews, charges and reports the same history builds each leaf once. Kept small: a
    PLD of many self-composed steps can take megabytes.
    """
    if isinstance(event, GaussianEvent):
        # the T-fold composition of a Gaussian is a Gaussian with std / sqrt(T)
        return pld_lib.from_gaussian_mechanism(
            standard_deviation=event.noise_multiplier / math.sqrt(count),
            value_discretization_interval=vdi,
        )
    if isinstance(event, LaplaceEvent):
        base = pld_lib.from_laplace_mechanism(
            parameter=event.scale, sensitivity=event.sensitivity, value_discretization_interval=vdi
        )
    elif isinstance(event, DiscreteLaplaceEvent):
        base = pld_lib.from_discrete_laplace_mechanism(
            parameter=1.0 / event.scale,
            sensitivity=event.sensitivity,
            value_discretization_interval=vdi,
        )
    elif isinstance(event, PureDPEvent):
        base = pld_lib.from_privacy_parameters(
            pld_common.DifferentialPrivacyParameters(event.epsilon, 0.0),
            value_discretization_interval=vdi,
        )
    elif isinstance(event, PoissonSampledEvent):
        inner = event.event
        if isinstance(inner, GaussianEvent):
            base = pld_lib.from_gaussian_mechanism(
                standard_deviation=inner.noise_multiplier,
                value_discretization_interval=vdi,
                sampling_prob=event.sampling_rate,
            )
        else:
            assert isinstance(inner, LaplaceEvent)
            base = pld_lib.from_laplace_mechanism(
                parameter=inner.scale,
                sensitivity=inner.sensitivity,
                value_discretization_interval=vdi,
                sampling_prob=event.sampling_rate,
            )
    else:  # pragma: no cover - check() guarantees the cases above
        raise AccountingError(f"unsupported event {event!r}")
    return base if count == 1 else base.self_compose(count)


def _flatten(event: Event, count: int, out: Counter[Event]) -> None:
    if isinstance(event, SelfComposedEvent):
        _flatten(event.event, count * event.count, out)
    elif isinstance(event, ComposedEvent):
        for e in event.events:
            _flatten(e, count, out)
    else:
        out[event] += count


class PLDAccountant(_Base):
    """Privacy-loss-distribution accountant (dp-accounting PLD, pessimistic estimates).

    Supports Gaussian, Laplace, discrete Laplace and pure-DP events, Poisson subsampling
    of a Gaussian or Laplace event, and any composition of those. Refuses discrete
    Gaussian and Skellam events (use :class:`RDPAccountant`).

    Args:
        value_discretization_interval: PLD grid; smaller is tighter and slower.
    """

    kind = AccountantKind.PLD

    def __init__(self, *, value_discretization_interval: float = DEFAULT_PLD_DISCRETIZATION):
        super().__init__()
        if not 0 < value_discretization_interval <= 0.1:
            raise ValueError("value_discretization_interval must be in (0, 0.1]")
        self._vdi = value_discretization_interval
        self._pld: Any = None

    def check(self, event: Event) -> None:
        """Raise :class:`AccountingError` if ``event`` has no PLD here."""
        if isinstance(event, SelfComposedEvent):
            self.check(event.event)
        elif isinstance(event, ComposedEvent):
            for e in event.events:
                self.check(e)
        elif isinstance(event, PoissonSampledEvent):
            if not isinstance(event.event, GaussianEvent | LaplaceEvent):
                raise AccountingError(
                    "the PLD accountant supports Poisson sampling of a Gaussian or Laplace "
                    f"event only, got {type(event.event).__name__}"
                )
        elif isinstance(event, DiscreteGaussianEvent | SkellamEvent):
            raise AccountingError(
                f"the PLD accountant cannot account for {type(event).__name__}; "
                "use the RDP accountant (AccountantKind.RDP)"
            )
        elif not isinstance(
            event, GaussianEvent | LaplaceEvent | DiscreteLaplaceEvent | PureDPEvent
        ):
            raise AccountingError(f"unsupported event: {event!r}")

    def _invalidate(self) -> None:
        self._pld = None

    def _composed(self) -> tuple[float | None, Any]:
        """(noise multiplier of all plain Gaussian parts merged, PLD of the rest)."""
        if self._pld is None:
            leaves: Counter[Event] = Counter()
            for event, count in self._history.items():
                _flatten(event, count, leaves)
            inv2 = 0.0
            pld = None
            for event, count in leaves.items():
                if isinstance(event, GaussianEvent):
                    # k Gaussians with multipliers z_i compose exactly into one Gaussian with
                    # z = (sum_i 1 / z_i**2) ** -0.5 (a Gaussian PLD stays Gaussian)
                    inv2 += count / event.noise_multiplier**2
                    continue
                part = _leaf_pld(event, count, self._vdi)
                pld = part if pld is None else pld.compose(part)
            z = inv2**-0.5 if inv2 > 0 else None
            if z is not None and pld is not None:
                pld = pld.compose(_leaf_pld(GaussianEvent(z), 1, self._vdi))
                z = None
            self._pld = (z, pld)
        z_only, rest = self._pld
        return z_only, rest

    def get_epsilon(self, delta: float) -> float:
        """Smallest epsilon such that the history is (epsilon, delta)-DP (an upper bound).

        A history of unsampled Gaussian events only uses the exact Gaussian privacy profile
        (Balle and Wang 2018) instead of a discretised PLD: same curve, no grid error.
        """
        _check_delta(delta)
        z, pld = self._composed()
        if z is not None:
            return analytic_gaussian_epsilon(z, delta)
        if pld is None:
            return 0.0
        return max(0.0, float(pld.get_epsilon_for_delta(delta)))

    def get_delta(self, epsilon: float) -> float:
        """Smallest delta such that the history is (epsilon, delta)-DP (an upper bound)."""
        if epsilon < 0:
            raise ValueError("epsilon must be non-negative")
        z, pld = self._composed()
        if z is not None:
            return analytic_gaussian_delta(z, epsilon)
        if pld is None:
            return 0.0
        return float(pld.get_delta_for_epsilon(epsilon))


def analytic_gaussian_delta(noise_multiplier: float, epsilon: float) -> float:
    """Exact delta(epsilon) of a Gaussian with sensitivity 1 and std ``noise_multiplier``.

    Balle and Wang (2018), Theorem 8: delta = Phi(1/(2z) - eps z) - e^eps Phi(-1/(2z) - eps z).
    """
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError("noise_multiplier must be positive")
    if epsilon < 0:
        raise ValueError("epsilon must be non-negative")
    a = 1 / (2 * noise_multiplier)
    b = epsilon * noise_multiplier
    first = float(special.ndtr(a - b))
    second = math.exp(epsilon + float(special.log_ndtr(-a - b)))
    return max(0.0, first - second)


def analytic_gaussian_epsilon(noise_multiplier: float, delta: float) -> float:
    """Smallest epsilon (to 1e-10 relative, rounded up) with analytic delta <= ``delta``."""
    _check_delta(delta)
    if analytic_gaussian_delta(noise_multiplier, 0.0) <= delta:
        return 0.0
    lo, hi = 0.0, 1.0
    while analytic_gaussian_delta(noise_multiplier, hi) > delta:
        lo, hi = hi, 2 * hi
    while hi - lo > 1e-10 * max(1.0, hi):
        mid = (lo + hi) / 2
        if analytic_gaussian_delta(noise_multiplier, mid) <= delta:
            hi = mid
        else:
            lo = mid
    return hi


def _rdp_event(event: Event) -> Any:
    """Translate to a dp-accounting event the RDP accountant handles (checked first)."""
    if isinstance(event, GaussianEvent):
        return dp_accounting.GaussianDpEvent(event.noise_multiplier)
    if isinstance(event, LaplaceEvent):
        return dp_accounting.LaplaceDpEvent(event.noise_multiplier)
    if isinstance(event, DiscreteLaplaceEvent | PureDPEvent):
        # pure eps-DP implies (eps**2 / 2)-zCDP (Bun and Steinke 2016, Proposition 1.4)
        eps = event.epsilon if isinstance(event, PureDPEvent) else event.sensitivity / event.scale
        return dp_accounting.ZCDpEvent(rho=eps * eps / 2)
    if isinstance(event, DiscreteGaussianEvent):
        return dp_accounting.ZCDpEvent(rho=event.sensitivity**2 / (2 * event.sigma**2))
    if isinstance(event, SkellamEvent):
        # Agarwal et al. (2021) Thm 3.5, first branch of the min, with (2a - 1) bounded by 2a:
        # eps(a) <= a * (D2^2/(4 mu) + D2^2/(8 mu^2)) + 3 D1 / (8 mu^2) at integer orders a
        mu, d1, d2 = event.mu, event.l1_sensitivity, event.l2_sensitivity
        return dp_accounting.ZCDpEvent(
            rho=d2 * d2 / (4 * mu) + d2 * d2 / (8 * mu * mu), xi=3 * d1 / (8 * mu * mu)
        )
    if isinstance(event, PoissonSampledEvent):
        return dp_accounting.PoissonSampledDpEvent(event.sampling_rate, _rdp_event(event.event))
    if isinstance(event, SelfComposedEvent):
        return dp_accounting.SelfComposedDpEvent(_rdp_event(event.event), event.count)
    if isinstance(event, ComposedEvent):
        return dp_accounting.ComposedDpEvent([_rdp_event(e) for e in event.events])
    raise AccountingError(f"unsupported event: {event!r}")  # pragma: no cover


def _contains_skellam(event: Event) -> bool:
    if isinstance(event, SkellamEvent):
        return True
    if isinstance(event, PoissonSampledEvent | SelfComposedEvent):
        return _contains_skellam(event.event)
    if isinstance(event, ComposedEvent):
        return any(_contains_skellam(e) for e in event.events)
    return False


def _gaussian_only(event: Event) -> bool:
    if isinstance(event, GaussianEvent):
        return True
    if isinstance(event, SelfComposedEvent):
        return _gaussian_only(event.event)
    if isinstance(event, ComposedEvent):
        return all(_gaussian_only(e) for e in event.events)
    return False


class RDPAccountant(_Base):
    """Rényi-DP accountant (dp-accounting's, with its improved RDP-to-DP conversion).

    Supports every event type; Poisson subsampling only of Gaussian events (or compositions
    of Gaussians). Discrete Laplace and pure-DP events enter through their zCDP bound,
    discrete Gaussian through rho = D**2 / (2 sigma**2), Skellam through Agarwal et al.'s
    bound, which holds at integer orders only: histories with a Skellam event use integer
    orders 2..64, 128, ..., 1024.

    Args:
        orders: RDP orders to optimise over; dp-accounting's defaults if ``None``.
    """

    kind = AccountantKind.RDP

    def __init__(self, *, orders: Iterable[float] | None = None) -> None:
        super().__init__()
        self._orders = None if orders is None else tuple(float(a) for a in orders)
        if self._orders is not None and (not self._orders or min(self._orders) <= 1):
            raise ValueError("RDP orders must be > 1")
        self._acc: Any = None

    def check(self, event: Event) -> None:
        """Raise :class:`AccountingError` if ``event`` has no RDP bound here."""
        if isinstance(event, SelfComposedEvent):
            self.check(event.event)
        elif isinstance(event, ComposedEvent):
            for e in event.events:
                self.check(e)
        elif isinstance(event, PoissonSampledEvent) and not _gaussian_only(event.event):
            raise AccountingError(
                "the RDP accountant supports Poisson sampling of Gaussian events only, "
                f"got {type(event.event).__name__}"
            )

    def _invalidate(self) -> None:
        self._acc = None

    def _composed(self) -> Any:
        if self._acc is None:
            orders: Iterable[float] | None = self._orders
            if any(_contains_skellam(e) for e in self._history):
                base = self._orders or _INTEGER_ORDERS
                orders = tuple(a for a in base if float(a).is_integer())
                if not orders:
                    raise AccountingError("Skellam accounting needs integer RDP orders")
            acc = dp_accounting.rdp.RdpAccountant(orders=list(orders) if orders else None)
            for event, count in self._history.items():
                acc.compose(_rdp_event(event), count)
            self._acc = acc
        return self._acc

    def get_epsilon(self, delta: float) -> float:
        """Smallest epsilon such that the history is (epsilon, delta)-DP (an upper bound)."""
        _check_delta(delta)
        if not self._history:
            return 0.0
        return max(0.0, float(self._composed().get_epsilon(delta)))

    def get_delta(self, epsilon: float) -> float:
        """Smallest delta such that the history is (epsilon, delta)-DP (an upper bound)."""
        if epsilon < 0:
            raise ValueError("epsilon must be non-negative")
        if not self._history:
            return 0.0
        return float(self._composed().get_delta(epsilon))


def make_accountant(
    kind: AccountantKind = AccountantKind.PLD,
    *,
    value_discretization_interval: float = DEFAULT_PLD_DISCRETIZATION,
) -> PLDAccountant | RDPAccountant:
    """Return a fresh accountant of ``kind``."""
    kind = AccountantKind(kind)
    if kind is AccountantKind.PLD:
        return PLDAccountant(value_discretization_interval=value_discretization_interval)
    return RDPAccountant()


def compute_epsilon(
    event: Event,
    delta: float,
    accountant: AccountantKind = AccountantKind.PLD,
    *,
    value_discretization_interval: float = DEFAULT_PLD_DISCRETIZATION,
) -> float:
    """Epsilon of one (possibly composed) event at ``delta``.

    Raises:
        AccountingError: the accountant cannot account for ``event``.
    """
    acc = make_accountant(accountant, value_discretization_interval=value_discretization_interval)
    acc.compose(event)
    return acc.get_epsilon(delta)


def dpsgd_event(noise_multiplier: float, sample_rate: float, steps: int) -> Event:
    """The event of ``steps`` DP-SGD steps with Poisson sampling rate ``sample_rate``."""
    inner: Event = GaussianEvent(noise_multiplier)
    if sample_rate < 1:
        inner = PoissonSampledEvent(sample_rate, inner)
    return inner if steps == 1 else SelfComposedEvent(inner, steps)


def _crossing(
    gap: Callable[[float], float], lo: float, g_lo: float, hi: float, g_hi: float, tol: float
) -> float:
    """Smallest z (to relative ``tol``) with gap(z) <= 0, for gap decreasing in z.

    Illinois (modified false position) steps, kept at least tol/2 inside the bracket so
    every evaluation shrinks it; returns the passing end once the bracket is narrow.
    """
    side = 0
    while hi - lo > tol * hi:
        if math.isfinite(g_lo) and g_lo != g_hi:
            z = hi - g_hi * (hi - lo) / (g_hi - g_lo)
        else:
            z = (lo + hi) / 2
        margin = 0.5 * tol * hi
        z = min(max(z, lo + margin), hi - margin)
        g = gap(z)
        if g <= 0:
            hi, g_hi = z, g
            if side == 1:
                g_lo /= 2
            side = 1
        else:
            lo, g_lo = z, g
            if side == -1:
                g_hi /= 2
            side = -1
    return hi


def calibrate(
    event_for: Callable[[float], Event],
    target_epsilon: float,
    delta: float,
    *,
    accountant: AccountantKind = AccountantKind.PLD,
    tolerance: float = 1e-3,
    max_noise_multiplier: float = 1e4,
    value_discretization_interval: float | None = None,
) -> float:
    """Smallest noise multiplier z (to relative ``tolerance``) with epsilon(event_for(z)) <= target.

    Bisection on z (epsilon decreases with z). For PLD a coarse grid first narrows the
    bracket and the final bisection runs with the reporting grid, so the returned z is
    checked with exactly the accounting that reports epsilon later.

    Args:
        event_for: the event for a noise multiplier z.
        target_epsilon: epsilon to meet.
        delta: delta to meet.
        accountant: PLD (default) or RDP.
        tolerance: relative precision of the returned z.
        max_noise_multiplier: give up above this z.
        value_discretization_interval: PLD grid of the final bisection (the grid of the
            accountant or ledger that will report epsilon); the accountant's default fine
            grid if ``None``. A grid at least as coarse as the bracketing grid skips the
            bracketing phase.

    Raises:
        ValueError: bad target, or the target needs z above ``max_noise_multiplier``.
    """
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ValueError(f"target_epsilon must be positive, got {target_epsilon!r}")
    _check_delta(delta)
    if not 0 < tolerance < 0.5:
        raise ValueError("tolerance must be in (0, 0.5)")
    kind = AccountantKind(accountant)
    fine_vdi = (
        DEFAULT_PLD_DISCRETIZATION
        if value_discretization_interval is None
        else float(value_discretization_interval)
    )
    if not 0 < fine_vdi <= 0.1:
        raise ValueError("value_discretization_interval must be in (0, 0.1]")

    def eps(z: float, coarse: bool) -> float:
        vdi = _COARSE_PLD_DISCRETIZATION if coarse else fine_vdi
        return compute_epsilon(event_for(z), delta, kind, value_discretization_interval=vdi)

    def gap(z: float, coarse: bool) -> float:
        return eps(z, coarse) - target_epsilon

    # bracket: gap(lo) > 0 (too little noise) and gap(hi) <= 0 (meets the target)
    coarse = kind is AccountantKind.PLD and fine_vdi < _COARSE_PLD_DISCRETIZATION
    hi, g_hi = 1.0, gap(1.0, coarse)
    lo, g_lo = 0.0, math.inf
    while g_hi > 0:
        lo, g_lo = hi, g_hi
        hi *= 2
        if hi > max_noise_multiplier:
            raise ValueError(
                f"target epsilon {target_epsilon} needs a noise multiplier above "
                f"{max_noise_multiplier}"
            )
        g_hi = gap(hi, coarse)
    if lo == 0.0:
        lo = hi / 2
        g_lo = gap(lo, coarse)
        while g_lo <= 0 and lo > 1e-3:
            hi, g_hi = lo, g_lo
            lo /= 2
            g_lo = gap(lo, coarse)
    hi = _crossing(
        lambda z: gap(z, coarse), lo, g_lo, hi, g_hi, max(tolerance, 5e-3) if coarse else tolerance
    )
    if not coarse:
        return hi
    # fine phase with the reporting grid, in a 1% bracket around the coarse answer
    g_hi = gap(hi, False)
    while g_hi > 0:
        hi *= 1.01
        if hi > max_noise_multiplier:
            raise ValueError("calibration did not converge")
        g_hi = gap(hi, False)
    lo = hi * 0.99
    g_lo = gap(lo, False)
    while g_lo <= 0 and lo > 1e-3:
        hi, g_hi = lo, g_lo
        lo *= 0.99
        g_lo = gap(lo, False)
    return _crossing(lambda z: gap(z, False), lo, g_lo, hi, g_hi, tolerance)


def calibrate_noise_multiplier(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: AccountantKind = AccountantKind.PLD,
    *,
    tolerance: float = 1e-3,
    value_discretization_interval: float | None = None,
) -> float:
    """Smallest DP-SGD noise multiplier meeting (target_epsilon, delta).

    Args:
        target_epsilon: epsilon to meet.
        delta: delta to meet.
        sample_rate: Poisson sampling rate q (batch size / dataset size), in (0, 1].
        steps: number of steps T.
        accountant: PLD (default) or RDP.
        tolerance: relative precision of the returned z (it always meets the target).
        value_discretization_interval: PLD grid the result is checked on (use the grid of
            the ledger or accountant that reports epsilon); the default fine grid if
            ``None``.

    Privacy: the returned z gives ``dpsgd_event(z, q, T)`` an epsilon <= target at delta
    under ``accountant`` on that grid; z * (1 - tolerance) would not.
    """
    _check_count(steps)
    if not 0 < sample_rate <= 1:
        raise ValueError("sample_rate must be in (0, 1]")
    return calibrate(
        lambda z: dpsgd_event(z, sample_rate, steps),
        target_epsilon,
        delta,
        accountant=accountant,
        tolerance=tolerance,
        value_discretization_interval=value_discretization_interval,
    )
