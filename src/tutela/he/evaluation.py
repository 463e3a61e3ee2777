"""The service's side of HE as a service: public keys, encrypted prediction, rerandomising.

Everything here works with public material only: :class:`PublicKey` refuses a context that
holds a secret key, or one made with other parameters than the service evaluates under.

Security:
    The service sees the public key, relinearisation keys and IND-CPA ciphertexts: it learns
    the number of rows, the column names and the query shape, never a value. Before a
    result leaves, it is rerandomised (a fresh public-key encryption is added) and flooded
    with uniform noise of half-width :attr:`~tutela.he.card.ModelCard.flooding` drawn from
    the OS CSPRNG, so the owner's decryption does not show the evaluation's own noise at
    full precision. This flooding is heuristic (it is not the statistical flooding that
    makes CKKS IND-CPA-D secure) and repeated queries still let an owner fit the model's
    outputs; per-key query budgets (in the service) bound how many rows a key may score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal as ts

from tutela.errors import CryptoError, DataError, IntegrityError
from tutela.hazmat.rng import SecureRandom
from tutela.he import messages
from tutela.he.card import ModelCard
from tutela.he.ckks import CkksParams, fingerprint, load_context
from tutela.he.network import PolyNetwork
from tutela.he.owner import MAX_COLUMNS, MAX_ROWS, chain_bits, params_of_context

__all__ = ["MAX_BUNDLE_BYTES", "EncryptedColumns", "PublicKey", "parse_table", "predict", "seal"]

MAX_BUNDLE_BYTES = 64 << 20
Noise = Callable[[int], npt.NDArray[np.float64]]


class PublicKey:
    """An owner's public bundle, checked: no secret key, the service's parameters."""

    __slots__ = ("bundle", "ctx", "fingerprint", "params")

    def __init__(self, bundle: bytes, params: CkksParams) -> None:
        """Parse and check a bundle.

        Raises:
            IntegrityError: malformed, or the fingerprint does not match the context.
            CryptoError: the context holds a secret key, or lacks relinearisation keys.
            DataError: the context was made with other CKKS parameters than ``params``.
        """
        msg = messages.unpack(bundle, kind=messages.BUNDLE, max_bytes=MAX_BUNDLE_BYTES, max_blobs=1)
        if len(msg.blobs) != 1 or fingerprint(msg.blobs[0]) != msg.fingerprint:
            raise IntegrityError("the bundle's fingerprint does not match its key")
        ctx = load_context(msg.blobs[0], max_bytes=MAX_BUNDLE_BYTES, require_public=True)
        degree, chain = params_of_context(ctx)
        if degree != params.poly_modulus_degree or chain != chain_bits(params):
            raise DataError(
                f"the key's CKKS parameters (N={degree}, modulus levels {list(chain)} bits) do "
                f"not match the service's (N={params.poly_modulus_degree}, "
                f"{list(chain_bits(params))} bits); generate a key from this service's model card"
            )
        if msg.meta.get("params") != messages.params_json(params):
            raise DataError("the bundle states other CKKS parameters than the service's")
        if not ctx.has_relin_keys():
            raise CryptoError("the bundle lacks relinearisation keys")
        ctx.global_scale = 2.0**params.scale_bits
        self.bundle = bytes(bundle)
        self.ctx = ctx
        self.params = params
        self.fingerprint = msg.fingerprint


@dataclass(frozen=True)
class EncryptedColumns:
    """A parsed encrypted table: batches of column ciphertexts under one key."""

    columns: tuple[str, ...]
    rows: int
    model: str | None
    batches: tuple[tuple[Any, ...], ...]
    meta: Mapping[str, Any]

    def column(self, name: str) -> list[Any]:
        """The ciphertexts of one column, one per batch.

        Raises:
            DataError: no such column.
        """
        if name not in self.columns:
            raise DataError(f"the table has no column {name!r} (it has {', '.join(self.columns)})")
        j = self.columns.index(name)
        return [batch[j] for batch in self.batches]


def parse_table(payload: bytes, key: PublicKey) -> EncryptedColumns:
    """Parse an encrypted table under ``key``.

    Raises:
        IntegrityError: malformed, tampered, under another key, or a ciphertext that is not
            a valid full-width CKKS vector for the key's parameters.
        DataError: the metadata does not match the ciphertexts or the parameters.
    """
    params = key.params
    max_blobs = (MAX_ROWS // params.slots + 1) * MAX_COLUMNS
    msg = messages.unpack(
        payload,
        kind=messages.TABLE,
        max_bytes=len(payload) + 1,
        max_blobs=max_blobs,
    )
    if msg.fingerprint != key.fingerprint:
        raise IntegrityError("the table is encrypted under a different key than the one named")
    if msg.meta.get("params") != messages.params_json(params):
        raise DataError("the table was encrypted with other CKKS parameters than the service's")
    columns = msg.meta.get("columns")
    rows = msg.meta.get("rows")
    model = msg.meta.get("model")
    if (
        not isinstance(columns, list)
        or not columns
        or not all(isinstance(c, str) for c in columns)
        or len(set(columns)) != len(columns)
        or not isinstance(rows, int)
        or not 0 < rows <= MAX_ROWS
        or not (model is None or isinstance(model, str))
    ):
        raise IntegrityError("malformed payload")
    n_batches = -(-rows // params.slots)
    if len(msg.blobs) != n_batches * len(columns):
        raise IntegrityError("the table holds a different number of ciphertexts than it states")
    batches = []
    for b in range(n_batches):
        cts = []
        for j in range(len(columns)):
            blob = msg.blobs[b * len(columns) + j]
            if len(blob) > messages.max_ciphertext_bytes(params):
                raise IntegrityError("ciphertext too large")
            try:
                ct = ts.ckks_vector_from(key.ctx, blob)
            except (ValueError, RuntimeError, TypeError) as exc:
                raise IntegrityError("malformed ciphertext for this key's parameters") from exc
            if ct.size() != params.slots:
                raise IntegrityError("ciphertext is not a full batch")
            cts.append(ct)
        batches.append(tuple(cts))
    return EncryptedColumns(tuple(columns), rows, model, tuple(batches), dict(msg.meta))


def seal(
    key: PublicKey,
    ciphertexts: Sequence[Any],
    meta: Mapping[str, Any],
    flooding: float,
    noise: Noise | None = None,
) -> bytes:
    """Rerandomise and flood each result ciphertext, then pack the result message.

    Every ciphertext gets a fresh public-key encryption of uniform noise in
    ``[-flooding, flooding]`` added (``noise(n)`` draws ``n`` values in (0, 1); default the
    OS CSPRNG).
    """
    draw = noise if noise is not None else SecureRandom().uniform
    slots = key.params.slots
    out = []
    for ct in ciphertexts:
        mask = (2.0 * draw(slots) - 1.0) * flooding
        out.append(bytes((ct + ts.ckks_vector(key.ctx, mask)).serialize()))
    return messages.pack(messages.RESULT, key.fingerprint, meta, out)


def predict(
    network: PolyNetwork,
    card: ModelCard,
    key: PublicKey,
    table: EncryptedColumns,
    noise: Noise | None = None,
) -> bytes:
    """Score an encrypted table with ``network``; the result carries the card's error bound.

    Raises:
        DataError: the table was prepared for another model, or its columns are not the
            model's features in order (the message names both).
    """
    if table.model != card.digest:
        raise DataError(
            "the query was prepared for another model than this service's "
            f"({card.name}, digest {card.digest[:16]}...); fetch its card and encrypt again"
        )
    if table.columns != card.features:
        raise DataError(
            f"the query's columns ({', '.join(table.columns)}) are not the model's features "
            f"in order ({', '.join(card.features)})"
        )
    slots = key.params.slots
    scores = [network.evaluate(key.ctx, list(batch), slots) for batch in table.batches]
    meta = {
        "op": "predict",
        "output": "logit",
        "model": card.digest,
        "rows": table.rows,
        "length": table.rows,
        "error_bound": card.error_bound,
        "evaluation_bound": card.evaluation_bound,
        "flooding": card.flooding,
        "params": messages.params_json(key.params),
    }
    return seal(key, scores, meta, card.flooding, noise)
