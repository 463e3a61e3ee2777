"""Tamper-evident audit log: an RFC 6962/9162 Merkle log with Ed25519-signed checkpoints.

Each :class:`AuditRecord` (who, what, when, on which resource, outcome, JSON details) is one
leaf of a Merkle tree (:mod:`tutela.governance.merkle`). The log stores the records, each
record's leaf hash, the tree's compact range (so an append costs O(log n) and never reads
old records) and the signed checkpoints it has issued. A third party holding an earlier
checkpoint can check, with a consistency proof, that the log was only appended to, and,
with an inclusion proof, that a record is in it.

Leaf encoding, version 1 (the leaf hash is ``SHA-256(0x00 || leaf)``)::

    leaf = UTF-8 JSON array, no spaces, non-ASCII kept:
           [1, index, timestamp, actor, action, resource, outcome, details]
    details   = canonical JSON text of the details object (sorted keys, no spaces)
    timestamp = RFC 3339 UTC with microseconds, e.g. "2026-11-29T03:40:00.000000Z"

Checkpoints are C2SP signed notes (:mod:`tutela.governance.checkpoint`): the log's origin,
its size and its base64 root hash, signed with Ed25519 note signatures. ``origin`` is the
log's random id, so a checkpoint of one log never vouches for another.

Storage: SQLite (default; tables ``meta``, ``records``, ``checkpoints``) or JSON lines
(a header line then one record per line; checkpoints in ``<log>.checkpoints``, one JSON
string holding the signed note per line). The backend is chosen by suffix: ``.jsonl``
means JSON lines.

Verification (:meth:`AuditLog.verify`) reads every record once (O(n) hashing) and reports
the first problem it finds: a missing index (deletion), an index out of sequence
(insertion, reordering), a record whose content no longer matches its hash
(modification), fewer records than the log state or a checkpoint records (truncation), a
tree head that disagrees with a trusted checkpoint (a rewritten history, even when every
hash was recomputed), and, last, a log that no checkpoint signed by a trusted key covers
entirely (same size, same root). Checkpoints signed only by other keys are ignored: a
history rewritten and re-signed with a fresh key, or stripped of its checkpoints, fails.
For a rewrite only a range can be named: the records between the last trusted checkpoint
that still matches and the first one that does not.

Security:
    Detects any change to history relative to the log's own state and, against an attacker
    who rewrites everything, relative to any checkpoint signed by a key the verifier pinned
    (:mod:`tutela.governance.trust`) whose private half the attacker does not hold. Does not
    hide records (they are plaintext: store the log on encrypted storage if details are
    sensitive). An attacker holding the signing key, or one who cuts the log back to an
    earlier trusted checkpoint and deletes the later ones, is caught only by a verifier
    holding a later checkpoint (``checkpoints=``; witnesses keep them). The JSON-lines
    backend has no stored tree state, so tail truncation there is detected only against a
    checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tutela.errors import AuditError, AuditVerificationError
from tutela.governance._files import atomic_write
from tutela.governance.audit_proofs import ConsistencyProof, InclusionProof, VerificationReport
from tutela.governance.audit_store import (
    LOG_VERSION,
    _canonical,
    _JsonlStore,
    _Row,
    _SqliteStore,
    _Store,
)
from tutela.governance.checkpoint import Checkpoint, VerifierKey
from tutela.governance.merkle import HASH_SIZE, CompactRange, MerkleTree, leaf_hash

__all__ = [
    "RUN_CHECKPOINT",
    "AuditLog",
    "AuditRecord",
    "Checkpoint",
    "ConsistencyProof",
    "InclusionProof",
    "Outcome",
    "VerificationReport",
    "VerifierKey",
    "generate_signing_key",
    "load_signing_key",
    "public_key_bytes",
    "verify_log",
]

RUN_CHECKPOINT = "audit.checkpoint"
"""File name of the signed checkpoint a run directory keeps beside its audit log."""
Backend = Literal["sqlite", "jsonl"]
Clock = Callable[[], datetime]


class Outcome(StrEnum):
    """Usual outcomes; any non-empty string is accepted."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


_NO_LEAF = b"\x00" * HASH_SIZE
"""What stands in the tree for a stored record whose leaf hash is unreadable (verification
reports the record; the tree keeps its place)."""


def _tree_leaf(leaf: bytes | None) -> bytes:
    """A stored leaf hash as the tree takes it: an unreadable one (missing or not 32 bytes)
    is :data:`_NO_LEAF`, the same in the log's compact range and in its proofs."""
    return leaf if leaf is not None and len(leaf) == HASH_SIZE else _NO_LEAF


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("the audit clock must return timezone-aware datetimes")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _encode_leaf(
    index: int,
    timestamp: str,
    actor: str,
    action: str,
    resource: str | None,
    outcome: str,
    details_text: str,
) -> bytes:
    row = [LOG_VERSION, index, timestamp, actor, action, resource, outcome, details_text]
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the log."""

    index: int
    timestamp: str
    actor: str
    action: str
    resource: str | None
    outcome: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def leaf(self) -> bytes:
        """The leaf bytes this record hashes to (see the module docstring)."""
        return _encode_leaf(
            self.index,
            self.timestamp,
            self.actor,
            self.action,
            self.resource,
            self.outcome,
            _canonical(dict(self.details)),
        )

    def leaf_hash(self) -> bytes:
        """``SHA-256(0x00 || leaf)``."""
        return leaf_hash(self.leaf())

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "index": self.index,
            "timestamp": self.timestamp,
            "actor": self.actor,
            "action": self.action,
            "resource": self.resource,
            "outcome": self.outcome,
            "details": dict(self.details),
        }


# signing keys and checkpoints -------------------------------------------------------------


def generate_signing_key(path: str | os.PathLike[str] | None = None) -> Ed25519PrivateKey:
    """A new Ed25519 checkpoint-signing key; written as PKCS#8 PEM (mode 0600) if ``path``.

    Raises:
        FileExistsError: ``path`` exists (keys are never overwritten).
    """
    key = Ed25519PrivateKey.generate()
    if path is not None:
        target = Path(path)
        if target.exists():
            raise FileExistsError(f"{target} already exists")
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        atomic_write(target, pem)
    return key


def load_signing_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Load a PEM Ed25519 private key written by :func:`generate_signing_key`.

    Raises:
        AuditError: the file is not an unencrypted Ed25519 private key.
    """
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise AuditError(f"{path} is not an Ed25519 private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditError(f"{path} is not an Ed25519 private key")
    return key


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# the log ------------------------------------------------------------------------------------


class AuditLog:
    """An append-only, verifiable audit log. Use :meth:`open`.

    Example:
        >>> log = AuditLog.open(tmp / "audit.sqlite")  # doctest: +SKIP
        >>> log.append("alice", "study:create", "study/s1", "success", {"sites": 3})
        0
    """

    def __init__(self, store: _Store, clock: Clock = _utc_now) -> None:
        self._store = store
        self._clock = clock
        state = store.state()
        if state is None:
            rng = CompactRange()
            for row in store.rows():
                rng.append(_tree_leaf(row.leaf))
            state = (rng.size, rng)
        self._range = state[1]
        self._pending: list[_Row] | None = None
        self._lock = threading.RLock()
        self._tree: MerkleTree | None = None  # built on the first proof, then grown in step

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        backend: Backend | None = None,
        clock: Clock = _utc_now,
    ) -> AuditLog:
        """Open (creating if needed) the log at ``path``.

        Args:
            path: the log file; ``*.jsonl`` selects JSON lines unless ``backend`` is given.
            backend: ``"sqlite"`` (default) or ``"jsonl"``.
            clock: time source for record timestamps (timezone-aware).

        Raises:
            AuditError: the file exists but is not a Tutela audit log.
        """
        target = Path(path)
        kind = backend or ("jsonl" if target.suffix == ".jsonl" else "sqlite")
        if kind not in ("sqlite", "jsonl"):
            raise ValueError(f"unknown audit backend {kind!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            store: _Store = _SqliteStore(target) if kind == "sqlite" else _JsonlStore(target)
        except sqlite3.DatabaseError as exc:
            raise AuditError(f"{target} is not a Tutela audit log: {exc}") from exc
        return cls(store, clock)

    @classmethod
    def open_existing(cls, path: str | os.PathLike[str], **kwargs: Any) -> AuditLog:
        """Like :meth:`open` but never creates a log.

        Raises:
            FileNotFoundError: nothing at ``path``.
        """
        if not Path(path).is_file():
            raise FileNotFoundError(f"no audit log at {path}")
        return cls.open(path, **kwargs)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying store."""
        self._store.close()

    @property
    def origin(self) -> str:
        """The log's random id (bound into every checkpoint)."""
        return self._store.origin

    @property
    def size(self) -> int:
        """Number of records (including ones pending in a :meth:`batch`)."""
        return self._range.size

    @property
    def root(self) -> bytes:
        """Current tree head."""
        return self._range.root()

    # writing ----------------------------------------------------------------------------

    def append(
        self,
        actor: str,
        action: str,
        resource: str | None = None,
        outcome: str = Outcome.SUCCESS,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one record and return its index. O(log n); durable on return outside a batch.

        Raises:
            ValueError: empty actor/action/outcome, or details that are not a JSON object
                (non-string keys, NaN, non-JSON values).
        """
        for label, value in (("actor", actor), ("action", action), ("outcome", outcome)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{label} must be a non-empty string")
        if resource is not None and not isinstance(resource, str):
            raise ValueError("resource must be a string or None")
        payload = {} if details is None else details
        if not isinstance(payload, Mapping) or not all(isinstance(k, str) for k in payload):
            raise ValueError("details must be a mapping with string keys")
        try:
            details_text = _canonical(dict(payload))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"details are not JSON-serialisable: {exc}") from exc
        with self._lock:
            index = self._range.size
            stamp = _timestamp(self._clock())
            leaf = leaf_hash(
                _encode_leaf(index, stamp, actor, action, resource, str(outcome), details_text)
            )
            row = _Row(index, stamp, actor, action, resource, str(outcome), details_text, leaf)
            if self._pending is not None:
                self._range.append(leaf)
                self._pending.append(row)
                return index
            new_range = self._range.copy()
            new_range.append(leaf)
            self._store.write([row], new_range)
            self._range = new_range
            self._grow([row])
            return index

    @contextlib.contextmanager
    def batch(self) -> Iterator[AuditLog]:
        """Group appends into one write (one transaction); nothing is written on error.

        Other threads' appends wait until the batch ends.
        """
        with self._lock:
            if self._pending is not None:
                yield self
                return
            saved = self._range.copy()
            self._pending = []
            try:
                yield self
                if self._pending:
                    self._store.write(self._pending, self._range)
                    self._grow(self._pending)
            except BaseException:
                self._range = saved
                raise
            finally:
                self._pending = None

    def checkpoint(
        self, signing_key: Ed25519PrivateKey, *, name: str | None = None, store: bool = True
    ) -> Checkpoint:
        """Sign the current tree head as a C2SP checkpoint; keep it in the log too unless
        ``store`` is false.

        Args:
            signing_key: the Ed25519 key; verifiers must have pinned its verifier key.
            name: the note key name (default: derived from the key, see
                :func:`~tutela.governance.checkpoint.default_key_name`).
            store: also keep the checkpoint in the log.
        """
        with self._lock:
            if self._pending:
                raise AuditError("cannot checkpoint inside an unfinished batch")
            cp = Checkpoint.sign(self.origin, self.size, self.root, signing_key, name=name)
            if store:
                self._store.add_checkpoint(cp)
            return cp

    # reading ----------------------------------------------------------------------------

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[AuditRecord]:
        """Records in index order (unverified: call :meth:`verify` to check them)."""
        for row in self._store.rows(start, stop):
            try:
                details = json.loads(row.details_text) if row.details_text else {}
            except ValueError:
                details = {"unreadable": row.details_text}
            yield AuditRecord(
                row.idx, row.timestamp, row.actor, row.action, row.resource, row.outcome, details
            )

    def checkpoints(self) -> list[Checkpoint]:
        """Checkpoints this log issued and stored, by size."""
        return self._store.checkpoints()

    def prove_inclusion(self, index: int, size: int | None = None) -> InclusionProof:
        """Inclusion proof of record ``index`` in the tree of ``size`` (default: now).
        O(log n) once the log's tree is in memory (built from the stored leaf hashes on the
        first proof, then grown with every append).

        Raises:
            ValueError: index or size out of range.
        """
        with self._lock:
            n = self.size if size is None else size
            if not 0 < n <= self.size or not 0 <= index < n:
                raise ValueError(f"no record {index} in a log of size {n}")
            tree = self._tree_of(n)
            path = tree.inclusion_proof(index, n)
            return InclusionProof(index, n, tree.leaf(index), tree.root(n), tuple(path))

    def prove_consistency(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Consistency proof from the tree of ``old_size`` to ``new_size`` (default: now),
        O(log n) as :meth:`prove_inclusion`.

        Raises:
            ValueError: not ``0 < old_size <= new_size <= size``.
        """
        with self._lock:
            n = self.size if new_size is None else new_size
            if not 0 < old_size <= n <= self.size:
                raise ValueError(
                    f"no consistency proof from {old_size} to {n} (log size {self.size})"
                )
            tree = self._tree_of(n)
            path = tree.consistency_proof(old_size, n)
            return ConsistencyProof(old_size, n, tree.root(old_size), tree.root(n), tuple(path))

    def _tree_of(self, n: int) -> MerkleTree:
        """The in-memory tree, read from the store's leaf hashes up to ``n`` where it is
        shorter (the first proof, or records another writer appended).

        Raises:
            ValueError: the store holds fewer than ``n`` records (e.g. inside a batch).
        """
        tree = self._tree if self._tree is not None else MerkleTree()
        if tree.size < n:
            for leaf in self._store.leaves(n)[tree.size :]:
                tree.append(_tree_leaf(leaf))
        self._tree = tree
        if tree.size < n:
            raise ValueError(f"the log holds {tree.size} records, not {n}")
        return tree

    def _grow(self, rows: Sequence[_Row]) -> None:
        """Add written rows to the in-memory tree (dropped if it does not end where they
        start, to be read again from the store)."""
        tree = self._tree
        if tree is None:
            return
        if not rows or tree.size != rows[0].idx:
            self._tree = None
            return
        for row in rows:
            tree.append(_tree_leaf(row.leaf))

    # verification -----------------------------------------------------------------------

    def verify(
        self, trusted_keys: Iterable[VerifierKey], checkpoints: Iterable[Checkpoint] = ()
    ) -> VerificationReport:
        """Check every record and the stored state, and require a trusted checkpoint of it all.

        Args:
            trusted_keys: the verifier keys the caller pinned; checkpoints signed by no key
                among them are ignored.
            checkpoints: checkpoints kept outside the log (e.g. by an auditor or a site);
                the log's own stored checkpoints are checked as well.

        Returns:
            A report; ``ok`` only if nothing is wrong and a checkpoint signed by a trusted
            key covers the whole log (same size and root). O(n) in the number of records.
        """
        return self._verify(list(trusted_keys), checkpoints, require_cover=True)

    def verify_unanchored(
        self, checkpoints: Iterable[Checkpoint] = (), trusted_keys: Iterable[VerifierKey] = ()
    ) -> VerificationReport:
        """Like :meth:`verify` but without requiring a trusted checkpoint of the whole log.

        Security:
            Shows only that the log agrees with itself (and with any trusted checkpoint
            given): whoever can write the file can rewrite it consistently. For the
            writer's own checks and tests; auditors use :meth:`verify`.
        """
        return self._verify(list(trusted_keys), checkpoints, require_cover=False)

    def _verify(
        self,
        trusted: list[VerifierKey],
        checkpoints: Iterable[Checkpoint],
        *,
        require_cover: bool,
    ) -> VerificationReport:
        given = list(checkpoints)
        stored = self._store.checkpoints()
        all_cps = sorted(
            [(cp, "given") for cp in given] + [(cp, "stored") for cp in stored],
            key=lambda item: item[0].size,
        )
        wanted = {cp.size for cp, _ in all_cps}
        roots: dict[int, bytes] = {}
        rng = CompactRange()
        if 0 in wanted:
            roots[0] = rng.root()

        def report(
            problem: str, first: int | None, end: int | None = None, verified: int = 0
        ) -> VerificationReport:
            return VerificationReport(False, rng.size, rng.root(), verified, first, end, problem)

        expected = 0
        for row in self._store.rows():
            if row.leaf is None:
                return report(f"record {expected} is unreadable (malformed entry)", expected)
            if row.idx != expected:
                if row.idx > expected:
                    msg = (
                        f"record {expected} is missing (deleted or moved): the next stored record "
                        f"is {row.idx}"
                    )
                else:
                    msg = (
                        f"record at position {expected} carries index {row.idx}: "
                        "records were inserted or reordered"
                    )
                return report(msg, expected)
            leaf = leaf_hash(
                _encode_leaf(
                    row.idx,
                    row.timestamp,
                    row.actor,
                    row.action,
                    row.resource,
                    row.outcome,
                    row.details_text,
                )
            )
            if leaf != row.leaf:
                return report(
                    f"record {expected} does not match its hash (modified, moved or inserted)",
                    expected,
                )
            rng.append(leaf)
            expected += 1
            if expected in wanted:
                roots[expected] = rng.root()

        state = self._store.state()
        if state is not None:
            size, frontier = state
            if size > expected:
                return report(
                    f"log truncated: {expected} records present but the log recorded {size}; "
                    f"records {expected}..{size - 1} are missing",
                    expected,
                    size,
                )
            if size < expected:
                return report(
                    f"records {size}..{expected - 1} were added outside the log "
                    f"(its recorded size is {size})",
                    size,
                    expected,
                )
            if frontier.root() != rng.root():
                return report(
                    "records do not match the log's recorded tree head: history was "
                    f"rewritten with recomputed hashes somewhere in records 0..{expected - 1}",
                    0,
                    expected,
                )

        verified = ignored = 0
        last_good = 0
        covered_by: list[str] = []
        for cp, where in all_cps:
            label = f"{where} checkpoint at size {cp.size}"
            try:
                signers = cp.signers(trusted)
            except AuditVerificationError as exc:
                return report(f"{label}: {exc}", None, verified=verified)
            if not signers:
                ignored += 1  # signed by nobody the verifier trusts: not evidence
                continue
            label += f" (signed by {', '.join(k.name for k in signers)})"
            if cp.origin != self.origin:
                return report(
                    f"{label} belongs to another log ({cp.origin})", None, verified=verified
                )
            if cp.size > expected:
                return report(
                    f"log truncated: {label} covers {cp.size} records but only {expected} "
                    f"remain; records {expected}..{cp.size - 1} are missing",
                    expected,
                    cp.size,
                    verified,
                )
            if roots[cp.size] != cp.root:
                return report(
                    f"log is inconsistent with {label}: history was rewritten (forked); "
                    f"the first bad record is in {last_good}..{cp.size - 1}",
                    last_good,
                    cp.size,
                    verified,
                )
            last_good = max(last_good, cp.size)
            verified += 1
            if cp.size == expected:
                covered_by.extend(k.name for k in signers if k.name not in covered_by)
        if require_cover and not covered_by:
            if not trusted:
                why = "no trusted keys were given (pin the signing key: `tutela audit trust add`)"
            elif verified:
                why = (
                    f"the newest trusted checkpoint covers {last_good} of {expected} records; "
                    f"records {last_good}..{expected - 1} are vouched for by no trusted key"
                )
            else:
                why = "no checkpoint is signed by a trusted key"
            if ignored:
                why += f" ({ignored} checkpoint(s) signed by untrusted keys ignored)"
            return VerificationReport(
                False,
                rng.size,
                rng.root(),
                verified,
                last_good if verified else 0,
                expected,
                f"no trusted checkpoint covers the whole log ({expected} records): {why}",
                ignored,
            )
        return VerificationReport(
            True, rng.size, rng.root(), verified, None, None, None, ignored, tuple(covered_by)
        )


def verify_log(
    path: str | os.PathLike[str],
    trusted_keys: Iterable[VerifierKey],
    checkpoints: Iterable[Checkpoint] = (),
) -> VerificationReport:
    """Open an existing log, verify it against ``trusted_keys`` (:meth:`AuditLog.verify`), close it.

    Raises:
        FileNotFoundError: no log at ``path``.
        AuditError: not a Tutela audit log, or a stored checkpoint is malformed.
    """
    with AuditLog.open_existing(path) as log:
        return log.verify(trusted_keys, checkpoints)
