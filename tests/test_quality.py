"""The codebase's own gates: lint, types and the layer contract from DESIGN.md."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)


def _tool(name):
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed (it is part of the dev extra)")
        return found
    return str(path)


def test_ruff_is_clean():
    r = _run(_tool("ruff"), "check", "src", "tests", "benchmarks")
    assert r.returncode == 0, r.stdout + r.stderr


def test_layer_contract_is_kept():
    r = _run(_tool("lint-imports"), "--no-cache")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_is_clean():
    r = _run(_tool("mypy"), "--no-incremental" if False else "--cache-dir=/tmp/tutela-mypy-cache")
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr


def test_no_pickle_in_the_package():
    offenders = [
        p
        for p in (ROOT / "src").rglob("*.py")
        if "import pickle" in p.read_text() or "torch.load(" in p.read_text()
    ]
    assert not offenders, offenders
