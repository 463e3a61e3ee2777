"""Federated standardisation: the pooled mean and std of every feature, before round 1.

How the statistics travel depends on the study (:func:`standardisation_mode`):

- ``plain`` (no secure aggregation, no DP): each site sends its exact
  :class:`~tutela.fl.client.FeatureMoments` (row count, feature sums, sums of squares) and
  the coordinator pools them (:func:`~tutela.fl.client.global_standardisation`).
- ``noised`` (DP, no secure aggregation): each site clips its features to the study's
  declared ranges, charges its own ledger, and sends its moment vector with Gaussian noise
  it drew itself (:func:`noised_vector`); the coordinator sums the noisy vectors.
- ``secure`` (SecAgg+): the moment vectors are summed by a SecAgg+ round before
  round 1 (the coordinator learns only the sum); in a private study each site charges its
  own ledger and adds its share of distributed discrete-Gaussian noise inside the masked sum.

A site's moment vector is ``[sum(u), sum(u^2)]`` over its rows, where ``u = (clip(x) -
mid) / half`` maps each feature's declared range ``[low, high]`` onto ``[-1, 1]``
(``data.feature_bounds``; :data:`DEFAULT_BOUND` otherwise). Under SecAgg+ it is sent as the
input ``[mean(u), mean(u^2)]`` (every coordinate in ``[-1, 1]``) with weight ``n``, so the
masked weighted sum is the vector sum and the revealed weight total is the pooled count.

The row count is the one per-site number that leaves a site in the clear: the count ``n`` it
declares in its join answer, not noised. The coordinator needs it (it caps the site's weight
in every round and bounds SecAgg+ weights), so the pooled count is public too (the sum of
the declared counts, or the SecAgg+ weight total of the sites that stayed) and is not part
of the noisy vector; the DP guarantees treat it as public.

Privacy (private studies): the release is a Gaussian mechanism with noise multiplier at
least :func:`~tutela.fl.privacy.standardisation_noise_multiplier` (a tenth of the study's
epsilon, carved out of the training calibration). The L2 sensitivity of the summed vector is
``sqrt(2 d)`` for one record (sample-level DP) and ``W sqrt(2 d)`` for one site's
whole dataset (client-level DP; ``W``, the public bound on any site's row count, or the
site's own count when it noises its vector itself), plus the rounding terms. Each site
charges the event to its own ledger (:func:`charge_standardisation`) before anything leaves.
The released statistics are then clamped to the declared ranges (post-processing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tutela.dp.events import Event
from tutela.errors import DataError, PolicyViolation
from tutela.fl.client import FeatureMoments, LocalSite, global_standardisation
from tutela.fl.privacy import (
    guaranteed_sigma,
    site_scope,
    standardisation_event,
    standardisation_noise_multiplier,
)
from tutela.fl.privacy.budget import _accountant_kind
from tutela.hazmat.noise import rounded_gaussian64_granularity, sample_rounded_gaussian64
from tutela.hazmat.rng import SecureRandom
from tutela.secagg import RoundParams, SecAggConfig, secure_sum

if TYPE_CHECKING:
    from tutela.dp.ledger import PrivacyLedger
    from tutela.fl.config import StudyConfig

DEFAULT_BOUND = 1e4
"""The range ``[-DEFAULT_BOUND, DEFAULT_BOUND]`` of a feature without a declared one."""

STANDARDISATION_ROUND = 0
"""The round number of the secure standardisation round (training rounds start at 1)."""

MODULUS_BITS = 62
"""SecAgg+ word size of the standardisation round (a short vector: fine steps are cheap)."""

_VAR_FLOOR = (1 / 8) ** 2
"""Least variance (in range units) a noisy release is clamped to: a noisy std never blows
a feature up by more than 8x its declared half-range (it binds without noise only for a
feature whose spread is far below its declared range)."""


class StandardisationMode(StrEnum):
    """How a study's standardisation statistics travel (see the module docstring)."""

    PLAIN = "plain"
    NOISED = "noised"
    SECURE = "secure"


def standardisation_mode(config: StudyConfig) -> StandardisationMode:
    """The mode of ``config``: secure under SecAgg+, else noised when private.

    A CKKS study's statistics travel as without secure aggregation for now (its rounds have
    no SecAgg+ identities to run round 0 with); see the issue tracker."""
    if config.secure_aggregation.protocol == "secagg+":
        return StandardisationMode.SECURE
    if config.privacy.mode != "none":
        return StandardisationMode.NOISED
    return StandardisationMode.PLAIN


def count_bound(counts: list[int]) -> float:
    """``W``: the public bound on any site's weight, the power of two at or above the
    largest declared row count (as every SecAgg+ round of the study uses)."""
    return float(2 ** math.ceil(math.log2(max(max(counts, default=1), 1))))


@dataclass(frozen=True)
class StandardisationPlan:
    """What every party computes the same from the study: the mode, the declared ranges,
    the noise and how the secure round is planned.

    Attributes:
        mode: how the statistics travel.
        low: each feature's declared lower bound.
        high: each feature's declared upper bound.
        level: ``"sample"`` or ``"client"`` in a private study (the neighbouring relation),
            else ``None``.
        noise_multiplier: z of the release (``None`` without DP).
        epsilon: the study's epsilon (``None`` without DP).
        delta: the study's delta.
        accountant: the study's accountant.
        neighbors: SecAgg+ k of the study (``None``: chosen).
        threshold: SecAgg+ t of the study (``None``: chosen).
    """

    mode: StandardisationMode
    low: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    level: str | None = None
    noise_multiplier: float | None = None
    epsilon: float | None = None
    delta: float = 1e-5
    accountant: str = "pld"
    neighbors: int | None = None
    threshold: int | None = None

    @classmethod
    def of(cls, config: StudyConfig, columns: list[str]) -> StandardisationPlan:
        """The plan of ``config`` over the study's ``columns``."""
        bounds = config.data.feature_bounds
        low = np.array([bounds.get(c, (-DEFAULT_BOUND, DEFAULT_BOUND))[0] for c in columns])
        high = np.array([bounds.get(c, (-DEFAULT_BOUND, DEFAULT_BOUND))[1] for c in columns])
        p, sa = config.privacy, config.secure_aggregation
        private = p.mode != "none" and p.epsilon is not None
        return cls(
            mode=standardisation_mode(config),
            low=low.astype(np.float64),
            high=high.astype(np.float64),
            level=p.mode if private else None,
            noise_multiplier=standardisation_noise_multiplier(p.epsilon, p.delta, p.accountant)
            if private and p.epsilon is not None
            else None,
            epsilon=p.epsilon if private else None,
            delta=p.delta,
            accountant=p.accountant,
            neighbors=sa.neighbors,
            threshold=sa.threshold,
        )

    @property
    def features(self) -> int:
        return len(self.low)

    @property
    def dim(self) -> int:
        """Length of a moment vector: the sums, the sums of squares."""
        return 2 * self.features

    def sensitivity(self, weight_bound: float) -> float:
        """L2 sensitivity of the summed vector under the study's neighbouring relation
        (``weight_bound``: the most rows one site may hold, for client-level DP)."""
        unit = math.sqrt(2 * self.features)
        return unit * weight_bound if self.level == "client" else unit

    def site_moments(self, site: LocalSite) -> FeatureMoments:
        """A site's moments over its rows clipped to the ranges and mapped onto [-1, 1]."""
        moments = site.feature_moments(self.low, self.high)
        if len(moments.total) != self.features:
            raise DataError(f"expected {self.features} feature columns, got {len(moments.total)}")
        return moments

    # secure aggregation ---------------------------------------------------------------------

    def secagg_config(
        self, n_sites: int, weight_bound: float, *, stage_timeout_s: float = 30.0
    ) -> SecAggConfig:
        """The SecAgg+ settings of the standardisation round among ``n_sites`` sites whose
        weights are at most ``weight_bound``: unit coordinate range, and in a private study
        enough distributed noise for the plan's sensitivity, rounding included."""
        config = SecAggConfig(
            neighbors=self.neighbors,
            threshold=self.threshold,
            modulus_bits=MODULUS_BITS,
            clip=1.0,
            max_weight=weight_bound,
            stage_timeout_s=stage_timeout_s,
        )
        if self.noise_multiplier is None:
            return config
        ids = tuple(range(n_sites))
        sigma = self.noise_multiplier * self.sensitivity(weight_bound)
        for _ in range(20):  # the rounding step grows with the noise: settle it
            config = SecAggConfig(**{**_fields(config), "ddp_sigma": sigma})
            params = config.plan(ids, self.dim, max_weight=weight_bound, round_id=bytes(32))
            if self.secure_multiplier(params) >= self.noise_multiplier:
                return config
            sigma *= 1.01
        raise ValueError("cannot plan the standardisation round's noise")  # pragma: no cover

    @property
    def event(self) -> Event | None:
        """What a site charges for its standardisation release (``None`` without DP): the
        Gaussian at the study's calibration, which the release's actual noise (checked
        before charging) never falls below; the coordinator's study ledger holds the same
        (:class:`~tutela.fl.privacy.ClientLevelDP`)."""
        if self.epsilon is None:
            return None
        return standardisation_event(self.epsilon, self.delta, self.accountant)

    def secure_multiplier(self, params: RoundParams) -> float:
        """The noise multiplier a secure standardisation round guarantees: the noise on the
        sum at the round's ``min_survivors`` over the sensitivity plus one rounding step per
        coordinate (as :func:`~tutela.fl.privacy.secure_round_event`)."""
        step = params.max_weight / params.scale
        bound = self.sensitivity(params.max_weight) + step * math.sqrt(params.dim)
        return guaranteed_sigma(params) / bound

    def check_secure(self, params: RoundParams, num_examples: int) -> Event | None:
        """A site's check of the secure round's plan before it charges or sends anything;
        returns the event to charge (``None`` without DP).

        Raises:
            PolicyViolation: the plan is not the standardisation round this site computes
                (vector length, range, its weight above the bound) or its noise is below
                the study's calibration.
        """
        reasons = []
        if params.dim != self.dim:
            reasons.append(f"vector length {params.dim}, the site sends {self.dim}")
        if params.clip != 1.0:
            reasons.append(f"coordinate range {params.clip}, the site sends [-1, 1]")
        if not num_examples <= params.max_weight:
            reasons.append(f"weight bound {params.max_weight} below the site's {num_examples}")
        z = self.secure_multiplier(params)
        if self.noise_multiplier is not None and not z >= self.noise_multiplier * (1 - 1e-9):
            reasons.append(
                f"noise multiplier {z:.6g} below the {self.noise_multiplier:.6g} the study's "
                "calibration requires"
            )
        if reasons:
            raise PolicyViolation("standardisation round refused: " + "; ".join(reasons))
        return self.event

    # releases ---------------------------------------------------------------------------

    def noised_vector(
        self, moments: FeatureMoments, rng: SecureRandom | None = None
    ) -> tuple[npt.NDArray[np.float64], Event]:
        """A site's own noisy moment vector (DP without secure aggregation) and its event.

        The noise std is ``z`` times the sensitivity of the site's own vector (its own row
        count bounds it under client-level DP), rounded to its grid as
        :func:`~tutela.dp.federated.add_gaussian_noise` does.
        """
        event = self.event
        if self.noise_multiplier is None or event is None:
            raise ValueError("the study adds no noise to its standardisation")
        if event is None:
            raise ValueError("the study adds no noise to its standardisation")
        vector = moment_vector(moments)
        bound = self.sensitivity(float(moments.count))
        sigma = self.noise_multiplier * bound * (1 + 1e-6)
        grid = rounded_gaussian64_granularity(sigma)
        if sigma / (bound + grid * math.sqrt(self.dim)) < self.noise_multiplier:
            raise ValueError("the noise grid is too coarse for the calibration")  # pragma: no cover
        noise = sample_rounded_gaussian64(sigma, self.dim, rng=rng)
        return np.rint(vector / grid) * grid + noise, event

    def pooled(
        self, total: npt.NDArray[np.float64], count: float
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The pooled mean and std (in the features' units) from the summed vector over
        ``count`` rows (public); a noisy sum is clamped to the declared ranges
        (post-processing).

        Raises:
            DataError: no rows, or a sum of the wrong length.
        """
        total = np.asarray(total, np.float64)
        if total.shape != (self.dim,):
            raise DataError(f"standardisation sum of length {total.shape}, expected {self.dim}")
        if not count > 0:
            raise DataError("no rows to standardise")
        d = self.features
        mean_u = total[:d] / count
        var_u = np.maximum(total[d:] / count - mean_u**2, 0.0)
        if self.noise_multiplier is not None:
            mean_u = np.clip(mean_u, -1.0, 1.0)
            var_u = np.clip(var_u, _VAR_FLOOR, 1.0)
        mid, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        std_u = np.sqrt(var_u)
        return mid + half * mean_u, np.where(std_u > 1e-12, half * std_u, 1.0)


def sum_vectors(vectors: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    """The sum of the sites' noised vectors, in the order given (sorted by site name on
    both runtimes, so they add the same floats)."""
    total: npt.NDArray[np.float64] = np.sum(np.asarray(vectors, np.float64), axis=0)
    return total


def moment_vector(moments: FeatureMoments) -> npt.NDArray[np.float64]:
    """``[sums..., sums of squares...]``."""
    return np.concatenate([moments.total, moments.total_sq])


def secure_input(moments: FeatureMoments) -> tuple[npt.NDArray[np.float64], float]:
    """A site's SecAgg+ input and weight: ``[means, mean squares]`` with weight ``n`` (the
    weighted sum is the sum of the moment vectors, the weight total the pooled count)."""
    n = float(moments.count)
    return moment_vector(moments) / n, n


def charge_standardisation(
    ledger: PrivacyLedger,
    study: str,
    site: str,
    event: Event,
    *,
    epsilon: float,
    delta: float,
    accountant: str,
    attempt: int = 1,
) -> None:
    """Charge a site's own ledger scope (``site:<name>``; created with the study's budget
    when the site has none yet) for its standardisation release, before it sends anything.

    Raises:
        BudgetExceeded: the site's budget cannot pay for it (nothing charged).
    """
    scope = site_scope(site)
    if scope not in {b.scope for b in ledger.scopes()}:  # else: the site's own budget
        ledger.create_scope(scope, epsilon, delta, accountant=_accountant_kind(accountant))
    ledger.charge(
        scope,
        event,
        label=f"{study} standardisation: moments of {site}",
        idempotency_key=f"{study}/{site}/standardisation/{attempt}",
    )


def _fields(config: SecAggConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def standardise_in_process(
    plan: StandardisationPlan,
    sites: Mapping[str, LocalSite],
    *,
    study: str,
    ledger: PrivacyLedger | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The pooled mean and std of ``sites``, computed as the coordinator and its site agents
    do: plain moments, each site's noisy vector, or one SecAgg+ round (:func:`secure_sum`)
    with the same plan, noise and charges.

    With DP each site's own scope in ``ledger`` (``site:<name>``) is charged its release
    before the sum is taken; ``ledger=None`` charges nothing (a comparison run, such as the
    baselines of a study that ran over the network).

    Raises:
        BudgetExceeded: a site's budget cannot pay for its release.
        ValueError: a secure round with fewer than 3 sites.
    """

    def charge(site: str, event: Event | None) -> None:
        if ledger is not None and event is not None and plan.epsilon is not None:
            charge_standardisation(
                ledger, study, site, event,
                epsilon=plan.epsilon, delta=plan.delta, accountant=plan.accountant,
            )  # fmt: skip

    if plan.mode is StandardisationMode.PLAIN:
        return global_standardisation([s.feature_moments() for s in sites.values()])
    moments = {name: plan.site_moments(site) for name, site in sites.items()}
    if plan.mode is StandardisationMode.NOISED:
        vectors = []
        for name in sorted(moments):
            vector, event = plan.noised_vector(moments[name])
            charge(name, event)
            vectors.append(vector)
        return plan.pooled(sum_vectors(vectors), sum(m.count for m in moments.values()))
    names = sorted(moments)
    weight_bound = count_bound([m.count for m in moments.values()])
    config = plan.secagg_config(len(names), weight_bound)
    ids = tuple(range(len(names)))
    params = config.plan(ids, plan.dim, max_weight=weight_bound, round_id=bytes(32))
    inputs: dict[int, npt.NDArray[np.float64]] = {}
    weights: dict[int, float] = {}
    for i, name in enumerate(names):
        charge(name, plan.check_secure(params, moments[name].count))
        inputs[i], weights[i] = secure_input(moments[name])
    result = secure_sum(inputs, weights, config)
    return plan.pooled(result.total, result.weight_total)
