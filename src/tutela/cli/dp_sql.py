"""``tutela dp sql``: one DP SQL query over a local CSV or Parquet file.

The query is parsed (the restricted SQL of :mod:`tutela.dp.sql.parse`), checked against the
site policy for the purpose, evaluated by DuckDB, charged to the privacy ledger (SQLite)
and only then answered with Gaussian noise and 95% confidence intervals. ``tutela dp
query`` (:mod:`tutela.cli.dp`) runs through the same code (:func:`run_local_query`) after
writing its function form as SQL (:func:`function_sql`). The budget belongs to the data's
content (its fingerprint), not to the file's path: a copy, rename or hard link of the file
draws on the same budget. Refusals (a
column outside the policy, a cohort below its minimum, an epsilon above its cap, the budget
spent) are one line and a non-zero exit; nothing is charged but a cohort refusal's noisy
test (:mod:`tutela.dp.sql.cohort`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from tutela.dp.ledger import Budget, PrivacyLedger
    from tutela.dp.query_model import Query
    from tutela.dp.sql import SqlPolicy


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
    from tutela.dp.sql import TableSource
    from tutela.fl.queries import sql_policy
    from tutela.governance.minimisation import SitePolicy

    site = SitePolicy.from_toml(policy)
    limits = sql_policy(site, purpose, TableSource.of(data).header())
    run_local_query(
        data, sql, epsilon, ledger, policy=limits, budget=budget, delta=None,
        new_delta=site.analytics.delta, dry_run=False, as_json=as_json, label=None,
    )  # fmt: skip


def function_sql(query: Query) -> tuple[str, dict[str, tuple[str, ...]]]:
    """The restricted-SQL form of a function-form query (``mean(age)`` with its declared
    bounds), and the categories a categorical histogram declares.

    Raises:
        QueryError: histogram bins that are not of equal width (the SQL engine's bins are).
    """
    from tutela.dp.query_model import QueryError

    col = "*" if query.column == "*" else '"' + query.column.replace('"', '""') + '"'
    b = query.bounds
    clamp = f"clamp({col}, {b.lower!r}, {b.upper!r})" if b is not None else ""
    grouping: dict[str, tuple[str, ...]] = {}
    if query.kind == "count":
        call = f"count({col})"
    elif query.kind in ("sum", "variance"):
        call = f"{query.kind}({clamp})"
    elif query.kind == "mean":
        call = f"avg({clamp})"
    elif query.kind == "quantile":
        call = f"quantile({clamp}, {query.quantile!r})"
    elif query.categories is not None:
        grouping[query.column] = query.categories
        call = f"histogram({col})"
    else:
        edges = query.bins
        assert edges is not None
        width = (edges[-1] - edges[0]) / (len(edges) - 1)
        if any(
            not math.isclose(e, edges[0] + i * width, rel_tol=1e-9, abs_tol=1e-9 * width)
            for i, e in enumerate(edges)
        ):
            raise QueryError(
                "--bins must be equal-width edges (e.g. 0,30,60,90,120): the SQL engine's "
                f"histogram(clamp(col, low, high), bins) has equal bins; got {list(edges)}"
            )
        call = f"histogram(clamp({col}, {edges[0]!r}, {edges[-1]!r}), {len(edges) - 1})"
    # restricted SQL for tutela's own parser, never a database: names quoted, numbers repr'd
    return f"SELECT {call} FROM data", grouping  # noqa: S608


def run_local_query(
    data: Path,
    sql: str,
    epsilon: float,
    ledger: Path,
    *,
    policy: SqlPolicy,
    budget: float | None,
    delta: float | None,
    new_delta: float,
    dry_run: bool,
    as_json: bool,
    label: str | None,
) -> None:
    """Check ``sql`` against ``policy``, open the dataset's budget, then (unless a dry
    run) charge the ledger and print the answer. Shared by ``dp sql`` and ``dp query``.

    The budget's scope is the table's content :func:`~tutela.dp.table_fingerprint.fingerprint`.
    A new budget needs ``budget`` (its delta is ``delta`` or ``new_delta``); an existing
    one must agree with both.
    """
    import sqlite3

    from tutela.data.tables import read_table
    from tutela.dp.events import GaussianEvent
    from tutela.dp.ledger import PrivacyLedger
    from tutela.dp.sql import SqlTable
    from tutela.dp.sql.release import noise_multiplier, query_epsilon
    from tutela.dp.table_fingerprint import fingerprint
    from tutela.errors import DataError

    table_scope = fingerprint(read_table(data))
    try:
        book = PrivacyLedger(ledger)
        table = SqlTable(data, policy=policy, ledger=book, scope=table_scope)
        shape = table.shape(sql)  # checked before a budget is set up
        known = _open_budget(
            book, table_scope, data, ledger, budget=budget, delta=delta, new_delta=new_delta,
            create=not dry_run,
        )  # fmt: skip
        if dry_run:
            d = known.delta if known is not None else (new_delta if delta is None else delta)
            z = noise_multiplier(epsilon, d)
            after = (
                book.preview(table_scope, GaussianEvent(z))
                if known is not None
                else query_epsilon(z, d)
            )
            total = known.epsilon if known is not None else budget
            cost = {"epsilon": query_epsilon(z, d), "delta": d, "noise_multiplier": z,
                    "statistics": shape.dim}  # fmt: skip
            budget_text = "no budget set yet" if total is None else f"budget {total:g}"
            _emit(
                {"query": sql, "epsilon": cost["epsilon"], "cost": cost, "epsilon_after": after,
                 "budget": total},
                as_json,
                f"cost: {_describe(sql, cost)}\nwould bring the dataset to epsilon "
                f"{after:.6g} ({budget_text}); nothing was spent",
            )  # fmt: skip
            return
        answer = table.query(sql, epsilon, label=label)
        left = book.remaining(table_scope)
        total = book.budget(table_scope).epsilon
    except sqlite3.Error as exc:
        raise DataError(f"cannot use ledger {ledger}: {exc}") from None
    frame = answer.frame
    cost = {"epsilon": answer.epsilon, "delta": answer.delta,
            "noise_multiplier": answer.noise_multiplier, "statistics": shape.dim}  # fmt: skip
    payload: dict[str, Any] = {
        "rows": json.loads(frame.to_json(orient="records")),
        "query": sql,
        "epsilon_spent": answer.epsilon,
        "delta": answer.delta,
        "noise_std": answer.sigma,
        "cost": cost,
        "scope": table_scope,
        "budget": total,
        "budget_left": left,
    }
    if len(frame) == 1 and not shape.query.group_by:
        payload["answer"], payload["interval"] = _single(frame)
    if as_json:
        typer.echo(json.dumps(payload, sort_keys=True))
        return
    typer.echo(f"cost: {_describe(sql, cost)}")
    with pd_options():
        typer.echo(answer_table(frame).to_string(index=False))
    typer.echo(
        f"epsilon spent: {answer.epsilon:.4g} (delta {answer.delta:g}); noise std "
        f"{answer.sigma:.4g} per statistic; 95% intervals cover the noise only; "
        f"budget left: {left:.6g} of {total:g}"
    )


def _open_budget(
    book: PrivacyLedger,
    scope: str,
    data: Path,
    ledger: Path,
    *,
    budget: float | None,
    delta: float | None,
    new_delta: float,
    create: bool,
) -> Budget | None:
    """The dataset's budget (``None``: not set yet, only when not ``create``)."""
    from tutela.dp.ledger import LedgerError

    existing = {b.scope: b for b in book.scopes()}.get(scope)
    if existing is None:
        if not create:
            return None
        if budget is None:
            raise LedgerError(
                f"{data} has no privacy budget in {ledger}; pass --budget EPSILON to set it"
            )
        book.create_scope(scope, budget, new_delta if delta is None else delta, exist_ok=True)
        return book.budget(scope)
    if delta is not None and delta != existing.delta:
        raise LedgerError(
            f"{data} has a privacy budget with delta={existing.delta:g} in {ledger}; "
            f"--delta {delta:g} conflicts with it (a budget is never changed)"
        )
    if budget is not None:
        book.create_scope(scope, budget, existing.delta, exist_ok=True)  # must agree
    return existing


def _describe(sql: str, cost: Mapping[str, float]) -> str:
    return (
        f"{sql}: epsilon {cost['epsilon']:.4g} at delta {cost['delta']:g} (Gaussian noise, "
        f"multiplier {cost['noise_multiplier']:.4g}, on {int(cost['statistics'])} statistics)"
    )


def _single(frame: Any) -> tuple[Any, Any]:
    """The answer and its interval of a one-aggregate query without GROUP BY (a
    histogram: by bin label)."""
    row = frame.iloc[0]
    names = [str(c) for c in frame.columns if not str(c).endswith(("_ci_low", "_ci_high"))]
    pairs = {n: (float(row[n]), [float(row[f"{n}_ci_low"]), float(row[f"{n}_ci_high"])])
             for n in names}  # fmt: skip
    if len(names) == 1 and "[" not in names[0]:
        return pairs[names[0]]
    labels = {n: n[n.index("[") + 1 : -1] if "[" in n else n for n in names}
    return (
        {labels[n]: v for n, (v, _) in pairs.items()},
        {labels[n]: ci for n, (_, ci) in pairs.items()},
    )


def _emit(payload: dict[str, Any], as_json: bool, text: str) -> None:
    typer.echo(json.dumps(payload, sort_keys=True) if as_json else text)


def pd_options() -> Any:
    """Pandas display options wide enough for an answer table."""
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 50)


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
