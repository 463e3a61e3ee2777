"""Mask expansion: a >= 128-bit seed -> AES-256-CTR keystream -> a vector over Z_{2^b}.

A seed is first turned into a purpose-bound 32-byte AES key with HKDF-SHA256 (the ``context``
names the protocol, round and parties), then expanded by :mod:`tutela.hazmat.prg`. Vectors
over Z_{2^b} are held in ``uint32`` (b <= 32) or ``uint64`` (32 < b <= 64) and all
arithmetic is done modulo the word size, which 2**b divides; :func:`reduce_mod` takes the
final result to [0, 2**b).

Security: for a uniformly random seed of at least 128 bits, the mask is computationally
indistinguishable from a uniform vector over Z_{2^b} (AES as a PRF in counter mode; b-bit
words are the low bits of whole 32/64-bit keystream words, so each is exactly uniform if the
keystream is). Different contexts give independent keys. Contrast Flower 1.42, which folds
every seed to 32 bits and feeds MT19937.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from tutela.hazmat.kex import hkdf_sha256
from tutela.hazmat.prg import KEY_BYTES, aes_ctr_keystream

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


def expand_mask(key: bytes, size: int, modulus_bits: int) -> MaskArray:
    """``size`` words of AES-256-CTR keystream under ``key`` (zero initial counter), in Z_{2^b}.

    The words are the little-endian 32- or 64-bit keystream words; for b below the word
    size the caller reduces once at the end with :func:`reduce_mod` (sums are taken modulo
    the word size, a multiple of 2**b). The returned array is read-only.
    """
    dtype = mask_dtype(modulus_bits)
    if size < 0:
        raise ValueError("size must be non-negative")
    raw = aes_ctr_keystream(key, dtype.itemsize * size)
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).view(dtype)


def add_masks(
    acc: MaskArray,
    add_keys: Iterable[bytes],
    subtract_keys: Iterable[bytes],
    modulus_bits: int,
) -> None:
    """In place: ``acc += sum(expand(k) for add_keys) - sum(expand(k) for subtract_keys)``.

    Arithmetic is modulo the word size of ``acc`` (which must match ``mask_dtype(b)``).
    """
    dtype = mask_dtype(modulus_bits)
    if acc.dtype != dtype or acc.ndim != 1:
        raise ValueError(f"accumulator must be a 1-D {dtype} array")
    size = acc.shape[0]
    for key in add_keys:
        np.add(acc, expand_mask(key, size, modulus_bits), out=acc)
    for key in subtract_keys:
        np.subtract(acc, expand_mask(key, size, modulus_bits), out=acc)


def reduce_mod(acc: MaskArray, modulus_bits: int) -> MaskArray:
    """In place: reduce word-size arithmetic to [0, 2**b); returns ``acc``."""
    dtype = mask_dtype(modulus_bits)
    if acc.dtype != dtype:
        raise ValueError(f"array must be {dtype}")
    if modulus_bits < 8 * dtype.itemsize:
        np.bitwise_and(acc, dtype.type((1 << modulus_bits) - 1), out=acc)
    return acc
