"""``tutela anonymize`` and ``tutela pii``: through CliRunner and one real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from tutela.anonymize import check_privacy, generate_corpus, generate_patients
from tutela.cli.main import app
from tutela.errors import AnonymizationError, ConfigError, DataError

runner = CliRunner()
KEY_HEX = bytes(range(32)).hex()


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "in.csv"
    generate_patients(200, seed=21).to_csv(path, index=False)
    return path


def test_anonymize_writes_table_and_report(tmp_path, table):
    out, rep = tmp_path / "out.csv", tmp_path / "r.json"
    result = runner.invoke(
        app,
        [
            "anonymize",
            str(table),
            "--profile",
            "hipaa-safe-harbor",
            "--k",
            "5",
            "--l",
            "2",
            "--sensitive",
            "diagnosis",
            "--no-ner",
            "--out",
            str(out),
            "--report",
            str(rep),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(rep.read_text())
    for key in ("k_achieved", "suppressed_rows", "equivalence_classes", "ncp", "roles"):
        assert key in report
    released = pd.read_csv(out, dtype=str)
    assert "ssn" not in released.columns and "name" not in released.columns
    check = check_privacy(released, report["quasi_identifiers"], "diagnosis")
    assert check.k >= 5 and check.k == report["k_achieved"]
    assert check.l_distinct >= 2
    assert "k=" in result.output


def test_anonymize_explicit_qis(tmp_path, table):
    out, rep = tmp_path / "out.csv", tmp_path / "r.json"
    result = runner.invoke(
        app,
        [
            "anonymize",
            str(table),
            "--k",
            "10",
            "--quasi-identifiers",
            "age,sex,race",
            "--no-ner",
            "--out",
            str(out),
            "--report",
            str(rep),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(rep.read_text())
    assert report["quasi_identifiers"] == ["age", "sex", "race"]
    assert check_privacy(pd.read_csv(out, dtype=str), ["age", "sex", "race"]).k >= 10


def test_anonymize_audit_record(tmp_path, table):
    pytest.importorskip("tutela.governance.audit")
    from tutela.governance.audit import AuditLog

    log = tmp_path / "audit.jsonl"
    args = [
        "anonymize",
        str(table),
        "--k",
        "5",
        "--no-ner",
        "--out",
        str(tmp_path / "o.csv"),
        "--report",
        str(tmp_path / "r.json"),
        "--audit",
        str(log),
    ]
    assert runner.invoke(app, args).exit_code == 0
    with AuditLog.open(log) as audit:
        assert audit.size == 1
        assert audit.verify_unanchored().ok
        (record,) = list(audit.records())
    report = json.loads((tmp_path / "r.json").read_text())
    assert record.action == "anonymize:table"
    assert record.resource == str(table)
    assert record.details["k_achieved"] == report["k_achieved"] >= 5
    assert record.details["suppressed_rows"] == report["suppressed_rows"]
    assert len(record.details["output_sha256"]) == 64


def test_failures_write_nothing(tmp_path, table):
    out, rep = tmp_path / "out.csv", tmp_path / "r.json"
    result = runner.invoke(
        app,
        [
            "anonymize",
            str(table),
            "--k",
            "500",
            "--no-ner",
            "--out",
            str(out),
            "--report",
            str(rep),
        ],
    )
    assert isinstance(result.exception, AnonymizationError)
    assert "k=500" in str(result.exception)
    result = runner.invoke(
        app,
        [
            "anonymize",
            str(table),
            "--k",
            "5",
            "--quasi-identifiers",
            "age,height_cm",
            "--no-ner",
            "--out",
            str(out),
            "--report",
            str(rep),
        ],
    )
    assert isinstance(result.exception, ValueError)
    assert "'height_cm'" in str(result.exception)
    assert list(tmp_path.iterdir()) == [table]  # no output, no temp files left behind


def test_unreadable_inputs(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xff\xfe\x00garbage\x00")
    result = runner.invoke(
        app,
        [
            "anonymize",
            str(bad),
            "--out",
            str(tmp_path / "o.csv"),
            "--report",
            str(tmp_path / "r.json"),
        ],
    )
    assert isinstance(result.exception, DataError)
    result = runner.invoke(app, ["pii", "scan", str(tmp_path / "none.txt")])
    assert isinstance(result.exception, DataError)


def test_pii_scan_json_offsets(tmp_path):
    note = generate_corpus(1, seed=3)[0]
    path = tmp_path / "note.txt"
    path.write_text(note.text, encoding="utf-8")
    result = runner.invoke(app, ["pii", "scan", str(path), "--json", "--no-ner"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"spans"}
    assert doc["spans"]
    for span in doc["spans"]:
        assert set(span) == {"start", "end", "label", "score"}
        assert note.text[span["start"] : span["end"]].strip()


def test_pii_scan_directory_gives_one_line_per_file(tmp_path):
    for i, note in enumerate(generate_corpus(3, seed=4)):
        (tmp_path / f"n{i}.txt").write_text(note.text, encoding="utf-8")
    result = runner.invoke(app, ["pii", "scan", str(tmp_path), "--json", "--no-ner"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [x["path"] for x in lines] == [str(tmp_path / f"n{i}.txt") for i in range(3)]
    assert all(x["spans"] for x in lines)


def test_pii_redact_and_reveal(tmp_path):
    path = tmp_path / "note.txt"
    path.write_text("Patient: Maria Lopez, SSN 536-22-1234, seen 03/14/2021.\n", encoding="utf-8")
    out = tmp_path / "red.txt"
    result = runner.invoke(app, ["pii", "redact", str(path), "--out", str(out), "--no-ner"])
    assert result.exit_code == 0, result.output
    assert out.read_text() == "Patient: [PERSON], SSN [SSN], seen [DATE].\n"
    enc = tmp_path / "enc.txt"
    env = {"TUTELA_PSEUDONYM_KEY": KEY_HEX}
    result = runner.invoke(
        app,
        ["pii", "redact", str(path), "--operator", "encrypt", "--out", str(enc), "--no-ner"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "536-22-1234" not in enc.read_text()
    back = runner.invoke(app, ["pii", "reveal", str(enc)], env=env)
    assert back.stdout == path.read_text()
    result = runner.invoke(
        app,
        ["pii", "redact", str(path), "--operator", "pseudonymize", "--no-ner"],
        # no key anywhere: none in the environment and an empty home (no keyring)
        env={"TUTELA_PSEUDONYM_KEY": "", "TUTELA_HOME": str(tmp_path / "empty-home")},
    )
    assert isinstance(result.exception, ConfigError)


def test_subprocess_error_is_one_line(tmp_path, table):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("TUTELA_DEBUG", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tutela",
            "anonymize",
            str(table),
            "--k",
            "1000",
            "--no-ner",
            "--out",
            str(tmp_path / "o.csv"),
            "--report",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["error: k=1000 is larger than the table (200 rows)"]
    assert not (tmp_path / "o.csv").exists()


def test_pii_scan_directory_reports_unreadable_files(tmp_path):
    (tmp_path / "a.txt").write_text("SSN 536-22-1234\n", encoding="utf-8")
    (tmp_path / "b.bin").write_bytes(b"\x00\x01binary")
    result = runner.invoke(app, ["pii", "scan", str(tmp_path), "--json", "--no-ner"])
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert lines[0]["spans"][0]["label"] == "SSN"
    assert "binary" in lines[1]["error"]
    assert isinstance(result.exception, DataError)
    assert "1 file(s) could not be scanned" in str(result.exception)


def test_anonymize_pseudonymised_identifiers_link_across_runs(tmp_path, table):
    key_file = tmp_path / "key.hex"
    key_file.write_text(KEY_HEX)
    outs = []
    for i in range(2):
        out, rep = tmp_path / f"o{i}.csv", tmp_path / f"r{i}.json"
        args = [
            "anonymize",
            str(table),
            "--k",
            "5",
            "--no-ner",
            "--direct-identifiers",
            "pseudonymize",
            "--key-file",
            str(key_file),
            "--out",
            str(out),
            "--report",
            str(rep),
        ]
        assert runner.invoke(app, args).exit_code == 0
        outs.append(pd.read_csv(out, dtype=str))
        assert json.loads(rep.read_text())["safe_harbor_strict"] is False
    assert outs[0]["ssn"].tolist() == outs[1]["ssn"].tolist()
    assert outs[0]["ssn"].str.startswith("SSN-").all()
    source = pd.read_csv(table, dtype=str)
    assert not set(source["ssn"]) & set(outs[0]["ssn"])
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 8)
    result = runner.invoke(
        app,
        [
            "anonymize",
            str(table),
            "--direct-identifiers",
            "pseudonymize",
            "--key-file",
            str(short),
            "--out",
            str(tmp_path / "x.csv"),
            "--report",
            str(tmp_path / "x.json"),
        ],
    )
    assert isinstance(result.exception, ConfigError)


def test_pseudonym_key_comes_from_the_keyring(tmp_path):
    """With no explicit key, pseudonyms use a key kept under the (unlocked) keyring: the same
    keyring gives the same, linkable pseudonyms; another keyring gives different ones."""
    note = tmp_path / "note.txt"
    note.write_text("Patient: Maria Lopez, SSN 536-22-1234.\n", encoding="utf-8")

    def pseudonymise(ring_dir):
        env = {
            "TUTELA_KEYRING": str(ring_dir / "keyring"),
            "TUTELA_PASSPHRASE": "correct horse",
            "TUTELA_PSEUDONYM_KEY": "",
        }
        if not (ring_dir / "keyring").exists():
            made = runner.invoke(app, ["keys", "init"], env=env)
            assert made.exit_code == 0, made.output
        out = runner.invoke(
            app, ["pii", "redact", str(note), "--operator", "pseudonymize", "--no-ner"], env=env
        )
        assert out.exit_code == 0, out.output
        return out.stdout

    first, again = pseudonymise(tmp_path / "a"), pseudonymise(tmp_path / "a")
    other = pseudonymise(tmp_path / "b")
    assert "536-22-1234" not in first and "Maria" not in first
    assert first == again
    assert first != other
    stored = (tmp_path / "a" / "keyring.pseudonym").read_bytes()
    assert len(stored) > 32 and bytes(range(32)) not in stored  # enveloped, not raw
