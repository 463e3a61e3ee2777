"""Binary-classification metrics used by every evaluation (sites, coordinator, baselines)."""

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
