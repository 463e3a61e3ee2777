"""``tutela`` commands for data."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach these commands to the root app."""
