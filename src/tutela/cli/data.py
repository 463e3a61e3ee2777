"""``tutela datasets``: the datasets that load offline."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

datasets_app = typer.Typer(help="Datasets shipped inside packages.", no_args_is_help=True)


@datasets_app.command("list")
def list_datasets(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List datasets with rows, features, outcome and source."""
    from tutela.data import dataset_catalog

    catalog = dataset_catalog()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": d.name.value,
                        "title": d.title,
                        "rows": d.rows,
                        "features": d.features,
                        "outcome": d.outcome,
                        "source": d.source,
                    }
                    for d in catalog
                ],
                indent=2,
            )
        )
        return
    table = Table(title="Datasets (all load offline)")
    for col in ("name", "rows", "features", "outcome", "source"):
        table.add_column(col, justify="right" if col in ("rows", "features") else "left")
    for d in catalog:
        table.add_row(d.name.value, str(d.rows), str(d.features), d.outcome, d.source)
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Attach ``datasets`` to the root app."""
    app.add_typer(datasets_app, name="datasets")
