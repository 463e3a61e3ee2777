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
