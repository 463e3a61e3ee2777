"""Client-level DP for federated averaging (DP-FedAvg), as pure numpy functions.

The FL engine composes these; nothing here knows about rounds, transports or strategies.
One DP-FedAvg round with clip norm C and noise multiplier z:

1. each sampled client clips its update to L2 norm C (:func:`clip_update`);
2. the (secure) sum of the clipped updates gets Gaussian noise of standard deviation
   **z * C on the SUM** (:func:`add_gaussian_noise` with ``std = z * C``);
3. the noisy sum is divided by the *expected* number of clients q N, a fixed public
   number (never by the number that replied, which would make the sensitivity
   data-dependent);
4. the round is accounted as ``PoissonSampledEvent(q, GaussianEvent(z))``
   (:func:`dp_fedavg_event` for T rounds).

Privacy: the guarantee is client-level (add or remove one client's whole data) and assumes
each client takes part independently with probability q (:func:`sample_clients`) and that
who took part is not revealed. When the noise is contributed by the clients themselves
(each adds a share, as under secure aggregation), fewer replies than planned means less
noise than the accountant assumed; and a mean over fewer clients than planned no longer
matches the calibration. So if fewer clients reply than the round assumed, the caller MUST
refuse the round: :func:`check_quorum` raises :class:`~tutela.errors.QuorumNotMet`, it
never just warns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tutela.dp.accounting import AccountantKind, calibrate
from tutela.dp.events import Event, GaussianEvent, PoissonSampledEvent, SelfComposedEvent
from tutela.errors import QuorumNotMet
from tutela.hazmat.noise import rounded_gaussian64_granularity, sample_rounded_gaussian64
from tutela.hazmat.rng import SecureRandom

__all__ = [
    "AdaptiveClipper",
    "add_gaussian_noise",
    "calibrate_client_level",
    "check_quorum",
    "clip_update",
    "combined_noise_multiplier",
    "dp_fedavg_event",
    "sample_clients",
    "update_norm",
]

Update = dict[str, npt.NDArray[np.floating]]
_GRID64_RELATIVE = 2.0**-40


def update_norm(update: Mapping[str, npt.NDArray[np.floating]]) -> float:
    """Global L2 norm of all arrays of an update together."""
    total = 0.0
    for value in update.values():
        arr = np.asarray(value, dtype=np.float64)
        total += float(np.dot(arr.ravel(), arr.ravel()))
    return math.sqrt(total)


def clip_update(
    update: Mapping[str, npt.NDArray[np.floating]], clip_norm: float
) -> tuple[Update, float]:
    """Scale ``update`` so its global L2 norm is at most ``clip_norm``.

    Returns:
        (clipped copy with the input dtypes, the unclipped norm). Updates already within
        the bound are copied unchanged.

    Privacy: after clipping, adding or removing one client changes the sum of clipped
    updates by at most ``clip_norm`` in L2, the sensitivity the Gaussian noise is
    calibrated to.
    """
    if not (math.isfinite(clip_norm) and clip_norm > 0):
        raise ValueError("clip_norm must be positive and finite")
    norm = update_norm(update)
    if not math.isfinite(norm):
        raise ValueError("the update contains NaN or infinite values")
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    # scale in float64, then check the result really is within the bound after casting
    out: Update = {}
    for name, value in update.items():
        arr = np.asarray(value)
        out[name] = (arr.astype(np.float64) * scale).astype(arr.dtype)
    while update_norm(out) > clip_norm:  # float32 rounding can overshoot by an ulp
        scale *= 1 - 1e-6
        out = {
            n: (np.asarray(v).astype(np.float64) * scale).astype(np.asarray(v).dtype)
            for n, v in update.items()
        }
    return out, norm


def add_gaussian_noise(
    aggregate: Mapping[str, npt.NDArray[np.floating]],
    std: float,
    rng: SecureRandom | None = None,
) -> dict[str, npt.NDArray[np.float64]]:
    """Add Gaussian noise of standard deviation ``std`` to every coordinate of ``aggregate``.

    For DP-FedAvg pass ``std = z * C`` (noise on the SUM of clipped updates). The exact
    aggregate is first rounded to the noise grid g = :func:`rounded_gaussian64_granularity`
    (std * 2**-40 or finer) and the noise comes from
    :func:`~tutela.hazmat.noise.sample_rounded_gaussian64`, so outputs carry no low-order
    float bits. Returns float64 arrays.

    Privacy: with sum sensitivity C the release is the Gaussian mechanism with L2
    sensitivity at most C + g sqrt(d) (d coordinates in all); :func:`dp_fedavg_event`
    with ``dimension=d`` accounts for that term.
    """
    if not (math.isfinite(std) and std > 0):
        raise ValueError("std must be positive and finite")
    names = list(aggregate)
    arrays = [np.asarray(aggregate[n], dtype=np.float64) for n in names]
    total = sum(a.size for a in arrays)
    noise = sample_rounded_gaussian64(std, total, rng=rng)
    g = rounded_gaussian64_granularity(std)
    out: dict[str, npt.NDArray[np.float64]] = {}
    offset = 0
    for name, arr in zip(names, arrays, strict=True):
        part = noise[offset : offset + arr.size].reshape(arr.shape)
        offset += arr.size
        out[name] = np.rint(arr / g) * g + part
    return out


def check_quorum(received: int, assumed_min: int) -> None:
    """Refuse a round in which fewer clients replied than the accountant assumed.

    Raises:
        QuorumNotMet: ``received < assumed_min``.
    """
    if received < 0 or assumed_min < 0:
        raise ValueError("client counts must be non-negative")
    if received < assumed_min:
        raise QuorumNotMet(
            f"only {received} clients replied but the privacy calibration assumed at least "
            f"{assumed_min}; the round is refused and nothing is released"
        )


def sample_clients(
    client_ids: Sequence[str], sample_rate: float, rng: SecureRandom | None = None
) -> list[str]:
    """Poisson-sample clients: each is included independently with probability q.

    Privacy: this is the sampling that :func:`dp_fedavg_event` amplifies over; the
    selection must stay hidden from whoever sees the released model.
    """
    if not 0 < sample_rate <= 1:
        raise ValueError("sample_rate must be in (0, 1]")
    gen = rng if rng is not None else SecureRandom()
    keep = gen.uniform(len(client_ids)) < sample_rate
    return [c for c, k in zip(client_ids, keep, strict=True) if k]


def combined_noise_multiplier(update_noise_multiplier: float, count_noise_std: float) -> float:
    """The single Gaussian noise multiplier equal to releasing both DP-FedAvg queries.

    The clipped-update sum (sensitivity C, noise z_u C) and the adaptive-clipping count
    (sensitivity 1/2, noise sigma_b) on the same cohort compose exactly like one Gaussian
    with z = (z_u**-2 + (2 sigma_b)**-2) ** -0.5 (Andrew et al. 2021, Theorem 1).
    """
    if update_noise_multiplier <= 0 or count_noise_std <= 0:
        raise ValueError("noise parameters must be positive")
    return float((update_noise_multiplier**-2 + (2 * count_noise_std) ** -2) ** -0.5)


def _effective(noise_multiplier: float, dimension: int | None) -> float:
    if dimension is None:
        return noise_multiplier
    if dimension < 1:
        raise ValueError("dimension must be positive")
    # rounding to the 2**-40 grid adds g sqrt(d) <= z C 2**-40 sqrt(d) to the sensitivity C
    return noise_multiplier / (1 + noise_multiplier * _GRID64_RELATIVE * math.sqrt(dimension))


def dp_fedavg_event(
    noise_multiplier: float,
    sample_rate: float,
    rounds: int,
    *,
    count_noise_std: float | None = None,
    dimension: int | None = None,
) -> Event:
    """The event of ``rounds`` DP-FedAvg rounds with client sampling rate ``sample_rate``.

    Args:
        noise_multiplier: z of the update sum (std z C on the sum).
        sample_rate: q = expected clients per round / total clients.
        rounds: T.
        count_noise_std: sigma_b of the adaptive-clipping count, if one is released.
        dimension: number of model coordinates, to include the noise-grid term of
            :func:`add_gaussian_noise` (negligible, but accounted).
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError("rounds must be a positive int")
    z = _effective(noise_multiplier, dimension)
    if count_noise_std is not None:
        z = combined_noise_multiplier(z, count_noise_std)
    step: Event = GaussianEvent(z)
    if sample_rate < 1:
        step = PoissonSampledEvent(sample_rate, step)
    return step if rounds == 1 else SelfComposedEvent(step, rounds)


def calibrate_client_level(
    target_epsilon: float,
    delta: float,
    clients_per_round: int,
    total_clients: int,
    rounds: int,
    *,
    count_noise_std: float | None = None,
    accountant: AccountantKind = AccountantKind.PLD,
    tolerance: float = 1e-3,
) -> float:
    """Smallest update noise multiplier z for client-level (target_epsilon, delta).

    Args:
        target_epsilon: client-level epsilon for all ``rounds``.
        delta: client-level delta.
        clients_per_round: expected clients per round (q = clients_per_round / total).
        total_clients: population size N.
        rounds: T.
        count_noise_std: sigma_b if adaptive clipping also releases a noisy count; the
            returned z is then for the update sum alone (the count's share is carved out).
        accountant: PLD (default) or RDP.
        tolerance: relative precision of z.

    Raises:
        ValueError: impossible target (e.g. sigma_b too small to leave room for the update).

    Privacy: ``dp_fedavg_event(z, q, rounds, count_noise_std=...)`` then has epsilon at
    most ``target_epsilon`` at ``delta`` under ``accountant``.
    """
    if not 0 < clients_per_round <= total_clients:
        raise ValueError("need 0 < clients_per_round <= total_clients")
    q = clients_per_round / total_clients
    z_total = calibrate(
        lambda z: dp_fedavg_event(z, q, rounds),
        target_epsilon,
        delta,
        accountant=accountant,
        tolerance=tolerance,
    )
    if count_noise_std is None:
        return z_total
    rest = z_total**-2 - (2 * count_noise_std) ** -2
    if rest <= 0:
        raise ValueError(
            f"count_noise_std={count_noise_std} alone needs more than the whole budget "
            f"(combined noise multiplier {z_total:.4g}); increase it"
        )
    # bisection on the combined value is monotone; one slightly conservative step
    return float(rest**-0.5) * (1 + tolerance)


@dataclass
class AdaptiveClipper:
    """Quantile-tracking clip norm for DP-FedAvg (Andrew et al., NeurIPS 2021).

    Each round every sampled client reports b_i = 1 if its update norm is at most the
    current clip norm C. The server releases the noisy fraction
    b~ = (sum_i (b_i - 1/2) + N(0, sigma_b**2)) / m + 1/2 (m: expected clients per round)
    and updates C <- C * exp(-learning_rate * (b~ - target_quantile)).

    Privacy: the count has sensitivity 1/2 (add/remove one client) and noise sigma_b, so
    it is a Gaussian query with noise multiplier 2 sigma_b on the same cohort as the
    update sum; :meth:`round_event` returns the event of both together. The clip norm is
    a function of released values only, so using it in later rounds costs nothing more.

    Args:
        clip_norm: initial C.
        target_quantile: gamma, the fraction of updates to leave unclipped (0.5: median).
        learning_rate: eta of the geometric update.
        count_noise_std: sigma_b (Andrew et al. suggest about m / 20).
        expected_clients: m, the expected number of clients per round.
        rng: noise source; fresh OS-keyed by default.
    """

    clip_norm: float
    target_quantile: float = 0.5
    learning_rate: float = 0.2
    count_noise_std: float = 1.0
    expected_clients: float = 1.0
    rng: SecureRandom = field(default_factory=SecureRandom, repr=False)
    history: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise ValueError("clip_norm must be positive")
        if not 0 <= self.target_quantile <= 1:
            raise ValueError("target_quantile must be in [0, 1]")
        if self.learning_rate <= 0 or self.count_noise_std <= 0 or self.expected_clients <= 0:
            raise ValueError("learning_rate, count_noise_std and expected_clients must be > 0")

    def indicator(self, unclipped_norm: float) -> int:
        """What a client reports: 1 if its update norm is within the current clip norm."""
        return int(unclipped_norm <= self.clip_norm)

    def update(self, indicators: Sequence[int]) -> float:
        """Release the noisy unclipped fraction, move the clip norm, return the new C."""
        if any(b not in (0, 1) for b in indicators):
            raise ValueError("indicators must be 0 or 1")
        centred = sum(indicators) - 0.5 * len(indicators)
        noise = float(sample_rounded_gaussian64(self.count_noise_std, 1, rng=self.rng)[0])
        return self.update_from_noisy_count(centred + noise)

    def update_from_noisy_count(self, noisy_centred_count: float) -> float:
        """Move the clip norm from a count already released with noise; return the new C.

        For when the noise is added elsewhere, e.g. the centred count ``sum_i (b_i - 1/2)``
        summed inside secure aggregation with distributed noise of std at least
        ``count_noise_std``. The caller accounts for that release.
        """
        if not math.isfinite(noisy_centred_count):
            raise ValueError("the noisy count must be finite")
        fraction = noisy_centred_count / self.expected_clients + 0.5
        self.history.append(fraction)
        self.clip_norm *= math.exp(-self.learning_rate * (fraction - self.target_quantile))
        return self.clip_norm

    def update_noise_multiplier(self, total_noise_multiplier: float) -> float:
        """z for the update sum so that sum and count together equal ``total``."""
        rest = total_noise_multiplier**-2 - (2 * self.count_noise_std) ** -2
        if rest <= 0:
            raise ValueError("count_noise_std is too small for this total noise multiplier")
        return float(rest**-0.5)

    def round_event(self, update_noise_multiplier: float, sample_rate: float) -> Event:
        """Event of one round: the noisy update sum and the noisy count, same cohort."""
        return dp_fedavg_event(
            update_noise_multiplier, sample_rate, 1, count_noise_std=self.count_noise_std
        )
