"""What verifying an audit log produces: inclusion and consistency proofs (RFC 6962/9162),
each checkable on its own, and the :class:`VerificationReport` of a whole log
(:meth:`tutela.governance.audit.AuditLog.verify`, :func:`tutela.governance.audit.verify_log`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tutela.errors import AuditVerificationError
from tutela.governance.merkle import verify_consistency, verify_inclusion


@dataclass(frozen=True)
class InclusionProof:
    """Proof that the record at ``index`` is leaf ``index`` of the tree of ``size``."""

    index: int
    size: int
    leaf_hash: bytes
    root: bytes
    path: tuple[bytes, ...]

    def verify(self, root: bytes | None = None) -> bool:
        """Check the proof (against ``root``, e.g. a checkpoint's, if given)."""
        target = self.root if root is None else root
        return verify_inclusion(self.leaf_hash, self.index, self.size, self.path, target)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "type": "inclusion",
            "index": self.index,
            "size": self.size,
            "leaf_hash": self.leaf_hash.hex(),
            "root": self.root.hex(),
            "path": [p.hex() for p in self.path],
        }


@dataclass(frozen=True)
class ConsistencyProof:
    """Proof that the tree of ``old_size`` is a prefix of the tree of ``new_size``."""

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    path: tuple[bytes, ...]

    def verify(self, old_root: bytes | None = None, new_root: bytes | None = None) -> bool:
        """Check the proof (against given tree heads, e.g. from two checkpoints)."""
        return verify_consistency(
            self.old_size,
            self.new_size,
            self.old_root if old_root is None else old_root,
            self.new_root if new_root is None else new_root,
            self.path,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "type": "consistency",
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": self.old_root.hex(),
            "new_root": self.new_root.hex(),
            "path": [p.hex() for p in self.path],
        }


@dataclass(frozen=True)
class VerificationReport:
    """Outcome of :meth:`AuditLog.verify`.

    ``first_bad`` is the index of the first bad record; when only a range is known (a
    rewrite with recomputed hashes) the bad record lies in ``[first_bad, first_bad_end)``.
    ``checkpoints_verified`` counts checkpoints signed by a trusted key and consistent with
    the log; ``checkpoints_ignored`` those signed by no trusted key; ``covered_by`` names the
    trusted keys whose checkpoint covers the whole log.
    """

    ok: bool
    size: int
    root: bytes
    checkpoints_verified: int = 0
    first_bad: int | None = None
    first_bad_end: int | None = None
    problem: str | None = None
    checkpoints_ignored: int = 0
    covered_by: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for humans."""
        if self.ok:
            signed = f", signed by {', '.join(self.covered_by)}" if self.covered_by else ""
            return (
                f"ok: {self.size} records, root {self.root.hex()}{signed}; "
                f"{self.checkpoints_verified} trusted checkpoint(s) consistent"
            )
        return f"FAILED: {self.problem}"

    def raise_for_problem(self) -> None:
        """Raise :class:`AuditVerificationError` with :attr:`problem` unless ok."""
        if not self.ok:
            raise AuditVerificationError(self.problem or "audit log does not verify")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "ok": self.ok,
            "size": self.size,
            "root": self.root.hex(),
            "checkpoints_verified": self.checkpoints_verified,
            "checkpoints_ignored": self.checkpoints_ignored,
            "covered_by": list(self.covered_by),
            "first_bad": self.first_bad,
            "first_bad_end": self.first_bad_end,
            "problem": self.problem,
        }
