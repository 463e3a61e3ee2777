"""Privacy events: frozen descriptions of what a private step did, read by accountants.

A mechanism or training step emits an event (``GaussianEvent(noise_multiplier=1.1)``
Poisson-sampled with rate q, composed T times ...). Events are plain data: they are
hashable, compare by value, and serialise to and from JSON (never pickle), so the budget
ledger can store them and an auditor can recompute every epsilon.

Neighbouring relation for every event: add or remove one record (or one client in
client-level DP), as in dp-accounting's ``ADD_OR_REMOVE_ONE``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "ComposedEvent",
    "DiscreteGaussianEvent",
    "DiscreteLaplaceEvent",
    "Event",
    "GaussianEvent",
    "LaplaceEvent",
    "PoissonSampledEvent",
    "PureDPEvent",
    "SelfComposedEvent",
    "SkellamEvent",
    "event_from_dict",
    "event_from_json",
    "event_to_dict",
    "event_to_json",
]


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")


@dataclass(frozen=True, slots=True)
class GaussianEvent:
    """Gaussian noise with standard deviation ``noise_multiplier`` x (L2 sensitivity)."""

    noise_multiplier: float

    def __post_init__(self) -> None:
        _positive("noise_multiplier", self.noise_multiplier)


@dataclass(frozen=True, slots=True)
class LaplaceEvent:
    """Laplace noise of scale ``scale`` on a query with L1 sensitivity ``sensitivity``."""

    scale: float
    sensitivity: float = 1.0

    def __post_init__(self) -> None:
        _positive("scale", self.scale)
        _positive("sensitivity", self.sensitivity)

    @property
    def noise_multiplier(self) -> float:
        """scale / sensitivity (the event's epsilon is its inverse)."""
        return self.scale / self.sensitivity


@dataclass(frozen=True, slots=True)
class DiscreteLaplaceEvent:
    """Discrete Laplace noise of scale ``scale`` on an integer query (L1 sensitivity)."""

    scale: float
    sensitivity: int = 1

    def __post_init__(self) -> None:
        _positive("scale", self.scale)
        if isinstance(self.sensitivity, bool) or not isinstance(self.sensitivity, int):
            raise TypeError("sensitivity of a discrete mechanism must be an int")
        _positive("sensitivity", self.sensitivity)


@dataclass(frozen=True, slots=True)
class DiscreteGaussianEvent:
    """Per-coordinate discrete Gaussian noise (parameter ``sigma``) on an integer vector.

    ``sensitivity`` is the L2 sensitivity of the integer query. Accounted through its
    zCDP guarantee rho = sensitivity**2 / (2 sigma**2) (Canonne, Kamath, Steinke 2020).
    """

    sigma: float
    sensitivity: float = 1.0

    def __post_init__(self) -> None:
        _positive("sigma", self.sigma)
        _positive("sensitivity", self.sensitivity)


@dataclass(frozen=True, slots=True)
class SkellamEvent:
    """Symmetric Skellam Sk(mu, mu) noise (variance 2 mu) on an integer vector sum.

    ``l1_sensitivity`` / ``l2_sensitivity`` bound the change of the integer sum when one
    participant is added or removed (after clipping, scaling and rounding).
    Accounted by the RDP bound of Agarwal, Kairouz and Liu (2021), Theorem 3.5.
    """

    mu: float
    l1_sensitivity: float
    l2_sensitivity: float

    def __post_init__(self) -> None:
        _positive("mu", self.mu)
        _positive("l1_sensitivity", self.l1_sensitivity)
        _positive("l2_sensitivity", self.l2_sensitivity)
        if self.l2_sensitivity > self.l1_sensitivity * (1 + 1e-12):
            raise ValueError("an L2 sensitivity cannot exceed the L1 sensitivity")


@dataclass(frozen=True, slots=True)
class PureDPEvent:
    """A mechanism with a pure epsilon-DP guarantee (exponential mechanism, noisy max)."""

    epsilon: float

    def __post_init__(self) -> None:
        _positive("epsilon", self.epsilon)


@dataclass(frozen=True, slots=True)
class PoissonSampledEvent:
    """``event`` run on a Poisson sample: each record (or client) is in it independently
    with probability ``sampling_rate``."""

    sampling_rate: float
    event: Event

    def __post_init__(self) -> None:
        _positive("sampling_rate", self.sampling_rate)
        if self.sampling_rate > 1:
            raise ValueError("sampling_rate must be in (0, 1]")
        _check_event(self.event)


@dataclass(frozen=True, slots=True)
class SelfComposedEvent:
    """``event`` run ``count`` times (adaptively) on the same data."""

    event: Event
    count: int

    def __post_init__(self) -> None:
        _check_event(self.event)
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"count must be a positive int, got {self.count!r}")


@dataclass(frozen=True, slots=True)
class ComposedEvent:
    """Several events run on the same data, in any (adaptive) order."""

    events: tuple[Event, ...]

    def __init__(self, events: Iterable[Event]) -> None:
        items = tuple(events)
        for e in items:
            _check_event(e)
        object.__setattr__(self, "events", items)


Event: TypeAlias = (
    GaussianEvent
    | LaplaceEvent
    | DiscreteLaplaceEvent
    | DiscreteGaussianEvent
    | SkellamEvent
    | PureDPEvent
    | PoissonSampledEvent
    | SelfComposedEvent
    | ComposedEvent
)

_LEAVES: dict[str, type[Any]] = {
    "gaussian": GaussianEvent,
    "laplace": LaplaceEvent,
    "discrete_laplace": DiscreteLaplaceEvent,
    "discrete_gaussian": DiscreteGaussianEvent,
    "skellam": SkellamEvent,
    "pure_dp": PureDPEvent,
}
_LEAF_NAMES = {cls: name for name, cls in _LEAVES.items()}
_EVENT_TYPES = (*_LEAVES.values(), PoissonSampledEvent, SelfComposedEvent, ComposedEvent)


def _check_event(event: object) -> None:
    if not isinstance(event, _EVENT_TYPES):
        raise TypeError(f"not a tutela.dp event: {type(event).__name__}")


def event_to_dict(event: Event) -> dict[str, Any]:
    """Return a JSON-ready dict with a ``"type"`` key (lossless for float parameters)."""
    _check_event(event)
    if isinstance(event, PoissonSampledEvent):
        return {
            "type": "poisson_sampled",
            "sampling_rate": event.sampling_rate,
            "event": event_to_dict(event.event),
        }
    if isinstance(event, SelfComposedEvent):
        return {"type": "self_composed", "count": event.count, "event": event_to_dict(event.event)}
    if isinstance(event, ComposedEvent):
        return {"type": "composed", "events": [event_to_dict(e) for e in event.events]}
    out: dict[str, Any] = {"type": _LEAF_NAMES[type(event)]}
    for name in event.__dataclass_fields__:
        out[name] = getattr(event, name)
    return out


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Inverse of :func:`event_to_dict`; raises ``ValueError`` on unknown or malformed input."""
    if not isinstance(data, Mapping) or "type" not in data:
        raise ValueError("an event must be a mapping with a 'type' key")
    kind = data["type"]
    fields = {k: v for k, v in data.items() if k != "type"}
    try:
        if kind == "poisson_sampled":
            return PoissonSampledEvent(
                float(fields["sampling_rate"]), event_from_dict(fields["event"])
            )
        if kind == "self_composed":
            return SelfComposedEvent(event_from_dict(fields["event"]), int(fields["count"]))
        if kind == "composed":
            return ComposedEvent(event_from_dict(e) for e in fields["events"])
        cls = _LEAVES[kind]
        expected = set(cls.__dataclass_fields__)
        if not set(fields) <= expected:
            raise ValueError(f"unexpected fields for {kind}: {sorted(set(fields) - expected)}")
        event: Event = cls(**fields)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed {kind!r} event: {exc}") from exc
    return event


def event_to_json(event: Event) -> str:
    """Canonical JSON (sorted keys, no whitespace): equal events give equal strings."""
    return json.dumps(event_to_dict(event), sort_keys=True, separators=(",", ":"))


def event_from_json(text: str) -> Event:
    """Parse :func:`event_to_json` output."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"event is not valid JSON: {exc}") from exc
    return event_from_dict(data)
