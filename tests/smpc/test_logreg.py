"""Secure logistic regression: matches plaintext training and sklearn's accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from tutela.smpc.logreg import Sigmoid, _sigmoid, standardise, train_logistic_regression
from tutela.smpc.session import Session


@pytest.fixture(scope="module")
def split():
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    idx = np.array_split(np.arange(len(ytr)), 3)
    std, mu, sd = standardise([Xtr[i] for i in idx])
    parts = [(std[k], ytr[i]) for k, i in enumerate(idx)]
    return parts, (Xtr - mu) / sd, ytr, (Xte - mu) / sd, yte


def test_secure_lr_is_within_three_points_of_sklearn(split) -> None:
    parts, Xtr, ytr, Xte, yte = split
    model = train_logistic_regression(
        parts, iterations=60, learning_rate=0.5, session=Session(3, seed=1)
    )
    sk = LogisticRegression(max_iter=1000).fit(Xtr, ytr).score(Xte, yte)
    assert model.accuracy(Xte, yte) >= sk - 0.03
    # the same gradient descent in plaintext gives the same model (fixed-point error only)
    A = np.hstack([Xtr, np.ones((len(ytr), 1))])
    w = np.zeros(A.shape[1])
    for _ in range(60):
        w -= 0.5 * A.T @ (Sigmoid.LINEAR.plain(A @ w) - ytr) / len(ytr)
    assert np.max(np.abs(np.append(model.weights, model.bias) - w)) < 1e-3


def test_l2_shrinks_the_weights(split) -> None:
    parts, *_ = split
    plain = train_logistic_regression(parts, iterations=15, session=Session(3, seed=2))
    ridge = train_logistic_regression(parts, iterations=15, l2=0.5, session=Session(3, seed=2))
    assert np.linalg.norm(ridge.weights) < np.linalg.norm(plain.weights)


@pytest.mark.parametrize("kind", list(Sigmoid))
def test_sigmoid_on_shares_matches_the_polynomial(kind) -> None:
    s = Session(2, seed=3)
    z = np.linspace(-5, 5, 101).reshape(-1, 1)
    got = s.open(_sigmoid(s, s.input(0, z), kind))
    assert np.max(np.abs(got - kind.plain(z))) < 1e-4


def test_argument_checks(split) -> None:
    parts, *_ = split
    X, y = parts[0]
    with pytest.raises(ValueError):
        train_logistic_regression([(X, y)])
    with pytest.raises(ValueError, match="labels"):
        train_logistic_regression([(X, y + 1), (X, y)])
    with pytest.raises(ValueError):
        train_logistic_regression([(X * 100, y), (X, y)])
    with pytest.raises(ValueError):
        train_logistic_regression([(X, y), (X[:, :3], y)])
    with pytest.raises(ValueError):
        train_logistic_regression(parts, iterations=0)
    with pytest.raises(ValueError):
        train_logistic_regression(parts, session=Session(2))


def test_cubic_turns_where_the_docstring_says() -> None:
    """The cubic's slope changes sign at |z| = 3.85: beyond it gradients point the wrong way."""
    z = np.array([3.80, 3.90])
    slope = (Sigmoid.CUBIC.plain(z + 1e-6) - Sigmoid.CUBIC.plain(z - 1e-6)) / 2e-6
    assert slope[0] > 0 > slope[1]
