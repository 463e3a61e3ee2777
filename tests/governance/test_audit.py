"""Audit log: every tamper case is caught and named; checkpoints, proofs, both backends."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.errors import AuditError, AuditVerificationError, PermissionDenied
from tutela.governance.audit import (
    AuditLog,
    AuditRecord,
    Checkpoint,
    VerifierKey,
    generate_signing_key,
    load_signing_key,
    verify_log,
)
from tutela.governance.merkle import CompactRange, root_from_leaves
from tutela.governance.rbac import Permission, Principal, check

N = 64


def _clock() -> Callable[[], datetime]:
    start = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    ticks = iter(range(10**9))
    return lambda: start + timedelta(seconds=next(ticks))


def _fill(log: AuditLog, n: int = N) -> None:
    with log.batch():
        for i in range(n):
            log.append(f"user-{i % 5}", "study:read", f"study/s{i % 3}", "success", {"i": i})


def _doc_leaf(
    idx: int, ts: str, actor: str, action: str, res: str | None, out: str, det: str
) -> bytes:
    """The leaf encoding exactly as the module docstring specifies it."""
    row = [1, idx, ts, actor, action, res, out, det]
    text = json.dumps(row, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(b"\x00" + text.encode()).digest()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def sqlite_log(tmp_path: Path) -> Iterator[tuple[AuditLog, Path]]:
    path = tmp_path / "audit.sqlite"
    log = AuditLog.open(path, clock=_clock())
    _fill(log)
    yield log, path
    log.close()


def _db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None)


# basics -------------------------------------------------------------------------------------


def test_record_encoding_known_answer(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "a.sqlite", clock=_clock())
    log.append("alice", "keys:rotate", "keyring/main", "success", {"b": 1, "a": "é"})
    rec = next(log.records())
    assert rec == AuditRecord(
        0, "2026-11-29T03:00:00.000000Z", "alice", "keys:rotate", "keyring/main", "success",
        {"a": "é", "b": 1},
    )  # fmt: skip
    assert (
        rec.leaf()
        == (
            '[1,0,"2026-11-29T03:00:00.000000Z","alice","keys:rotate","keyring/main","success",'
            '"{\\"a\\":\\"é\\",\\"b\\":1}"]'
        ).encode()
    )
    assert rec.leaf_hash() == _doc_leaf(
        0, rec.timestamp, "alice", "keys:rotate", "keyring/main", "success", '{"a":"é","b":1}'
    )
    assert log.root == rec.leaf_hash()
    log.close()


@pytest.mark.parametrize("name", ["audit.sqlite", "audit.jsonl"])
def test_intact_log_verifies_and_survives_reopen(
    tmp_path: Path, key: Ed25519PrivateKey, name: str
) -> None:
    path = tmp_path / name
    log = AuditLog.open(path, clock=_clock())
    _fill(log, 10)
    cp = log.checkpoint(key)
    root_10 = log.root
    log.close()
    log = AuditLog.open(path, clock=_clock())
    assert (log.size, log.root) == (10, root_10)
    assert log.append("bob", "ledger:read", None, "success") == 10
    leaves = [r.leaf_hash() for r in log.records()]
    assert log.root == root_from_leaves(leaves)
    trusted = [VerifierKey.of(key)]
    stale = log.verify(trusted, [cp])  # record 10 is vouched for by no checkpoint yet
    assert not stale.ok
    assert "the newest trusted checkpoint covers 10 of 11 records" in (stale.problem or "")
    assert (stale.first_bad, stale.first_bad_end) == (10, 11)
    latest = log.checkpoint(key)
    report = log.verify(trusted, [cp])
    assert report.ok, report.problem
    assert (report.size, report.root, report.checkpoints_verified) == (11, log.root, 3)
    assert report.covered_by == (VerifierKey.of(key).name,)
    assert "ok: 11 records" in report.describe()
    report.raise_for_problem()
    assert latest.size == 11
    log.close()


def test_append_keeps_only_a_compact_range(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "a.sqlite")
    _fill(log, 45)
    frontier = _db(tmp_path / "a.sqlite").execute("SELECT value FROM meta WHERE key='frontier'")
    raw = frontier.fetchone()[0]
    assert len(raw) == 32 * (45).bit_count()
    assert CompactRange.from_bytes(45, raw).root() == log.root
    log.close()


def test_batch_is_all_or_nothing(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "a.sqlite")
    _fill(log, 3)
    root = log.root

    def failing_batch() -> None:
        with log.batch():
            log.append("a", "x")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_batch()
    assert (log.size, log.root) == (3, root)
    assert len(list(log.records())) == 3
    assert log.verify_unanchored().ok
    log.close()


def test_append_validates(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "a.sqlite")
    with pytest.raises(ValueError):
        log.append("", "x")
    with pytest.raises(ValueError):
        log.append("a", "x", details={"v": float("nan")})
    with pytest.raises(ValueError):
        log.append("a", "x", details={1: 2})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        log.append("a", "x", details={"o": object()})
    assert log.size == 0
    log.close()


def test_not_a_log(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    conn = _db(other)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(AuditError):
        AuditLog.open(other)
    assert {r[0] for r in _db(other).execute("SELECT name FROM sqlite_master")} == {"t"}
    (tmp_path / "junk").write_bytes(b"not sqlite at all" * 10)
    with pytest.raises(AuditError):
        AuditLog.open(tmp_path / "junk")
    (tmp_path / "junk.jsonl").write_text("{}\n")
    with pytest.raises(AuditError):
        AuditLog.open(tmp_path / "junk.jsonl")
    with pytest.raises(FileNotFoundError):
        verify_log(tmp_path / "missing.sqlite", [])


def test_denials_land_in_the_audit_log(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "a.sqlite")
    with pytest.raises(PermissionDenied):
        check(Principal("eve", ["site"], site="x"), Permission.AUDIT_READ, "audit/log", audit=log)
    (rec,) = list(log.records())
    assert (rec.actor, rec.action, rec.resource, rec.outcome) == (
        "eve", "access:audit:read", "audit/log", "denied",
    )  # fmt: skip
    assert log.verify_unanchored().ok
    log.close()


# tamper cases: SQLite ----------------------------------------------------------------------


def _expect_bad(log: AuditLog, first_bad: int, fragment: str, **kwargs: object) -> None:
    report = log.verify_unanchored(**kwargs)  # type: ignore[arg-type]
    assert not report.ok
    assert report.first_bad == first_bad, report.problem
    assert fragment in (report.problem or "")
    with pytest.raises(AuditVerificationError):
        report.raise_for_problem()


def test_sqlite_modification(sqlite_log: tuple[AuditLog, Path]) -> None:
    log, path = sqlite_log
    _db(path).execute("UPDATE records SET details = '{\"i\":999}' WHERE idx = 17")
    _expect_bad(log, 17, "record 17 does not match")


def test_sqlite_modification_of_any_field(sqlite_log: tuple[AuditLog, Path]) -> None:
    log, path = sqlite_log
    conn = _db(path)
    for column, value in (("actor", "mallory"), ("ts", "2020-01-01"), ("resource", None)):
        (original,) = conn.execute(f"SELECT {column} FROM records WHERE idx = 30").fetchone()
        conn.execute(f"UPDATE records SET {column} = ? WHERE idx = 30", (value,))
        assert log.verify_unanchored().first_bad == 30
        conn.execute(f"UPDATE records SET {column} = ? WHERE idx = 30", (original,))
        assert log.verify_unanchored().ok


def test_sqlite_deletion(sqlite_log: tuple[AuditLog, Path]) -> None:
    log, path = sqlite_log
    _db(path).execute("DELETE FROM records WHERE idx = 9")
    _expect_bad(log, 9, "record 9 is missing (deleted")


def test_sqlite_insertion(sqlite_log: tuple[AuditLog, Path]) -> None:
    log, path = sqlite_log
    conn = _db(path)
    conn.execute("UPDATE records SET idx = -idx - 1 WHERE idx >= 10")
    conn.execute("UPDATE records SET idx = -idx WHERE idx < 0")  # shift 10.. up by one
    conn.execute(
        "INSERT INTO records VALUES (10, '2026-11-29T03:00:10.500000Z', 'mallory', 'study:read',"
        " 'study/s1', 'success', '{}', ?)",
        (bytes(32),),
    )
    _expect_bad(log, 10, "record 10 does not match")


def test_sqlite_appended_outside_the_log(sqlite_log: tuple[AuditLog, Path]) -> None:
    log, path = sqlite_log
    ts = "2026-11-29T04:00:00.000000Z"
    leaf = _doc_leaf(N, ts, "mallory", "x", None, "success", "{}")  # a well-formed forgery
    _db(path).execute(
        "INSERT INTO records VALUES (?, ?, 'mallory', 'x', NULL, 'success', '{}', ?)", (N, ts, leaf)
    )
    _expect_bad(log, N, f"records {N}..{N} were added outside the log")


def test_sqlite_reordering(sqlite_log: tuple[AuditLog, Path]) -> None:
    log, path = sqlite_log
    conn = _db(path)
    conn.execute("UPDATE records SET idx = -1 WHERE idx = 5")
    conn.execute("UPDATE records SET idx = 5 WHERE idx = 12")
    conn.execute("UPDATE records SET idx = 12 WHERE idx = -1")
    _expect_bad(log, 5, "record 5 does not match")


def test_sqlite_truncation(sqlite_log: tuple[AuditLog, Path]) -> None:
    log, path = sqlite_log
    _db(path).execute("DELETE FROM records WHERE idx >= 40")
    _expect_bad(log, 40, "log truncated: 40 records present but the log recorded 64")


def _rewrite_everything(path: Path, mutate: Callable[[sqlite3.Connection], None]) -> None:
    """An attacker with write access who recomputes every hash and the stored state."""
    conn = _db(path)
    mutate(conn)
    rng = CompactRange()
    rows = conn.execute(
        "SELECT idx, ts, actor, action, resource, outcome, details FROM records ORDER BY idx"
    ).fetchall()
    for new_idx, (old_idx, ts, actor, action, res, out, det) in enumerate(rows):
        leaf = _doc_leaf(new_idx, ts, actor, action, res, out, det)
        conn.execute("UPDATE records SET idx = ?, leaf = ? WHERE idx = ?", (new_idx, leaf, old_idx))
        rng.append(leaf)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'size'", (str(rng.size),))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'frontier'", (rng.to_bytes(),))
    conn.execute("DELETE FROM checkpoints")


def test_fork_with_recomputed_hashes_is_caught_by_a_checkpoint(
    sqlite_log: tuple[AuditLog, Path], key: Ed25519PrivateKey
) -> None:
    log, path = sqlite_log
    early = log.checkpoint(key, store=False)  # N = 64 records
    _fill(log, 16)
    late = log.checkpoint(key, store=False)  # 80 records
    _rewrite_everything(
        path, lambda c: c.execute("UPDATE records SET outcome = 'failure' WHERE idx = 70")
    )
    reopened = AuditLog.open(path)
    assert reopened.verify_unanchored().ok  # self-consistent: only a checkpoint can tell
    trusted = [VerifierKey.of(key)]
    report = reopened.verify(trusted, [early, late])
    assert not report.ok
    assert (report.first_bad, report.first_bad_end) == (64, 80)
    assert "forked" in (report.problem or "")
    assert "first bad record is in 64..79" in (report.problem or "")
    report_one = reopened.verify(trusted, [late])
    assert (report_one.first_bad, report_one.first_bad_end) == (0, 80)
    reopened.close()


def test_rewrite_that_also_truncates_is_caught(
    sqlite_log: tuple[AuditLog, Path], key: Ed25519PrivateKey
) -> None:
    log, path = sqlite_log
    cp = log.checkpoint(key)  # stored inside the log as well
    _rewrite_everything(path, lambda c: c.execute("DELETE FROM records WHERE idx >= 50"))
    reopened = AuditLog.open(path)
    _expect_bad(
        reopened,
        50,
        "log truncated: given checkpoint at size 64",
        checkpoints=[cp],
        trusted_keys=[VerifierKey.of(key)],
    )
    reopened.close()


def test_reinserted_history_is_caught(
    sqlite_log: tuple[AuditLog, Path], key: Ed25519PrivateKey
) -> None:
    log, path = sqlite_log
    cp = log.checkpoint(key, store=False)

    def insert(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE records SET idx = 2 * idx + 1000")
        conn.execute(
            "INSERT INTO records VALUES (1007, '2026-11-29T03:00:03.500000Z', 'mallory',"
            " 'x', NULL, 'success', '{}', x'00')"
        )

    _rewrite_everything(path, insert)
    reopened = AuditLog.open(path)
    report = reopened.verify([VerifierKey.of(key)], [cp])
    assert not report.ok
    assert "inconsistent" in (report.problem or "")
    reopened.close()


def test_checkpoints_signed_by_untrusted_keys_are_ignored(
    sqlite_log: tuple[AuditLog, Path], key: Ed25519PrivateKey
) -> None:
    log, path = sqlite_log
    honest = log.checkpoint(key, store=False)
    mallory = Ed25519PrivateKey.generate()
    log.checkpoint(mallory)  # stored, signed by an untrusted key
    trusted = [VerifierKey.of(key)]
    report = log.verify(trusted, [honest])
    assert report.ok, report.problem
    assert (report.checkpoints_verified, report.checkpoints_ignored) == (1, 1)
    only_mallory = log.verify(trusted)
    assert not only_mallory.ok
    assert "no checkpoint is signed by a trusted key" in (only_mallory.problem or "")
    assert "1 checkpoint(s) signed by untrusted keys ignored" in (only_mallory.problem or "")
    # a signature line that claims the trusted key but does not verify rejects the note
    forged_sig = replace(honest.signatures[0], signature=bytes(64))
    forged = replace(honest, signatures=(forged_sig,))
    report = log.verify(trusted, [forged])
    assert not report.ok
    assert "does not verify" in (report.problem or "")
    other = AuditLog.open(path.with_name("other.sqlite"))
    _fill(other, N)
    foreign = other.checkpoint(key, store=False)
    report = log.verify([*trusted, VerifierKey.of(mallory)], [foreign])
    assert "belongs to another log" in (report.problem or "")
    other.close()


def test_no_checkpoint_or_no_trusted_key_fails(sqlite_log: tuple[AuditLog, Path]) -> None:
    log, _ = sqlite_log
    report = log.verify([VerifierKey.of(Ed25519PrivateKey.generate())])
    assert not report.ok
    assert "no trusted checkpoint covers the whole log (64 records)" in (report.problem or "")
    assert (report.first_bad, report.first_bad_end) == (0, 64)
    report = log.verify([])
    assert "no trusted keys were given" in (report.problem or "")
    assert log.verify_unanchored().ok


def test_rewritten_log_resigned_with_a_fresh_key_fails(
    sqlite_log: tuple[AuditLog, Path], key: Ed25519PrivateKey
) -> None:
    """The attack: rewrite history consistently, drop the old checkpoints, sign anew."""
    log, path = sqlite_log
    log.checkpoint(key)
    trusted = [VerifierKey.of(key)]
    assert log.verify(trusted).ok
    _rewrite_everything(
        path, lambda c: c.execute("UPDATE records SET actor = 'nobody' WHERE idx = 3")
    )
    reopened = AuditLog.open(path)
    assert reopened.verify_unanchored().ok  # every hash is consistent
    resigned = reopened.checkpoint(Ed25519PrivateKey.generate())
    assert resigned.size == N
    report = reopened.verify(trusted)
    assert not report.ok
    assert "no checkpoint is signed by a trusted key" in (report.problem or "")
    reopened.close()


def test_checkpoint_file_round_trip(tmp_path: Path, sqlite_log: tuple[AuditLog, Path]) -> None:
    log, _ = sqlite_log
    generate_signing_key(tmp_path / "signing.pem")
    with pytest.raises(FileExistsError):
        generate_signing_key(tmp_path / "signing.pem")
    key = load_signing_key(tmp_path / "signing.pem")
    cp = log.checkpoint(key)
    cp.save(tmp_path / "audit.checkpoint")
    text = (tmp_path / "audit.checkpoint").read_text(encoding="utf-8")
    assert text.startswith(f"{log.origin}\n{N}\n")
    again = Checkpoint.load(tmp_path / "audit.checkpoint")
    assert again == cp
    assert again.signers([VerifierKey.of(key)]) == (VerifierKey.of(key),)
    (tmp_path / "bad").write_text('{"format": "nope"}')
    with pytest.raises(AuditError):
        Checkpoint.load(tmp_path / "bad")
    (tmp_path / "bad.pem").write_text("nope")
    with pytest.raises(AuditError):
        load_signing_key(tmp_path / "bad.pem")


# proofs against checkpoints ------------------------------------------------------------------


def test_proofs_link_checkpoints(sqlite_log: tuple[AuditLog, Path], key: Ed25519PrivateKey) -> None:
    log, _ = sqlite_log
    old = log.checkpoint(key)
    _fill(log, 37)
    new = log.checkpoint(key)
    proof = log.prove_consistency(old.size, new.size)
    assert proof.verify(old.root, new.root)
    assert not proof.verify(new.root, new.root)
    for index in (0, 13, old.size - 1, new.size - 1):
        inc = log.prove_inclusion(index, new.size)
        assert inc.verify(new.root)
        assert inc.leaf_hash == next(log.records(index, index + 1)).leaf_hash()
        assert not inc.verify(old.root)
    assert json.loads(json.dumps(proof.to_json()))["type"] == "consistency"
    with pytest.raises(ValueError):
        log.prove_inclusion(new.size)
    with pytest.raises(ValueError):
        log.prove_consistency(0)


def _proofs(log: AuditLog, sizes: list[int]) -> list[object]:
    out: list[object] = []
    for n in sizes:
        out += [log.prove_consistency(m, n).to_json() for m in range(1, n + 1, 7)]
        out += [log.prove_inclusion(i, n).to_json() for i in range(0, n, 5)]
    return out


@pytest.mark.parametrize("suffix", [".sqlite", ".jsonl"])
def test_proofs_from_the_kept_tree_match_a_fresh_read_of_the_store(
    tmp_path: Path, suffix: str
) -> None:
    """The log keeps its tree in memory after the first proof and grows it with every
    append; its proofs stay those of a log opened afresh on the same file, through a batch
    that was rolled back and one that was written, and its head stays consistent with the
    log another writer then extended."""
    path = tmp_path / f"audit{suffix}"
    log = AuditLog.open(path, clock=_clock())
    _fill(log, 9)
    first = log.prove_consistency(3)  # builds the tree
    assert first.new_size == 9
    _fill(log, 12)

    def abandoned_batch() -> None:
        with log.batch():
            log.append("a", "rolled-back")
            raise RuntimeError("abandon the batch")

    with pytest.raises(RuntimeError):
        abandoned_batch()
    with log.batch():
        for i in range(6):
            log.append("b", "batched", None, "success", {"i": i})
    assert log.size == 27
    sizes = [1, 2, 9, 16, 17, 27]
    kept = _proofs(log, sizes)
    fresh = AuditLog.open(path)
    assert kept == _proofs(fresh, sizes)
    fresh.append("c", "from-another-writer")
    fresh.close()
    reopened = AuditLog.open(path)
    assert reopened.prove_consistency(27, 28).verify(log.root, reopened.root)
    for index in (0, 20, 26):
        assert log.prove_inclusion(index, 27).verify(log.root)
    log.close()


def test_proofs_of_a_damaged_log_agree_with_its_own_head(tmp_path: Path) -> None:
    """A record whose stored leaf hash is cut short stands in the tree as it stands in the
    log's head, so the log's proofs and its head agree (verification reports the record)."""
    log, path = _jsonl(tmp_path)
    short = lambda line: json.dumps({**json.loads(line), "leaf": "abcd"}) + "\n"
    _edit_lines(path, lambda ls: [*ls[:5], short(ls[5]), *ls[6:]])
    damaged = AuditLog.open(path)
    proof = damaged.prove_consistency(3)
    assert proof.new_root == damaged.root
    assert damaged.prove_inclusion(7).root == damaged.root
    assert not damaged.verify_unanchored().ok


# tamper cases: JSON lines --------------------------------------------------------------------


def _jsonl(tmp_path: Path) -> tuple[AuditLog, Path]:
    path = tmp_path / "audit.jsonl"
    log = AuditLog.open(path, clock=_clock())
    _fill(log, 20)
    return log, path


def _edit_lines(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([lines[0], *edit(lines[1:])]))


def _set_details(line: str, value: int) -> str:
    obj = json.loads(line)
    obj["details"] = {"i": value}
    return json.dumps(obj) + "\n"


@pytest.mark.parametrize(
    ("edit", "first_bad", "fragment"),
    [
        (lambda ls: [*ls[:7], _set_details(ls[7], 99), *ls[8:]], 7, "record 7 does not match"),
        (lambda ls: [*ls[:7], *ls[8:]], 7, "record 7 is missing"),
        (lambda ls: [*ls[:7], ls[3], *ls[7:]], 7, "carries index 3"),
        (lambda ls: [*ls[:4], ls[9], *ls[5:9], ls[4], *ls[10:]], 4, "record 4 is missing"),
        (lambda ls: [*ls[:5], "{not json\n", *ls[5:]], 5, "record 5 is unreadable"),
    ],
    ids=["modify", "delete", "insert", "reorder", "garbage"],
)
def test_jsonl_tampering(
    tmp_path: Path, edit: Callable[[list[str]], list[str]], first_bad: int, fragment: str
) -> None:
    log, path = _jsonl(tmp_path)
    assert log.verify_unanchored().ok
    _edit_lines(path, edit)
    _expect_bad(AuditLog.open(path), first_bad, fragment)


def test_jsonl_truncation_needs_a_checkpoint(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log, path = _jsonl(tmp_path)
    cp = log.checkpoint(key, store=False)
    _edit_lines(path, lambda ls: ls[:15])
    reopened = AuditLog.open(path)
    assert reopened.verify_unanchored().ok  # documented: no stored state in JSON lines
    _expect_bad(reopened, 15, "log truncated", checkpoints=[cp], trusted_keys=[VerifierKey.of(key)])
    assert not reopened.verify([VerifierKey.of(key)], [cp]).ok


def test_concurrent_threads_and_a_second_writer(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "a.sqlite"
    log = AuditLog.open(path)

    def worker(n: int) -> None:
        for i in range(50):
            log.append(f"t{n}", "x", None, "success", {"i": i})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.size == 200
    assert log.verify_unanchored().ok
    stale = AuditLog.open(path)
    log.append("a", "x")
    with pytest.raises(AuditError, match="another writer"):
        stale.append("b", "y")
    stale.close()
    assert log.verify_unanchored().ok
    log.close()
