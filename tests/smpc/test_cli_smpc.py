"""``tutela smpc`` through typer's runner and through a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from tutela.cli.main import app

runner = CliRunner()


def test_stats_json() -> None:
    r = runner.invoke(app, ["smpc", "stats", "--parties", "4", "--columns", "3", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["count"] == 569 and out["parties"] == 4 and out["within_stated_bounds"] is True


def test_logreg_json() -> None:
    r = runner.invoke(app, ["smpc", "logreg", "--iterations", "40", "--json"])
    assert r.exit_code == 0, r.output
    acc = json.loads(r.output)["accuracy"]
    assert acc["secure"] >= acc["plaintext_sklearn"] - 0.03


def test_stats_table_and_errors() -> None:
    r = runner.invoke(app, ["smpc", "stats", "--columns", "2"])
    assert r.exit_code == 0 and "mean.mean radius" in r.output
    proc = subprocess.run(
        [sys.executable, "-m", "tutela", "smpc", "stats", "--parties", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["error: --parties must be at least 2"]


def test_loopback_demo_runs_every_computation_between_processes(tmp_path) -> None:
    """``tutela smpc demo``: a loopback coordinator, two hospitals and a dealer as processes;
    PSI finds exactly the shared patients, the vertical model equals float64 training on the
    linked rows, joint statistics equal the pooled tables, and every session is audited."""
    proc = subprocess.run(
        [sys.executable, "-m", "tutela", "smpc", "demo", "--dir", str(tmp_path / "demo"),
         "--rows", "60", "--common", "45", "--json"],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["psi_cardinality"] == out["psi_linked_rows"] == out["true_shared_patients"] == 45
    model = out["vertical_model"]
    assert model["rows"] == 45 and model["max_weight_difference_to_plaintext"] < 1e-3
    stats = out["joint_statistics"]
    assert stats["count"] == out["joint_statistics"]["plaintext_count"] == 120
    assert abs(stats["mean_age"] - stats["plaintext_mean_age"]) < 1e-3
    completed = [e for e in out["audit"] if e["action"] == "smpc.complete"]
    assert sorted(e["resource"] for e in completed) == [
        "smpc/count", "smpc/link", "smpc/stats", "smpc/train"
    ]  # fmt: skip


def _one_line_error(args: list[str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "tutela", "smpc", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_party_commands_refuse_bad_input_in_one_line(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    creds = ["--coordinator", "https://127.0.0.1:9", "--ca", str(ca), "--cert", str(ca),
             "--key", str(ca), "--session", "s"]  # fmt: skip
    data = tmp_path / "t.csv"
    data.write_text("given_name,family_name,date_of_birth\nA,B,1980-01-01\n")
    pair = ["--party", "hospital-a", "--party", "hospital-b"]
    assert "--mode must be one of" in _one_line_error(
        ["psi", *creds, *pair, "--data", str(data), "--mode", "everything"]
    )
    assert "--keys: choose from" in _one_line_error(
        ["psi", *creds, *pair, "--data", str(data), "--keys", "ssn"]
    )
    assert "then the dealer" in _one_line_error(
        ["psi", *creds, *pair, "--data", str(data), "--mode", "shares"]
    )
    assert "no such file" in _one_line_error(["psi", *creds, *pair, "--data", str(tmp_path / "x")])
    assert "no column 'date_of_birth'" in _one_line_error(
        ["psi", *creds, *pair, "--data", str(_without_dob(tmp_path))]
    )
    assert "one bound per column" in _one_line_error(
        ["stats", *creds, *pair, "--data", str(data), "--columns", "a,b", "--bounds", "1"]
    )
    assert "--epsilon needs --state-dir" in _one_line_error(
        ["stats", *creds, *pair, "--data", str(data), "--columns", "a", "--bounds", "1",
         "--epsilon", "1"]
    )  # fmt: skip
    assert "the dealer serves" in _one_line_error(["dealer", *creds, *pair, "--function", "x"])
    assert "then the dealer" in _one_line_error(["train", *creds, *pair, "--data", str(data)])


def _without_dob(tmp_path) -> object:
    path = tmp_path / "nodob.csv"
    path.write_text("given_name,family_name\nA,B\n")
    return path
