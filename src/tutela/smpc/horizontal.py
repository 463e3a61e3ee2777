"""Logistic and linear regression on horizontally partitioned rows, through secure sums.

Every party holds different rows of the same public columns. Each column is scaled by a
public bound (``u = x / B``, so ``|u| <= 1``; the label of a linear model by its own bound),
and the parties only ever release sums over all of them, computed by the secure sum of
:mod:`tutela.smpc.joint` (each party's contribution stays hidden in the total):

* Linear (:attr:`HorizontalModel.LINEAR`): one sum of the sufficient statistics
  ``[n, sum u, u u^T]`` over the columns ``features + [label]``, then the closed-form
  ridge solution of ``(X^T X + l2 n I) w = X^T y`` (intercept unpenalised) from the total.
* Logistic (:attr:`HorizontalModel.LOGISTIC`): one sum of the row count, then per
  iteration one sum of the local gradients ``sum_rows (sigmoid(u w) - y) [u, 1]`` with the
  exact sigmoid (computed locally in float64); every party takes the same step
  ``w <- w - lr (G / n + l2 w)``.

:func:`train_horizontal` is one party's program over a ``secure_sum`` callable (the
coordinator's relay in a deployment, queues in a test); :func:`plaintext_horizontal` runs
the same steps in float64 on the pooled table. Weights are returned in the data's units.

Privacy: the parties learn the released totals (the count and either the sufficient
statistics or every iteration's gradient sum) and the model. With DP each release gets
Gaussian noise of ``noise_multiplier * sensitivity`` (add or remove one row of the union):
``sensitivity`` is ``sqrt(1 + d + d**2)`` for the statistics (``d`` columns including the
label) and ``sqrt(d + 1)`` for a gradient sum (``|sigmoid - y| <= 1``, ``|u| <= 1``); the
count has sensitivity 1.

Precision: totals are fixed point with ``f = 20`` fractional bits; with ``N`` parties each
released entry is off by at most ``N * 2**-21`` (in ``u`` units) before any noise.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tutela.smpc.joint import StatsSpec, local_vector

__all__ = [
    "HorizontalModel",
    "HorizontalSpec",
    "SecureSumFn",
    "plaintext_horizontal",
    "train_horizontal",
]

FloatArray = npt.NDArray[np.float64]
SecureSumFn = Callable[[str, FloatArray, float], FloatArray]
"""``secure_sum(step, local_vector, sensitivity)``: the (noised) total over all parties."""


class HorizontalModel(enum.Enum):
    """Which regression."""

    LOGISTIC = "logistic"
    LINEAR = "linear"


@dataclass(frozen=True)
class HorizontalSpec:
    """What the parties train, agreed in public.

    Attributes:
        model: logistic or linear.
        features: the feature columns, in order.
        bounds: a public bound per feature (``|x| <= bound``; values beyond are refused).
        label: the label column (0/1 for logistic).
        label_bound: public bound on ``|label|`` (linear only).
        iterations, learning_rate: gradient descent (logistic only).
        l2: ridge penalty (bias unpenalised).
    """

    model: HorizontalModel
    features: tuple[str, ...]
    bounds: tuple[float, ...]
    label: str
    label_bound: float = 1.0
    iterations: int = 100
    learning_rate: float = 0.5
    l2: float = 0.0

    def __post_init__(self) -> None:
        if not self.features or self.label in self.features:
            raise ValueError("give one or more features, and a label that is not one of them")
        StatsSpec(self.columns, (*self.bounds, self.label_bound))  # checks names and bounds
        if self.iterations < 1 or not 0 < self.learning_rate <= 10 or self.l2 < 0:
            raise ValueError("need iterations >= 1, 0 < learning_rate <= 10, l2 >= 0")

    @property
    def columns(self) -> tuple[str, ...]:
        """Features, then the label."""
        return (*self.features, self.label)

    @property
    def stats_spec(self) -> StatsSpec:
        """The joint-statistics spec of the linear model's sufficient statistics."""
        return StatsSpec(self.columns, (*self.bounds, self.label_bound))

    @property
    def releases(self) -> int:
        """How many totals training releases."""
        return 1 if self.model is HorizontalModel.LINEAR else 1 + self.iterations


def _scaled(
    table: Mapping[str, npt.ArrayLike], spec: HorizontalSpec
) -> tuple[FloatArray, FloatArray]:
    cols = []
    for name, bound in zip(spec.features, spec.bounds, strict=True):
        if name not in table:
            raise ValueError(f"no column {name!r}")
        x = np.asarray(table[name], dtype=np.float64)
        if not np.all(np.isfinite(x)) or np.any(np.abs(x) > bound):
            raise ValueError(f"column {name!r} has non-finite values or values beyond {bound:g}")
        cols.append(x / bound)
    if spec.label not in table:
        raise ValueError(f"no column {spec.label!r}")
    y = np.asarray(table[spec.label], dtype=np.float64)
    if spec.model is HorizontalModel.LOGISTIC and not np.all(np.isin(y, (0.0, 1.0))):
        raise ValueError(f"label {spec.label!r} must be 0 or 1")
    u = np.stack(cols, axis=1) if cols else np.zeros((len(y), 0))
    if u.shape[0] != y.shape[0]:
        raise ValueError("the columns have different lengths")
    return u, y


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def _to_data_units(w: FloatArray, spec: HorizontalSpec, scale: float = 1.0) -> FloatArray:
    coef = scale * w[:-1] / np.asarray(spec.bounds, dtype=np.float64)
    return np.append(coef, scale * w[-1])


def _solve_linear(total: FloatArray, spec: HorizontalSpec) -> FloatArray:
    d = len(spec.features)
    k = d + 1
    n = float(total[0])
    if n < 2:
        raise ValueError("fewer than 2 rows in total")
    sums = total[1 : 1 + k]
    cross = total[1 + k : 1 + k + k * k].reshape(k, k)
    a = np.empty((k, k))  # [features..., intercept]
    a[:d, :d] = cross[:d, :d]
    a[:d, d] = a[d, :d] = sums[:d]
    a[d, d] = n
    b = np.append(cross[:d, d], sums[d])
    reg = np.full(k, spec.l2 * n)
    reg[-1] = 0.0
    w = np.linalg.lstsq(a + np.diag(reg), b, rcond=None)[0]
    return _to_data_units(w, spec, spec.label_bound)


def train_horizontal(
    table: Mapping[str, npt.ArrayLike], spec: HorizontalSpec, secure_sum: SecureSumFn
) -> FloatArray:
    """Run this party's side of training; return the model (coefficients, then intercept).

    Args:
        table: this party's rows (columns by name).
        spec: the agreed parameters.
        secure_sum: the sum over all parties (see :data:`SecureSumFn`).

    Raises:
        ValueError: this party's table does not fit the spec, or the total count is below 2.
    """
    u, y = _scaled(table, spec)
    if spec.model is HorizontalModel.LINEAR:
        vector = local_vector(table, spec.stats_spec)
        return _solve_linear(secure_sum("stats", vector, spec.stats_spec.sensitivity), spec)
    n = float(secure_sum("count", np.array([float(u.shape[0])]), 1.0)[0])
    if n < 2:
        raise ValueError("fewer than 2 rows in total")
    d = u.shape[1]
    x1 = np.hstack([u, np.ones((u.shape[0], 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, spec.l2)
    reg[-1] = 0.0
    sensitivity = math.sqrt(d + 1)
    for it in range(spec.iterations):
        local = x1.T @ (_sigmoid(x1 @ w) - y)
        g = secure_sum(f"grad{it}", local, sensitivity)
        w = w - spec.learning_rate * (g / n + reg * w)
    return _to_data_units(w, spec)


def plaintext_horizontal(table: Mapping[str, npt.ArrayLike], spec: HorizontalSpec) -> FloatArray:
    """The same training in float64 on the pooled table (one party holding every row)."""
    return train_horizontal(table, spec, lambda step, vector, sensitivity: vector)
