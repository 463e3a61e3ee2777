"""The in-memory strategy of each running study, persisted after every change.

A study's :class:`~tutela.fl.strategy.Strategy` and its sampling RNG live in memory while
the study runs; their state is sealed into the study row whenever it changes (a round opens:
the RNG moved; a round closes: the strategy moved), so a restarted coordinator rebuilds them
exactly: the strategy through its explicit ``state_dict`` / ``load_state_dict``, the RNG
through its bit generator's state.

A study under client-level DP also has the coordinator's side of DP-FedAvg
(:class:`~tutela.fl.privacy.ClientLevelDP`): its released rounds (clip norm, noise, the event
charged, the clip norm after) are the study's ledger, kept in the study row
(``privacy_json``, the ``events`` of the privacy endpoint) and replayed on a restart, so the
adaptive clip norm and the study's spend continue where they stopped.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import save as st_save

from tutela.dp.ledger import PrivacyLedger
from tutela.fl.config import parse_study
from tutela.fl.privacy import ClientLevelDP, client_level_dp
from tutela.fl.recipes import LEDGER_PLD_GRID
from tutela.fl.strategy import Strategy
from tutela.fl.study import build_strategy
from tutela.server.core import Core, dumps
from tutela.server.store import StudyRow
from tutela.server.wire import parse_tensors

STATE_FORMAT = "strategy-state/1"


def encode_state(strategy: Strategy, rng: np.random.Generator) -> bytes:
    """A strategy's :meth:`~tutela.fl.strategy.Strategy.state_dict` as safetensors, with the
    sampling RNG's state (JSON) in the metadata."""
    arrays = {k: np.ascontiguousarray(v) for k, v in strategy.state_dict().items()}
    meta = {"format": STATE_FORMAT, "rng": json.dumps(rng.bit_generator.state)}
    return st_save(arrays, metadata=meta)


def restore_state(strategy: Strategy, rng: np.random.Generator, blob: bytes) -> None:
    """Inverse of :func:`encode_state`: load the strategy's state and the RNG's, exactly."""
    arrays, meta = parse_tensors(blob)
    current = meta.get("format") == STATE_FORMAT
    if not current:
        arrays = _from_attributes(arrays)
    if current or arrays:  # (old state without arrays: the fresh strategy is that state)
        strategy.load_state_dict(arrays)
    rng.bit_generator.state = json.loads(meta["rng"])


def _from_attributes(arrays: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
    """Read state saved before strategies had ``state_dict``: their array-dict attributes
    (``_m/<name>``, ``_v/<name>``; ``_`` when there were none). Drop after the next release."""
    moments = {name[1:]: value for name, value in arrays.items() if name.startswith(("_m/", "_v/"))}
    return {"initialised": np.ones(1, np.uint8), **moments} if moments else {}


@dataclass
class Runtime:
    """A running study's strategy, the RNG it samples sites with and, under client-level DP,
    the coordinator's side of DP-FedAvg."""

    strategy: Strategy
    rng: np.random.Generator
    privacy: ClientLevelDP | None = None


@dataclass
class Runtimes:
    """The runtimes of the studies this process drives, rebuilt from the store on demand."""

    core: Core
    _cache: dict[str, Runtime] = field(default_factory=dict)
    _scratch: tempfile.TemporaryDirectory[str] = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="tutela-coordinator-")
    )

    def get(self, row: StudyRow) -> Runtime:
        """The study's runtime (restored from its persisted state the first time)."""
        rt = self._cache.get(row.id)
        if rt is None:
            config = parse_study(json.loads(row.config_json))
            rt = Runtime(build_strategy(config), np.random.default_rng(config.study.seed))
            if row.strategy_state is not None:
                blob = self.core.store.unseal(row.strategy_state, f"strategy/{row.id}")
                restore_state(rt.strategy, rt.rng, blob)
            if config.privacy.mode == "client":
                rt.privacy = client_level_dp(config, self._ledger(row.id))
                rt.privacy.restore(json.loads(row.privacy_json or "[]"))
            self._cache[row.id] = rt
        return rt

    def persist(self, row: StudyRow) -> None:
        """Seal the study's current strategy and RNG state into its row."""
        rt = self.get(row)
        row.strategy_state = self.core.store.seal(
            encode_state(rt.strategy, rt.rng), f"strategy/{row.id}"
        )
        if rt.privacy is not None:
            row.privacy_json = dumps(rt.privacy.state())

    def _ledger(self, study_id: str) -> PrivacyLedger:
        """A scratch ledger for the study's DP-FedAvg accounting in this process (rebuilt from
        the study row on a restart; the row is the record)."""
        path = f"{self._scratch.name}/ledger-{study_id}.sqlite"
        return PrivacyLedger(path, value_discretization_interval=LEDGER_PLD_GRID)

    def drop(self, study_id: str) -> None:
        """Forget a study that will not run again (completed or cancelled)."""
        self._cache.pop(study_id, None)
