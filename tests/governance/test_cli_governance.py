"""CLI: keys, encrypt/decrypt, audit, comply (CliRunner) plus real subprocesses for errors."""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from tutela.cli.main import app
from tutela.errors import AuditVerificationError, IntegrityError
from tutela.governance.audit import AuditLog, VerifierKey

from .test_audit import _rewrite_everything
from .test_comply import AUDIT_KEY, GOOD, _make_run

AUDIT_VKEY = VerifierKey.of(AUDIT_KEY).encode()

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUTELA_PASSPHRASE", "cli test passphrase")
    monkeypatch.delenv("TUTELA_KEYRING", raising=False)
    monkeypatch.delenv("TUTELA_KEYFILE", raising=False)
    return {}


def _ok(args: list[str], **kw: object) -> str:
    result = runner.invoke(app, args, **kw)  # type: ignore[arg-type]
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_keys_encrypt_rotate_decrypt(tmp_path: Path, env: dict[str, str]) -> None:
    out = _ok(["keys", "init"])
    assert "created keyring .tutela/keyring" in out
    assert (tmp_path / ".tutela" / "keyring").is_file()
    (tmp_path / "data.csv").write_bytes(b"age,bmi\n71,31.0\n")
    _ok(["encrypt", "data.csv", "data.csv.enc"])
    _ok(["encrypt", "data.csv", "other.enc"])
    first = json.loads(_ok(["keys", "list", "--json"]))
    assert [k["state"] for k in first] == ["primary"]

    out = _ok(["keys", "rotate", "data.csv.enc", "--retire"])
    assert "re-wrapped: data.csv.enc" in out
    assert f"retired key {first[0]['key_id']}" in out
    keys = json.loads(_ok(["keys", "list", "--json"]))
    assert [k["state"] for k in keys] == ["retired", "primary"]
    assert "retired" in _ok(["keys", "list"])

    _ok(["decrypt", "data.csv.enc", "plain.csv"])
    assert (tmp_path / "plain.csv").read_bytes() == b"age,bmi\n71,31.0\n"
    # other.enc was not given to rotate --retire: its key is gone
    result = runner.invoke(app, ["decrypt", "other.enc", "x.csv"])
    assert result.exit_code != 0
    assert isinstance(result.exception, IntegrityError)
    assert not (tmp_path / "x.csv").exists()
    # renamed ciphertext fails; --name restores the binding
    (tmp_path / "data.csv.enc").rename(tmp_path / "renamed.enc")
    assert runner.invoke(app, ["decrypt", "renamed.enc", "y.csv"]).exit_code != 0
    _ok(["decrypt", "renamed.enc", "y.csv", "--name", "data.csv.enc"])


def test_keyfile_and_env_keyring(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TUTELA_PASSPHRASE")
    monkeypatch.setenv("TUTELA_KEYRING", str(tmp_path / "ring"))
    monkeypatch.setenv("TUTELA_KEYFILE", str(tmp_path / "ring.key"))
    out = _ok(["keys", "init"])
    assert "generated key file" in out
    (tmp_path / "m.bin").write_bytes(b"\x00\x01model")
    _ok(["encrypt", "m.bin", "m.enc"])
    _ok(["decrypt", "m.enc", "m.out"])
    assert (tmp_path / "m.out").read_bytes() == b"\x00\x01model"
    assert runner.invoke(app, ["keys", "init"]).exit_code != 0  # never overwrites


def test_passphrase_prompt(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TUTELA_PASSPHRASE")
    _ok(["keys", "init", "--keyring", "k"], input="s3cret\ns3cret\n")
    _ok(["keys", "list", "--keyring", "k"], input="s3cret\n")
    result = runner.invoke(app, ["keys", "list", "--keyring", "k"], input="wrong\n")
    assert isinstance(result.exception, IntegrityError)
    assert "wrong passphrase" in str(result.exception)


def _audit_log(path: Path, n: int = 8) -> None:
    for i in range(n):
        _ok(["audit", "append", str(path), "--actor", "alice", "--action", "study:read",
             "--resource", f"study/{i}", "--details", json.dumps({"i": i})])  # fmt: skip


def test_audit_commands(tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "audit.sqlite"
    _audit_log(log)
    shown = json.loads(_ok(["audit", "show", str(log), "--json", "--start", "2", "--limit", "3"]))
    assert [r["index"] for r in shown] == [2, 3, 4]
    assert "study:read" in _ok(["audit", "show", str(log)])
    pub = _ok(["audit", "keygen", "sign.pem"]).split()[-1]
    assert _ok(["audit", "fingerprint", "sign.pem"]).strip() == pub
    note = _ok(["audit", "checkpoint", str(log), "--key", "sign.pem", "--out", "cp"])
    assert note.splitlines()[1] == "8"
    assert note == (tmp_path / "cp").read_text(encoding="utf-8")
    _audit_log(log, 4)
    result = runner.invoke(app, ["audit", "verify", str(log), "--trusted-key", pub])
    assert isinstance(result.exception, AuditVerificationError)
    assert "the newest trusted checkpoint covers 8 of 12 records" in str(result.exception)
    _ok(["audit", "checkpoint", str(log), "--key", "sign.pem"])
    out = _ok(["audit", "verify", str(log), "--checkpoint", "cp", "--trusted-key", pub])
    assert "ok: 12 records" in out
    assert "3 trusted checkpoint(s) consistent" in out
    prove = ["audit", "prove", str(log), "--index", "3", "--checkpoint", "cp"]
    result = runner.invoke(app, prove)
    assert isinstance(result.exception, AuditVerificationError)
    assert "signed by no trusted key" in str(result.exception)
    proof = json.loads(_ok([*prove, "--trusted-key", pub]))
    assert proof["verified"] is True
    assert proof["size"] == 8
    assert proof["checkpoint"]["signed_by"] == [pub]
    cons = json.loads(_ok(["audit", "prove", str(log), "--from-size", "8"]))
    assert (cons["old_size"], cons["new_size"], cons["verified"]) == (8, 12, True)
    assert runner.invoke(app, ["audit", "prove", str(log)]).exit_code != 0
    other = VerifierKey.of(AUDIT_KEY).encode()
    result = runner.invoke(app, ["audit", "verify", str(log), "--trusted-key", other])
    assert isinstance(result.exception, AuditVerificationError)
    assert "no checkpoint is signed by a trusted key" in str(result.exception)
    assert runner.invoke(app, ["audit", "verify", str(log), "--trusted-key", "00" * 32]).exit_code


def test_audit_trust_store(tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "audit.sqlite"
    _audit_log(log)
    pub = _ok(["audit", "keygen", "sign.pem"]).split()[-1]
    _ok(["audit", "checkpoint", str(log), "--key", "sign.pem"])
    assert runner.invoke(app, ["audit", "verify", str(log)]).exit_code == 1
    out = _ok(["audit", "trust", "add", pub])
    assert f"in {Path('.tutela') / 'trusted-audit-keys'}" in out
    assert "already trusted" in _ok(["audit", "trust", "add", pub])
    assert _ok(["audit", "trust", "list"]).splitlines() == [pub]
    assert "ok: 8 records" in _ok(["audit", "verify", str(log)])
    _ok(["audit", "trust", "remove", pub.split("+")[0]])
    assert _ok(["audit", "trust", "list", "--json"]).strip() == "[]"
    assert runner.invoke(app, ["audit", "verify", str(log)]).exit_code == 1
    _ok(["audit", "trust", "add", pub, "--trust-store", "auditor.keys"])
    assert "ok: 8 records" in _ok(["audit", "verify", str(log), "--trust-store", "auditor.keys"])
    assert runner.invoke(app, ["audit", "trust", "add", "nonsense"]).exit_code == 1


def test_audit_verify_names_the_first_bad_record(tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "audit.sqlite"
    _audit_log(log)
    sqlite3.connect(str(log), isolation_level=None).execute(
        "UPDATE records SET actor = 'mallory' WHERE idx = 5"
    )
    result = runner.invoke(app, ["audit", "verify", str(log)])
    assert result.exit_code != 0
    assert isinstance(result.exception, AuditVerificationError)
    assert "record 5 does not match its hash" in str(result.exception)
    result = runner.invoke(app, ["audit", "verify", str(log), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["first_bad"] == 5


def test_comply_command(tmp_path: Path, env: dict[str, str]) -> None:
    good = _make_run(tmp_path / "good", GOOD)
    untrusted = runner.invoke(app, ["comply", str(good), "--framework", "hipaa"])
    assert untrusted.exit_code == 1  # the trust store is empty: the audit key is not pinned
    assert "| audit-log-verified | fail |" in untrusted.stdout
    _ok(["audit", "trust", "add", AUDIT_VKEY])
    out = _ok(["comply", str(good), "--framework", "hipaa", "--out", "report.md"])
    assert "# HIPAA controls report" in out
    assert (tmp_path / "report.md").read_text() == out
    bad_doc = copy.deepcopy(GOOD)
    bad_doc["governance"]["shared_columns"].append("email")
    bad_doc["governance"]["minimisation"]["kept"].append("email")
    bad = _make_run(tmp_path / "bad", bad_doc)
    result = runner.invoke(app, ["comply", str(bad), "--framework", "gdpr", "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [c["id"] for c in doc["checks"] if c["status"] == "fail"] == ["no-direct-identifiers"]
    assert runner.invoke(app, ["comply", str(good), "-f", "pipeda"]).exit_code == 2


# real subprocesses: exit code and one clean error line -------------------------------------


def _run(args: list[str], cwd: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TUTELA_")}
    environ.update(extra_env)
    return subprocess.run(
        [sys.executable, "-m", "tutela", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_subprocess_audit_verify_tampered(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with AuditLog.open(log) as audit:
        for i in range(6):
            audit.append("a", "x", None, "success", {"i": i})
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join([*lines[:3], *lines[4:]]))  # delete record 2
    proc = _run(["audit", "verify", str(log)], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: audit log {log} does not verify: record 2 is missing (deleted or moved): "
        "the next stored record is 3"
    ]
    assert "Traceback" not in proc.stderr


def test_subprocess_decrypt_wrong_passphrase(tmp_path: Path) -> None:
    assert _run(["keys", "init"], tmp_path, TUTELA_PASSPHRASE="right").returncode == 0
    (tmp_path / "f").write_text("secret")
    assert _run(["encrypt", "f", "f.enc"], tmp_path, TUTELA_PASSPHRASE="right").returncode == 0
    proc = _run(["decrypt", "f.enc", "f.out"], tmp_path, TUTELA_PASSPHRASE="wrong")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: cannot open keyring .tutela/keyring: the passphrase from TUTELA_PASSPHRASE "
        "does not unlock it (wrong passphrase, or the keyring file was modified)"
    ]
    assert not (tmp_path / "f.out").exists()


def test_subprocess_comply_violation(tmp_path: Path) -> None:
    bad_doc = copy.deepcopy(GOOD)
    bad_doc["config"]["privacy"] = {"mode": "none", "epsilon": None, "delta": 1e-5}
    bad_doc["privacy"] = None
    run = _make_run(tmp_path / "run", bad_doc)
    proc = _run(["comply", str(run), "--framework", "ccpa", "--trusted-key", AUDIT_VKEY], tmp_path)
    assert proc.returncode == 1
    assert "| dp-required | fail |" in proc.stdout
    assert proc.stderr.strip() == "failed checks: dp-required"
    missing = _run(["comply", str(tmp_path / "nope")], tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: run directory {tmp_path / 'nope'} does not exist"


def _attack(run: Path, how: str) -> None:
    """Whoever controls the run directory rewrites the log consistently and then either
    re-signs it with a fresh key or deletes every checkpoint."""
    log_path = run / "audit.sqlite"
    _rewrite_everything(
        log_path, lambda c: c.execute("UPDATE records SET outcome = 'failure' WHERE idx = 2")
    )
    (run / "audit.checkpoint").unlink()
    if how == "re-signed":
        with AuditLog.open(log_path) as log:
            log.checkpoint(Ed25519PrivateKey.generate()).save(run / "audit.checkpoint")


@pytest.mark.parametrize("how", ["re-signed", "stripped"])
def test_subprocess_rewritten_log_fails_verify_and_comply(tmp_path: Path, how: str) -> None:
    run = _make_run(tmp_path / "run", GOOD)
    log = run / "audit.sqlite"
    pinned = ["--trusted-key", AUDIT_VKEY]
    honest = _run(["audit", "verify", str(log), "--checkpoint", str(run / "audit.checkpoint"),
                   *pinned], tmp_path)  # fmt: skip
    assert honest.returncode == 0, honest.stderr
    assert _run(["comply", str(run), *pinned], tmp_path).returncode == 0
    _attack(run, how)
    ignored = " (2 checkpoint(s) signed by untrusted keys ignored)" if how == "re-signed" else ""
    extra = ["--checkpoint", str(run / "audit.checkpoint")] if how == "re-signed" else []
    verify = _run(["audit", "verify", str(log), *extra, *pinned], tmp_path)
    assert verify.returncode == 1
    assert verify.stderr.strip().splitlines() == [
        f"error: audit log {log} does not verify: no trusted checkpoint covers the whole log "
        f"(5 records): no checkpoint is signed by a trusted key{ignored}"
    ]
    comply = _run(["comply", str(run), *pinned], tmp_path)
    assert comply.returncode == 1
    assert comply.stderr.strip().splitlines() == ["failed checks: audit-log-verified"]
    assert "| audit-log-verified | fail |" in comply.stdout
    assert "Traceback" not in verify.stderr + comply.stderr
