"""Where the domain packages meet: the round's privacy pipeline.

* :class:`SecureAggregator` runs SecAgg+ (:mod:`tutela.secagg`) over the sites' updates, so
  the coordinator learns only their weighted sum.
* Client-level DP (DP-FedAvg) and sample-level DP (DP-SGD at each site) are composed here from
  :mod:`tutela.dp`; every spend goes through the privacy ledger before it happens.
* :func:`ledger_summary` is what a site reports (signed) about its own ledger.

Security: with :class:`SecureAggregator` the strategy receives only the weighted mean update
(``FitAggregate.updates is None``); the individual updates exist only inside the SecAgg+
client state machines, which send masked vectors.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from tutela.dp.accounting import AccountantKind, calibrate_noise_multiplier
from tutela.dp.events import (
    ComposedEvent,
    Event,
    GaussianEvent,
    PoissonSampledEvent,
    SelfComposedEvent,
    event_from_dict,
    event_to_dict,
)
from tutela.dp.federated import (
    AdaptiveClipper,
    add_gaussian_noise,
    calibrate_client_level,
    check_quorum,
    clip_update,
    dp_fedavg_event,
)
from tutela.dp.ledger import PrivacyLedger
from tutela.dp.sgd import make_private
from tutela.errors import BudgetExceeded, PolicyViolation, QuorumNotMet
from tutela.fl.records import Parameters, ParameterSpec
from tutela.fl.strategy import ClientUpdate, FitAggregate
from tutela.hazmat.noise import rounded_gaussian32_granularity
from tutela.hazmat.rng import SecureRandom
from tutela.secagg import DropoutPlan, SecAggConfig, secure_sum
from tutela.secagg.client import ClientPolicy
from tutela.secagg.config import RoundParams

if TYPE_CHECKING:
    from tutela.fl.config import StudyConfig


@dataclass
class SecureAggregator:
    """Sample-weighted mean of the updates through one SecAgg+ round per FL round.

    Args:
        config: SecAgg+ settings (k, t, modulus, clip range, dropout tolerance, DDP noise).
        weighted: weight each update by its site's row count (the weight travels masked).
        dropouts: optional per-round dropout plans (simulation and tests).
    """

    config: SecAggConfig
    weighted: bool = True
    dropouts: dict[int, DropoutPlan] = field(default_factory=dict)
    reveals_individual_updates: bool = field(default=False, init=False)
    _reports: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)

    def aggregate(
        self, server_round: int, updates: Sequence[ClientUpdate], reference: Parameters
    ) -> FitAggregate:
        spec = ParameterSpec.of(reference)
        ids = dict(enumerate(updates))
        inputs = {i: spec.flatten(u.update) for i, u in ids.items()}
        weights = {i: float(u.num_examples) for i, u in ids.items()} if self.weighted else None
        result = secure_sum(inputs, weights, self.config, dropouts=self.dropouts.get(server_round))
        if result.weight_total <= 0:
            raise QuorumNotMet("secure aggregation ended with no weight")
        mean = spec.unflatten(result.total / result.weight_total)
        report = result.report()
        report["round"] = server_round
        self._reports.append(report)
        return FitAggregate(
            mean_update=mean,
            num_examples=round(result.weight_total)
            if self.weighted
            else sum(ids[i].num_examples for i in result.survivors),
            num_sites=len(result.survivors),
            updates=None,
        )

    def report(self) -> dict[str, Any] | None:
        """Study-level summary for ``results.json`` (``secure_aggregation`` section)."""
        return summarise_secagg_rounds(self._reports)


def summarise_secagg_rounds(reports: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Fold per-round SecAgg+ reports (each with its ``round``) into the study-level summary."""
    if not reports:
        return None
    last = reports[-1]
    dropped: dict[str, int] = {}
    for r in reports:
        for stage, count in r["dropped_count"].items():
            dropped[stage] = dropped.get(stage, 0) + int(count)
    keep = (
        "protocol", "version", "n", "k", "complete_graph", "threshold", "max_colluding_clients",
        "min_survivors", "modulus_bits", "bytes_per_parameter", "clip", "quantization_step",
    )  # fmt: skip
    return {
        **{k: last[k] for k in keep if k in last},
        "rounds": len(reports),
        "dropped_per_stage": dropped,
        "quantization_error_bound": max(r["quantization_error_bound"] for r in reports),
        "clipped_values": sum(int(r["clipped_values"]) for r in reports),
        "ddp": last.get("ddp"),
        "per_round": [
            {
                "round": r["round"],
                "survivors": r["survivors"],
                "dropped_count": r["dropped_count"],
                "server_cpu_ms": r.get("server_cpu_ms"),
            }
            for r in reports
        ],
    }


def secagg_config_from_study(section: Any) -> SecAggConfig:
    """Translate the study's ``[secure_aggregation]`` section into a :class:`SecAggConfig`."""
    return SecAggConfig(
        neighbors=section.neighbors,
        threshold=section.threshold,
        modulus_bits=section.modulus_bits,
        clip=section.clip_range,
    )


def max_abs_difference(a: Parameters, b: Parameters) -> float:
    """Largest absolute coordinate difference between two parameter sets."""
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)


# -- differential privacy ---------------------------------------------------------------

PrivatizeHook = Callable[[Any, Any, Any, int, int], tuple[Any, Any, Any]]
"""``(model, optimizer, loader, server_round, epochs)``, as in :mod:`tutela.fl.client`."""


def _accountant_kind(name: str) -> AccountantKind:
    return AccountantKind.RDP if name == "rdp" else AccountantKind.PLD


STANDARDISATION_SHARE = 0.1
"""The slice of a private study's epsilon that pays for its standardisation statistics."""


def standardisation_noise_multiplier(epsilon: float, delta: float, accountant: str) -> float:
    """z of the standardisation release: one Gaussian mechanism at a tenth of the study's
    epsilon (:data:`STANDARDISATION_SHARE`), at the study's delta.

    Every party computes it from the study's settings (the sites, which charge it to their
    own ledgers before sending, and the coordinator, which plans the secure round with it).

    The training calibrations (:class:`SampleLevelDP`, :func:`client_level_calibration`)
    leave room for it, so the standardisation and every round together fit the study's
    epsilon.
    """
    return calibrate_noise_multiplier(
        STANDARDISATION_SHARE * epsilon, delta, 1.0, 1, _accountant_kind(accountant)
    )


def standardisation_event(epsilon: float, delta: float, accountant: str) -> Event:
    """The event a site's standardisation release is planned at (what training leaves room
    for); the release itself is at least as noisy (:mod:`tutela.fl.standardisation`)."""
    return GaussianEvent(standardisation_noise_multiplier(epsilon, delta, accountant))


def site_scope(site: str) -> str:
    """The ledger scope of a site's own spends."""
    return f"site:{site}"


def ledger_summary(ledger: PrivacyLedger, scope: str) -> dict[str, Any]:
    """What a site reports about its own ledger scope (JSON-ready; signed in its report).

    Shape: ``{"private": true, "scope", "accountant", "budget_epsilon", "delta",
    "spent_epsilon", "remaining_epsilon", "spends": [SpendRecord.to_dict(), ...]}``, where
    ``spent_epsilon`` is the composition of every spend at the budget's delta.
    """
    budget = ledger.budget(scope)
    spent = ledger.spent(scope)
    return {
        "private": True,
        "scope": scope,
        "accountant": budget.accountant.value,
        "budget_epsilon": budget.epsilon,
        "delta": budget.delta,
        "spent_epsilon": spent,
        "remaining_epsilon": max(0.0, budget.epsilon - spent),
        "spends": [r.to_dict() for r in ledger.records(scope)],
    }


def no_ledger_summary() -> dict[str, Any]:
    """The ledger summary of a site that ran no DP (nothing is charged, nothing claimed)."""
    return {"private": False}


@dataclass
class SampleLevelDP:
    """DP-SGD at every site: record-level DP, one ledger scope and budget per site.

    Each site ``s`` with ``n_s`` rows trains with Poisson sampling rate ``q_s = B / n_s`` and
    a noise multiplier calibrated so that all planned rounds fit its budget. Before a round's
    training starts, exactly the steps the site will run (the round's epochs times the
    batches of its private loader) are charged to scope ``site:<id>`` of the ledger. A round
    asking for more epochs or steps than the plan was calibrated for, or one the remaining
    budget cannot pay for, is refused (``BudgetExceeded``) before any step: a site never
    trains "a little over". Each execution is charged (a re-run of a round is a new release).

    Privacy: (epsilon, delta)-DP per site under add/remove-one-record neighbours, accounted
    with the configured accountant (PLD by default) over ``rounds x local_epochs x
    ceil(n_s / B)`` Poisson-sampled Gaussian steps. Releasing the model trained at other sites
    adds nothing (post-processing); each site's budget is independent (parallel composition
    over disjoint records).
    """

    ledger: PrivacyLedger
    study: str
    epsilon: float
    delta: float
    max_grad_norm: float
    accountant: str
    rounds: int
    local_epochs: int
    batch_size: int
    site_rows: Mapping[str, int]
    dimension: int = 1
    grid: float | None = None
    noise_multipliers: dict[str, float] = field(default_factory=dict, init=False)
    steps_per_round: dict[str, int] = field(default_factory=dict, init=False)
    rounds_charged: dict[str, int] = field(default_factory=dict, init=False)
    steps_charged: dict[str, int] = field(default_factory=dict, init=False)
    standardisation: Event = field(default=GaussianEvent(1.0), init=False)
    """The planned event of the standardisation release each site pays for first."""

    def __post_init__(self) -> None:
        kind = _accountant_kind(self.accountant)
        self.standardisation = standardisation_event(self.epsilon, self.delta, self.accountant)
        for site, n in self.site_rows.items():
            scope = self.scope(site)
            self.ledger.create_scope(
                scope, self.epsilon, self.delta, accountant=kind, exist_ok=True
            )
            q = min(1.0, self.batch_size / n)
            steps = self.local_epochs * max(1, math.ceil(n / self.batch_size))
            self.steps_per_round[site] = steps
            z = calibrate_noise_multiplier(
                (1 - STANDARDISATION_SHARE) * self.epsilon, self.delta, q, steps * self.rounds,
                kind, tolerance=1e-2, value_discretization_interval=self.grid,
            )  # fmt: skip
            # The optimiser rounds noise to a grid, which shrinks the effective multiplier
            # a hair; raise z until the whole planned run, with the standardisation release
            # the site pays for first, fits the budget exactly.
            for _ in range(200):
                total = SelfComposedEvent(
                    PoissonSampledEvent(q, GaussianEvent(self._effective(z))), steps * self.rounds
                )
                planned = ComposedEvent([self.standardisation, total])
                if self.ledger.preview(scope, planned) <= self.epsilon:
                    break
                z *= 1.002
            self.noise_multipliers[site] = z

    def _effective(self, z: float) -> float:
        """The multiplier the optimiser accounts: rounding the noisy sum to the noise grid g
        adds ``g sqrt(d)`` to the sensitivity (see :mod:`tutela.dp.sgd`)."""
        sigma = z * self.max_grad_norm
        grid = rounded_gaussian32_granularity(sigma)
        return sigma / (self.max_grad_norm + grid * math.sqrt(self.dimension))

    def scope(self, site: str) -> str:
        return site_scope(site)

    def hook(self, site: str) -> PrivatizeHook:
        """The privatize hook :class:`~tutela.fl.client.LocalSite` calls each round.

        The hook raises :class:`BudgetExceeded` (nothing charged, nothing trained) when the
        round's ``epochs`` exceed the planned ``local_epochs``, its steps exceed the planned
        steps per round, or the ledger cannot pay for them.
        """

        def privatize(
            model: Any, optimizer: Any, loader: Any, server_round: int, epochs: int
        ) -> tuple[Any, Any, Any]:
            if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
                raise ValueError("epochs must be a positive int")
            if epochs > self.local_epochs:
                raise BudgetExceeded(
                    f"round {server_round} asks {site} for {epochs} local epochs but its "
                    f"privacy plan is calibrated for {self.local_epochs} per round; the round "
                    "is refused and nothing was spent"
                )
            private = make_private(
                model,
                optimizer,
                loader,
                noise_multiplier=self.noise_multipliers[site],
                max_grad_norm=self.max_grad_norm,
                accountant=_accountant_kind(self.accountant),
            )
            steps = epochs * len(private.data_loader)
            if steps > self.steps_per_round[site]:
                raise BudgetExceeded(
                    f"round {server_round} would run {steps} DP-SGD steps at {site} but its "
                    f"privacy plan is calibrated for {self.steps_per_round[site]} per round; "
                    "the round is refused and nothing was spent"
                )
            self.ledger.charge(
                self.scope(site),
                SelfComposedEvent(private.optimizer.event, steps),
                label=f"{self.study} round {server_round}: DP-SGD at {site}, {steps} steps",
                idempotency_key=f"{self.study}/{site}/round-{server_round}/{uuid.uuid4().hex}",
            )
            self.rounds_charged[site] = self.rounds_charged.get(site, 0) + 1
            self.steps_charged[site] = self.steps_charged.get(site, 0) + steps
            return private.module, private.optimizer, private.data_loader

        return privatize

    def ledger_summary(self, site: str) -> dict[str, Any]:
        """``site``'s own ledger scope, as it reports it (:func:`ledger_summary`)."""
        return ledger_summary(self.ledger, self.scope(site))

    def report(self) -> dict[str, Any]:
        """The ``privacy`` section of ``results.json``."""
        per_site: dict[str, Any] = {}
        for site, n in self.site_rows.items():
            per_site[site] = {
                "epsilon": self.ledger.spent(self.scope(site)),
                "delta": self.delta,
                "noise_multiplier": self.noise_multipliers[site],
                "sample_rate": min(1.0, self.batch_size / n),
                "steps": self.steps_charged.get(site, 0),
                "rounds_charged": self.rounds_charged.get(site, 0),
                "max_grad_norm": self.max_grad_norm,
                "budget_epsilon": self.epsilon,
                "budget_left": self.ledger.remaining(self.scope(site)),
            }
        return {
            "private": True,
            "level": "record (sample-level DP at each site)",
            "mechanism": "DP-SGD: Poisson sampling, per-example clipping, Gaussian noise (CSPRNG)",
            "neighbouring": "add/remove one patient record at one site",
            "accountant": self.accountant,
            "epsilon": max((s["epsilon"] for s in per_site.values()), default=0.0),
            "target_epsilon": self.epsilon,
            "delta": self.delta,
            "max_grad_norm": self.max_grad_norm,
            "per_site": per_site,
            "ledger": "ledger.sqlite",
        }


WITHIN_CLIP = "within_clip"
"""Metric a site reports with its clipped update (central noise): 1.0 if its update's norm
was within the round's clip norm, else 0.0 (the adaptive-clipping indicator b_i)."""

ROUND_CLIP = "dp_clip_norm"
ROUND_NOISE = "dp_noise_multiplier"
"""Fit-config keys of a DP-FedAvg round: the clip norm every site clips to, and the noise
multiplier the release will carry (each site checks it against its own calibration)."""


def client_level_calibration(
    epsilon: float,
    delta: float,
    expected_sites: int,
    rounds: int,
    accountant: str,
    *,
    adaptive: bool,
) -> tuple[float, float | None]:
    """The noise multiplier z of the update sum and, with adaptive clipping, the std of the
    centred clip count (``None`` without): what the coordinator and every site compute from
    the same study settings (1% above the calibrated z, which absorbs the rounding terms),
    leaving room for the standardisation release (:func:`standardisation_noise_multiplier`).
    """
    count_std = None
    if adaptive:
        # Size the clip count's noise from the study, not a constant: the count gets about a
        # tenth of the noise budget (its std twice the plain calibration's z, for the centred
        # indicator of sensitivity 1/2), and at least expected_sites / 20 (Andrew et al.).
        plain = calibrate_client_level(
            epsilon, delta, expected_sites, expected_sites, rounds,
            accountant=_accountant_kind(accountant),
        )  # fmt: skip
        count_std = max(1.0, expected_sites / 20, 2.0 * plain)
    z = calibrate_client_level(
        epsilon,
        delta,
        expected_sites,
        expected_sites,
        rounds,
        count_noise_std=count_std,
        accountant=_accountant_kind(accountant),
    )
    # Carve out the standardisation release: every event here is a Gaussian at sampling
    # rate 1, so the study composes exactly into one Gaussian whose 1/z^2 is the sum of its
    # parts; the rounds give up 1/z_s^2 of it, spread over the rounds.
    z_s = standardisation_noise_multiplier(epsilon, delta, accountant)
    rest = z**-2 - z_s**-2 / rounds
    if rest <= 0:  # pragma: no cover - a tenth of epsilon is far less than the whole
        raise ValueError("the standardisation slice leaves no budget for the rounds")
    return rest**-0.5 * 1.01, count_std


def count_scale(sigma: float, clip: float, count_noise_std: float | None) -> float | None:
    """Scale s of the centred count inside SecAgg+ (``None`` without adaptive clipping).

    The count coordinate gets the same noise std as every coordinate (``sigma``), so in
    count units its std is ``sigma / s``; ``s = sigma / sigma_b`` makes it ``sigma_b``, and
    ``s <= 2 C`` keeps ``(b_i - 1/2) s`` inside the coordinate clip range ``[-C, C]``.
    """
    if count_noise_std is None:
        return None
    return min(sigma / count_noise_std, 2.0 * clip)


def guaranteed_sigma(params: RoundParams) -> float:
    """The least noise std on each coordinate of a SecAgg+ round's released sum (real units):
    each survivor's discrete-Gaussian share, at the round's ``min_survivors``."""
    step = params.max_weight / params.scale
    return math.sqrt(params.noise_variance) * step * math.sqrt(params.min_survivors)


def secure_round_event(params: RoundParams, clip: float, dim: int, scale: float | None) -> Event:
    """The event the distributed noise guarantees for one round.

    The noise on each coordinate of the released sum is at least the per-site share
    times ``sqrt(min_survivors)`` (``g``). Stochastic rounding to the step ``u`` can grow
    one site's L2 contribution by ``u sqrt(dim)`` over the update, and by ``u`` on the
    count coordinate. The update sum (sensitivity ``C``) is ``GaussianEvent(g / (C + u
    sqrt(dim)))``; with adaptive clipping the centred count (sensitivity ``s / 2`` in
    coordinate units) adds ``GaussianEvent(g / (s / 2 + u))``, and the round is their
    composition (one site's change to both is bounded separately, so composing the two
    Gaussians is exact for the joint vector).
    """
    step = params.max_weight / params.scale
    guaranteed = guaranteed_sigma(params)
    update = GaussianEvent(guaranteed / (clip + step * math.sqrt(dim)))
    if scale is None:
        return update
    return ComposedEvent([update, GaussianEvent(guaranteed / (scale / 2 + step))])


def central_round_event(noise_multiplier: float, dim: int, count_noise_std: float | None) -> Event:
    """The event of one round with the noise added to the sum of clipped updates by the
    coordinator (and, with adaptive clipping, to the clip count)."""
    return dp_fedavg_event(noise_multiplier, 1.0, 1, dimension=dim, count_noise_std=count_noise_std)


def clip_for_round(update: Parameters, clip: float) -> tuple[Parameters, int]:
    """A site's update clipped to the round's clip norm (float32) and its indicator b_i."""
    clipped, norm = clip_update(update, clip)
    return {k: np.asarray(v, np.float32) for k, v in clipped.items()}, int(norm <= clip)


def secure_input(
    spec: ParameterSpec, clipped: Parameters, indicator: int, scale: float | None
) -> np.ndarray[Any, Any]:
    """What a site contributes to a DP-FedAvg SecAgg+ round: its clipped update, flat, and
    with adaptive clipping its centred indicator ``(b_i - 1/2) s`` as one more coordinate."""
    flat = spec.flatten(clipped)
    return flat if scale is None else np.append(flat, (indicator - 0.5) * scale)


@dataclass
class ClientLevelDP:
    """DP-FedAvg (client-level DP): clip each site's update, noise the sum, fixed denominator.

    Without secure aggregation the coordinator adds Gaussian noise of std ``z C`` to the sum of
    clipped updates. With SecAgg+ the noise is *distributed*: each site adds its share of
    discrete Gaussian noise before masking, so the coordinator never sees an un-noised sum;
    the round is accounted with the noise guaranteed at the protocol's minimum survivors.

    With adaptive clipping each site also reports whether its update was within the clip
    (b_i). Without SecAgg+ the coordinator adds Gaussian noise of std ``sigma_b`` to their
    centred sum; with SecAgg+ each site appends ``(b_i - 1/2) * s`` to its masked vector, so
    the centred count is released only inside the noisy sum, with noise std
    ``sigma / s >= sigma_b`` in count units (``s = min(sigma / sigma_b, 2 C)``). Either way the
    round is charged the composed event: the Gaussian on the update sum and the Gaussian
    count query (:func:`secure_round_event`).

    The same object is the coordinator's side in every runtime: in process
    :meth:`aggregate` runs the whole round; through the coordinator the central path calls
    :meth:`aggregate` on the sites' (already clipped) updates and the SecAgg+ path calls
    :meth:`plan_secure` and :meth:`release_secure` around the networked protocol. The sites'
    side (clipping, their noise share, their own ledger) is :class:`SiteClientDP`.

    Args:
        rng: the central noise source (the update sum and the clip count); a fresh OS-keyed
            generator by default. Seed it only in tests.

    Privacy: (epsilon, delta)-DP under add/remove one *site's whole dataset*, every round
    charged to scope ``study:<name>`` before the noisy mean is released, after the
    standardisation release (charged when the object is made; its slice is carved out of
    the calibration, :func:`client_level_calibration`). Accounting uses
    sampling rate 1 (no amplification is claimed). A round with fewer replies than the
    planned ``expected_sites`` is refused (``QuorumNotMet``): less noise or a smaller
    denominator than calibrated would void the guarantee.
    """

    ledger: PrivacyLedger
    study: str
    epsilon: float
    delta: float
    clip_norm: float
    accountant: str
    rounds: int
    expected_sites: int
    adaptive: bool = False
    target_quantile: float = 0.5
    secagg: SecAggConfig | None = None
    rng: SecureRandom | None = field(default=None, repr=False)
    simulated_site_ledgers: bool = False
    noise_multiplier: float = field(default=0.0, init=False)
    reveals_individual_updates: bool = field(default=False, init=False)
    _clipper: AdaptiveClipper | None = field(default=None, init=False, repr=False)
    _secagg_rounds: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    _rounds: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    _events: dict[int, Event] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        kind = _accountant_kind(self.accountant)
        self.ledger.create_scope(
            self.scope, self.epsilon, self.delta, accountant=kind, exist_ok=True
        )
        self.noise_multiplier, count_std = client_level_calibration(
            self.epsilon, self.delta, self.expected_sites, self.rounds, self.accountant,
            adaptive=self.adaptive,
        )  # fmt: skip
        # The standardisation release comes first and is planned from the study alone: its
        # event is on the study's ledger from the start (as on every site's own ledger).
        self.ledger.charge(
            self.scope,
            standardisation_event(self.epsilon, self.delta, self.accountant),
            label=f"{self.study} standardisation: the pooled feature moments",
            idempotency_key=f"{self.study}/standardisation",
        )
        if self.adaptive:
            self._clipper = AdaptiveClipper(
                clip_norm=self.clip_norm,
                target_quantile=self.target_quantile,
                count_noise_std=float(count_std or 1.0),
                expected_clients=float(self.expected_sites),
                rng=self.rng if self.rng is not None else SecureRandom(),
            )

    @property
    def scope(self) -> str:
        return f"study:{self.study}"

    @property
    def current_clip(self) -> float:
        """The clip norm of the next round (it moves with adaptive clipping)."""
        return self._clipper.clip_norm if self._clipper is not None else self.clip_norm

    @property
    def count_noise_std(self) -> float | None:
        return self._clipper.count_noise_std if self._clipper is not None else None

    def round_config(self) -> dict[str, float]:
        """What the next round's fit config tells every site: its clip norm and noise."""
        return {ROUND_CLIP: self.current_clip, ROUND_NOISE: self.noise_multiplier}

    def aggregate(
        self, server_round: int, updates: Sequence[ClientUpdate], reference: Parameters
    ) -> FitAggregate:
        check_quorum(len(updates), self.expected_sites)
        clip = self.current_clip
        spec = ParameterSpec.of(reference)
        clipped: list[Parameters] = []
        indicators: list[int] = []
        for u in updates:
            c, b = clip_for_round(u.update, clip)  # a no-op on an update its site clipped
            clipped.append(c)
            reported = u.metrics.get(WITHIN_CLIP)
            indicators.append(b if reported is None else int(reported == 1.0))
        examples = sum(u.num_examples for u in updates)
        if self.secagg is not None:
            ids = tuple(range(len(updates)))
            self.plan_secure(server_round, ids, spec.size, bytes(32))
            self._charge_sites(server_round, updates)
            scale = self._count_scale(clip)
            inputs = {
                i: secure_input(spec, p, b, scale)
                for i, (p, b) in enumerate(zip(clipped, indicators, strict=True))
            }
            result = secure_sum(inputs, None, self._secure_config(clip))
            self._secagg_rounds.append({**result.report(), "round": server_round})
            return self.release_secure(
                server_round, result.total, spec, result.params, examples, len(updates)
            )
        self._charge(
            server_round,
            central_round_event(self.noise_multiplier, spec.size, self.count_noise_std),
        )
        self._charge_sites(server_round, updates)
        # in the spec's (sorted) order, so the noise lands on the same coordinates whatever
        # order a runtime holds the parameters in
        summed = {k: np.sum([p[k].astype(np.float64) for p in clipped], axis=0) for k in spec.names}
        noisy = add_gaussian_noise(summed, self.noise_multiplier * clip, rng=self.rng)
        record: dict[str, Any] = {"distributed": False}
        if self._clipper is not None:
            record["count_noise_std"] = self._clipper.count_noise_std
            self._clipper.update(indicators)  # adds noise of std sigma_b to the count
        return self._release(server_round, clip, spec.flatten(noisy), spec, record, examples,
                             len(updates))  # fmt: skip

    def _secure_config(self, clip: float) -> SecAggConfig:
        if self.secagg is None:
            raise ValueError("this study adds its noise centrally (no secure aggregation)")
        sigma = self.noise_multiplier * clip
        return replace(self.secagg, clip=clip, ddp_sigma=sigma, dropout_tolerance=0.0)

    def _count_scale(self, clip: float) -> float | None:
        return count_scale(self.noise_multiplier * clip, clip, self.count_noise_std)

    def plan_secure(
        self,
        server_round: int,
        client_ids: tuple[int, ...],
        size: int,
        round_id: bytes,
        *,
        stage_timeout_s: float | None = None,
    ) -> RoundParams:
        """Plan the round's SecAgg+ (noise sized for every invited site, none may drop) and
        charge the study's ledger for what it will release.

        Raises:
            QuorumNotMet: fewer sites than the calibration assumed (nothing charged).
            BudgetExceeded: the study's budget cannot pay for the round.
        """
        check_quorum(len(client_ids), self.expected_sites)
        clip = self.current_clip
        config = self._secure_config(clip)
        if stage_timeout_s is not None:
            config = replace(config, stage_timeout_s=stage_timeout_s)
        scale = self._count_scale(clip)
        dim = size + (0 if scale is None else 1)
        params = config.plan(client_ids, dim, max_weight=1.0, round_id=round_id)
        self._charge(server_round, secure_round_event(params, clip, size, scale))
        return params

    def release_secure(
        self,
        server_round: int,
        total: np.ndarray[Any, Any],
        spec: ParameterSpec,
        params: RoundParams,
        num_examples: int,
        survivors: int,
    ) -> FitAggregate:
        """The round's noisy mean from the SecAgg+ sum (update coordinates, then the count).

        Raises:
            QuorumNotMet: fewer survivors than the calibration assumed.
        """
        check_quorum(survivors, self.expected_sites)
        clip = self.current_clip
        record: dict[str, Any] = {"distributed": True}
        scale = self._count_scale(clip)
        if scale is not None and self._clipper is not None:
            record["count_scale"] = scale
            record["count_noise_std"] = guaranteed_sigma(params) / scale
            self._clipper.update_from_noisy_count(float(total[spec.size]) / scale)
        return self._release(
            server_round, clip, np.asarray(total[: spec.size], np.float64), spec, record,
            num_examples, survivors,
        )  # fmt: skip

    def _release(
        self,
        server_round: int,
        clip: float,
        noisy_total: np.ndarray[Any, Any],
        spec: ParameterSpec,
        record: dict[str, Any],
        num_examples: int,
        num_sites: int,
    ) -> FitAggregate:
        self._rounds.append(
            {
                "round": server_round,
                "clip_norm": clip,
                "noise_std_on_sum": self.noise_multiplier * clip,
                **record,
                "event": event_to_dict(self._events[server_round]),
                "clip_norm_after": self.current_clip,
            }
        )
        mean = spec.unflatten(noisy_total / self.expected_sites)
        return FitAggregate(mean, num_examples, num_sites, None)

    def _charge_sites(self, server_round: int, updates: Sequence[ClientUpdate]) -> None:
        """In process, the simulated sites' own ledgers: each participant's scope
        ``site:<name>`` is charged the round's event, as a deployed site's
        :class:`SiteClientDP` charges its own ledger (what each site signs in its report)."""
        if not self.simulated_site_ledgers:
            return
        event = self._events[server_round]
        for u in updates:
            scope = site_scope(u.site)
            self.ledger.create_scope(
                scope, self.epsilon, self.delta, accountant=_accountant_kind(self.accountant),
                exist_ok=True,
            )  # fmt: skip
            self.ledger.charge(
                scope,
                event,
                label=f"{self.study} round {server_round}: DP-FedAvg at {u.site}",
                idempotency_key=f"{self.study}/{u.site}/dp-fedavg/round-{server_round}",
            )

    def site_ledger(self, site: str) -> dict[str, Any]:
        """A simulated site's own ledger summary (``no_ledger_summary`` if it never took
        part)."""
        scope = site_scope(site)
        if not self.simulated_site_ledgers or scope not in {b.scope for b in self.ledger.scopes()}:
            return no_ledger_summary()
        return ledger_summary(self.ledger, scope)

    def _charge(self, server_round: int, event: Event) -> None:
        self.ledger.charge(
            self.scope,
            event,
            label=f"{self.study} round {server_round}: DP-FedAvg release",
            idempotency_key=f"{self.study}/dp-fedavg/round-{server_round}",
        )
        self._events[server_round] = event

    def state(self) -> list[dict[str, Any]]:
        """Every released round (JSON-ready): its clip norm, noise, the event charged for it
        and the clip norm after it. :meth:`restore` rebuilds the ledger and the adaptive
        clip from it (a restarted coordinator; the network runner's report)."""
        return [dict(r) for r in self._rounds]

    def restore(self, rounds: Sequence[Mapping[str, Any]]) -> None:
        """Inverse of :meth:`state` on a fresh object: charge each round's event again
        (idempotent per round) and move the clip norm to where the last round left it."""
        for r in rounds:
            n = int(r["round"])
            if any(int(mine["round"]) == n for mine in self._rounds):
                continue
            self._charge(n, event_from_dict(r["event"]))
            if self._clipper is not None:
                self._clipper.clip_norm = float(r["clip_norm_after"])
            self._rounds.append(dict(r))

    def report(self) -> dict[str, Any]:
        spent = self.ledger.spent(self.scope)
        hidden = ("event", "clip_norm_after")
        out: dict[str, Any] = {
            "private": True,
            "budget_left": self.ledger.remaining(self.scope),
            "level": "client (site-level DP-FedAvg)",
            "mechanism": "DP-FedAvg: L2 clipping per site, Gaussian noise on the sum"
            + (
                " (distributed discrete Gaussian inside SecAgg+)"
                if self.secagg
                else " (added by the coordinator)"
            ),
            "neighbouring": "add/remove one site's whole dataset",
            "accountant": self.accountant,
            "epsilon": spent,
            "target_epsilon": self.epsilon,
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "clip_norm": self.clip_norm,
            "adaptive_clipping": self.adaptive,
            "expected_sites": self.expected_sites,
            "rounds": [{k: v for k, v in r.items() if k not in hidden} for r in self._rounds],
            "ledger": "ledger.sqlite",
        }
        return out

    def secure_report(self) -> dict[str, Any] | None:
        return summarise_secagg_rounds(self._secagg_rounds)


def expected_sites(config: StudyConfig) -> int:
    """How many sites every DP-FedAvg round of ``config`` counts on (the fixed denominator
    and the number of noise shares): the sites the strategy samples per round."""
    t = config.training
    return min(
        config.data.sites, max(t.min_fit_sites, math.ceil(t.fraction_fit * config.data.sites))
    )


def client_level_dp(
    config: StudyConfig, ledger: PrivacyLedger, *, rng: SecureRandom | None = None
) -> ClientLevelDP:
    """The coordinator's DP-FedAvg for ``config`` (``privacy.mode = "client"``), in process
    and through the coordinator alike."""
    p = config.privacy
    if p.mode != "client" or p.epsilon is None:
        raise ValueError("the study does not ask for client-level DP")
    secagg = (
        secagg_config_from_study(config.secure_aggregation)
        if config.secure_aggregation.protocol == "secagg+"
        else None
    )
    return ClientLevelDP(
        ledger,
        config.study.name,
        p.epsilon,
        p.delta,
        p.clip_norm,
        p.accountant,
        config.training.rounds,
        expected_sites(config),
        adaptive=p.adaptive_clipping,
        target_quantile=p.target_quantile,
        secagg=secagg,
        rng=rng,
    )


@dataclass
class SiteClientDP:
    """A site's own part of DP-FedAvg: it clips, adds its noise share and charges its ledger.

    The site computes the study's calibration itself (:func:`client_level_calibration`, the
    same settings the coordinator reads) and, for each round, before anything leaves it:

    - checks the round against it: the clip norm in the fit config is positive and finite,
      the noise multiplier the config states is not below the calibration (central noise),
      and under SecAgg+ the plan's noise on the sum is at least ``z C`` with at least
      ``expected_sites`` survivors, none allowed to drop, for the vector it will send;
      otherwise the round is refused (:class:`PolicyViolation`): nothing is charged,
      trained or sent;
    - charges its own ledger (scope ``site:<id>``) the round's event, computed by the same
      functions as the coordinator's side (:func:`central_round_event`,
      :func:`secure_round_event`); a round the budget cannot pay for is refused
      (:class:`BudgetExceeded`);
    - clips its update to the round's clip norm (:func:`clip_for_round`) and, under
      SecAgg+, contributes :func:`secure_input` with weight 1 (its noise share is added by
      its SecAgg+ client from the plan it checked).

    Privacy: the site's ledger bounds what the study's releases reveal about its whole
    dataset, under the same add/remove-one-site relation as the study's ledger. With central
    noise the site trusts the coordinator to add the noise it stated (the coordinator sees
    each clipped update); under SecAgg+ no coordinator can lower the noise below what the
    site charged for.
    """

    ledger: PrivacyLedger
    study: str
    site: str
    epsilon: float
    delta: float
    accountant: str
    rounds: int
    expected_sites: int
    dimension: int
    adaptive: bool = False
    secure: bool = False
    budget_epsilon: float | None = None
    noise_multiplier: float = field(default=0.0, init=False)
    count_noise_std: float | None = field(default=None, init=False)
    rounds_charged: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.ledger.create_scope(
            self.scope,
            self.epsilon if self.budget_epsilon is None else self.budget_epsilon,
            self.delta,
            accountant=_accountant_kind(self.accountant),
            exist_ok=True,
        )
        self.noise_multiplier, self.count_noise_std = client_level_calibration(
            self.epsilon, self.delta, self.expected_sites, self.rounds, self.accountant,
            adaptive=self.adaptive,
        )  # fmt: skip

    @property
    def scope(self) -> str:
        return site_scope(self.site)

    def round_clip(self, config: Mapping[str, Any]) -> float:
        """The round's clip norm from its fit config (refused when missing or invalid)."""
        clip = config.get(ROUND_CLIP)
        if isinstance(clip, bool) or not isinstance(clip, int | float):
            raise PolicyViolation(f"DP-FedAvg round refused: no valid {ROUND_CLIP} in its config")
        if not (math.isfinite(clip) and clip > 0):
            raise PolicyViolation(f"DP-FedAvg round refused: clip norm {clip!r} is not positive")
        return float(clip)

    def secagg_policy(self, clip: float, floor: ClientPolicy) -> ClientPolicy:
        """The SecAgg+ client's floor for this round: the site's own threshold floor, no
        fewer survivors than the calibration assumed and at least ``z C`` of noise."""
        return replace(
            floor,
            min_survivors=max(floor.min_survivors, self.expected_sites),
            min_ddp_sigma=max(floor.min_ddp_sigma, self.noise_multiplier * clip * (1 - 1e-9)),
        )

    def charge_central(self, server_round: int, attempt: int, config: Mapping[str, Any]) -> float:
        """Check a central-noise round's config and charge it; return its clip norm."""
        clip = self.round_clip(config)
        stated = config.get(ROUND_NOISE)
        if (
            isinstance(stated, bool)
            or not isinstance(stated, int | float)
            or not stated >= self.noise_multiplier * (1 - 1e-9)
        ):
            raise PolicyViolation(
                f"DP-FedAvg round {server_round} refused: its noise multiplier {stated!r} is "
                f"below the {self.noise_multiplier:.6g} the study's calibration requires"
            )
        event = central_round_event(self.noise_multiplier, self.dimension, self.count_noise_std)
        self._charge(server_round, attempt, event)
        return clip

    def charge_secure(
        self, server_round: int, attempt: int, config: Mapping[str, Any], params: RoundParams
    ) -> float:
        """Check a SecAgg+ round's plan and charge it; return its clip norm."""
        clip = self.round_clip(config)
        scale = self.count_scale(clip)
        want_dim = self.dimension + (0 if scale is None else 1)
        sigma = guaranteed_sigma(params)
        reasons = []
        if params.min_survivors < self.expected_sites or params.min_survivors < params.n:
            reasons.append(
                f"min_survivors {params.min_survivors} of {params.n} (the calibration assumes "
                f"all of at least {self.expected_sites} sites)"
            )
        if not sigma >= self.noise_multiplier * clip * (1 - 1e-9):
            reasons.append(
                f"noise {sigma:.6g} on the sum is below the {self.noise_multiplier * clip:.6g} "
                "the study's calibration requires"
            )
        if params.dim != want_dim:
            reasons.append(f"vector length {params.dim}, the site sends {want_dim}")
        if params.max_weight != 1.0:
            reasons.append(f"max_weight {params.max_weight} (DP-FedAvg sums with weight 1)")
        if reasons:
            raise PolicyViolation(f"DP-FedAvg round {server_round} refused: " + "; ".join(reasons))
        self._charge(server_round, attempt, secure_round_event(params, clip, self.dimension, scale))
        return clip

    def count_scale(self, clip: float) -> float | None:
        return count_scale(self.noise_multiplier * clip, clip, self.count_noise_std)

    def _charge(self, server_round: int, attempt: int, event: Event) -> None:
        self.ledger.charge(
            self.scope,
            event,
            label=f"{self.study} round {server_round}: DP-FedAvg release of {self.site}",
            idempotency_key=f"{self.study}/{self.site}/dp-fedavg/round-{server_round}/{attempt}",
        )
        self.rounds_charged += 1

    def ledger_summary(self) -> dict[str, Any]:
        """This site's own ledger scope, as it reports it (:func:`ledger_summary`)."""
        return ledger_summary(self.ledger, self.scope)
