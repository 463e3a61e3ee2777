"""``tutela dp`` commands: epsilon of DP-SGD, calibration, and DP queries over a CSV.

``tutela dp query`` charges the privacy ledger (SQLite) before it prints anything; past the
budget it exits non-zero with one line and spends nothing, also when several processes
race for the last of the budget (the ledger serialises them). The budget belongs to the
data's content (its fingerprint), not to the file's path: a copy, rename or hard link of the
file draws on the same budget.
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
    data: Path = typer.Argument(..., help="CSV file (one row per individual)."),
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
        None, "--bins", help="Declared bin edges for histogram, e.g. 0,18,65,120."
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
    """Answer one DP query over a CSV, charging the dataset's budget first.

    Privacy: pure epsilon-DP (add/remove one row); the cost depends on the query only.
    """
    import sqlite3

    from tutela.dp.analytics import Bounds, PrivateTable, fingerprint, parse_query, read_csv
    from tutela.dp.ledger import LedgerError, PrivacyLedger
    from tutela.errors import DataError

    q = parse_query(
        query,
        bounds=Bounds.parse(bounds) if bounds is not None else None,
        categories=_split_list(categories),
        bins=_floats(bins, "--bins"),
    )
    frame = read_csv(data)
    scope = fingerprint(frame)
    try:
        book = PrivacyLedger(ledger)
        existing = {b.scope: b for b in book.scopes()}
        table = PrivateTable(frame, name=scope, ledger=book)
        plan = table.plan(q, epsilon)
        if scope not in existing:
            if budget is None and not dry_run:
                raise LedgerError(
                    f"{data} has no privacy budget in {ledger}; pass --budget EPSILON to set it"
                )
            if budget is not None and not dry_run:
                book.create_scope(
                    scope, budget, _DEFAULT_DELTA if delta is None else delta, exist_ok=True
                )
        else:
            known = existing[scope]
            if delta is not None and delta != known.delta:
                raise LedgerError(
                    f"{data} has a privacy budget with delta={known.delta:g} in {ledger}; "
                    f"--delta {delta:g} conflicts with it (a budget is never changed)"
                )
            if budget is not None:
                book.create_scope(scope, budget, known.delta, exist_ok=True)  # must agree
        cost = [{"step": s.name, "epsilon": s.epsilon} for s in plan.steps]
        if dry_run:
            total = existing[scope].epsilon if scope in existing else budget
            after = table.preview(plan) if scope in existing else plan.epsilon
            budget_text = "no budget set yet" if total is None else f"budget {total:g}"
            _emit(
                {"query": str(q), "epsilon": plan.epsilon, "cost": cost, "epsilon_after": after,
                 "budget": total},
                as_json,
                f"cost: {plan.describe()}\nwould bring the dataset to epsilon {after:.6g} "
                f"({budget_text}); nothing was spent",
            )  # fmt: skip
            return
        if not as_json:
            typer.echo(f"cost: {plan.describe()}")
        result = table.query(plan)
        left = book.remaining(scope)
        total = book.budget(scope).epsilon
    except sqlite3.Error as exc:
        raise DataError(f"cannot use ledger {ledger}: {exc}") from None
    answer = result.answer
    _emit(
        {
            "answer": answer,
            "query": str(q),
            "scope": scope,
            "epsilon_spent": result.epsilon,
            "scope_epsilon": result.record.epsilon_after,
            "budget": total,
            "budget_left": left,
            "cost": cost,
        },
        as_json,
        f"answer: {_fmt(answer)}\nepsilon spent: {result.epsilon:.6g}; "
        f"budget left: {left:.6g} of {total:g}",
    )


def _floats(text: str | None, option: str) -> list[float] | None:
    items = _split_list(text)
    if items is None:
        return None
    try:
        return [float(t) for t in items]
    except ValueError:
        raise ValueError(f"{option} must be comma-separated numbers, got {text!r}") from None


def _fmt(answer: object) -> str:
    if isinstance(answer, dict):
        return ", ".join(f"{k}: {v}" for k, v in answer.items())
    if isinstance(answer, float):
        return f"{answer:.6g}"
    return str(answer)


dp_app.command("audit")(audit_cmd)


def register(app: typer.Typer) -> None:
    """Attach this domain's commands to the root app."""
    app.add_typer(dp_app, name="dp")
