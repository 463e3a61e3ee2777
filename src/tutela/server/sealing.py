"""Encryption at rest for the coordinator's sensitive blobs, behind one small interface.

Everything the store keeps that could reveal a site's data (global models, submitted
updates, relayed protocol messages) goes through a :class:`BlobSealer` before it reaches
the database. The name of each blob (``update/<study>/<round>/<site>``) is bound as
associated data, so a blob copied into another row fails to open.

Security: confidentiality and integrity of blobs at rest against someone who reads or
edits the database (a stolen backup, a curious DBA). Not protected: a live coordinator
process, which holds the key and sees what it aggregates (SecAgg+ keeps individual updates
masked even there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class BlobSealer(Protocol):
    """Authenticated encryption of named blobs."""

    def seal(self, data: bytes, *, name: str) -> bytes:
        """Encrypt ``data``; ``name`` is bound as associated data."""
        ...

    def open(self, blob: bytes, *, name: str) -> bytes:
        """Decrypt a sealed blob; raises ``IntegrityError`` on any mismatch."""
        ...


def open_sealer(keyring: Path, *, create: bool = True, passphrase: str | None = None) -> BlobSealer:
    """The coordinator's sealer: the governance envelope over a keyring file.

    Args:
        keyring: keyring path (created on first use when ``create``).
        create: create a new keyring if none exists.
        passphrase: keyring passphrase; by default the secret is resolved as for every
            keyring (:func:`tutela.governance.home.open_keyring`): ``TUTELA_KEYFILE``,
            ``TUTELA_PASSPHRASE``, else a key file beside the keyring (``<keyring>.key``).

    Raises:
        FileNotFoundError: no keyring at ``keyring`` and not ``create``.
    """
    from tutela.server._envelope import envelope_sealer

    return envelope_sealer(keyring, passphrase=passphrase, create=create)
