"""Logistic regression on vertically partitioned, PSI-linked records.

After :mod:`tutela.smpc.psi` (``INTERSECTION`` mode) the parties hold the linked rows in one
joint order; each holds different columns of them (a hospital its labs, another its
diagnoses), and one holds the label. Each party secret-shares its own columns once; the
model lives in shares for the whole training and only the final weights are opened
(to every party). Full-batch gradient descent with the linear sigmoid ``0.5 + z / 4``
(:class:`~tutela.smpc.logreg.Sigmoid`), exactly the steps of
:func:`tutela.smpc.logreg.train_logistic_regression`::

    z = X w,   p = 0.5 + z / 4,   g = X^T (p - y) / n + l2 w,   w = w - lr g

The same program runs on a :class:`~tutela.smpc.party.PartyRuntime` at each party and on a
:class:`~tutela.smpc.party.ShapeRuntime` at the dealer (which thereby prepares the parties'
material without data). :func:`plaintext_reference` runs the same steps in float64 on the
joined table: the secure model matches it up to fixed-point error.

Privacy: the parties learn the number of linked rows, each other's column counts and the
final model (weights of every party's columns and the bias); every intermediate stays in
shares (semi-honest parties, a dealer that colludes with none). The final model is not
differentially private.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from tutela.hazmat.ring import RingArray
from tutela.smpc.party import Masked

__all__ = ["VerticalPlan", "plaintext_reference", "train_vertical"]

FloatArray = npt.NDArray[np.float64]


class Runtime(Protocol):
    """What the program needs of a runtime (a party's, or the dealer's dry run)."""

    party: int

    def input(
        self, owner: int, value: npt.ArrayLike | None, shape: tuple[int, ...]
    ) -> RingArray: ...
    def public(self, value: npt.ArrayLike) -> RingArray: ...
    def open(self, share: RingArray) -> FloatArray: ...
    def add_public(self, share: RingArray, c: npt.ArrayLike) -> RingArray: ...
    def truncate(self, share: RingArray, shift: int | None = None) -> RingArray: ...
    def mul_public(
        self, share: RingArray, c: npt.ArrayLike, *, frac_bits: int = 20
    ) -> RingArray: ...
    def mask_matrix(self, share: RingArray) -> Masked: ...
    def matmul(self, m: Masked, y: RingArray, *, transpose: bool = False) -> RingArray: ...


@dataclass(frozen=True)
class VerticalPlan:
    """The public parameters every party (and the dealer) agrees on.

    Attributes:
        rows: number of linked rows.
        widths: number of feature columns of each party, in party order.
        label_party: the party holding the 0/1 label.
        iterations, learning_rate, l2: gradient descent.
    """

    rows: int
    widths: tuple[int, ...]
    label_party: int
    iterations: int = 100
    learning_rate: float = 0.5
    l2: float = 0.0

    def __post_init__(self) -> None:
        if self.rows < 2 or len(self.widths) < 2 or any(w < 0 for w in self.widths):
            raise ValueError("need 2+ rows and a column count per party (2+ parties)")
        if sum(self.widths) < 1 or not 0 <= self.label_party < len(self.widths):
            raise ValueError("need at least one feature and a label party")
        if self.iterations < 1 or not 0 < self.learning_rate <= 10 or self.l2 < 0:
            raise ValueError("need iterations >= 1, 0 < learning_rate <= 10, l2 >= 0")

    @property
    def dimension(self) -> int:
        """Number of weights (every party's columns and the bias)."""
        return sum(self.widths) + 1


def _check(features: FloatArray, plan: VerticalPlan, party: int) -> None:
    if features.shape != (plan.rows, plan.widths[party]):
        raise ValueError(f"party {party} needs features of shape {(plan.rows, plan.widths[party])}")
    if not np.all(np.isfinite(features)) or np.any(np.abs(features) > 64):
        raise ValueError("features must be finite and standardised (|x| <= 64)")


def train_vertical(
    rt: Runtime,
    plan: VerticalPlan,
    features: npt.ArrayLike | None,
    labels: npt.ArrayLike | None = None,
) -> FloatArray:
    """Run the training at this runtime's party; return the opened weights (bias last).

    Args:
        rt: this party's runtime (or the dealer's dry run: no features, no labels).
        plan: the agreed parameters.
        features: this party's standardised columns of the linked rows, in the joint order.
        labels: the 0/1 labels (the label party only).

    Raises:
        ValueError: this party's data does not fit the plan.
    """
    me = rt.party
    x_own = None
    if me >= 0:
        x_own = np.asarray(features, dtype=np.float64).reshape(plan.rows, -1)
        _check(x_own, plan, me)
        if me == plan.label_party:
            y = np.asarray(labels, dtype=np.float64).reshape(-1)
            if y.shape != (plan.rows,) or not np.all(np.isin(y, (0.0, 1.0))):
                raise ValueError("labels must be 0 or 1, one per linked row")
    blocks = [
        rt.input(i, x_own if i == me else None, (plan.rows, w))
        for i, w in enumerate(plan.widths)
        if w > 0
    ]
    ones = rt.public(np.ones((plan.rows, 1)))
    X = np.hstack([*blocks, ones])
    y_sh = rt.input(
        plan.label_party,
        None if me != plan.label_party else np.asarray(labels, np.float64).reshape(-1, 1),
        (plan.rows, 1),
    )
    masked = rt.mask_matrix(X)
    d = plan.dimension
    w = np.zeros((d, 1), np.uint64)
    reg = np.full((d, 1), plan.l2)
    reg[-1] = 0.0
    for _ in range(plan.iterations):
        z = rt.matmul(masked, w)
        p = rt.add_public(rt.truncate(z, 2), 0.5)
        grad = rt.matmul(masked, p - y_sh, transpose=True)
        step = rt.mul_public(grad, plan.learning_rate / plan.rows, frac_bits=30)
        if plan.l2 > 0:
            step = step + rt.mul_public(w, plan.learning_rate * reg)
        w = w - step
    return rt.open(w).reshape(-1)


def plaintext_reference(
    parts: Sequence[npt.ArrayLike], labels: npt.ArrayLike, plan: VerticalPlan
) -> FloatArray:
    """The same gradient descent in float64 on the joined table (bias last)."""
    X = np.hstack([np.asarray(p, dtype=np.float64).reshape(plan.rows, -1) for p in parts])
    X = np.hstack([X, np.ones((plan.rows, 1))])
    y = np.asarray(labels, dtype=np.float64).reshape(-1, 1)
    w = np.zeros((X.shape[1], 1))
    reg = np.full_like(w, plan.l2)
    reg[-1] = 0.0
    for _ in range(plan.iterations):
        p = 0.5 + (X @ w) / 4
        w = w - plan.learning_rate * (X.T @ (p - y) / plan.rows + reg * w)
    return w.reshape(-1)
