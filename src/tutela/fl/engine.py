"""The in-process driver of the round state machine.

:class:`RoundEngine` runs federated rounds over site objects in this process (simulation and
tests). It owns no round rules: sampling, quorum, failure handling and closing are the
:mod:`tutela.fl.rounds` state machine, which the coordinator drives too. How the round's
updates become one mean (plainly, or clipped + noised + securely summed, or CKKS) is an
:class:`UpdateAggregator`, so the privacy pipeline is composed, not hard-wired.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tutela.errors import ConfigError, QuorumNotMet, TutelaError
from tutela.fl.client import SiteClient
from tutela.fl.records import FitIns, FitRes, Parameters
from tutela.fl.rounds import (
    EvaluateFn,
    RoundRecord,
    RoundState,
    close_round,
    open_round,
)
from tutela.fl.strategy import ClientUpdate, FitAggregate, Strategy

__all__ = [
    "DeferredFit",
    "EvaluateFn",
    "PlainAggregator",
    "ProgressFn",
    "RoundEngine",
    "RoundRecord",
    "UpdateAggregator",
    "fit_all",
    "weighted_mean",
]


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


ProgressFn = Callable[[RoundRecord], None]


@runtime_checkable
class DeferredFit(Protocol):
    """A site whose fit can start now and be collected later (a remote worker, e.g. Ray):
    ``start_fit`` returns a function that waits for the result."""

    def start_fit(self, ins: FitIns) -> Callable[[], FitRes]: ...


def _ready(res: FitRes) -> Callable[[], FitRes]:
    return lambda: res


def fit_all(
    sites: Mapping[str, SiteClient], participants: Sequence[str], ins: FitIns
) -> list[tuple[str, FitRes | TutelaError]]:
    """Every participant's fit result (or its error), in the participants' order. Deferred
    sites all start before any is collected, so remote fits run in parallel; in-process
    sites fit one after another, as before."""
    started: list[tuple[str, Callable[[], FitRes] | TutelaError]] = []
    for site_id in participants:
        site = sites[site_id]
        try:
            if isinstance(site, DeferredFit):
                started.append((site_id, site.start_fit(ins)))
            else:
                started.append((site_id, _ready(site.fit(ins))))
        except TutelaError as exc:
            started.append((site_id, exc))
    out: list[tuple[str, FitRes | TutelaError]] = []
    for site_id, pending in started:
        try:
            out.append((site_id, pending if isinstance(pending, TutelaError) else pending()))
        except TutelaError as exc:
            out.append((site_id, exc))
    return out


class RoundEngine:
    """Runs federated rounds over site objects in this process.

    Args:
        strategy: the coordinator's strategy.
        sites: site id -> client.
        aggregator: how updates become the mean (default: plain weighted mean).
        min_quorum: a round with fewer successful replies is refused: the global model
            does not change and the round is recorded as ``quorum-not-met``.
        evaluate_fn: centralised evaluation of the global model (on a held-out test set).
        seed: seeds site sampling (the coordinator seeds it with the same study seed).
        declared_examples: each site's row count as declared when it joined (caps its weight).
        clock: time source for the round plan (sites here reply synchronously).
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
        declared_examples: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
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
        self.declared_examples = dict(declared_examples or {})
        self.clock = clock
        self.history: list[RoundRecord] = []

    def run_round(
        self, server_round: int, parameters: Parameters
    ) -> tuple[Parameters, RoundRecord]:
        """Run one round and return the new global parameters and its record."""
        plan = open_round(
            self.strategy, server_round, parameters, sorted(self.sites), self.rng,
            quorum=self.min_quorum, now=self.clock(),
        )  # fmt: skip
        state = RoundState(plan, parameters, self.declared_examples)
        ins = FitIns(parameters, dict(plan.config))
        for site_id, res in fit_all(self.sites, plan.participants, ins):
            try:
                if isinstance(res, TutelaError):
                    raise res
                state.accept(site_id, res.parameters, res.num_examples, res.metrics)
            except TutelaError as exc:
                state.fail(site_id, str(exc))
        aggregate: FitAggregate | None = None
        if state.has_quorum():
            try:
                aggregate = self.aggregator.aggregate(server_round, state.updates(), parameters)
            except QuorumNotMet:
                aggregate = None
        closure = close_round(
            self.strategy, state, parameters, aggregate, evaluate=self.evaluate_fn
        )
        return closure.parameters, closure.record

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
