"""Real runs for the report tests: two quick flagship runs (sample-level DP at epsilon 1 and
3, SecAgg+), each with its own run directory, made once per module under a private
``TUTELA_HOME`` whose trust store pins the key that signed their audit checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tutela.fl.recipes import flagship_config, run_configured_study
from tutela.governance.checkpoint import VerifierKey
from tutela.governance.home import signing_key
from tutela.governance.trust import pin

ENV = ("TUTELA_HOME", "TUTELA_KEYRING", "TUTELA_PASSPHRASE", "TUTELA_KEYFILE", "TUTELA_TRUST_STORE")


@dataclass(frozen=True)
class Runs:
    home: Path
    strong: Path  # epsilon 1
    weak: Path  # epsilon 3
    audit_key: VerifierKey


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("report-runs")
    with pytest.MonkeyPatch.context() as mp:
        for var in ENV:
            mp.delenv(var, raising=False)
        mp.setenv("TUTELA_HOME", str(root / "home"))
        for name, epsilon in (("strong", 1.0), ("weak", 3.0)):
            run_configured_study(
                flagship_config(quick=True, rounds=3, epsilon=epsilon), run_dir=root / name
            )
        key = VerifierKey.of(signing_key())
        pin(key)
        yield Runs(root / "home", root / "strong", root / "weak", key)


@pytest.fixture
def home(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> Runs:
    """The runs, with their ``TUTELA_HOME`` (and so their trust store) in the environment."""
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TUTELA_HOME", str(runs.home))
    return runs
