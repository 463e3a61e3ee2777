"""Mask expansion: known answers (independent HKDF + AES-ECB path), algebra, uniformity."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scipy.stats import chisquare

from tutela.hazmat.masks import add_masks, derive_mask_key, expand_mask, mask_dtype, reduce_mod

SEED = bytes(range(32))
PINNED_KEY = bytes.fromhex("1c437930f7edc8d5fdc6bf5c35bd7f3c872d4b877d677e578b487e966f4cbf8b")


def _hkdf_reference(ikm: bytes, info: bytes) -> bytes:
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()  # RFC 5869, empty salt
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def _ctr_reference(key: bytes, nbytes: int) -> bytes:
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    blocks = b"".join(i.to_bytes(16, "big") for i in range(-(-nbytes // 16)))
    return ecb.update(blocks)[:nbytes]


def test_mask_key_known_answer_and_reference() -> None:
    key = derive_mask_key(SEED, context=b"kat")
    assert key == PINNED_KEY
    assert key == _hkdf_reference(SEED, b"tutela.hazmat.masks/v1|kat")


def test_expand_known_answer_32_and_64_bit() -> None:
    words32 = expand_mask(PINNED_KEY, 4, 32)
    assert words32.dtype == np.uint32
    assert [int(w) for w in words32] == [0x3184992D, 0xC4389535, 0x88F170F3, 0x3055C559]
    words64 = expand_mask(PINNED_KEY, 2, 64)
    assert [int(w) for w in words64] == [0xC43895353184992D, 0x3055C55988F170F3]
    raw = _ctr_reference(PINNED_KEY, 4000)
    assert expand_mask(PINNED_KEY, 1000, 32).tobytes() == raw
    assert expand_mask(PINNED_KEY, 500, 64).tobytes() == raw


def test_contexts_and_seeds_separate_keys() -> None:
    assert derive_mask_key(SEED, context=b"a") != derive_mask_key(SEED, context=b"b")
    assert derive_mask_key(SEED, context=b"a") != derive_mask_key(SEED[::-1], context=b"a")
    with pytest.raises(ValueError):
        derive_mask_key(bytes(15), context=b"a")  # below 128 bits


def test_add_then_subtract_cancels_modulo_word() -> None:
    rng = np.random.default_rng(0)
    for bits in (12, 32, 40, 64):
        dtype = mask_dtype(bits)
        base = rng.integers(0, 2 ** min(bits, 63), size=257, dtype=np.uint64).astype(dtype)
        acc = base.copy()
        keys = [derive_mask_key(SEED, context=bytes([i])) for i in range(3)]
        add_masks(acc, keys[:2], [], bits)
        assert not np.array_equal(acc, base)
        add_masks(acc, [keys[2]], keys[:2], bits)
        add_masks(acc, [], [keys[2]], bits)
        reduce_mod(acc, bits)
        assert np.array_equal(acc, reduce_mod(base.copy(), bits))


def test_reduce_mod_keeps_low_bits() -> None:
    acc = np.array([0xFFFFFFFF, 0x12345678], dtype=np.uint32)
    assert [int(v) for v in reduce_mod(acc, 12)] == [0xFFF, 0x678]
    with pytest.raises(ValueError):
        reduce_mod(np.zeros(2, dtype=np.uint64), 16)
    with pytest.raises(ValueError):
        mask_dtype(7)


def test_mask_words_are_uniform_chi_square() -> None:
    # 2**16 draws of the low byte into 256 bins; for a fixed key the test is deterministic.
    # A truly uniform source fails at alpha = 1e-4 with probability 1e-4.
    words = expand_mask(derive_mask_key(SEED, context=b"uniform"), 1 << 16, 32)
    counts = np.bincount((words & 0xFF).astype(np.int64), minlength=256)
    assert chisquare(counts).pvalue > 1e-4
    top = np.bincount((words >> 24).astype(np.int64), minlength=256)
    assert chisquare(top).pvalue > 1e-4
