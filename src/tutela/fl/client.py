"""Sites: the data holders. Local training is a real PyTorch loop; only parameters leave.

A :class:`SiteClient` is anything with ``fit`` and ``evaluate``; :class:`LocalSite` is the
in-process implementation used by simulation and by the deployed site agent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from tutela.errors import DataError
from tutela.fl.metrics import binary_metrics
from tutela.fl.models import get_parameters, set_parameters
from tutela.fl.records import EvaluateIns, EvaluateRes, FitIns, FitRes, Parameters


class OptimizerKind(StrEnum):
    SGD = "sgd"
    ADAM = "adam"


@dataclass(frozen=True)
class LocalTraining:
    """How a site trains in one round."""

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.05
    optimizer: OptimizerKind = OptimizerKind.SGD
    momentum: float = 0.0
    weight_decay: float = 0.0


@runtime_checkable
class SiteClient(Protocol):
    """A participant in federated rounds."""

    site_id: str

    def fit(self, ins: FitIns) -> FitRes: ...

    def evaluate(self, ins: EvaluateIns) -> EvaluateRes: ...


@dataclass(frozen=True)
class FeatureMoments:
    """Per-site sums from which the coordinator computes global standardisation."""

    count: int
    total: npt.NDArray[np.float64]
    total_sq: npt.NDArray[np.float64]


def global_standardisation(
    moments: list[FeatureMoments],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Combine per-site moments into the pooled mean and standard deviation."""
    count = sum(m.count for m in moments)
    if count == 0:
        raise DataError("no rows to standardise")
    total = np.sum([m.total for m in moments], axis=0)
    total_sq = np.sum([m.total_sq for m in moments], axis=0)
    mean = total / count
    var = np.maximum(total_sq / count - mean**2, 0.0)
    std = np.sqrt(var)
    return mean, np.where(std > 1e-12, std, 1.0)


ModelFactory = Callable[[], nn.Module]
PrivatizeHook = Callable[
    [nn.Module, torch.optim.Optimizer, torch.utils.data.DataLoader[tuple[torch.Tensor, ...]], int],
    tuple[nn.Module, torch.optim.Optimizer, torch.utils.data.DataLoader[tuple[torch.Tensor, ...]]],
]


class LocalSite:
    """A site holding its rows in memory and training a fresh copy of the model each round.

    Args:
        site_id: the site's name.
        features: float32 matrix, already restricted to the columns the study may use.
        outcome: 0/1 labels.
        model_factory: builds the (untrained) model architecture.
        training: local training settings.
        seed: seeds the site's data order (not privacy noise).
        privatize: optional hook turning (model, optimizer, loader, round) into private
            drop-in versions (DP-SGD); composed by :mod:`tutela.fl.privacy`.
    """

    def __init__(
        self,
        site_id: str,
        features: npt.NDArray[np.float32],
        outcome: npt.NDArray[np.int64],
        model_factory: ModelFactory,
        training: LocalTraining,
        *,
        seed: int = 0,
        privatize: PrivatizeHook | None = None,
    ) -> None:
        if features.ndim != 2 or len(features) != len(outcome):
            raise DataError(
                f"site {site_id}: features {features.shape} and outcome {outcome.shape} disagree"
            )
        if len(outcome) == 0:
            raise DataError(f"site {site_id} has no rows")
        if not np.isfinite(features).all():
            raise DataError(f"site {site_id}: features contain NaN or infinite values")
        self.site_id = site_id
        self._x = features.astype(np.float32, copy=True)
        self._y = outcome.astype(np.float32)
        self._model_factory = model_factory
        self._training = training
        self._privatize = privatize
        self._generator = torch.Generator().manual_seed(seed)

    @property
    def num_examples(self) -> int:
        return len(self._y)

    def feature_moments(self) -> FeatureMoments:
        x = self._x.astype(np.float64)
        return FeatureMoments(len(x), x.sum(axis=0), (x * x).sum(axis=0))

    def standardise(self, mean: npt.NDArray[np.float64], std: npt.NDArray[np.float64]) -> None:
        self._x = ((self._x - mean) / std).astype(np.float32)

    def _loader(self) -> torch.utils.data.DataLoader[tuple[torch.Tensor, ...]]:
        dataset = torch.utils.data.TensorDataset(
            torch.from_numpy(self._x), torch.from_numpy(self._y)
        )
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=min(self._training.batch_size, len(dataset)),
            shuffle=True,
            generator=self._generator,
        )

    def _optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        t = self._training
        if t.optimizer is OptimizerKind.ADAM:
            return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=t.weight_decay)
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=t.momentum, weight_decay=t.weight_decay
        )

    def fit(self, ins: FitIns) -> FitRes:
        model = self._model_factory()
        set_parameters(model, ins.parameters)
        epochs = int(ins.config.get("local_epochs", self._training.epochs))
        lr = float(ins.config.get("learning_rate", self._training.learning_rate))
        mu = float(ins.config.get("proximal_mu", 0.0))
        server_round = int(ins.config.get("server_round", 0))
        optimizer = self._optimizer(model, lr)
        loader = self._loader()
        if self._privatize is not None:
            model, optimizer, loader = self._privatize(model, optimizer, loader, server_round)
        anchor = [p.detach().clone() for p in model.parameters()]
        loss_fn = nn.BCEWithLogitsLoss()
        model.train()
        seen = 0
        running = 0.0
        for _ in range(epochs):
            for xb, yb in loader:
                if len(yb) == 0:  # Poisson sampling can draw an empty batch
                    continue
                optimizer.zero_grad()
                loss = loss_fn(model(xb).squeeze(-1), yb)
                if mu > 0:
                    prox = sum(
                        ((p - a) ** 2).sum()
                        for p, a in zip(model.parameters(), anchor, strict=True)
                    )
                    loss = loss + 0.5 * mu * prox
                loss.backward()
                optimizer.step()
                running += float(loss.detach()) * len(yb)
                seen += len(yb)
        params = get_parameters(_unwrap(model))
        return FitRes(params, self.num_examples, {"train_loss": running / max(seen, 1)})

    def predict_proba(
        self, params: Parameters, features: npt.NDArray[np.float32] | None = None
    ) -> npt.NDArray[np.float64]:
        model = self._model_factory()
        set_parameters(model, params)
        return predict_proba(model, self._x if features is None else features)

    def evaluate(self, ins: EvaluateIns) -> EvaluateRes:
        prob = self.predict_proba(ins.parameters)
        metrics = binary_metrics(self._y, prob)
        return EvaluateRes(metrics["log_loss"], self.num_examples, metrics)


def _unwrap(model: nn.Module) -> nn.Module:
    """Return the wrapped module of a private wrapper (exposes ``_module``), else the model."""
    inner = getattr(model, "_module", None)
    return inner if isinstance(inner, nn.Module) else model


def predict_proba(model: nn.Module, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Probability of the positive class for each row."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.asarray(features, np.float32))).squeeze(-1)
    return torch.sigmoid(logits).double().numpy()
