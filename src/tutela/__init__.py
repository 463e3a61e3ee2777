"""Tutela: privacy-preserving AI in one system.

The recipes below are the safe, high-level entry points; they import lazily so that
``import tutela`` (and the CLI's start-up) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "flagship_config", "load_study", "run_configured_study"]

if TYPE_CHECKING:
    from tutela.fl.config import load_study
    from tutela.fl.recipes import flagship_config, run_configured_study

_LAZY = {
    "flagship_config": "tutela.fl.recipes",
    "run_configured_study": "tutela.fl.recipes",
    "load_study": "tutela.fl.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tutela' has no attribute {name!r}")
