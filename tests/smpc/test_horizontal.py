"""Horizontal logistic and linear regression: parties as threads, real secure-sum messages.

The secure model is compared with the same training in float64 on the pooled table
(``plaintext_horizontal``), with numpy's least squares and with scikit-learn.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LinearRegression

from tutela.hazmat.ring import FixedPoint64
from tutela.hazmat.rng import SecureRandom
from tutela.smpc.horizontal import (
    HorizontalModel,
    HorizontalSpec,
    plaintext_horizontal,
    train_horizontal,
)
from tutela.smpc.joint import SecureSum

from .test_vertical import Mailboxes

TOLERANCE = 1e-4  # max |secure - float64| per coefficient (data units), stated in the docs


def _run(tables: list[dict[str, np.ndarray]], spec: HorizontalSpec) -> list[np.ndarray]:
    n = len(tables)
    boxes = Mailboxes()
    fxp = FixedPoint64()
    out: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def party(i: int) -> None:
        exchange = boxes.exchange_for(i)
        others = [j for j in range(n) if j != i]

        def secure_sum(step: str, vector: np.ndarray, sensitivity: float) -> np.ndarray:
            summer = SecureSum(i, n, vector.size, rng=SecureRandom(i))
            got = exchange(f"{step}-1", summer.share(fxp.encode(vector)), others)
            got = exchange(f"{step}-2", summer.combine(got), others)
            return fxp.decode(summer.reveal(got))

        try:
            out[i] = train_horizontal(tables[i], spec, secure_sum)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=party, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]
    return [out[i] for i in range(n)]


def _split(table: dict[str, np.ndarray], parts: int) -> list[dict[str, np.ndarray]]:
    rows = np.array_split(np.arange(len(next(iter(table.values())))), parts)
    return [{k: v[r] for k, v in table.items()} for r in rows]


def _cancer(columns: int = 5) -> tuple[dict[str, np.ndarray], list[str], tuple[float, ...]]:
    X, y = load_breast_cancer(return_X_y=True)
    names = [f"x{j}" for j in range(columns)]
    table = {name: X[:, j] for j, name in enumerate(names)} | {"y": y.astype(float)}
    bounds = tuple(float(2 ** np.ceil(np.log2(np.abs(X[:, j]).max()))) for j in range(columns))
    return table, names, bounds


def test_horizontal_logistic_regression_matches_pooled_training() -> None:
    table, names, bounds = _cancer()
    spec = HorizontalSpec(
        HorizontalModel.LOGISTIC, tuple(names), bounds, "y", iterations=100, learning_rate=4.0
    )
    weights = _run(_split(table, 3), spec)
    assert all(np.array_equal(weights[0], w) for w in weights[1:])
    reference = plaintext_horizontal(table, spec)
    assert np.max(np.abs(weights[0] - reference)) < TOLERANCE
    X = np.stack([table[c] for c in names], axis=1)
    accuracy = np.mean(((X @ weights[0][:-1] + weights[0][-1]) > 0) == table["y"])
    assert accuracy > 0.85


def test_horizontal_linear_regression_matches_least_squares_on_the_pooled_table() -> None:
    rng = np.random.default_rng(3)
    X = rng.uniform(-4, 4, size=(600, 3))
    y = X @ np.array([1.5, -2.0, 0.25]) + 3.0 + rng.normal(0, 0.5, 600)
    table = {f"x{j}": X[:, j] for j in range(3)} | {"y": y}
    spec = HorizontalSpec(
        HorizontalModel.LINEAR, ("x0", "x1", "x2"), (4.0, 4.0, 4.0), "y", label_bound=32.0
    )
    weights = _run(_split(table, 3), spec)
    sk = LinearRegression().fit(X, y)
    expected = np.append(sk.coef_, sk.intercept_)
    assert np.max(np.abs(weights[0] - expected)) < TOLERANCE
    assert np.max(np.abs(plaintext_horizontal(table, spec) - expected)) < 1e-9


def test_specs_and_tables_are_checked() -> None:
    with pytest.raises(ValueError, match="label that is not one of them"):
        HorizontalSpec(HorizontalModel.LINEAR, ("a",), (1.0,), "a")
    with pytest.raises(ValueError, match="bound"):
        HorizontalSpec(HorizontalModel.LINEAR, ("a",), (0.0,), "y")
    spec = HorizontalSpec(HorizontalModel.LOGISTIC, ("a",), (1.0,), "y")
    with pytest.raises(ValueError, match="beyond"):
        plaintext_horizontal({"a": np.array([2.0, 0.0]), "y": np.array([0.0, 1.0])}, spec)
    with pytest.raises(ValueError, match="0 or 1"):
        plaintext_horizontal({"a": np.array([0.5, 0.0]), "y": np.array([0.0, 2.0])}, spec)
