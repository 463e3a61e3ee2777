"""What a study predicts: a binary outcome (one logit per row) or one of several classes
(one logit per class). The loss, the label encoding, the probabilities and the metrics
follow from it, the same at every site, at the coordinator and in the baselines.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from tutela.errors import DataError
from tutela.fl.metrics import binary_metrics, multiclass_metrics
from tutela.fl.records import Metrics


class Task(StrEnum):
    """``binary``: the model returns one logit per row (``(rows,)`` or ``(rows, 1)``);
    ``multiclass``: one logit per class (``(rows, classes)``), labels ``0..classes-1``."""

    BINARY = "binary"
    MULTICLASS = "multiclass"

    def loss(self) -> nn.Module:
        """The training loss (mean over the batch, as DP-SGD's per-example clipping expects)."""
        return nn.BCEWithLogitsLoss() if self is Task.BINARY else nn.CrossEntropyLoss()

    def labels(self, outcome: npt.ArrayLike) -> npt.NDArray[np.float32] | npt.NDArray[np.int64]:
        """Labels as the loss takes them (float 0/1, or class indices); checks their range."""
        y = np.asarray(outcome)
        if y.ndim != 1:
            raise DataError(f"labels must be one-dimensional, got shape {y.shape}")
        if len(y) and not np.isfinite(y.astype(np.float64)).all():
            raise DataError("labels contain NaN or infinite values")
        if len(y) and (np.any(y < 0) or np.any(y != np.round(y))):
            raise DataError("labels must be non-negative integers")
        if self is Task.BINARY:
            if len(y) and np.any(y > 1):
                raise DataError("a binary task needs labels 0 and 1")
            return y.astype(np.float32)
        return y.astype(np.int64)

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """The model's output as the loss takes it (binary: one logit per row)."""
        if self is Task.BINARY:
            if logits.ndim == 2 and logits.shape[1] == 1:
                return logits.squeeze(-1)
            if logits.ndim != 1:
                raise DataError(
                    f"a binary model must return one logit per row, got {tuple(logits.shape)}"
                )
            return logits
        if logits.ndim != 2:
            raise DataError(
                f"a multiclass model must return (rows, classes) logits, got {tuple(logits.shape)}"
            )
        return logits

    def probabilities(self, logits: torch.Tensor) -> npt.NDArray[np.float64]:
        """Positive-class probability per row, or a probability per class."""
        out = self.outputs(logits)
        prob = torch.sigmoid(out) if self is Task.BINARY else torch.softmax(out, dim=1)
        return prob.double().numpy()

    def metrics(self, labels: npt.ArrayLike, prob: npt.ArrayLike) -> Metrics:
        """Accuracy, ROC AUC and log loss (see :mod:`tutela.fl.metrics`)."""
        if self is Task.BINARY:
            return binary_metrics(labels, prob)
        return multiclass_metrics(labels, prob)


def predict(model: nn.Module, features: npt.ArrayLike, task: Task) -> npt.NDArray[np.float64]:
    """The model's probabilities for ``features`` (evaluation mode, no gradients)."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.asarray(features, np.float32)))
    return task.probabilities(logits)
