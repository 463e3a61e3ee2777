"""Sample-level DP: DP-SGD at every site, planned and charged per site.

Privacy: (epsilon, delta)-DP per site under add/remove-one-record neighbours, over every
planned round's Poisson-sampled Gaussian steps and the standardisation release the site pays
for first; each site's budget is independent (parallel composition over disjoint records).
See :class:`SampleLevelDP`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tutela.dp.accounting import AccountantKind, calibrate_noise_multiplier
from tutela.dp.events import (
    ComposedEvent,
    Event,
    GaussianEvent,
    PoissonSampledEvent,
    SelfComposedEvent,
)
from tutela.dp.ledger import PrivacyLedger
from tutela.dp.sgd import make_private
from tutela.errors import BudgetExceeded
from tutela.fl.privacy.budget import (
    STANDARDISATION_SHARE,
    _accountant_kind,
    standardisation_event,
)
from tutela.fl.privacy.ledgers import ledger_summary, site_scope
from tutela.hazmat.noise import rounded_gaussian32_granularity

PrivatizeHook = Callable[[Any, Any, Any, int, int], tuple[Any, Any, Any]]
"""``(model, optimizer, loader, server_round, epochs)``, as in :mod:`tutela.fl.client`."""


@dataclass(frozen=True)
class DPSGDTraining:
    """A site's DP-SGD for one round, as planned: its noise multiplier and clip norm, and
    the refusal of a round beyond its planned epochs or steps. It charges nothing: the
    :class:`SiteHook` that wraps it charges the site's ledger, here or, on Ray, in the
    driver before the round is dispatched.

    Calling it returns the private drop-ins and the steps they will run.
    """

    site: str
    noise_multiplier: float
    max_grad_norm: float
    accountant: AccountantKind
    local_epochs: int
    steps_per_round: int

    def wrap(
        self, model: Any, optimizer: Any, loader: Any, server_round: int, epochs: int
    ) -> tuple[Any, int]:
        """``(private, steps)``; raises :class:`BudgetExceeded` beyond the plan."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError("epochs must be a positive int")
        if epochs > self.local_epochs:
            raise BudgetExceeded(
                f"round {server_round} asks {self.site} for {epochs} local epochs but its "
                f"privacy plan is calibrated for {self.local_epochs} per round; the round "
                "is refused and nothing was spent"
            )
        private = make_private(
            model,
            optimizer,
            loader,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            accountant=self.accountant,
        )
        steps = epochs * len(private.data_loader)
        if steps > self.steps_per_round:
            raise BudgetExceeded(
                f"round {server_round} would run {steps} DP-SGD steps at {self.site} but its "
                f"privacy plan is calibrated for {self.steps_per_round} per round; "
                "the round is refused and nothing was spent"
            )
        return private, steps

    def __call__(
        self, model: Any, optimizer: Any, loader: Any, server_round: int, epochs: int
    ) -> tuple[Any, Any, Any]:
        private, _ = self.wrap(model, optimizer, loader, server_round, epochs)
        return private.module, private.optimizer, private.data_loader


@dataclass(frozen=True)
class SiteHook:
    """The privatize hook of one site: plan the round's DP-SGD, charge the site's ledger for
    exactly its steps, then hand back the private drop-ins (nothing is trained or charged
    when the plan or the budget refuses)."""

    plan: SampleLevelDP
    site: str

    def __call__(
        self, model: Any, optimizer: Any, loader: Any, server_round: int, epochs: int
    ) -> tuple[Any, Any, Any]:
        training = self.plan.training(self.site)
        private, steps = training.wrap(model, optimizer, loader, server_round, epochs)
        self.plan._charge(self.site, server_round, private, steps)
        return private.module, private.optimizer, private.data_loader


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

    def hook(self, site: str) -> SiteHook:
        """The privatize hook :class:`~tutela.fl.client.LocalSite` calls each round.

        The hook raises :class:`BudgetExceeded` (nothing charged, nothing trained) when the
        round's ``epochs`` exceed the planned ``local_epochs``, its steps exceed the planned
        steps per round, or the ledger cannot pay for them.
        """
        return SiteHook(self, site)

    def training(self, site: str) -> DPSGDTraining:
        """What ``site`` runs once its round is charged: DP-SGD at its planned noise
        multiplier, checked against its plan, with no ledger (for a worker that trains a
        round this process has charged, see :class:`~tutela.fl.ray_backend.RayBackend`)."""
        return DPSGDTraining(
            site, self.noise_multipliers[site], self.max_grad_norm,
            _accountant_kind(self.accountant), self.local_epochs, self.steps_per_round[site],
        )  # fmt: skip

    def _charge(self, site: str, server_round: int, private: Any, steps: int) -> None:
        self.ledger.charge(
            self.scope(site),
            SelfComposedEvent(private.optimizer.event, steps),
            label=f"{self.study} round {server_round}: DP-SGD at {site}, {steps} steps",
            idempotency_key=f"{self.study}/{site}/round-{server_round}/{uuid.uuid4().hex}",
        )
        self.rounds_charged[site] = self.rounds_charged.get(site, 0) + 1
        self.steps_charged[site] = self.steps_charged.get(site, 0) + steps

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
