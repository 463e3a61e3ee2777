"""``tutela comply --study S --policy P``: a study checked against a site policy before it
runs, with exit codes and JSON a CI gate can use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli.run import tutela

STUDY = """
[study]
name = "cohort"
purpose = "research"
[data]
path = "cohort.csv"
outcome = "outcome"
numeric = ["age", "bmi"]
categorical = ["sex"]
[data.categories]
sex = ["F", "M"]
[privacy]
mode = "sample"
epsilon = 2.0
[secure_aggregation]
protocol = "secagg+"
"""


@pytest.fixture
def study(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {
            "age": rng.uniform(20, 90, 40),
            "bmi": rng.normal(28, 4, 40),
            "sex": rng.choice(["F", "M"], 40),
            "outcome": rng.integers(0, 2, 40),
        }
    ).to_csv(tmp_path / "cohort.csv", index=False)
    (tmp_path / "study.toml").write_text(STUDY)
    return tmp_path / "study.toml"


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_an_accepted_study_passes_the_gate(study: Path, tmp_path: Path) -> None:
    policy = _policy(tmp_path, '[purposes.research]\ncolumns = ["age", "bmi", "sex"]\n')
    out = tutela("comply", "--study", str(study), "--policy", str(policy), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["allowed"] is True
    assert {f["rule"] for f in doc["findings"]} >= {"purpose", "columns", "dp-required"}


def test_a_refused_study_fails_the_gate_with_every_reason(study: Path, tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        '[purposes.research]\ncolumns = ["age"]\n[floor]\nmax_epsilon = 1.0\n',
    )
    out = tutela("comply", "--study", str(study), "--policy", str(policy), "--json", cwd=tmp_path)
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["allowed"] is False
    failed = {f["rule"] for f in doc["findings"] if not f["passed"]}
    assert "columns" in failed and len(failed) == 2  # the columns and the epsilon cap
    assert "bmi" in out.stderr and "sex" in out.stderr


def test_a_model_factory_off_the_allow_list_fails_the_gate(study: Path, tmp_path: Path) -> None:
    digest = "0" * 64
    study.write_text(
        STUDY + f'[model]\nfactory = "clinic.models:build"\nsource_sha256 = "{digest}"\n'
    )
    policy = _policy(tmp_path, '[purposes.research]\ncolumns = ["age", "bmi", "sex"]\n')
    out = tutela("comply", "--study", str(study), "--policy", str(policy), cwd=tmp_path)
    assert out.returncode == 1
    assert "clinic.models:build" in out.stderr and "not on this site's list" in out.stderr
    allowed = _policy(
        tmp_path,
        '[purposes.research]\ncolumns = ["age", "bmi", "sex"]\n'
        f'[[models]]\nfactory = "clinic.models:build"\nsha256 = "{digest}"\n',
    )
    out = tutela("comply", "--study", str(study), "--policy", str(allowed), cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def test_bad_input_is_one_clear_line(study: Path, tmp_path: Path) -> None:
    out = tutela("comply", "--study", str(study), "--policy", "missing.toml", cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "missing.toml" in out.stderr
