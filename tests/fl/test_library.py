"""The library entry point: your own model and data in, typed results out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import tutela
from tutela.errors import ConfigError, DataError, PolicyViolation
from tutela.fl.strategy import FedAdam


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 90, n)
    sex = rng.choice(["F", "M"], n)
    logit = 0.08 * (age - 55) + 1.0 * (sex == "M")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"age": age, "bmi": rng.normal(28, 5, n), "sex": sex, "outcome": y})


class TinyNet(nn.Module):
    def __init__(self, n_features: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_features, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_dataframes_per_site_with_a_custom_model() -> None:
    sites = {f"h{i}": _table(150, i) for i in range(3)}
    result = tutela.Study(
        TinyNet, sites, outcome="outcome", categorical=["sex"], rounds=8,
        learning_rate=0.1, baselines=True,
    ).run()  # fmt: skip
    assert isinstance(result, tutela.StudyResult)
    assert result.results.dataset.features == ["age", "bmi", "sex=F", "sex=M", "sex=other"]
    assert set(result.results.dataset.train_rows_per_site) == {"h0", "h1", "h2"}
    assert result.metrics["auc"] > 0.7
    assert result.epsilon is None
    assert result.results.centralized is not None
    assert isinstance(result.model, TinyNet)
    prob = result.predict(np.zeros((2, 5), np.float32))
    assert prob.shape == (2,) and np.all((prob > 0) & (prob < 1))


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 1, 4, 4)).astype(np.float32)
    x[np.arange(n), 0, y, y] += 2.0  # the class is a bright pixel on the diagonal
    return x, y


def _conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))


def test_images_multiclass_with_sample_dp_and_secagg() -> None:
    sites = {f"d{i}": _images(120, i) for i in range(3)}
    test = _images(90, 99)
    result = tutela.simulate(
        _conv, sites, test=test, rounds=3, learning_rate=0.2,
        privacy=tutela.SampleDP(epsilon=2.0), secure_aggregation="secagg+",
    )  # fmt: skip
    assert result.task.value == "multiclass"
    assert result.epsilon is not None and 0 < result.epsilon <= 2.0 + 1e-6
    assert result.results.secure_aggregation is not None
    assert result.predict(test[0]).shape == (90, 3)


def test_tensor_dataset_and_a_strategy_instance() -> None:
    x, y = _images(200, 1)
    sites = {
        "a": torch.utils.data.TensorDataset(torch.from_numpy(x[:100]), torch.from_numpy(y[:100])),
        "b": (torch.from_numpy(x[100:]), y[100:]),
    }
    strategy = FedAdam(min_fit_sites=2, local_config={"local_epochs": 1, "learning_rate": 0.1})
    result = tutela.Study(_conv, sites, strategy=strategy, rounds=4, learning_rate=0.1).run()
    assert result.results.rounds == 4
    assert result.metrics["accuracy"] > 0.5


def test_files_and_split_table(tmp_path: Path) -> None:
    whole = _table(400, 7)
    parts = tutela.split_table(whole, ["north", "south"], outcome="outcome", seed=1)
    assert sum(len(p) for p in parts.values()) == 400
    parts["north"].to_parquet(tmp_path / "north.parquet")
    parts["south"].to_csv(tmp_path / "south.csv", index=False)
    result = tutela.simulate(
        lambda: TinyNet(5),
        {"north": tmp_path / "north.parquet", "south": str(tmp_path / "south.csv")},
        outcome="outcome", categorical=["sex"], categories={"sex": ["F", "M"]}, rounds=3,
        run_dir=tmp_path / "run",
    )  # fmt: skip
    assert (tmp_path / "run" / "results.json").exists()
    released = json.loads((tmp_path / "run" / "standardisation.json").read_text())
    assert len(released["mean"]) == len(result.results.dataset.features) == 5
    assert result.results.governance is not None and result.results.governance.audit_log


@pytest.mark.parametrize(
    ("sites", "options", "error", "match"),
    [
        ({"a": _table(50, 0).assign(age=np.nan)}, {"outcome": "outcome"}, DataError, "age"),
        ({"a": _table(50, 0)}, {"outcome": "missing"}, DataError, "outcome"),
        ({"a": _table(50, 0)}, {}, ConfigError, "outcome"),
        (
            {"a": _table(50, 0), "b": (np.zeros((5, 3)), np.zeros(5))},
            {"outcome": "outcome"},
            DataError,
            "tables, or all as arrays",
        ),
        ({"a": (np.zeros((5, 3)), np.zeros(4))}, {}, DataError, "disagree"),
        ({"a": (np.zeros((5, 3)), -np.ones(5))}, {}, DataError, "non-negative"),
        (
            {"a": (np.zeros((6, 3)), np.zeros(6)), "b": (np.zeros((6, 4)), np.zeros(6))},
            {},
            DataError,
            "different shapes",
        ),
        ({}, {}, ConfigError, "at least one site"),
    ],
)
def test_bad_input_gets_a_clear_error(
    sites: dict[str, object], options: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        tutela.Study(lambda: TinyNet(2), sites, rounds=1, **options).run()  # type: ignore[arg-type]


def test_a_direct_identifier_never_leaves_even_in_a_simulation() -> None:
    """The default policy of a library run accepts the study but still blocks direct
    identifiers: a table with an SSN column is refused before any training."""
    frame = _table(60, 3).assign(ssn=np.arange(60))
    with pytest.raises(PolicyViolation, match="ssn"):
        tutela.Study(lambda: TinyNet(3), {"a": frame, "b": frame}, outcome="outcome").run()


def test_a_site_policy_refuses_what_it_does_not_allow() -> None:
    policy = tutela.SitePolicy(purposes={"research": frozenset({"age"})})
    with pytest.raises(PolicyViolation, match="not allowed"):
        tutela.Study(
            lambda: TinyNet(2), {"a": _table(60, 1), "b": _table(60, 2)}, outcome="outcome",
            policy=policy, privacy=tutela.SampleDP(epsilon=1.0), secure_aggregation="secagg+",
        ).run()  # fmt: skip


def test_a_model_that_does_not_fit_the_data_is_refused_before_training() -> None:
    sites = {"a": _table(60, 1), "b": _table(60, 2)}
    with pytest.raises(DataError, match="cannot take the sites' features"):
        tutela.Study(lambda: TinyNet(9), sites, outcome="outcome").run()
    with pytest.raises(DataError, match="one logit per row"):
        tutela.Study(lambda: nn.Linear(2, 2), sites, outcome="outcome").run()
