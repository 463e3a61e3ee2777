"""Witnesses: parties that check a log only ever grew, and cosign its checkpoints.

Implements Ed25519 cosignatures of https://c2sp.org/tlog-cosignature (``cosignature/v1``)
over the C2SP checkpoints of :mod:`tutela.governance.checkpoint`::

    signed message = "cosignature/v1\\n" "time <t>\\n" <checkpoint body>
    signature line = — <witness name> base64(key ID || u64 big-endian t || Ed25519 signature)
    key ID         = SHA-256(<witness name> || 0x0A || 0x04 || 32-byte public key)[:4]
    witness key    = <witness name>+<hex key ID>+<base64(0x04 || public key)>

A cosignature states that, at time ``t``, the checkpoint is the largest consistent tree head
the witness has seen for the log (origin). In Tutela every site is a witness of the
coordinator's audit log: as rounds go by (on a cadence), when a study's status changes and
before it leaves, it fetches the latest checkpoint and a consistency proof
from the last one it cosigned (RFC 9162 §2.1.4, :mod:`tutela.governance.merkle`), checks the
coordinator's signature under the key it pinned, checks consistency, and cosigns
(:class:`Witness`). An auditor then requires a quorum of cosignatures by witness keys it
pinned on a checkpoint that covers the whole log (:func:`verify_witnessed`).

Security:
    A coordinator that rewrites its log (even with every hash recomputed and re-signed), cuts
    it back, forks it or swaps its signing key gets no cosignature from a witness that saw
    an earlier checkpoint: the witness refuses, keeps the evidence (both checkpoints and the
    proof) and stops (:class:`WitnessRefusal`). It cannot show an auditor a quorum for a
    history the witnesses did not see, unless it holds a quorum of witness keys. Witnesses
    vouch only for the checkpoints they were shown: a log never shown to any witness is
    vouched for by nobody, which is why the auditor asks for the quorum on the checkpoint
    covering the whole log. Extension lines are cosigned but not interpreted.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.errors import AuditError, AuditVerificationError, ConfigError
from tutela.governance._files import atomic_write, private_dir
from tutela.governance.audit import AuditLog, VerificationReport
from tutela.governance.checkpoint import (
    COSIGNATURE_V1,
    MAX_SIGNATURES,
    Checkpoint,
    NoteSignature,
    VerifierKey,
    check_key_name,
)
from tutela.governance.merkle import verify_consistency

__all__ = [
    "COSIGNED_SUFFIX",
    "WITNESS_MANIFEST",
    "Cosignature",
    "Witness",
    "WitnessManifest",
    "WitnessRefusal",
    "WitnessReport",
    "check_quorum",
    "cosign",
    "cosigned_message",
    "cosigned_path",
    "decode_proof",
    "load_cosigned",
    "verify_witnessed",
    "with_cosignature",
    "witness_name",
    "witness_status",
]

WITNESS_PREFIX = "tutela.witness/"
COSIGNED_SUFFIX = ".checkpoint"
"""File suffix of a cosigned checkpoint (a C2SP signed note with its cosignature lines)."""
MAX_COSIGNED_FILES = 10_000
"""Cosigned checkpoint files read from one directory."""
MAX_NOTE_BYTES = 64 * 1024
_HEADER = b"cosignature/v1\n"
_MAX_TIMESTAMP = 2**63 - 1


def witness_name(site: str) -> str:
    """The cosigner name of a site's witness key: ``tutela.witness/<site>``."""
    return check_key_name(WITNESS_PREFIX + site)


def cosigned_message(body: str, timestamp: int) -> bytes:
    """``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint body.

    Raises:
        ValueError: a timestamp outside ``[0, 2**63 - 1]``.
    """
    if isinstance(timestamp, bool) or not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise ValueError("a cosignature timestamp is an integer in [0, 2**63 - 1]")
    return _HEADER + f"time {timestamp}\n".encode("ascii") + body.encode("utf-8")


@dataclass(frozen=True)
class Cosignature:
    """One ``cosignature/v1`` line: witness name, key ID, timestamp and Ed25519 signature."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    @classmethod
    def from_note_signature(cls, sig: NoteSignature) -> Cosignature:
        """Read a note signature line as a cosignature (``timestamped_signature``).

        Raises:
            ValueError: the signature is not 8 bytes of timestamp and 64 of signature.
        """
        if len(sig.signature) != 8 + 64:
            raise ValueError("a cosignature holds an 8-byte timestamp and a 64-byte signature")
        timestamp = int.from_bytes(sig.signature[:8], "big")
        if timestamp > _MAX_TIMESTAMP:
            raise ValueError("a cosignature timestamp must not exceed 2**63 - 1")
        return cls(sig.name, sig.key_id, timestamp, sig.signature[8:])

    @classmethod
    def parse_line(cls, line: str) -> Cosignature:
        """Parse ``— <name> <base64>`` (without its newline).

        Raises:
            ValueError: malformed line.
        """
        return cls.from_note_signature(NoteSignature.parse_line(line))

    def note_signature(self) -> NoteSignature:
        """The line as a note signature (for :class:`~tutela.governance.checkpoint.Checkpoint`)."""
        stamp = self.timestamp.to_bytes(8, "big")
        return NoteSignature(self.name, self.key_id, stamp + self.signature)

    def line(self) -> str:
        """``— <name> <base64(key ID || timestamp || signature)>`` and a newline."""
        return self.note_signature().line()

    def verify(self, checkpoint: Checkpoint, key: VerifierKey) -> bool:
        """Whether ``key`` (a cosigner key) made this cosignature of ``checkpoint``."""
        if not key.is_cosigner or self.name != key.name or self.key_id != key.key_id:
            return False
        return key.verify(cosigned_message(checkpoint.body(), self.timestamp), self.signature)


def cosign(
    checkpoint: Checkpoint, key: Ed25519PrivateKey, name: str, timestamp: int
) -> Cosignature:
    """The ``cosignature/v1`` of ``checkpoint`` by ``key`` under ``name`` at ``timestamp``."""
    verifier = VerifierKey.of(key, name, COSIGNATURE_V1)
    signature = key.sign(cosigned_message(checkpoint.body(), timestamp))
    return Cosignature(verifier.name, verifier.key_id, timestamp, signature)


def with_cosignature(checkpoint: Checkpoint, cosignature: Cosignature) -> Checkpoint:
    """A copy of ``checkpoint`` carrying ``cosignature`` (replacing that key's earlier one).

    Raises:
        AuditError: the note would carry more than the signatures a note may hold.
    """
    kept = tuple(
        sig
        for sig in checkpoint.signatures
        if (sig.name, sig.key_id) != (cosignature.name, cosignature.key_id)
    )
    if len(kept) >= MAX_SIGNATURES:
        raise AuditError(f"a checkpoint carries at most {MAX_SIGNATURES} signatures")
    return Checkpoint(
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root,
        (*kept, cosignature.note_signature()),
        checkpoint.extensions,
    )


def cosigned_path(directory: Path, checkpoint: Checkpoint) -> Path:
    """Where a cosigned copy of ``checkpoint`` is kept in ``directory`` (one file per tree
    head: ``<size, 12 digits>-<16 hex of the root>.checkpoint``)."""
    return directory / f"{checkpoint.size:012d}-{checkpoint.root.hex()[:16]}{COSIGNED_SUFFIX}"


# the witness ---------------------------------------------------------------------------------


class WitnessRefusal(AuditVerificationError):
    """A witness refused to cosign: the checkpoint does not extend what it saw before.

    Attributes:
        kind: ``key`` (not signed by the pinned key), ``origin`` (another log), ``truncated``,
            ``fork`` (same size, another root, or no valid consistency proof), or
            ``stopped`` (this witness refused earlier and takes no further part).
        evidence: the file where the witness recorded the evidence (``None`` for ``stopped``).
    """

    def __init__(self, kind: str, reason: str, evidence: Path | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.evidence = evidence


@dataclass
class Witness:
    """One witness of one log, keeping its state in ``directory``::

        log.vkey                  the log's signing key, pinned on first use (never replaced)
        latest.checkpoint         the last checkpoint it cosigned (with its cosignature)
        cosigned/*.checkpoint     every checkpoint it cosigned, with its cosignature
        evidence/*.json           what it saw when it refused (both checkpoints, the proof)
        REFUSED                   the reason it stopped (it cosigns nothing after that)

    Args:
        directory: the witness's own state (mode 0700).
        name: its cosigner name (e.g. :func:`witness_name`).
        key: its Ed25519 cosigning key.
        log_key: the log's checkpoint-signing key: pinned on first use; afterwards it must
            equal the pinned one (``None``: use the pinned one).
        clock: seconds since the epoch (cosignature timestamps).

    Raises:
        ConfigError: no log key given and none pinned, or one that differs from the pinned
            key (an operator who means to re-pin removes ``log.vkey`` first).
    """

    directory: Path
    name: str
    key: Ed25519PrivateKey
    log_key: VerifierKey | None = None
    clock: Callable[[], float] = time.time
    pinned: VerifierKey = field(init=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        private_dir(self.directory)
        path = self.directory / "log.vkey"
        stored = None
        if path.exists():
            try:
                stored = VerifierKey.parse(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"witness state {path} is unreadable: {exc}") from None
        if stored is not None and self.log_key is not None and stored != self.log_key:
            raise ConfigError(
                f"the audit key given ({self.log_key.encode()}) differs from the one this "
                f"witness pinned ({stored.encode()}); remove {path} only if the change was "
                "announced out of band"
            )
        chosen = stored or self.log_key
        if chosen is None:
            raise ConfigError(f"no audit key pinned in {path} and none given")
        if chosen.is_cosigner:
            raise ConfigError("the audit key to pin is a cosigner key, not a log signing key")
        if stored is None:
            atomic_write(path, (chosen.encode() + "\n").encode("utf-8"), mode=0o644)
        self.pinned = chosen

    @property
    def verifier_key(self) -> VerifierKey:
        """This witness's cosigner key (type 0x04): what auditors pin."""
        return VerifierKey.of(self.key, self.name, COSIGNATURE_V1)

    @property
    def latest(self) -> Checkpoint | None:
        """The last checkpoint this witness cosigned."""
        path = self.directory / "latest.checkpoint"
        return Checkpoint.load(path) if path.exists() else None

    @property
    def refused(self) -> str | None:
        """Why this witness stopped, if it did."""
        path = self.directory / "REFUSED"
        return path.read_text(encoding="utf-8").strip() if path.exists() else None

    def cosigned(self) -> list[Checkpoint]:
        """Every checkpoint this witness cosigned, by size."""
        return load_cosigned(self.directory / "cosigned") if self._has_cosigned() else []

    def _has_cosigned(self) -> bool:
        return (self.directory / "cosigned").is_dir()

    def observe(self, note: str | bytes, proof: Sequence[bytes]) -> Cosignature:
        """Check ``note`` against what this witness saw before; cosign it if it extends it.

        Args:
            note: the log's signed checkpoint.
            proof: RFC 9162 consistency proof from the last checkpoint this witness
                cosigned to ``note`` (empty if there is none, or the same size).

        Returns:
            The cosignature (also kept with the checkpoint in ``directory``).

        Raises:
            AuditError: ``note`` is not a checkpoint (nothing is recorded).
            WitnessRefusal: not signed by the pinned key, another log, a smaller tree, a
                fork or an invalid proof; the evidence is recorded and the witness stops.
        """
        stopped = self.refused
        if stopped is not None:
            raise WitnessRefusal("stopped", f"this witness refused earlier: {stopped}")
        checkpoint = Checkpoint.parse(note)
        previous = self.latest
        try:
            signed = checkpoint.signers([self.pinned])
        except AuditVerificationError:
            signed = ()
        if not signed:
            names = ", ".join(checkpoint.signer_names) or "nobody"
            self._refuse(
                "key",
                f"checkpoint at size {checkpoint.size} is not signed by the pinned audit key "
                f"{self.pinned.name} (it names {names})",
                checkpoint,
                previous,
                proof,
            )
        if previous is not None:
            self._check_extends(previous, checkpoint, proof)
        stamp = int(self.clock())
        if previous is not None:
            stamp = max(stamp, _stamp_of(previous, self.verifier_key))
        cosignature = cosign(checkpoint, self.key, self.name, stamp)
        kept = with_cosignature(checkpoint, cosignature)
        cosigned = private_dir(self.directory / "cosigned")
        kept.save(cosigned_path(cosigned, kept))
        kept.save(self.directory / "latest.checkpoint")
        return cosignature

    def _check_extends(self, old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
        where = f"size {old.size} -> {new.size}"
        if new.origin != old.origin:
            self._refuse(
                "origin",
                f"checkpoint of another log ({new.origin}) where this witness follows {old.origin}",
                new,
                old,
                proof,
            )
        if new.size < old.size:
            self._refuse(
                "truncated",
                f"the log shrank ({where}): records {new.size}..{old.size - 1} were removed",
                new,
                old,
                proof,
            )
        if new.size == old.size:
            if new.root != old.root:
                self._refuse(
                    "fork",
                    f"two roots for size {new.size}: the log's history was rewritten (forked)",
                    new,
                    old,
                    proof,
                )
            return
        if old.size and not verify_consistency(old.size, new.size, old.root, new.root, proof):
            self._refuse(
                "fork",
                f"no valid consistency proof ({where}): the log's history was rewritten "
                "(forked) or the proof is wrong",
                new,
                old,
                proof,
            )

    def _refuse(
        self,
        kind: str,
        reason: str,
        presented: Checkpoint,
        previous: Checkpoint | None,
        proof: Sequence[bytes],
    ) -> None:
        evidence_dir = private_dir(self.directory / "evidence")
        stamp = int(self.clock())
        path = evidence_dir / f"{stamp}-{kind}.json"
        n = 1
        while path.exists():
            n += 1
            path = evidence_dir / f"{stamp}-{kind}-{n}.json"
        record: dict[str, Any] = {
            "kind": kind,
            "reason": reason,
            "time": stamp,
            "pinned_key": self.pinned.encode(),
            "previous": previous.encode() if previous is not None else None,
            "presented": presented.encode(),
            "proof": [base64.b64encode(p).decode("ascii") for p in proof],
        }
        atomic_write(path, (json.dumps(record, indent=2) + "\n").encode("utf-8"), mode=0o644)
        atomic_write(self.directory / "REFUSED", (reason + "\n").encode("utf-8"), mode=0o644)
        raise WitnessRefusal(kind, reason, path)


def _stamp_of(checkpoint: Checkpoint, key: VerifierKey) -> int:
    for sig in checkpoint.signatures:
        if sig.by(key):
            try:
                return Cosignature.from_note_signature(sig).timestamp
            except ValueError:
                return 0
    return 0


def decode_proof(items: Iterable[str]) -> list[bytes]:
    """A consistency proof sent as base64 strings.

    Raises:
        AuditError: an item is not the base64 of 32 bytes.
    """
    out = []
    for item in items:
        try:
            raw = base64.b64decode(item.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise AuditError("a consistency proof item is not base64") from None
        if len(raw) != 32:
            raise AuditError("a consistency proof item is a 32-byte hash")
        out.append(raw)
    return out


# the auditor's side ----------------------------------------------------------------------------


def load_cosigned(path: str | os.PathLike[str]) -> list[Checkpoint]:
    """Cosigned checkpoints from a file, or every ``*.checkpoint`` file of a directory, by size.

    Raises:
        AuditError: nothing there, too many files, or a malformed checkpoint (named).
    """
    target = Path(path)
    if target.is_dir():
        files = sorted(target.glob(f"*{COSIGNED_SUFFIX}"))
        if len(files) > MAX_COSIGNED_FILES:
            raise AuditError(f"{target} holds more than {MAX_COSIGNED_FILES} checkpoints")
    elif target.is_file():
        files = [target]
    else:
        raise AuditError(f"no cosigned checkpoints at {target}")
    out = []
    for file in files:
        if file.stat().st_size > MAX_NOTE_BYTES:
            raise AuditError(f"{file} is larger than a checkpoint can be")
        out.append(Checkpoint.load(file))
    return sorted(out, key=lambda cp: cp.size)


@dataclass(frozen=True)
class WitnessReport:
    """Whether enough pinned witnesses cosigned the checkpoint covering the whole log.

    Attributes:
        ok: at least ``quorum`` distinct trusted witness keys made a valid cosignature.
        quorum: the cosignatures required.
        size: the log size the checkpoint had to cover.
        witnesses: names of the trusted witnesses whose cosignature verifies.
        invalid: names on cosignature lines that claim a trusted witness key but do not
            verify (forged or of another checkpoint): they do not count.
        untrusted: cosignature lines from keys the auditor did not pin (ignored).
        problem: why not ok.
    """

    ok: bool
    quorum: int
    size: int
    witnesses: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()
    untrusted: int = 0
    problem: str | None = None

    def describe(self) -> str:
        """One line for humans."""
        if self.ok:
            return (
                f"{len(self.witnesses)} of {self.quorum} required witness(es) cosigned the "
                f"checkpoint of all {self.size} records: {', '.join(self.witnesses)}"
            )
        return f"FAILED: {self.problem}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "ok": self.ok,
            "quorum": self.quorum,
            "size": self.size,
            "witnesses": list(self.witnesses),
            "invalid": list(self.invalid),
            "untrusted": self.untrusted,
            "problem": self.problem,
        }


def check_quorum(
    origin: str,
    size: int,
    root: bytes,
    cosigned: Iterable[Checkpoint],
    trusted: Iterable[VerifierKey],
    quorum: int,
) -> WitnessReport:
    """Count trusted witnesses with a valid cosignature on the checkpoint ``(origin, size,
    root)``.

    Only cosigner keys (type 0x04) among ``trusted`` count; each counts once. A line that
    claims a trusted key but does not verify is reported in ``invalid`` and not counted.

    Raises:
        ValueError: ``quorum`` below 1.
    """
    if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
        raise ValueError("the witness quorum is a positive integer")
    keys = [k for k in trusted if k.is_cosigner]
    found: list[str] = []
    invalid: list[str] = []
    untrusted = 0
    for checkpoint in cosigned:
        if (checkpoint.origin, checkpoint.size, checkpoint.root) != (origin, size, root):
            continue
        for sig in checkpoint.signatures:
            key = next((k for k in keys if sig.by(k)), None)
            if key is None:
                untrusted += 1 if len(sig.signature) == 8 + 64 else 0
                continue
            try:
                valid = Cosignature.from_note_signature(sig).verify(checkpoint, key)
            except ValueError:
                valid = False
            if not valid:
                invalid.append(key.name)
            elif key.name not in found:
                found.append(key.name)
    problem = None
    if len(found) < quorum:
        why = "no witness key is pinned" if not keys else f"{len(found)} valid"
        if invalid:
            why += f"; cosignatures that do not verify: {', '.join(sorted(set(invalid)))}"
        problem = (
            f"witness quorum not met: {quorum} cosignature(s) by pinned witness keys required "
            f"on the checkpoint covering all {size} records ({why})"
        )
    return WitnessReport(
        problem is None, quorum, size, tuple(found), tuple(invalid), untrusted, problem
    )


def verify_witnessed(
    path: str | os.PathLike[str],
    trusted: Iterable[VerifierKey],
    cosigned: Iterable[Checkpoint],
    quorum: int,
    checkpoints: Iterable[Checkpoint] = (),
) -> tuple[VerificationReport, WitnessReport | None]:
    """Verify a log (:meth:`~tutela.governance.audit.AuditLog.verify`, the cosigned
    checkpoints included) and, if it verifies, the witness quorum on its whole-log checkpoint.

    Returns:
        The log's report, and the witnesses' (``None`` when the log itself fails).

    Raises:
        FileNotFoundError: no log at ``path``.
        AuditError: not an audit log, or a malformed checkpoint.
        ValueError: ``quorum`` below 1.
    """
    keys = list(trusted)
    notes = list(cosigned)
    with AuditLog.open_existing(path) as log:
        report = log.verify(keys, [*checkpoints, *notes])
        if not report.ok:
            return report, None
        return report, check_quorum(log.origin, report.size, report.root, notes, keys, quorum)


# a run directory's witnessed log -----------------------------------------------------------------

WITNESS_MANIFEST = "witnesses.json"
"""In a deployment's run directory: where its witnessed audit log and cosignatures are."""


@dataclass(frozen=True)
class WitnessManifest:
    """Where a run keeps a witnessed log and its cosignatures (paths relative to the
    manifest's directory), and the keys it was run with.

    Security: the keys here are what the run says; an auditor pins keys out of band and
    verifies under those (the manifest only says where the files are).
    """

    log: str
    cosigned: str
    audit_key: str
    witnesses: tuple[str, ...]

    def save(self, directory: Path) -> Path:
        """Write ``directory/witnesses.json``."""
        doc = {
            "log": self.log,
            "cosigned": self.cosigned,
            "audit_key": self.audit_key,
            "witnesses": list(self.witnesses),
        }
        path = directory / WITNESS_MANIFEST
        atomic_write(path, (json.dumps(doc, indent=2) + "\n").encode("utf-8"), mode=0o644)
        return path

    @classmethod
    def find(cls, run_dir: Path) -> tuple[Path, WitnessManifest] | None:
        """The manifest in ``run_dir`` or its ``deployment`` directory, with its directory.

        Raises:
            AuditError: a manifest that is not one.
        """
        for directory in (run_dir, run_dir / "deployment"):
            path = directory / WITNESS_MANIFEST
            if not path.is_file():
                continue
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                manifest = cls(
                    str(doc["log"]),
                    str(doc["cosigned"]),
                    str(doc["audit_key"]),
                    tuple(str(w) for w in doc["witnesses"]),
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise AuditError(f"{path} is not a witness manifest: {exc}") from None
            return directory, manifest
        return None


def witness_status(
    run_dir: Path, trusted: Iterable[VerifierKey], quorum: int | None = None
) -> dict[str, Any] | None:
    """The witnesses' view of a run's coordinator log, for reports (``None`` if the run
    keeps no cosignatures): whether the log verifies under the pinned keys, and which pinned
    witnesses cosigned the checkpoint that covers all of it (``quorum``: by default every
    witness the run names).
    """
    found = WitnessManifest.find(run_dir)
    if found is None:
        return None
    directory, manifest = found
    status: dict[str, Any] = {
        "log": str(directory / manifest.log),
        "cosignatures": str(directory / manifest.cosigned),
        "witnesses_named": list(manifest.witnesses),
    }
    try:
        cosigned = load_cosigned(directory / manifest.cosigned)
        wanted = quorum if quorum is not None else max(1, len(manifest.witnesses))
        report, witnesses = verify_witnessed(directory / manifest.log, trusted, cosigned, wanted)
    except (OSError, AuditError) as exc:
        return {**status, "ok": False, "problem": str(exc)}
    status["checkpoints_cosigned"] = len(cosigned)
    if witnesses is None:
        return {**status, "ok": False, "problem": f"coordinator log: {report.problem}"}
    return {**status, **witnesses.to_json(), "describe": witnesses.describe()}
