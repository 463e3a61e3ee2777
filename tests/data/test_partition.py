import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.data import PartitionScheme, partition, train_test_split_indices


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(20, 400),
    sites=st.integers(1, 10),
    scheme=st.sampled_from(list(PartitionScheme)),
    alpha=st.floats(0.05, 10.0),
    seed=st.integers(0, 2**16),
)
def test_partition_is_disjoint_complete_and_respects_min_size(n, sites, scheme, alpha, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    pool = np.sort(rng.choice(n, size=n - n // 5, replace=False))
    min_size = max(1, len(pool) // (2 * sites))
    parts = partition(
        labels, sites, scheme, alpha=alpha, indices=pool, min_size=min_size, seed=seed
    )
    assert len(parts) == sites
    joined = np.concatenate(parts)
    assert len(joined) == len(set(joined.tolist())), "a row went to two sites"
    assert np.array_equal(np.sort(joined), pool), "rows lost or invented"
    assert min(len(p) for p in parts) >= min_size


def _label_spread(parts, labels):
    return np.std([labels[p].mean() for p in parts])


def test_dirichlet_skews_labels_as_asked():
    labels = np.random.default_rng(0).integers(0, 2, 5000)
    skewed = np.mean(
        [
            _label_spread(partition(labels, 10, "dirichlet", alpha=0.1, seed=s), labels)
            for s in range(5)
        ]
    )
    mild = np.mean(
        [
            _label_spread(partition(labels, 10, "dirichlet", alpha=100.0, seed=s), labels)
            for s in range(5)
        ]
    )
    iid = np.mean([_label_spread(partition(labels, 10, "iid", seed=s), labels) for s in range(5)])
    assert skewed > 0.2 > 0.05 > mild
    assert iid < 0.05


def test_size_skew_skews_sizes_not_labels():
    labels = np.random.default_rng(1).integers(0, 2, 5000)
    parts = partition(labels, 8, "size-skew", alpha=0.3, seed=2)
    sizes = np.array([len(p) for p in parts])
    assert sizes.max() > 4 * sizes.min()
    big = [p for p in parts if len(p) > 200]
    assert _label_spread(big, labels) < 0.05


def test_test_split_is_stratified_and_disjoint():
    labels = np.array([0] * 300 + [1] * 100)
    train, test = train_test_split_indices(labels, 0.25, seed=0)
    assert not set(train) & set(test)
    assert len(train) + len(test) == 400
    assert labels[test].mean() == pytest.approx(0.25, abs=0.01)


def test_impossible_partition_is_refused():
    with pytest.raises(ValueError, match="cannot give"):
        partition(np.zeros(10), 5, "iid", min_size=3)
    with pytest.raises(ValueError):
        partition(np.zeros(10), 0, "iid")
