"""Byte messages between SMPC parties: one ring tensor per message.

Layout (big-endian header, little-endian payload)::

    magic "TUSM" | version u8 | sender u16 | step u32 | ndim u8 | dims u32 * ndim
    | uint64 words, little-endian

:func:`decode` checks the sender, the protocol step and the exact shape the receiver
expects, so a message from the wrong party, a stale step or a truncated payload raises
:class:`MessageError` instead of being mixed into a result.
"""

from __future__ import annotations

import struct

import numpy as np

from tutela.errors import ProtocolAbort
from tutela.hazmat.ring import RingArray

__all__ = ["MessageError", "decode", "encode"]

_MAGIC = b"TUSM"
_HEAD = struct.Struct(">4sBHIB")
_MAX_WORDS = 1 << 26


class MessageError(ProtocolAbort):
    """A party sent a malformed, misaddressed or out-of-step message; the protocol aborts."""


def encode(sender: int, step: int, tensor: RingArray) -> bytes:
    """Serialise ``tensor`` (uint64) from ``sender`` at protocol ``step``."""
    arr = np.ascontiguousarray(tensor, dtype=np.uint64)
    head = _HEAD.pack(_MAGIC, 1, sender, step, arr.ndim)
    dims = struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + dims + arr.astype("<u8", copy=False).tobytes()


def decode(data: bytes, *, sender: int, step: int, shape: tuple[int, ...]) -> RingArray:
    """Parse a message and check it is ``sender``'s tensor of ``shape`` for ``step``.

    Raises:
        MessageError: anything unexpected.
    """
    if not isinstance(data, bytes) or len(data) < _HEAD.size:
        raise MessageError("malformed SMPC message")
    magic, version, src, msg_step, ndim = _HEAD.unpack_from(data)
    if magic != _MAGIC or version != 1 or src != sender or msg_step != step:
        raise MessageError(f"unexpected SMPC message (from party {src}, step {msg_step})")
    off = _HEAD.size + 4 * ndim
    if ndim != len(shape) or len(data) < off:
        raise MessageError("SMPC message has the wrong shape")
    dims = struct.unpack_from(f">{ndim}I", data, _HEAD.size)
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if tuple(dims) != tuple(shape) or size > _MAX_WORDS or len(data) != off + 8 * size:
        raise MessageError("SMPC message has the wrong shape")
    return np.frombuffer(data, dtype="<u8", offset=off).astype(np.uint64).reshape(shape)
