"""Every example runs as a user would run it (``python examples/...``) and prints what its
docstring promises; these tests read the printed results (and the files it wrote)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _run(script: str, *args: str, tmp_path: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TUTELA_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match is not None, (pattern, text)
    return float(match.group(1))


def test_digits_cnn_reaches_095_without_dp_and_reports_epsilon_with_dp_sgd(
    tmp_path: Path,
) -> None:
    out = _run("digits_cnn.py", "--quick", tmp_path=tmp_path)
    assert "10 sites" in out
    assert _number(r"without DP: test accuracy ([0-9.]+)", out) >= 0.95
    private = r"with DP-SGD and SecAgg\+: test accuracy ([0-9.]+), epsilon ([0-9.]+)"
    match = re.search(private, out)
    assert match is not None, out
    accuracy, epsilon = float(match.group(1)), float(match.group(2))
    assert 0.0 < epsilon <= 8.0  # spent, and within the study's budget
    assert accuracy > 0.2  # better than chance (0.1) even under DP


def test_custom_tabular_model_gives_equal_results_in_process_and_over_the_network(
    tmp_path: Path,
) -> None:
    out = _run("custom_tabular/run.py", "--workdir", str(tmp_path / "work"), tmp_path=tmp_path)
    metric = r"accuracy ([0-9.]+)\s+ROC AUC ([0-9.]+)\s+log loss ([0-9.]+)"
    local = re.search(r"in process:\s+" + metric, out)
    remote = re.search(r"over the network:\s+" + metric, out)
    assert local is not None and remote is not None, out
    for i in (1, 2, 3):
        assert float(local.group(i)) == pytest.approx(float(remote.group(i)), abs=1e-3)
    assert float(local.group(2)) > 0.6  # the model learned something (AUC)
    assert ": equal" in out
    # each hospital ran its own agent on its own file and joined the study
    for i in (1, 2, 3):
        log = (tmp_path / "work" / f"hospital-{i}" / "agent.log").read_text()
        assert "joined 1 study(ies), refused 0" in log


def test_dp_analytics_prints_epsilons_and_refuses_the_over_budget_query(tmp_path: Path) -> None:
    out = _run("dp_analytics.py", tmp_path=tmp_path)
    answers = re.findall(r"epsilon ([0-9.]+)\s+remaining ([0-9.]+)", out)
    assert len(answers) == 5
    spent = 0.0
    for epsilon, remaining in answers:
        spent += float(epsilon)
        assert float(remaining) == pytest.approx(1.0 - spent, abs=1e-6)
    assert re.search(r"refused: mean\(bmi\) at epsilon 0\.5: .*budget.*exceeded", out)
    assert "nothing was spent" in out
    assert _number(r"\nremaining ([0-9.]+) \(nothing spent", out) == pytest.approx(1.0 - spent)


def test_anonymise_leaves_no_planted_identifier_in_the_redacted_notes(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    out = _run("anonymise.py", "--notes-dir", str(notes), tmp_path=tmp_path)
    spec = importlib.util.spec_from_file_location("anonymise_example", EXAMPLES / "anonymise.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    planted = [value for patient in example.PATIENTS for value in patient]
    originals = "\n".join(p.read_text() for p in sorted(notes.glob("note-*.txt")))
    redacted = "\n".join(p.read_text() for p in sorted((notes / "redacted").glob("note-*.txt")))
    assert len(list((notes / "redacted").glob("note-*.txt"))) == len(example.PATIENTS)
    assert all(value in originals for value in planted)  # they were planted
    assert [value for value in planted if value in redacted] == []
    assert "[PERSON]" in redacted and "[SSN]" in redacted and "metformin" in redacted
    assert f"planted identifiers left in the redacted notes: 0 of {len(planted)}" in out
    # the table: k-anonymity achieved and verified on the released table
    assert re.search(r"k achieved ([5-9]|\d\d+) \(requested 5, verified True\)", out), out
    assert "re-identification risk: prosecutor max" in out
    assert "dropped: address, city, email, mrn, name, patient_id, phone, ssn" in out


def test_the_custom_tabular_study_and_policy_pin_the_shipped_models_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Editing clinic_models.py without updating its hash would make every site refuse the
    study; say so here, with the hash to paste, rather than in a network run."""
    import tomllib

    from tutela.fl.models import factory_source_sha256

    here = EXAMPLES / "custom_tabular"
    monkeypatch.syspath_prepend(str(here))
    study = tomllib.loads((here / "study.toml").read_text())["model"]
    policy = tomllib.loads((here / "site-policy.toml").read_text())["models"]
    actual = factory_source_sha256(study["factory"])
    assert study["source_sha256"] == actual, f"update study.toml: source_sha256 = {actual!r}"
    assert policy == [{"factory": study["factory"], "sha256": actual}]
