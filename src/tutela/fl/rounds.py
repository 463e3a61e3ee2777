"""The round state machine every runtime drives.

One federated training round, as pure state: no I/O, no threads, the clock a parameter.
The in-process simulation (:mod:`tutela.fl.engine`) and the coordinator
(:mod:`tutela.server.driver`) feed it the same events (a site replied, a site failed, time
passed) and read back the same decisions (which sites to ask, whether the round is due,
what it closed as). A mode that runs in one runtime therefore runs in the other with the
same sampling, quorum, failure and closing rules.

Lifecycle::

    plan = open_round(strategy, r, params, sites, rng, quorum=q, now=t, timeout=s)
    state = RoundState(plan, params)
    state.accept(site, parameters, num_examples)      # idempotent per site
    state.fail(site, reason)
    state.is_due(now)                                 # everyone answered, or the deadline passed
    aggregate = aggregator.aggregate(r, state.updates(), params)   # plain, DP, SecAgg+, CKKS
    closure = close_round(strategy, state, params, aggregate, now=t)

Security: the state machine is where a lying site is bounded. A reply is accepted only from a
site the round invited, only with the global model's parameter names and shapes and finite
values, only with a positive row count that is capped at what the site declared when it
joined (``declared_examples``): a site that claims 10^15 rows cannot outweigh the others,
and only with an update (local minus global) no longer than the round's ``max_update_norm``
(:mod:`tutela.fl.bounds`): a site that sends 3e38 everywhere is refused, and the reason is
kept with the round's failures (:attr:`RoundState.failures`, the record's ``detail``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from tutela.errors import ConfigError, DataError, ProtocolAbort
from tutela.fl.bounds import UpdateNormExceeded, check_update_norm, round_norm_bound
from tutela.fl.records import (
    ConfigRecord,
    Metrics,
    Parameters,
    check_compatible,
    parameters_to_bytes,
    subtract,
)
from tutela.fl.strategy import ClientUpdate, FitAggregate, Strategy


class RoundStatus(StrEnum):
    """How a round ended (or that it has not)."""

    OPEN = "open"
    AGGREGATED = "aggregated"
    QUORUM_NOT_MET = "quorum-not-met"


class RoundConflict(ProtocolAbort):
    """A reply contradicts one the round already accepted (same site, different content)."""


@dataclass(frozen=True)
class RoundPlan:
    """What the round asked for; everything a driver must persist to resume it.

    Attributes:
        server_round: 1-based round number.
        attempt: restarts of the same round (a coordinator restart mid-protocol) count up.
        participants: the sites asked to train, in the strategy's order.
        config: the fit config every participant receives.
        quorum: fewer accepted replies than this and the round changes nothing.
        opened_at: clock value when it opened.
        deadline: clock value after which missing sites count as failed.
    """

    server_round: int
    attempt: int
    participants: tuple[str, ...]
    config: ConfigRecord
    quorum: int
    opened_at: float
    deadline: float

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.server_round,
            "attempt": self.attempt,
            "participants": list(self.participants),
            "config": dict(self.config),
            "quorum": self.quorum,
            "opened_at": self.opened_at,
            "deadline": self.deadline,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RoundPlan:
        return cls(
            server_round=int(data["round"]),
            attempt=int(data["attempt"]),
            participants=tuple(str(s) for s in data["participants"]),
            config=dict(data["config"]),
            quorum=int(data["quorum"]),
            opened_at=float(data["opened_at"]),
            deadline=float(data["deadline"]),
        )

    def is_due(self, now: float, answered: Collection[str]) -> bool:
        """True once every participant is in ``answered`` (replied or failed), or the
        deadline passed."""
        return not set(self.participants) - set(answered) or now > self.deadline

    def restarted(self, now: float, timeout: float) -> RoundPlan:
        """The same round, same sites and config, as a fresh attempt."""
        return RoundPlan(
            self.server_round, self.attempt + 1, self.participants, self.config, self.quorum,
            now, now + timeout,
        )  # fmt: skip

    def extended(self, now: float, timeout: float) -> RoundPlan:
        """The same attempt with a deadline no earlier than ``now + timeout`` (after a restart:
        sites could not reach a stopped coordinator, so its downtime does not count)."""
        return RoundPlan(
            self.server_round, self.attempt, self.participants, self.config, self.quorum,
            self.opened_at, max(self.deadline, now + timeout),
        )  # fmt: skip


def open_round(
    strategy: Strategy,
    server_round: int,
    parameters: Parameters,
    sites: Sequence[str],
    rng: np.random.Generator,
    *,
    quorum: int,
    now: float = 0.0,
    timeout: float = math.inf,
) -> RoundPlan:
    """Sample the round's sites through the strategy and fix its config, quorum and deadline.

    Raises:
        ConfigError: a quorum below 1, or a strategy that sends sites different configs
            (every participant of a round trains under the same, audited config).
    """
    if quorum < 1:
        raise ConfigError("min_quorum must be at least 1")
    if server_round < 1:
        raise ConfigError("rounds are numbered from 1")
    instructions = strategy.configure_fit(server_round, parameters, sorted(sites), rng)
    configs = [dict(ins.config) for _, ins in instructions]
    if any(c != configs[0] for c in configs[1:]):
        raise ConfigError("a round sends every participant the same fit config")
    participants = tuple(site for site, _ in instructions)
    if len(set(participants)) != len(participants):
        raise ConfigError("the strategy sampled a site twice in one round")
    return RoundPlan(
        server_round=server_round,
        attempt=1,
        participants=participants,
        config={**(configs[0] if configs else {}), "server_round": server_round},
        quorum=quorum,
        opened_at=now,
        deadline=now + timeout,
    )


def digest(parameters: Mapping[str, Any], num_examples: int) -> str:
    """Content digest of a reply (idempotency: the same reply twice is accepted once)."""
    body = parameters_to_bytes(parameters, metadata={"num_examples": str(num_examples)})
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Reply:
    """One accepted reply: the site's update (local minus global) and its capped weight."""

    site: str
    update: Parameters
    num_examples: int
    metrics: Metrics
    digest: str
    declared_examples: int


@dataclass
class RoundState:
    """The open round: who was asked, who answered, who failed.

    Args:
        plan: the round's plan from :func:`open_round`.
        reference: the global parameters the round started from.
        declared_examples: each site's row count as declared when it joined; a reply's
            ``num_examples`` is capped at it (and at ``max_examples``).
        max_examples: a hard cap on any single site's weight.
    """

    plan: RoundPlan
    reference: Parameters
    declared_examples: Mapping[str, int] = field(default_factory=dict)
    max_examples: int = 10**9
    _replies: dict[str, Reply] = field(default_factory=dict, init=False)
    _failures: dict[str, str] = field(default_factory=dict, init=False)

    def accept(
        self,
        site: str,
        parameters: Mapping[str, Any],
        num_examples: int,
        metrics: Mapping[str, float] | None = None,
        *,
        is_update: bool = False,
    ) -> bool:
        """Accept one site's locally trained parameters (or, with ``is_update``, its update).

        Returns True when the reply is new, False when the same reply was already accepted.

        Raises:
            ProtocolAbort: the site was not invited to this round.
            RoundConflict: the site already sent a different reply.
            DataError: wrong names or shapes, non-finite values, or a row count below 1.
            UpdateNormExceeded: the update's L2 norm is above the round's ``max_update_norm``
                (:mod:`tutela.fl.bounds`); the site is counted as failed with that reason.
        """
        if site not in self.plan.participants:
            raise ProtocolAbort(
                f"site {site} was not asked to train in round {self.plan.server_round}"
            )
        if isinstance(num_examples, bool) or not isinstance(num_examples, int | np.integer):
            raise DataError(f"site {site} reported a non-integer row count")
        if num_examples < 1:
            raise DataError(f"site {site} reported {num_examples} examples")
        check_compatible(parameters, self.reference)
        arrays = {k: np.asarray(v, np.float32) for k, v in parameters.items()}
        key = digest(arrays, int(num_examples))
        previous = self._replies.get(site)
        if previous is not None:
            if previous.digest != key:
                raise RoundConflict(f"site {site} already sent a different reply this round")
            return False
        if site in self._failures:
            raise RoundConflict(f"site {site} was already counted as failed this round")
        cap = min(self.max_examples, self.declared_examples.get(site, self.max_examples))
        weight = min(int(num_examples), cap)
        update = arrays if is_update else subtract(arrays, self.reference)
        if not is_update:
            check_compatible(update, self.reference)  # a huge difference can overflow float32
        try:
            check_update_norm(update, round_norm_bound(self.plan.config), site)
        except UpdateNormExceeded as exc:  # the reason stays with the round's failures
            self._failures[site] = str(exc)
            raise
        clean = {k: float(v) for k, v in (metrics or {}).items() if math.isfinite(float(v))}
        self._replies[site] = Reply(site, update, weight, clean, key, int(num_examples))
        return True

    def fail(self, site: str, reason: str) -> None:
        """Count ``site`` as failed for this round (it will not be aggregated)."""
        if site not in self.plan.participants:
            raise ProtocolAbort(
                f"site {site} was not asked to train in round {self.plan.server_round}"
            )
        if site not in self._replies:
            self._failures.setdefault(site, reason)

    @property
    def responded(self) -> tuple[str, ...]:
        """Sites with an accepted reply, in the plan's order."""
        return tuple(s for s in self.plan.participants if s in self._replies)

    @property
    def failed(self) -> tuple[str, ...]:
        """Sites that failed or, once the round closes, never replied."""
        return tuple(s for s in self.plan.participants if s not in self._replies)

    @property
    def failures(self) -> dict[str, str]:
        return dict(self._failures)

    def pending(self) -> tuple[str, ...]:
        """Sites that neither replied nor failed yet."""
        return tuple(
            s for s in self.plan.participants if s not in self._replies and s not in self._failures
        )

    def is_due(self, now: float) -> bool:
        """True once every participant answered or failed, or the deadline passed."""
        return self.plan.is_due(now, {*self._replies, *self._failures})

    def has_quorum(self) -> bool:
        return len(self._replies) >= self.plan.quorum

    def updates(self) -> list[ClientUpdate]:
        """The accepted updates, in the plan's order (what an aggregator consumes)."""
        return [
            ClientUpdate(r.site, r.update, r.num_examples, r.metrics)
            for r in (self._replies[s] for s in self.responded)
        ]


@dataclass(frozen=True)
class RoundRecord:
    """What happened in one round: the transcript entry every runtime writes."""

    server_round: int
    status: RoundStatus
    sites: tuple[str, ...]
    failed: tuple[str, ...]
    num_examples: int
    metrics: Metrics
    attempt: int = 1
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        metrics = dict(self.metrics)
        if "loss" not in metrics and "log_loss" in metrics:
            metrics["loss"] = metrics["log_loss"]
        return {
            "round": self.server_round,
            "status": self.status.value,
            "sites": list(self.sites),
            "failed": list(self.failed),
            "num_examples": self.num_examples,
            **{k: float(v) for k, v in metrics.items()},
        }


@dataclass(frozen=True)
class RoundClosure:
    """The round's outcome: the new global parameters and the record."""

    parameters: Parameters
    record: RoundRecord


EvaluateFn = Callable[[Parameters], Metrics]


def close_round(
    strategy: Strategy,
    state: RoundState,
    parameters: Parameters,
    aggregate: FitAggregate | None,
    *,
    survivors: Sequence[str] | None = None,
    evaluate: EvaluateFn | None = None,
    detail: Mapping[str, Any] | None = None,
) -> RoundClosure:
    """Close the round: apply the strategy to the aggregate, or keep the model unchanged.

    Args:
        aggregate: what the aggregator produced, or None when it could not (too few
            replies, a secure-aggregation abort).
        survivors: the sites inside the aggregate when the aggregation protocol dropped
            some replies (SecAgg+ dropouts); defaults to every accepted reply.
        evaluate: centralised evaluation of the resulting model.
        detail: protocol reports kept with the record (e.g. SecAgg+ dropouts); the
            state's failure reasons are added as ``failures`` (site -> reason).
    """
    inside = tuple(survivors) if survivors is not None else state.responded
    failed = tuple(s for s in state.plan.participants if s not in inside)
    if aggregate is None or len(inside) < state.plan.quorum:
        new, status, count = parameters, RoundStatus.QUORUM_NOT_MET, 0
    else:
        new = strategy.aggregate_fit(state.plan.server_round, parameters, aggregate)
        check_compatible(new, parameters)
        status, count = RoundStatus.AGGREGATED, aggregate.num_examples
    metrics = evaluate(new) if evaluate is not None else {}
    kept = dict(detail or {})
    if state.failures:  # why sites failed, refused updates included
        kept.setdefault("failures", state.failures)
    record = RoundRecord(
        state.plan.server_round, status, inside, failed, count, metrics,
        state.plan.attempt, kept,
    )  # fmt: skip
    return RoundClosure(new, record)
