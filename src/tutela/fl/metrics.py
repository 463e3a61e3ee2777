"""Classification metrics used by every evaluation (sites, coordinator, baselines).

Both tasks report the same keys (``accuracy``, ``auc``, ``log_loss``), so results,
transcripts and reports read the same whatever the study predicts.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.metrics import log_loss, roc_auc_score

from tutela.fl.records import Metrics


def binary_metrics(y_true: npt.ArrayLike, prob: npt.ArrayLike) -> Metrics:
    """Accuracy (threshold 0.5), ROC AUC (NaN if one class only) and log loss."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.clip(np.asarray(prob, dtype=np.float64), 1e-7, 1 - 1e-7)
    accuracy = float(np.mean((p >= 0.5) == (y == 1))) if len(y) else float("nan")
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    loss = float(log_loss(y, p, labels=[0, 1])) if len(y) else float("nan")
    return {"accuracy": accuracy, "auc": auc, "log_loss": loss}


def multiclass_metrics(y_true: npt.ArrayLike, prob: npt.ArrayLike) -> Metrics:
    """Accuracy (arg max), macro one-vs-rest ROC AUC over the classes present (NaN with
    fewer than two) and log loss, for ``prob`` of shape ``(rows, classes)``."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"probabilities of shape {p.shape} for {len(y)} labels")
    if not len(y):
        return {"accuracy": float("nan"), "auc": float("nan"), "log_loss": float("nan")}
    classes = p.shape[1]
    p = np.clip(p, 1e-7, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    accuracy = float(np.mean(p.argmax(axis=1) == y))
    present = np.unique(y)
    aucs = [
        float(roc_auc_score(y == c, p[:, c])) for c in present if 0 < int(np.sum(y == c)) < len(y)
    ]
    auc = float(np.mean(aucs)) if len(present) >= 2 and aucs else float("nan")
    loss = float(log_loss(y, p, labels=list(range(classes))))
    return {"accuracy": accuracy, "auc": auc, "log_loss": loss}
