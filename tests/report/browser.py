"""Playwright driving Debian's Chromium headless (never a downloaded browser); tests that
use it skip cleanly where either is missing."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

CHROMIUM = shutil.which("chromium")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or importlib.util.find_spec("playwright") is None,
    reason="needs Playwright and Debian's chromium on PATH",
)
