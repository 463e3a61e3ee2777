"""Mask expansion: known answers (independent HKDF + AES-ECB path), algebra, uniformity."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scipy.stats import chisquare

from tutela.hazmat import masks
from tutela.hazmat.masks import add_masks, derive_mask_key, expand_mask, mask_dtype, reduce_mod

SEED = bytes(range(32))
PINNED_KEY = bytes.fromhex("1c437930f7edc8d5fdc6bf5c35bd7f3c872d4b877d677e578b487e966f4cbf8b")


def _hkdf_reference(ikm: bytes, info: bytes) -> bytes:
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()  # RFC 5869, empty salt
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def _ctr_reference(key: bytes, nbytes: int) -> bytes:
    # GCTR with a zero 96-bit nonce (SP 800-38D): counter blocks 0^96 || i for i = 2, 3, ...
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    blocks = b"".join(bytes(12) + (i + 2).to_bytes(4, "big") for i in range(-(-nbytes // 16)))
    return ecb.update(blocks)[:nbytes]


def test_mask_key_known_answer_and_reference() -> None:
    key = derive_mask_key(SEED, context=b"kat")
    assert key == PINNED_KEY
    assert key == _hkdf_reference(SEED, b"tutela.hazmat.masks/v1|kat")


def test_expand_known_answer_32_and_64_bit() -> None:
    words32 = expand_mask(PINNED_KEY, 4, 32)
    assert words32.dtype == np.uint32
    assert [int(w) for w in words32] == [0x498ACAE2, 0x810D35B2, 0x6960F24F, 0x778DEA24]
    words64 = expand_mask(PINNED_KEY, 2, 64)
    assert [int(w) for w in words64] == [0x810D35B2498ACAE2, 0x778DEA246960F24F]
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


def test_add_masks_in_blocks_equals_whole_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    # the keystream goes through a bounded buffer: blocks of 3 words over 10 words must give
    # the whole masks (the stream continues across blocks, the last block is short)
    monkeypatch.setattr(masks, "_BLOCK_BYTES", 12)
    keys = [derive_mask_key(SEED, context=bytes([i])) for i in range(3)]
    acc = np.zeros(10, dtype=np.uint32)
    add_masks(acc, keys[:2], keys[2:], 32)
    want = (
        expand_mask(keys[0], 10, 32) + expand_mask(keys[1], 10, 32) - expand_mask(keys[2], 10, 32)
    )
    assert np.array_equal(acc, want)


def test_mask_longer_than_the_counter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(masks, "_MAX_BYTES", 16 * 4)  # as if the counter held four blocks
    assert expand_mask(PINNED_KEY, 16, 32).shape == (16,)
    with pytest.raises(ValueError, match="at most"):
        expand_mask(PINNED_KEY, 17, 32)
    with pytest.raises(ValueError, match="at most"):
        add_masks(np.zeros(9, dtype=np.uint64), [PINNED_KEY], [], 64)


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
