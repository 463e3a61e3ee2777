"""What every part of the coordinator shares: the store, the clock, one lock and the audit.

The coordinator is composed of small parts (:mod:`~tutela.server.identity`,
:mod:`~tutela.server.studies`, :mod:`~tutela.server.participation`,
:mod:`~tutela.server.inbox`, :mod:`~tutela.server.driver`), each given the same
:class:`Core`. This module also holds the vocabulary they share: the service errors, study
statuses, deployment settings and receipts.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from safetensors.numpy import save as st_save
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from tutela.errors import ConfigError, DataError, ServiceError
from tutela.fl.records import Parameters, check_compatible
from tutela.fl.rounds import RoundStatus
from tutela.server.push import COORDINATOR_SENDER, StudyWatch, TaskBell, watch_store
from tutela.server.store import (
    AuditRow,
    ParticipationRow,
    RelayRow,
    RoundRow,
    Store,
    StudyRow,
    UpdateRow,
    digest,
)
from tutela.server.wire import parse_tensors

Clock = Callable[[], float]
AuditHook = Callable[[str, str, str, str, dict[str, Any]], None]


@runtime_checkable
class CheckpointingAuditHook(Protocol):
    """An audit hook over a log that can sign its tree head (the governance Merkle log)."""

    def __call__(
        self, actor: str, action: str, resource: str, outcome: str, detail: dict[str, Any]
    ) -> None:
        """Append one event."""

    def checkpoint(self) -> object:
        """Sign a checkpoint of everything appended so far (returns it, or None)."""


@runtime_checkable
class BatchingAuditHook(Protocol):
    """An audit hook that can append several events at once (one write to its log)."""

    def append_many(self, events: list[AuditEvent]) -> None:
        """Append ``events`` in order."""


AuditEvent = tuple[str, str, str, str, dict[str, Any]]
"""An audit event as hooks receive it: actor, action, resource, outcome, detail."""

_AUDIT_PENDING = "tutela.audit.pending"
"""Key in ``Session.info`` of the audit events a transaction hands to the hook at commit."""


def _deliver(hook: AuditHook, events: list[AuditEvent]) -> None:
    if isinstance(hook, BatchingAuditHook):
        hook.append_many(events)
        return
    for e in events:
        hook(*e)


COORDINATOR = COORDINATOR_SENDER
ANON = "anonymous"
FIT_STAGE = "fit"


class NotFoundError(ServiceError):
    """The named study, round or site does not exist (HTTP 404)."""


class ConflictError(ServiceError):
    """The request does not fit the current state: closed round, duplicate, wrong status (409)."""


class PayloadTooLargeError(ServiceError):
    """A body is over the configured size limit (HTTP 413)."""


class StudyStatus:
    """Status values of a study."""

    CREATED = "created"
    RECRUITING = "recruiting"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ACTIVE = (RECRUITING, RUNNING, PAUSED)
    TERMINAL = (COMPLETED, FAILED, CANCELLED)


@dataclass(frozen=True)
class DeploymentSettings:
    """Deadlines and limits of a study run through the coordinator.

    Attributes:
        join_timeout_s: how long invited sites have to accept or refuse.
        stage_timeout_s: deadline of every round stage.
        max_update_bytes: largest accepted update body.
        max_relay_bytes: largest relayed message.
        sites: the sites invited (None: every enrolled site).
    """

    join_timeout_s: float = 120.0
    stage_timeout_s: float = 120.0
    max_update_bytes: int = 64 * 1024 * 1024
    max_relay_bytes: int = 1024 * 1024
    sites: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.join_timeout_s <= 0 or self.stage_timeout_s <= 0:
            raise ConfigError("deployment timeouts must be positive")
        if self.max_update_bytes < 1024 or self.max_relay_bytes < 64:
            raise ConfigError("deployment size limits are too small")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "join_timeout_s": self.join_timeout_s,
            "stage_timeout_s": self.stage_timeout_s,
            "max_update_bytes": self.max_update_bytes,
            "max_relay_bytes": self.max_relay_bytes,
            "sites": list(self.sites) if self.sites is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentSettings:
        """Inverse of :meth:`as_dict`."""
        sites = data.get("sites")
        return cls(
            join_timeout_s=float(data["join_timeout_s"]),
            stage_timeout_s=float(data["stage_timeout_s"]),
            max_update_bytes=int(data["max_update_bytes"]),
            max_relay_bytes=int(data["max_relay_bytes"]),
            sites=tuple(sites) if sites is not None else None,
        )

    @classmethod
    def of(cls, row: StudyRow) -> DeploymentSettings:
        """The settings a study was created with."""
        return cls.from_dict(json.loads(row.settings_json))


@dataclass(frozen=True)
class Receipt:
    """The coordinator's answer to an accepted submission."""

    study_id: str
    round_no: int
    stage: str
    site: str
    digest: str
    duplicate: bool
    driver_due: bool = True
    """Whether the round driver should look at the study now: the submission completed its
    stage and the stage was not advanced with it (see :attr:`Inbox.advance
    <tutela.server.inbox.Inbox.advance>`). Not part of the answer."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "study_id": self.study_id,
            "round": self.round_no,
            "stage": self.stage,
            "site": self.site,
            "digest": self.digest,
            "duplicate": self.duplicate,
        }


def token_hash(token: str) -> str:
    """How tokens are stored: SHA-256 hex (the token itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


def dumps(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces), as stored in the database."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def check_update(arrays: dict[str, npt.NDArray[Any]], reference: Parameters) -> Parameters:
    """Validate an update against the global model: names, shapes, float32, finite."""
    for name, value in arrays.items():
        if value.dtype != np.float32:
            raise DataError(f"tensor {name!r} has dtype {value.dtype}; expected float32")
    check_compatible(arrays, reference)
    return {k: np.asarray(v, np.float32) for k, v in arrays.items()}


@dataclass
class Core:
    """The coordinator's shared state.

    Args:
        store: the persistent state.
        clock: seconds since the epoch (injectable for deadline tests).
        audit_hook: extra sink called for every audit event (e.g. the governance Merkle log).

    ``lock`` serialises every change to round state (the round driver and submissions that
    feed the in-memory SecAgg+ servers). Lock order: this lock, then the database.

    ``bell`` wakes the sites' held task requests (:mod:`~tutela.server.push`): every
    committed write to the store rings the sites it concerns; ``studies`` wakes the
    requests waiting for a study's status to change.
    """

    store: Store
    clock: Clock = time.time
    audit_hook: AuditHook | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    bell: TaskBell = field(default_factory=TaskBell)
    studies: StudyWatch = field(default_factory=StudyWatch)

    def __post_init__(self) -> None:
        watch_store(self.store, self.bell, self.studies)

    # audit -----------------------------------------------------------------------------

    def audit(
        self,
        actor: str,
        action: str,
        resource: str,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
        *,
        session: Session | None = None,
    ) -> None:
        """Record one audit event (inside ``session`` when given, so it commits atomically).

        A refusal must not ride in the session of the change it refuses (that session rolls
        back and the record with it): use :meth:`audit_denial`.
        """
        row = AuditRow(
            ts=self.clock(),
            actor=actor,
            action=action,
            resource=resource,
            outcome=outcome,
            detail_json=dumps(detail or {}),
        )
        hook = self.audit_hook
        args = (actor, action, resource, outcome, dict(detail or {}))
        if session is not None:
            session.add(row)
            if hook is not None:
                # Into the tamper-evident log only once the state change is committed, every
                # event of the transaction in one append (one write and sync of the log).
                pending = session.info.get(_AUDIT_PENDING)
                if pending is None:
                    pending = session.info[_AUDIT_PENDING] = []
                    event.listen(
                        session,
                        "after_commit",
                        lambda s: _deliver(hook, s.info.pop(_AUDIT_PENDING, [])),
                        once=True,
                    )
                pending.append(args)
        else:
            with self.store.session() as s:
                s.add(row)
            if hook is not None:
                hook(*args)

    def audit_denial(
        self, actor: str, action: str, resource: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Record a refusal in its own transaction, so it stays when the refused change rolls
        back."""
        self.audit(actor, action, resource, "denied", detail)

    def checkpoint_audit(self, *, session: Session | None = None) -> None:
        """Sign the audit log's tree head (no-op unless the hook can checkpoint).

        With ``session``: once it commits, after the audit events it carries reach the log.
        """
        hook = self.audit_hook
        if not isinstance(hook, CheckpointingAuditHook):
            return
        if session is not None:
            event.listen(session, "after_commit", lambda _s: hook.checkpoint(), once=True)
        else:
            hook.checkpoint()

    def audit_events(self, *, limit: int = 1000, after_id: int = 0) -> list[dict[str, Any]]:
        """Audit events in order."""
        with self.store.read() as s:
            rows = s.scalars(
                select(AuditRow).where(AuditRow.id > after_id).order_by(AuditRow.id).limit(limit)
            ).all()
            return [
                {
                    "id": r.id,
                    "ts": r.ts,
                    "actor": r.actor,
                    "action": r.action,
                    "resource": r.resource,
                    "outcome": r.outcome,
                    "detail": json.loads(r.detail_json),
                }
                for r in rows
            ]

    # studies and their models ------------------------------------------------------------

    @staticmethod
    def study(s: Session, study_id: str, *, lock: bool = False) -> StudyRow:
        """A study's row (``lock``: for update), or NotFoundError."""
        stmt = select(StudyRow).where(StudyRow.id == study_id)
        if lock:
            stmt = stmt.with_for_update()
        row = s.scalar(stmt)
        if row is None:
            raise NotFoundError(f"unknown study {study_id!r}")
        return row

    def global_model(self, row: StudyRow) -> Parameters:
        """The study's current global parameters."""
        if row.model_blob is None:
            raise ConflictError(f"study {row.id} has no model yet")
        arrays, _ = parse_tensors(self.unseal_model(row.id, row.model_blob))
        return {k: np.asarray(v, np.float32) for k, v in arrays.items()}

    def unseal_model(self, study_id: str, sealed: bytes) -> bytes:
        """A study's sealed global model (:meth:`seal_model`) as safetensors.

        Raises:
            IntegrityError: not a model sealed for this study under this keyring.
        """
        return self.store.unseal(sealed, f"model/{study_id}")

    def seal_model(self, study_id: str, params: Parameters, version: int) -> bytes:
        """A global model sealed for the study row (safetensors inside)."""
        body = st_save(
            {k: np.ascontiguousarray(v, np.float32) for k, v in params.items()},
            metadata={"study": study_id, "version": str(version)},
        )
        return self.store.seal(body, f"model/{study_id}")

    def post_to_site(self, s: Session, study_id: str, rr: RoundRow, site: str, body: bytes) -> None:
        """Queue the coordinator's protocol message for ``site`` in the round's current stage
        (sealed at rest; the site fetches it through the relay)."""
        key = f"{rr.round_no}-{rr.attempt}-{rr.stage}-{site}"
        self.relay(s, study_id, rr, rr.stage, COORDINATOR, site, key, body)

    def relay(
        self,
        s: Session,
        study_id: str,
        rr: RoundRow,
        stage: str,
        sender: str,
        recipient: str,
        idempotency_key: str,
        body: bytes,
    ) -> None:
        """Store one relayed message of round ``rr``, sealed at rest and bound to its
        study, round, attempt, stage, sender and recipient."""
        s.add(
            RelayRow(
                study_id=study_id,
                round_no=rr.round_no,
                attempt=rr.attempt,
                stage=stage,
                sender=sender,
                recipient=recipient,
                idempotency_key=idempotency_key,
                digest=digest(body),
                blob=self.store.seal(
                    body,
                    relay_name(study_id, rr.round_no, rr.attempt, stage, sender, recipient),
                ),
                created_at=self.clock(),
            )
        )


def relay_name(
    study_id: str, round_no: int, attempt: int, stage: str, sender: str, recipient: str
) -> str:
    """What a relayed message is sealed to (its associated data): study, round, attempt,
    stage, sender and recipient (so a row moved to another attempt no longer opens)."""
    return f"relay/{study_id}/{round_no}/{attempt}/{stage}/{sender}/{recipient}"


def stage_submitters(s: Session, rr: RoundRow, sites: list[str]) -> set[str]:
    """Which of ``sites`` submitted in the open stage of round ``rr`` (its attempt)."""
    return set(
        s.scalars(
            select(UpdateRow.site).where(
                UpdateRow.study_id == rr.study_id,
                UpdateRow.round_no == rr.round_no,
                UpdateRow.attempt == rr.attempt,
                UpdateRow.stage == rr.stage,
                UpdateRow.site.in_(sites),
            )
        )
    )


def declared_rows(s: Session, study_id: str) -> dict[str, int]:
    """The rows each invited site declared for ``study_id`` (0 until it accepted): what caps
    its weight in every round (columns, not rows: a study may have a thousand sites)."""
    return {
        site: int(rows)
        for site, rows in s.execute(
            select(ParticipationRow.site, ParticipationRow.num_examples).where(
                ParticipationRow.study_id == study_id
            )
        )
    }


def open_round_row(s: Session, study_id: str) -> RoundRow | None:
    """The study's open round (at most one round of a study is open at a time)."""
    return s.scalar(
        select(RoundRow).where(RoundRow.study_id == study_id, RoundRow.status == RoundStatus.OPEN)
    )
