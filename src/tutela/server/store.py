"""The coordinator's persistent state: SQLAlchemy 2 models over SQLite or PostgreSQL.

Schema changes go through Alembic migrations (``tutela/server/migrations``) that run when
the store opens. Every sensitive blob (global models, site updates, relayed protocol
messages) is sealed by a :class:`~tutela.server.sealing.BlobSealer` before it is written;
the database only ever holds ciphertext for them.

Round state changes are single transactions: an accepted update is committed together
with its idempotency key (a retry with the same key is answered from the stored row, never
counted twice), and closing a round writes the new global model, the round's outcome and
the study's next round number atomically.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from tutela.errors import ConfigError
from tutela.server.sealing import BlobSealer

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class Base(DeclarativeBase):
    """Declarative base of the coordinator schema."""


class StudyRow(Base):
    """A study: its resolved config, status and the sealed current global model."""

    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    config_json: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    current_round: Mapped[int] = mapped_column(sa.Integer, default=1)
    total_rounds: Mapped[int] = mapped_column(sa.Integer)
    attempt: Mapped[int] = mapped_column(sa.Integer, default=1)
    model_version: Mapped[int] = mapped_column(sa.Integer, default=0)
    model_blob: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    strategy_state: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    settings_json: Mapped[str] = mapped_column(sa.Text, default="{}")
    prep_json: Mapped[str] = mapped_column(sa.Text, default="{}")
    privacy_json: Mapped[str] = mapped_column(sa.Text, default="[]")
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[float] = mapped_column(sa.Float)
    updated_at: Mapped[float] = mapped_column(sa.Float)


class RoundRow(Base):
    """One attempt of one round of a study (a failed attempt is retried as attempt + 1)."""

    __tablename__ = "rounds"
    __table_args__ = (sa.UniqueConstraint("study_id", "round_no", "attempt"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(sa.ForeignKey("studies.id"), index=True)
    round_no: Mapped[int] = mapped_column(sa.Integer)
    attempt: Mapped[int] = mapped_column(sa.Integer)
    stage: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16))
    participants_json: Mapped[str] = mapped_column(sa.Text)
    survivors_json: Mapped[str] = mapped_column(sa.Text, default="[]")
    quorum: Mapped[int] = mapped_column(sa.Integer)
    fit_config_json: Mapped[str] = mapped_column(sa.Text, default="{}")
    protocol_state: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    opened_at: Mapped[float] = mapped_column(sa.Float)
    stage_deadline: Mapped[float] = mapped_column(sa.Float)
    closed_at: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    outcome_json: Mapped[str] = mapped_column(sa.Text, default="{}")
    model_blob: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)


class SiteRow(Base):
    """A site known to the coordinator; its identity is its certificate's common name."""

    __tablename__ = "sites"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    cert_fingerprint: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(sa.Float)
    enrolled_at: Mapped[float | None] = mapped_column(sa.Float, nullable=True)


class TokenRow(Base):
    """A bearer token (admin API) or one-time enrolment token, stored as a SHA-256 hash."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    role: Mapped[str] = mapped_column(sa.String(32))
    subject: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[float] = mapped_column(sa.Float)
    expires_at: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    used_at: Mapped[float | None] = mapped_column(sa.Float, nullable=True)


class ParticipationRow(Base):
    """A site's answer to a study after checking it against its local policy."""

    __tablename__ = "participation"

    study_id: Mapped[str] = mapped_column(sa.ForeignKey("studies.id"), primary_key=True)
    site: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    num_examples: Mapped[int] = mapped_column(sa.Integer, default=0)
    join_json: Mapped[str] = mapped_column(sa.Text, default="{}")
    updated_at: Mapped[float] = mapped_column(sa.Float)

    def identity_key(self) -> bytes | None:
        """The raw Ed25519 identity key the site registered when it joined (None if none)."""
        identity = json.loads(self.join_json or "{}").get("identity")
        if not isinstance(identity, str) or len(identity) != 64:
            return None
        try:
            return bytes.fromhex(identity)
        except ValueError:
            return None


class UpdateRow(Base):
    """An accepted site submission for one round stage (sealed)."""

    __tablename__ = "updates"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "round_no", "attempt", "stage", "site"),
        sa.UniqueConstraint("study_id", "site", "idempotency_key"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(sa.ForeignKey("studies.id"), index=True)
    round_no: Mapped[int] = mapped_column(sa.Integer)
    attempt: Mapped[int] = mapped_column(sa.Integer)
    stage: Mapped[str] = mapped_column(sa.String(32))
    site: Mapped[str] = mapped_column(sa.String(64))
    idempotency_key: Mapped[str] = mapped_column(sa.String(128))
    digest: Mapped[str] = mapped_column(sa.String(64))
    num_examples: Mapped[int] = mapped_column(sa.Integer, default=0)
    blob: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[float] = mapped_column(sa.Float)


class RelayRow(Base):
    """An opaque, addressed message between two sites for one protocol stage (sealed)."""

    __tablename__ = "relay"
    __table_args__ = (sa.UniqueConstraint("study_id", "sender", "idempotency_key"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(sa.ForeignKey("studies.id"), index=True)
    round_no: Mapped[int] = mapped_column(sa.Integer)
    attempt: Mapped[int] = mapped_column(sa.Integer)
    stage: Mapped[str] = mapped_column(sa.String(32))
    sender: Mapped[str] = mapped_column(sa.String(64))
    recipient: Mapped[str] = mapped_column(sa.String(64), index=True)
    idempotency_key: Mapped[str] = mapped_column(sa.String(128))
    digest: Mapped[str] = mapped_column(sa.String(64))
    blob: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[float] = mapped_column(sa.Float)


class MetricRow(Base):
    """Metrics a site reported for a round (non-sensitive aggregates only)."""

    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(sa.ForeignKey("studies.id"), index=True)
    round_no: Mapped[int] = mapped_column(sa.Integer)
    site: Mapped[str] = mapped_column(sa.String(64))
    metrics_json: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[float] = mapped_column(sa.Float)


class SiteReportRow(Base):
    """A site's signed report (the policy it enforced, its own ledger summary), verbatim.

    Stored as the JSON text the site sent, once per distinct content: a site sends a new
    report after joining and after each round, and a resend of the same one is kept once.
    """

    __tablename__ = "site_reports"
    __table_args__ = (sa.UniqueConstraint("study_id", "site", "digest"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(sa.ForeignKey("studies.id"), index=True)
    site: Mapped[str] = mapped_column(sa.String(64))
    digest: Mapped[str] = mapped_column(sa.String(64))
    report_json: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[float] = mapped_column(sa.Float)


class AuditRow(Base):
    """One audit event (who, what, on which resource, outcome, when)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(sa.Float)
    actor: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    resource: Mapped[str] = mapped_column(sa.String(300))
    outcome: Mapped[str] = mapped_column(sa.String(16))
    detail_json: Mapped[str] = mapped_column(sa.Text, default="{}")


def digest(data: bytes) -> str:
    """SHA-256 of a payload, hex (used to tell a retry from a conflicting resubmission)."""
    return hashlib.sha256(data).hexdigest()


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Bounded page cache per connection (1 MiB): memory must not follow the database size.
    cursor.execute("PRAGMA cache_size=-1024")
    cursor.close()


POOL_SIZE_ENV = "TUTELA_DB_POOL_SIZE"
POOL_OVERFLOW_ENV = "TUTELA_DB_MAX_OVERFLOW"


@dataclass(frozen=True)
class PoolSettings:
    """How many database connections the coordinator keeps and opens at most.

    The default matches the request worker threads (40 at most touch the store at once):
    ``size`` connections are kept open once used, up to ``size + overflow`` are opened under
    load (an overflow connection is closed when returned, so a pool kept too small opens a
    new PostgreSQL backend for most requests under load). On
    PostgreSQL the total over every coordinator process must stay below the server's
    ``max_connections``.

    Attributes:
        size: connections kept in the pool.
        overflow: further connections opened under load (closed when returned).
    """

    size: int = 24
    overflow: int = 16

    def __post_init__(self) -> None:
        if self.size < 1 or self.overflow < 0:
            raise ConfigError("the connection pool needs size >= 1 and overflow >= 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PoolSettings:
        """The settings from ``TUTELA_DB_POOL_SIZE`` and ``TUTELA_DB_MAX_OVERFLOW``
        (each defaulting as above)."""
        env = os.environ if environ is None else environ
        try:
            size = int(env.get(POOL_SIZE_ENV, cls.size))
            overflow = int(env.get(POOL_OVERFLOW_ENV, cls.overflow))
        except ValueError:
            raise ConfigError(f"{POOL_SIZE_ENV} and {POOL_OVERFLOW_ENV} must be integers") from None
        return cls(size, overflow)


def create_db_engine(
    url: str, *, immediate: bool = True, pool: PoolSettings | None = None
) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    For SQLite, ``immediate`` makes every transaction ``BEGIN IMMEDIATE`` (it takes the
    write lock up front, so a read-then-write transaction never fails on a stale snapshot);
    read-only work uses a second engine with plain ``BEGIN``. ``pool`` sizes the
    connection pool (default: :meth:`PoolSettings.from_env`).
    """
    pool = pool or PoolSettings.from_env()
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=pool.size,
            max_overflow=pool.overflow,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql(begin)

        event.listen(engine, "begin", _begin)
        return engine
    return sa.create_engine(
        url, pool_pre_ping=True, pool_size=pool.size, max_overflow=pool.overflow
    )


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class Store:
    """Sessions, sealing and migrations for the coordinator database.

    Args:
        url: SQLAlchemy URL; SQLite by default, PostgreSQL by ``postgresql+psycopg://``.
        sealer: encryption at rest for blobs.
        pool: connection pool sizes (default: from the environment, see
            :meth:`PoolSettings.from_env`).
    """

    def __init__(self, url: str, sealer: BlobSealer, *, pool: PoolSettings | None = None) -> None:
        self.url = url
        self.pool = pool or PoolSettings.from_env()
        self.engine = create_db_engine(url, pool=self.pool)
        migrate(self.engine)
        self.is_sqlite = url.startswith("sqlite")
        self.read_engine = (
            create_db_engine(url, immediate=False, pool=self.pool)
            if self.is_sqlite
            else self.engine
        )
        self.sealer = sealer
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def write_sessions(self) -> sessionmaker[Session]:
        """The factory of write sessions (for listeners of committed changes)."""
        return self._sessions

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (never blocks writers on SQLite in WAL mode)."""
        with self._readers() as session, session.begin():
            yield session

    def seal(self, data: bytes, name: str) -> bytes:
        """Encrypt a blob bound to ``name``."""
        return self.sealer.seal(data, name=name)

    def unseal(self, blob: bytes, name: str) -> bytes:
        """Decrypt a blob bound to ``name`` (``IntegrityError`` if it was moved or edited)."""
        return self.sealer.open(blob, name=name)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
        self.read_engine.dispose()


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def epoch(when: dt.datetime) -> float:
    """Seconds since the epoch of an aware datetime."""
    return when.timestamp()
