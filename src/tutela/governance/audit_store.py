"""Where an audit log's records and tree state live: SQLite (the default; the tree state is
stored with the records, so a truncated tail is detected without a checkpoint) or JSON lines
(one record a line; tail truncation is detected only against a checkpoint).

The record format, hashing and verification are :mod:`tutela.governance.audit`'s; a backend
only stores rows, the compact Merkle range and the signed checkpoints.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from tutela.errors import AuditError
from tutela.governance._files import atomic_write
from tutela.governance.checkpoint import Checkpoint
from tutela.governance.merkle import CompactRange

LOG_FORMAT = "tutela-audit"
LOG_VERSION = 1


def _canonical(obj: object) -> str:
    """Canonical JSON text: sorted keys, no spaces, non-ASCII kept, no NaN."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


class _Row(NamedTuple):
    idx: int
    timestamp: str
    actor: str
    action: str
    resource: str | None
    outcome: str
    details_text: str
    leaf: bytes | None  # stored leaf hash (None when unreadable)


class _Store:
    origin: str

    def state(self) -> tuple[int, CompactRange] | None:
        raise NotImplementedError

    def write(self, rows: Sequence[_Row], state: CompactRange) -> None:
        raise NotImplementedError

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[_Row]:
        raise NotImplementedError

    def leaves(self, stop: int) -> list[bytes]:
        raise NotImplementedError

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        raise NotImplementedError

    def checkpoints(self) -> list[Checkpoint]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _SqliteStore(_Store):
    def __init__(self, path: Path) -> None:
        existed = path.exists() and path.stat().st_size > 0
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn = self._conn
        if existed:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if not {"meta", "records", "checkpoints"} <= tables:
                conn.close()
                raise AuditError(f"{path} is not a Tutela audit log")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS records (idx INTEGER PRIMARY KEY, ts TEXT NOT NULL,"
                " actor TEXT NOT NULL, action TEXT NOT NULL, resource TEXT, outcome TEXT NOT NULL,"
                " details TEXT NOT NULL, leaf BLOB NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER NOT NULL, body TEXT NOT NULL)"
            )
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if not meta:
                origin = uuid.uuid4().hex
                conn.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("format", LOG_FORMAT),
                        ("version", str(LOG_VERSION)),
                        ("origin", origin),
                        ("size", "0"),
                        ("frontier", b""),
                    ],
                )
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise
        if meta.get("format") != LOG_FORMAT or meta.get("version") != str(LOG_VERSION):
            conn.close()
            raise AuditError(f"{path} is not a version-{LOG_VERSION} Tutela audit log")
        self.origin = str(meta["origin"])

    def state(self) -> tuple[int, CompactRange] | None:
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        try:
            size = int(meta["size"])
            return size, CompactRange.from_bytes(size, bytes(meta["frontier"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise AuditError("audit log state is corrupt") from exc

    def write(self, rows: Sequence[_Row], state: CompactRange) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            (stored,) = conn.execute("SELECT value FROM meta WHERE key = 'size'").fetchone()
            if rows and int(stored) != rows[0].idx:
                raise AuditError("the audit log was appended to by another writer; reopen it")
            conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'size'", (str(state.size),))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'frontier'", (state.to_bytes(),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[_Row]:
        query = "SELECT idx, ts, actor, action, resource, outcome, details, leaf FROM records"
        query += " WHERE idx >= ?" + (" AND idx < ?" if stop is not None else "") + " ORDER BY idx"
        params: tuple[int, ...] = (start,) if stop is None else (start, stop)
        for raw in self._conn.execute(query, params):
            yield _Row(*raw)

    def leaves(self, stop: int) -> list[bytes]:
        cur = self._conn.execute("SELECT leaf FROM records WHERE idx < ? ORDER BY idx", (stop,))
        return [bytes(r[0]) for r in cur]

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._conn.execute(
            "INSERT INTO checkpoints VALUES (?, ?)", (checkpoint.size, checkpoint.encode())
        )

    def checkpoints(self) -> list[Checkpoint]:
        cur = self._conn.execute("SELECT body FROM checkpoints ORDER BY size, rowid")
        return [Checkpoint.parse(str(r[0])) for r in cur]

    def close(self) -> None:
        self._conn.close()


class _JsonlStore(_Store):
    def __init__(self, path: Path) -> None:
        self._path = path
        self._cp_path = path.with_name(path.name + ".checkpoints")
        if not path.exists() or path.stat().st_size == 0:
            header = {"format": LOG_FORMAT, "version": LOG_VERSION, "origin": uuid.uuid4().hex}
            atomic_write(path, (json.dumps(header, sort_keys=True) + "\n").encode(), mode=0o644)
        with path.open("rb") as handle:
            first = handle.readline()
        try:
            header = json.loads(first)
            ok = header.get("format") == LOG_FORMAT and header.get("version") == LOG_VERSION
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            raise AuditError(f"{path} is not a version-{LOG_VERSION} Tutela audit log")
        self.origin = str(header["origin"])

    def state(self) -> tuple[int, CompactRange] | None:
        return None

    def write(self, rows: Sequence[_Row], state: CompactRange) -> None:
        lines = []
        for row in rows:
            obj = {
                "i": row.idx,
                "ts": row.timestamp,
                "actor": row.actor,
                "action": row.action,
                "resource": row.resource,
                "outcome": row.outcome,
                "details": json.loads(row.details_text),
                "leaf": row.leaf.hex() if row.leaf else None,
            }
            lines.append(json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n")
        with self._path.open("a", encoding="utf-8") as handle:
            handle.write("".join(lines))
            handle.flush()
            os.fsync(handle.fileno())

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[_Row]:
        with self._path.open("r", encoding="utf-8") as handle:
            handle.readline()
            position = 0
            for line in handle:
                row = self._parse(line, position)
                position += 1
                if row.idx < start:
                    continue
                if stop is not None and row.idx >= stop:
                    return
                yield row

    @staticmethod
    def _parse(line: str, position: int) -> _Row:
        try:
            obj = json.loads(line)
            leaf = bytes.fromhex(obj["leaf"])
            resource = obj["resource"]
            if resource is not None and not isinstance(resource, str):
                raise TypeError("resource")
            return _Row(
                int(obj["i"]),
                str(obj["ts"]),
                str(obj["actor"]),
                str(obj["action"]),
                resource,
                str(obj["outcome"]),
                _canonical(obj["details"]),
                leaf,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return _Row(position, "", "", "", None, "", "", None)

    def leaves(self, stop: int) -> list[bytes]:
        return [row.leaf or b"" for row in self.rows(0, stop)]

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._cp_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(checkpoint.encode(), ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def checkpoints(self) -> list[Checkpoint]:
        if not self._cp_path.exists():
            return []
        found = []
        for line in self._cp_path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                note = json.loads(line)
            except ValueError:
                raise AuditError(f"{self._cp_path}: a line is not a checkpoint") from None
            if not isinstance(note, str):
                raise AuditError(f"{self._cp_path}: a line is not a checkpoint")
            found.append(Checkpoint.parse(note))
        return sorted(found, key=lambda c: c.size)

    def close(self) -> None:
        return None
