"""``tutela he`` through typer's runner and through a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from tutela.cli.main import app

runner = CliRunner()


def test_demo_ckks_json() -> None:
    r = runner.invoke(app, ["he", "demo", "--sites", "2", "--size", "5000", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["mode"] == "ckks" and out["within_bound"] is True
    assert out["max_abs_error"] <= out["error_bound"] < 1e-5
    assert out["parameters"]["poly_modulus_degree"] == 8192
    assert out["bytes"]["contribution_per_site"] > 5000 * 8


def test_demo_threshold_json() -> None:
    r = runner.invoke(
        app, ["he", "demo", "--mode", "threshold", "--size", "40", "--key-bits", "1024", "--json"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["within_bound"] is True and out["parameters"]["key_bits"] == 1024


def test_infer_table() -> None:
    r = runner.invoke(app, ["he", "infer"])
    assert r.exit_code == 0, r.output
    assert "accuracy_encrypted" in r.output


def test_errors_are_one_line_with_nonzero_exit() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tutela", "he", "demo", "--sites", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["error: --sites and --size must be at least 1"]
    bad = runner.invoke(app, ["he", "demo", "--mode", "nope"])
    assert bad.exit_code == 2  # typer's own usage error
