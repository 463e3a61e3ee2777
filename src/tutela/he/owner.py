"""The data owner's side of HE as a service: keys, column-packed encryption, decryption.

Flow::

    owner    key = OwnerKey.generate(card.params)        keeps the secret key
             key.bundle()                 ──► service     public key + relin keys only
             key.encrypt_table(table, card) ──► service   columns checked against the card
    service  evaluates on ciphertexts     ──► owner       result + its error bound
    owner    key.decrypt_result(result)

Security:
    The secret key never leaves :class:`OwnerKey` except through :meth:`OwnerKey.secret_bytes`,
    which the caller must store encrypted (the CLI stores it under the governance keyring).
    The bundle holds no secret key (checked when it is made and again by the service).
    Encryption refuses a table whose columns do not match the model's declared features or
    whose values fall outside the declared ranges (the error bound only holds inside them).
    A result under another key, tampered with in transit, or decrypting to values the
    computation cannot produce raises :class:`~tutela.errors.IntegrityError`; a service
    that evaluates a different model than it claims is not detected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal as ts

from tutela.errors import CryptoError, DataError, IntegrityError
from tutela.he import messages
from tutela.he.card import ModelCard
from tutela.he.ckks import CkksParams, fingerprint, load_context, make_context
from tutela.he.ckks import public_context_bytes as _public_bytes

__all__ = ["MAX_ROWS", "DecryptedResult", "EncryptedTable", "OwnerKey", "params_of_context"]

MAX_ROWS = 1 << 20
MAX_COLUMNS = 4096
_MAX_SECRET_BYTES = 256 << 20


def params_of_context(ctx: Any) -> tuple[int, tuple[int, ...]]:
    """Ring degree and the bit size of each level's modulus of a TenSEAL context (read from
    SEAL's own parameters, not from anything a sender claims)."""
    seal = ctx.seal_context().data
    key = seal.key_context_data()
    totals = [key.total_coeff_modulus_bit_count()]
    level = seal.first_context_data()
    while level is not None:
        totals.append(level.total_coeff_modulus_bit_count())
        level = level.next_context_data()
    return int(key.parms().poly_modulus_degree()), tuple(totals)


def chain_bits(params: CkksParams) -> tuple[int, ...]:
    """What :func:`params_of_context` reports for a context made with ``params``."""
    sizes = params.coeff_mod_bit_sizes
    totals = [sum(sizes)]
    for k in range(len(sizes) - 1, 0, -1):
        totals.append(sum(sizes[:k]))
    return tuple(totals)


@dataclass(frozen=True)
class EncryptedTable:
    """An encrypted table ready to send, and what it holds."""

    payload: bytes
    columns: tuple[str, ...]
    rows: int


@dataclass(frozen=True)
class DecryptedResult:
    """A decrypted result: the values, and the metadata the service sent with them."""

    values: npt.NDArray[np.float64]
    meta: Mapping[str, Any]

    @property
    def error_bound(self) -> float:
        """The absolute error bound the service states for each value."""
        return float(self.meta.get("error_bound", float("nan")))


class OwnerKey:
    """A CKKS key pair held by the data owner."""

    __slots__ = ("_ctx", "_public", "fingerprint", "params")

    def __init__(self, ctx: Any, params: CkksParams, public: bytes | None = None) -> None:
        if not ctx.is_private():
            raise CryptoError("an owner key must hold the secret key")
        degree, chain = params_of_context(ctx)
        if degree != params.poly_modulus_degree or chain != chain_bits(params):
            raise CryptoError("the key was not made with the stated CKKS parameters")
        self._ctx = ctx
        self.params = params
        self._public = public if public is not None else _public_bytes(ctx, relin_keys=True)
        self.fingerprint = fingerprint(self._public)

    def __repr__(self) -> str:
        return f"OwnerKey(fingerprint={self.fingerprint.hex()[:16]}..., <secret>)"

    @classmethod
    def generate(cls, params: CkksParams) -> OwnerKey:
        """A fresh key pair for ``params`` (public key and relinearisation keys)."""
        ctx = make_context(params)
        ctx.generate_relin_keys()
        return cls(ctx, params)

    def secret_bytes(self) -> bytes:
        """The serialised secret context: store it encrypted, never send it."""
        return bytes(self._ctx.serialize(save_secret_key=True, save_relin_keys=True))

    @classmethod
    def from_secret_bytes(cls, data: bytes, params: CkksParams, bundle: bytes) -> OwnerKey:
        """Load a key saved with :meth:`secret_bytes` and the :meth:`bundle` made with it
        (serialising a loaded context again gives other bytes, so the bundle is kept).

        Raises:
            CryptoError: no secret key, or the bundle's public key is not this key's.
        """
        ctx = load_context(data, max_bytes=_MAX_SECRET_BYTES, require_public=False)
        if not ctx.is_private():
            raise CryptoError("this file holds no secret key")
        ctx.global_scale = 2.0**params.scale_bits
        msg = messages.unpack(
            bundle, kind=messages.BUNDLE, max_bytes=_MAX_SECRET_BYTES, max_blobs=1
        )
        if len(msg.blobs) != 1 or fingerprint(msg.blobs[0]) != msg.fingerprint:
            raise CryptoError("the public bundle is damaged")
        public = load_context(msg.blobs[0], max_bytes=_MAX_SECRET_BYTES, require_public=True)
        probe = np.linspace(-1.0, 1.0, 8)
        try:
            back = ts.ckks_vector_from(ctx, ts.ckks_vector(public, probe).serialize()).decrypt()
        except (ValueError, RuntimeError, TypeError) as exc:
            raise CryptoError("the public bundle does not belong to this secret key") from exc
        if not np.allclose(back, probe, atol=1e-4):
            raise CryptoError("the public bundle does not belong to this secret key")
        return cls(ctx, params, msg.blobs[0])

    def bundle(self) -> bytes:
        """The public bundle for the service: public key and relin keys, no secret key."""
        if ts.context_from(self._public).is_private():  # pragma: no cover - defensive
            raise CryptoError("refusing to export a secret key")
        meta = {"params": messages.params_json(self.params)}
        return messages.pack(messages.BUNDLE, self.fingerprint, meta, [self._public])

    # encryption ------------------------------------------------------------------------

    def encrypt_columns(
        self,
        matrix: npt.ArrayLike,
        columns: Sequence[str],
        *,
        model: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> EncryptedTable:
        """Encrypt a (rows, columns) matrix column packed, batches padded with zeros.

        Raises:
            DataError: empty, too large, or with non-finite values.
        """
        A = np.asarray(matrix, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0 or A.shape[1] != len(columns):
            raise DataError("need a non-empty table with one name per column")
        if A.shape[0] > MAX_ROWS or A.shape[1] > MAX_COLUMNS:
            raise DataError(f"at most {MAX_ROWS} rows and {MAX_COLUMNS} columns per table")
        if not np.all(np.isfinite(A)):
            raise DataError("the table holds missing or non-finite values")
        if float(np.max(np.abs(A))) > self.params.max_abs:
            raise DataError(f"values must lie within +-{self.params.max_abs:g}")
        slots = self.params.slots
        blobs = []
        for start in range(0, A.shape[0], slots):
            batch = np.zeros((slots, A.shape[1]))
            chunk = A[start : start + slots]
            batch[: chunk.shape[0]] = chunk
            for j in range(A.shape[1]):
                blobs.append(bytes(ts.ckks_vector(self._ctx, batch[:, j]).serialize()))
        meta = {
            "columns": list(columns),
            "rows": int(A.shape[0]),
            "model": model,
            "params": messages.params_json(self.params),
            **(extra or {}),
        }
        payload = messages.pack(messages.TABLE, self.fingerprint, meta, blobs)
        return EncryptedTable(payload, tuple(columns), int(A.shape[0]))

    def encrypt_for_model(
        self, table: Mapping[str, npt.ArrayLike], card: ModelCard
    ) -> EncryptedTable:
        """Encrypt the model's feature columns of ``table`` (a column name -> values mapping).

        Only the card's features are encrypted, in the card's order; other columns are left
        out (they never leave the owner).

        Raises:
            DataError: a feature column is missing, a value is missing or outside the
                feature's declared range (the message names the column and the row), or
                the key was made for other parameters.
        """
        if card.params != self.params:
            raise DataError(
                "this key was made for other CKKS parameters than the model's; "
                "generate a key for this model (tutela he keygen)"
            )
        missing = [f for f in card.features if f not in table]
        if missing:
            raise DataError(
                f"the table lacks the model's feature column(s): {', '.join(missing)} "
                f"(the model expects {', '.join(card.features)})"
            )
        cols = []
        for name, (low, high) in zip(card.features, card.ranges, strict=True):
            try:
                col = np.asarray(table[name], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise DataError(f"column {name!r} is not numeric") from None
            bad = np.flatnonzero(~np.isfinite(col))
            if bad.size:
                raise DataError(f"column {name!r} has a missing value in row {int(bad[0]) + 1}")
            out = np.flatnonzero((col < low) | (col > high))
            if out.size:
                i = int(out[0])
                raise DataError(
                    f"column {name!r} row {i + 1}: {col[i]:g} is outside the model's declared "
                    f"range [{low:g}, {high:g}]"
                )
            cols.append(col)
        lengths = {c.shape[0] for c in cols}
        if len(lengths) != 1:
            raise DataError("columns differ in length")
        return self.encrypt_columns(np.stack(cols, axis=1), card.features, model=card.digest)

    # decryption ------------------------------------------------------------------------

    def decrypt_result(self, payload: bytes) -> DecryptedResult:
        """Decrypt a service's result (per-row values, or per-slot partial values).

        Raises:
            IntegrityError: under another key, malformed, tampered, or out of range.
        """
        max_blobs = 4 * (MAX_ROWS // self.params.slots + 1) + MAX_COLUMNS
        msg = messages.unpack(
            payload,
            kind=messages.RESULT,
            max_bytes=max_blobs * (messages.max_ciphertext_bytes(self.params) + 4) + 65536,
            max_blobs=max_blobs,
        )
        if msg.fingerprint != self.fingerprint:
            raise IntegrityError("the result is under a different key")
        length = msg.meta.get("length")
        if not isinstance(length, int) or length < 0:
            raise IntegrityError("malformed payload")
        parts = []
        for blob in msg.blobs:
            try:
                parts.append(np.asarray(ts.ckks_vector_from(self._ctx, blob).decrypt()))
            except (ValueError, RuntimeError, TypeError) as exc:
                raise IntegrityError("malformed ciphertext") from exc
        values = (np.concatenate(parts) if parts else np.zeros(0)).astype(np.float64)
        if values.shape[0] < length or not np.all(np.isfinite(values)):
            raise IntegrityError("malformed payload")
        values = values[:length] if msg.meta.get("trim", True) else values
        if values.size and float(np.max(np.abs(values))) > self.params.max_result_abs:
            raise IntegrityError("result out of range: wrong key or tampered")
        return DecryptedResult(values, dict(msg.meta))
