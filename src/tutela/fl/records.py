"""Typed records that travel between sites and the coordinator.

Model parameters are named numpy arrays serialised with safetensors (never pickle).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from tutela.errors import DataError

Array = npt.NDArray[np.floating]
Parameters = dict[str, npt.NDArray[np.float32]]
Scalar = bool | int | float | str
Metrics = dict[str, float]
ConfigRecord = dict[str, Scalar]

DEFAULT_MAX_BYTES = 256 * 1024 * 1024


def parameters_to_bytes(
    params: Mapping[str, npt.NDArray[np.generic]], *, metadata: Mapping[str, str] | None = None
) -> bytes:
    """Serialise named arrays with safetensors."""
    arrays = {name: np.ascontiguousarray(value) for name, value in params.items()}
    return st_save(arrays, metadata=dict(metadata) if metadata else None)


def parameters_from_bytes(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Parameters:
    """Parse safetensors bytes into named float32 arrays.

    Raises:
        DataError: payload too large, not safetensors, or holding non-finite values.
    """
    if len(data) > max_bytes:
        raise DataError(f"parameter payload of {len(data)} bytes exceeds the {max_bytes} limit")
    try:
        raw = st_load(bytes(data))
    except (SafetensorError, ValueError, OverflowError, json.JSONDecodeError) as exc:
        raise DataError(f"malformed parameter payload: {exc}") from None
    out: Parameters = {}
    for name, value in raw.items():
        if not np.issubdtype(value.dtype, np.floating):
            raise DataError(f"parameter {name!r} has dtype {value.dtype}; expected floating point")
        arr = value.astype(np.float32, copy=False)
        if not np.isfinite(arr).all():
            raise DataError(f"parameter {name!r} contains NaN or infinite values")
        out[name] = arr
    return out


def check_compatible(
    params: Mapping[str, npt.NDArray[np.generic]], reference: Mapping[str, npt.NDArray[np.generic]]
) -> None:
    """Raise :class:`DataError` unless ``params`` has exactly the names and shapes of ``reference``
    and only finite values."""
    missing = sorted(set(reference) - set(params))
    extra = sorted(set(params) - set(reference))
    if missing or extra:
        raise DataError(f"parameter names differ: missing {missing}, unexpected {extra}")
    for name, ref in reference.items():
        got = params[name]
        if got.shape != ref.shape:
            raise DataError(f"parameter {name!r} has shape {got.shape}; expected {ref.shape}")
        if not np.issubdtype(got.dtype, np.floating):
            raise DataError(f"parameter {name!r} has dtype {got.dtype}; expected floating point")
        if not np.isfinite(got).all():
            raise DataError(f"parameter {name!r} contains NaN or infinite values")


@dataclass(frozen=True)
class ParameterSpec:
    """Names, shapes and offsets that map named arrays to one flat vector and back."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def size(self) -> int:
        return int(sum(int(np.prod(s)) for s in self.shapes))

    @classmethod
    def of(cls, params: Mapping[str, npt.NDArray[np.generic]]) -> ParameterSpec:
        names = tuple(sorted(params))
        return cls(names, tuple(tuple(params[n].shape) for n in names))

    def flatten(self, params: Mapping[str, npt.NDArray[np.generic]]) -> npt.NDArray[np.float64]:
        return np.concatenate([np.asarray(params[n], np.float64).ravel() for n in self.names])

    def unflatten(self, vector: npt.NDArray[np.generic]) -> Parameters:
        if vector.shape != (self.size,):
            raise DataError(f"flat vector has shape {vector.shape}; expected ({self.size},)")
        out: Parameters = {}
        offset = 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            count = int(np.prod(shape))
            out[name] = np.asarray(vector[offset : offset + count], np.float32).reshape(shape)
            offset += count
        return out


def add(a: Mapping[str, Array], b: Mapping[str, Array], scale: float = 1.0) -> Parameters:
    """Return ``a + scale * b`` name by name."""
    return {k: np.asarray(a[k] + scale * b[k], np.float32) for k in a}


def subtract(a: Mapping[str, Array], b: Mapping[str, Array]) -> Parameters:
    """Return ``a - b`` name by name."""
    return {k: np.asarray(a[k] - b[k], np.float32) for k in a}


@dataclass(frozen=True)
class FitIns:
    """What a site is asked to do in a training round."""

    parameters: Parameters
    config: ConfigRecord = field(default_factory=dict)


@dataclass(frozen=True)
class FitRes:
    """A site's reply: its locally trained parameters, row count and metrics."""

    parameters: Parameters
    num_examples: int
    metrics: Metrics = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluateIns:
    parameters: Parameters
    config: ConfigRecord = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluateRes:
    loss: float
    num_examples: int
    metrics: Metrics = field(default_factory=dict)
