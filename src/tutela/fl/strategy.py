"""Federated strategies: matching ``configure_*`` / ``aggregate_*`` pairs.

Sites return locally trained parameters; the engine turns them into *updates* (local minus
global), because updates are what gets clipped, noised and securely summed. A strategy
receives the round's :class:`FitAggregate`: always the sample-weighted mean update, and the
individual updates only when the round ran without secure aggregation. Robust strategies
(median, trimmed mean) need the individual updates and so cannot run under secure
aggregation (which hides them by design); the engine refuses that combination up front.

What a strategy learns across rounds (FedAdam's and FedYogi's moments) is explicit state:
``state_dict()`` returns it as named arrays (safetensors-ready) and ``load_state_dict``
restores it exactly, so a runtime that persists and reloads it continues bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from tutela.errors import ConfigError
from tutela.fl.records import (
    ConfigRecord,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    Metrics,
    Parameters,
    add,
)

StrategyState = dict[str, npt.NDArray[Any]]
"""A strategy's state between rounds: named arrays (no pickle; safetensors as is)."""


@dataclass(frozen=True)
class ClientUpdate:
    """One site's update (local minus global parameters) and its weight."""

    site: str
    update: Parameters
    num_examples: int
    metrics: Metrics = field(default_factory=dict)


@dataclass(frozen=True)
class FitAggregate:
    """What a strategy gets to aggregate in one round.

    Attributes:
        mean_update: the weighted mean of the site updates (the only thing a coordinator
            learns under secure aggregation).
        num_examples: total rows behind the mean.
        num_sites: number of sites in the mean.
        updates: the individual updates, or ``None`` when they were never revealed.
    """

    mean_update: Parameters
    num_examples: int
    num_sites: int
    updates: tuple[ClientUpdate, ...] | None = None


@runtime_checkable
class Strategy(Protocol):
    """The coordinator's policy for one federated study."""

    needs_individual_updates: bool

    def configure_fit(
        self,
        server_round: int,
        parameters: Parameters,
        sites: Sequence[str],
        rng: np.random.Generator,
    ) -> list[tuple[str, FitIns]]:
        """Choose the sites for a training round and what to send each."""
        ...

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: FitAggregate
    ) -> Parameters:
        """Return the new global parameters."""
        ...

    def configure_evaluate(
        self,
        server_round: int,
        parameters: Parameters,
        sites: Sequence[str],
        rng: np.random.Generator,
    ) -> list[tuple[str, EvaluateIns]]:
        """Choose the sites for federated evaluation."""
        ...

    def aggregate_evaluate(
        self, server_round: int, results: Sequence[tuple[str, EvaluateRes]]
    ) -> Metrics:
        """Combine site evaluation results into round metrics."""
        ...

    def state_dict(self) -> StrategyState:
        """What the strategy learned so far, as copies (empty for a stateless strategy)."""
        ...

    def load_state_dict(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        """Restore exactly the state that :meth:`state_dict` returned.

        Raises:
            ValueError: the state is not one this strategy produces.
        """
        ...


def sample_sites(
    sites: Sequence[str], fraction: float, minimum: int, rng: np.random.Generator
) -> list[str]:
    """Uniformly sample ``max(minimum, ceil(fraction * n))`` distinct sites."""
    if not sites:
        return []
    count = min(len(sites), max(minimum, math.ceil(fraction * len(sites))))
    chosen = rng.choice(len(sites), size=count, replace=False)
    return [sites[i] for i in sorted(chosen)]


@dataclass
class FedAvg:
    """Federated averaging (McMahan et al. 2017), sample-weighted.

    Attributes:
        fraction_fit: fraction of available sites sampled per round.
        min_fit_sites: at least this many sites are sampled.
        fraction_evaluate / min_evaluate_sites: same for evaluation.
        server_learning_rate: step on the mean update (1.0 is plain FedAvg).
        local_config: extra config sent to every site (epochs, batch size, ...).
    """

    fraction_fit: float = 1.0
    min_fit_sites: int = 2
    fraction_evaluate: float = 1.0
    min_evaluate_sites: int = 1
    server_learning_rate: float = 1.0
    local_config: ConfigRecord = field(default_factory=dict)
    needs_individual_updates: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        for name in ("fraction_fit", "fraction_evaluate"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"{name} must be in (0, 1], got {value}")
        if self.min_fit_sites < 1:
            raise ConfigError("min_fit_sites must be at least 1")
        if self.server_learning_rate <= 0:
            raise ConfigError("server_learning_rate must be positive")

    def fit_config(self, server_round: int) -> ConfigRecord:
        return {**self.local_config, "server_round": server_round}

    def configure_fit(
        self,
        server_round: int,
        parameters: Parameters,
        sites: Sequence[str],
        rng: np.random.Generator,
    ) -> list[tuple[str, FitIns]]:
        chosen = sample_sites(sites, self.fraction_fit, self.min_fit_sites, rng)
        ins = FitIns(parameters, self.fit_config(server_round))
        return [(s, ins) for s in chosen]

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: FitAggregate
    ) -> Parameters:
        return add(parameters, aggregate.mean_update, self.server_learning_rate)

    def configure_evaluate(
        self,
        server_round: int,
        parameters: Parameters,
        sites: Sequence[str],
        rng: np.random.Generator,
    ) -> list[tuple[str, EvaluateIns]]:
        chosen = sample_sites(sites, self.fraction_evaluate, self.min_evaluate_sites, rng)
        ins = EvaluateIns(parameters, {"server_round": server_round})
        return [(s, ins) for s in chosen]

    def aggregate_evaluate(
        self, server_round: int, results: Sequence[tuple[str, EvaluateRes]]
    ) -> Metrics:
        total = sum(r.num_examples for _, r in results)
        if total == 0:
            return {}
        out: Metrics = {"loss": sum(r.loss * r.num_examples for _, r in results) / total}
        keys = set.intersection(*(set(r.metrics) for _, r in results)) if results else set()
        for key in sorted(keys):
            out[key] = sum(r.metrics[key] * r.num_examples for _, r in results) / total
        return out

    def state_dict(self) -> StrategyState:
        """Empty: FedAvg keeps nothing between rounds (its hyperparameters are config)."""
        return {}

    def load_state_dict(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        """Accept only the empty state."""
        if state:
            raise ValueError(
                f"{type(self).__name__} keeps no state; got entries {sorted(state)[:5]}"
            )


@dataclass
class FedProx(FedAvg):
    """FedProx (Li et al. 2020): FedAvg plus a proximal term ``mu/2 ||w - w_global||^2``
    that each site adds to its local loss (sent as ``proximal_mu`` in the fit config)."""

    proximal_mu: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.proximal_mu < 0:
            raise ConfigError("proximal_mu must be non-negative")

    def fit_config(self, server_round: int) -> ConfigRecord:
        return {**super().fit_config(server_round), "proximal_mu": self.proximal_mu}


@dataclass
class FedAdam(FedAvg):
    """FedAdam (Reddi et al. 2021): Adam on the server with the mean update as pseudo-gradient.

    ``m = b1 m + (1-b1) d``; ``v = b2 v + (1-b2) d^2``; ``w = w + lr * m / (sqrt(v) + tau)``
    (no bias correction, as in the paper).
    """

    server_learning_rate: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    _m: Parameters | None = field(default=None, init=False, repr=False)
    _v: Parameters | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError("beta1 and beta2 must be in [0, 1)")
        if self.tau <= 0:
            raise ConfigError("tau must be positive")

    def _second_moment(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return self.beta2 * v + (1 - self.beta2) * d2

    def state_dict(self) -> StrategyState:
        """The moments ``m/<name>`` and ``v/<name>``, and ``initialised`` (0 before the
        first aggregation, when there are no moments yet)."""
        if self._m is None or self._v is None:
            return {"initialised": np.zeros(1, np.uint8)}
        state: StrategyState = {"initialised": np.ones(1, np.uint8)}
        for name, moments in (("m", self._m), ("v", self._v)):
            for key, value in moments.items():
                state[f"{name}/{key}"] = np.array(value, copy=True)
        return state

    def load_state_dict(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        """Restore the moments (copies) and whether they were initialised."""
        flag = state.get("initialised")
        if flag is None or flag.shape != (1,) or int(flag[0]) not in (0, 1):
            raise ValueError(f"{type(self).__name__} state needs 'initialised' (0 or 1)")
        m: Parameters = {}
        v: Parameters = {}
        for entry, value in state.items():
            if entry == "initialised":
                continue
            kind, sep, key = entry.partition("/")
            if not sep or kind not in ("m", "v") or not key:
                raise ValueError(f"unexpected entry {entry!r} in {type(self).__name__} state")
            (m if kind == "m" else v)[key] = np.array(value, copy=True)
        if not int(flag[0]):
            if m or v:
                raise ValueError("moments given for an uninitialised state")
            self._m = self._v = None
            return
        if not m or set(m) != set(v):
            raise ValueError("the first and second moments must name the same parameters")
        self._m, self._v = m, v

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: FitAggregate
    ) -> Parameters:
        delta = aggregate.mean_update
        if self._m is None or self._v is None:
            self._m = {k: np.zeros_like(v) for k, v in delta.items()}
            self._v = {k: np.zeros_like(v) for k, v in delta.items()}
        out: Parameters = {}
        for k, raw in delta.items():
            d = raw.astype(np.float64)
            self._m[k] = (self.beta1 * self._m[k] + (1 - self.beta1) * d).astype(np.float32)
            self._v[k] = self._second_moment(self._v[k].astype(np.float64), d * d).astype(
                np.float32
            )
            step = self.server_learning_rate * self._m[k] / (np.sqrt(self._v[k]) + self.tau)
            out[k] = (parameters[k] + step).astype(np.float32)
        return out


@dataclass
class FedYogi(FedAdam):
    """FedYogi (Reddi et al. 2021): like FedAdam with ``v = v - (1-b2) d^2 sign(v - d^2)``."""

    def _second_moment(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return np.asarray(v - (1 - self.beta2) * d2 * np.sign(v - d2))


@dataclass
class FedMedian(FedAvg):
    """Coordinate-wise median of the site updates (Yin et al. 2018); robust to outliers."""

    needs_individual_updates: bool = field(default=True, init=False)

    def _combine(self, stacked: np.ndarray) -> np.ndarray:
        return np.asarray(np.median(stacked, axis=0))

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: FitAggregate
    ) -> Parameters:
        if aggregate.updates is None:
            raise ConfigError(
                f"{type(self).__name__} needs individual updates; "
                "it cannot run under secure aggregation"
            )
        robust: Parameters = {}
        for k in parameters:
            stacked = np.stack([u.update[k] for u in aggregate.updates]).astype(np.float64)
            robust[k] = self._combine(stacked).astype(np.float32)
        return add(parameters, robust, self.server_learning_rate)


@dataclass
class FedTrimmedMean(FedMedian):
    """Coordinate-wise trimmed mean: drop the ``trim_fraction`` largest and smallest values
    per coordinate, average the rest (Yin et al. 2018)."""

    trim_fraction: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.trim_fraction < 0.5:
            raise ConfigError("trim_fraction must be in [0, 0.5)")

    def _combine(self, stacked: np.ndarray) -> np.ndarray:
        n = stacked.shape[0]
        cut = math.floor(self.trim_fraction * n)
        ordered = np.sort(stacked, axis=0)
        return np.asarray(ordered[cut : n - cut].mean(axis=0))
