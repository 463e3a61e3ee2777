"""Where Tutela keeps its local keys and how the keyring is unlocked: the one resolver.

Every command, recipe and service that needs Tutela's home directory, the governance keyring
or the audit-signing key asks this module, so ``tutela demo``, ``tutela encrypt``,
``tutela pii`` and the coordinator agree on one set of paths and rules::

    home          $TUTELA_HOME, else ./.tutela
    keyring       a path given by the caller (--keyring), else $TUTELA_KEYRING, else HOME/keyring
    signing key   HOME/audit-signing.key (Ed25519, created on first use)
    trust store   $TUTELA_TRUST_STORE, else HOME/trusted-audit-keys (keys an auditor pinned)

The keyring is unlocked by the first secret found, in this order:

1. a key file given by the caller (``--keyfile``);
2. a passphrase given by the caller;
3. the key file named by ``$TUTELA_KEYFILE``;
4. the passphrase in ``$TUTELA_PASSPHRASE``;
5. what the keyring itself asks for (its header says, in clear): the key file
   ``KEYRING.key`` beside it, or a passphrase prompt where the caller offers one.

A new keyring with none of 1-4 is locked by a fresh random key file ``KEYRING.key``, which
suits unattended runs. Key files, keyrings and signing keys are written by the one private
writer (:mod:`tutela.governance._files`: files 0600, new directories 0700).

Security:
    When unlocking fails, the error names the keyring, the secret that was tried and any
    other secret that is set but was not tried. A secret of the wrong kind (a passphrase for
    a keyring locked by a key file) is named as such: the kind is stored in clear. A secret
    of the right kind that does not unlock the keyring stays one opaque failure: wrong
    secret and modified file are not told apart.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.errors import ConfigError, IntegrityError
from tutela.governance.audit import generate_signing_key, load_signing_key
from tutela.governance.envelope import Keyring, KeyringProtection, generate_keyfile

__all__ = [
    "HOME_ENV",
    "KEYFILE_ENV",
    "KEYRING_ENV",
    "PASSPHRASE_ENV",
    "TRUST_STORE_ENV",
    "KeyringSecret",
    "SecretSource",
    "default_keyfile",
    "keyring_path",
    "keyring_secret",
    "open_keyring",
    "signing_key",
    "signing_key_path",
    "trust_store_path",
    "tutela_home",
]

HOME_ENV = "TUTELA_HOME"
KEYRING_ENV = "TUTELA_KEYRING"
KEYFILE_ENV = "TUTELA_KEYFILE"
PASSPHRASE_ENV = "TUTELA_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
TRUST_STORE_ENV = "TUTELA_TRUST_STORE"
DEFAULT_HOME = Path(".tutela")
KEYRING_NAME = "keyring"
SIGNING_KEY_NAME = "audit-signing.key"
TRUST_STORE_NAME = "trusted-audit-keys"

Prompt = Callable[[], str]


def _env(name: str) -> str | None:
    """An environment variable; set but empty counts as unset."""
    return os.environ.get(name) or None


# paths ----------------------------------------------------------------------------------------


def tutela_home() -> Path:
    """Where local key material lives: ``$TUTELA_HOME``, else ``./.tutela``."""
    value = _env(HOME_ENV)
    return Path(value) if value is not None else DEFAULT_HOME


def keyring_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The keyring file: ``path`` if given, else ``$TUTELA_KEYRING``, else ``HOME/keyring``."""
    if path is not None:
        return Path(path)
    value = _env(KEYRING_ENV)
    return Path(value) if value is not None else tutela_home() / KEYRING_NAME


def default_keyfile(keyring: str | os.PathLike[str]) -> Path:
    """The key file kept beside ``keyring`` (``KEYRING.key``) when none is named."""
    target = Path(keyring)
    return target.with_name(target.name + ".key")


def signing_key_path() -> Path:
    """The audit checkpoint-signing key: ``HOME/audit-signing.key``."""
    return tutela_home() / SIGNING_KEY_NAME


def trust_store_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The auditor's trust store: ``path`` if given, else ``$TUTELA_TRUST_STORE``, else
    ``HOME/trusted-audit-keys``."""
    if path is not None:
        return Path(path)
    value = _env(TRUST_STORE_ENV)
    return Path(value) if value is not None else tutela_home() / TRUST_STORE_NAME


def signing_key() -> Ed25519PrivateKey:
    """The Ed25519 key that signs audit checkpoints, created (mode 0600) on first use."""
    path = signing_key_path()
    if path.exists():
        return load_signing_key(path)
    return generate_signing_key(path)


# secrets --------------------------------------------------------------------------------------


class SecretSource(StrEnum):
    """Where a keyring secret came from (for messages; precedence is in the module doc)."""

    GIVEN = "given"
    ENVIRONMENT = "environment"
    BESIDE = "beside"
    PROMPT = "prompt"


@dataclass(frozen=True)
class KeyringSecret:
    """One secret that may unlock a keyring: a key file or a passphrase, and its source."""

    kind: KeyringProtection
    source: SecretSource
    keyfile: Path | None = None
    passphrase: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """Names the secret without revealing it, e.g. "the passphrase from TUTELA_PASSPHRASE"."""
        if self.kind is KeyringProtection.KEY_FILE:
            where = f" from {KEYFILE_ENV}" if self.source is SecretSource.ENVIRONMENT else ""
            return f"the key file {self.keyfile}{where}"
        return {
            SecretSource.ENVIRONMENT: f"the passphrase from {PASSPHRASE_ENV}",
            SecretSource.PROMPT: "the passphrase entered",
        }.get(self.source, "the given passphrase")


def _candidates(
    keyring: Path, keyfile: str | os.PathLike[str] | None, passphrase: str | None
) -> list[KeyringSecret]:
    """Every secret set for ``keyring``, in order of precedence (nothing is prompted)."""
    found: list[KeyringSecret] = []
    if keyfile is not None:
        found.append(KeyringSecret(KeyringProtection.KEY_FILE, SecretSource.GIVEN, Path(keyfile)))
    if passphrase is not None:
        found.append(
            KeyringSecret(KeyringProtection.PASSPHRASE, SecretSource.GIVEN, passphrase=passphrase)
        )
    env_keyfile = _env(KEYFILE_ENV)
    if env_keyfile is not None:
        found.append(
            KeyringSecret(KeyringProtection.KEY_FILE, SecretSource.ENVIRONMENT, Path(env_keyfile))
        )
    env_passphrase = _env(PASSPHRASE_ENV)
    if env_passphrase is not None:
        found.append(
            KeyringSecret(
                KeyringProtection.PASSPHRASE, SecretSource.ENVIRONMENT, passphrase=env_passphrase
            )
        )
    beside = default_keyfile(keyring)
    if beside.is_file():
        found.append(KeyringSecret(KeyringProtection.KEY_FILE, SecretSource.BESIDE, beside))
    unique: list[KeyringSecret] = []
    for secret in found:
        same_file = secret.keyfile is not None and any(
            s.keyfile is not None and s.keyfile.resolve() == secret.keyfile.resolve()
            for s in unique
        )
        if not same_file:
            unique.append(secret)
    return unique


def keyring_secret(
    keyring: str | os.PathLike[str] | None = None,
    *,
    keyfile: str | os.PathLike[str] | None = None,
    passphrase: str | None = None,
    prompt: Prompt | None = None,
) -> KeyringSecret | None:
    """The secret that :func:`open_keyring` would try for ``keyring``, or ``None``.

    ``None`` means nothing is set: for an existing keyring it cannot be opened without
    asking; a new one would be locked by a fresh key file beside it. ``prompt`` is called
    only for an existing passphrase-locked keyring and nothing else set.

    Raises:
        ConfigError: ``keyring`` exists but is not a Tutela keyring.
    """
    target = keyring_path(keyring)
    found = _candidates(target, keyfile, passphrase)
    chosen = [s for s in found if s.source is not SecretSource.BESIDE]
    if chosen:
        return chosen[0]
    if not target.exists():
        return None
    if Keyring.protection_of(target) is KeyringProtection.KEY_FILE:
        return found[0] if found else None
    if prompt is not None:
        return KeyringSecret(KeyringProtection.PASSPHRASE, SecretSource.PROMPT, passphrase=prompt())
    return None


# opening --------------------------------------------------------------------------------------


def _also(others: list[KeyringSecret]) -> str:
    notes = [
        f"{s.describe()} is also {'present' if s.source is SecretSource.BESIDE else 'set'} "
        "but was not tried"
        for s in others
    ]
    return "".join(f"; {note}" for note in notes)


def _wrong_kind_hint(target: Path, tried: KeyringSecret, others: list[KeyringSecret]) -> str:
    wanted = [s for s in others if s.kind is not tried.kind]
    from_env = tried.source is SecretSource.ENVIRONMENT
    variable = KEYFILE_ENV if tried.kind is KeyringProtection.KEY_FILE else PASSPHRASE_ENV
    if wanted:
        if from_env:
            return f"unset {variable} to use {wanted[0].describe()}"
        return f"use {wanted[0].describe()} instead"
    if tried.kind is KeyringProtection.PASSPHRASE:
        return f"set {KEYFILE_ENV} to its key file (there is none at {default_keyfile(target)})"
    rest = f" and unset {KEYFILE_ENV}" if from_env else " instead of a key file"
    return f"set {PASSPHRASE_ENV} to its passphrase{rest}"


def _no_secret_error(target: Path, expected: KeyringProtection) -> str:
    if expected is KeyringProtection.KEY_FILE:
        return (
            f"cannot open keyring {target}: it is locked by a key file and there is none at "
            f"{default_keyfile(target)}; set {KEYFILE_ENV} to its key file"
        )
    return f"cannot open keyring {target}: it is locked by a passphrase; set {PASSPHRASE_ENV}"


def open_keyring(
    path: str | os.PathLike[str] | None = None,
    *,
    keyfile: str | os.PathLike[str] | None = None,
    passphrase: str | None = None,
    create: bool = True,
    prompt: Prompt | None = None,
) -> Keyring:
    """Open the keyring (by default Tutela's, see :func:`keyring_path`), or create it.

    Args:
        path: the keyring file; default :func:`keyring_path`.
        keyfile: a key file given by the caller (takes precedence over everything else).
        passphrase: a passphrase given by the caller (precedes the environment).
        create: create the keyring if it does not exist; a missing key file that is to
            lock it is generated (32 random bytes, mode 0600).
        prompt: asks for the passphrase of an existing passphrase-locked keyring when no
            secret is set (interactive callers only).

    Raises:
        FileNotFoundError: no keyring at the path and not ``create``.
        ConfigError: no secret for the keyring, a secret of the wrong kind, a missing or
            short key file, or the file is not a keyring; the message names the keyring,
            the secret it expects and the one tried.
        IntegrityError: the secret tried does not unlock the keyring, or the keyring was
            modified (one failure; the message names the keyring and the secret tried).
    """
    target = keyring_path(path)
    if not target.exists():
        if not create:
            raise FileNotFoundError(f"no keyring at {target} (create one with `tutela keys init`)")
        return _create(target, keyfile, passphrase)
    expected = Keyring.protection_of(target)
    found = _candidates(target, keyfile, passphrase)
    secret = keyring_secret(target, keyfile=keyfile, passphrase=passphrase, prompt=prompt)
    if secret is None:
        raise ConfigError(_no_secret_error(target, expected))
    others = [s for s in found if s != secret]
    tried = secret.describe()
    if secret.kind is not expected:
        raise ConfigError(
            f"cannot open keyring {target}: it is locked by {expected.description}, but "
            f"{tried} was tried; {_wrong_kind_hint(target, secret, others)}"
        )
    if secret.keyfile is not None and not secret.keyfile.is_file():
        raise ConfigError(f"cannot open keyring {target}: {tried} does not exist")
    try:
        return Keyring.open(target, passphrase=secret.passphrase, keyfile=secret.keyfile)
    except IntegrityError:
        noun = "passphrase" if expected is KeyringProtection.PASSPHRASE else "key file"
        raise IntegrityError(
            f"cannot open keyring {target}: {tried} does not unlock it "
            f"(wrong {noun}, or the keyring file was modified{_also(others)})"
        ) from None


def _create(
    target: Path, keyfile: str | os.PathLike[str] | None, passphrase: str | None
) -> Keyring:
    chosen = [
        s for s in _candidates(target, keyfile, passphrase) if s.source is not SecretSource.BESIDE
    ]
    if chosen and chosen[0].passphrase is not None:
        return Keyring.create(target, passphrase=chosen[0].passphrase)
    lock = chosen[0].keyfile if chosen and chosen[0].keyfile else default_keyfile(target)
    if not lock.exists():
        generate_keyfile(lock)
    return Keyring.create(target, keyfile=lock)
