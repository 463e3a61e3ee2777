"""``tutela dp`` commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this domain's commands to the root app."""
