"""C2SP signed notes and transparency-log checkpoints, with Ed25519 note signatures.

Implements https://c2sp.org/signed-note (Ed25519, signature type ``0x01``) and
https://c2sp.org/tlog-checkpoint, so the audit log's tree heads can be read and checked by
standard transparency-log tooling (Go's ``golang.org/x/mod/sumdb/note``, witnesses)::

    <origin>                       checkpoint body (the note text): origin,
    <tree size>                    tree size in ASCII decimal (no leading zeroes),
    <base64 root hash>             base64 (RFC 4648 §4) of the RFC 6962 root,
                                   a blank line, then one line per signature:
    — <key name> <base64(key ID || Ed25519 signature over the note text)>

    key ID       = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]
    verifier key = <key name>+<hex key ID>+<base64(0x01 || public key)>

The verifier key is the fingerprint an auditor pins out of band (see
:mod:`tutela.governance.trust`). A witness's key has the same form with signature type
``0x04`` (https://c2sp.org/tlog-cosignature, :mod:`tutela.governance.witness`): it names a
cosigner, never a checkpoint signer, and :meth:`SignedNote.signers` ignores it. A
checkpoint counts only for the verifier keys the caller passes: signatures from other keys
are ignored, as the note specification requires, and a signature from a known key that
does not verify rejects the whole note.

Security:
    Authenticates a tree head against keys the verifier chose; it never trusts a key the
    note itself names. Key IDs are 4 bytes, an identifier, not a hash to rely on: a
    signature counts only if the name, the ID and the public key all match a pinned key.
    Does not show that the log is append-only between two checkpoints (that is a
    consistency proof, :mod:`tutela.governance.merkle`), nor that the log showed everyone the
    same head (that needs witnesses' cosignatures).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tutela.errors import AuditError, AuditVerificationError
from tutela.governance._files import atomic_write

__all__ = [
    "COSIGNATURE_V1",
    "ED25519",
    "Checkpoint",
    "NoteSignature",
    "SignedNote",
    "VerifierKey",
    "default_key_name",
    "key_id",
]

ED25519 = 0x01
"""Signature type byte of Ed25519 note signatures."""
COSIGNATURE_V1 = 0x04
"""Signature type byte of Ed25519 tlog cosignatures (``cosignature/v1``)."""
_ALGORITHMS = (ED25519, COSIGNATURE_V1)
EM_DASH = "\u2014"
MAX_SIGNATURES = 100
"""Signature lines accepted in one note (the specification requires at least 16)."""
HASH_SIZE = 32
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_SPACES = re.compile(r"\s")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    """Strict standard base64 (padding required, nothing outside the alphabet, canonical)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError(f"{what} is not base64") from None
    if _b64(raw) != text:
        raise ValueError(f"{what} is not canonical base64")
    return raw


def _raw_public(key: Ed25519PrivateKey | Ed25519PublicKey | bytes) -> bytes:
    if isinstance(key, bytes):
        if len(key) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        return key
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def check_key_name(name: str) -> str:
    """Return ``name`` if it is a valid note key name (non-empty, no spaces, no ``+``).

    Raises:
        ValueError: not a valid key name.
    """
    if not isinstance(name, str) or not name or "+" in name or _SPACES.search(name):
        raise ValueError(f"invalid note key name {name!r}: non-empty, no spaces, no '+'")
    if any(ord(c) < 0x20 for c in name):
        raise ValueError(f"invalid note key name {name!r}: control characters")
    return name


def key_id(
    name: str,
    public_key: Ed25519PrivateKey | Ed25519PublicKey | bytes,
    algorithm: int = ED25519,
) -> bytes:
    """The 4-byte key ID: ``SHA-256(name || 0x0A || algorithm || public key)[:4]``
    (``algorithm`` 0x01 for note signatures, 0x04 for cosignatures)."""
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"unsupported signature type {algorithm:#04x}")
    material = check_key_name(name).encode("utf-8") + b"\n" + bytes([algorithm])
    return hashlib.sha256(material + _raw_public(public_key)).digest()[:4]


def default_key_name(key: Ed25519PrivateKey | Ed25519PublicKey | bytes) -> str:
    """The name Tutela gives an audit signing key: ``tutela.audit/<16 hex of SHA-256(key)>``.

    Derived from the key, so a key signs under the same name wherever it is loaded and two
    keys never share a name.
    """
    return "tutela.audit/" + hashlib.sha256(_raw_public(key)).hexdigest()[:16]


@dataclass(frozen=True)
class VerifierKey:
    """A public verification key: a name, an Ed25519 public key and its signature type
    (:data:`ED25519` for checkpoint signers, :data:`COSIGNATURE_V1` for witnesses)."""

    name: str
    public_key: bytes
    algorithm: int = ED25519

    def __post_init__(self) -> None:
        check_key_name(self.name)
        _raw_public(self.public_key)
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"unsupported signature type {self.algorithm:#04x}")

    @classmethod
    def of(
        cls,
        key: Ed25519PrivateKey | Ed25519PublicKey | bytes,
        name: str | None = None,
        algorithm: int = ED25519,
    ) -> VerifierKey:
        """The verifier key of ``key`` under ``name`` (default :func:`default_key_name`)."""
        raw = _raw_public(key)
        return cls(name if name is not None else default_key_name(raw), raw, algorithm)

    @property
    def is_cosigner(self) -> bool:
        """Whether this is a witness's cosignature key (type 0x04), not a checkpoint signer."""
        return self.algorithm == COSIGNATURE_V1

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID (see :func:`key_id`)."""
        return key_id(self.name, self.public_key, self.algorithm)

    def encode(self) -> str:
        """``<name>+<hex key ID>+<base64(type || public key)>``: the fingerprint to pin."""
        material = _b64(bytes([self.algorithm]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def __str__(self) -> str:
        return self.encode()

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse :meth:`encode` output; the key ID must match the name and key.

        Raises:
            ValueError: malformed, not Ed25519, or a key ID that does not match.
        """
        text = text.strip()
        name, _, rest = text.partition("+")
        hex_id, _, material = rest.partition("+")
        if not name or not material or len(hex_id) != 8:
            raise ValueError(f"not a note verifier key: {text!r}")
        try:
            wanted = bytes.fromhex(hex_id)
        except ValueError:
            raise ValueError(f"not a note verifier key (key ID): {text!r}") from None
        if hex_id != wanted.hex():
            raise ValueError(f"not a note verifier key (key ID is not lowercase hex): {text!r}")
        raw = _unb64(material, "verifier key material")
        if len(raw) != 33 or raw[0] not in _ALGORITHMS:
            raise ValueError(f"not an Ed25519 note verifier or cosigner key: {text!r}")
        key = cls(name, raw[1:], raw[0])
        if key.key_id != wanted:
            raise ValueError(f"verifier key ID does not match its name and key: {text!r}")
        return key

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key ID and signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """``— <name> <base64(key ID || signature)>`` and a newline."""
        return f"{EM_DASH} {self.name} {_b64(self.key_id + self.signature)}\n"

    @classmethod
    def parse_line(cls, line: str) -> NoteSignature:
        """Parse one signature line (without its newline).

        Raises:
            ValueError: malformed line.
        """
        prefix = EM_DASH + " "
        if not line.startswith(prefix):
            raise ValueError("a signature line starts with an em dash and a space")
        name, sep, blob = line[len(prefix) :].partition(" ")
        if not sep or " " in blob:
            raise ValueError("a signature line is: em dash, space, key name, space, signature")
        check_key_name(name)
        raw = _unb64(blob, "signature")
        if len(raw) < 5:
            raise ValueError("a signature holds a 4-byte key ID and at least one byte")
        return cls(name, raw[:4], raw[4:])

    def by(self, key: VerifierKey) -> bool:
        """Whether this line claims to be from ``key`` (same name and key ID)."""
        return self.name == key.name and self.key_id == key.key_id


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise ValueError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise ValueError("note text must not contain control characters other than newline")


@dataclass(frozen=True)
class SignedNote:
    """A note: text ending in a newline, and its signatures."""

    text: str
    signatures: tuple[NoteSignature, ...] = ()

    def __post_init__(self) -> None:
        _check_text(self.text)

    def encode(self) -> str:
        """The text, a blank line, then one line per signature."""
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)

    def sign(self, key: Ed25519PrivateKey, name: str | None = None) -> SignedNote:
        """A copy with ``key``'s Ed25519 signature (under ``name``) appended."""
        verifier = VerifierKey.of(key, name)
        signature = key.sign(self.text.encode("utf-8"))
        line = NoteSignature(verifier.name, verifier.key_id, signature)
        return SignedNote(self.text, (*self.signatures, line))

    @classmethod
    def parse(cls, data: str | bytes) -> SignedNote:
        """Parse a signed note (the text ends at the last blank line).

        Raises:
            ValueError: malformed note (not UTF-8, control characters, no signature line,
                a malformed signature line, too many signatures).
        """
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("a signed note must be UTF-8") from None
        if any(ord(c) < 0x20 and c != "\n" for c in data):
            raise ValueError("a signed note must not contain control characters but newline")
        if not data.endswith("\n"):
            raise ValueError("a signed note ends with a newline")
        split = data.rfind("\n\n")
        if split < 0:
            raise ValueError("a signed note has a blank line before its signatures")
        text, block = data[: split + 1], data[split + 2 :]
        lines = block[:-1].split("\n") if block else []
        if not lines:
            raise ValueError("a signed note has at least one signature")
        if len(lines) > MAX_SIGNATURES:
            raise ValueError(f"a signed note may carry at most {MAX_SIGNATURES} signatures")
        return cls(text, tuple(NoteSignature.parse_line(line) for line in lines))

    def signers(self, trusted: Iterable[VerifierKey]) -> tuple[VerifierKey, ...]:
        """The trusted keys whose signature on the text verifies (possibly none).

        Signatures from keys not in ``trusted`` are ignored, and so are cosigner keys
        (type 0x04: witnesses cosign, they do not sign; see
        :mod:`tutela.governance.witness`).

        Raises:
            AuditVerificationError: a signature claiming a trusted key (same name and key
                ID) does not verify: the whole note is rejected.
        """
        keys = [key for key in trusted if key.algorithm == ED25519]
        message = self.text.encode("utf-8")
        found: list[VerifierKey] = []
        for sig in self.signatures:
            for key in keys:
                if not sig.by(key):
                    continue
                if not key.verify(message, sig.signature):
                    raise AuditVerificationError(
                        f"the signature by trusted key {key.name} does not verify"
                    )
                if key not in found:
                    found.append(key)
        return tuple(found)


@dataclass(frozen=True)
class Checkpoint:
    """A tree head in the C2SP checkpoint format: origin, size, root, and note signatures.

    Security:
        A checkpoint proves nothing by itself; :meth:`signers` says which of the keys you
        pinned signed it.
    """

    origin: str
    size: int
    root: bytes
    signatures: tuple[NoteSignature, ...] = ()
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise ValueError("a checkpoint origin is one non-empty line")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError("a checkpoint size is a non-negative integer")
        if len(self.root) != HASH_SIZE:
            raise ValueError("a checkpoint root hash is 32 bytes")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise ValueError("checkpoint extension lines are non-empty single lines")

    def body(self) -> str:
        """The note text: origin, size, base64 root (and any extension lines)."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    def note(self) -> SignedNote:
        """The checkpoint as a signed note."""
        return SignedNote(self.body(), self.signatures)

    @classmethod
    def sign(
        cls, origin: str, size: int, root: bytes, key: Ed25519PrivateKey, *, name: str | None = None
    ) -> Checkpoint:
        """A checkpoint of ``(origin, size, root)`` signed by ``key`` under ``name``."""
        return cls(origin, size, root).add_signature(key, name)

    def add_signature(self, key: Ed25519PrivateKey, name: str | None = None) -> Checkpoint:
        """A copy with one more Ed25519 note signature."""
        signed = self.note().sign(key, name)
        return Checkpoint(self.origin, self.size, self.root, signed.signatures, self.extensions)

    def signers(self, trusted: Iterable[VerifierKey]) -> tuple[VerifierKey, ...]:
        """The trusted keys that signed this checkpoint (see :meth:`SignedNote.signers`)."""
        return self.note().signers(trusted)

    @property
    def signer_names(self) -> tuple[str, ...]:
        """Key names on the signature lines (unverified: for messages only)."""
        return tuple(sig.name for sig in self.signatures)

    def encode(self) -> str:
        """The signed note text."""
        return self.note().encode()

    @classmethod
    def parse(cls, data: str | bytes) -> Checkpoint:
        """Parse a signed checkpoint.

        Raises:
            AuditError: not a well-formed signed checkpoint.
        """
        try:
            note = SignedNote.parse(data)
            lines = note.text[:-1].split("\n")
            if len(lines) < 3:
                raise ValueError("a checkpoint has an origin, a size and a root hash")
            origin, size, root, *extensions = lines
            if not _DECIMAL.fullmatch(size):
                raise ValueError(f"tree size {size!r} is not a decimal without leading zeroes")
            raw_root = _unb64(root, "root hash")
            return cls(origin, int(size), raw_root, note.signatures, tuple(extensions))
        except ValueError as exc:
            raise AuditError(f"malformed checkpoint: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the signed note (atomically; readable by others, it holds no secret)."""
        atomic_write(Path(path), self.encode().encode("utf-8"), mode=0o644)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Read a checkpoint file written by :meth:`save` (or any C2SP tooling).

        Raises:
            AuditError: malformed file.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise AuditError(f"cannot read checkpoint {path}: {exc.strerror}") from None
        try:
            return cls.parse(data)
        except AuditError as exc:
            raise AuditError(f"{path}: {exc}") from None
