"""Client-level DP (DP-FedAvg), the coordinator's side: :class:`ClientLevelDP`.

Privacy: (epsilon, delta)-DP under add/remove one site's whole dataset; every round is
charged to the study's ledger scope before its noisy mean is released, after the
standardisation release, at sampling rate 1 (no amplification claimed). A round with fewer
sites than the calibration assumed is refused. See :class:`ClientLevelDP`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from tutela.dp.events import Event, event_from_dict, event_to_dict
from tutela.dp.federated import AdaptiveClipper, add_gaussian_noise, check_quorum
from tutela.dp.ledger import PrivacyLedger
from tutela.fl.privacy.budget import _accountant_kind, standardisation_event
from tutela.fl.privacy.fedavg import (
    ROUND_CLIP,
    ROUND_NOISE,
    WITHIN_CLIP,
    central_round_event,
    client_level_calibration,
    clip_for_round,
    count_scale,
    guaranteed_sigma,
    secure_input,
    secure_round_event,
)
from tutela.fl.privacy.ledgers import ledger_summary, no_ledger_summary, site_scope
from tutela.fl.privacy.secure import secagg_config_from_study, summarise_secagg_rounds
from tutela.fl.records import Parameters, ParameterSpec
from tutela.fl.strategy import ClientUpdate, FitAggregate
from tutela.hazmat.rng import SecureRandom
from tutela.secagg import SecAggConfig, secure_sum
from tutela.secagg.config import RoundParams
from tutela.secagg.simulate import ClientHosts

if TYPE_CHECKING:
    from tutela.fl.config import StudyConfig


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
        client_hosts: where the simulated sites' SecAgg+ clients run in process (e.g. the
            Ray backend's workers); this process by default.

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
    client_hosts: ClientHosts | None = field(default=None, repr=False)
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
            result = secure_sum(inputs, None, self._secure_config(clip), hosts=self.client_hosts)
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
