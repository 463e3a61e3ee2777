"""Safe, high-level recipes: the flagship configuration and a fully composed study run.

:func:`run_configured_study` composes the domain packages around the round engine: the
privacy pipeline (DP-SGD at the sites or DP-FedAvg at the coordinator), secure aggregation,
the privacy ledger and the audit log, and writes the run directory an auditor reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.engine import RoundRecord
from tutela.fl.records import parameters_to_bytes
from tutela.fl.study import run_study

FLAGSHIP: dict[str, Any] = {
    "study": {"name": "hospital-diabetes", "purpose": "disease-outcome-prediction", "seed": 0},
    "data": {
        "dataset": "pima-diabetes",
        "sites": 5,
        "partition": "dirichlet",
        "alpha": 0.5,
        "test_fraction": 0.25,
        "min_site_rows": 20,
    },
    "model": {"kind": "logistic"},
    "training": {
        "rounds": 30,
        "local_epochs": 2,
        "batch_size": 32,
        "learning_rate": 0.1,
        "min_fit_sites": 3,
        "min_quorum": 3,
    },
    "strategy": {"name": "fedavg"},
}


def flagship_config(
    *,
    quick: bool = False,
    epsilon: float | None = None,
    dataset: str | None = None,
    sites: int | None = None,
    rounds: int | None = None,
    seed: int | None = None,
) -> StudyConfig:
    """The flagship study: hospitals predicting diabetes, federated, on embedded defaults."""
    data = json.loads(json.dumps(FLAGSHIP))
    if quick:
        data["training"]["rounds"] = 10
    if rounds is not None:
        data["training"]["rounds"] = rounds
    if dataset is not None:
        data["data"]["dataset"] = dataset
    if sites is not None:
        data["data"]["sites"] = sites
        data["training"]["min_fit_sites"] = min(data["training"]["min_fit_sites"], sites)
        data["training"]["min_quorum"] = min(data["training"]["min_quorum"], sites)
    if seed is not None:
        data["study"]["seed"] = seed
    if epsilon is not None:
        data["privacy"] = {"mode": "sample", "epsilon": epsilon, "delta": 1e-5}
    return parse_study(data)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_configured_study(
    config: StudyConfig,
    *,
    progress: Callable[[RoundRecord], None] | None = None,
    run_dir: Path | None = None,
) -> dict[str, Any]:
    """Run a study with every configured protection and write ``run_dir`` if given.

    The run directory holds ``results.json`` and ``model.safetensors``.
    """
    results = run_study(config, progress=progress)
    final = results.pop("final_parameters")
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "model.safetensors").write_bytes(parameters_to_bytes(final))
        (run_dir / "results.json").write_text(json.dumps(_json_ready(results), indent=2) + "\n")
    return results
