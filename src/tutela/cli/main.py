"""Entry point of the ``tutela`` command.

Each domain keeps its commands in its own module (``cli/<domain>.py``) exposing
``register(app)``. :func:`run` turns every expected failure into one clear line on
stderr and a non-zero exit code; tracebacks are reserved for real bugs and only shown
with ``TUTELA_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys

import typer

from tutela import __version__
from tutela.cli import anonymize as anonymize_cli
from tutela.cli import data as data_cli
from tutela.cli import dp as dp_cli
from tutela.cli import dp_sql as dp_sql_cli
from tutela.cli import governance as governance_cli
from tutela.cli import he as he_cli
from tutela.cli import query as query_cli
from tutela.cli import report as report_cli
from tutela.cli import secagg as secagg_cli
from tutela.cli import server as server_cli
from tutela.cli import smpc as smpc_cli
from tutela.cli import study as study_cli
from tutela.errors import TutelaError

app = typer.Typer(
    name="tutela",
    help="Tutela: privacy-preserving AI (federated learning, DP, secure aggregation, governance).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tutela {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Tutela: privacy-preserving AI."""


for _module in (
    study_cli,
    data_cli,
    dp_cli,
    dp_sql_cli,
    query_cli,
    secagg_cli,
    he_cli,
    smpc_cli,
    governance_cli,
    anonymize_cli,
    server_cli,
    report_cli,
):
    _module.register(app)


def _fail(message: str, code: int = 1) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def run() -> None:
    """Run the CLI, mapping expected failures to one line and a non-zero exit."""
    try:
        app(standalone_mode=True)
    except TutelaError as exc:
        _fail(str(exc) or type(exc).__name__)
    except (ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        if os.environ.get("TUTELA_DEBUG"):
            raise
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", 130)


if __name__ == "__main__":  # pragma: no cover
    run()
