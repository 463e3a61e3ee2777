"""Experiment tracking: ``tutela report RUN --tensorboard DIR`` writes each round's metrics,
the final metrics and the privacy summary as TensorBoard events, and ``--mlflow URI`` logs
them as an MLflow run; each is read back here with the tool's own reader (skipped where the
tracking extra is not installed); without it, the option fails in one line naming the
extra."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.report.conftest import Runs
from tests.report.test_report import tutela
from tutela.errors import ConfigError
from tutela.governance.report_tracking import (
    export_mlflow,
    export_tensorboard,
    tracking_scalars,
    tracking_summary,
)
from tutela.governance.results import SampleLevelPrivacy, load_results

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None


def test_the_summary_states_the_privacy_claim(home: Runs) -> None:
    results = load_results(home.strong / "results.json")
    text = tracking_summary(results)
    assert results.privacy is not None and f"epsilon {results.privacy.epsilon:.4g}" in text
    assert "secagg+" in text


@pytest.mark.skipif(HAS_TENSORBOARD, reason="checks the message shown without the extra")
def test_without_the_extra_the_export_says_what_to_install(home: Runs, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tutela\[tracking\]"):
        export_tensorboard(home.strong, tmp_path / "tb")
    proc = tutela(
        "report", str(home.strong), "--pdf", "no", "--out", str(tmp_path / "r.html"),
        "--tensorboard", str(tmp_path / "tb"), cwd=tmp_path, home=home.home,
    )  # fmt: skip
    assert proc.returncode == 1 and "tutela[tracking]" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="needs the tracking extra (tensorboard)")
def test_every_round_and_the_privacy_summary_reach_tensorboard(home: Runs, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = load_results(home.strong / "results.json")
    target = export_tensorboard(home.strong, tmp_path / "tb")
    events = EventAccumulator(str(target))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    accuracy = [(e.step, e.value) for e in events.Scalars("round/accuracy")]
    expected = [(h.round, h.accuracy) for h in results.history]
    assert [s for s, _ in accuracy] == [s for s, _ in expected]
    assert all(
        v == pytest.approx(x, rel=1e-6) for (_, v), (_, x) in zip(accuracy, expected, strict=True)
    )
    assert isinstance(results.privacy, SampleLevelPrivacy)
    (eps,) = events.Scalars("privacy/epsilon")
    assert eps.value == pytest.approx(results.privacy.epsilon, rel=1e-6)
    assert {f"privacy/site_epsilon/{s}" for s in results.privacy.per_site} <= scalars
    assert "final/federated/accuracy" in scalars and "final/centralized/auc" in scalars
    assert "summary/text_summary" in events.Tags()["tensors"]


@pytest.mark.skipif(HAS_MLFLOW, reason="checks the message shown without the extra")
def test_without_mlflow_the_export_says_what_to_install(home: Runs, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tutela\[tracking\]"):
        export_mlflow(home.strong, f"sqlite:///{tmp_path / 'ml.db'}")
    proc = tutela(
        "report", str(home.strong), "--pdf", "no", "--out", str(tmp_path / "r.html"),
        "--mlflow", f"sqlite:///{tmp_path / 'ml.db'}", cwd=tmp_path, home=home.home,
    )  # fmt: skip
    assert proc.returncode == 1 and "tutela[tracking]" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


@pytest.mark.skipif(not HAS_MLFLOW, reason="needs the tracking extra (mlflow-skinny)")
def test_every_round_and_the_privacy_summary_reach_mlflow(
    home: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow puts a database store's artifacts under ./mlartifacts
    results = load_results(home.strong / "results.json")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = export_mlflow(home.strong, uri)
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run_id, "round/accuracy")
    expected = [(h.round, h.accuracy) for h in results.history]
    got = sorted((m.step, m.value) for m in history)
    assert [s for s, _ in got] == [s for s, _ in expected]
    assert [v for _, v in got] == pytest.approx([v for _, v in expected])
    assert isinstance(results.privacy, SampleLevelPrivacy)
    assert run.data.metrics["privacy/epsilon"] == pytest.approx(results.privacy.epsilon)
    tags = {t for t, _, _ in tracking_scalars(results)}
    assert tags == set(run.data.metrics)  # every tracked value, and nothing else
    assert run.data.params["dp.level"] == str(results.privacy.level)
    summary = client.download_artifacts(run_id, "privacy-summary.md", str(tmp_path))
    with pytest.raises(ConfigError, match="refused the run"):
        export_mlflow(home.strong, "nosuchscheme://nowhere")
    assert Path(summary).read_text() == tracking_summary(results)
    again = export_mlflow(home.strong, uri)  # a second export is a second run, same experiment
    assert again != run_id
    assert client.get_run(again).info.experiment_id == run.info.experiment_id
