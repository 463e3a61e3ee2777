"""Models a CKKS service can evaluate exactly: logistic regression and polynomial MLPs.

A :class:`PolyNetwork` is a stack of affine layers with a fixed quadratic activation
``a0 + a1 h + a2 h^2`` between them (:data:`QUADRATIC_RELU`, the least-squares-style
quadratic stand-in for ReLU used since CryptoNets). The network works on raw feature
values: the standardisation a study used is folded into the first layer
(:meth:`PolyNetwork.from_standardised`), so a data owner encrypts its columns as they are.

Evaluation is column packed: one ciphertext per feature holds that feature for up to N/2
rows, so every layer needs only plaintext-scalar multiplications, additions and (for the
activation) one ciphertext square: no rotations, hence no Galois keys.

Multiplicative depth (:attr:`PolyNetwork.depth`): 1 for logistic regression; ``2 L`` for an
MLP with ``L`` hidden layers and one output. The activation's quadratic coefficient is
folded into the layer before it (``c h^2 = sign(c) (sqrt|c| h)^2``) and its linear and
constant terms into the layer after it, so each hidden layer costs one scalar
multiplication and one square. :func:`params_for_depth` picks the smallest ring that holds
``60 + 40 d + 60`` bits at 128-bit security.

Error bound (:meth:`PolyNetwork.error_bound`): interval propagation of (largest magnitude,
largest error) through the circuit, from the declared feature ranges: each fresh
ciphertext and each operation adds at most ``E = 2**-(scale_bits - 16)`` (about 8x the
worst case measured on this stack), each multiplication a relative error of
:data:`RELATIVE_ERROR` of its product (measured: 2**-22.8; the rescaling primes are not
exactly 2**40), and a square ``(h + e)^2 - h^2 = 2 h e + e^2``. It holds for every row
whose features lie inside the declared ranges, which the data owner's encryption enforces.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal as ts

from tutela.he.ckks import CkksParams

__all__ = [
    "QUADRATIC_RELU",
    "RELATIVE_ERROR",
    "Layer",
    "NetworkKind",
    "PolyNetwork",
    "params_for_depth",
]

QUADRATIC_RELU: tuple[float, float, float] = (0.25, 0.5, 0.125)
"""``0.25 + 0.5 h + 0.125 h^2``: a quadratic stand-in for ReLU on about [-4, 4]."""

RELATIVE_ERROR = 2.0**-20
"""Bound on the relative error one multiplication (and its rescale) adds to its product."""
_SCALE_BITS = 40
_EDGE_BITS = 60
_MAX_BITS = {8192: 218, 16384: 438, 32768: 881}
Array = npt.NDArray[np.float64]


class NetworkKind(StrEnum):
    """What a served model is."""

    LOGISTIC = "logistic"
    POLY_MLP = "poly-mlp"


def params_for_depth(depth: int) -> CkksParams:
    """The smallest CKKS parameters (128-bit security) with ``depth`` rescales.

    Primes: 60 bits at both ends, 40 bits per level, scale 2**40, so a result decrypts
    correctly while its magnitude stays below 2**19.

    Raises:
        ValueError: ``depth`` below 1 or beyond what N = 32768 allows (18).
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    bits = (_EDGE_BITS, *([_SCALE_BITS] * depth), _EDGE_BITS)
    for n, limit in _MAX_BITS.items():
        if sum(bits) <= limit:
            return CkksParams(n, bits, _SCALE_BITS, max_abs=2.0**18)
    raise ValueError(f"a multiplicative depth of {depth} does not fit N = 32768 at 128 bits")


@dataclass(frozen=True)
class Layer:
    """One affine layer ``W x + b`` (``W`` of shape (outputs, inputs))."""

    weights: Array
    bias: Array

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        b = np.asarray(self.bias, dtype=np.float64).reshape(-1)
        if w.ndim != 2 or w.shape[0] != b.shape[0] or w.size == 0:
            raise ValueError("a layer needs weights (outputs, inputs) and one bias per output")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ValueError("layer weights and biases must be finite")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "bias", b)


@dataclass(frozen=True)
class _Bound:
    magnitude: float
    error: float


@dataclass(frozen=True)
class PolyNetwork:
    """A network on raw features: affine layers, quadratic activations between them.

    Attributes:
        features: the input column names, in order.
        ranges: the declared ``(low, high)`` of each feature (the error bound holds inside).
        layers: the affine layers, the last with exactly one output (the logit).
        activation: coefficients ``(a0, a1, a2)`` of the activation between layers.
    """

    features: tuple[str, ...]
    ranges: tuple[tuple[float, float], ...]
    layers: tuple[Layer, ...]
    activation: tuple[float, float, float] = QUADRATIC_RELU

    def __post_init__(self) -> None:
        if not self.layers or not self.features:
            raise ValueError("a network needs features and at least one layer")
        if len(set(self.features)) != len(self.features):
            raise ValueError("feature names must be unique")
        if len(self.ranges) != len(self.features):
            raise ValueError("one (low, high) range per feature")
        for name, (low, high) in zip(self.features, self.ranges, strict=True):
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"feature {name!r}: need a finite range with low < high")
        width = len(self.features)
        for i, layer in enumerate(self.layers):
            if layer.weights.shape[1] != width:
                raise ValueError(f"layer {i} expects {layer.weights.shape[1]} inputs, not {width}")
            width = layer.weights.shape[0]
        if width != 1:
            raise ValueError("the last layer must have exactly one output (the logit)")
        if self.activation[2] == 0.0 and len(self.layers) > 1:
            raise ValueError("the activation needs a non-zero quadratic coefficient")

    # construction -----------------------------------------------------------------------

    @classmethod
    def from_standardised(
        cls,
        features: Sequence[str],
        layers: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
        mean: npt.ArrayLike,
        std: npt.ArrayLike,
        ranges: Sequence[tuple[float, float]],
        activation: tuple[float, float, float] = QUADRATIC_RELU,
    ) -> PolyNetwork:
        """A network trained on ``(x - mean) / std``, with that standardisation folded into
        its first layer (``W / std`` and ``b - (W / std) mean``)."""
        mu = np.asarray(mean, dtype=np.float64).reshape(-1)
        sd = np.asarray(std, dtype=np.float64).reshape(-1)
        if mu.shape != (len(features),) or sd.shape != mu.shape:
            raise ValueError("one mean and one standard deviation per feature")
        if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sd)) and np.all(sd > 0)):
            raise ValueError("the standardisation must be finite with positive deviations")
        built = [Layer(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]
        w0 = built[0].weights / sd
        built[0] = Layer(w0, built[0].bias - w0 @ mu)
        return cls(
            tuple(features),
            tuple((float(lo), float(hi)) for lo, hi in ranges),
            tuple(built),
            activation,
        )

    # description -------------------------------------------------------------------------

    @property
    def kind(self) -> NetworkKind:
        """Logistic regression (one layer) or a polynomial MLP."""
        return NetworkKind.LOGISTIC if len(self.layers) == 1 else NetworkKind.POLY_MLP

    @property
    def depth(self) -> int:
        """Multiplicative depth of the encrypted evaluation (rescales consumed)."""
        return 1 if len(self.layers) == 1 else 2 * (len(self.layers) - 1)

    @property
    def params(self) -> CkksParams:
        """The CKKS parameters this network is evaluated under (from its depth)."""
        return params_for_depth(self.depth)

    @property
    def needs_relin_keys(self) -> bool:
        """Whether the evaluation squares ciphertexts (the public bundle must carry relin keys)."""
        return len(self.layers) > 1

    def digest(self) -> str:
        """SHA-256 (hex) over the features, ranges, activation and every weight: the model id."""
        h = hashlib.sha256(b"tutela.he.network/v1\x00")
        h.update(json.dumps([self.features, self.ranges, self.activation]).encode())
        for layer in self.layers:
            h.update(np.ascontiguousarray(layer.weights, dtype="<f8").tobytes())
            h.update(np.ascontiguousarray(layer.bias, dtype="<f8").tobytes())
        return h.hexdigest()

    # plaintext reference -------------------------------------------------------------------

    def score_plain(self, X: npt.ArrayLike) -> Array:
        """The logit of each row, in plaintext (float64): the reference for encrypted scores."""
        h = np.asarray(X, dtype=np.float64)
        a0, a1, a2 = self.activation
        for i, layer in enumerate(self.layers):
            h = h @ layer.weights.T + layer.bias
            if i < len(self.layers) - 1:
                h = a0 + a1 * h + a2 * h * h
        return np.asarray(h[:, 0], dtype=np.float64)

    # error bound ---------------------------------------------------------------------------

    def error_bound(self) -> float:
        """Largest absolute error of a decrypted logit, for rows inside the declared ranges.

        Raises:
            ValueError: a value of the circuit could exceed what the parameters decrypt
                (2**19 at the last level); narrow the feature ranges.
        """
        params = self.params
        op = 2.0 ** -(params.scale_bits - 16)
        low = np.array([r[0] for r in self.ranges])
        high = np.array([r[1] for r in self.ranges])
        box = ((low + high) / 2, (high - low) / 2)
        inputs = [_Bound(float(m), op) for m in np.maximum(np.abs(low), np.abs(high))]
        worst = 0.0
        for step in self._plan():
            first = box if step.first else None
            pre = _affine_bounds(inputs, step.weights, step.bias, first, params.scale_bits, op)
            worst = max(worst, *(p.magnitude for p in pre))
            if step.kind is _StepKind.OUTPUT:
                result = pre[0]
                break
            squares = [
                _Bound(
                    p.magnitude**2, 2 * p.magnitude * p.error + p.error**2 + op * (1 + p.magnitude)
                )
                for p in pre
            ]
            worst = max(worst, *(s.magnitude for s in squares))
            if step.kind is _StepKind.MIXED:
                inputs = squares + pre
                continue
            lin = _affine_bounds(
                inputs, step.linear[None, :], np.array([step.offset]), first, params.scale_bits, op
            )[0]
            result = _Bound(
                lin.magnitude + sum(s.magnitude for s in squares),
                lin.error + sum(s.error for s in squares) + op * len(squares),
            )
            break
        worst = max(worst, result.magnitude)
        if worst >= params.max_result_abs:
            raise ValueError(
                f"a value of this model could reach {worst:.3g} on the declared ranges, beyond "
                f"the {params.max_result_abs:g} CKKS decrypts at depth {self.depth}; "
                "narrow the feature ranges"
            )
        return result.error

    # the circuit ---------------------------------------------------------------------------

    def _plan(self) -> list[_Step]:
        """The circuit as steps over ciphertext lists (see the module docstring)."""
        a0, a1, a2 = self.activation
        w_eff, b_eff = self.layers[0].weights, self.layers[0].bias
        n_hidden = len(self.layers) - 1
        if n_hidden == 0:
            return [_Step(_StepKind.OUTPUT, w_eff, b_eff, first=True)]
        steps: list[_Step] = []
        for i in range(n_hidden - 1):
            steps.append(_Step(_StepKind.MIXED, w_eff, b_eff, first=i == 0))
            nxt = self.layers[i + 1]
            w_eff = np.concatenate([nxt.weights * a2, nxt.weights * a1], axis=1)
            b_eff = nxt.bias + a0 * nxt.weights.sum(axis=1)
        out = self.layers[-1]
        c = out.weights[0] * a2
        root = np.sqrt(np.abs(c))
        steps.append(
            _Step(
                _StepKind.FINAL,
                root[:, None] * w_eff,
                root * b_eff,
                first=n_hidden == 1,
                signs=tuple(float(x) for x in np.sign(c)),
                linear=(out.weights[0] * a1) @ w_eff,
                offset=float(
                    (out.weights[0] * a1) @ b_eff + out.bias[0] + a0 * out.weights[0].sum()
                ),
            )
        )
        return steps

    def evaluate(self, ctx: Any, columns: Sequence[Any], rows: int) -> Any:
        """Evaluate the logit on column-packed ciphertexts (one per feature, ``rows`` slots).

        Args:
            ctx: a public TenSEAL context with this network's parameters.
            columns: one CKKS vector per feature, in :attr:`features` order.
            rows: how many slots hold rows.
        """
        if len(columns) != len(self.features):
            raise ValueError(f"expected {len(self.features)} feature ciphertexts")
        inputs = list(columns)
        for step in self._plan():
            pre = [
                _affine(ctx, inputs, w, float(b), rows)
                for w, b in zip(step.weights, step.bias, strict=True)
            ]
            if step.kind is _StepKind.OUTPUT:
                return pre[0]
            squares = [p * p for p in pre]
            if step.kind is _StepKind.MIXED:
                inputs = squares + pre
                continue
            acc = _affine(ctx, inputs, step.linear, step.offset, rows)
            for sign, square in zip(step.signs, squares, strict=True):
                if sign > 0:
                    acc = acc + square
                elif sign < 0:
                    acc = acc - square
            return acc
        raise AssertionError("a plan ends with an output step")  # pragma: no cover


class _StepKind(StrEnum):
    OUTPUT = "output"
    """An affine layer whose single output is the logit (logistic regression)."""
    MIXED = "mixed"
    """A hidden layer: its outputs and their squares feed the next layer."""
    FINAL = "final"
    """The last hidden layer and the output unit: ``sum_k sign_k g_k^2 + linear . u + offset``."""


@dataclass(frozen=True)
class _Step:
    kind: _StepKind
    weights: Array
    bias: Array
    first: bool
    signs: tuple[float, ...] = ()
    linear: Array = field(default_factory=lambda: np.zeros(0))
    offset: float = 0.0


def _affine_bounds(
    inputs: list[_Bound],
    weights: Array,
    bias: Array,
    box: tuple[Array, Array] | None,
    scale_bits: int,
    op: float,
) -> list[_Bound]:
    """(magnitude, error) of each output of ``weights @ u + bias``; on the first layer
    ``box`` = (midpoints, half-widths) of the feature ranges gives the exact magnitude."""
    mags = np.array([b.magnitude for b in inputs])
    errs = np.array([b.error for b in inputs])
    aw = np.abs(weights)
    if box is not None:
        magnitude = np.abs(weights @ box[0] + bias) + aw @ box[1]
    else:
        magnitude = np.abs(bias) + aw @ mags
    del scale_bits
    error = aw @ errs + aw @ (mags * RELATIVE_ERROR) + op * (np.count_nonzero(weights, axis=1) + 1)
    return [_Bound(float(m), float(e)) for m, e in zip(magnitude, error, strict=True)]


def _affine(ctx: Any, inputs: Sequence[Any], weights: Array, bias: float, rows: int) -> Any:
    """``sum_j w_j u_j + bias`` over ciphertexts (zero weights skipped: a zero plaintext
    would make a transparent ciphertext)."""
    acc = None
    for ct, w in zip(inputs, weights, strict=True):
        if w == 0.0:
            continue
        term = ct * float(w)
        acc = term if acc is None else acc + term
    if acc is None:
        return ts.ckks_vector(ctx, [bias] * rows)
    return acc + bias
