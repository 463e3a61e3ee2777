"""Known-answer tests for X25519, HKDF-SHA256, AES-256-GCM and Ed25519 wrappers."""

from __future__ import annotations

import pytest

from tutela.errors import CryptoError, IntegrityError
from tutela.hazmat.kex import (
    ed25519_from_seed,
    ed25519_public_bytes,
    ed25519_sign,
    ed25519_verify,
    generate_ed25519,
    generate_x25519,
    hkdf_sha256,
    open_sealed,
    seal,
    x25519_agree,
    x25519_from_bytes,
    x25519_private_bytes,
    x25519_public_bytes,
)
from tutela.hazmat.rng import SecureRandom

H = bytes.fromhex


def test_x25519_rfc7748_vector() -> None:
    alice = x25519_from_bytes(H("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
    bob = x25519_from_bytes(H("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
    assert x25519_public_bytes(alice) == H(
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert x25519_public_bytes(bob) == H(
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    )
    shared = H("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    assert x25519_agree(alice, x25519_public_bytes(bob)) == shared
    assert x25519_agree(bob, x25519_public_bytes(alice)) == shared


def test_x25519_rejects_low_order_and_malformed_keys() -> None:
    me = generate_x25519(SecureRandom(1))
    with pytest.raises(CryptoError):
        x25519_agree(me, bytes(32))  # the identity point: all-zero shared secret
    with pytest.raises(CryptoError):
        x25519_agree(me, bytes(31))


def test_x25519_keys_come_from_the_injected_rng() -> None:
    a, b = generate_x25519(SecureRandom(7)), generate_x25519(SecureRandom(7))
    assert x25519_private_bytes(a) == x25519_private_bytes(b)
    assert x25519_private_bytes(a) != x25519_private_bytes(generate_x25519(SecureRandom(8)))


def test_hkdf_rfc5869_case_1() -> None:
    okm = hkdf_sha256(
        H("0b" * 22),
        salt=H("000102030405060708090a0b0c"),
        info=H("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
    )
    assert okm == H(
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_aes_gcm_known_answer_and_tamper() -> None:
    # McGrew-Viega GCM test case 14: K = 0^256, IV = 0^96, P = 0^128
    blob = bytes(12) + H("cea7403d4d606b6e074ec5d3baf39d18") + H("d0d1c8a799996bf0265b98b5d48ab919")
    assert open_sealed(bytes(32), blob, aad=b"") == bytes(16)
    for bad in (
        blob[:-1] + bytes([blob[-1] ^ 1]),
        blob[:12] + bytes([blob[12] ^ 1]) + blob[13:],
        blob[:20],
    ):
        with pytest.raises(IntegrityError):
            open_sealed(bytes(32), bad, aad=b"")
    with pytest.raises(IntegrityError):
        open_sealed(bytes(32), blob, aad=b"other context")


def test_seal_round_trip_binds_key_and_aad() -> None:
    key = SecureRandom(2).bytes(32)
    blob = seal(key, b"share", aad=b"ctx", rng=SecureRandom(3))
    assert open_sealed(key, blob, aad=b"ctx") == b"share"
    with pytest.raises(IntegrityError):
        open_sealed(SecureRandom(4).bytes(32), blob, aad=b"ctx")
    # fresh nonces: sealing twice gives different blobs
    assert seal(key, b"share", aad=b"ctx") != seal(key, b"share", aad=b"ctx")


def test_ed25519_rfc8032_test_1() -> None:
    key = ed25519_from_seed(H("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
    public = ed25519_public_bytes(key)
    assert public == H("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig = ed25519_sign(key, b"")
    assert sig == H(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    ed25519_verify(public, b"", sig)


def test_ed25519_rejects_forgeries() -> None:
    key = generate_ed25519(SecureRandom(5))
    other = generate_ed25519(SecureRandom(6))
    sig = ed25519_sign(key, b"advert")
    public = ed25519_public_bytes(key)
    for pk, msg, s in (
        (public, b"advert!", sig),
        (public, b"advert", sig[:-1] + bytes([sig[-1] ^ 1])),
        (ed25519_public_bytes(other), b"advert", sig),
        (public, b"advert", sig[:63]),
        (bytes(31), b"advert", sig),
    ):
        with pytest.raises(IntegrityError):
            ed25519_verify(pk, msg, s)
