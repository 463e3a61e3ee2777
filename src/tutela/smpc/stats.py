"""Joint statistics of N parties' private rows (horizontal partition): only results open.

Each party holds rows of the same columns. It scales its values by public per-column
bounds ``B_j`` (so ``|u| <= 1``), computes its local count, column sums and the matrix of
cross-products, and secret-shares them. The parties add the shares, then compute on shares::

    mean       = S / n                                 (public 1/n, 40-bit constant)
    covariance = Q / (n - 1) - (n / (n - 1)) mean mean^T  (one Beaver product, d x d)

and open only the count, the sums, the means and the covariance matrix (variances on its
diagonal); correlations are computed from the opened covariance.

Privacy: the parties (and anyone they show results to) learn the total count, column sums,
means and covariance matrix, and the public bounds; nothing about any single party's
rows or local aggregates beyond what those totals imply (semi-honest parties, trusted
dealer, see :mod:`tutela.smpc.session`). The results are exact aggregates, not
differentially private: with few rows they can reveal individuals. If ``bounds`` is not
given, each party announces the power of two above its local maximum magnitude per column,
which reveals that coarse magnitude.

Precision (``f`` fractional bits, default 20): ``|mean error| <= 4 * B * 2**-f`` and
``|covariance error| <= 16 * B_i * B_j * 2**-f``; requires ``n <= 2**20`` rows in total.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tutela.smpc.session import Session, Shared, Traffic

__all__ = ["JointStatistics", "joint_statistics", "public_bounds"]

FloatArray = npt.NDArray[np.float64]
_MAX_ROWS = 1 << 20
_CONST_BITS = 40


@dataclass(frozen=True, slots=True)
class JointStatistics:
    """Opened results of :func:`joint_statistics` (column order as given).

    Attributes:
        count: total number of rows.
        sum: column sums.
        mean: column means.
        covariance: sample covariance matrix (``n - 1`` denominator).
        variance: its diagonal.
        correlation: Pearson correlation from the covariance (NaN for a constant column).
        mean_error_bound / covariance_error_bound: stated absolute error bounds.
        traffic: rounds and bytes the parties exchanged.
    """

    count: int
    sum: FloatArray
    mean: FloatArray
    covariance: FloatArray
    variance: FloatArray
    correlation: FloatArray
    mean_error_bound: FloatArray
    covariance_error_bound: FloatArray
    traffic: Traffic


def public_bounds(parts: Sequence[npt.ArrayLike]) -> FloatArray:
    """Per-column bounds: the power of two at or above every party's local max magnitude.

    Privacy: reveals each party's per-column magnitude rounded up to a power of two.
    """
    per_party = []
    for part in parts:
        a = np.abs(np.asarray(part, dtype=np.float64))
        m = a.max(axis=0) if a.shape[0] else np.zeros(a.shape[1])
        per_party.append(2.0 ** np.ceil(np.log2(np.maximum(m, 2.0**-10))))
    out: FloatArray = np.max(np.stack(per_party), axis=0)
    return out


def joint_statistics(
    parts: Sequence[npt.ArrayLike],
    *,
    bounds: npt.ArrayLike | None = None,
    session: Session | None = None,
) -> JointStatistics:
    """Count, sum, mean, covariance and correlation of the union of the parties' rows.

    Args:
        parts: party ``i``'s rows, shape ``(n_i, d)``; same ``d`` for all.
        bounds: public per-column bounds ``B_j >= max |x_j|`` (default :func:`public_bounds`).
        session: the runtime (default: a fresh :class:`Session` for ``len(parts)`` parties).

    Raises:
        ValueError: shapes differ, a value exceeds its bound, fewer than 2 rows in total.
    """
    arrays = [np.asarray(p, dtype=np.float64) for p in parts]
    if len(arrays) < 2:
        raise ValueError("joint statistics need at least 2 parties")
    if any(a.ndim != 2 for a in arrays) or len({a.shape[1] for a in arrays}) != 1:
        raise ValueError("every party needs a 2-D array with the same number of columns")
    d = arrays[0].shape[1]
    if d == 0 or any(not np.all(np.isfinite(a)) for a in arrays):
        raise ValueError("need at least one column and finite values")
    B = public_bounds(arrays) if bounds is None else np.asarray(bounds, dtype=np.float64)
    if B.shape != (d,) or np.any(B <= 0) or not np.all(np.isfinite(B)):
        raise ValueError("bounds must be positive, one per column")
    if any(a.size and np.any(np.abs(a) > B) for a in arrays):
        raise ValueError("a value exceeds its public bound")
    s = session or Session(len(arrays))
    if s.n_parties != len(arrays):
        raise ValueError("session has a different number of parties")

    total: Shared | None = None
    for i, a in enumerate(arrays):
        u = a / B
        # one message per party: [count, sums (d), cross-products (d*d)]
        local = np.concatenate([[float(u.shape[0])], u.sum(axis=0), (u.T @ u).ravel()])
        shared = s.input(i, local)
        total = shared if total is None else s.add(total, shared)
    assert total is not None
    n = round(float(s.open(total.local(lambda t: t[:1]))[0]))
    if n < 2 or n > _MAX_ROWS:
        raise ValueError(f"need between 2 and {_MAX_ROWS} rows in total")
    sums = total.local(lambda t: t[1 : 1 + d])
    cross = total.local(lambda t: t[1 + d :].reshape(d, d))
    mean = s.mul_public(sums, 1.0 / n, frac_bits=_CONST_BITS)
    outer = s.mul(
        mean.local(lambda m: np.broadcast_to(m[:, None], (d, d)).copy()),
        mean.local(lambda m: np.broadcast_to(m[None, :], (d, d)).copy()),
    )
    cov = s.sub(
        s.mul_public(cross, 1.0 / (n - 1), frac_bits=_CONST_BITS),
        s.mul_public(outer, n / (n - 1), frac_bits=_CONST_BITS),
    )
    opened = s.fxp.decode(np.concatenate([r.ravel() for r in s.open_ring(sums, mean, cov)]))
    sum_u, mean_u, cov_u = opened[:d], opened[d : 2 * d], opened[2 * d :].reshape(d, d)
    covariance = cov_u * np.outer(B, B)
    variance = np.diag(covariance).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(np.maximum(variance, 0.0))
        corr = covariance / np.outer(sd, sd)
    corr[~np.isfinite(corr)] = math.nan
    res = s.fxp.resolution
    return JointStatistics(
        count=n,
        sum=sum_u * B,
        mean=mean_u * B,
        covariance=covariance,
        variance=variance,
        correlation=np.clip(corr, -1.0, 1.0),
        mean_error_bound=4 * B * res,
        covariance_error_bound=16 * np.outer(B, B) * res,
        traffic=s.traffic,
    )
