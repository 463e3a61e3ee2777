"""The round engine: sample sites, collect updates, aggregate, evaluate, repeat.

The engine is transport-agnostic: a site is any :class:`~tutela.fl.client.SiteClient`
(in-process for simulation and tests, an HTTPS proxy in deployment). How the round's updates
become one mean (plainly, or clipped + noised + securely summed) is an
:class:`UpdateAggregator`, so the privacy pipeline is composed, not hard-wired.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tutela.errors import ConfigError, QuorumNotMet, TutelaError
from tutela.fl.client import SiteClient
from tutela.fl.records import FitRes, Metrics, Parameters, check_compatible, subtract
from tutela.fl.strategy import ClientUpdate, FitAggregate, Strategy


class UpdateAggregator(Protocol):
    """Turns one round's site updates into the :class:`FitAggregate` a strategy sees."""

    reveals_individual_updates: bool

    def aggregate(
        self, server_round: int, updates: Sequence[ClientUpdate], reference: Parameters
    ) -> FitAggregate: ...

    def report(self) -> dict[str, Any] | None: ...


def weighted_mean(updates: Sequence[ClientUpdate], reference: Parameters) -> Parameters:
    """Sample-weighted mean of the updates, computed in float64."""
    total = sum(u.num_examples for u in updates)
    if total <= 0:
        raise QuorumNotMet("no examples behind this round's updates")
    out: Parameters = {}
    for k in reference:
        acc = np.zeros(reference[k].shape, np.float64)
        for u in updates:
            acc += u.num_examples * np.asarray(u.update[k], np.float64)
        out[k] = (acc / total).astype(np.float32)
    return out


@dataclass
class PlainAggregator:
    """Plain sample-weighted averaging; the coordinator sees every update (no privacy)."""

    reveals_individual_updates: bool = field(default=True, init=False)

    def aggregate(
        self, server_round: int, updates: Sequence[ClientUpdate], reference: Parameters
    ) -> FitAggregate:
        return FitAggregate(
            mean_update=weighted_mean(updates, reference),
            num_examples=sum(u.num_examples for u in updates),
            num_sites=len(updates),
            updates=tuple(updates),
        )

    def report(self) -> dict[str, Any] | None:
        return None


@dataclass(frozen=True)
class RoundRecord:
    """What happened in one round."""

    server_round: int
    status: str
    sites: tuple[str, ...]
    failed: tuple[str, ...]
    num_examples: int
    metrics: Metrics

    def as_dict(self) -> dict[str, Any]:
        metrics = dict(self.metrics)
        if "loss" not in metrics and "log_loss" in metrics:
            metrics["loss"] = metrics["log_loss"]
        return {
            "round": self.server_round,
            "status": self.status,
            "sites": list(self.sites),
            "failed": list(self.failed),
            "num_examples": self.num_examples,
            **{k: float(v) for k, v in metrics.items()},
        }


EvaluateFn = Callable[[Parameters], Metrics]
ProgressFn = Callable[[RoundRecord], None]


class RoundEngine:
    """Runs federated rounds over a fixed set of sites.

    Args:
        strategy: the coordinator's strategy.
        sites: site id -> client.
        aggregator: how updates become the mean (default: plain weighted mean).
        min_quorum: a round with fewer successful replies is refused: the global model
            does not change and the round is recorded as ``quorum-not-met``.
        evaluate_fn: centralised evaluation of the global model (on a held-out test set).
        seed: seeds site sampling.
    """

    def __init__(
        self,
        strategy: Strategy,
        sites: Mapping[str, SiteClient],
        *,
        aggregator: UpdateAggregator | None = None,
        min_quorum: int = 1,
        evaluate_fn: EvaluateFn | None = None,
        seed: int = 0,
    ) -> None:
        self.strategy = strategy
        self.sites = dict(sites)
        self.aggregator = aggregator if aggregator is not None else PlainAggregator()
        if strategy.needs_individual_updates and not self.aggregator.reveals_individual_updates:
            raise ConfigError(
                f"strategy {type(strategy).__name__} needs individual updates, which secure "
                "aggregation hides; use fedavg, fedprox, fedadam or fedyogi"
            )
        if min_quorum < 1:
            raise ConfigError("min_quorum must be at least 1")
        self.min_quorum = min_quorum
        self.evaluate_fn = evaluate_fn
        self.rng = np.random.default_rng(seed)
        self.history: list[RoundRecord] = []

    def run_round(
        self, server_round: int, parameters: Parameters
    ) -> tuple[Parameters, RoundRecord]:
        """Run one round and return the new global parameters and its record."""
        instructions = self.strategy.configure_fit(
            server_round, parameters, sorted(self.sites), self.rng
        )
        updates: list[ClientUpdate] = []
        failed: list[str] = []
        for site_id, ins in instructions:
            try:
                res: FitRes = self.sites[site_id].fit(ins)
                check_compatible(res.parameters, parameters)
                if res.num_examples <= 0:
                    raise TutelaError(f"site {site_id} reported {res.num_examples} examples")
            except TutelaError:
                failed.append(site_id)
                continue
            updates.append(
                ClientUpdate(
                    site_id, subtract(res.parameters, parameters), res.num_examples, res.metrics
                )
            )
        sites = tuple(u.site for u in updates)
        if len(updates) < self.min_quorum:
            record = RoundRecord(
                server_round, "quorum-not-met", sites, tuple(failed), 0, self._evaluate(parameters)
            )
            return parameters, record
        try:
            aggregate = self.aggregator.aggregate(server_round, updates, parameters)
        except QuorumNotMet:
            record = RoundRecord(
                server_round, "quorum-not-met", sites, tuple(failed), 0, self._evaluate(parameters)
            )
            return parameters, record
        new = self.strategy.aggregate_fit(server_round, parameters, aggregate)
        check_compatible(new, parameters)
        record = RoundRecord(
            server_round, "ok", sites, tuple(failed), aggregate.num_examples, self._evaluate(new)
        )
        return new, record

    def _evaluate(self, parameters: Parameters) -> Metrics:
        return self.evaluate_fn(parameters) if self.evaluate_fn is not None else {}

    def run(
        self, rounds: int, initial: Parameters, *, progress: ProgressFn | None = None
    ) -> Parameters:
        """Run ``rounds`` rounds from ``initial`` parameters; the history is kept on the engine."""
        if rounds < 1:
            raise ConfigError("rounds must be at least 1")
        params = initial
        for r in range(1, rounds + 1):
            params, record = self.run_round(r, params)
            self.history.append(record)
            if progress is not None:
                progress(record)
        return params
