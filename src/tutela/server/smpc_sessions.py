"""SMPC sessions at the coordinator: who takes part, a relay it cannot read, deadlines, audit.

A secure computation between sites (PSI, joint statistics, training) is a *session*: a name
the parties agreed on, the function, the ordered list of parties and a deadline. The first
party to join opens it; every other party must name the same function and parties. Each
party registers a session key (X25519) bound to its certificate; the parties verify each
other's keys against their own CA and encrypt every message end to end
(:mod:`tutela.server.agent.smpc`). The coordinator only stores and forwards opaque blobs,
addressed by step, sender and recipient, sealed again at rest.

A party that waits past its deadline for a peer aborts the session naming that peer; a
session whose deadline passes before every party joined or finished aborts naming those
that did not. Every session leaves audit records: opened, each join, and either completed
(the function, the parties and the outputs each party says it released) or aborted (who
was missing and why).

Security: the coordinator is curious and may deviate. It sees who talks to whom, when and
how much, never the content (end-to-end AEAD under keys it does not hold). It can drop or
delay messages (the parties abort) or hand out a wrong key (the parties refuse it: keys are
bound to CA certificates they verify themselves), and it cannot replay a message into
another session, step or pair (the AEAD's associated data binds them).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Mapped, Session, mapped_column

from tutela.errors import DataError, PermissionDenied, ProtocolAbort
from tutela.server.core import ConflictError, Core, NotFoundError, PayloadTooLargeError, dumps
from tutela.server.store import Base, digest

MAX_PARTIES = 16
MAX_SESSION_S = 86_400.0
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class SessionStatus:
    """Status values of an SMPC session."""

    OPEN = "open"
    COMPLETED = "completed"
    ABORTED = "aborted"


class SmpcSessionRow(Base):
    """One secure computation among sites."""

    __tablename__ = "smpc_sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    function: Mapped[str] = mapped_column(sa.String(64))
    parties_json: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16))
    deadline: Mapped[float] = mapped_column(sa.Float)
    created_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[float] = mapped_column(sa.Float)
    updated_at: Mapped[float] = mapped_column(sa.Float)
    outcome_json: Mapped[str] = mapped_column(sa.Text, default="{}")


class SmpcMemberRow(Base):
    """A party that joined a session: its certificate-bound session key, what it released."""

    __tablename__ = "smpc_members"

    session_id: Mapped[str] = mapped_column(sa.ForeignKey("smpc_sessions.id"), primary_key=True)
    site: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    join_json: Mapped[str] = mapped_column(sa.Text)
    joined_at: Mapped[float] = mapped_column(sa.Float)
    released_json: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class SmpcMessageRow(Base):
    """One end-to-end encrypted message between two parties of a session (sealed at rest)."""

    __tablename__ = "smpc_messages"
    __table_args__ = (sa.UniqueConstraint("session_id", "step", "sender", "recipient"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(sa.ForeignKey("smpc_sessions.id"), index=True)
    step: Mapped[str] = mapped_column(sa.String(64))
    sender: Mapped[str] = mapped_column(sa.String(64))
    recipient: Mapped[str] = mapped_column(sa.String(64))
    digest: Mapped[str] = mapped_column(sa.String(64))
    blob: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[float] = mapped_column(sa.Float)


def _seal_name(session_id: str, step: str, sender: str, recipient: str) -> str:
    return f"smpc/{session_id}/{step}/{sender}/{recipient}"


class SmpcSessions:
    """The coordinator's side of SMPC sessions (see the module docstring)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    # -- sessions -------------------------------------------------------------------------

    def _row(self, s: Session, session_id: str, site: str) -> SmpcSessionRow:
        row = s.get(SmpcSessionRow, session_id)
        if row is None:
            raise NotFoundError(f"unknown SMPC session {session_id!r}")
        if site not in json.loads(row.parties_json):
            raise PermissionDenied(f"{site} is not a party of SMPC session {session_id!r}")
        return row

    def _expire(self, s: Session, row: SmpcSessionRow) -> None:
        """Abort an open session whose deadline passed, naming who had not joined or finished."""
        if row.status != SessionStatus.OPEN or self.core.clock() <= row.deadline:
            return
        members = {m.site: m for m in s.scalars(select(SmpcMemberRow).filter_by(session_id=row.id))}
        parties = json.loads(row.parties_json)
        missing = [p for p in parties if p not in members]
        reason = "did not join before the session deadline"
        if not missing:
            missing = [p for p in parties if members[p].released_json is None]
            reason = "did not finish before the session deadline"
        self._abort(s, row, "coordinator", missing, reason)

    def _expire_now(self, session_id: str) -> None:
        """Apply the deadline in its own transaction (so the abort stays if the caller fails)."""
        with self.core.lock, self.core.store.session() as s:
            row = s.get(SmpcSessionRow, session_id)
            if row is not None:
                self._expire(s, row)

    def _abort(
        self, s: Session, row: SmpcSessionRow, by: str, missing: list[str], reason: str
    ) -> None:
        row.status = SessionStatus.ABORTED
        row.updated_at = self.core.clock()
        row.outcome_json = dumps({"by": by, "missing": missing, "reason": reason})
        self.core.audit(
            by,
            "smpc.abort",
            f"smpc/{row.id}",
            "failed",
            {
                "function": row.function,
                "parties": json.loads(row.parties_json),
                "missing": missing,
                "reason": reason,
            },
            session=s,
        )

    def join(
        self,
        site: str,
        session_id: str,
        *,
        function: str,
        parties: list[str],
        timeout_s: float,
        key: dict[str, str],
    ) -> dict[str, Any]:
        """Open the session or join it, registering ``site``'s certificate-bound key.

        Raises:
            DataError: bad party list or timeout.
            ConflictError: the session exists with another function or parties, it has
                ended, or ``site`` joined before with another key.
            ProtocolAbort: the session's deadline passed (it is aborted).
        """
        if site not in parties:
            raise DataError("the joining site must be one of the parties")
        if not 2 <= len(parties) <= MAX_PARTIES or len(set(parties)) != len(parties):
            raise DataError(f"an SMPC session needs 2 to {MAX_PARTIES} distinct parties")
        if not 0 < timeout_s <= MAX_SESSION_S:
            raise DataError(f"the timeout must be in (0, {MAX_SESSION_S:.0f}] seconds")
        now = self.core.clock()
        aborted: str | None = None
        with self.core.lock, self.core.store.session() as s:
            row = s.get(SmpcSessionRow, session_id)
            if row is None:
                row = SmpcSessionRow(
                    id=session_id,
                    function=function,
                    parties_json=dumps(parties),
                    status=SessionStatus.OPEN,
                    deadline=now + timeout_s,
                    created_by=site,
                    created_at=now,
                    updated_at=now,
                    outcome_json="{}",
                )
                s.add(row)
                s.flush()
                self.core.audit(
                    site,
                    "smpc.open",
                    f"smpc/{session_id}",
                    detail={"function": function, "parties": parties, "timeout_s": timeout_s},
                    session=s,
                )
            elif row.function != function or json.loads(row.parties_json) != parties:
                raise ConflictError(
                    f"SMPC session {session_id!r} runs {row.function!r} among "
                    f"{json.loads(row.parties_json)}"
                )
            self._expire(s, row)
            if row.status != SessionStatus.OPEN:
                aborted = self._ended(row)
            else:
                member = s.get(SmpcMemberRow, (session_id, site))
                if member is None:
                    s.add(
                        SmpcMemberRow(
                            session_id=session_id, site=site, join_json=dumps(key), joined_at=now
                        )
                    )
                    self.core.audit(
                        site,
                        "smpc.join",
                        f"smpc/{session_id}",
                        detail={"function": function},
                        session=s,
                    )
                elif json.loads(member.join_json) != key:
                    raise ConflictError(
                        f"{site} joined SMPC session {session_id!r} with another key"
                    )
        if aborted is not None:
            raise ProtocolAbort(aborted)
        return self.view(site, session_id)

    @staticmethod
    def _ended(row: SmpcSessionRow) -> str:
        outcome = json.loads(row.outcome_json or "{}")
        if row.status == SessionStatus.ABORTED:
            missing = ", ".join(outcome.get("missing") or []) or "nobody named"
            return f"SMPC session {row.id} aborted: {outcome.get('reason')} (missing: {missing})"
        return f"SMPC session {row.id} has {row.status}"

    def view(self, site: str, session_id: str) -> dict[str, Any]:
        """The session as a party sees it: status, parties and their registered keys."""
        self._expire_now(session_id)
        with self.core.lock, self.core.store.session() as s:
            row = self._row(s, session_id, site)
            self._expire(s, row)
            members = s.scalars(select(SmpcMemberRow).filter_by(session_id=session_id)).all()
            return {
                "id": row.id,
                "function": row.function,
                "parties": json.loads(row.parties_json),
                "status": row.status,
                "deadline": row.deadline,
                "outcome": json.loads(row.outcome_json or "{}"),
                "members": {m.site: json.loads(m.join_json) for m in members},
                "finished": sorted(m.site for m in members if m.released_json is not None),
            }

    def abort(self, site: str, session_id: str, *, missing: list[str], reason: str) -> None:
        """A party gives up on the session, naming the parties it waited for in vain."""
        with self.core.lock, self.core.store.session() as s:
            row = self._row(s, session_id, site)
            parties = json.loads(row.parties_json)
            if any(m not in parties for m in missing):
                raise DataError("the missing parties must be parties of the session")
            if row.status == SessionStatus.OPEN:
                self._abort(s, row, site, missing, reason)

    def finish(self, site: str, session_id: str, released: dict[str, Any]) -> str:
        """Record what ``site`` released; the session completes once every party finished."""
        self._expire_now(session_id)
        with self.core.lock, self.core.store.session() as s:
            row = self._row(s, session_id, site)
            self._expire(s, row)
            if row.status == SessionStatus.ABORTED:
                raise ProtocolAbort(self._ended(row))
            member = s.get(SmpcMemberRow, (session_id, site))
            if member is None:
                raise ConflictError(f"{site} has not joined SMPC session {session_id!r}")
            member.released_json = dumps(released)
            s.flush()
            members = s.scalars(select(SmpcMemberRow).filter_by(session_id=session_id)).all()
            parties = json.loads(row.parties_json)
            done = {m.site: json.loads(m.released_json) for m in members if m.released_json}
            if row.status == SessionStatus.OPEN and set(done) == set(parties):
                row.status = SessionStatus.COMPLETED
                row.updated_at = self.core.clock()
                self.core.audit(
                    "coordinator",
                    "smpc.complete",
                    f"smpc/{session_id}",
                    detail={"function": row.function, "parties": parties, "released": done},
                    session=s,
                )
            return row.status

    # -- the relay ------------------------------------------------------------------------

    def post(self, sender: str, session_id: str, step: str, recipient: str, body: bytes) -> str:
        """Keep one opaque message for ``recipient`` (a resend of the same bytes is kept once).

        Raises:
            ConflictError: a different message for the same step and pair, or the session
                is not open.
            ProtocolAbort: the session was aborted.
        """
        if len(body) > MAX_MESSAGE_BYTES:
            raise PayloadTooLargeError(f"an SMPC message is at most {MAX_MESSAGE_BYTES} bytes")
        self._expire_now(session_id)
        with self.core.lock, self.core.store.session() as s:
            row = self._row(s, session_id, sender)
            if recipient == sender or recipient not in json.loads(row.parties_json):
                raise DataError(f"{recipient!r} is not another party of the session")
            self._expire(s, row)
            if row.status == SessionStatus.ABORTED:
                raise ProtocolAbort(self._ended(row))
            if row.status != SessionStatus.OPEN:
                raise ConflictError(self._ended(row))
            body_digest = digest(body)
            old = s.scalar(
                select(SmpcMessageRow).filter_by(
                    session_id=session_id, step=step, sender=sender, recipient=recipient
                )
            )
            if old is not None:
                if old.digest != body_digest:
                    raise ConflictError(f"another message for step {step!r} was already sent")
                return body_digest
            s.add(
                SmpcMessageRow(
                    session_id=session_id,
                    step=step,
                    sender=sender,
                    recipient=recipient,
                    digest=body_digest,
                    blob=self.core.store.seal(
                        body, _seal_name(session_id, step, sender, recipient)
                    ),
                    created_at=self.core.clock(),
                )
            )
            return body_digest

    def fetch(self, recipient: str, session_id: str, step: str) -> dict[str, bytes]:
        """The messages for ``recipient`` in ``step``, by sender.

        Raises:
            ProtocolAbort: the session was aborted (naming who was missing).
        """
        self._expire_now(session_id)
        with self.core.lock, self.core.store.session() as s:
            row = self._row(s, session_id, recipient)
            self._expire(s, row)
            if row.status == SessionStatus.ABORTED:
                raise ProtocolAbort(self._ended(row))
            rows = s.scalars(
                select(SmpcMessageRow).filter_by(
                    session_id=session_id, step=step, recipient=recipient
                )
            ).all()
            return {
                r.sender: self.core.store.unseal(
                    r.blob, _seal_name(session_id, step, r.sender, recipient)
                )
                for r in rows
            }
