"""``tutela dp audit`` through the real command: flagship defaults, run directories, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.run import tutela
from tutela.errors import DataError
from tutela.fl.recipes import flagship_config, run_configured_study
from tutela.governance.results import load_results


def _one_line_error(r: object, needle: str) -> None:
    assert r.returncode != 0  # type: ignore[attr-defined]
    err = r.stderr.strip()  # type: ignore[attr-defined]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert needle in err, err


def test_white_box_on_the_flagship(tmp_path: Path) -> None:
    r = tutela(
        "dp", "audit", "--mode", "white-box", "--epsilon", "2", "--canaries", "200",
        "--rounds", "2", "--seed", "3", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["mode"], out["canary_kind"], out["study"]) == (
        "white-box", "dirac-gradient", "hospital-diabetes",
    )  # fmt: skip
    assert (out["canaries"], out["guesses"], out["k_plus"], out["k_minus"]) == (200, 100, 50, 50)
    assert out["confidence"] == 0.95 and out["delta"] == 1e-5
    # the site's DP-SGD share of the study's epsilon (the rest pays for standardisation)
    assert out["claimed_epsilon"] == pytest.approx(1.8, abs=0.02)
    assert out["epsilon_lower_bound"] < out["claimed_epsilon"]
    assert out["contradicts_claim"] is False


def test_table_output_and_chosen_guesses(tmp_path: Path) -> None:
    r = tutela(
        "dp", "audit", "--epsilon", "2", "--canaries", "40", "--guesses", "5", "--rounds",
        "1", "--confidence", "0.9", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "epsilon lower bound" in r.stdout and "accounted epsilon" in r.stdout
    assert "10 (5 in, 5 out)" in r.stdout and "40 (" in r.stdout and "0.9" in r.stdout


@pytest.mark.parametrize(("args", "needle"), [
    (["--mode", "white-box"], "sample-level DP"),
    (["--canaries", "0"], "--canaries"),
    (["--canaries", "10", "--guesses", "6"], "--guesses"),
    (["--confidence", "1.5"], "--confidence"),
    (["--run-dir", "nowhere"], "not a run directory"),
    (["--rounds", "0"], "--rounds"),
])  # fmt: skip
def test_bad_options_fail_in_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    _one_line_error(tutela("dp", "audit", *args, cwd=tmp_path), needle)


def _run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the run's keys live in ./.tutela, as for the CLI below
    run = tmp_path / "run"
    run_configured_study(flagship_config(rounds=2), run_dir=run, with_baselines=False)
    return run


def test_run_directory_gets_the_audit_beside_its_epsilon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run_dir(tmp_path, monkeypatch)
    before = load_results(run / "results.json")
    assert before.empirical_audit is None
    r = tutela(
        "dp", "audit", "--mode", "black-box", "--run-dir", "run", "--canaries", "40",
        "--rounds", "1", "--seed", "1", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    after = load_results(run / "results.json")
    audit = after.empirical_audit
    assert audit is not None
    assert (audit.mode, audit.canary_kind, audit.canaries) == ("black-box", "mislabelled", 40)
    assert audit.epsilon_lower_bound == out["epsilon_lower_bound"]
    assert audit.correct == out["correct"] and audit.guesses == 20
    assert audit.accounted_epsilon is None  # the run had no DP
    # everything else the run recorded is unchanged
    assert after.model_copy(update={"empirical_audit": None}) == before
    # white-box needs DP-SGD in the recorded study: refused in one line, nothing written
    _one_line_error(tutela("dp", "audit", "--run-dir", "run", cwd=tmp_path), "sample-level DP")
    _one_line_error(
        tutela("dp", "audit", "--run-dir", "run", "--epsilon", "1", cwd=tmp_path),
        "--epsilon comes from the run directory",
    )


def test_a_forged_audit_in_results_json_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who controls the run directory writes a negative lower bound or an unknown
    field: reading the run fails with one line naming the field."""
    run = _run_dir(tmp_path, monkeypatch)
    doc = json.loads((run / "results.json").read_text())
    doc["empirical_audit"] = {
        "method": "one-run", "mode": "white-box", "canary_kind": "dirac-gradient",
        "canaries": 10, "included": 5, "guesses": 4, "correct": 4, "confidence": 0.95,
        "delta": 1e-5, "epsilon_lower_bound": -1.0, "accounted_epsilon": 1.0,
    }  # fmt: skip
    (run / "results.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"empirical_audit\.epsilon_lower_bound"):
        load_results(run / "results.json")
    doc["empirical_audit"]["epsilon_lower_bound"] = 0.5
    doc["empirical_audit"]["verdict"] = "private"
    (run / "results.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"empirical_audit\.verdict: unknown key"):
        load_results(run / "results.json")
    _one_line_error(
        tutela("dp", "audit", "--mode", "black-box", "--run-dir", "run", cwd=tmp_path),
        "empirical_audit.verdict",
    )
