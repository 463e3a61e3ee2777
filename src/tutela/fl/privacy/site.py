"""Client-level DP (DP-FedAvg), a site's side: :class:`SiteClientDP`.

Privacy: the site's own ledger bounds what the study's releases reveal about its whole
dataset (add/remove one site); it checks each round against its own calibration and charges
the round before anything leaves it, refusing a round with less noise than it requires.
See :class:`SiteClientDP`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tutela.dp.events import Event
from tutela.dp.ledger import PrivacyLedger
from tutela.errors import PolicyViolation
from tutela.fl.privacy.budget import _accountant_kind
from tutela.fl.privacy.fedavg import (
    ROUND_CLIP,
    ROUND_NOISE,
    central_round_event,
    client_level_calibration,
    count_scale,
    guaranteed_sigma,
    secure_round_event,
)
from tutela.fl.privacy.ledgers import ledger_summary, site_scope
from tutela.secagg.client import ClientPolicy
from tutela.secagg.config import RoundParams


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
