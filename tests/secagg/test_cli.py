"""``tutela secagg simulate`` through typer's runner and a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from tutela.cli.main import app


def test_simulate_json_reports_the_issue_fields() -> None:
    result = CliRunner().invoke(
        app,
        [
            "secagg",
            "simulate",
            "--clients",
            "12",
            "--dim",
            "300",
            "--dropout",
            "0.1",
            "--seed",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in (
        "max_abs_error",
        "client_ms_median",
        "server_ms",
        "plain_aggregate_ms",
        "bytes_per_client",
        "dropped",
        "k",
        "threshold",
        "modulus_bits",
        "quantization_error_bound",
    ):
        assert key in report
    assert report["n"] == 12 and sum(report["dropped_count"].values()) == 1
    assert report["max_abs_error"] <= report["quantization_error_bound"]


def test_simulate_text_with_neighbors() -> None:
    result = CliRunner().invoke(
        app,
        ["secagg", "simulate", "--clients", "8", "--dim", "50", "--neighbors", "4", "--seed", "1"],
    )
    assert result.exit_code == 0, result.output
    assert "max_abs_error" in result.output and "k=4" in result.output


def test_simulate_refuses_a_threshold_not_above_half_the_neighbours() -> None:
    args = ["secagg", "simulate", "--clients", "8", "--dim", "5", "--neighbors", "4"]
    for t in ("1", "2"):
        result = CliRunner().invoke(app, [*args, "--threshold", t])
        assert result.exit_code != 0
        assert isinstance(result.exception, ValueError)
        assert str(result.exception).startswith("threshold must be in [3, k=4]")
    assert CliRunner().invoke(app, [*args, "--threshold", "3"]).exit_code == 0


def test_subprocess_error_is_one_line_and_exit_1() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tutela",
            "secagg",
            "simulate",
            "--clients",
            "10",
            "--dim",
            "10",
            "--neighbors",
            "2",
            "--threshold",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: threshold must be in [2, k=2] (more than half of the neighbours)"
    ]
    assert "Traceback" not in proc.stderr


def test_subprocess_runs_a_round() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tutela",
            "secagg",
            "simulate",
            "--clients",
            "5",
            "--dim",
            "20",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["protocol"] == "secagg+"
