"""``tutela dp epsilon|calibrate|query``: through CliRunner and real subprocesses.

``tutela dp query`` is a front end over the DP SQL engine: its function form is written as
restricted SQL, answered with Gaussian noise and intervals, charged to the same ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tutela.cli.main import app
from tutela.dp.accounting import compute_epsilon, dpsgd_event
from tutela.dp.analytics import QueryError, fingerprint, read_csv
from tutela.dp.ledger import LedgerError, PrivacyLedger
from tutela.errors import BudgetExceeded, DataError

runner = CliRunner()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "sex": rng.choice(["F", "M"], n),
            "income": rng.integers(0, 200_000, n),
        }
    )
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    return path


def _query(data: Path, ledger: Path, *extra: str) -> list[str]:
    return ["dp", "query", str(data), "--ledger", str(ledger), *extra]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TUTELA_DEBUG", None)
    return env


def tutela(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tutela", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=_env(),
    )


# -- accounting -----------------------------------------------------------------------------


def test_epsilon_json_matches_dp_accounting_reference() -> None:
    args = ["dp", "epsilon", "--noise-multiplier", "1.1", "--sample-rate", str(256 / 60000)]
    args += ["--steps", "14062", "--delta", "1e-5", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["accountant"] == "pld"
    assert out["epsilon"] == pytest.approx(2.382, rel=0.01)  # dp-accounting PLD value


def test_epsilon_rdp_is_looser_and_text_output() -> None:
    base = ["dp", "epsilon", "--noise-multiplier", "1.0", "--sample-rate", "0.01"]
    base += ["--steps", "200", "--delta", "1e-5"]
    rdp = json.loads(runner.invoke(app, [*base, "--accountant", "rdp", "--json"]).stdout)
    pld = json.loads(runner.invoke(app, [*base, "--json"]).stdout)
    assert rdp["accountant"] == "rdp" and rdp["epsilon"] > pld["epsilon"] > 0
    text = runner.invoke(app, base)
    assert text.exit_code == 0 and text.stdout.startswith("epsilon = ")
    bad = runner.invoke(app, [*base, "--accountant", "gdp"])
    assert bad.exit_code != 0  # GDP/CLT is not offered


def test_calibrate_inverts_epsilon() -> None:
    args = ["dp", "calibrate", "--epsilon", "2.0", "--delta", "1e-5", "--sample-rate", "1.0"]
    args += ["--steps", "3", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    z = json.loads(result.stdout)["noise_multiplier"]
    assert compute_epsilon(dpsgd_event(z, 1.0, 3), 1e-5) <= 2.0
    assert compute_epsilon(dpsgd_event(z * 0.998, 1.0, 3), 1e-5) > 2.0
    text = runner.invoke(app, args[:-1])
    assert text.exit_code == 0 and text.stdout.startswith("noise multiplier = ")


# -- queries ----------------------------------------------------------------------------------


def test_query_json_spends_and_reports_budget_left(tmp_path: Path, data: Path) -> None:
    ledger = tmp_path / "ledger.db"
    args = _query(data, ledger, "--query", "mean(age)", "--bounds", "0,120", "--epsilon", "0.5")
    first = runner.invoke(app, [*args, "--budget", "2.0", "--json"])
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    assert set(out) >= {"answer", "interval", "epsilon_spent", "budget_left", "query"}
    assert out["query"] == 'SELECT avg(clamp("age", 0.0, 120.0)) FROM data'
    assert 18 <= out["answer"] <= 90 and out["epsilon_spent"] == pytest.approx(0.5, abs=1e-3)
    low, high = out["interval"]
    assert low <= out["answer"] <= high
    assert out["budget_left"] == pytest.approx(1.5, abs=1e-3)
    assert out["cost"]["statistics"] == 2 and out["cost"]["delta"] == 1e-6  # count, sum
    # count needs no bounds; --budget may be repeated when it agrees
    count = runner.invoke(
        app, [*_query(data, ledger, "--query", "count(age)", "--epsilon", "0.5"), "--json"]
    )
    assert count.exit_code == 0, count.output
    c = json.loads(count.stdout)
    assert abs(c["answer"] - 400) < 6 * c["noise_std"]
    assert c["budget_left"] < out["budget_left"] - 0.2  # the budget composes the two
    hist = runner.invoke(
        app,
        [
            *_query(data, ledger, "--query", "histogram(sex)", "--categories", "F,M"),
            *("--epsilon", "0.25", "--budget", "2.0"),
        ],
    )
    assert hist.exit_code == 0, hist.output
    assert hist.stdout.startswith('cost: SELECT histogram("sex") FROM data: epsilon 0.25')
    assert "histogram_sex[F]" in hist.stdout and "budget left: " in hist.stdout
    book = PrivacyLedger(ledger)
    assert out["scope"] == c["scope"] == fingerprint(read_csv(data))
    assert len(book.records(out["scope"])) == 3


def test_dry_run_shows_the_cost_and_spends_nothing(tmp_path: Path, data: Path) -> None:
    ledger = tmp_path / "ledger.db"
    args = _query(data, ledger, "--query", "variance(age)", "--bounds", "0,120")
    result = runner.invoke(app, [*args, "--epsilon", "0.3", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["epsilon"] == pytest.approx(0.3, abs=1e-3) and out["cost"]["statistics"] == 3
    assert PrivacyLedger(ledger).scopes() == ()


def test_budget_exceeded_spends_nothing(tmp_path: Path, data: Path) -> None:
    ledger = tmp_path / "ledger.db"
    args = _query(data, ledger, "--query", "sum(income)", "--bounds", "0,200000")
    ok = runner.invoke(app, [*args, "--epsilon", "0.75", "--budget", "0.9"])
    assert ok.exit_code == 0, ok.output
    over = runner.invoke(app, [*args, "--epsilon", "0.5"])  # composes to about 0.92
    assert over.exit_code != 0 and isinstance(over.exception, BudgetExceeded)
    assert "nothing was spent" in str(over.exception)
    assert len(PrivacyLedger(ledger).records()) == 1


def test_budget_must_agree_and_exist(tmp_path: Path, data: Path) -> None:
    ledger = tmp_path / "ledger.db"
    args = _query(data, ledger, "--query", "count(age)", "--epsilon", "0.1")
    missing = runner.invoke(app, args)
    assert isinstance(missing.exception, LedgerError)
    assert "pass --budget" in str(missing.exception)
    assert runner.invoke(app, [*args, "--budget", "1.0"]).exit_code == 0
    other = runner.invoke(app, [*args, "--budget", "3.0"])
    assert isinstance(other.exception, LedgerError) and "has budget epsilon=1.0" in str(
        other.exception
    )
    assert len(PrivacyLedger(ledger).records()) == 1


# -- the budget belongs to the data, not to the file name -----------------------------------


def test_a_copied_renamed_or_linked_file_shares_the_budget(tmp_path: Path, data: Path) -> None:
    ledger = tmp_path / "ledger.db"
    spend = ["--query", "count(*)", "--epsilon", "1.0", "--json"]
    first = runner.invoke(app, [*_query(data, ledger, *spend), "--budget", "1.0"])
    assert first.exit_code == 0, first.output
    copies = tmp_path / "elsewhere"
    copies.mkdir()
    copy = copies / "copy.csv"
    copy.write_bytes(data.read_bytes())
    crlf = copies / "crlf.csv"  # the same table, saved with other line endings
    crlf.write_bytes(data.read_bytes().replace(b"\n", b"\r\n"))
    shuffled = copies / "shuffled.csv"  # the same rows and columns in another order
    frame = pd.read_csv(data)
    frame.sample(frac=1.0, random_state=3)[["income", "age", "sex"]].to_csv(shuffled, index=False)
    link = copies / "link.csv"
    os.link(data, link)
    renamed = copies / "renamed.csv"
    data.rename(renamed)
    for path in (copy, crlf, shuffled, link, renamed):
        again = runner.invoke(app, [*_query(path, ledger, *spend), "--budget", "1.0"])
        assert again.exit_code != 0, (path, again.output)
        assert isinstance(again.exception, BudgetExceeded), (path, again.output)
    book = PrivacyLedger(ledger)
    assert len(book.scopes()) == 1 and len(book.records()) == 1
    # a different table is a different dataset with a budget of its own
    other = copies / "other.csv"
    frame.iloc[1:].to_csv(other, index=False)
    fresh = runner.invoke(app, [*_query(other, ledger, *spend), "--budget", "1.0"])
    assert fresh.exit_code == 0, fresh.output


def test_copied_file_through_real_processes_shares_the_budget(tmp_path: Path, data: Path) -> None:
    ledger = tmp_path / "ledger.db"
    args = ["--query", "mean(age)", "--bounds", "0,120", "--epsilon", "1.0", "--budget", "1.0"]
    args += ["--json"]
    first = tutela(*_query(data, ledger, *args), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    copy = tmp_path / "copy.csv"
    copy.write_bytes(data.read_bytes())
    second = tutela(*_query(copy, ledger, *args), cwd=tmp_path)
    assert second.returncode == 1 and second.stdout == ""
    assert second.stderr.startswith("error: privacy budget of ") and second.stderr.count("\n") == 1
    assert len(PrivacyLedger(ledger).records()) == 1


@pytest.mark.parametrize(
    "extra",
    [
        ["--query", "mean(sex)", "--bounds", "0,1"],
        ["--query", "sum(sex)", "--bounds", "0,1"],
        ["--query", "quantile(sex, 0.5)", "--bounds", "0,1"],
        ["--query", "histogram(sex)", "--bins", "0,1,2"],
    ],
)
def test_a_non_numeric_column_is_refused_and_nothing_is_charged(
    tmp_path: Path, data: Path, extra: list[str]
) -> None:
    ledger = tmp_path / "ledger.db"
    ok = runner.invoke(app, _query(data, ledger, "--query", "count(*)", "--epsilon", "0.1",
                                   "--budget", "1.0"))  # fmt: skip
    assert ok.exit_code == 0, ok.output
    for dry in ([], ["--dry-run"]):
        result = runner.invoke(app, _query(data, ledger, *extra, "--epsilon", "0.5", *dry))
        assert isinstance(result.exception, QueryError), result.output
        assert str(result.exception).startswith("column 'sex' is not numeric (VARCHAR)")
        assert "\n" not in str(result.exception)
    assert len(PrivacyLedger(ledger).records()) == 1  # only the count


def test_a_column_with_one_non_numeric_value_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("age\n30\n41\nunknown\n\n57\n")
    ledger = tmp_path / "l.db"
    args = ["--query", "mean(age)", "--bounds", "0,120", "--epsilon", "0.5", "--budget", "1"]
    r = tutela(*_query(path, ledger, *args), cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("error: column 'age' is not numeric") and r.stderr.count("\n") == 1
    assert "unknown" not in r.stderr  # the data is not echoed
    assert not ledger.exists() or PrivacyLedger(ledger).records() == ()


def test_a_conflicting_delta_is_refused(tmp_path: Path, data: Path) -> None:
    ledger = tmp_path / "ledger.db"
    args = _query(data, ledger, "--query", "count(*)", "--epsilon", "0.1")
    ok = tutela(*args, "--budget", "1.0", "--delta", "1e-5", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    conflicting = ["--delta", "1e-7"]
    for extra in (conflicting, [*conflicting, "--budget", "1.0"], [*conflicting, "--dry-run"]):
        r = tutela(*args, *extra, cwd=tmp_path)
        assert r.returncode == 1 and r.stdout == "", (extra, r.stdout)
        assert r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith("error: ") and "delta=1e-05" in r.stderr
        assert "--delta 1e-07 conflicts" in r.stderr
    # the budget's own delta, or none, is accepted; the budget is unchanged
    assert tutela(*args, "--delta", "1e-5", cwd=tmp_path).returncode == 0
    assert tutela(*args, "--budget", "1.0", cwd=tmp_path).returncode == 0
    book = PrivacyLedger(ledger)
    (budget,) = book.scopes()
    assert budget.delta == 1e-5 and len(book.records()) == 3


def test_bad_csv_is_a_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text('a,b\n1,2,3,4\n"x\n')
    result = runner.invoke(
        app,
        _query(bad, tmp_path / "l.db", "--query", "count(a)", "--epsilon", "1", "--budget", "1"),
    )
    assert isinstance(result.exception, DataError)


# -- real processes: one-line errors and the race for the last of the budget ---------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--query", "mean(agee)", "--bounds", "0,120"], "unknown column(s) 'agee'"),
        (["--query", "mean(age)"], "mean(age) needs declared bounds"),
        (["--query", "median(age)"], "unknown function 'median'"),
        (["--query", "histogram(sex)"], "histogram(sex) needs declared bins"),
        (["--query", "mean(age)", "--bounds", "9,1"], "bounds need lower < upper"),
        (["--query", "mean(age)", "--bounds", "1"], "--bounds must be 'LOWER,UPPER'"),
        (["--query", "histogram(age)", "--bins", "0,x"], "--bins must be comma-separated"),
        (["--query", "histogram(age)", "--bins", "0,18,65,120"], "--bins must be equal-width"),
        (["--query", "SELECT count(*) FROM t"], "tutela dp query takes the function form"),
    ],
)
def test_query_errors_are_clear(tmp_path: Path, data: Path, extra: list[str], message: str) -> None:
    ledger = tmp_path / "l.db"
    result = runner.invoke(app, _query(data, ledger, *extra, "--epsilon", "0.5", "--budget", "1"))
    assert isinstance(result.exception, ValueError), result.output
    assert str(result.exception).startswith(message)
    assert "\n" not in str(result.exception)
    assert not ledger.exists() or PrivacyLedger(ledger).records() == ()


def test_subprocess_error_is_one_line(tmp_path: Path, data: Path) -> None:
    args = ["--query", "mean(agee)", "--bounds", "0,120", "--epsilon", "0.5", "--budget", "1"]
    r = tutela(*_query(data, tmp_path / "l.db", *args), cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "error: unknown column(s) 'agee'; the table has: age, income, sex\n"


def test_subprocess_budget_exceeded(tmp_path: Path, data: Path) -> None:
    ledger = tmp_path / "l.db"
    args = _query(data, ledger, "--query", "count(*)", "--epsilon", "1.5", "--json")
    ok = runner.invoke(app, [*args, "--budget", "2.0"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["budget_left"] == pytest.approx(0.5, abs=1e-3)
    over = tutela(*args, cwd=tmp_path)
    assert over.returncode == 1 and over.stdout == ""
    assert over.stderr.startswith("error: privacy budget of ") and over.stderr.count("\n") == 1
    assert "nothing was spent" in over.stderr
    assert len(PrivacyLedger(ledger).records()) == 1


def test_concurrent_queries_race_for_the_last_of_the_budget(tmp_path: Path, data: Path) -> None:
    """Three processes each want 0.5 of a 0.8 budget: exactly two get it (two Gaussian
    releases at 0.5 compose to about 0.72, three to about 0.90), nothing more."""
    ledger = tmp_path / "ledger.db"
    args = [sys.executable, "-m", "tutela"]
    args += _query(data, ledger, "--query", "mean(age)", "--bounds", "0,120")
    args += ["--epsilon", "0.5", "--budget", "0.8", "--json"]
    procs = [
        subprocess.Popen(
            args,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for _ in range(3)
    ]
    outs = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in outs)
    assert codes == [0, 0, 1], outs
    for code, stdout, stderr in outs:
        if code:
            assert stderr.startswith("error: privacy budget of ") and stderr.count("\n") == 1
            assert stdout == ""
        else:
            assert json.loads(stdout)["epsilon_spent"] == pytest.approx(0.5, abs=1e-3)
    book = PrivacyLedger(ledger)
    scope = fingerprint(read_csv(data))
    assert len(book.records(scope)) == 2
    assert book.spent(scope) <= 0.8 * (1 + 1e-9)
