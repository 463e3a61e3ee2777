"""Known-answer test of the AES-256-CTR keystream (NIST SP 800-38A, F.5.5 CTR-AES256)."""

from __future__ import annotations

import numpy as np
import pytest

from tutela.hazmat.prg import aes_ctr_keystream, keystream_uint64

KEY = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
COUNTER = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
PLAIN = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
CIPHER = bytes.fromhex(
    "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"
    "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6"
)


def test_keystream_matches_nist_vector() -> None:
    stream = aes_ctr_keystream(KEY, 64, COUNTER)
    assert bytes(p ^ s for p, s in zip(PLAIN, stream, strict=True)) == CIPHER


def test_uint64_view_is_little_endian_keystream() -> None:
    words = keystream_uint64(KEY, 8, COUNTER)
    assert words.dtype == np.uint64
    assert words.tobytes() == aes_ctr_keystream(KEY, 64, COUNTER)


def test_rejects_bad_lengths() -> None:
    with pytest.raises(ValueError):
        aes_ctr_keystream(KEY[:16], 8)
    with pytest.raises(ValueError):
        aes_ctr_keystream(KEY, 8, b"short")
    with pytest.raises(ValueError):
        aes_ctr_keystream(KEY, -1)
