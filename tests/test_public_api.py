"""The public API: what ``tutela`` and each domain package export, snapshot-tested.

A change to an ``__all__`` fails here until ``tests/public_api.json`` is updated on
purpose (regenerate it with ``python tests/test_public_api.py``), so an export is never
added or dropped by accident.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tutela

SNAPSHOT = Path(__file__).with_name("public_api.json")
PACKAGES = [
    "tutela",
    "tutela.fl",
    "tutela.dp",
    "tutela.secagg",
    "tutela.he",
    "tutela.smpc",
    "tutela.anonymize",
    "tutela.governance",
    "tutela.data",
]


def current() -> dict[str, list[str]]:
    return {p: sorted(importlib.import_module(p).__all__) for p in PACKAGES}


def test_version_is_exposed() -> None:
    assert tutela.__version__ == "0.1.0"


def test_exports_match_the_snapshot() -> None:
    assert current() == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


@pytest.mark.parametrize("package", PACKAGES)
def test_every_export_resolves(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert not missing, missing


def test_import_tutela_stays_light() -> None:
    """``import tutela`` and the domain packages load no PyTorch (the CLI starts fast)."""
    code = "import sys, tutela, tutela.fl, tutela.dp; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_library_entry_points_are_typed_objects() -> None:
    assert tutela.Study is tutela.fl.Study
    assert tutela.make_private is importlib.import_module("tutela.dp.sgd").make_private
    assert callable(tutela.simulate) and callable(tutela.redact) and callable(tutela.scan)


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(current(), indent=2) + "\n", encoding="utf-8")
