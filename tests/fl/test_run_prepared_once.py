"""A run is prepared once: the dataset is loaded and split one time, whatever the privacy
mode, and every later step (DP calibration, the rounds, the baselines) reads that copy."""

import pytest

import tutela.fl.study as study_module
from tutela.fl.recipes import flagship_config, run_configured_study


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTELA_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize(
    "privacy",
    [{}, {"epsilon": 3.0}, {"epsilon": 3.0, "privacy": "client"}],
    ids=["plain", "sample-dp", "client-dp"],
)
def test_the_dataset_is_loaded_once_per_in_process_run(monkeypatch, privacy):
    calls = []
    real = study_module.load_dataset

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(study_module, "load_dataset", counting)
    config = flagship_config(rounds=1, **privacy)
    results = run_configured_study(config)
    assert len(calls) == 1
    assert results.config.data.columns  # the resolved columns are recorded
