"""Shared data for the DP SQL tests: a small synthetic EHR table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def ehr(n: int, seed: int) -> pd.DataFrame:
    """Synthetic patients: age, sex, diabetic, bmi (some missing), and an identifier."""
    rng = np.random.default_rng(seed)
    bmi = rng.normal(27, 5, n)
    bmi[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "patient_id": np.arange(n),
            "mrn": [f"M{i:07d}" for i in range(n)],
            "age": rng.integers(18, 95, n),
            "sex": rng.choice(["F", "M"], n),
            "diabetic": rng.random(n) < 0.3,
            "bmi": bmi,
            "postcode": rng.choice(["AB1", "CD2"], n),
        }
    )


POLICY = """
site = "test-site"
never_share = ["postcode"]

[purposes.cohort-discovery]
columns = ["age", "sex", "diabetic", "bmi", "postcode", "mrn"]

[analytics]
min_cohort = 10
max_query_epsilon = 1.0
analyst_epsilon = 2.0
study_epsilon = 3.0
delta = 1e-6

[analytics.categories]
sex = ["F", "M"]
diabetic = [true, false]
"""


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "patients.parquet"
    ehr(3000, 1).to_parquet(path)
    return path


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY, encoding="utf-8")
    return path
