"""``tutela dp`` commands: epsilon of DP-SGD, calibration, and DP queries over a table.

``tutela dp query`` is a front end over the DP SQL engine of ``tutela dp sql``
(:mod:`tutela.cli.dp_sql`): the function form (``mean(age)``, ``histogram(sex)`` with
declared bounds, categories or equal-width bins) is written as one restricted-SQL query.
It charges the privacy ledger (SQLite) before it prints anything; past the budget it exits
non-zero with one line and spends nothing, also when several processes race for the last of
the budget (the ledger serialises them). The budget belongs to the data's content (its
fingerprint), not to the file's path: a copy, rename or hard link of the file draws on the
same budget.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from tutela.cli.dp_audit import audit_cmd

dp_app = typer.Typer(
    help="Differential privacy: accounting, calibration, DP queries.", no_args_is_help=True
)


_DEFAULT_DELTA = 1e-6


class AccountantOpt(StrEnum):
    PLD = "pld"
    RDP = "rdp"


def _emit(payload: dict[str, Any], as_json: bool, text: str) -> None:
    typer.echo(json.dumps(payload, sort_keys=True) if as_json else text)


@dp_app.command("epsilon")
def epsilon_cmd(
    noise_multiplier: float = typer.Option(..., "--noise-multiplier", help="Noise multiplier z."),
    sample_rate: float = typer.Option(..., "--sample-rate", help="Poisson sampling rate q."),
    steps: int = typer.Option(..., "--steps", help="Number of steps T."),
    delta: float = typer.Option(..., "--delta", help="Target delta."),
    accountant: AccountantOpt = typer.Option(AccountantOpt.PLD, "--accountant"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Epsilon of T DP-SGD steps (Poisson-sampled Gaussian), add/remove one record."""
    from tutela.dp.accounting import AccountantKind, compute_epsilon, dpsgd_event

    if steps < 1:
        raise ValueError(f"--steps must be a positive integer, got {steps}")
    if not 0 < sample_rate <= 1:
        raise ValueError(f"--sample-rate must be in (0, 1], got {sample_rate}")
    event = dpsgd_event(noise_multiplier, sample_rate, steps)
    eps = compute_epsilon(event, delta, AccountantKind(accountant.value))
    _emit(
        {"epsilon": eps, "accountant": accountant.value, "delta": delta},
        as_json,
        f"epsilon = {eps:.6g} at delta = {delta:g} ({accountant.value} accountant)",
    )


@dp_app.command("calibrate")
def calibrate_cmd(
    epsilon: float = typer.Option(..., "--epsilon", help="Target epsilon."),
    delta: float = typer.Option(..., "--delta", help="Target delta."),
    sample_rate: float = typer.Option(..., "--sample-rate", help="Poisson sampling rate q."),
    steps: int = typer.Option(..., "--steps", help="Number of steps T."),
    accountant: AccountantOpt = typer.Option(AccountantOpt.PLD, "--accountant"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Smallest DP-SGD noise multiplier meeting (epsilon, delta)."""
    from tutela.dp.accounting import AccountantKind, calibrate_noise_multiplier

    if steps < 1:
        raise ValueError(f"--steps must be a positive integer, got {steps}")
    z = calibrate_noise_multiplier(
        epsilon, delta, sample_rate, steps, AccountantKind(accountant.value)
    )
    _emit(
        {"noise_multiplier": z, "accountant": accountant.value},
        as_json,
        f"noise multiplier = {z:.6g} for epsilon = {epsilon:g}, delta = {delta:g} "
        f"({accountant.value} accountant)",
    )


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise ValueError(f"expected a comma-separated list, got {text!r}")
    return items


@dp_app.command("query")
def query_cmd(
    data: Path = typer.Argument(..., help="CSV or Parquet file (one row per individual)."),
    query: str = typer.Option(..., "--query", help='e.g. "mean(age)", "quantile(age, 0.5)".'),
    epsilon: float = typer.Option(..., "--epsilon", help="Epsilon of this query."),
    ledger: Path = typer.Option(..., "--ledger", help="Privacy ledger (SQLite file)."),
    bounds: str | None = typer.Option(
        None, "--bounds", help="Declared range LOWER,UPPER (sum, mean, variance, quantile)."
    ),
    categories: str | None = typer.Option(
        None, "--categories", help="Declared categories for histogram, e.g. F,M."
    ),
    bins: str | None = typer.Option(
        None, "--bins", help="Equal-width bin edges for histogram, e.g. 0,30,60,90,120."
    ),
    budget: float | None = typer.Option(
        None, "--budget", help="Total epsilon of the dataset (sets it on first use)."
    ),
    delta: float | None = typer.Option(
        None,
        "--delta",
        help=f"Delta of the dataset's budget (default {_DEFAULT_DELTA:g} for a new budget; "
        "must match an existing one).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the cost; spend nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Answer one DP query over a local table, charging the dataset's budget first.

    The function form (``mean(age)`` with ``--bounds``) is written as one query of the
    restricted SQL and answered by the same engine as ``tutela dp sql``: DuckDB evaluates
    it, the ledger is charged, then Gaussian noise is added and 95% intervals are given.

    Privacy: (epsilon, delta)-DP under adding or removing one row, delta the budget's.
    """
    from tutela.cli.dp_sql import function_sql, run_local_query
    from tutela.dp.query_model import parse_query
    from tutela.dp.sql import SqlPolicy

    if query.strip().lower().startswith("select"):
        raise ValueError(
            "tutela dp query takes the function form (e.g. 'mean(age)'); for SQL use "
            'tutela dp sql DATA "SELECT ..." --policy POLICY --purpose PURPOSE'
        )
    q = parse_query(
        query,
        bounds=_bounds(bounds),
        categories=_split_list(categories),
        bins=_floats(bins, "--bins"),
    )
    sql, grouping = function_sql(q)
    run_local_query(
        data, sql, epsilon, ledger,
        policy=SqlPolicy(categories=grouping), budget=budget, delta=delta,
        new_delta=_DEFAULT_DELTA, dry_run=dry_run, as_json=as_json, label=f"dp query {q}",
    )  # fmt: skip


def _bounds(text: str | None) -> tuple[float, float] | None:
    items = _floats(text, "--bounds")
    if items is None:
        return None
    if len(items) != 2:
        raise ValueError(f"--bounds must be 'LOWER,UPPER', got {text!r}")
    return items[0], items[1]


def _floats(text: str | None, option: str) -> list[float] | None:
    items = _split_list(text)
    if items is None:
        return None
    try:
        return [float(t) for t in items]
    except ValueError:
        raise ValueError(f"{option} must be comma-separated numbers, got {text!r}") from None


dp_app.command("audit")(audit_cmd)


def register(app: typer.Typer) -> None:
    """Attach this domain's commands to the root app."""
    app.add_typer(dp_app, name="dp")
