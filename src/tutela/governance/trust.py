"""The auditor's trust store: the audit-signing keys pinned out of band.

An auditor trusts a checkpoint only if it is signed by a key they pinned, never by a key the
evidence names. The trust store is a text file (default ``HOME/trusted-audit-keys``, see
:func:`tutela.governance.home.trust_store_path`) with one note verifier key per line, the
format Go's ``sumdb/note`` and transparency-log witnesses use::

    # comments and blank lines are ignored
    tutela.audit/0a1b2c3d4e5f6a7b+1f2e3d4c+AbCd...=

A signing key's verifier key (its fingerprint) is printed where the key is created
(``tutela audit keygen``, ``tutela demo``, ``tutela server start``) and added here with
``tutela audit trust add``. Witness keys (the sites' cosigning keys, signature type 0x04,
:mod:`tutela.governance.witness`) are pinned here too: they count only as cosigners, never
as checkpoint signers. The file is written by the one private atomic writer.

Security:
    Protects against evidence re-signed with a fresh key: such a key is not in the store.
    The store itself is only as safe as the account that owns it (mode 0600); a key pinned
    without comparing its fingerprint out of band protects nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tutela.errors import ConfigError
from tutela.governance._files import atomic_write
from tutela.governance.checkpoint import VerifierKey
from tutela.governance.home import trust_store_path

__all__ = ["TrustStore", "parse_verifier_keys", "pin"]

_HEADER = (
    "# Tutela trust store: audit-signing keys pinned out of band, one note verifier key a line.\n"
    "# Managed with `tutela audit trust add|list|remove`.\n"
)


def parse_verifier_keys(values: Iterable[str]) -> list[VerifierKey]:
    """Parse verifier keys given on a command line or in a file.

    Raises:
        ConfigError: one is not a note verifier key (named in the message).
    """
    out = []
    for value in values:
        try:
            out.append(VerifierKey.parse(value))
        except ValueError as exc:
            raise ConfigError(f"{exc}; expected <name>+<key ID>+<key> as printed") from None
    return out


@dataclass(frozen=True)
class TrustStore:
    """Pinned verifier keys, in the order they were added."""

    path: Path
    keys: tuple[VerifierKey, ...] = ()

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> TrustStore:
        """Read the store at ``path`` (default :func:`trust_store_path`); missing means empty.

        Raises:
            ConfigError: a line is not a verifier key (the message names file and line).
        """
        target = trust_store_path(path)
        if not target.exists():
            return cls(target)
        keys: list[VerifierKey] = []
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read trust store {target}: {exc}") from None
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                key = VerifierKey.parse(line)
            except ValueError as exc:
                raise ConfigError(f"trust store {target} line {number}: {exc}") from None
            if key not in keys:
                keys.append(key)
        return cls(target, tuple(keys))

    def save(self) -> None:
        """Write the store (atomic, mode 0600)."""
        body = "".join(key.encode() + "\n" for key in self.keys)
        atomic_write(self.path, (_HEADER + body).encode("utf-8"))

    def with_key(self, key: VerifierKey) -> TrustStore:
        """A copy that also trusts ``key``."""
        if key in self.keys:
            return self
        return TrustStore(self.path, (*self.keys, key))

    def without(self, name_or_key: str) -> tuple[TrustStore, tuple[VerifierKey, ...]]:
        """A copy without the keys matching a verifier key or a key name, and those removed."""
        wanted = name_or_key.strip()
        removed = tuple(k for k in self.keys if wanted in (k.encode(), k.name))
        kept = tuple(k for k in self.keys if k not in removed)
        return TrustStore(self.path, kept), removed


def pin(key: VerifierKey, path: str | os.PathLike[str] | None = None) -> Path:
    """Add ``key`` to the trust store (default the user's); returns the store's path."""
    store = TrustStore.load(path)
    if key not in store.keys:
        store.with_key(key).save()
    return store.path
