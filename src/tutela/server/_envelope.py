"""Binding of :class:`tutela.server.sealing.BlobSealer` to the governance envelope."""

from __future__ import annotations

from pathlib import Path

from tutela.governance.envelope import Envelope, Keyring, generate_keyfile


class EnvelopeSealer:
    """Seals blobs with :class:`tutela.governance.envelope.Envelope` (AES-256-GCM, per-blob DEK)."""

    def __init__(self, envelope: Envelope) -> None:
        self._envelope = envelope

    def seal(self, data: bytes, *, name: str) -> bytes:
        return self._envelope.encrypt(data, name=name)

    def open(self, blob: bytes, *, name: str) -> bytes:
        return self._envelope.decrypt(blob, name=name)


def keyfile_for(keyring: Path) -> Path:
    """The key file that protects ``keyring`` when no passphrase is given."""
    return keyring.with_name(keyring.name + ".key")


def envelope_sealer(keyring: Path, *, passphrase: str | None) -> EnvelopeSealer:
    """Open (or create) the keyring and return a sealer over it.

    With a passphrase the keyring is scrypt-protected; without one it is protected by a
    32-byte key file next to it (mode 0600), which suits an unattended service.
    """
    if passphrase:
        ring = (
            Keyring.open(keyring, passphrase=passphrase)
            if keyring.exists()
            else Keyring.create(keyring, passphrase=passphrase)
        )
    else:
        keyfile = keyfile_for(keyring)
        if not keyring.exists():
            keyring.parent.mkdir(parents=True, exist_ok=True)
            if not keyfile.exists():
                generate_keyfile(keyfile)
            ring = Keyring.create(keyring, keyfile=keyfile)
        else:
            ring = Keyring.open(keyring, keyfile=keyfile)
    return EnvelopeSealer(Envelope(ring))
