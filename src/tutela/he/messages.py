"""What travels between a data owner and an HE service: public bundles, encrypted tables,
encrypted results. Every message is a :mod:`tutela.he._wire` envelope (typed header,
length-prefixed ciphertexts, SHA-256 trailer) whose label is canonical JSON metadata.

- **bundle** (owner -> service): the public TenSEAL context (public key, relinearisation
  keys; never the secret key) and the CKKS parameters it was made with. Its fingerprint
  (SHA-256 of the context) names the key in every later message.
- **table** (owner -> service): column-packed ciphertexts, one per column per batch of up to
  N/2 rows, batch-major; metadata names the columns, the row count and (for a prediction)
  the model it was prepared for.
- **result** (service -> owner): ciphertexts plus metadata: what was computed, over how many
  rows, and the error bound the owner should expect after decryption.

Parsing checks sizes before reading and raises :class:`~tutela.errors.IntegrityError` for
anything malformed, truncated or with a wrong checksum.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tutela.errors import IntegrityError
from tutela.he import _wire
from tutela.he.ckks import CkksParams

__all__ = [
    "BUNDLE",
    "RESULT",
    "TABLE",
    "Message",
    "max_ciphertext_bytes",
    "pack",
    "params_json",
    "unpack",
]

BUNDLE = 41
TABLE = 42
RESULT = 43
_MAX_LABEL = 60_000


@dataclass(frozen=True)
class Message:
    """A parsed message: its key fingerprint, metadata and ciphertexts."""

    kind: int
    fingerprint: bytes
    meta: Mapping[str, Any]
    blobs: tuple[bytes, ...]


def params_json(params: CkksParams) -> dict[str, Any]:
    """The CKKS parameters as they appear in message metadata."""
    return {
        "poly_modulus_degree": params.poly_modulus_degree,
        "coeff_mod_bit_sizes": list(params.coeff_mod_bit_sizes),
        "scale_bits": params.scale_bits,
    }


def max_ciphertext_bytes(params: CkksParams) -> int:
    """An upper bound on one serialised CKKS vector under ``params``."""
    return 2 * params.poly_modulus_degree * len(params.coeff_mod_bit_sizes) * 8 + 4096


def pack(kind: int, fingerprint: bytes, meta: Mapping[str, Any], blobs: Sequence[bytes]) -> bytes:
    """Serialise a message."""
    label = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(label) > _MAX_LABEL:
        raise ValueError("message metadata too large")
    return _wire.pack(kind, fingerprint, label, (), (), blobs)


def unpack(data: bytes, *, kind: int, max_bytes: int, max_blobs: int) -> Message:
    """Parse a message of ``kind``, refusing more than ``max_bytes`` or ``max_blobs``.

    Raises:
        IntegrityError: oversized, malformed, truncated, wrong kind or bad checksum.
    """
    env = _wire.unpack(data, expected_kind=kind, max_bytes=max_bytes, max_blobs=max_blobs)
    try:
        meta = json.loads(env.label.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError("malformed payload") from exc
    if not isinstance(meta, dict):
        raise IntegrityError("malformed payload")
    return Message(kind, env.fingerprint, meta, env.blobs)
