"""Cross-device studies: many small devices with skewed data, a sample of them per round.

:func:`digits_devices` gives each of ``devices`` simulated devices a few handwritten digits
(scikit-learn's bundled ``load_digits``: 1,797 8x8 images, ten classes) from only
``classes_per_device`` of the ten classes (label skew, as on phones: each user writes some
digits more than others). :func:`cross_device_config` is the matching study: a sample of
``per_round`` devices trains each round, a multinomial logistic regression
(:func:`digits_model`), optionally with client-level DP-FedAvg (adaptive clipping) and
SecAgg+ among the sampled devices. Run it in process or on Ray
(:class:`~tutela.fl.ray_backend.RayBackend`).

The devices draw their rows from the training part of one small dataset, so with more
devices than training rows they share images (each device's own rows are distinct); the
held-out test rows are never given to a device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tutela.data.datasets import Dataset
from tutela.data.partition import train_test_split_indices
from tutela.errors import ConfigError
from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.study import StudyData

__all__ = ["cross_device_config", "digits_devices", "digits_model"]

DIGIT_CLASSES = 10
DIGIT_FEATURES = 64


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    columns = [f"pixel_{i}" for i in range(DIGIT_FEATURES)]
    return Dataset(
        name="digits",
        features=pd.DataFrame((x / 16.0).astype(np.float32), columns=columns),
        outcome=np.asarray(y, np.int64),
        outcome_name="digit (0-9)",
        source="scikit-learn load_digits (UCI optical recognition of handwritten digits)",
    )


def digits_devices(
    devices: int, *, rows_per_device: int = 8, classes_per_device: int = 2, seed: int = 0
) -> StudyData:
    """``devices`` label-skewed partitions of the digits, and the held-out test set (25%).

    Raises:
        ConfigError: fewer than one device or row, or classes outside ``1..10``.
    """
    if devices < 1 or rows_per_device < 1:
        raise ConfigError("a cross-device study needs at least one device and one row each")
    if not 1 <= classes_per_device <= DIGIT_CLASSES:
        raise ConfigError(f"classes_per_device must be in 1..{DIGIT_CLASSES}")
    dataset = _digits()
    y = dataset.outcome
    train, test = train_test_split_indices(y, 0.25, seed=seed)
    by_class = [train[y[train] == c] for c in range(DIGIT_CLASSES)]
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    for _ in range(devices):
        classes = rng.choice(DIGIT_CLASSES, size=classes_per_device, replace=False)
        pool = np.concatenate([by_class[c] for c in classes])
        take = min(rows_per_device, len(pool))
        parts.append(np.sort(rng.choice(pool, size=take, replace=False)).astype(np.int64))
    columns = list(dataset.features.columns)
    return StudyData(
        dataset,
        columns,
        parts,
        test,
        dataset.numeric_matrix(columns),
        y,
        [f"device-{i:05d}" for i in range(devices)],
    )


def digits_model(seed: int = 0) -> Callable[[], nn.Module]:
    """Multinomial logistic regression over the 64 pixels (ten logits), seeded weights."""

    def build() -> nn.Module:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            return nn.Sequential(nn.Linear(DIGIT_FEATURES, DIGIT_CLASSES))
        finally:
            torch.random.set_rng_state(state)

    return build


def cross_device_config(
    devices: int,
    per_round: int,
    *,
    rounds: int = 5,
    seed: int = 0,
    epsilon: float | None = None,
    secure_aggregation: bool = False,
    min_quorum: int | None = None,
    learning_rate: float = 0.5,
) -> StudyConfig:
    """The digits cross-device study: ``per_round`` of ``devices`` devices train each round
    (one local epoch, batch 8). With ``epsilon``: client-level DP-FedAvg with adaptive
    clipping (every sampled device must reply: the noise is calibrated to them); with
    ``secure_aggregation``: SecAgg+ among the sampled devices.

    Raises:
        ConfigError: more devices per round than devices, or an invalid study.
    """
    if not 1 <= per_round <= devices:
        raise ConfigError("per_round must be between 1 and the number of devices")
    quorum = min_quorum if min_quorum is not None else max(1, per_round // 2)
    data: dict[str, Any] = {
        "study": {"name": "digits-cross-device", "purpose": "handwriting-recognition",
                  "seed": seed},
        "data": {"sites": devices, "standardise": False, "min_site_rows": 1},
        "model": {"task": "multiclass"},
        "training": {
            "rounds": rounds,
            "local_epochs": 1,
            "batch_size": 8,
            "learning_rate": learning_rate,
            "fraction_fit": per_round / devices,
            "min_fit_sites": per_round,
            "min_quorum": per_round if epsilon is not None else quorum,
        },
        "strategy": {"name": "fedavg"},
        "secure_aggregation": {"protocol": "secagg+" if secure_aggregation else "none"},
    }  # fmt: skip
    if epsilon is not None:
        data["privacy"] = {
            "mode": "client", "epsilon": epsilon, "delta": 1e-5, "adaptive_clipping": True,
        }  # fmt: skip
    return parse_study(data)
