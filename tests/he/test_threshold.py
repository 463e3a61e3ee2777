"""Threshold Paillier: sums are exact up to rounding, and every share is needed to decrypt."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tutela.errors import IntegrityError
from tutela.hazmat.rng import SecureRandom
from tutela.he import _wire, threshold
from tutela.he.threshold import (
    PackingParams,
    PaillierPublicKey,
    aggregate,
    combine,
    deal_threshold_keys,
    encrypt_update,
    partial_decrypt,
)

N_SITES = 3


@pytest.fixture(scope="module")
def keys():
    return deal_threshold_keys(N_SITES, key_bits=1024, rng=SecureRandom(5))


def _updates(seed: int, n: int, size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-3, 3, size) for _ in range(n)]


def _decrypt(pk, shares, agg):
    return combine(pk, agg, [partial_decrypt(s, agg) for s in shares])


@pytest.mark.parametrize("weights", [None, [1, 4, 2]])
def test_weighted_sum_within_rounding_bound(keys, weights) -> None:
    pk, shares = keys
    xs = _updates(1, N_SITES, 40)
    rng = SecureRandom(2)
    agg = aggregate(pk, [encrypt_update(pk, x, rng=rng, aggregation_id=b"r1") for x in xs], weights)
    result = _decrypt(pk, shares, agg)
    w = weights or [1] * N_SITES
    expected = sum(wi * x for wi, x in zip(w, xs, strict=True))
    assert result.n_terms == N_SITES and result.total_weight == sum(w)
    assert np.max(np.abs(result.values - expected)) <= result.error_bound
    assert result.error_bound == sum(w) * 2.0**-25


def test_all_shares_are_needed(keys) -> None:
    pk, shares = keys
    agg = aggregate(pk, [encrypt_update(pk, x) for x in _updates(2, 2, 5)])
    partials = [partial_decrypt(s, agg) for s in shares]
    with pytest.raises(IntegrityError):
        combine(pk, agg, partials[:-1])
    with pytest.raises(IntegrityError):
        combine(pk, agg, [partials[0], partials[0], partials[1]])
    # a coalition of N-1 holders forging the missing partial from its own shares fails
    fake = partial_decrypt(threshold.KeyShare(2, N_SITES, pk, shares[0].exponent), agg)
    with pytest.raises(IntegrityError):
        combine(pk, agg, [*partials[:2], fake])


def test_shares_mask_the_exponent(keys) -> None:
    """N-1 shares are wide uniform integers (2k + 128 bits): they statistically hide d."""
    pk, shares = keys
    bits = 2 * pk.key_bits + 128
    for s in shares[:-1]:
        assert 0 <= s.exponent < 2**bits
        assert s.exponent.bit_length() > bits - 16  # not a short, guessable value
    assert len({s.exponent for s in shares}) == N_SITES
    assert "exponent" not in repr(shares[0])


def test_partials_reveal_only_the_sum(keys) -> None:
    """Simulation: the last partial is determined by the others and the decrypted sum."""
    pk, shares = keys
    xs = _updates(3, 2, 4)
    agg = aggregate(pk, [encrypt_update(pk, x) for x in xs])
    partials = [partial_decrypt(s, agg) for s in shares]
    n2 = pk.n_squared
    env = _wire.unpack(agg, expected_kind=12, max_bytes=1 << 24, max_blobs=10)
    c = int.from_bytes(env.blobs[0], "big")
    m = (pow(c, sum(s.exponent for s in shares), n2) - 1) // pk.n
    others = 1
    for p in partials[:-1]:
        blob = _wire.unpack(p, expected_kind=13, max_bytes=1 << 24, max_blobs=10).blobs[0]
        others = others * int.from_bytes(blob, "big") % n2
    simulated = (1 + m * pk.n) * pow(others, -1, n2) % n2
    last = _wire.unpack(partials[-1], expected_kind=13, max_bytes=1 << 24, max_blobs=10)
    assert int.from_bytes(last.blobs[0], "big") == simulated


def test_tampered_or_foreign_payloads_are_rejected(keys) -> None:
    pk, shares = keys
    agg = aggregate(pk, [encrypt_update(pk, x) for x in _updates(4, 2, 5)])
    partials = [partial_decrypt(s, agg) for s in shares]
    env = _wire.unpack(partials[1], expected_kind=13, max_bytes=1 << 24, max_blobs=10)
    bad_blob = (int.from_bytes(env.blobs[0], "big") * 7 % pk.n_squared).to_bytes(256, "big")
    forged = _wire.pack(13, env.fingerprint, env.label, env.fields, (), (bad_blob,))
    with pytest.raises(IntegrityError):
        combine(pk, agg, [partials[0], forged, partials[2]])
    other_agg = aggregate(pk, [encrypt_update(pk, x) for x in _updates(5, 2, 5)])
    with pytest.raises(IntegrityError):  # partials of a different aggregate
        combine(pk, other_agg, partials)
    flipped = bytearray(agg)
    flipped[60] ^= 1
    with pytest.raises(IntegrityError):
        partial_decrypt(shares[0], bytes(flipped))
    other_pk, _ = deal_threshold_keys(2, key_bits=1024)
    with pytest.raises(IntegrityError):
        aggregate(other_pk, [encrypt_update(pk, np.ones(3))])
    for bad in (b"", b"TUHE" + bytes(100), agg[:-5]):
        with pytest.raises(IntegrityError):
            partial_decrypt(shares[0], bad)


def test_pure_python_fallback_agrees(keys, monkeypatch) -> None:
    pk, shares = keys
    x = np.array([0.5, -1.25, 2.0])
    agg = aggregate(pk, [encrypt_update(pk, x)])
    fast = _decrypt(pk, shares, agg).values
    monkeypatch.setattr(threshold, "_POWMOD", pow)
    slow = _decrypt(pk, shares, agg).values
    assert np.array_equal(fast, slow)
    assert np.allclose(slow, x, atol=2.0**-25)


def test_argument_checks(keys) -> None:
    pk, _ = keys
    p = PackingParams()
    with pytest.raises(ValueError):
        encrypt_update(pk, np.array([p.max_abs * 2]))
    with pytest.raises(ValueError):
        encrypt_update(pk, np.array([np.inf]))
    payload = encrypt_update(pk, np.ones(2))
    with pytest.raises(ValueError, match="total weight"):
        aggregate(pk, [payload], [p.max_total_weight + 1])
    with pytest.raises(ValueError):
        aggregate(pk, [payload], [0])
    with pytest.raises(ValueError):
        deal_threshold_keys(1)
    with pytest.raises(ValueError):
        PackingParams(24, 40, 15)
    assert PaillierPublicKey.from_bytes(pk.to_bytes()) == pk
    assert pk.fingerprint == hashlib.sha256(b"tutela.he.paillier/v1\x00" + pk.to_bytes()).digest()


def test_ciphertexts_are_standard_paillier_known_answer() -> None:
    """Interop: python-paillier (an independent implementation) decrypts our ciphertexts."""
    phe = pytest.importorskip("phe")
    from cryptography.hazmat.primitives.asymmetric import rsa

    nums = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_numbers()
    pk, shares = threshold._deal_from_primes(nums.p, nums.q, 2, SecureRandom(9))
    priv = phe.PaillierPrivateKey(phe.PaillierPublicKey(pk.n), nums.p, nums.q)
    x = np.array([1.0, -2.5, 0.0])
    payload = encrypt_update(pk, x, rng=SecureRandom(10))
    env = _wire.unpack(payload, expected_kind=11, max_bytes=1 << 24, max_blobs=10)
    m = priv.raw_decrypt(int.from_bytes(env.blobs[0], "big"))
    p = PackingParams()
    width = 1 << p.slot_bits
    slots = [(m // width**k) % width for k in range(3)]
    offset = 1 << (p.value_bits - 1)
    assert [(v - offset) / 2**p.frac_bits for v in slots] == [1.0, -2.5, 0.0]
    assert np.array_equal(_decrypt(pk, shares, aggregate(pk, [payload])).values, x)
