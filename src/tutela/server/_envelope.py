"""Binding of :class:`tutela.server.sealing.BlobSealer` to the governance envelope."""

from __future__ import annotations

from pathlib import Path

from tutela.governance.envelope import Envelope
from tutela.governance.home import open_keyring


class EnvelopeSealer:
    """Seals blobs with :class:`tutela.governance.envelope.Envelope` (AES-256-GCM, per-blob DEK)."""

    def __init__(self, envelope: Envelope) -> None:
        self._envelope = envelope

    def seal(self, data: bytes, *, name: str) -> bytes:
        return self._envelope.encrypt(data, name=name)

    def open(self, blob: bytes, *, name: str) -> bytes:
        return self._envelope.decrypt(blob, name=name)


def envelope_sealer(keyring: Path, *, passphrase: str | None, create: bool) -> EnvelopeSealer:
    """Open (or create) the keyring through the one resolver and return a sealer over it.

    Secrets follow :func:`tutela.governance.home.open_keyring`: ``passphrase`` (or
    ``TUTELA_KEYFILE`` / ``TUTELA_PASSPHRASE``), else a 32-byte key file beside the keyring
    (``<keyring>.key``, mode 0600), which suits an unattended service.
    """
    return EnvelopeSealer(Envelope(open_keyring(keyring, passphrase=passphrase, create=create)))
