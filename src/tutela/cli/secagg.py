"""``tutela secagg ...``: secure-aggregation commands."""

from __future__ import annotations

import json
from typing import Annotated

import typer

secagg_app = typer.Typer(
    name="secagg", help="Secure aggregation (SecAgg+).", no_args_is_help=True, add_completion=False
)


@secagg_app.command("simulate")
def simulate(
    clients: Annotated[int, typer.Option("--clients", min=3, help="Number of clients.")] = 10,
    dim: Annotated[int, typer.Option("--dim", min=1, help="Update length.")] = 10_000,
    dropout: Annotated[
        float, typer.Option("--dropout", min=0.0, max=0.9, help="Fraction that drops.")
    ] = 0.0,
    neighbors: Annotated[
        int | None, typer.Option("--neighbors", help="k (default: chosen from n).")
    ] = None,
    threshold: Annotated[
        int | None, typer.Option("--threshold", help="t (default: k // 2 + 1).")
    ] = None,
    modulus_bits: Annotated[int, typer.Option("--modulus-bits", help="b in Z_{2^b}.")] = 32,
    ddp_sigma: Annotated[
        float, typer.Option("--ddp-sigma", min=0.0, help="Noise std on the sum (0: none).")
    ] = 0.0,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Fix all randomness (simulation only).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Run one SecAgg+ round in process with random updates; compare with the plain sum."""
    from tutela.secagg import SecAggConfig
    from tutela.secagg.simulate import simulate_random_round

    config = SecAggConfig(
        neighbors=neighbors,
        threshold=threshold,
        modulus_bits=modulus_bits,
        dropout_tolerance=max(0.1, dropout),
        ddp_sigma=ddp_sigma,
    )
    report = simulate_random_round(clients, dim, dropout, config, seed=seed)
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    dropped = sum(report["dropped_count"].values())
    lines = [
        f"protocol            {report['protocol']}  n={report['n']} k={report['k']} "
        f"t={report['threshold']} modulus_bits={report['modulus_bits']}",
        f"max_abs_error       {report['max_abs_error']:.3g} "
        f"(bound {report['quantization_error_bound']:.3g})",
        f"client_ms_median    {report['client_ms_median']:.2f}",
        f"server_ms           {report['server_ms']:.2f}",
        f"plain_aggregate_ms  {report['plain_aggregate_ms']:.2f}",
        f"bytes_per_client    {report['bytes_per_client']}",
        f"dropped             {dropped} {report['dropped_count']}",
    ]
    if report["ddp"]["enabled"]:
        lines.append(f"ddp_sigma           {report['ddp']['guaranteed_sigma']:.4g} (guaranteed)")
    typer.echo("\n".join(lines))


def register(app: typer.Typer) -> None:
    """Attach this domain's commands to the root app."""
    app.add_typer(secagg_app, name="secagg")
