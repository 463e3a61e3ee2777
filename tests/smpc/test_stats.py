"""Joint statistics equal the pooled plaintext computation within the stated bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer

from tutela.smpc.session import Session
from tutela.smpc.stats import joint_statistics, public_bounds


def _check(parts, res) -> None:
    X = np.vstack(parts)
    assert res.count == X.shape[0]
    n_parties = len(parts)
    assert np.all(np.abs(res.sum - X.sum(axis=0)) <= n_parties * res.mean_error_bound)
    assert np.all(np.abs(res.mean - X.mean(axis=0)) <= res.mean_error_bound)
    assert np.all(np.abs(res.covariance - np.cov(X.T)) <= res.covariance_error_bound)
    assert np.allclose(res.variance, np.diag(res.covariance))


def test_breast_cancer_split_among_three_parties() -> None:
    X = load_breast_cancer().data
    parts = np.array_split(X, 3)
    res = joint_statistics(parts, session=Session(3, seed=1))
    _check(parts, res)
    assert np.max(np.abs(res.correlation - np.corrcoef(X.T))) < 1e-2
    assert res.traffic.rounds < 20


@settings(max_examples=8, deadline=None)
@given(st.integers(2, 5), st.integers(1, 4), st.integers(0, 2**16))
def test_random_partitions(n_parties, d, seed) -> None:
    rng = np.random.default_rng(seed)
    parts = [
        rng.normal(rng.uniform(-50, 50, d), rng.uniform(0.1, 30, d), size=(rng.integers(1, 40), d))
        for _ in range(n_parties)
    ]
    _check(parts, joint_statistics(parts, session=Session(n_parties, seed=seed)))


def test_public_bounds_are_powers_of_two_above_the_max() -> None:
    parts = [np.array([[3.0, -0.2]]), np.array([[-5.0, 0.1]])]
    assert np.array_equal(public_bounds(parts), [8.0, 0.25])


def test_argument_checks() -> None:
    good = [np.ones((3, 2)), np.zeros((2, 2))]
    with pytest.raises(ValueError):
        joint_statistics([np.ones((3, 2))])
    with pytest.raises(ValueError):
        joint_statistics([np.ones((3, 2)), np.ones((3, 3))])
    with pytest.raises(ValueError, match="bound"):
        joint_statistics(good, bounds=[0.5, 0.5])
    with pytest.raises(ValueError):
        joint_statistics(good, bounds=[1.0])
    with pytest.raises(ValueError):
        joint_statistics([np.ones((1, 2)), np.zeros((0, 2))])
    with pytest.raises(ValueError):
        joint_statistics(good, session=Session(3))
    with pytest.raises(ValueError):
        joint_statistics([np.full((2, 1), np.nan), np.ones((2, 1))])
