"""Mask expansion: a >= 128-bit seed -> AES-256 counter keystream -> a vector over Z_{2^b}.

A seed is first turned into a purpose-bound 32-byte AES key with HKDF-SHA256 (the ``context``
names the protocol, round and parties), then expanded in counter mode: the keystream blocks
are ``AES_K(0^96 || i)`` for i = 2, 3, ... (NIST SP 800-38D's GCTR with a zero 96-bit nonce),
produced by encrypting zeros with OpenSSL's AES-GCM, whose stitched AES-NI/VAES code runs about
twice as fast as its CTR mode here; the tag is never computed. Vectors
over Z_{2^b} are held in ``uint32`` (b <= 32) or ``uint64`` (32 < b <= 64) and all
arithmetic is done modulo the word size, which 2**b divides; :func:`reduce_mod` takes the
final result to [0, 2**b).

Security: for a uniformly random seed of at least 128 bits, the mask is computationally
indistinguishable from a uniform vector over Z_{2^b} (AES as a PRF in counter mode; b-bit
words are the low bits of whole 32/64-bit keystream words, so each is exactly uniform if the
keystream is). The 32-bit block counter caps one mask at 2^32 - 2 blocks (64 GiB); longer
requests are refused, so no counter block repeats. Different contexts give independent keys.
Contrast Flower 1.42, which folds every seed to 32 bits and feeds MT19937.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from tutela.hazmat.kex import hkdf_sha256
from tutela.hazmat.prg import KEY_BYTES

__all__ = [
    "MIN_SEED_BYTES",
    "MaskArray",
    "add_masks",
    "derive_mask_key",
    "expand_mask",
    "mask_dtype",
    "reduce_mod",
]

MIN_SEED_BYTES = 16
_DOMAIN = b"tutela.hazmat.masks/v1|"

_NONCE = bytes(12)
_MAX_BYTES = 16 * (2**32 - 2)  # GCTR's 32-bit counter: blocks 2 .. 2^32 - 1
_BLOCK_BYTES = 1 << 22  # keystream per call in add_masks (bounded scratch memory)

MaskArray = npt.NDArray[np.uint32] | npt.NDArray[np.uint64]


def _check_bits(modulus_bits: int) -> None:
    if isinstance(modulus_bits, bool) or not 8 <= int(modulus_bits) <= 64:
        raise ValueError(f"modulus_bits must be in [8, 64], got {modulus_bits!r}")


def mask_dtype(modulus_bits: int) -> np.dtype[np.uint32] | np.dtype[np.uint64]:
    """The word type that holds Z_{2^b}: uint32 for b <= 32, else uint64."""
    _check_bits(modulus_bits)
    return np.dtype(np.uint32) if modulus_bits <= 32 else np.dtype(np.uint64)


def derive_mask_key(seed: bytes, *, context: bytes) -> bytes:
    """A 32-byte AES-256 key for one mask, bound to ``context``.

    Raises:
        ValueError: ``seed`` shorter than 16 bytes (128 bits).
    """
    if len(seed) < MIN_SEED_BYTES:
        raise ValueError(f"mask seeds must have at least {MIN_SEED_BYTES} bytes")
    return hkdf_sha256(seed, info=_DOMAIN + context, length=KEY_BYTES)


def _keystream(key: bytes, nbytes: int) -> CipherContext:
    """A context whose ``update_into(zeros, buf)`` writes the next bytes of ``key``'s stream."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"mask keys must be {KEY_BYTES} bytes, got {len(key)}")
    if nbytes > _MAX_BYTES:
        raise ValueError(f"a mask holds at most {_MAX_BYTES} bytes of keystream")
    return Cipher(algorithms.AES(key), modes.GCM(_NONCE)).encryptor()


def expand_mask(key: bytes, size: int, modulus_bits: int) -> MaskArray:
    """``size`` words of the AES-256 counter keystream under ``key``, in Z_{2^b}.

    The words are the little-endian 32- or 64-bit keystream words; for b below the word
    size the caller reduces once at the end with :func:`reduce_mod` (sums are taken modulo
    the word size, a multiple of 2**b).
    """
    dtype = mask_dtype(modulus_bits)
    if size < 0:
        raise ValueError("size must be non-negative")
    nbytes = dtype.itemsize * size
    stream = _keystream(key, nbytes)
    buf = bytearray(nbytes)
    stream.update_into(bytes(nbytes), buf)
    return np.frombuffer(buf, dtype=dtype.newbyteorder("<")).view(dtype)


def add_masks(
    acc: MaskArray,
    add_keys: Iterable[bytes],
    subtract_keys: Iterable[bytes],
    modulus_bits: int,
) -> None:
    """In place: ``acc += sum(expand(k) for add_keys) - sum(expand(k) for subtract_keys)``.

    Arithmetic is modulo the word size of ``acc`` (which must match ``mask_dtype(b)``). The
    keystream goes through one reused buffer of at most 4 MiB, never a vector per key.
    """
    dtype = mask_dtype(modulus_bits)
    if acc.dtype != dtype or acc.ndim != 1:
        raise ValueError(f"accumulator must be a 1-D {dtype} array")
    size = acc.shape[0]
    nbytes = dtype.itemsize * size
    step = max(1, min(size, _BLOCK_BYTES // dtype.itemsize))
    buf = bytearray(dtype.itemsize * step)
    zeros = bytes(len(buf))
    words = np.frombuffer(buf, dtype=dtype.newbyteorder("<"))
    for keys, op in ((add_keys, np.add), (subtract_keys, np.subtract)):
        for key in keys:
            stream = _keystream(key, nbytes)
            for start in range(0, size, step):
                stop = min(size, start + step)
                n = stop - start
                stream.update_into(memoryview(zeros)[: n * dtype.itemsize], buf)
                part = acc[start:stop]
                op(part, words[:n], out=part)


def reduce_mod(acc: MaskArray, modulus_bits: int) -> MaskArray:
    """In place: reduce word-size arithmetic to [0, 2**b); returns ``acc``."""
    dtype = mask_dtype(modulus_bits)
    if acc.dtype != dtype:
        raise ValueError(f"array must be {dtype}")
    if modulus_bits < 8 * dtype.itemsize:
        np.bitwise_and(acc, dtype.type((1 << modulus_bits) - 1), out=acc)
    return acc
