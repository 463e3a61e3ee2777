"""Key agreement (X25519 + HKDF-SHA256), AES-256-GCM sealing, Ed25519 signatures.

Thin, typed wrappers over ``cryptography`` with the checks a protocol needs: raw 32-byte
public keys, rejection of the all-zero X25519 output (a low-order peer key), one opaque
:class:`~tutela.errors.IntegrityError` for every authentication failure, and an injectable
:class:`~tutela.hazmat.rng.SecureRandom` for key generation and nonces so that known-answer
tests can pin them.

Security: X25519 gives ~128-bit security against passive and active attackers provided the
public keys are authenticated (sign them with Ed25519). HKDF with distinct ``info`` strings
separates keys for different purposes. AES-256-GCM nonces are 96 random bits per message; a
key must not seal more than 2**32 messages.
"""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tutela.errors import CryptoError, IntegrityError
from tutela.hazmat.rng import SecureRandom

__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "SIGNATURE_BYTES",
    "ed25519_from_seed",
    "ed25519_public_bytes",
    "ed25519_sign",
    "ed25519_verify",
    "generate_ed25519",
    "generate_x25519",
    "hkdf_sha256",
    "open_sealed",
    "seal",
    "x25519_agree",
    "x25519_from_bytes",
    "x25519_private_bytes",
    "x25519_public_bytes",
]

KEY_BYTES = 32
NONCE_BYTES = 12
SIGNATURE_BYTES = 64


def _rng(rng: SecureRandom | None) -> SecureRandom:
    return rng if rng is not None else SecureRandom()


# -- X25519 -------------------------------------------------------------------------------


def generate_x25519(rng: SecureRandom | None = None) -> X25519PrivateKey:
    """A fresh X25519 private key (from ``rng``; OS randomness by default)."""
    return X25519PrivateKey.from_private_bytes(_rng(rng).bytes(KEY_BYTES))


def x25519_from_bytes(private: bytes) -> X25519PrivateKey:
    """Load a raw 32-byte X25519 private key."""
    if len(private) != KEY_BYTES:
        raise ValueError("X25519 private key must be 32 bytes")
    return X25519PrivateKey.from_private_bytes(private)


def x25519_private_bytes(key: X25519PrivateKey) -> bytes:
    """Raw 32-byte private key (as given to :func:`x25519_from_bytes`)."""
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def x25519_public_bytes(key: X25519PrivateKey) -> bytes:
    """Raw 32-byte public key of ``key``."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_agree(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    """The 32-byte X25519 shared secret with a peer's raw public key.

    Raises:
        CryptoError: the peer key is malformed or of low order (all-zero shared secret).
    """
    if len(peer_public) != KEY_BYTES:
        raise CryptoError("peer public key must be 32 bytes")
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:  # cryptography rejects the all-zero output itself
        raise CryptoError("invalid peer public key") from exc
    if hmac.compare_digest(shared, bytes(KEY_BYTES)):
        raise CryptoError("invalid peer public key")
    return shared


def hkdf_sha256(ikm: bytes, *, info: bytes, salt: bytes = b"", length: int = KEY_BYTES) -> bytes:
    """HKDF-SHA256 (RFC 5869) of ``ikm`` with ``salt`` and context ``info``."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(ikm)


# -- AES-256-GCM ----------------------------------------------------------------------------


def seal(key: bytes, plaintext: bytes, *, aad: bytes, rng: SecureRandom | None = None) -> bytes:
    """AES-256-GCM encrypt: returns ``nonce (12) || ciphertext || tag (16)``.

    Security: confidentiality and integrity of ``plaintext``, integrity of ``aad``; the
    nonce is random, so one key may seal up to 2**32 messages.
    """
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256-GCM key must be 32 bytes")
    nonce = _rng(rng).bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, *, aad: bytes) -> bytes:
    """Decrypt :func:`seal` output.

    Raises:
        IntegrityError: wrong key, wrong ``aad``, tampered or truncated blob (one opaque
            error, no detail).
    """
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256-GCM key must be 32 bytes")
    if len(blob) < NONCE_BYTES + 16:
        raise IntegrityError()
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise IntegrityError() from None


# -- Ed25519 --------------------------------------------------------------------------------


def generate_ed25519(rng: SecureRandom | None = None) -> Ed25519PrivateKey:
    """A fresh Ed25519 signing key (from ``rng``; OS randomness by default)."""
    return Ed25519PrivateKey.from_private_bytes(_rng(rng).bytes(KEY_BYTES))


def ed25519_from_seed(seed: bytes) -> Ed25519PrivateKey:
    """Load an Ed25519 key from its 32-byte seed (RFC 8032 secret key)."""
    if len(seed) != KEY_BYTES:
        raise ValueError("Ed25519 seed must be 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def ed25519_public_bytes(key: Ed25519PrivateKey) -> bytes:
    """Raw 32-byte public key of ``key``."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def ed25519_sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    """A 64-byte Ed25519 signature on ``message``."""
    return key.sign(message)


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> None:
    """Verify an Ed25519 signature.

    Raises:
        IntegrityError: malformed key or signature, or the signature does not verify.
    """
    if len(public) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        raise IntegrityError()
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise IntegrityError() from None
