"""``python -m tutela`` runs the CLI."""

from tutela.cli.main import run

run()
