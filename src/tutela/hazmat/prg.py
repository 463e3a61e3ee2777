"""AES-256-CTR pseudo-random generation: the one keystream every sampler and mask uses.

Security: with a uniformly random 32-byte key the output is computationally
indistinguishable from uniform (AES as a PRP, counter mode, at most 2^64 blocks per key).
A key must never be reused with the same nonce for two different purposes; callers derive
purpose-specific keys (HKDF) or nonces.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_BYTES = 32
_ZERO_NONCE = bytes(16)


def aes_ctr_keystream(key: bytes, nbytes: int, nonce: bytes = _ZERO_NONCE) -> bytes:
    """Return ``nbytes`` of AES-256-CTR keystream for ``key`` and a 16-byte initial counter.

    Args:
        key: 32-byte key (a seed of at least 128 bits must be expanded to 32 bytes first,
            e.g. with HKDF).
        nbytes: number of bytes wanted (>= 0).
        nonce: 16-byte initial counter block.

    Raises:
        ValueError: wrong key or nonce length, or negative ``nbytes``.
    """
    if len(key) != KEY_BYTES:
        raise ValueError(f"AES-256-CTR key must be {KEY_BYTES} bytes, got {len(key)}")
    if len(nonce) != 16:
        raise ValueError(f"CTR nonce must be 16 bytes, got {len(nonce)}")
    if nbytes < 0:
        raise ValueError("nbytes must be non-negative")
    encryptor = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    return encryptor.update(bytes(nbytes)) + encryptor.finalize()


def keystream_uint64(key: bytes, size: int, nonce: bytes = _ZERO_NONCE) -> npt.NDArray[np.uint64]:
    """Return ``size`` uniform 64-bit words from the AES-256-CTR keystream (little-endian)."""
    raw = aes_ctr_keystream(key, 8 * size, nonce)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64, copy=False)
