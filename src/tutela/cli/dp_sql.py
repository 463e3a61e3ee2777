"""``tutela dp sql``: one DP SQL query over a local CSV or Parquet file.

The query is parsed (the restricted SQL of :mod:`tutela.dp.sql.parse`), checked against the
site policy for the purpose, evaluated by DuckDB, charged to the privacy ledger (SQLite)
and only then answered with Gaussian noise and 95% confidence intervals. As for
``tutela dp query``, the budget belongs to the data's content (its fingerprint), not to the
file's path: a copy, rename or hard link of the file draws on the same budget. Refusals (a
column outside the policy, a cohort below its minimum, an epsilon above its cap, the budget
spent) are one line and a non-zero exit; nothing is charged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer


def sql_cmd(
    data: Path = typer.Argument(..., help="CSV or Parquet file (one row per individual)."),
    sql: str = typer.Argument(..., help='e.g. "SELECT count(*) FROM t WHERE age > 60".'),
    epsilon: float = typer.Option(..., "--epsilon", help="Epsilon of this query."),
    ledger: Path = typer.Option(..., "--ledger", help="Privacy ledger (SQLite file)."),
    policy: Path = typer.Option(..., "--policy", help="Site policy (TOML)."),
    purpose: str = typer.Option(..., "--purpose", help="The purpose the query serves."),
    budget: float | None = typer.Option(
        None, "--budget", help="Total epsilon of the dataset (sets it on first use)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Answer one DP SQL query over a local table, charging the dataset's budget first.

    Privacy: (epsilon, delta)-DP under adding or removing one row, delta the budget's
    (the site policy's analytics.delta for a new budget).
    """
    import sqlite3

    import pandas as pd

    from tutela.data.tables import read_table
    from tutela.dp.analytics import fingerprint
    from tutela.dp.ledger import LedgerError, PrivacyLedger
    from tutela.dp.sql import SqlTable, TableSource
    from tutela.errors import DataError
    from tutela.fl.queries import sql_policy
    from tutela.governance.minimisation import SitePolicy

    site = SitePolicy.from_toml(policy)
    header = TableSource.of(data).header()
    limits = sql_policy(site, purpose, header)
    scope = fingerprint(read_table(data))
    try:
        book = PrivacyLedger(ledger)
        if scope not in {b.scope for b in book.scopes()}:
            if budget is None:
                raise LedgerError(
                    f"{data} has no privacy budget in {ledger}; pass --budget EPSILON to set it"
                )
            book.create_scope(scope, budget, site.analytics.delta)
        elif budget is not None:
            book.create_scope(scope, budget, book.budget(scope).delta, exist_ok=True)
        table = SqlTable(data, policy=limits, ledger=book, scope=scope)
        answer = table.query(sql, epsilon)
        left = book.remaining(scope)
        total = book.budget(scope).epsilon
    except sqlite3.Error as exc:
        raise DataError(f"cannot use ledger {ledger}: {exc}") from None
    frame = answer.frame
    payload: dict[str, Any] = {
        "rows": json.loads(frame.to_json(orient="records")),
        "epsilon_spent": answer.epsilon,
        "delta": answer.delta,
        "noise_std": answer.sigma,
        "scope": scope,
        "budget": total,
        "budget_left": left,
    }
    if as_json:
        typer.echo(json.dumps(payload, sort_keys=True))
        return
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        typer.echo(answer_table(frame).to_string(index=False))
    typer.echo(
        f"epsilon spent: {answer.epsilon:.4g} (delta {answer.delta:g}); noise std "
        f"{answer.sigma:.4g} per statistic; 95% intervals cover the noise only; "
        f"budget left: {left:.6g} of {total:g}"
    )


def answer_table(frame: Any) -> Any:
    """The answer with each value shown as ``value [low, high]``."""
    out = frame.loc[:, [c for c in frame.columns if not str(c).endswith(("_ci_low", "_ci_high"))]]
    out = out.copy()
    for c in out.columns:
        low = f"{c}_ci_low"
        if low in frame.columns:
            out[c] = [
                f"{_num(v)} [{_num(lo)}, {_num(hi)}]"
                for v, lo, hi in zip(frame[c], frame[low], frame[f"{c}_ci_high"], strict=True)
            ]
    return out


def _num(value: float) -> str:
    if math.isfinite(value) and abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def register(app: typer.Typer) -> None:
    """Attach ``sql`` to the ``dp`` command group (kept in ``cli/dp.py``)."""
    from tutela.cli.dp import dp_app

    dp_app.command("sql")(sql_cmd)
