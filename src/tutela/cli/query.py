"""``tutela query``: a federated DP query through the coordinator; ``tutela query-demo``:
the same across five demo hospitals on this machine.

The analyst's bearer token (role ``analyst``) comes from ``--token`` or ``TUTELA_TOKEN``.
Each site checks the query against its own policy and budgets and refuses with its reason
(nothing charged); the sites that accept charge their ledgers and sum their statistics
under SecAgg+ with distributed noise, so the coordinator learns only the noisy sum.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def query_cmd(
    sql: str = typer.Argument(..., help='e.g. "SELECT count(*) FROM patients WHERE age > 60".'),
    epsilon: float = typer.Option(..., "--epsilon", help="Epsilon each site charges."),
    coordinator: str = typer.Option(..., "--coordinator", help="Coordinator URL."),
    ca: Path = typer.Option(..., "--ca", help="The deployment's CA certificate."),
    purpose: str = typer.Option(..., "--purpose", help="The study the query serves."),
    token: str = typer.Option(..., "--token", envvar="TUTELA_TOKEN", help="Bearer token."),
    delta: float = typer.Option(1e-6, "--delta", help="Delta of the noise's calibration."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait for the answer."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Ask every enrolled site one DP SQL query; print the answer with 95% intervals.

    Privacy: (epsilon, delta)-DP under adding or removing one row at one site, charged by
    each site that takes part; the coordinator sees only the noisy sum.
    """
    from tutela.server.query_client import run_query

    result = run_query(
        coordinator, sql, epsilon=epsilon, purpose=purpose, token=token, ca_file=ca,
        delta=delta, timeout_s=timeout,
    )  # fmt: skip
    if as_json:
        payload = {
            "query_id": result.query_id,
            "rows": json.loads(result.frame.to_json(orient="records")),
            "epsilon": result.epsilon,
            "delta": result.delta,
            "noise_std": result.sigma,
            "sites": result.sites,
            "refused": result.refused,
        }
        typer.echo(json.dumps(payload, sort_keys=True))
        return
    _print(result.frame)
    typer.echo(
        f"sites: {', '.join(result.sites)}; each charged epsilon {result.epsilon:g} "
        f"(delta {result.delta:g}); noise std {result.sigma:.4g} per statistic"
    )
    for site, why in sorted(result.refused.items()):
        typer.echo(f"refused by {site}: {why}")


def demo_cmd(
    run_dir: Path = typer.Argument(..., help="Where the CA, coordinator and sites go."),
    rows: int = typer.Option(20_000, "--rows", help="Synthetic EHR rows over all hospitals."),
) -> None:
    """Ask the demo questions of five synthetic hospitals through a loopback coordinator."""
    from tutela.server.query_demo import DEMO_QUERIES, run_query_demo

    if rows < 1000:
        raise ValueError(f"--rows must be at least 1000, got {rows}")
    out = run_query_demo(run_dir, rows=rows)
    for (sql, epsilon), result in zip(DEMO_QUERIES, out["results"], strict=True):
        typer.echo(f"\n{sql}  (epsilon {epsilon:g} at each hospital)")
        if isinstance(result, str):
            typer.echo(f"failed: {result}")
            continue
        _print(result.frame)
        typer.echo(f"hospitals: {', '.join(result.sites)}; noise std {result.sigma:.4g}")
    typer.echo(f"\naudit events about queries: {len(out['audit'])}")


def _print(frame: object) -> None:
    from tutela.cli.dp_sql import answer_table

    typer.echo(answer_table(frame).to_string(index=False))


def register(app: typer.Typer) -> None:
    """Attach ``query`` and ``query-demo`` to the root app."""
    app.command("query")(query_cmd)
    app.command("query-demo")(demo_cmd)
