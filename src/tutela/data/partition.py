"""Split a dataset across sites: IID, Dirichlet label skew, size skew.

Invariants (property-tested): the parts are pairwise disjoint, their union is exactly the
input index set, and every site gets at least ``min_size`` rows. A held-out global test set
is cut first with :func:`train_test_split_indices` and never reaches a site.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import numpy.typing as npt

IndexArray = npt.NDArray[np.int64]


class PartitionScheme(StrEnum):
    """How rows are spread over sites."""

    IID = "iid"
    DIRICHLET = "dirichlet"
    SIZE_SKEW = "size-skew"


def train_test_split_indices(
    labels: npt.ArrayLike, test_fraction: float, *, seed: int = 0
) -> tuple[IndexArray, IndexArray]:
    """Stratified split of ``range(len(labels))`` into (train, test) index arrays."""
    y = np.asarray(labels)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be in (0, 1)")
    rng = np.random.default_rng(seed)
    train: list[IndexArray] = []
    test: list[IndexArray] = []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        cut = round(len(idx) * test_fraction)
        test.append(idx[:cut])
        train.append(idx[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _split_by_counts(idx: IndexArray, counts: npt.NDArray[np.int64]) -> list[IndexArray]:
    bounds = np.cumsum(counts)[:-1]
    return [np.asarray(p, dtype=np.int64) for p in np.split(idx, bounds)]


def _counts_from_proportions(total: int, props: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    raw = props * total
    counts = np.floor(raw).astype(np.int64)
    remainder = total - int(counts.sum())
    if remainder > 0:
        order = np.argsort(-(raw - counts), kind="stable")
        counts[order[:remainder]] += 1
    return counts


def _rebalance(parts: list[list[int]], min_size: int, rng: np.random.Generator) -> None:
    """Move rows from the largest sites to any site below ``min_size``."""
    for small in range(len(parts)):
        while len(parts[small]) < min_size:
            donor = max(range(len(parts)), key=lambda i: len(parts[i]))
            if len(parts[donor]) <= min_size:
                raise ValueError("not enough rows to give every site min_size rows")
            take = int(rng.integers(0, len(parts[donor])))
            parts[small].append(parts[donor].pop(take))


def partition(
    labels: npt.ArrayLike,
    num_sites: int,
    scheme: PartitionScheme | str = PartitionScheme.IID,
    *,
    alpha: float = 0.5,
    indices: npt.ArrayLike | None = None,
    min_size: int = 1,
    seed: int = 0,
) -> list[IndexArray]:
    """Partition rows across ``num_sites`` sites.

    Args:
        labels: outcome per row of the full table.
        num_sites: number of sites (>= 1).
        scheme: IID, Dirichlet label skew (class proportions per site drawn from
            Dirichlet(alpha)), or size skew (site sizes drawn from Dirichlet(alpha), labels IID).
        alpha: concentration; smaller means more skew.
        indices: restrict to these row indices (e.g. the training split). Default: all rows.
        min_size: every site gets at least this many rows.
        seed: seed for the split.

    Returns:
        One sorted index array per site; disjoint, and together exactly ``indices``.

    Raises:
        ValueError: too few rows, non-positive sites or alpha.
    """
    y = np.asarray(labels)
    pool = np.arange(len(y), dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
    scheme = PartitionScheme(scheme)
    if num_sites < 1:
        raise ValueError("num_sites must be at least 1")
    if alpha <= 0:
        raise ValueError("alpha must be positive")
    if len(pool) < num_sites * min_size:
        raise ValueError(
            f"{len(pool)} rows cannot give {num_sites} sites at least {min_size} rows each"
        )
    rng = np.random.default_rng(seed)
    shuffled = pool.copy()
    rng.shuffle(shuffled)
    if scheme is PartitionScheme.IID:
        parts = [list(p) for p in np.array_split(shuffled, num_sites)]
    elif scheme is PartitionScheme.SIZE_SKEW:
        props = rng.dirichlet(np.full(num_sites, alpha))
        counts = _counts_from_proportions(len(shuffled), props)
        parts = [list(p) for p in _split_by_counts(shuffled, counts)]
    else:
        parts = [[] for _ in range(num_sites)]
        labels_pool = y[shuffled]
        for cls in np.unique(labels_pool):
            cls_idx = shuffled[labels_pool == cls]
            props = rng.dirichlet(np.full(num_sites, alpha))
            counts = _counts_from_proportions(len(cls_idx), props)
            for site, chunk in enumerate(_split_by_counts(cls_idx, counts)):
                parts[site].extend(chunk.tolist())
    _rebalance(parts, min_size, rng)
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
