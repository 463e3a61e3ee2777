"""Fixtures for the cross-process SMPC tests: one PKI per module, a coordinator per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .network import Deployment, make_pki, start


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def deployment(tmp_path: Path, pki_dir: Path) -> Iterator[Deployment]:
    handle = start(tmp_path, pki_dir)
    try:
        yield handle
    finally:
        handle.server.stop()
