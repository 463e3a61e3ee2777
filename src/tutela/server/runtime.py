"""The in-memory strategy of each running study, persisted after every change.

A study's :class:`~tutela.fl.strategy.Strategy` and its sampling RNG live in memory while
the study runs; their state is sealed into the study row whenever it changes (a round opens:
the RNG moved; a round closes: the strategy moved), so a restarted coordinator rebuilds them
exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import save as st_save

from tutela.fl.config import parse_study
from tutela.fl.strategy import Strategy
from tutela.fl.study import build_strategy
from tutela.server.core import Core
from tutela.server.store import StudyRow
from tutela.server.wire import parse_tensors


def _strategy_state(strategy: Strategy, rng: np.random.Generator) -> bytes:
    """Persistable state: the sampling RNG (JSON) and any array-dict attributes (safetensors)."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    for attr, value in vars(strategy).items():
        if (
            isinstance(value, dict)
            and value
            and all(isinstance(v, np.ndarray) for v in value.values())
        ):
            for key, arr in value.items():
                arrays[f"{attr}/{key}"] = np.ascontiguousarray(arr)
    meta = {"rng": json.dumps(rng.bit_generator.state)}
    return (
        st_save(arrays, metadata=meta)
        if arrays
        else st_save({"_": np.zeros(1, np.uint8)}, metadata=meta)
    )


def _restore_strategy(strategy: Strategy, rng: np.random.Generator, blob: bytes) -> None:
    arrays, meta = parse_tensors(blob)
    rng.bit_generator.state = json.loads(meta["rng"])
    grouped: dict[str, dict[str, npt.NDArray[Any]]] = {}
    for name, arr in arrays.items():
        if name == "_":
            continue
        attr, _, key = name.partition("/")
        grouped.setdefault(attr, {})[key] = arr
    for attr, value in grouped.items():
        setattr(strategy, attr, value)


@dataclass
class Runtime:
    """A running study's strategy and the RNG it samples sites with."""

    strategy: Strategy
    rng: np.random.Generator


@dataclass
class Runtimes:
    """The runtimes of the studies this process drives, rebuilt from the store on demand."""

    core: Core
    _cache: dict[str, Runtime] = field(default_factory=dict)

    def get(self, row: StudyRow) -> Runtime:
        """The study's runtime (restored from its persisted state the first time)."""
        rt = self._cache.get(row.id)
        if rt is None:
            config = parse_study(json.loads(row.config_json))
            rt = Runtime(build_strategy(config), np.random.default_rng(config.study.seed))
            if row.strategy_state is not None:
                blob = self.core.store.unseal(row.strategy_state, f"strategy/{row.id}")
                _restore_strategy(rt.strategy, rt.rng, blob)
            self._cache[row.id] = rt
        return rt

    def persist(self, row: StudyRow) -> None:
        """Seal the study's current strategy and RNG state into its row."""
        rt = self.get(row)
        row.strategy_state = self.core.store.seal(
            _strategy_state(rt.strategy, rt.rng), f"strategy/{row.id}"
        )

    def drop(self, study_id: str) -> None:
        """Forget a study that will not run again (completed or cancelled)."""
        self._cache.pop(study_id, None)
