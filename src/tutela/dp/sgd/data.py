"""Poisson sampling: the data loader whose batches the accountant's amplification assumes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from tutela.errors import DataError
from tutela.hazmat.rng import SecureRandom

__all__ = ["PoissonDataLoader"]


def _empty_like_batch(sample: Any) -> Any:
    if isinstance(sample, torch.Tensor):
        return sample.unsqueeze(0)[:0]
    if isinstance(sample, tuple | list):
        return type(sample)(_empty_like_batch(s) for s in sample)
    if isinstance(sample, dict):
        return {k: _empty_like_batch(v) for k, v in sample.items()}
    return torch.as_tensor([sample])[:0]


def _check_finite(batch: Any, idx: np.ndarray[Any, np.dtype[np.int64]], where: str) -> None:
    """Raise DataError naming the records whose floating-point values are NaN or inf."""
    if isinstance(batch, tuple | list):
        for k, part in enumerate(batch):
            _check_finite(part, idx, f"{where}[{k}]")
        return
    if isinstance(batch, dict):
        for key, part in batch.items():
            _check_finite(part, idx, f"{where}[{key!r}]")
        return
    if not (isinstance(batch, torch.Tensor) and (batch.is_floating_point() or batch.is_complex())):
        return
    n = len(idx)
    if batch.dim() >= 1 and batch.shape[0] == n:
        finite = torch.isfinite(batch.reshape(n, -1)).all(1)
        if bool(finite.all()):
            return
        records = idx[(~finite).cpu().numpy()].tolist()
        said = f"records {records[:10]}{' ...' if len(records) > 10 else ''} of the dataset hold"
    elif bool(torch.isfinite(batch).all()):
        return
    else:
        said = "a batch holds"
    raise DataError(
        f"{said} NaN or inf in {where}; one such record would make the whole noisy DP-SGD "
        "update non-finite. Repair or drop those records before training"
    )


class PoissonDataLoader:
    """Batches in which every record appears independently with probability ``sample_rate``.

    Batch sizes vary and may be zero: an empty batch has the right structure with a
    leading dimension of 0. Sampling uses the CSPRNG (``SecureRandom``). Every batch is
    checked for NaN and inf in its floating-point tensors before it is yielded, and
    ``last_batch_size`` / ``batches_drawn`` let the optimiser check each layer's batch
    dimension against the number of examples actually sampled.

    Args:
        dataset: a map-style dataset.
        sample_rate: inclusion probability q.
        steps: batches per pass (``len(self)``).
        rng: generator for the sampling; fresh OS-keyed by default.
        collate_fn: turns a list of samples into a batch (torch's default).

    Raises:
        DataError: (while iterating) a sampled record holds NaN or inf; names the records.

    Privacy: Poisson sampling is what the accountant's amplification-by-sampling assumes;
    shuffling into fixed-size batches would not match the reported epsilon.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        sample_rate: float,
        steps: int,
        *,
        rng: SecureRandom | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        if not 0 < sample_rate <= 1:
            raise ValueError("sample_rate must be in (0, 1]")
        if steps < 1:
            raise ValueError("steps must be positive")
        self.dataset = dataset
        self.sample_rate = float(sample_rate)
        self.steps = int(steps)
        self.rng = rng if rng is not None else SecureRandom()
        self.collate_fn = collate_fn or torch.utils.data.default_collate
        self.size = len(dataset)  # type: ignore[arg-type]
        if self.size == 0:
            raise ValueError("the dataset is empty")
        self.last_batch_size = 0
        self.batches_drawn = 0

    def __len__(self) -> int:
        return self.steps

    def sample_indices(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """One Poisson sample of record indices."""
        return np.flatnonzero(self.rng.uniform(self.size) < self.sample_rate).astype(np.int64)

    def __iter__(self) -> Iterator[Any]:
        for _ in range(self.steps):
            idx = self.sample_indices()
            if isinstance(self.dataset, TensorDataset):
                t = torch.from_numpy(idx)
                batch: Any = tuple(x[t] for x in self.dataset.tensors)
            elif idx.size == 0:
                batch = _empty_like_batch(self.dataset[0])
            else:
                batch = self.collate_fn([self.dataset[int(i)] for i in idx])
            if idx.size:
                _check_finite(batch, idx, "batch")
            self.last_batch_size = int(idx.size)
            self.batches_drawn += 1
            yield batch
