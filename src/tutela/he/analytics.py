"""Encrypted analytics over an owner's uploaded encrypted table: the service computes, the
owner decrypts.

Operations (:class:`Operation`) on column-packed tables (batches padded with zeros, which
change no sum):

- ``sum`` / ``mean`` of a column: the service adds the column's batches slot by slot; the
  owner sums the slots of the decrypted vector (and divides by the row count).
- ``variance``: the same for the column and its square (one ciphertext multiplication);
  the owner forms the sample variance.
- ``histogram``: counts per bin of a column the owner one-hot encoded at encryption
  (``column[i]`` indicator columns, bin edges in the table's metadata); the service adds
  each indicator column; counts are rounded after decryption.
- ``linear``: a per-row score ``sum_j w_j x_j + b`` with plaintext weights.

Error bounds (stated by :func:`finish` from the result's metadata): every slot carries at
most ``batches * E + F`` of error, ``E = 2**-(scale_bits - 16)`` per operation and ``F`` the
flooding half-width; every multiplication adds a relative error of
:data:`~tutela.he.network.RELATIVE_ERROR` of its product, so a squared column adds
``2 M E + RELATIVE_ERROR x^2`` (``M`` bounds ``|x|``; :func:`finish` takes both from the
decrypted sums of squares) and a linear score ``RELATIVE_ERROR sum_j |w_j| max|x_j|``, which
only the owner can state (it passes its columns' largest magnitudes to :func:`finish`).

Security: the service learns the operation, the column names, the row count and, for a
linear score, the weights (they are plaintext multipliers); never a value of the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from tutela.errors import DataError, IntegrityError
from tutela.he import messages
from tutela.he.evaluation import EncryptedColumns, Noise, PublicKey, seal
from tutela.he.network import RELATIVE_ERROR
from tutela.he.owner import DecryptedResult

__all__ = ["AnalyticsQuery", "Operation", "analyse", "bin_column", "finish", "indicator_name"]


class Operation(StrEnum):
    """What an analytics query computes."""

    SUM = "sum"
    MEAN = "mean"
    VARIANCE = "variance"
    HISTOGRAM = "histogram"
    LINEAR = "linear"


@dataclass(frozen=True)
class AnalyticsQuery:
    """One query: the operation, its column, and (linear) the weights and bias."""

    op: Operation
    column: str | None = None
    weights: Mapping[str, float] | None = None
    bias: float = 0.0


def indicator_name(column: str, index: int) -> str:
    """The name of the indicator column of bin ``index`` of ``column``."""
    return f"{column}[{index}]"


def bin_column(values: Any, edges: list[float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """One-hot bins of ``values`` for edges ``e_0 < ... < e_k``: bin ``i`` is
    ``[e_i, e_{i+1})``, the last bin closed; shape (rows, k).

    Raises:
        DataError: fewer than two edges, unsorted edges, or a value outside them.
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0):
        raise DataError("histogram bins need at least two increasing edges")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.any((x < e[0]) | (x > e[-1])) or not np.all(np.isfinite(x)):
        raise DataError(f"values lie outside the histogram edges [{e[0]:g}, {e[-1]:g}]")
    idx = np.clip(np.searchsorted(e, x, side="right") - 1, 0, e.size - 2)
    out = np.zeros((x.size, e.size - 1))
    out[np.arange(x.size), idx] = 1.0
    return out


def _op_error(key: PublicKey) -> float:
    return 2.0 ** -(key.params.scale_bits - 16)


def _sum(cts: list[Any]) -> Any:
    acc = cts[0]
    for ct in cts[1:]:
        acc = acc + ct
    return acc


def analyse(
    key: PublicKey, table: EncryptedColumns, query: AnalyticsQuery, noise: Noise | None = None
) -> bytes:
    """Run one analytics query over an encrypted table; the result is encrypted.

    Raises:
        DataError: a missing column, weights naming unknown columns, or a histogram over a
            column that was not binned at encryption.
    """
    op = query.op
    batches = len(table.batches)
    per_slot = batches * _op_error(key)
    flooding = per_slot
    meta: dict[str, Any] = {
        "op": op.value,
        "column": query.column,
        "rows": table.rows,
        "batches": batches,
        "slots": key.params.slots,
        "op_error": _op_error(key),
        "flooding": flooding,
        "params": messages.params_json(key.params),
    }
    if op is Operation.LINEAR:
        weights = dict(query.weights or {})
        if not weights or not all(math.isfinite(w) for w in weights.values()):
            raise DataError("a linear score needs finite weights for at least one column")
        unknown = sorted(set(weights) - set(table.columns))
        if unknown:
            raise DataError(f"the table has no column(s) {', '.join(unknown)}")
        if not math.isfinite(query.bias):
            raise DataError("the bias must be finite")
        out = []
        for b in range(batches):
            acc = None
            for name, w in weights.items():
                if w == 0.0:
                    continue
                term = table.batches[b][table.columns.index(name)] * float(w)
                acc = term if acc is None else acc + term
            if acc is None:
                raise DataError("a linear score needs a non-zero weight")
            out.append(acc + float(query.bias))
        meta.update(length=table.rows, weights=weights, bias=query.bias)
        return seal(key, out, meta, flooding, noise)
    if query.column is None:
        raise DataError(f"{op.value} needs a column")
    if op is Operation.HISTOGRAM:
        edges = (table.meta.get("histograms") or {}).get(query.column)
        if not isinstance(edges, list) or len(edges) < 2:
            raise DataError(
                f"column {query.column!r} was not binned at encryption; encrypt it with bins"
            )
        sums = [_sum(table.column(indicator_name(query.column, i))) for i in range(len(edges) - 1)]
        meta.update(length=len(sums) * key.params.slots, edges=edges)
        return seal(key, sums, meta, flooding, noise)
    cts = table.column(query.column)
    sums = [_sum(cts)]
    if op is Operation.VARIANCE:
        sums.append(_sum([ct * ct for ct in cts]))
    meta.update(length=len(sums) * key.params.slots)
    return seal(key, sums, meta, flooding, noise)


def finish(
    result: DecryptedResult, magnitudes: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """The owner's last step: reduce the decrypted slots and state each value's error bound.

    ``magnitudes`` (column -> largest ``|x|``, known to the owner only) completes the bound
    of a linear score; without it the bound is ``None`` and the relative part is stated.

    Raises:
        IntegrityError: the result's metadata is not an analytics result.
    """
    meta = result.meta
    try:
        op = Operation(meta["op"])
        rows = int(meta["rows"])
        slots = int(meta["slots"])
        batches = int(meta["batches"])
        op_error = float(meta["op_error"])
        flooding = float(meta["flooding"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError("malformed analytics result") from exc
    per_slot = batches * op_error + flooding
    v = result.values
    if op is Operation.LINEAR:
        weights = {str(k): float(w) for k, w in (meta.get("weights") or {}).items()}
        absolute = per_slot + op_error * (len(weights) + 1)
        bound: float | None = None
        if magnitudes is not None:
            if not set(weights) <= set(magnitudes):
                raise DataError("give the largest magnitude of every weighted column")
            weighted = sum(abs(w) * abs(float(magnitudes[c])) for c, w in weights.items())
            bound = absolute + (batches * op_error + RELATIVE_ERROR) * weighted
        return {
            "op": op.value,
            "rows": rows,
            "scores": v[:rows],
            "error_bound": bound,
            "error_bound_absolute": absolute,
            "relative_error": RELATIVE_ERROR,
        }
    if op is Operation.HISTOGRAM:
        k = v.size // slots
        counts = v[: k * slots].reshape(k, slots).sum(axis=1)
        bound = slots * per_slot
        return {
            "op": op.value,
            "rows": rows,
            "edges": list(meta.get("edges") or []),
            "counts": [round(float(c)) for c in counts],
            "raw_counts": counts.tolist(),
            "error_bound": bound,
            "exact": bound < 0.5,
        }
    total = float(v[:slots].sum())
    bound = slots * per_slot
    if op is Operation.SUM:
        return {"op": op.value, "rows": rows, "value": total, "error_bound": bound}
    if op is Operation.MEAN:
        return {"op": op.value, "rows": rows, "value": total / rows, "error_bound": bound / rows}
    squares = float(v[slots : 2 * slots].sum())
    magnitude = math.sqrt(max(float(np.max(np.abs(v[slots : 2 * slots]))), 0.0))
    sq_bound = slots * (batches * op_error * (2 * magnitude + 1) + flooding) + RELATIVE_ERROR * (
        abs(squares) + slots * per_slot
    )
    mean = total / rows
    if rows < 2:
        raise DataError("the variance needs at least two rows")
    variance = (squares - rows * mean * mean) / (rows - 1)
    mean_bound = bound / rows
    var_bound = (sq_bound + rows * (2 * abs(mean) * mean_bound + mean_bound**2)) / (rows - 1)
    return {
        "op": op.value,
        "rows": rows,
        "value": variance,
        "mean": mean,
        "error_bound": var_bound,
    }
