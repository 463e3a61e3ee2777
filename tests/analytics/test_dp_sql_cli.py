"""``tutela dp sql``: answers with intervals, the budget follows the data's content, and every
refusal is one line with a non-zero exit and nothing charged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli.run import tutela
from tutela.cli.main import app
from tutela.dp.ledger import PrivacyLedger
from tutela.errors import ConfigError
from tutela.governance.minimisation import SitePolicy

runner = CliRunner()
SQL = "SELECT count(*), avg(clamp(bmi, 10, 60)) FROM patients WHERE age > 60 GROUP BY sex"


def _args(table: Path, policy: Path, ledger: Path, *extra: str) -> list[str]:
    return ["dp", "sql", str(table), *extra, "--ledger", str(ledger), "--policy", str(policy),
            "--purpose", "cohort-discovery"]  # fmt: skip


def test_answers_with_intervals_and_one_budget_per_content(
    table: Path, policy_file: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    first = runner.invoke(
        app, _args(table, policy_file, ledger, SQL, "--epsilon", "0.5", "--budget", "0.6", "--json")
    )
    assert first.exit_code == 0, first.output
    out = json.loads(first.output)
    assert [r["sex"] for r in out["rows"]] == ["F", "M"]
    assert all(r["count_ci_low"] < r["count"] < r["count_ci_high"] for r in out["rows"])
    assert out["epsilon_spent"] == pytest.approx(0.5, abs=1e-3) and out["delta"] == 1e-6
    copy = tmp_path / "renamed.parquet"
    shutil.copy(table, copy)
    second = runner.invoke(app, _args(copy, policy_file, ledger, SQL, "--epsilon", "0.5"))
    assert second.exit_code != 0
    assert "budget" in str(second.exception) or "budget" in second.output
    assert len(PrivacyLedger(ledger).records()) == 2  # the first query's cohort test, release


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT count(*) FROM p WHERE postcode = 'AB1'", "outside the site policy"),
        ("SELECT avg(bmi) FROM p", "needs declared bounds"),
        ("SELECT count(*) FROM p; DELETE FROM p", "expected the end of the query"),
    ],
)
def test_refusals_are_one_line_and_charge_nothing(
    table: Path, policy_file: Path, tmp_path: Path, sql: str, message: str
) -> None:
    ledger = tmp_path / "ledger.db"
    result = runner.invoke(
        app, _args(table, policy_file, ledger, sql, "--epsilon", "0.5", "--budget", "2")
    )
    assert result.exit_code != 0 and message in str(result.exception)
    assert not PrivacyLedger(ledger).records()


def test_a_small_cohort_is_refused_and_only_its_noisy_test_is_charged(
    table: Path, policy_file: Path, tmp_path: Path
) -> None:
    strict = tmp_path / "strict.toml"  # 3,000 rows against a minimum of 100,000: far below
    strict.write_text(policy_file.read_text().replace("min_cohort = 10", "min_cohort = 100000"))
    ledger = tmp_path / "ledger.db"
    sql = "SELECT count(*) FROM p WHERE age > 30"
    result = runner.invoke(
        app, _args(table, strict, ledger, sql, "--epsilon", "0.5", "--budget", "2")
    )
    assert result.exit_code != 0
    assert "cohort is below this site's minimum of 100000 rows" in str(result.exception)
    (record,) = PrivacyLedger(ledger).records()
    assert record.label.startswith("minimum-cohort test of ")
    assert record.epsilon_after == pytest.approx(0.05, abs=1e-3)  # 0.1 of the query's 0.5


def test_a_refusal_in_a_real_process_is_one_line(
    table: Path, policy_file: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    sql = "SELECT count(*) FROM p WHERE postcode = 'AB1'"
    done = tutela(*_args(table, policy_file, ledger, sql, "--epsilon", "0.5", "--budget", "2"),
                  cwd=tmp_path)  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "outside the site policy" in lines[0], done.stderr
    assert not PrivacyLedger(ledger).records()


def test_a_real_process_prints_the_table_and_the_cost(
    table: Path, policy_file: Path, tmp_path: Path
) -> None:
    done = tutela(*_args(table, policy_file, tmp_path / "l.db", SQL, "--epsilon", "0.5",
                         "--budget", "1"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "avg_bmi" in done.stdout and "epsilon spent: 0.5" in done.stdout


def test_the_analytics_table_of_a_policy_is_checked(tmp_path: Path, policy_file: Path) -> None:
    policy = SitePolicy.from_toml(policy_file)
    assert policy.analytics.categories["diabetic"] == ("true", "false")
    assert policy.analytics.min_cohort == 10 and policy.analytics.analyst_epsilon == 2.0
    bad = tmp_path / "bad.toml"
    bad.write_text(policy_file.read_text() + "\n[analytics.extra]\nx = 1\n")
    with pytest.raises(ConfigError):
        SitePolicy.from_toml(bad)
    bad.write_text(policy_file.read_text().replace("min_cohort = 10", "min_cohort = 0"))
    with pytest.raises(ConfigError, match="min_cohort must be a positive integer"):
        SitePolicy.from_toml(bad)
    bad.write_text(policy_file.read_text().replace("min_cohort", "min_cohrt"))
    with pytest.raises(ConfigError, match=r"unknown key analytics\.min_cohrt"):
        SitePolicy.from_toml(bad)
