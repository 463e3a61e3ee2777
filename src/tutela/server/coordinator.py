"""The coordinator's logic, independent of HTTP: studies, enrolment, rounds and the relay.

The coordinator drives the same :mod:`tutela.fl` strategy objects as the in-process engine:
``configure_fit`` picks the round's sites, site updates (local minus global parameters)
are combined into a :class:`~tutela.fl.strategy.FitAggregate`, and ``aggregate_fit``
produces the next global model. What differs is time: sites are remote, so every stage
has a deadline and a quorum, and all state lives in the :class:`~tutela.server.store.Store`.

Life of a study::

    created --start--> recruiting --(quorum accepted)--> running --(last round)--> completed
        |                  |  (too few sites accept: failed)    |  <--pause/start-->  paused
        +------------------+----------------cancel-------------+--> cancelled

Recruiting: every invited site checks the study against its local policy and answers
(accept with its feature moments for global standardisation, or refuse with a reason,
which is audited). Rounds then follow the in-process engine: a round whose replies fall
below ``training.min_quorum`` by its deadline is recorded as ``quorum-not-met`` and the
global model is unchanged; a dropped site is never waited for beyond the deadline.

Crash safety: every transition is one database transaction. A restarted coordinator
reloads the strategy (its arrays and its sampling RNG state are persisted after every
change) and continues the open round with the updates already accepted.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import save as st_save
from sqlalchemy import delete, event, select, update
from sqlalchemy.orm import Session

from tutela.errors import ConfigError, DataError, PermissionDenied, ServiceError
from tutela.fl.client import FeatureMoments, global_standardisation
from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.engine import PlainAggregator
from tutela.fl.records import Parameters, ParameterSpec, check_compatible
from tutela.fl.strategy import ClientUpdate, FitAggregate, Strategy
from tutela.fl.study import build_strategy
from tutela.server.authz import Principal, Role
from tutela.server.store import (
    AuditRow,
    MetricRow,
    ParticipationRow,
    RelayRow,
    RoundRow,
    SiteRow,
    Store,
    StudyRow,
    TokenRow,
    UpdateRow,
    digest,
)
from tutela.server.wire import parse_tensors

Clock = Callable[[], float]

COORDINATOR = "coordinator"
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


@dataclass(frozen=True)
class Receipt:
    """The coordinator's answer to an accepted submission."""

    study_id: str
    round_no: int
    stage: str
    site: str
    digest: str
    duplicate: bool

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


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def check_update(arrays: dict[str, npt.NDArray[Any]], reference: Parameters) -> Parameters:
    """Validate an update against the global model: names, shapes, float32, finite."""
    for name, value in arrays.items():
        if value.dtype != np.float32:
            raise DataError(f"tensor {name!r} has dtype {value.dtype}; expected float32")
    check_compatible(arrays, reference)
    return {k: np.asarray(v, np.float32) for k, v in arrays.items()}


def _strategy_state(strategy: Strategy, rng: np.random.Generator) -> bytes:
    """Persistable state: the sampling RNG (JSON) and any array-dict attributes (safetensors)."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    for attr, value in vars(strategy).items():
        if (
            isinstance(value, dict)
            and value
            and all(isinstance(v, np.ndarray) for v in value.values())
        ):
            for key, arr in value.items():
                arrays[f"{attr}/{key}"] = np.ascontiguousarray(arr)
    meta = {"rng": json.dumps(rng.bit_generator.state)}
    return (
        st_save(arrays, metadata=meta)
        if arrays
        else st_save({"_": np.zeros(1, np.uint8)}, metadata=meta)
    )


def _restore_strategy(strategy: Strategy, rng: np.random.Generator, blob: bytes) -> None:
    arrays, meta = parse_tensors(blob)
    rng.bit_generator.state = json.loads(meta["rng"])
    grouped: dict[str, dict[str, npt.NDArray[Any]]] = {}
    for name, arr in arrays.items():
        if name == "_":
            continue
        attr, _, key = name.partition("/")
        grouped.setdefault(attr, {})[key] = arr
    for attr, value in grouped.items():
        setattr(strategy, attr, value)


@dataclass
class _SecAggRound:
    """The in-memory SecAgg+ server of a study's open round (never persisted: its secrets
    must not outlive the process)."""

    server: Any
    round_no: int
    attempt: int
    ids: dict[str, int]
    spec: ParameterSpec


@dataclass
class _Runtime:
    """In-memory strategy objects of a running study (rebuilt from the store on restart)."""

    strategy: Strategy
    rng: np.random.Generator


AuditHook = Callable[[str, str, str, str, dict[str, Any]], None]


@dataclass
class Coordinator:
    """Studies, sites and rounds over a :class:`Store`.

    Args:
        store: the persistent state.
        clock: seconds since the epoch (injectable for deadline tests).
        signer: signs enrolment CSRs (``(csr_pem, site) -> cert_pem``); None disables
            token enrolment (certificates are then issued offline with ``tutela pki``).
        audit_hook: extra sink called for every audit event (e.g. the governance Merkle log).
    """

    store: Store
    clock: Clock = time.time
    signer: Callable[[bytes, str], bytes] | None = None
    audit_hook: AuditHook | None = None
    _runtimes: dict[str, _Runtime] = field(default_factory=dict)
    _secagg: dict[str, _SecAggRound] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

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
        """Record one audit event (inside ``session`` when given, so it commits atomically)."""
        row = AuditRow(
            ts=self.clock(),
            actor=actor,
            action=action,
            resource=resource,
            outcome=outcome,
            detail_json=_dumps(detail or {}),
        )
        hook = self.audit_hook
        args = (actor, action, resource, outcome, dict(detail or {}))
        if session is not None:
            session.add(row)
            if hook is not None:
                # Into the tamper-evident log only once the state change is committed.
                event.listen(session, "after_commit", lambda _s: hook(*args), once=True)
        else:
            with self.store.session() as s:
                s.add(row)
            if hook is not None:
                hook(*args)

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

    # tokens and principals --------------------------------------------------------------

    def create_token(
        self, role: Role, subject: str, *, actor: str = "system", ttl_s: float | None = None
    ) -> str:
        """Mint a bearer token for an admin, data scientist or auditor; returns it once."""
        if role is Role.SITE:
            raise ValueError("sites authenticate with certificates, not bearer tokens")
        token = "tta_" + secrets.token_urlsafe(32)
        now = self.clock()
        with self.store.session() as s:
            s.add(
                TokenRow(
                    token_hash=token_hash(token),
                    kind="bearer",
                    role=role.value,
                    subject=subject,
                    created_at=now,
                    expires_at=now + ttl_s if ttl_s else None,
                )
            )
            self.audit(
                actor,
                "token.create",
                f"principal/{subject}",
                detail={"role": role.value},
                session=s,
            )
        return token

    def principal_for_token(self, token: str) -> Principal | None:
        """The principal of a bearer token, or None if unknown or expired."""
        with self.store.read() as s:
            row = s.scalar(
                select(TokenRow).where(
                    TokenRow.token_hash == token_hash(token), TokenRow.kind == "bearer"
                )
            )
            if row is None or (row.expires_at is not None and row.expires_at < self.clock()):
                return None
            return Principal(row.subject, Role(row.role))

    def principal_for_site(self, common_name: str, fingerprint: str) -> Principal | None:
        """The site principal of a verified client certificate, or None if not enrolled.

        Security: the certificate was verified against the CA during the handshake; here
        its common name must be an active site. If the site enrolled by token, only the
        certificate issued at enrolment (its fingerprint) is accepted.
        """
        with self.store.read() as s:
            row = s.get(SiteRow, common_name)
            if row is None or row.status != "active":
                return None
            if row.cert_fingerprint is not None and row.cert_fingerprint != fingerprint:
                return None
            return Principal(common_name, Role.SITE)

    # sites ------------------------------------------------------------------------------

    def register_site(self, actor: Principal, name: str, *, ttl_s: float = 24 * 3600) -> str:
        """Register a site and return its one-time enrolment token."""
        from tutela.server.pki import validate_site_name

        validate_site_name(name)
        token = "tte_" + secrets.token_urlsafe(32)
        now = self.clock()
        with self.store.session() as s:
            row = s.get(SiteRow, name)
            if row is None:
                s.add(SiteRow(name=name, status="pending", created_at=now))
            s.add(
                TokenRow(
                    token_hash=token_hash(token),
                    kind="enrol",
                    role=Role.SITE.value,
                    subject=name,
                    created_at=now,
                    expires_at=now + ttl_s,
                )
            )
            self.audit(actor.label, "site.register", f"site/{name}", session=s)
        return token

    def activate_site(self, actor: Principal, name: str) -> None:
        """Accept a site whose certificate was issued offline (``tutela pki issue --site``)."""
        from tutela.server.pki import validate_site_name

        validate_site_name(name)
        now = self.clock()
        with self.store.session() as s:
            row = s.get(SiteRow, name)
            if row is None:
                s.add(SiteRow(name=name, status="active", created_at=now, enrolled_at=now))
            else:
                row.status = "active"
            self.audit(actor.label, "site.activate", f"site/{name}", session=s)

    def enrol(self, token: str, csr_pem: bytes) -> bytes:
        """Exchange a one-time enrolment token and a CSR for a site certificate.

        Raises:
            PermissionDenied: unknown, used or expired token.
            ServiceError: enrolment is disabled (no CA key on this coordinator).
        """
        if self.signer is None:
            raise ServiceError(
                "this coordinator does not sign certificates; ask for an offline one"
            )
        from tutela.server.pki import fingerprint

        now = self.clock()
        with self.store.session() as s:
            row = s.scalar(
                select(TokenRow).where(
                    TokenRow.token_hash == token_hash(token), TokenRow.kind == "enrol"
                )
            )
            if row is None or row.used_at is not None or (row.expires_at or 0) < now:
                self.audit(
                    ANON, "site.enrol", "site/?", "denied", {"reason": "invalid token"}, session=s
                )
                raise PermissionDenied("the enrolment token is unknown, used or expired")
            site = row.subject
            cert_pem = self.signer(csr_pem, site)
            from cryptography import x509

            cert = x509.load_pem_x509_certificate(cert_pem)
            row.used_at = now
            site_row = s.get(SiteRow, site)
            if site_row is None:  # pragma: no cover - created with the token
                site_row = SiteRow(name=site, status="active", created_at=now)
                s.add(site_row)
            site_row.status = "active"
            site_row.cert_fingerprint = fingerprint(cert)
            site_row.enrolled_at = now
            self.audit(f"site:{site}", "site.enrol", f"site/{site}", session=s)
        return cert_pem

    def list_sites(self) -> list[dict[str, Any]]:
        """Every known site."""
        with self.store.read() as s:
            return [
                {"name": r.name, "status": r.status, "enrolled_at": r.enrolled_at}
                for r in s.scalars(select(SiteRow).order_by(SiteRow.name))
            ]

    # studies ----------------------------------------------------------------------------

    def create_study(
        self, actor: Principal, config: StudyConfig, settings: DeploymentSettings | None = None
    ) -> str:
        """Create a study (status ``created``); upload its initial model, then start it."""
        settings = settings or DeploymentSettings()
        if (
            build_strategy(config).needs_individual_updates
            and config.secure_aggregation.protocol != "none"
        ):
            raise ConfigError("this strategy cannot run under secure aggregation")
        if config.secure_aggregation.protocol == "ckks":
            raise ConfigError(
                "secure_aggregation.protocol 'ckks' runs in process only; the coordinator "
                "runs SecAgg+ ('secagg+')"
            )
        study_id = uuid.uuid4().hex[:16]
        now = self.clock()
        with self.store.session() as s:
            s.add(
                StudyRow(
                    id=study_id,
                    name=config.study.name,
                    config_json=_dumps(config.resolved()),
                    settings_json=_dumps(settings.as_dict()),
                    status=StudyStatus.CREATED,
                    seed=config.study.seed,
                    current_round=1,
                    total_rounds=config.training.rounds,
                    attempt=1,
                    model_version=0,
                    prep_json="{}",
                    privacy_json="[]",
                    created_by=actor.label,
                    created_at=now,
                    updated_at=now,
                )
            )
            self.audit(
                actor.label,
                "study.create",
                f"study/{study_id}",
                detail={"name": config.study.name},
                session=s,
            )
        return study_id

    def _study(self, s: Session, study_id: str, *, lock: bool = False) -> StudyRow:
        stmt = select(StudyRow).where(StudyRow.id == study_id)
        if lock:
            stmt = stmt.with_for_update()
        row = s.scalar(stmt)
        if row is None:
            raise NotFoundError(f"unknown study {study_id!r}")
        return row

    def _global_model(self, row: StudyRow) -> Parameters:
        if row.model_blob is None:
            raise ConflictError(f"study {row.id} has no model yet")
        arrays, _ = parse_tensors(self.store.unseal(row.model_blob, f"model/{row.id}"))
        return {k: np.asarray(v, np.float32) for k, v in arrays.items()}

    def _seal_model(self, study_id: str, params: Parameters, version: int) -> bytes:
        body = st_save(
            {k: np.ascontiguousarray(v, np.float32) for k, v in params.items()},
            metadata={"study": study_id, "version": str(version)},
        )
        return self.store.seal(body, f"model/{study_id}")

    def set_initial_model(self, actor: Principal, study_id: str, body: bytes) -> None:
        """Upload the initial global model (safetensors, float32) before the study starts."""
        arrays, _ = parse_tensors(body)
        if not arrays:
            raise DataError("the model has no tensors")
        for name, value in arrays.items():
            if value.dtype != np.float32:
                raise DataError(f"tensor {name!r} has dtype {value.dtype}; expected float32")
            if not np.isfinite(value).all():
                raise DataError(f"tensor {name!r} contains NaN or infinite values")
        with self.store.session() as s:
            row = self._study(s, study_id, lock=True)
            if row.status != StudyStatus.CREATED:
                raise ConflictError(
                    f"study {study_id} is {row.status}; "
                    "the initial model can only be set before start"
                )
            row.model_blob = self._seal_model(study_id, arrays, 0)
            row.updated_at = self.clock()
            self.audit(actor.label, "study.model.set", f"study/{study_id}", session=s)

    def start(self, actor: Principal, study_id: str) -> str:
        """Start (or resume) a study; returns its new status."""
        now = self.clock()
        with self.store.session() as s:
            row = self._study(s, study_id, lock=True)
            if row.status == StudyStatus.PAUSED:
                row.status = StudyStatus.RUNNING
            elif row.status == StudyStatus.CREATED:
                if row.model_blob is None:
                    raise ConflictError(f"study {study_id} has no initial model; upload one first")
                settings = DeploymentSettings.from_dict(json.loads(row.settings_json))
                invited = self._invited(s, settings)
                if not invited:
                    raise ConflictError("no enrolled site to invite")
                for site in invited:
                    s.add(
                        ParticipationRow(
                            study_id=study_id, site=site, status="invited", updated_at=now
                        )
                    )
                row.status = StudyStatus.RECRUITING
                row.prep_json = _dumps({"join_deadline": now + settings.join_timeout_s})
            else:
                raise ConflictError(
                    f"study {study_id} is {row.status}; only created or paused studies start"
                )
            row.updated_at = now
            self.audit(
                actor.label,
                "study.start",
                f"study/{study_id}",
                detail={"status": row.status},
                session=s,
            )
            return row.status

    def _invited(self, s: Session, settings: DeploymentSettings) -> list[str]:
        if settings.sites is None:
            return sorted(s.scalars(select(SiteRow.name).where(SiteRow.status == "active")))
        # Explicitly invited sites may still be enrolling (registered, token not used yet).
        known = set(
            s.scalars(select(SiteRow.name).where(SiteRow.status.in_(("active", "pending"))))
        )
        missing = sorted(set(settings.sites) - known)
        if missing:
            raise ConflictError(f"sites not registered: {', '.join(missing)}")
        return sorted(settings.sites)

    def pause(self, actor: Principal, study_id: str) -> str:
        """Pause a running study: the open round finishes, no new round opens."""
        with self.store.session() as s:
            row = self._study(s, study_id, lock=True)
            if row.status != StudyStatus.RUNNING:
                raise ConflictError(
                    f"study {study_id} is {row.status}; only a running study pauses"
                )
            row.status = StudyStatus.PAUSED
            row.updated_at = self.clock()
            self.audit(actor.label, "study.pause", f"study/{study_id}", session=s)
            return row.status

    def cancel(self, actor: Principal, study_id: str) -> str:
        """Cancel a study for good; an open round is closed without aggregation."""
        now = self.clock()
        with self.store.session() as s:
            row = self._study(s, study_id, lock=True)
            if row.status in StudyStatus.TERMINAL:
                raise ConflictError(f"study {study_id} is already {row.status}")
            row.status = StudyStatus.CANCELLED
            row.updated_at = now
            s.execute(
                update(RoundRow)
                .where(RoundRow.study_id == study_id, RoundRow.status == "open")
                .values(status="cancelled", closed_at=now)
            )
            self.audit(actor.label, "study.cancel", f"study/{study_id}", session=s)
            self._runtimes.pop(study_id, None)
            return row.status

    def study_status(self, study_id: str) -> dict[str, Any]:
        """Status, progress, participation and per-round outcomes of a study."""
        with self.store.read() as s:
            row = self._study(s, study_id)
            parts = s.scalars(
                select(ParticipationRow).where(ParticipationRow.study_id == study_id)
            ).all()
            rounds = s.scalars(
                select(RoundRow)
                .where(RoundRow.study_id == study_id)
                .order_by(RoundRow.round_no, RoundRow.attempt)
            ).all()
            return {
                "id": row.id,
                "name": row.name,
                "status": row.status,
                "current_round": row.current_round,
                "total_rounds": row.total_rounds,
                "model_version": row.model_version,
                "error": row.error,
                "created_by": row.created_by,
                "config": json.loads(row.config_json),
                "deployment": json.loads(row.settings_json),
                "participation": {
                    p.site: {"status": p.status, "reason": p.reason, "num_examples": p.num_examples}
                    for p in parts
                },
                "rounds": [
                    {
                        "round": r.round_no,
                        "stage": r.stage,
                        "status": r.status,
                        "participants": json.loads(r.participants_json),
                        **json.loads(r.outcome_json),
                    }
                    for r in rounds
                ],
            }

    def list_studies(self) -> list[dict[str, Any]]:
        """Every study with its status."""
        with self.store.read() as s:
            return [
                {
                    "id": r.id,
                    "name": r.name,
                    "status": r.status,
                    "current_round": r.current_round,
                    "total_rounds": r.total_rounds,
                }
                for r in s.scalars(select(StudyRow).order_by(StudyRow.created_at))
            ]

    def privacy_ledger(self, study_id: str) -> dict[str, Any]:
        """The privacy events of a study: configured guarantee and what each round spent."""
        with self.store.read() as s:
            row = self._study(s, study_id)
            config = json.loads(row.config_json)
            reports: dict[str, Any] = {}
            for m in s.scalars(
                select(MetricRow).where(MetricRow.study_id == study_id).order_by(MetricRow.id)
            ):
                values = json.loads(m.metrics_json)
                if "epsilon" in values:
                    reports[m.site] = {"round": m.round_no, **values}
            return {
                "study_id": study_id,
                "privacy": config.get("privacy"),
                "secure_aggregation": config.get("secure_aggregation"),
                "events": json.loads(row.privacy_json),
                "site_reports": reports,
            }

    def round_model(self, study_id: str, round_no: int) -> bytes:
        """The global model after ``round_no`` (safetensors)."""
        with self.store.read() as s:
            self._study(s, study_id)
            rr = s.scalar(
                select(RoundRow).where(
                    RoundRow.study_id == study_id,
                    RoundRow.round_no == round_no,
                    RoundRow.status.in_(("aggregated", "quorum-not-met")),
                )
            )
            if rr is None or rr.model_blob is None:
                raise NotFoundError(f"no model for round {round_no} of study {study_id}")
            return self.store.unseal(rr.model_blob, f"round-model/{study_id}/{round_no}")

    def final_model(self, study_id: str) -> bytes:
        """The current global model as safetensors."""
        with self.store.read() as s:
            row = self._study(s, study_id)
            if row.model_blob is None:
                raise NotFoundError(f"study {study_id} has no model")
            return self.store.unseal(row.model_blob, f"model/{study_id}")

    # site API ---------------------------------------------------------------------------

    def tasks_for(self, site: str) -> dict[str, Any]:
        """What a site should do now (answer invitations, work on open round stages), and
        the status of every study it was invited to."""
        now = self.clock()
        tasks: list[dict[str, Any]] = []
        studies: dict[str, str] = {}
        with self.store.read() as s:
            parts = s.scalars(select(ParticipationRow).where(ParticipationRow.site == site)).all()
            for p in parts:
                study = s.get(StudyRow, p.study_id)
                if study is None:  # pragma: no cover - foreign key
                    continue
                studies[study.id] = study.status
                if study.status in StudyStatus.TERMINAL:
                    continue
                if p.status == "invited" and study.status == StudyStatus.RECRUITING:
                    tasks.append(
                        {
                            "kind": "join",
                            "study_id": study.id,
                            "config": json.loads(study.config_json),
                            "deadline": json.loads(study.prep_json).get("join_deadline"),
                        }
                    )
                    continue
                if p.status != "accepted":
                    continue
                rr = s.scalar(
                    select(RoundRow).where(RoundRow.study_id == study.id, RoundRow.status == "open")
                )
                if (
                    rr is None
                    or site not in json.loads(rr.participants_json)
                    or rr.stage_deadline < now
                ):
                    continue
                done = s.scalar(
                    select(UpdateRow.id).where(
                        UpdateRow.study_id == study.id,
                        UpdateRow.round_no == rr.round_no,
                        UpdateRow.attempt == rr.attempt,
                        UpdateRow.stage == rr.stage,
                        UpdateRow.site == site,
                    )
                )
                if done is not None:
                    continue
                prep = json.loads(study.prep_json)
                task: dict[str, Any] = {
                    "kind": rr.stage,
                    "study_id": study.id,
                    "round": rr.round_no,
                    "attempt": rr.attempt,
                    "stage": rr.stage,
                    "deadline": rr.stage_deadline,
                    "config": json.loads(rr.fit_config_json),
                    "model_version": study.model_version,
                    "standardisation": {"mean": prep.get("mean"), "std": prep.get("std")},
                }
                if rr.stage != FIT_STAGE:
                    waiting = s.scalar(
                        select(RelayRow.id).where(
                            RelayRow.study_id == study.id,
                            RelayRow.round_no == rr.round_no,
                            RelayRow.attempt == rr.attempt,
                            RelayRow.stage == rr.stage,
                            RelayRow.sender == COORDINATOR,
                            RelayRow.recipient == site,
                        )
                    )
                    if waiting is None or rr.protocol_state is None:
                        continue  # dropped in an earlier stage: nothing more to do
                    proto = json.loads(rr.protocol_state)
                    task["client_id"] = proto["client_ids"][site]
                    task["registry"] = proto["registry"]
                tasks.append(task)
        return {"tasks": tasks, "studies": studies}

    def participation(self, site: str, study_id: str) -> ParticipationRow:
        """A site's participation row in a study (NotFoundError/PermissionDenied otherwise)."""
        with self.store.read() as s:
            self._study(s, study_id)
            p = s.get(ParticipationRow, (study_id, site))
            if p is None:
                raise PermissionDenied(f"site {site} is not invited to study {study_id}")
            return p

    def model_for_site(self, site: str, study_id: str) -> bytes:
        """The current global model for a participating site (safetensors)."""
        p = self.participation(site, study_id)
        if p.status != "accepted":
            raise PermissionDenied(f"site {site} has not joined study {study_id}")
        with self.store.read() as s:
            row = self._study(s, study_id)
            if row.status not in StudyStatus.ACTIVE and row.status != StudyStatus.COMPLETED:
                raise ConflictError(f"study {study_id} is {row.status}")
            if row.model_blob is None:  # pragma: no cover - required before start
                raise ConflictError(f"study {study_id} has no model")
            return self.store.unseal(row.model_blob, f"model/{study_id}")

    def answer_invitation(
        self,
        site: str,
        study_id: str,
        *,
        accept: bool,
        reason: str = "",
        num_examples: int = 0,
        moments: FeatureMoments | None = None,
        identity: str | None = None,
    ) -> str:
        """Record a site's accept/refuse answer (refusals are audited with their reason)."""
        with self.store.session() as s:
            study = self._study(s, study_id, lock=True)
            p = s.get(ParticipationRow, (study_id, site))
            if p is None:
                raise PermissionDenied(f"site {site} is not invited to study {study_id}")
            if p.status != "invited":
                if (p.status == "accepted") == accept:
                    return p.status
                raise ConflictError(f"site {site} already answered {p.status}")
            if study.status != StudyStatus.RECRUITING:
                raise ConflictError(f"study {study_id} is {study.status}; it no longer recruits")
            if accept:
                if moments is None or num_examples <= 0:
                    raise DataError("accepting needs num_examples > 0 and feature moments")
                cfg = json.loads(study.config_json)
                columns = cfg["data"].get("columns")
                if columns is not None and len(moments.total) != len(columns):
                    raise DataError(
                        f"feature moments have {len(moments.total)} columns; "
                        f"the study uses {len(columns)}"
                    )
                if cfg["secure_aggregation"]["protocol"] != "none":
                    if identity is None or len(identity) != 64:
                        raise DataError(
                            "secure aggregation needs the site's 32-byte Ed25519 identity (hex)"
                        )
                    try:
                        bytes.fromhex(identity)
                    except ValueError:
                        raise DataError("the identity must be hex") from None
                p.status = "accepted"
                p.num_examples = num_examples
                p.join_json = _dumps(
                    {
                        "count": moments.count,
                        "total": moments.total.tolist(),
                        "total_sq": moments.total_sq.tolist(),
                        "identity": identity,
                    }
                )
            else:
                p.status = "refused"
                p.reason = reason[:2000] or "refused by site policy"
            p.updated_at = self.clock()
            self.audit(
                f"site:{site}",
                "study.join" if accept else "study.refuse",
                f"study/{study_id}",
                "ok" if accept else "refused",
                {"reason": p.reason} if not accept else {"num_examples": num_examples},
                session=s,
            )
            return p.status

    def submit(
        self, site: str, study_id: str, round_no: int, stage: str, idempotency_key: str, body: bytes
    ) -> Receipt:
        """Accept a site's submission for an open round stage, exactly once.

        A retry with the same idempotency key and body gets the original receipt
        (``duplicate=True``); the same key with another body, a second submission for the
        same stage, a closed or future round, or a stale ``round`` in the body's metadata
        are refused.
        """
        if not idempotency_key or len(idempotency_key) > 128:
            raise DataError("an Idempotency-Key header of 1-128 characters is required")
        body_digest = digest(body)
        # Lock order: the coordinator lock, then the database (as in tick).
        with self._lock, self.store.session() as s:
            study = self._study(s, study_id, lock=True)
            existing = s.scalar(
                select(UpdateRow).where(
                    UpdateRow.study_id == study_id,
                    UpdateRow.site == site,
                    UpdateRow.idempotency_key == idempotency_key,
                )
            )
            if existing is not None:
                if (
                    existing.digest != body_digest
                    or existing.round_no != round_no
                    or existing.stage != stage
                ):
                    raise ConflictError(
                        "this Idempotency-Key was already used for a different submission"
                    )
                return Receipt(study_id, round_no, stage, site, body_digest, True)
            settings = DeploymentSettings.from_dict(json.loads(study.settings_json))
            if len(body) > settings.max_update_bytes:
                raise PayloadTooLargeError(
                    f"body of {len(body)} bytes exceeds the {settings.max_update_bytes} limit"
                )
            p = s.get(ParticipationRow, (study_id, site))
            if p is None or p.status != "accepted":
                raise PermissionDenied(f"site {site} does not participate in study {study_id}")
            if study.status not in (StudyStatus.RUNNING, StudyStatus.PAUSED):
                raise ConflictError(
                    f"study {study_id} is {study.status}; it accepts no submissions"
                )
            rr = s.scalar(
                select(RoundRow).where(RoundRow.study_id == study_id, RoundRow.status == "open")
            )
            if rr is None or rr.round_no != round_no:
                current = rr.round_no if rr is not None else study.current_round
                if round_no < current or (rr is None and round_no <= study.current_round - 1):
                    raise ConflictError(
                        f"round {round_no} of study {study_id} is closed "
                        f"(current round {current}); "
                        "a submission for an earlier round is never accepted"
                    )
                raise ConflictError(f"round {round_no} of study {study_id} is not open")
            if rr.stage != stage:
                raise ConflictError(f"round {round_no} is in stage {rr.stage!r}, not {stage!r}")
            if site not in json.loads(rr.participants_json):
                raise PermissionDenied(f"site {site} was not selected for round {round_no}")
            if self.clock() > rr.stage_deadline:
                raise ConflictError(f"the deadline of round {round_no} stage {stage!r} has passed")
            already = s.scalar(
                select(UpdateRow.id).where(
                    UpdateRow.study_id == study_id,
                    UpdateRow.round_no == round_no,
                    UpdateRow.attempt == rr.attempt,
                    UpdateRow.stage == stage,
                    UpdateRow.site == site,
                )
            )
            if already is not None:
                raise ConflictError(
                    f"site {site} already submitted for round {round_no} stage {stage!r}"
                )
            arrays, meta = parse_tensors(body)
            if meta.get("study") != study_id or meta.get("round") != str(round_no):
                raise ConflictError(
                    f"the body is bound to study {meta.get('study')!r} "
                    f"round {meta.get('round')!r}, "
                    f"not study {study_id!r} round {round_no}: replayed or misdirected"
                )
            if stage == FIT_STAGE:
                num_examples = _positive_int(meta.get("num_examples"), "num_examples")
                check_update(arrays, self._global_model(study))
                sealed = self.store.seal(body, f"update/{study_id}/{round_no}/{stage}/{site}")
            else:
                self._secagg_receive(study_id, round_no, rr.attempt, stage, site, body)
                num_examples = 0
                sealed = b""  # SecAgg+ messages live in the in-memory protocol state only
            s.add(
                UpdateRow(
                    study_id=study_id,
                    round_no=round_no,
                    attempt=rr.attempt,
                    stage=stage,
                    site=site,
                    idempotency_key=idempotency_key,
                    digest=body_digest,
                    num_examples=num_examples,
                    blob=sealed,
                    created_at=self.clock(),
                )
            )
            self.audit(
                f"site:{site}",
                "round.submit",
                f"study/{study_id}/round/{round_no}/{stage}",
                session=s,
            )
        return Receipt(study_id, round_no, stage, site, body_digest, False)

    def report_metrics(
        self, site: str, study_id: str, round_no: int, metrics: dict[str, float]
    ) -> None:
        """Store a site's metrics for a round (finite numbers only)."""
        self.participation(site, study_id)
        clean: dict[str, float] = {}
        for key, value in metrics.items():
            if not isinstance(value, int | float) or not math.isfinite(float(value)):
                raise DataError(f"metric {key!r} must be a finite number")
            clean[str(key)[:64]] = float(value)
        with self.store.session() as s:
            s.add(
                MetricRow(
                    study_id=study_id,
                    round_no=round_no,
                    site=site,
                    metrics_json=_dumps(clean),
                    created_at=self.clock(),
                )
            )

    # relay ------------------------------------------------------------------------------

    def relay_post(
        self,
        sender: str,
        study_id: str,
        round_no: int,
        stage: str,
        recipient: str,
        idempotency_key: str,
        body: bytes,
    ) -> Receipt:
        """Store an opaque message from one round participant to another.

        Security: the coordinator authenticates the sender (mutual TLS) and the recipient
        learns the sender's identity from the coordinator; the payload is opaque (sites
        encrypt it end to end) and sealed at rest.
        """
        if not idempotency_key or len(idempotency_key) > 128:
            raise DataError("an Idempotency-Key header of 1-128 characters is required")
        body_digest = digest(body)
        with self.store.session() as s:
            study = self._study(s, study_id, lock=True)
            existing = s.scalar(
                select(RelayRow).where(
                    RelayRow.study_id == study_id,
                    RelayRow.sender == sender,
                    RelayRow.idempotency_key == idempotency_key,
                )
            )
            if existing is not None:
                if existing.digest != body_digest:
                    raise ConflictError(
                        "this Idempotency-Key was already used for a different message"
                    )
                return Receipt(study_id, round_no, stage, sender, body_digest, True)
            settings = DeploymentSettings.from_dict(json.loads(study.settings_json))
            if len(body) > settings.max_relay_bytes:
                raise PayloadTooLargeError(
                    f"message of {len(body)} bytes exceeds the {settings.max_relay_bytes} limit"
                )
            rr = s.scalar(
                select(RoundRow).where(RoundRow.study_id == study_id, RoundRow.status == "open")
            )
            if rr is None or rr.round_no != round_no:
                raise ConflictError(f"round {round_no} of study {study_id} is not open")
            if self.clock() > rr.stage_deadline:
                raise ConflictError(
                    f"the deadline of round {round_no} stage {rr.stage!r} has passed"
                )
            members = json.loads(rr.participants_json)
            if sender not in members:
                raise PermissionDenied(f"site {sender} is not in round {round_no}")
            if recipient not in members or recipient == sender:
                raise DataError(
                    f"recipient {recipient!r} is not another participant of round {round_no}"
                )
            s.add(
                RelayRow(
                    study_id=study_id,
                    round_no=round_no,
                    attempt=rr.attempt,
                    stage=stage,
                    sender=sender,
                    recipient=recipient,
                    idempotency_key=idempotency_key,
                    digest=body_digest,
                    blob=self.store.seal(
                        body, f"relay/{study_id}/{round_no}/{stage}/{sender}/{recipient}"
                    ),
                    created_at=self.clock(),
                )
            )
        return Receipt(study_id, round_no, stage, sender, body_digest, False)

    def relay_fetch(
        self, recipient: str, study_id: str, round_no: int, stage: str
    ) -> dict[str, bytes]:
        """Messages addressed to ``recipient`` for one stage, keyed by authenticated sender."""
        with self.store.read() as s:
            self._study(s, study_id)
            rows = s.scalars(
                select(RelayRow).where(
                    RelayRow.study_id == study_id,
                    RelayRow.round_no == round_no,
                    RelayRow.stage == stage,
                    RelayRow.recipient == recipient,
                )
            ).all()
            return {
                r.sender: self.store.unseal(
                    r.blob, f"relay/{study_id}/{round_no}/{stage}/{r.sender}/{recipient}"
                )
                for r in rows
            }

    # the round engine -------------------------------------------------------------------

    def _runtime(self, row: StudyRow) -> _Runtime:
        rt = self._runtimes.get(row.id)
        if rt is None:
            config = parse_study(json.loads(row.config_json))
            rt = _Runtime(build_strategy(config), np.random.default_rng(config.study.seed))
            if row.strategy_state is not None:
                _restore_strategy(
                    rt.strategy, rt.rng, self.store.unseal(row.strategy_state, f"strategy/{row.id}")
                )
            self._runtimes[row.id] = rt
        return rt

    def resume(self) -> int:
        """After a restart: give every open plain round's stage a fresh deadline.

        Sites could not reach a stopped coordinator, so the time it was down does not count
        against them. Accepted updates are kept; the round continues where it stopped.
        Returns the number of rounds resumed.
        """
        now = self.clock()
        resumed = 0
        with self._lock, self.store.session() as s:
            for rr in s.scalars(select(RoundRow).where(RoundRow.status == "open")):
                study = self._study(s, rr.study_id, lock=True)
                settings = DeploymentSettings.from_dict(json.loads(study.settings_json))
                rr.stage_deadline = max(rr.stage_deadline, now + settings.stage_timeout_s)
                self.audit(
                    COORDINATOR,
                    "round.resume",
                    f"study/{rr.study_id}/round/{rr.round_no}",
                    session=s,
                )
                resumed += 1
        return resumed

    def tick(self) -> bool:
        """Advance every active study by at most one transition each; True if anything moved."""
        with self.store.read() as s:
            ids = list(
                s.scalars(select(StudyRow.id).where(StudyRow.status.in_(StudyStatus.ACTIVE)))
            )
        moved = False
        for study_id in ids:
            with self._lock:
                moved |= self._advance(study_id)
        return moved

    def _advance(self, study_id: str) -> bool:
        now = self.clock()
        with self.store.session() as s:
            row = self._study(s, study_id, lock=True)
            if row.status == StudyStatus.RECRUITING:
                return self._close_recruiting(s, row, now)
            if row.status not in (StudyStatus.RUNNING, StudyStatus.PAUSED):
                return False
            rr = s.scalar(
                select(RoundRow).where(RoundRow.study_id == study_id, RoundRow.status == "open")
            )
            if rr is None:
                if row.current_round > row.total_rounds:
                    row.status = StudyStatus.COMPLETED
                    row.updated_at = now
                    self.audit(COORDINATOR, "study.complete", f"study/{study_id}", session=s)
                    self._runtimes.pop(study_id, None)
                    return True
                if row.status == StudyStatus.PAUSED:
                    return False
                self._open_round(s, row, now)
                return True
            if rr.stage == FIT_STAGE:
                return self._advance_fit(s, row, rr, now)
            return self._advance_secagg(s, row, rr, now)

    def _advance_fit(self, s: Session, row: StudyRow, rr: RoundRow, now: float) -> bool:
        participants = json.loads(rr.participants_json)
        submitted = set(
            s.scalars(
                select(UpdateRow.site).where(
                    UpdateRow.study_id == row.id,
                    UpdateRow.round_no == rr.round_no,
                    UpdateRow.attempt == rr.attempt,
                    UpdateRow.stage == rr.stage,
                )
            )
        )
        if len(submitted) < len(participants) and now <= rr.stage_deadline:
            return False
        rt = self._runtime(row)
        params = self._global_model(row)
        rows = s.scalars(
            select(UpdateRow).where(
                UpdateRow.study_id == row.id,
                UpdateRow.round_no == rr.round_no,
                UpdateRow.attempt == rr.attempt,
                UpdateRow.stage == rr.stage,
            )
        ).all()
        order = {site: i for i, site in enumerate(participants)}
        updates: list[ClientUpdate] = []
        for u in sorted(rows, key=lambda r: order.get(r.site, len(order))):
            body = self.store.unseal(u.blob, f"update/{row.id}/{rr.round_no}/{rr.stage}/{u.site}")
            arrays, _ = parse_tensors(body)
            updates.append(ClientUpdate(u.site, check_update(arrays, params), u.num_examples))
        responded = [u.site for u in updates]
        aggregate = None
        if len(updates) >= rr.quorum:
            aggregate = PlainAggregator().aggregate(rr.round_no, updates, params)
        self._finish_round(s, row, rr, rt, params, aggregate, responded, now, {})
        return True

    def _close_recruiting(self, s: Session, row: StudyRow, now: float) -> bool:
        parts = s.scalars(select(ParticipationRow).where(ParticipationRow.study_id == row.id)).all()
        prep = json.loads(row.prep_json)
        pending = [p for p in parts if p.status == "invited"]
        if pending and now <= float(prep["join_deadline"]):
            return False
        for p in pending:
            p.status = "timed-out"
            p.updated_at = now
        accepted = sorted((p for p in parts if p.status == "accepted"), key=lambda q: q.site)
        config = parse_study(json.loads(row.config_json))
        need = config.training.min_quorum
        if config.secure_aggregation.protocol != "none":
            need = max(need, 3)
        if len(accepted) < need:
            refusals = "; ".join(f"{p.site}: {p.reason}" for p in parts if p.status == "refused")
            row.status = StudyStatus.FAILED
            row.error = f"quorum not met: {len(accepted)} site(s) accepted, {need} required" + (
                f" (refused: {refusals})" if refusals else ""
            )
            row.updated_at = now
            self.audit(
                COORDINATOR,
                "study.fail",
                f"study/{row.id}",
                "failed",
                {"error": row.error},
                session=s,
            )
            return True
        moments = []
        for p in accepted:
            m = json.loads(p.join_json)
            moments.append(
                FeatureMoments(
                    int(m["count"]),
                    np.asarray(m["total"], np.float64),
                    np.asarray(m["total_sq"], np.float64),
                )
            )
        mean, std = global_standardisation(moments)
        prep.update({"mean": mean.tolist(), "std": std.tolist()})
        row.prep_json = _dumps(prep)
        row.status = StudyStatus.RUNNING
        row.updated_at = now
        self.audit(
            COORDINATOR,
            "study.running",
            f"study/{row.id}",
            detail={"sites": [p.site for p in accepted]},
            session=s,
        )
        return True

    def _open_round(self, s: Session, row: StudyRow, now: float) -> None:
        rt = self._runtime(row)
        params = self._global_model(row)
        sites = sorted(
            s.scalars(
                select(ParticipationRow.site).where(
                    ParticipationRow.study_id == row.id, ParticipationRow.status == "accepted"
                )
            )
        )
        instructions = rt.strategy.configure_fit(row.current_round, params, sites, rt.rng)
        chosen = [site for site, _ in instructions]
        fit_config = dict(instructions[0][1].config) if instructions else {}
        settings = DeploymentSettings.from_dict(json.loads(row.settings_json))
        config = parse_study(json.loads(row.config_json))
        rr = RoundRow(
            study_id=row.id,
            round_no=row.current_round,
            attempt=1,
            stage=FIT_STAGE,
            status="open",
            participants_json=_dumps(chosen),
            survivors_json="[]",
            quorum=config.training.min_quorum,
            fit_config_json=_dumps(fit_config),
            opened_at=now,
            stage_deadline=now + settings.stage_timeout_s,
            outcome_json="{}",
        )
        s.add(rr)
        row.strategy_state = self.store.seal(
            _strategy_state(rt.strategy, rt.rng), f"strategy/{row.id}"
        )
        row.updated_at = now
        self.audit(
            COORDINATOR,
            "round.open",
            f"study/{row.id}/round/{row.current_round}",
            detail={"sites": chosen},
            session=s,
        )
        if config.secure_aggregation.protocol != "none":
            s.flush()
            self._start_secagg(s, row, rr, params, settings, now)

    # SecAgg+ ----------------------------------------------------------------------------

    def _start_secagg(
        self,
        s: Session,
        row: StudyRow,
        rr: RoundRow,
        params: Parameters,
        settings: DeploymentSettings,
        now: float,
    ) -> None:
        from tutela.secagg import SecAggConfig, SecAggServer

        config = parse_study(json.loads(row.config_json))
        participants: list[str] = json.loads(rr.participants_json)
        parts = {
            p.site: p
            for p in s.scalars(select(ParticipationRow).where(ParticipationRow.study_id == row.id))
        }
        ids = {site: i for i, site in enumerate(sorted(participants))}
        registry = {
            ids[site]: bytes.fromhex(json.loads(parts[site].join_json)["identity"]) for site in ids
        }
        biggest = max((parts[site].num_examples for site in ids), default=1)
        sa = config.secure_aggregation
        spec = ParameterSpec.of(params)
        try:
            plan = SecAggConfig(
                neighbors=sa.neighbors,
                threshold=sa.threshold,
                modulus_bits=sa.modulus_bits,
                clip=sa.clip_range,
                stage_timeout_s=settings.stage_timeout_s,
            ).plan(
                tuple(ids.values()),
                spec.size,
                max_weight=float(2 ** math.ceil(math.log2(max(biggest, 1)))),
                round_id=secrets.token_bytes(32),
            )
        except ValueError as exc:
            self._finish_round(
                s, row, rr, self._runtime(row), params, None, [], now, {"error": str(exc)}
            )
            return
        server = SecAggServer(plan, registry, clock=self.clock)
        outbox = server.start()
        self._secagg[row.id] = _SecAggRound(server, rr.round_no, rr.attempt, ids, spec)
        rr.stage = server.stage.value if server.stage is not None else "aborted"
        rr.stage_deadline = server.deadline
        rr.protocol_state = _dumps(
            {"client_ids": ids, "registry": {str(i): registry[i].hex() for i in registry}}
        ).encode()
        self._post_outbox(s, row.id, rr, outbox)

    def _post_outbox(self, s: Session, study_id: str, rr: RoundRow, outbox: dict[int, Any]) -> None:
        from tutela.secagg import encode_message

        state = self._secagg[study_id]
        by_id = {cid: site for site, cid in state.ids.items()}
        for cid, message in outbox.items():
            site = by_id[cid]
            body = encode_message(message)
            s.add(
                RelayRow(
                    study_id=study_id,
                    round_no=rr.round_no,
                    attempt=rr.attempt,
                    stage=rr.stage,
                    sender=COORDINATOR,
                    recipient=site,
                    idempotency_key=f"{rr.round_no}-{rr.attempt}-{rr.stage}-{site}",
                    digest=digest(body),
                    blob=self.store.seal(
                        body, f"relay/{study_id}/{rr.round_no}/{rr.stage}/{COORDINATOR}/{site}"
                    ),
                    created_at=self.clock(),
                )
            )

    def _advance_secagg(self, s: Session, row: StudyRow, rr: RoundRow, now: float) -> bool:
        from tutela.errors import ProtocolAbort, QuorumNotMet

        state = self._secagg.get(row.id)
        if state is None or state.round_no != rr.round_no or state.attempt != rr.attempt:
            # The SecAgg+ server's secrets live only in memory (by design): after a restart
            # the round starts again as a new attempt with the same sites and settings.
            rr.status = "restarted"
            rr.closed_at = now
            rr.outcome_json = _dumps(
                {"outcome": "restarted", "reason": "coordinator restarted mid-protocol"}
            )
            retry = RoundRow(
                study_id=row.id,
                round_no=rr.round_no,
                attempt=rr.attempt + 1,
                stage=FIT_STAGE,
                status="open",
                participants_json=rr.participants_json,
                survivors_json="[]",
                quorum=rr.quorum,
                fit_config_json=rr.fit_config_json,
                opened_at=now,
                stage_deadline=now,
                outcome_json="{}",
            )
            s.add(retry)
            s.flush()
            settings = DeploymentSettings.from_dict(json.loads(row.settings_json))
            self.audit(
                COORDINATOR, "round.restart", f"study/{row.id}/round/{rr.round_no}", session=s
            )
            self._start_secagg(s, row, retry, self._global_model(row), settings, now)
            return True
        server = state.server
        try:
            outbox = server.step()
        except (QuorumNotMet, ProtocolAbort) as exc:
            self._secagg.pop(row.id, None)
            dropped = server.dropped()
            self._finish_round(
                s,
                row,
                rr,
                self._runtime(row),
                self._global_model(row),
                None,
                [],
                now,
                {
                    "error": str(exc),
                    "secure_aggregation": self._secagg_report(state, dropped, None),
                },
            )
            return True
        if outbox is None:
            return False
        if outbox:
            rr.stage = server.stage.value if server.stage is not None else "aborted"
            rr.stage_deadline = server.deadline
            self._post_outbox(s, row.id, rr, outbox)
            return True
        result = server.result()
        self._secagg.pop(row.id, None)
        params = self._global_model(row)
        weight = float(result.weight_total)
        if weight <= 0:
            aggregate = None
        else:
            mean = state.spec.unflatten(np.asarray(result.total, np.float64) / weight)
            by_id = {cid: site for site, cid in state.ids.items()}
            survivors = [by_id[c] for c in result.survivors]
            aggregate = FitAggregate(mean, round(weight), len(survivors), None)
        survivors_names = [
            {cid: site for site, cid in state.ids.items()}[c] for c in result.survivors
        ]
        self._finish_round(
            s,
            row,
            rr,
            self._runtime(row),
            params,
            aggregate if aggregate is not None and len(survivors_names) >= rr.quorum else None,
            survivors_names,
            now,
            {
                "secure_aggregation": self._secagg_report(
                    state, dict(result.dropped), len(result.survivors)
                )
            },
        )
        return True

    @staticmethod
    def _secagg_report(
        state: _SecAggRound, dropped: dict[str, tuple[int, ...]], survivors: int | None
    ) -> dict[str, Any]:
        p = state.server.params
        by_id = {cid: site for site, cid in state.ids.items()}
        return {
            "protocol": "secagg+",
            "n": p.n,
            "k": p.neighbors,
            "threshold": p.threshold,
            "min_survivors": p.min_survivors,
            "modulus_bits": p.modulus_bits,
            "dropped": {stage: [by_id[c] for c in ids] for stage, ids in dropped.items()},
            "quantization_error_bound": p.quantization_error_bound(survivors)
            if survivors
            else None,
        }

    def _secagg_receive(
        self, study_id: str, round_no: int, attempt: int, stage: str, site: str, body: bytes
    ) -> None:
        from tutela.secagg import MalformedMessage, decode_message

        state = self._secagg.get(study_id)
        if state is None or state.round_no != round_no or state.attempt != attempt:
            raise ConflictError(
                f"no secure-aggregation round {round_no} is running for study {study_id}"
            )
        arrays, _ = parse_tensors(body)
        raw = arrays.get("message")
        if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
            raise DataError(
                "a secure-aggregation submission carries one uint8 tensor named 'message'"
            )
        try:
            message = decode_message(raw.tobytes())
        except MalformedMessage as exc:
            raise DataError(f"malformed secure-aggregation message: {exc}") from None
        if state.server.stage is None or state.server.stage.value != stage:
            raise ConflictError(f"the secure-aggregation round is not in stage {stage!r}")
        if not state.server.receive(state.ids[site], message):
            raise ConflictError(
                f"secure aggregation rejected the message: {state.server.rejected[-1][1]}"
            )

    # closing ----------------------------------------------------------------------------

    def _finish_round(
        self,
        s: Session,
        row: StudyRow,
        rr: RoundRow,
        rt: _Runtime,
        params: Parameters,
        aggregate: FitAggregate | None,
        responded: list[str],
        now: float,
        extra: dict[str, Any],
    ) -> None:
        participants: list[str] = json.loads(rr.participants_json)
        failed = [p for p in participants if p not in responded]
        if aggregate is None:
            status, new, num_examples = "quorum-not-met", params, 0
        else:
            new = rt.strategy.aggregate_fit(rr.round_no, params, aggregate)
            check_compatible(new, params)
            status, num_examples = "aggregated", aggregate.num_examples
        version = row.model_version + 1
        rr.status = status
        rr.closed_at = now
        rr.outcome_json = _dumps(
            {
                "sites": responded,
                "failed": failed,
                "num_examples": num_examples,
                "outcome": status,
                **extra,
            }
        )
        rr.model_blob = self.store.seal(
            st_save({k: np.ascontiguousarray(v, np.float32) for k, v in new.items()}),
            f"round-model/{row.id}/{rr.round_no}",
        )
        row.model_blob = self._seal_model(row.id, new, version)
        row.model_version = version
        row.current_round = rr.round_no + 1
        row.strategy_state = self.store.seal(
            _strategy_state(rt.strategy, rt.rng), f"strategy/{row.id}"
        )
        row.updated_at = now
        # Individual updates are no longer needed once aggregated: keep only the receipts.
        s.execute(
            update(UpdateRow)
            .where(UpdateRow.study_id == row.id, UpdateRow.round_no == rr.round_no)
            .values(blob=b"")
        )
        s.execute(
            delete(RelayRow).where(RelayRow.study_id == row.id, RelayRow.round_no == rr.round_no)
        )
        self.audit(
            COORDINATOR,
            "round.close",
            f"study/{row.id}/round/{rr.round_no}",
            "ok" if status == "aggregated" else status,
            {
                "sites": responded,
                "failed": failed,
                **({"error": extra["error"]} if "error" in extra else {}),
            },
            session=s,
        )


ANON = "anonymous"


def _positive_int(value: str | None, name: str) -> int:
    try:
        number = int(value) if value is not None else 0
    except ValueError:
        number = 0
    if number <= 0:
        raise DataError(f"the body's metadata must carry a positive integer {name}")
    return number
