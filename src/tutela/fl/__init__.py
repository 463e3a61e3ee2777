"""Federated learning: studies, strategies, the round engine, and your own model and data.

- :mod:`tutela.fl.library`: ``Study`` / ``simulate`` over any ``nn.Module`` factory and
  per-site data (DataFrames, CSV or Parquet files, arrays, tensors).
- :mod:`tutela.fl.config`: the study file (TOML), validated strictly.
- :mod:`tutela.fl.recipes`: the flagship study and a fully composed run.
- :mod:`tutela.fl.strategy`: FedAvg, FedProx, FedAdam, FedYogi, FedMedian, trimmed mean.
- :mod:`tutela.fl.rounds` and :mod:`tutela.fl.engine`: the one round state machine.

The names below import lazily: ``import tutela.fl`` loads nothing heavy (no PyTorch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tutela._lazy import lazy_getattr

if TYPE_CHECKING:
    from tutela.fl.config import StudyConfig, load_study, parse_study
    from tutela.fl.library import (
        ClientDP,
        SampleDP,
        Study,
        StudyResult,
        initial_parameters,
        simulate,
        split_table,
    )
    from tutela.fl.recipes import flagship_config, run_configured_study
    from tutela.fl.strategy import (
        FedAdam,
        FedAvg,
        FedMedian,
        FedProx,
        FedTrimmedMean,
        FedYogi,
        Strategy,
    )
    from tutela.fl.task import Task

_LAZY = {
    "StudyConfig": "tutela.fl.config",
    "load_study": "tutela.fl.config",
    "parse_study": "tutela.fl.config",
    "ClientDP": "tutela.fl.library",
    "SampleDP": "tutela.fl.library",
    "Study": "tutela.fl.library",
    "StudyResult": "tutela.fl.library",
    "initial_parameters": "tutela.fl.library",
    "simulate": "tutela.fl.library",
    "split_table": "tutela.fl.library",
    "flagship_config": "tutela.fl.recipes",
    "run_configured_study": "tutela.fl.recipes",
    "FedAdam": "tutela.fl.strategy",
    "FedAvg": "tutela.fl.strategy",
    "FedMedian": "tutela.fl.strategy",
    "FedProx": "tutela.fl.strategy",
    "FedTrimmedMean": "tutela.fl.strategy",
    "FedYogi": "tutela.fl.strategy",
    "Strategy": "tutela.fl.strategy",
    "Task": "tutela.fl.task",
}

__all__ = [
    "ClientDP",
    "FedAdam",
    "FedAvg",
    "FedMedian",
    "FedProx",
    "FedTrimmedMean",
    "FedYogi",
    "SampleDP",
    "Strategy",
    "Study",
    "StudyConfig",
    "StudyResult",
    "Task",
    "flagship_config",
    "initial_parameters",
    "load_study",
    "parse_study",
    "run_configured_study",
    "simulate",
    "split_table",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
