"""Federated queries in the coordinator's store, so that a restart neither forgets a query
nor leaves its sites waiting.

A query's row holds what may outlive the process: the request, the invited sites, the
sites' public answers (acceptances with their declared categories and identity keys,
refusals with their reasons), the status, the answer once released and the error once
failed, and which accepting sites have not yet been told that a failed query is closed. The
SecAgg+ server's state (its secrets) is never stored: a query that was inviting or
aggregating when the coordinator stopped cannot resume its round, so a restarted
coordinator closes it (:data:`RESTART_ERROR`), tells every site that accepted it, and keeps
it readable by its analyst with the reason. Sites that already charged stay charged (their
ledgers are theirs); the analyst submits again.

Works on SQLite and PostgreSQL (migration 0004).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Mapped, Session, mapped_column

from tutela.server.store import Base

__all__ = ["RESTART_ERROR", "QueryRow", "StoredQuery", "load_queries", "save_query"]

RESTART_ERROR = (
    "the coordinator restarted while the query was running; it was closed (sites that "
    "charged it stay charged; submit it again)"
)


class QueryRow(Base):
    """One federated query (no secrets: the SecAgg+ state stays in memory)."""

    __tablename__ = "queries"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    request_json: Mapped[str] = mapped_column(sa.Text)
    sites_json: Mapped[str] = mapped_column(sa.Text)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(16))
    deadline: Mapped[float] = mapped_column(sa.Float)
    stage_timeout_s: Mapped[float] = mapped_column(sa.Float)
    answers_json: Mapped[str] = mapped_column(sa.Text)
    result_json: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    closing_json: Mapped[str] = mapped_column(sa.Text, default="[]")
    created_at: Mapped[float] = mapped_column(sa.Float)
    updated_at: Mapped[float] = mapped_column(sa.Float)


@dataclass(frozen=True)
class StoredQuery:
    """A query as the store keeps it."""

    id: str
    request: dict[str, Any]
    sites: tuple[str, ...]
    created_by: str
    status: str
    deadline: float
    stage_timeout_s: float
    answers: dict[str, dict[str, Any]]
    result: dict[str, Any] | None
    error: str | None
    closing: tuple[str, ...]


def save_query(s: Session, q: StoredQuery, now: float) -> None:
    """Insert or update ``q``'s row in session ``s``."""
    row = s.get(QueryRow, q.id)
    if row is None:
        row = QueryRow(id=q.id, created_at=now)
        s.add(row)
    row.request_json = json.dumps(q.request, sort_keys=True)
    row.sites_json = json.dumps(list(q.sites))
    row.created_by = q.created_by
    row.status = q.status
    row.deadline = q.deadline
    row.stage_timeout_s = q.stage_timeout_s
    row.answers_json = json.dumps(q.answers, sort_keys=True)
    row.result_json = None if q.result is None else json.dumps(q.result, sort_keys=True)
    row.error = q.error
    row.closing_json = json.dumps(sorted(q.closing))
    row.updated_at = now


def load_queries(s: Session, *, limit: int) -> list[StoredQuery]:
    """The ``limit`` most recent queries, oldest first."""
    rows = s.scalars(
        select(QueryRow).order_by(QueryRow.created_at.desc(), QueryRow.id).limit(limit)
    ).all()
    return [
        StoredQuery(
            id=r.id,
            request=json.loads(r.request_json),
            sites=tuple(json.loads(r.sites_json)),
            created_by=r.created_by,
            status=r.status,
            deadline=r.deadline,
            stage_timeout_s=r.stage_timeout_s,
            answers=json.loads(r.answers_json),
            result=None if r.result_json is None else json.loads(r.result_json),
            error=r.error,
            closing=tuple(json.loads(r.closing_json)),
        )
        for r in reversed(rows)
    ]
