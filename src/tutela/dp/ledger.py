"""The privacy budget ledger: a persistent filter that refuses any spend past the budget.

Each *scope* (a dataset, or ``"site:<id>"`` in federated learning) has a budget
(epsilon, delta) and an accountant. :meth:`PrivacyLedger.charge` composes every event
already spent in the scope with the new one, and records the spend only if the composed
epsilon at the budget's delta stays within the budget; otherwise it raises
:class:`~tutela.errors.BudgetExceeded` and writes nothing. Spends are rows in SQLite
(stdlib ``sqlite3``), written in an immediate transaction, so concurrent processes that
race for the last of a budget are serialised and at most the affordable ones succeed.

Privacy: the ledger enforces a privacy *filter* for adaptively chosen but
non-adaptively-parameterised events: the check uses the same accountant as the report, and
the epsilon stored with each record is the composed epsilon of the scope after that spend.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tutela.dp.accounting import AccountantKind, make_accountant
from tutela.dp.events import Event, event_from_json, event_to_json
from tutela.errors import BudgetExceeded, PrivacyError

__all__ = ["Budget", "LedgerError", "PrivacyLedger", "SpendRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scopes (
    name TEXT PRIMARY KEY,
    epsilon REAL NOT NULL,
    delta REAL NOT NULL,
    accountant TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS spends (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL REFERENCES scopes(name),
    event TEXT NOT NULL,
    epsilon_after REAL NOT NULL,
    delta REAL NOT NULL,
    label TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (scope, idempotency_key)
);
"""
_SLACK = 1e-9  # relative float slack when comparing a composed epsilon with the budget


class LedgerError(PrivacyError):
    """The ledger was used inconsistently (unknown scope, budget mismatch, key reuse)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """A scope's total budget and the accountant that checks it."""

    scope: str
    epsilon: float
    delta: float
    accountant: AccountantKind


@dataclass(frozen=True, slots=True)
class SpendRecord:
    """One recorded spend (what the audit log stores)."""

    id: str
    scope: str
    event: Event
    epsilon_after: float
    delta: float
    label: str
    idempotency_key: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the event as its canonical JSON object)."""
        return {
            "id": self.id,
            "scope": self.scope,
            "event": json.loads(event_to_json(self.event)),
            "epsilon_after": self.epsilon_after,
            "delta": self.delta,
            "label": self.label,
            "idempotency_key": self.idempotency_key,
            "created_at": self.created_at.isoformat(),
        }


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _check_budget(epsilon: float, delta: float) -> None:
    if not (isinstance(epsilon, int | float) and 0 < epsilon < float("inf")):
        raise ValueError(f"budget epsilon must be positive and finite, got {epsilon!r}")
    if not (isinstance(delta, int | float) and 0 < delta < 1):
        raise ValueError(f"budget delta must be in (0, 1), got {delta!r}")


class PrivacyLedger:
    """Persistent per-scope privacy budgets and spends in one SQLite file.

    Args:
        path: database file (created if missing); reopening it restores every scope and
            spend.
        clock: returns the current time for records (UTC ``datetime``); injectable.
        value_discretization_interval: PLD grid for the PLD accountant.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], datetime] = _utcnow,
        value_discretization_interval: float = 1e-4,
    ) -> None:
        self._path = Path(path)
        self._clock = clock
        self._vdi = value_discretization_interval
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self._path, timeout=60.0, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- scopes ---------------------------------------------------------------------------

    def create_scope(
        self,
        scope: str,
        epsilon: float,
        delta: float,
        *,
        accountant: AccountantKind = AccountantKind.PLD,
        exist_ok: bool = False,
    ) -> Budget:
        """Create ``scope`` with budget (epsilon, delta).

        With ``exist_ok`` an existing scope is returned if its budget and accountant are
        the same; a different one raises :class:`LedgerError` (a budget is never changed
        implicitly).
        """
        if not isinstance(scope, str) or not scope:
            raise ValueError("scope must be a non-empty string")
        _check_budget(epsilon, delta)
        kind = AccountantKind(accountant)
        wanted = Budget(scope, float(epsilon), float(delta), kind)
        with self._transaction() as conn:
            existing = self._budget(conn, scope)
            if existing is not None:
                if not exist_ok:
                    raise LedgerError(f"scope {scope!r} already exists")
                if existing != wanted:
                    raise LedgerError(
                        f"scope {scope!r} has budget epsilon={existing.epsilon}, "
                        f"delta={existing.delta} ({existing.accountant.value}); "
                        f"got epsilon={wanted.epsilon}, delta={wanted.delta} ({kind.value})"
                    )
                return existing
            conn.execute(
                "INSERT INTO scopes VALUES (?, ?, ?, ?, ?)",
                (scope, float(epsilon), float(delta), kind.value, self._clock().isoformat()),
            )
        return wanted

    @staticmethod
    def _budget(conn: sqlite3.Connection, scope: str) -> Budget | None:
        row = conn.execute(
            "SELECT epsilon, delta, accountant FROM scopes WHERE name = ?", (scope,)
        ).fetchone()
        if row is None:
            return None
        return Budget(scope, float(row[0]), float(row[1]), AccountantKind(row[2]))

    def budget(self, scope: str) -> Budget:
        """The budget of ``scope``; :class:`LedgerError` if it does not exist."""
        with self._connect() as conn:
            found = self._budget(conn, scope)
        if found is None:
            raise LedgerError(f"unknown privacy scope {scope!r}")
        return found

    def scopes(self) -> tuple[Budget, ...]:
        """Every scope, by name."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT name, epsilon, delta, accountant FROM scopes ORDER BY name"
            ).fetchall()
        return tuple(Budget(r[0], float(r[1]), float(r[2]), AccountantKind(r[3])) for r in rows)

    # -- spending -------------------------------------------------------------------------

    def _epsilon_with(self, budget: Budget, events: list[Event], extra: Event | None) -> float:
        acc = make_accountant(budget.accountant, value_discretization_interval=self._vdi)
        if extra is not None:
            acc.check(extra)  # refuse an unaccountable event before composing anything
        for e in events:
            acc.compose(e)
        if extra is not None:
            acc.compose(extra)
        return acc.get_epsilon(budget.delta)

    @staticmethod
    def _events(conn: sqlite3.Connection, scope: str) -> list[Event]:
        rows = conn.execute(
            "SELECT event FROM spends WHERE scope = ? ORDER BY seq", (scope,)
        ).fetchall()
        return [event_from_json(r[0]) for r in rows]

    def preview(self, scope: str, event: Event) -> float:
        """Composed epsilon of ``scope`` if ``event`` were charged now (nothing is written).

        Raises:
            LedgerError: unknown scope.
            AccountingError: the scope's accountant cannot account for ``event``.
        """
        with self._connect() as conn:
            budget = self._budget(conn, scope)
            if budget is None:
                raise LedgerError(f"unknown privacy scope {scope!r}")
            events = self._events(conn, scope)
        return self._epsilon_with(budget, events, event)

    def charge(
        self,
        scope: str,
        event: Event,
        *,
        label: str,
        idempotency_key: str | None = None,
    ) -> SpendRecord:
        """Spend ``event`` from ``scope`` if the budget allows it; return the record.

        Args:
            scope: an existing scope.
            event: what is about to run.
            label: human-readable purpose (goes to the audit log).
            idempotency_key: a retry with the same key returns the first record and spends
                nothing more; a fresh random key if ``None``.

        Raises:
            BudgetExceeded: the composed epsilon would pass the budget; nothing was written.
            AccountingError: the scope's accountant cannot account for ``event``; nothing
                was written.
            LedgerError: unknown scope, or ``idempotency_key`` reused for a different event.

        Privacy: call before releasing the result the event describes; after this returns,
        the scope's composed epsilon at its delta is at most its budget epsilon.
        """
        if not isinstance(label, str):
            raise TypeError("label must be a string")
        key = idempotency_key if idempotency_key is not None else uuid.uuid4().hex
        if not isinstance(key, str) or not key:
            raise ValueError("idempotency_key must be a non-empty string")
        event_json = event_to_json(event)
        with self._transaction() as conn:
            budget = self._budget(conn, scope)
            if budget is None:
                raise LedgerError(f"unknown privacy scope {scope!r}")
            row = conn.execute(
                "SELECT id, event, epsilon_after, delta, label, created_at FROM spends "
                "WHERE scope = ? AND idempotency_key = ?",
                (scope, key),
            ).fetchone()
            if row is not None:
                if row[1] != event_json:
                    raise LedgerError(
                        f"idempotency key {key!r} was already used for a different event"
                    )
                return SpendRecord(
                    row[0], scope, event, float(row[2]), float(row[3]), row[4], key,
                    datetime.fromisoformat(row[5]),
                )  # fmt: skip
            epsilon = self._epsilon_with(budget, self._events(conn, scope), event)
            if epsilon > budget.epsilon * (1 + _SLACK):
                raise BudgetExceeded(
                    f"privacy budget of {scope!r} exceeded: this spend would bring epsilon to "
                    f"{epsilon:.4g} (delta={budget.delta:g}) but the budget is "
                    f"{budget.epsilon:g}; nothing was spent"
                )
            record = SpendRecord(
                uuid.uuid4().hex, scope, event, epsilon, budget.delta, label, key, self._clock()
            )
            conn.execute(
                "INSERT INTO spends (id, scope, event, epsilon_after, delta, label, "
                "idempotency_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id, scope, event_json, epsilon, budget.delta, label, key,
                    record.created_at.isoformat(),
                ),
            )  # fmt: skip
        return record

    def spent(self, scope: str) -> float:
        """Composed epsilon of everything charged to ``scope`` (at the budget's delta)."""
        with self._connect() as conn:
            budget = self._budget(conn, scope)
            if budget is None:
                raise LedgerError(f"unknown privacy scope {scope!r}")
            events = self._events(conn, scope)
        return self._epsilon_with(budget, events, None) if events else 0.0

    def remaining(self, scope: str) -> float:
        """Budget epsilon minus :meth:`spent` (never negative)."""
        return max(0.0, self.budget(scope).epsilon - self.spent(scope))

    def records(self, scope: str | None = None) -> tuple[SpendRecord, ...]:
        """Spends in the order they were made, for one scope or all."""
        query = (
            "SELECT id, scope, event, epsilon_after, delta, label, idempotency_key, created_at "
            "FROM spends"
        )
        args: tuple[str, ...] = ()
        if scope is not None:
            query += " WHERE scope = ?"
            args = (scope,)
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY seq", args).fetchall()
        return tuple(
            SpendRecord(
                r[0],
                r[1],
                event_from_json(r[2]),
                float(r[3]),
                float(r[4]),
                r[5],
                r[6],
                datetime.fromisoformat(r[7]),
            )
            for r in rows
        )
