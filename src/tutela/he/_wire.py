"""Byte envelopes for HE payloads: a typed header, length-prefixed blobs, a SHA-256 trailer.

Layout (all integers big-endian)::

    magic "TUHE" | version u8 | kind u8 | fingerprint 32B | label_len u16 | label
    | n_fields u8 | fields (u64 each) | n_floats u8 | floats (f64 each)
    | n_blobs u32 | (blob_len u32 | blob)* | sha256(everything before) 32B

Parsing enforces a size limit before reading anything, checks every length against what is
left, and raises :class:`~tutela.errors.IntegrityError` (one opaque error) for anything
malformed, truncated, oversized or with a wrong checksum. The checksum only detects
accidental corruption; it is not a MAC.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from tutela.errors import IntegrityError

MAGIC = b"TUHE"
VERSION = 1
FINGERPRINT_BYTES = 32
_DIGEST = 32
_HEAD = struct.Struct(">4sBB")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed HE payload: what it is, under which key, and its blobs."""

    kind: int
    fingerprint: bytes
    label: bytes
    fields: tuple[int, ...]
    floats: tuple[float, ...]
    blobs: tuple[bytes, ...]


def pack(
    kind: int,
    fingerprint: bytes,
    label: bytes,
    fields: Sequence[int],
    floats: Sequence[float],
    blobs: Sequence[bytes],
) -> bytes:
    """Serialise an envelope (see the module docstring for the layout)."""
    if len(fingerprint) != FINGERPRINT_BYTES:
        raise ValueError("fingerprint must be 32 bytes")
    if len(label) > 0xFFFF:
        raise ValueError("label too long (max 65535 bytes)")
    if len(fields) > 255 or len(floats) > 255:
        raise ValueError("too many header fields")
    parts = [
        _HEAD.pack(MAGIC, VERSION, kind),
        fingerprint,
        struct.pack(">H", len(label)),
        label,
        struct.pack(">B", len(fields)),
        b"".join(struct.pack(">Q", f) for f in fields),
        struct.pack(">B", len(floats)),
        b"".join(struct.pack(">d", f) for f in floats),
        struct.pack(">I", len(blobs)),
    ]
    for blob in blobs:
        parts.append(struct.pack(">I", len(blob)))
        parts.append(blob)
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise IntegrityError("malformed payload")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        st = struct.Struct(fmt)
        return st.unpack(self.take(st.size))


def unpack(data: bytes, *, expected_kind: int, max_bytes: int, max_blobs: int) -> Envelope:
    """Parse and check an envelope.

    Args:
        data: the payload.
        expected_kind: the kind byte this caller accepts.
        max_bytes: reject payloads larger than this before parsing.
        max_blobs: reject payloads declaring more blobs than this.

    Raises:
        IntegrityError: oversized, malformed, truncated, wrong kind or bad checksum.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("payload must be bytes")
    raw = bytes(data)
    if len(raw) > max_bytes:
        raise IntegrityError(f"payload exceeds the limit of {max_bytes} bytes")
    if len(raw) < _HEAD.size + FINGERPRINT_BYTES + _DIGEST:
        raise IntegrityError("malformed payload")
    body, digest = raw[:-_DIGEST], raw[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise IntegrityError("payload checksum mismatch")
    r = _Reader(body)
    magic, version, kind = _HEAD.unpack(r.take(_HEAD.size))
    if magic != MAGIC or version != VERSION or kind != expected_kind:
        raise IntegrityError("malformed payload")
    fingerprint = r.take(FINGERPRINT_BYTES)
    (label_len,) = r.unpack(">H")
    label = r.take(int(label_len))
    (n_fields,) = r.unpack(">B")
    fields = tuple(int(r.unpack(">Q")[0]) for _ in range(int(n_fields)))
    (n_floats,) = r.unpack(">B")
    floats = tuple(float(r.unpack(">d")[0]) for _ in range(int(n_floats)))
    (n_blobs,) = r.unpack(">I")
    if int(n_blobs) > max_blobs:
        raise IntegrityError("payload declares too many blocks")
    blobs = []
    for _ in range(int(n_blobs)):
        (blob_len,) = r.unpack(">I")
        blobs.append(r.take(int(blob_len)))
    if r.pos != len(body):
        raise IntegrityError("malformed payload")
    return Envelope(int(kind), fingerprint, label, fields, floats, tuple(blobs))
