"""Encryption at rest: AES-256-GCM envelope encryption under a protected keyring.

Every object gets its own random 256-bit data key (DEK). The payload is encrypted with the
DEK; the DEK is wrapped (encrypted) with a key-encryption key (KEK) from a :class:`Keyring`.
Rotating the keyring adds a new primary KEK; :meth:`Envelope.rewrap` moves an object to it
by re-wrapping only its 48-byte DEK, so payloads are never re-encrypted. A KEK is retired
(its material erased) once nothing uses it.

Ciphertext format, version 1 (all integers big-endian)::

    offset  size  field
    0       4     magic  b"TTLA"
    4       1     format version  0x01
    5       1     suite  0x01 = AES-256-GCM data encryption, AES-256-GCM key wrap
    6       8     kek_id           id of the KEK that wrapped the DEK
    14      12    wrap_nonce       GCM nonce of the key wrap
    26      48    wrapped_dek      AES-256-GCM(KEK, wrap_nonce, DEK, wrap_aad): 32 B + 16 B tag
    74      12    data_nonce       GCM nonce of the payload
    86      n+16  payload          AES-256-GCM(DEK, data_nonce, plaintext, data_aad)

    name_field = uint16(len(name_utf8)) || name_utf8
    wrap_aad   = b"tutela/envelope/v1/wrap" || bytes[0:14] || name_field
    data_aad   = b"tutela/envelope/v1/data" || bytes[0:6]  || name_field

The wrap binds the DEK to the KEK id and the object name; the payload binds to the format
and the name, but not to the wrap fields, so rotation only rewrites bytes 6..85.

The keyring itself (its file format, protection and key life cycle) is
:mod:`tutela.governance.keyring`; its names are re-exported here.

Security:
    Protects confidentiality and integrity of objects at rest against anyone without the
    keyring secret (passphrase or key file). Detects bit flips, truncation, a wrong or
    retired key, and swapping or renaming objects (the name is authenticated). Every such
    failure raises the same :class:`~tutela.errors.IntegrityError` with no detail.
    Not protected: rollback of a whole object to an older ciphertext under the same name
    (pair with the audit log), object sizes, and secrets in memory of a running process.
    Random 96-bit nonces: each DEK encrypts one payload; a KEK wraps far fewer than 2^32 DEKs
    in any realistic deployment (NIST SP 800-38D bound).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tutela.errors import IntegrityError
from tutela.governance._files import atomic_write
from tutela.governance.keyring import (
    KEY_BYTES,
    KEY_ID_BYTES,
    NONCE_BYTES,
    KeyInfo,
    Keyring,
    KeyringProtection,
    KeyState,
    Rng,
    generate_keyfile,
)

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "Envelope",
    "EnvelopeHeader",
    "KeyInfo",
    "KeyState",
    "Keyring",
    "KeyringProtection",
    "generate_keyfile",
    "read_header",
]

MAGIC = b"TTLA"
FORMAT_VERSION = 1
SUITE_AES256GCM = 1
TAG_BYTES = 16
WRAPPED_DEK_BYTES = KEY_BYTES + TAG_BYTES
HEADER_SIZE = 4 + 1 + 1 + KEY_ID_BYTES + NONCE_BYTES + WRAPPED_DEK_BYTES + NONCE_BYTES
_PREFIX_END = 6  # magic + version + suite
_KEK_ID_END = _PREFIX_END + KEY_ID_BYTES
_WRAP_NONCE_END = _KEK_ID_END + NONCE_BYTES
_WRAPPED_END = _WRAP_NONCE_END + WRAPPED_DEK_BYTES
_WRAP_LABEL = b"tutela/envelope/v1/wrap"
_DATA_LABEL = b"tutela/envelope/v1/data"


def _name_field(name: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError("name must be a str")
    raw = name.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("name must be at most 65535 bytes of UTF-8")
    return struct.pack(">H", len(raw)) + raw


@dataclass(frozen=True)
class EnvelopeHeader:
    """The parsed, unauthenticated header of an envelope ciphertext."""

    version: int
    suite: int
    kek_id: str


def read_header(blob: bytes) -> EnvelopeHeader:
    """Parse the header of an envelope ciphertext (no key needed, nothing authenticated).

    Raises:
        IntegrityError: not a version-1 envelope, or too short.
    """
    if len(blob) < HEADER_SIZE + TAG_BYTES or blob[:4] != MAGIC:
        raise IntegrityError()
    if blob[4] != FORMAT_VERSION or blob[5] != SUITE_AES256GCM:
        raise IntegrityError()
    return EnvelopeHeader(blob[4], blob[5], blob[_PREFIX_END:_KEK_ID_END].hex())


class Envelope:
    """Encrypt and decrypt named objects under a :class:`Keyring`.

    Example:
        >>> ring = Keyring.from_keys({"00" * 8: bytes(32)}, primary="00" * 8)
        >>> env = Envelope(ring)
        >>> env.decrypt(env.encrypt(b"weights", name="model.safetensors"), name="model.safetensors")
        b'weights'

    Args:
        keyring: source of key-encryption keys.
        rng: randomness source. Each :meth:`encrypt` draws, in order, the 32-byte DEK, the
            12-byte wrap nonce and the 12-byte data nonce; :meth:`rewrap` draws one wrap
            nonce. Inject a fixed source only for known-answer tests.

    Security:
        See the module docstring: confidentiality and integrity of payload and name; one
        opaque :class:`IntegrityError` for every decryption failure.
    """

    def __init__(self, keyring: Keyring, *, rng: Rng = os.urandom) -> None:
        self._keyring = keyring
        self._rng = rng

    def encrypt(self, data: bytes, *, name: str) -> bytes:
        """Encrypt ``data`` as the object called ``name`` under the primary KEK."""
        name_field = _name_field(name)
        kek_id = self._keyring.primary_id
        kek = self._keyring._material(kek_id)
        if kek is None:  # pragma: no cover - the primary always has material
            raise IntegrityError()
        dek = self._rng(KEY_BYTES)
        wrap_nonce = self._rng(NONCE_BYTES)
        data_nonce = self._rng(NONCE_BYTES)
        if (
            len(dek) != KEY_BYTES
            or len(wrap_nonce) != NONCE_BYTES
            or len(data_nonce) != NONCE_BYTES
        ):
            raise ValueError("rng returned the wrong number of bytes")
        prefix = MAGIC + bytes([FORMAT_VERSION, SUITE_AES256GCM])
        head = prefix + bytes.fromhex(kek_id)
        wrapped = AESGCM(kek).encrypt(wrap_nonce, dek, _WRAP_LABEL + head + name_field)
        payload = AESGCM(dek).encrypt(data_nonce, bytes(data), _DATA_LABEL + prefix + name_field)
        return head + wrap_nonce + wrapped + data_nonce + payload

    def _unwrap(self, blob: bytes, name_field: bytes) -> bytes:
        header = read_header(blob)
        kek = self._keyring._material(header.kek_id)
        if kek is None:
            raise IntegrityError()
        wrap_nonce = blob[_KEK_ID_END:_WRAP_NONCE_END]
        wrapped = blob[_WRAP_NONCE_END:_WRAPPED_END]
        try:
            return AESGCM(kek).decrypt(
                wrap_nonce, wrapped, _WRAP_LABEL + blob[:_KEK_ID_END] + name_field
            )
        except InvalidTag as exc:
            raise IntegrityError() from exc

    def decrypt(self, blob: bytes, *, name: str) -> bytes:
        """Decrypt the object called ``name``.

        Raises:
            IntegrityError: wrong, unknown or retired key; wrong name; any modified,
                truncated or extended byte.
        """
        name_field = _name_field(name)
        dek = self._unwrap(blob, name_field)
        data_nonce = blob[_WRAPPED_END:HEADER_SIZE]
        try:
            return AESGCM(dek).decrypt(
                data_nonce, blob[HEADER_SIZE:], _DATA_LABEL + blob[:_PREFIX_END] + name_field
            )
        except InvalidTag as exc:
            raise IntegrityError() from exc

    def rewrap(self, blob: bytes, *, name: str) -> bytes:
        """Re-wrap the object's data key under the primary KEK; the payload bytes are unchanged.

        The payload is authenticated before anything is rewritten, so a tampered object is
        never blessed with a fresh wrap. Returns ``blob`` itself when it already uses the
        primary key.

        Raises:
            IntegrityError: as for :meth:`decrypt`.
        """
        self.decrypt(blob, name=name)
        if read_header(blob).kek_id == self._keyring.primary_id:
            return blob
        name_field = _name_field(name)
        dek = self._unwrap(blob, name_field)
        kek_id = self._keyring.primary_id
        kek = self._keyring._material(kek_id)
        if kek is None:  # pragma: no cover
            raise IntegrityError()
        head = blob[:_PREFIX_END] + bytes.fromhex(kek_id)
        wrap_nonce = self._rng(NONCE_BYTES)
        wrapped = AESGCM(kek).encrypt(wrap_nonce, dek, _WRAP_LABEL + head + name_field)
        return head + wrap_nonce + wrapped + blob[_WRAPPED_END:]

    # files ------------------------------------------------------------------------------

    def encrypt_file(
        self, src: str | os.PathLike[str], dst: str | os.PathLike[str], *, name: str | None = None
    ) -> None:
        """Encrypt file ``src`` into ``dst`` atomically (temp file + rename).

        ``name`` defaults to the base name of ``dst``, so renaming the ciphertext file
        makes it fail to decrypt.
        """
        target = Path(dst)
        blob = self.encrypt(Path(src).read_bytes(), name=target.name if name is None else name)
        atomic_write(target, blob)

    def decrypt_file(
        self, src: str | os.PathLike[str], dst: str | os.PathLike[str], *, name: str | None = None
    ) -> None:
        """Decrypt file ``src`` into ``dst``; ``dst`` is written only after authentication.

        ``name`` defaults to the base name of ``src``.

        Raises:
            IntegrityError: as for :meth:`decrypt`; ``dst`` is then left untouched.
        """
        source = Path(src)
        plain = self.decrypt(source.read_bytes(), name=source.name if name is None else name)
        atomic_write(Path(dst), plain)

    def rewrap_file(self, path: str | os.PathLike[str], *, name: str | None = None) -> bool:
        """Re-wrap an encrypted file in place (atomically); returns whether it changed."""
        target = Path(path)
        blob = target.read_bytes()
        new = self.rewrap(blob, name=target.name if name is None else name)
        if new is blob:
            return False
        atomic_write(target, new)
        return True
