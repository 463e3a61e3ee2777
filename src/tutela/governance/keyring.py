"""The keyring of envelope encryption: key-encryption keys (KEKs), one of them primary, kept
in one file encrypted under a passphrase or a key file.

Keyring file (JSON, version 1)::

    {"format": "tutela-keyring", "version": 1,
     "protection": {"kind": "scrypt", "salt": B64, "n": N, "r": R, "p": P}
                 | {"kind": "keyfile", "salt": B64},
     "nonce": B64, "ciphertext": B64}

``ciphertext`` is AES-256-GCM under the master key (scrypt of the passphrase, or HKDF-SHA256
of the key file's bytes) with the canonical JSON of ``format``, ``version`` and
``protection`` as associated data, so KDF parameters cannot be downgraded unnoticed. The
plaintext is JSON listing each KEK (id, base64 key, created, state).

Security:
    The keyring file is AES-256-GCM encrypted under the master key; a wrong secret, a
    tampered file or tampered KDF parameters raise one opaque
    :class:`~tutela.errors.IntegrityError`. KEK material lives in process memory while the
    keyring is open. :mod:`tutela.governance.envelope` encrypts objects under it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tutela.errors import ConfigError, IntegrityError
from tutela.governance._files import atomic_write

__all__ = [
    "DEFAULT_SCRYPT_N",
    "KeyInfo",
    "KeyState",
    "Keyring",
    "KeyringProtection",
    "generate_keyfile",
]

KEY_ID_BYTES = 8
NONCE_BYTES = 12
KEY_BYTES = 32

KEYRING_FORMAT = "tutela-keyring"
KEYRING_VERSION = 1
DEFAULT_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1
_MAX_SCRYPT_N = 2**20
_MAX_SCRYPT_MEMORY = 256 * 1024 * 1024
"""scrypt needs ``128 * n * r`` bytes; a keyring file (which anyone with write access to it
can craft) may not ask for more than this, nor for more than ``2**20 * 8`` block mixes per
lane times 4 lanes of work."""
_MAX_SCRYPT_WORK = 4 * 2**20 * 8
_MIN_KEYFILE_BYTES = 32
_KEYFILE_INFO = b"tutela/keyring/v1/keyfile"

Rng = Callable[[int], bytes]
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError("expected base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


class KeyState(StrEnum):
    """Life-cycle state of a key-encryption key."""

    PRIMARY = "primary"
    """Wraps every new data key."""
    ACTIVE = "active"
    """Still unwraps data keys written before a rotation."""
    RETIRED = "retired"
    """Material erased; objects still wrapped under it can no longer be decrypted."""


@dataclass(frozen=True)
class KeyInfo:
    """Public description of one key-encryption key (never the key itself)."""

    key_id: str
    created: str
    state: KeyState
    retired: str | None = None


class KeyringProtection(StrEnum):
    """What unlocks a keyring file (stored in clear, authenticated as associated data)."""

    PASSPHRASE = "scrypt"  # noqa: S105 - the protection kind, not a secret
    KEY_FILE = "keyfile"

    @property
    def description(self) -> str:
        """``"a passphrase"`` or ``"a key file"``, for messages."""
        return "a passphrase" if self is KeyringProtection.PASSPHRASE else "a key file"


@dataclass(frozen=True)
class _Kek:
    info: KeyInfo
    material: bytes | None


@dataclass(frozen=True)
class _Protection:
    kind: str  # "scrypt" | "keyfile"
    salt: bytes
    n: int = DEFAULT_SCRYPT_N
    r: int = _SCRYPT_R
    p: int = _SCRYPT_P

    def to_json(self) -> dict[str, Any]:
        if self.kind == "scrypt":
            return {
                "kind": "scrypt",
                "salt": _b64(self.salt),
                "n": self.n,
                "r": self.r,
                "p": self.p,
            }
        return {"kind": "keyfile", "salt": _b64(self.salt)}

    @classmethod
    def from_json(cls, raw: object) -> _Protection:
        if not isinstance(raw, dict):
            raise ConfigError("keyring: 'protection' must be an object")
        kind = raw.get("kind")
        try:
            salt = _unb64(raw.get("salt"))
        except (TypeError, ValueError, binascii.Error) as exc:
            raise ConfigError("keyring: bad 'protection.salt'") from exc
        if kind == "keyfile":
            return cls("keyfile", salt)
        if kind == "scrypt":
            n, r, p = raw.get("n"), raw.get("r"), raw.get("p")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
                raise ConfigError("keyring: scrypt parameters must be integers")
            assert isinstance(n, int)
            assert isinstance(r, int)
            assert isinstance(p, int)
            if n < 2 or n > _MAX_SCRYPT_N or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
                raise ConfigError("keyring: scrypt parameters out of range")
            if 128 * n * r > _MAX_SCRYPT_MEMORY or n * r * p > _MAX_SCRYPT_WORK:
                raise ConfigError(
                    f"keyring: scrypt parameters n={n}, r={r}, p={p} ask for more memory or "
                    "work than Tutela allows (at most 256 MiB); refusing to derive"
                )
            return cls("scrypt", salt, n, r, p)
        raise ConfigError(f"keyring: unknown protection kind {kind!r}")

    def aad(self) -> bytes:
        header = {
            "format": KEYRING_FORMAT,
            "version": KEYRING_VERSION,
            "protection": self.to_json(),
        }
        return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _derive_master(
    protection: _Protection, passphrase: str | None, keyfile: str | os.PathLike[str] | None
) -> bytes:
    if (passphrase is None) == (keyfile is None):
        raise ValueError("give exactly one of passphrase= or keyfile=")
    if protection.kind == "scrypt":
        if passphrase is None:
            raise IntegrityError()
        kdf = Scrypt(
            salt=protection.salt, length=KEY_BYTES, n=protection.n, r=protection.r, p=protection.p
        )
        return kdf.derive(passphrase.encode("utf-8"))
    if keyfile is None:
        raise IntegrityError()
    secret = Path(keyfile).read_bytes()
    if len(secret) < _MIN_KEYFILE_BYTES:
        raise ConfigError(f"key file {keyfile} holds fewer than {_MIN_KEYFILE_BYTES} bytes")
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=protection.salt, info=_KEYFILE_INFO
    )
    return hkdf.derive(secret)


def generate_keyfile(path: str | os.PathLike[str], *, rng: Rng = os.urandom) -> None:
    """Write a new random key file (32 random bytes, hex encoded, mode 0600).

    Raises:
        FileExistsError: ``path`` already exists (a key file is never overwritten).
    """
    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    atomic_write(target, rng(KEY_BYTES).hex().encode("ascii") + b"\n")


class Keyring:
    """A set of key-encryption keys, one of them primary, stored encrypted on disk.

    Create with :meth:`create`, load with :meth:`open`; :meth:`from_keys` builds an
    in-memory keyring from given keys (known-answer tests, embedding). Mutations
    (:meth:`rotate`, :meth:`retire`) are saved atomically when the keyring has a path.

    Security:
        The file is AES-256-GCM encrypted under a key derived from the passphrase (scrypt,
        N=2^15, r=8, p=1 by default) or from a key file (HKDF-SHA256). A wrong secret, a
        tampered file or tampered KDF parameters raise :class:`IntegrityError`. KEK
        material lives in process memory while the keyring is open.
    """

    def __init__(
        self,
        keks: Mapping[str, _Kek],
        primary: str,
        *,
        path: Path | None = None,
        protection: _Protection | None = None,
        master: bytes | None = None,
        rng: Rng = os.urandom,
        clock: Clock = _utc_now,
    ) -> None:
        self._keks: dict[str, _Kek] = dict(keks)
        self._primary = primary
        self._path = path
        self._protection = protection
        self._master = master
        self._rng = rng
        self._clock = clock

    # construction ---------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        passphrase: str | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        scrypt_n: int = DEFAULT_SCRYPT_N,
        rng: Rng = os.urandom,
        clock: Clock = _utc_now,
    ) -> Keyring:
        """Create a keyring file holding one fresh primary KEK.

        Args:
            path: where to write the keyring (parent directories are created).
            passphrase: protect with scrypt of this passphrase (exactly one of the two).
            keyfile: protect with a key file of at least 32 bytes (see :func:`generate_keyfile`).
            scrypt_n: scrypt cost (power of two, at most 2^20); lower only in tests.
            rng: randomness source (keys, salts, nonces).
            clock: time source for key creation stamps.

        Raises:
            FileExistsError: ``path`` exists (a keyring is never overwritten).
            ValueError: not exactly one of ``passphrase`` / ``keyfile``, or an empty passphrase.
        """
        target = Path(path)
        if target.exists():
            raise FileExistsError(f"keyring {target} already exists")
        if passphrase is not None and not passphrase:
            raise ValueError("passphrase must not be empty")
        if passphrase is not None:
            if scrypt_n < 2 or scrypt_n > _MAX_SCRYPT_N or scrypt_n & (scrypt_n - 1):
                raise ValueError("scrypt_n must be a power of two between 2 and 2^20")
            protection = _Protection("scrypt", rng(16), scrypt_n)
        else:
            protection = _Protection("keyfile", rng(16))
        master = _derive_master(protection, passphrase, keyfile)
        key_id = rng(KEY_ID_BYTES).hex()
        kek = _Kek(KeyInfo(key_id, _iso(clock()), KeyState.PRIMARY), rng(KEY_BYTES))
        ring = cls(
            {key_id: kek},
            key_id,
            path=target,
            protection=protection,
            master=master,
            rng=rng,
            clock=clock,
        )
        ring.save()  # parent directories are created 0700
        return ring

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        passphrase: str | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        rng: Rng = os.urandom,
        clock: Clock = _utc_now,
    ) -> Keyring:
        """Open an existing keyring file.

        Raises:
            FileNotFoundError: no keyring at ``path``.
            ConfigError: the file is not a Tutela keyring.
            IntegrityError: wrong passphrase/key file, or the file was tampered with (one
                opaque error); a secret of the wrong kind (a passphrase for a keyring locked
                by a key file) is named as such, since the kind is stored in clear.
            ValueError: not exactly one of ``passphrase`` / ``keyfile``.
        """
        target = Path(path)
        doc, protection = cls._read(target)
        if (passphrase is None) == (keyfile is None):
            raise ValueError("give exactly one of passphrase= or keyfile=")
        given = KeyringProtection.PASSPHRASE if keyfile is None else KeyringProtection.KEY_FILE
        if protection.kind != given.value:
            # The protection kind is stored in clear: naming it reveals nothing secret.
            expected = KeyringProtection(protection.kind)
            raise IntegrityError(
                f"keyring {target} is locked by {expected.description}, not {given.description}"
            )
        master = _derive_master(protection, passphrase, keyfile)
        try:
            nonce = _unb64(doc.get("nonce"))
            ciphertext = _unb64(doc.get("ciphertext"))
            plain = AESGCM(master).decrypt(nonce, ciphertext, protection.aad())
            payload = json.loads(plain)
            keks, primary = cls._parse_payload(payload)
        except (InvalidTag, TypeError, ValueError, KeyError, binascii.Error) as exc:
            raise IntegrityError() from exc
        return cls(
            keks, primary, path=target, protection=protection, master=master, rng=rng, clock=clock
        )

    @classmethod
    def protection_of(cls, path: str | os.PathLike[str]) -> KeyringProtection:
        """What unlocks the keyring file at ``path`` (read from its clear header).

        Raises:
            FileNotFoundError: no keyring at ``path``.
            ConfigError: the file is not a Tutela keyring.
        """
        return KeyringProtection(cls._read(Path(path))[1].kind)

    @staticmethod
    def _read(target: Path) -> tuple[dict[str, Any], _Protection]:
        if not target.exists():
            raise FileNotFoundError(f"no keyring at {target} (create one with `tutela keys init`)")
        try:
            doc = json.loads(target.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{target} is not a Tutela keyring") from exc
        if not isinstance(doc, dict) or doc.get("format") != KEYRING_FORMAT:
            raise ConfigError(f"{target} is not a Tutela keyring")
        if doc.get("version") != KEYRING_VERSION:
            raise ConfigError(f"keyring {target}: unsupported version {doc.get('version')!r}")
        return doc, _Protection.from_json(doc.get("protection"))

    @classmethod
    def from_keys(
        cls,
        keys: Mapping[str, bytes],
        *,
        primary: str,
        rng: Rng = os.urandom,
        clock: Clock = _utc_now,
    ) -> Keyring:
        """Build an in-memory keyring (not saved) from ``{key_id_hex: 32-byte key}``.

        Raises:
            ValueError: a key id is not 16 hex digits, a key is not 32 bytes, or
                ``primary`` is not among the keys.
        """
        keks: dict[str, _Kek] = {}
        created = _iso(clock())
        for key_id, material in keys.items():
            cls._check_key_id(key_id)
            if len(material) != KEY_BYTES:
                raise ValueError(f"key {key_id} must be {KEY_BYTES} bytes")
            state = KeyState.PRIMARY if key_id == primary else KeyState.ACTIVE
            keks[key_id] = _Kek(KeyInfo(key_id, created, state), bytes(material))
        if primary not in keks:
            raise ValueError("primary must be one of the keys")
        return cls(keks, primary, rng=rng, clock=clock)

    @staticmethod
    def _check_key_id(key_id: str) -> None:
        try:
            ok = len(bytes.fromhex(key_id)) == KEY_ID_BYTES and key_id == key_id.lower()
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"key id must be {2 * KEY_ID_BYTES} lowercase hex digits: {key_id!r}")

    @classmethod
    def _parse_payload(cls, payload: object) -> tuple[dict[str, _Kek], str]:
        if not isinstance(payload, dict) or not isinstance(payload.get("keys"), list):
            raise ValueError("bad keyring payload")
        keks: dict[str, _Kek] = {}
        primary: str | None = None
        for entry in payload["keys"]:
            key_id = entry["id"]
            cls._check_key_id(key_id)
            state = KeyState(entry["state"])
            material = None if state is KeyState.RETIRED else _unb64(entry["key"])
            if material is not None and len(material) != KEY_BYTES:
                raise ValueError("bad key length")
            info = KeyInfo(key_id, str(entry["created"]), state, entry.get("retired"))
            keks[key_id] = _Kek(info, material)
            if state is KeyState.PRIMARY:
                if primary is not None:
                    raise ValueError("two primary keys")
                primary = key_id
        if primary is None:
            raise ValueError("no primary key")
        return keks, primary

    # persistence ----------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """Where the keyring is saved (``None`` for an in-memory keyring)."""
        return self._path

    def save(self) -> None:
        """Write the keyring atomically (no-op for an in-memory keyring)."""
        if self._path is None or self._protection is None or self._master is None:
            return
        entries = []
        for kek in self._keks.values():
            entry: dict[str, Any] = {
                "id": kek.info.key_id,
                "created": kek.info.created,
                "state": kek.info.state.value,
            }
            if kek.material is not None:
                entry["key"] = _b64(kek.material)
            if kek.info.retired is not None:
                entry["retired"] = kek.info.retired
            entries.append(entry)
        plain = json.dumps({"keys": entries}, sort_keys=True).encode("utf-8")
        nonce = self._rng(NONCE_BYTES)
        ciphertext = AESGCM(self._master).encrypt(nonce, plain, self._protection.aad())
        doc = {
            "format": KEYRING_FORMAT,
            "version": KEYRING_VERSION,
            "protection": self._protection.to_json(),
            "nonce": _b64(nonce),
            "ciphertext": _b64(ciphertext),
        }
        atomic_write(self._path, json.dumps(doc, indent=2).encode("utf-8") + b"\n")

    # keys -------------------------------------------------------------------------------

    @property
    def primary_id(self) -> str:
        """Id of the KEK that wraps new data keys."""
        return self._primary

    def list_keys(self) -> list[KeyInfo]:
        """Every KEK ever in this keyring (retired ones without material), oldest first."""
        return [kek.info for kek in self._keks.values()]

    def rotate(self) -> KeyInfo:
        """Add a fresh KEK and make it primary; the old primary stays active for unwrapping.

        Returns:
            The new primary key's description. Saved when the keyring has a path.
        """
        key_id = self._rng(KEY_ID_BYTES).hex()
        while key_id in self._keks:  # pragma: no cover - 2^-64 chance
            key_id = self._rng(KEY_ID_BYTES).hex()
        old = self._keks[self._primary]
        self._keks[self._primary] = replace(old, info=replace(old.info, state=KeyState.ACTIVE))
        info = KeyInfo(key_id, _iso(self._clock()), KeyState.PRIMARY)
        self._keks[key_id] = _Kek(info, self._rng(KEY_BYTES))
        self._primary = key_id
        self.save()
        return info

    def retire(self, key_id: str) -> None:
        """Erase a non-primary KEK's material; objects still under it become undecryptable.

        Raises:
            KeyError: unknown key id.
            ValueError: ``key_id`` is the primary key.
        """
        if key_id not in self._keks:
            raise KeyError(f"no key {key_id!r} in keyring")
        if key_id == self._primary:
            raise ValueError("cannot retire the primary key; rotate first")
        kek = self._keks[key_id]
        if kek.info.state is KeyState.RETIRED:
            return
        info = replace(kek.info, state=KeyState.RETIRED, retired=_iso(self._clock()))
        self._keks[key_id] = _Kek(info, None)
        self.save()

    def retire_unused(self, in_use: Iterable[str]) -> list[str]:
        """Retire every active (non-primary) KEK whose id is not in ``in_use``.

        ``in_use`` is the set of KEK ids still referenced by stored objects (see
        :func:`read_header`). Returns the ids retired.
        """
        used = set(in_use)
        retired = [
            kek.info.key_id
            for kek in self._keks.values()
            if kek.info.state is KeyState.ACTIVE and kek.info.key_id not in used
        ]
        for key_id in retired:
            self.retire(key_id)
        return retired

    def _material(self, key_id: str) -> bytes | None:
        kek = self._keks.get(key_id)
        return None if kek is None else kek.material
