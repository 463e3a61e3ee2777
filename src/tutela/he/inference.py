"""Encrypted inference for logistic regression: the server never sees features or the key.

Flow::

    client   InferenceClient.generate(output)       keeps the secret key
             client.public_context()  ──► server      (public key, relin keys; no secret key)
             client.encrypt_features(X) ──► server    (column packed: one ciphertext per feature
                                                       per batch of up to N/2 samples)
    server   LogisticModel(w, b).score_encrypted(public_context, query, output)
             ──► client: one ciphertext per batch of scores
    client   client.decrypt_scores(result)

Column packing needs only plaintext-scalar multiplications for the logit
``z = sum_j w_j x_j + b`` (no rotations, so no Galois keys, which would be about 35 MB).

Outputs:
    ``"logit"``: ``z`` itself, depth 1, N = 8192. The client applies the exact sigmoid after
    decryption. Error: the CKKS bound, about 1e-6 times ``sum_j |w_j| max|x_j|``.
    ``"probability"``: the server also evaluates the least-squares cubic
    :data:`SIGMOID_COEFFS` of the sigmoid on ``[-5, 5]`` (max error
    :data:`SIGMOID_MAX_ERROR` = 0.061 there; outside the range the cubic diverges). Depth
    3, so N = 16384 with a 240-bit modulus (438 bits allowed at 128-bit security).

Security:
    The server holds the public context only (it refuses one with a secret key) and sees
    only IND-CPA ciphertexts: it learns the number of samples and features, nothing about
    their values. The client learns the scores, and from enough scores it could fit the
    model (model extraction is not prevented). CKKS results decrypted by the client stay
    with the client (no key-recovery exposure). Results are not authenticated: a result
    under another key or a corrupted one raises :class:`~tutela.errors.IntegrityError`
    (fingerprint, checksum and range checks), but a malicious server can return the
    scores of a different model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import tenseal as ts

from tutela.errors import IntegrityError
from tutela.he import _wire
from tutela.he.ckks import CkksParams, fingerprint, load_context, make_context
from tutela.he.ckks import public_context_bytes as _public_bytes

__all__ = [
    "LOGIT_PARAMS",
    "PROBABILITY_PARAMS",
    "SIGMOID_COEFFS",
    "SIGMOID_MAX_ERROR",
    "SIGMOID_RANGE",
    "InferenceClient",
    "LogisticModel",
    "Output",
    "sigmoid_cubic",
]

Output = Literal["logit", "probability"]

SIGMOID_RANGE = 5.0
SIGMOID_COEFFS = (0.5, 0.19833057, -0.00447349)
"""Least-squares cubic ``a0 + a1 z + a3 z^3`` for the sigmoid on [-5, 5]."""
SIGMOID_MAX_ERROR = 0.0609
"""Max |sigmoid(z) - cubic(z)| on [-SIGMOID_RANGE, SIGMOID_RANGE]."""

LOGIT_PARAMS = CkksParams(8192, (60, 40, 60), 40, max_abs=1024.0)
PROBABILITY_PARAMS = CkksParams(16384, (60, 40, 40, 40, 60), 40, max_abs=1024.0)

_QUERY = 21
_RESULT = 22
_OUTPUT_CODE: dict[str, int] = {"logit": 0, "probability": 1}
_MAX_FEATURES = 4096
_MAX_SAMPLES = 1 << 20
_MAX_CONTEXT_BYTES = 64 << 20


def sigmoid_cubic(z: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The cubic sigmoid approximation, in plaintext (the reference for encrypted outputs)."""
    a0, a1, a3 = SIGMOID_COEFFS
    x = np.asarray(z, dtype=np.float64)
    return a0 + a1 * x + a3 * x**3


def _max_ct_bytes(params: CkksParams) -> int:
    return 2 * params.poly_modulus_degree * len(params.coeff_mod_bit_sizes) * 8 + 4096


def _params_for(output: Output) -> CkksParams:
    if output not in _OUTPUT_CODE:
        raise ValueError("output must be 'logit' or 'probability'")
    return LOGIT_PARAMS if output == "logit" else PROBABILITY_PARAMS


class InferenceClient:
    """The data owner: holds the secret key, encrypts features, decrypts scores."""

    __slots__ = ("_ctx", "_fingerprint", "_public", "output", "params")

    def __init__(self, ctx: Any, output: Output) -> None:
        if not ctx.is_private():
            raise ValueError("the client context must hold the secret key")
        self._ctx = ctx
        self.output: Output = output
        self.params = _params_for(output)
        self._public = _public_bytes(ctx, relin_keys=output == "probability")
        self._fingerprint = fingerprint(self._public)

    def __repr__(self) -> str:
        return f"InferenceClient(output={self.output!r}, <secret>)"

    @classmethod
    def generate(cls, output: Output = "logit") -> InferenceClient:
        """Generate a fresh key pair sized for ``output``."""
        return cls(make_context(_params_for(output)), output)

    def public_context(self) -> bytes:
        """The public context for the server (no secret key)."""
        return self._public

    def encrypt_features(self, X: npt.ArrayLike) -> bytes:
        """Encrypt a feature matrix of shape (n_samples, n_features), column packed."""
        A = np.asarray(X, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0:
            raise ValueError("X must be a non-empty 2-D array")
        if A.shape[0] > _MAX_SAMPLES or A.shape[1] > _MAX_FEATURES:
            raise ValueError(f"at most {_MAX_SAMPLES} samples and {_MAX_FEATURES} features")
        if not np.all(np.isfinite(A)) or float(np.max(np.abs(A))) > self.params.max_abs:
            raise ValueError(f"features must be finite with |x| <= {self.params.max_abs:g}")
        slots = self.params.slots
        blobs = []
        for start in range(0, A.shape[0], slots):
            batch = A[start : start + slots]
            for j in range(A.shape[1]):
                blobs.append(bytes(ts.ckks_vector(self._ctx, batch[:, j]).serialize()))
        fields = (A.shape[0], A.shape[1], _OUTPUT_CODE[self.output])
        return _wire.pack(_QUERY, self._fingerprint, b"", fields, (), blobs)

    def decrypt_scores(self, result: bytes) -> npt.NDArray[np.float64]:
        """Decrypt the server's result: logits or cubic-sigmoid probabilities per sample.

        Raises:
            IntegrityError: a result under another key, malformed, corrupted, or decrypting
                to values outside what the computation can produce.
        """
        n_batches_max = -(-_MAX_SAMPLES // self.params.slots)
        env = _wire.unpack(
            result,
            expected_kind=_RESULT,
            max_bytes=n_batches_max * (_max_ct_bytes(self.params) + 4) + 4096,
            max_blobs=n_batches_max,
        )
        if env.fingerprint != self._fingerprint or len(env.fields) != 2:
            raise IntegrityError()
        n_samples, code = env.fields
        if code != _OUTPUT_CODE[self.output] or not 0 < n_samples <= _MAX_SAMPLES:
            raise IntegrityError("malformed payload")
        if len(env.blobs) != -(-n_samples // self.params.slots):
            raise IntegrityError("malformed payload")
        out = []
        for blob in env.blobs:
            try:
                out.append(np.asarray(ts.ckks_vector_from(self._ctx, blob).decrypt()))
            except (ValueError, RuntimeError, TypeError) as exc:
                raise IntegrityError() from exc
        scores = np.concatenate(out).astype(np.float64)
        if scores.shape != (n_samples,) or not np.all(np.isfinite(scores)):
            raise IntegrityError()
        if float(np.max(np.abs(scores))) > self.params.max_result_abs:
            raise IntegrityError("result out of range: wrong key or tampered")
        return scores


@dataclass(frozen=True, slots=True)
class LogisticModel:
    """A logistic-regression model held by the server: ``sigmoid(w . x + b)``."""

    weights: tuple[float, ...]
    bias: float

    def __post_init__(self) -> None:
        if not self.weights or not all(math.isfinite(w) for w in (*self.weights, self.bias)):
            raise ValueError("weights and bias must be finite and non-empty")

    @classmethod
    def from_arrays(cls, weights: npt.ArrayLike, bias: float) -> LogisticModel:
        """Build from a weight vector and an intercept (e.g. sklearn's coef_[0], intercept_[0])."""
        return cls(
            tuple(float(w) for w in np.asarray(weights, dtype=np.float64).ravel()), float(bias)
        )

    def score_plain(self, X: npt.ArrayLike, output: Output = "logit") -> npt.NDArray[np.float64]:
        """Plaintext reference of :meth:`score_encrypted` (cubic sigmoid for probabilities)."""
        z = np.asarray(X, dtype=np.float64) @ np.asarray(self.weights) + self.bias
        return z if output == "logit" else sigmoid_cubic(z)

    def score_encrypted(self, public_context: bytes, query: bytes, output: Output) -> bytes:
        """Evaluate the model on an encrypted query.

        Args:
            public_context: the client's public context (refused if it holds a secret key).
            query: from :meth:`InferenceClient.encrypt_features`.
            output: must match what the client asked for.

        Raises:
            CryptoError: the context holds a secret key.
            IntegrityError: malformed query or context, or a query under another key.
            ValueError: feature count mismatch.
        """
        params = _params_for(output)
        ctx = load_context(public_context, max_bytes=_MAX_CONTEXT_BYTES, require_public=True)
        fp = fingerprint(bytes(public_context))
        n_batches_max = -(-_MAX_SAMPLES // params.slots)
        env = _wire.unpack(
            query,
            expected_kind=_QUERY,
            max_bytes=n_batches_max * _MAX_FEATURES * (_max_ct_bytes(params) + 4) + 4096,
            max_blobs=n_batches_max * _MAX_FEATURES,
        )
        if env.fingerprint != fp or len(env.fields) != 3:
            raise IntegrityError("query is under a different key")
        n_samples, n_features, code = env.fields
        if code != _OUTPUT_CODE[output]:
            raise ValueError("query was prepared for a different output")
        if n_features != len(self.weights):
            raise ValueError(f"model expects {len(self.weights)} features, got {n_features}")
        n_batches = -(-n_samples // params.slots) if n_samples > 0 else 0
        if n_batches == 0 or len(env.blobs) != n_batches * n_features:
            raise IntegrityError("malformed payload")
        a0, a1, a3 = SIGMOID_COEFFS
        c = math.sqrt(-a3)
        out = []
        for b in range(n_batches):
            try:
                cols = [
                    ts.ckks_vector_from(ctx, env.blobs[b * n_features + j])
                    for j in range(n_features)
                ]
            except (ValueError, RuntimeError, TypeError) as exc:
                raise IntegrityError("malformed ciphertext") from exc
            size = min(params.slots, n_samples - b * params.slots)
            z = self._linear(ctx, cols, 1.0, size)
            if output == "probability":
                u = self._linear(ctx, cols, c, size)  # u^2 = -a3 z^2
                z = z * (-(u * u) + a1) + a0
            out.append(bytes(z.serialize()))
        return _wire.pack(_RESULT, fp, b"", (n_samples, code), (), out)

    def _linear(self, ctx: Any, cols: list[Any], factor: float, size: int) -> Any:
        acc = None
        for ct, w in zip(cols, self.weights, strict=True):
            if w == 0.0:
                continue  # a zero plaintext would give a transparent ciphertext
            term = ct * (factor * w)
            acc = term if acc is None else acc + term
        if acc is None:
            return ts.ckks_vector(ctx, [factor * self.bias] * size)
        return acc + factor * self.bias
