"""One resolver for home, keyring and signing key; one private atomic writer.

Through the resolver, through CliRunner and through real ``tutela`` subprocesses: with
``TUTELA_HOME`` set, the demo and every keyring command use the same keyring.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import pytest
from typer.testing import CliRunner

from tutela.cli.main import app
from tutela.errors import ConfigError, IntegrityError
from tutela.fl import recipes
from tutela.governance._files import atomic_text_writer, atomic_write, atomic_writer
from tutela.governance.envelope import Envelope, Keyring, KeyringProtection
from tutela.governance.home import (
    default_keyfile,
    keyring_path,
    keyring_secret,
    open_keyring,
    signing_key,
    signing_key_path,
    tutela_home,
)

runner = CliRunner()
ENV_VARS = ("TUTELA_HOME", "TUTELA_KEYRING", "TUTELA_KEYFILE", "TUTELA_PASSPHRASE")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory and ``TUTELA_HOME``; no other keyring variable set."""
    monkeypatch.chdir(tmp_path)
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "home"
    monkeypatch.setenv("TUTELA_HOME", str(path))
    return path


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


# resolver -------------------------------------------------------------------------------------


def test_paths_follow_tutela_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tutela_home() == home
    assert keyring_path() == home / "keyring"
    assert default_keyfile(keyring_path()) == home / "keyring.key"
    assert signing_key_path() == home / "audit-signing.key"
    monkeypatch.setenv("TUTELA_KEYRING", str(home / "elsewhere"))
    assert keyring_path() == home / "elsewhere"
    assert keyring_path("explicit") == Path("explicit")
    monkeypatch.delenv("TUTELA_HOME")
    monkeypatch.delenv("TUTELA_KEYRING")
    assert keyring_path() == Path(".tutela") / "keyring"


def test_the_demo_uses_the_resolver() -> None:
    # The run recipe behind `tutela demo` and `tutela study run` has no resolver of its own.
    assert recipes.open_keyring is open_keyring
    assert recipes._signing_key is signing_key


def test_first_use_creates_private_home(home: Path) -> None:
    ring = open_keyring()
    assert ring.path == home / "keyring"
    assert Keyring.protection_of(home / "keyring") is KeyringProtection.KEY_FILE
    key = signing_key()
    assert signing_key().public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    assert _mode(home) == 0o700
    for name in ("keyring", "keyring.key", "audit-signing.key"):
        assert _mode(home / name) == 0o600, name
    assert open_keyring().primary_id == ring.primary_id  # opened again, not re-created


def test_cli_commands_open_the_demos_keyring(home: Path, tmp_path: Path) -> None:
    ring = open_keyring()  # what a run does the first time
    listed = runner.invoke(app, ["keys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [k["key_id"] for k in json.loads(listed.output)] == [ring.primary_id]

    (tmp_path / "notes.txt").write_text("age 71, bmi 31.0\n")
    out = runner.invoke(app, ["encrypt", "notes.txt", "notes.enc"])
    assert out.exit_code == 0, out.output
    blob = (tmp_path / "notes.enc").read_bytes()
    assert Envelope(open_keyring()).decrypt(blob, name="notes.enc") == b"age 71, bmi 31.0\n"

    # pseudonyms use a key kept beside the same keyring
    (tmp_path / "note.txt").write_text("Patient: Maria Lopez, SSN 536-22-1234.\n")
    red = runner.invoke(
        app,
        ["pii", "redact", "note.txt", "--operator", "pseudonymize", "--no-ner"],
        env={"TUTELA_PSEUDONYM_KEY": ""},
    )
    assert red.exit_code == 0, red.output
    assert (home / "keyring.pseudonym").is_file()
    assert _mode(home / "keyring.pseudonym") == 0o600

    rotated = runner.invoke(app, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert len(open_keyring().list_keys()) == 2


def test_keys_init_creates_in_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTELA_PASSPHRASE", "correct horse")
    out = runner.invoke(app, ["keys", "init"])
    assert out.exit_code == 0, out.output
    assert f"created keyring {home / 'keyring'}" in out.output
    assert Keyring.protection_of(home / "keyring") is KeyringProtection.PASSPHRASE
    assert _mode(home) == 0o700 and _mode(home / "keyring") == 0o600
    assert open_keyring(create=False).path == home / "keyring"


# the secret, and what the errors say -----------------------------------------------------------


def test_passphrase_for_a_key_file_keyring_names_both(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_keyring()  # locked by home/keyring.key
    monkeypatch.setenv("TUTELA_PASSPHRASE", "not this one")
    with pytest.raises(ConfigError) as caught:
        open_keyring()
    message = str(caught.value)
    assert message == (
        f"cannot open keyring {home / 'keyring'}: it is locked by a key file, but the "
        "passphrase from TUTELA_PASSPHRASE was tried; unset TUTELA_PASSPHRASE to use the "
        f"key file {home / 'keyring.key'}"
    )
    assert "not this one" not in message
    # Without a key file anywhere, the error says where it looked.
    (home / "keyring.key").rename(home / "moved.key")
    with pytest.raises(ConfigError, match=r"locked by a key file.*set TUTELA_KEYFILE"):
        open_keyring()
    monkeypatch.delenv("TUTELA_PASSPHRASE")
    with pytest.raises(ConfigError, match=re.escape(f"there is none at {home / 'keyring.key'}")):
        open_keyring()
    monkeypatch.setenv("TUTELA_KEYFILE", str(home / "moved.key"))
    assert open_keyring().path == home / "keyring"


def test_key_file_for_a_passphrase_keyring_says_which_was_tried(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUTELA_PASSPHRASE", "right")
    open_keyring()  # a new keyring takes the passphrase that is set
    assert Keyring.protection_of(home / "keyring") is KeyringProtection.PASSPHRASE
    keyfile = home / "other.key"
    keyfile.write_text("ab" * 32)
    monkeypatch.setenv("TUTELA_KEYFILE", str(keyfile))
    with pytest.raises(ConfigError) as caught:
        open_keyring()
    message = str(caught.value)
    assert message == (
        f"cannot open keyring {home / 'keyring'}: it is locked by a passphrase, but the key "
        f"file {keyfile} from TUTELA_KEYFILE was tried; unset TUTELA_KEYFILE to use the "
        "passphrase from TUTELA_PASSPHRASE"
    )
    # A key file of the right kind that does not unlock it: says what else was set.
    monkeypatch.delenv("TUTELA_PASSPHRASE")
    monkeypatch.delenv("TUTELA_KEYFILE")
    ring = open_keyring(home / "second", keyfile=keyfile)
    monkeypatch.setenv("TUTELA_PASSPHRASE", "right")
    other = home / "third.key"
    other.write_text("cd" * 32)
    with pytest.raises(IntegrityError) as wrong:
        open_keyring(ring.path, keyfile=other)
    assert str(wrong.value) == (
        f"cannot open keyring {home / 'second'}: the key file {other} does not unlock it "
        "(wrong key file, or the keyring file was modified; the passphrase from "
        "TUTELA_PASSPHRASE is also set but was not tried)"
    )


def test_wrong_secret_is_one_opaque_failure(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTELA_PASSPHRASE", "right")
    open_keyring()
    monkeypatch.setenv("TUTELA_PASSPHRASE", "wrong")
    with pytest.raises(IntegrityError) as wrong:
        open_keyring()
    monkeypatch.setenv("TUTELA_PASSPHRASE", "right")
    doc = json.loads((home / "keyring").read_text())
    doc["nonce"] = doc["nonce"][::-1]
    (home / "keyring").write_text(json.dumps(doc))
    with pytest.raises(IntegrityError) as tampered:
        open_keyring()
    expected = (
        f"cannot open keyring {home / 'keyring'}: the passphrase from TUTELA_PASSPHRASE "
        "does not unlock it (wrong passphrase, or the keyring file was modified)"
    )
    assert str(wrong.value) == str(tampered.value) == expected


def test_secret_precedence(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    given = tmp_path / "given.key"
    monkeypatch.setenv("TUTELA_KEYFILE", str(tmp_path / "env.key"))
    monkeypatch.setenv("TUTELA_PASSPHRASE", "pw")
    secret = keyring_secret(keyfile=given, passphrase="arg")
    assert secret is not None and secret.keyfile == given
    secret = keyring_secret(passphrase="arg")
    assert secret is not None and secret.passphrase == "arg"
    secret = keyring_secret()
    assert secret is not None and secret.keyfile == tmp_path / "env.key"
    monkeypatch.delenv("TUTELA_KEYFILE")
    secret = keyring_secret()
    assert secret is not None and secret.passphrase == "pw"
    assert "pw" not in repr(secret)
    monkeypatch.delenv("TUTELA_PASSPHRASE")
    assert keyring_secret() is None  # a new keyring gets a fresh key file
    with pytest.raises(FileNotFoundError, match="no keyring at"):
        open_keyring(create=False)


# the writer -----------------------------------------------------------------------------------


def test_writer_makes_private_files_and_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "secret.json"
    atomic_write(target, b"{}")
    assert target.read_bytes() == b"{}"
    assert _mode(target) == 0o600
    assert _mode(tmp_path / "a") == _mode(tmp_path / "a" / "b") == 0o700
    before = _mode(tmp_path)  # an existing folder keeps its mode
    atomic_write(tmp_path / "public.json", b"[]", mode=0o644)
    assert _mode(tmp_path / "public.json") == 0o644
    assert _mode(tmp_path) == before
    with atomic_text_writer(tmp_path / "a" / "t.csv") as handle:
        handle.write("x,y\r\n1,2\r\n")
    assert (tmp_path / "a" / "t.csv").read_bytes() == b"x,y\r\n1,2\r\n"
    assert _mode(tmp_path / "a" / "t.csv") == 0o600


def test_crash_mid_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    atomic_write(target, b'{"old": true}\n')

    def serialise(handle: IO[Any], head: Any) -> None:
        handle.write(head)  # half of the new content reaches the temporary file...
        raise RuntimeError("serialiser crashed half way")  # ...then the serialiser fails

    with pytest.raises(RuntimeError), atomic_writer(target) as raw:
        serialise(raw, b'{"new": ')
    with pytest.raises(RuntimeError), atomic_text_writer(target) as text:
        serialise(text, '{"new": ')
    assert target.read_bytes() == b'{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left

    # the results writer of the run recipe goes through the same writer
    with pytest.raises(TypeError):
        recipes.write_json_atomic(target, {"x": object()})
    assert target.read_bytes() == b'{"old": true}\n'
    recipes.write_json_atomic(target, {"x": float("nan")})
    assert json.loads(target.read_text()) == {"x": None}
    assert _mode(target) == 0o600


# real subprocesses ----------------------------------------------------------------------------


def _tutela(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TUTELA_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "tutela", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_subprocess_demo_then_decrypt_with_the_same_home(tmp_path: Path) -> None:
    """`tutela demo` stores the model under the home's keyring; `tutela decrypt` opens it."""
    home = tmp_path / "home"
    demo = _tutela(
        ["demo", "--in-process", "--rounds", "1", "--sites", "3", "--run-dir", "run"],
        tmp_path,
        TUTELA_HOME=str(home),
    )
    assert demo.returncode == 0, demo.stderr
    assert sorted(p.name for p in home.iterdir()) == [
        "audit-signing.key",
        "keyring",
        "keyring.key",
        "trusted-audit-keys",  # the demo pins its audit-signing key for this user
    ]
    assert not (tmp_path / ".tutela").exists()
    out = _tutela(
        ["decrypt", "run/model.safetensors.enc", "model.safetensors"],
        tmp_path,
        TUTELA_HOME=str(home),
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "model.safetensors").stat().st_size > 0


def test_subprocess_passphrase_for_key_file_keyring_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = _tutela(["keys", "init", "--keyfile", str(home / "keyring.key")], tmp_path,
                   TUTELA_HOME=str(home))  # fmt: skip
    assert made.returncode == 0, made.stderr
    (tmp_path / "f").write_text("secret")
    proc = _tutela(
        ["encrypt", "f", "f.enc"], tmp_path, TUTELA_HOME=str(home), TUTELA_PASSPHRASE="pw"
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        f"error: cannot open keyring {home / 'keyring'}: it is locked by a key file, "
        "but the passphrase from TUTELA_PASSPHRASE was tried"
    )
    assert f"unset TUTELA_PASSPHRASE to use the key file {home / 'keyring.key'}" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "f.enc").exists()
