"""The data owner's key directory: the secret key under the governance keyring.

Layout::

    KEYDIR/secret.key.enc   the TenSEAL secret context, AES-256-GCM envelope under the
                            governance keyring (name-bound to this file's role)
    KEYDIR/public.bundle    what the service receives: public key and relin keys
    KEYDIR/model.json       the model card the key was made for

Security: the secret key exists in clear only in the owner's process memory; the service
never receives ``secret.key.enc`` or the keyring.
"""

from __future__ import annotations

from pathlib import Path

from tutela.errors import ConfigError
from tutela.governance._files import atomic_write, private_dir
from tutela.governance.envelope import Envelope
from tutela.governance.home import open_keyring
from tutela.he.card import ModelCard
from tutela.he.owner import OwnerKey

__all__ = ["BUNDLE_FILE", "CARD_FILE", "SECRET_FILE", "create_key_dir", "open_key_dir"]

SECRET_FILE = "secret.key.enc"  # noqa: S105 - a file name, not a secret
BUNDLE_FILE = "public.bundle"
CARD_FILE = "model.json"
_SECRET_NAME = "he/secret.key"  # noqa: S105 - an envelope name, not a secret


def create_key_dir(
    directory: Path, card: ModelCard, *, keyring: Path | None = None, force: bool = False
) -> OwnerKey:
    """Generate a key pair for ``card``'s parameters and write the key directory.

    Raises:
        ConfigError: a key already exists there and ``force`` is false.
    """
    if (directory / SECRET_FILE).exists() and not force:
        raise ConfigError(f"a key already exists in {directory} (pass --force to replace it)")
    key = OwnerKey.generate(card.params)
    envelope = Envelope(open_keyring(keyring))
    private_dir(directory)
    atomic_write(directory / SECRET_FILE, envelope.encrypt(key.secret_bytes(), name=_SECRET_NAME))
    atomic_write(directory / BUNDLE_FILE, key.bundle(), mode=0o644)
    atomic_write(directory / CARD_FILE, card.dumps().encode(), mode=0o644)
    return key


def read_card(directory: Path) -> ModelCard:
    """The model card stored in a key directory."""
    path = directory / CARD_FILE
    if not path.is_file():
        raise ConfigError(f"no key in {directory}: run `tutela he keygen` first")
    return ModelCard.loads(path.read_bytes())


def open_key_dir(directory: Path, *, keyring: Path | None = None) -> tuple[OwnerKey, ModelCard]:
    """Load the owner's key (decrypted with the governance keyring) and its model card."""
    card = read_card(directory)
    secret = directory / SECRET_FILE
    if not secret.is_file():
        raise ConfigError(f"no secret key in {directory}: run `tutela he keygen` first")
    envelope = Envelope(open_keyring(keyring, create=False))
    raw = envelope.decrypt(secret.read_bytes(), name=_SECRET_NAME)
    bundle = directory / BUNDLE_FILE
    if not bundle.is_file():
        raise ConfigError(f"no public bundle in {directory}: run `tutela he keygen` again")
    return OwnerKey.from_secret_bytes(raw, card.params, bundle.read_bytes()), card
