"""Joint statistics of N parties' own tables as one party's state machine (no I/O).

Each party holds rows of the same public columns (a horizontal partition). It scales each
column by a public bound ``B_j`` (``u = x / B``, so ``|u| <= 1``), computes its local
aggregate vector ::

    [row count, column sums (d), cross-products u u^T (d x d), histogram counts (bins)]

encodes it in fixed point in Z_{2^64}, and runs a two-round secure sum
(:class:`SecureSum`): it sends each other party a uniformly random additive share of its
vector, adds the shares it received into one share of the total, and broadcasts that share.
Every party then holds the total and nothing else: count, sums, means, variances, the
covariance matrix and the histogram follow from it (:func:`statistics_from_total`), and
quantiles of the histogram's column by linear interpolation within the bin where the
cumulative count crosses ``q * n`` (:func:`histogram_quantiles`): post-processing of the
histogram, so they cost no extra privacy and are exact to within one bin width.

An optional noise vector (integers on the fixed-point grid, drawn by the caller, e.g. the
site agent from its own DP plan) is added to the local vector before sharing, so only the
noised total is ever reconstructed (distributed DP).

Privacy: semi-honest parties; any coalition of up to ``N - 1`` parties learns only the total
(every share it receives is uniform and independent of the other parties' data). The total
reveals the count, sums, sum of cross-products and histogram of the union of the rows:
exact aggregates unless noise is added.

Precision: ``f`` fractional bits (default 20): each entry of the total is exact up to
``N * 2**-(f+1)`` in ``u`` units (rounding of each party's local vector); at most ``2**20``
rows in total.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tutela.hazmat.ring import FixedPoint64, RingArray, additive_share
from tutela.hazmat.rng import SecureRandom
from tutela.smpc import wire

__all__ = [
    "SecureSum",
    "StatsSpec",
    "histogram_quantiles",
    "local_vector",
    "statistics_from_total",
]

FloatArray = npt.NDArray[np.float64]
_MAX_ROWS = 1 << 20


@dataclass(frozen=True)
class StatsSpec:
    """What the parties compute, agreed in public.

    Attributes:
        columns: the numeric columns, in order.
        bounds: a public bound per column (``|x| <= bound``; values beyond are refused).
        histogram: the histogram's column (None: no histogram).
        edges: its bin edges (increasing; values outside ``[edges[0], edges[-1]]`` are
            refused).
        quantiles: levels in ``[0, 1]`` to read off the histogram (needs a histogram).
    """

    columns: tuple[str, ...]
    bounds: tuple[float, ...]
    histogram: str | None = None
    edges: tuple[float, ...] = ()
    quantiles: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.columns or len(set(self.columns)) != len(self.columns):
            raise ValueError("give one or more distinct columns")
        if len(self.bounds) != len(self.columns) or not all(
            np.isfinite(b) and b > 0 for b in self.bounds
        ):
            raise ValueError("give one positive, finite bound per column")
        if self.histogram is not None:
            e = np.asarray(self.edges, dtype=np.float64)
            if e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
                raise ValueError("histogram edges must be at least two increasing numbers")
        if self.quantiles and (
            self.histogram is None or not all(0.0 <= q <= 1.0 for q in self.quantiles)
        ):
            raise ValueError("quantiles need a histogram and levels in [0, 1]")

    @property
    def bins(self) -> int:
        """Number of histogram bins."""
        return len(self.edges) - 1 if self.histogram is not None else 0

    @property
    def length(self) -> int:
        """Length of the aggregate vector."""
        d = len(self.columns)
        return 1 + d + d * d + self.bins

    @property
    def sensitivity(self) -> float:
        """L2 sensitivity of the aggregate vector (in ``u`` units) to adding or removing one
        row: ``sqrt(1 + d + d**2 + [histogram])``."""
        d = len(self.columns)
        return float(np.sqrt(1 + d + d * d + (1 if self.bins else 0)))


def local_vector(table: Mapping[str, npt.ArrayLike], spec: StatsSpec) -> FloatArray:
    """This party's aggregate vector (see the module docstring).

    Raises:
        ValueError: a column is missing, a value is not finite or beyond its bound, or a
            histogram value is outside the edges.
    """
    cols = []
    for name, bound in zip(spec.columns, spec.bounds, strict=True):
        if name not in table:
            raise ValueError(f"no column {name!r}")
        x = np.asarray(table[name], dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"column {name!r} has missing or non-finite values")
        if np.any(np.abs(x) > bound):
            raise ValueError(f"column {name!r} has values beyond its bound {bound:g}")
        cols.append(x / bound)
    u = np.stack(cols, axis=1)
    if u.shape[0] > _MAX_ROWS:
        raise ValueError(f"at most {_MAX_ROWS} rows")
    parts = [np.array([float(u.shape[0])]), u.sum(axis=0), (u.T @ u).ravel()]
    if spec.histogram is not None:
        if spec.histogram not in table:
            raise ValueError(f"no column {spec.histogram!r}")
        h = np.asarray(table[spec.histogram], dtype=np.float64)
        if not np.all(np.isfinite(h)) or np.any(h < spec.edges[0]) or np.any(h > spec.edges[-1]):
            raise ValueError(f"column {spec.histogram!r} has values outside the histogram edges")
        parts.append(np.histogram(h, bins=np.asarray(spec.edges))[0].astype(np.float64))
    return np.concatenate(parts)


class SecureSum:
    """One party's side of the two-round secure sum of N ring vectors.

    Args:
        party: this party's index.
        n_parties: number of parties (>= 2).
        length: the vectors' length (public).
        rng: randomness for the shares (default: OS-seeded).
    """

    def __init__(
        self, party: int, n_parties: int, length: int, *, rng: SecureRandom | None = None
    ) -> None:
        if n_parties < 2 or not 0 <= party < n_parties or length < 1:
            raise ValueError("need 2+ parties, a valid index and a positive length")
        self.party, self.n, self.length = party, n_parties, length
        self._rng = rng or SecureRandom()
        self._own: RingArray | None = None
        self._sum: RingArray | None = None

    def share(self, vector: RingArray) -> dict[int, bytes]:
        """Round 1: one uniformly random share of ``vector`` for each other party."""
        v = np.asarray(vector, dtype=np.uint64)
        if v.shape != (self.length,):
            raise ValueError("the vector has the wrong length")
        shares = additive_share(v, self.n, self._rng)
        self._own = shares[self.party]
        return {j: wire.encode(self.party, 1, shares[j]) for j in range(self.n) if j != self.party}

    def combine(self, received: Mapping[int, bytes]) -> dict[int, bytes]:
        """Round 2: add the shares received into this party's share of the total; send it
        to every other party.

        Raises:
            MessageError: a share is missing, malformed or from the wrong party.
        """
        if self._own is None:
            raise wire.MessageError("combine before share")
        total = self._own.copy()
        for j in self._others():
            if j not in received:
                raise wire.MessageError(f"no share from party {j}")
            total += wire.decode(received[j], sender=j, step=1, shape=(self.length,))
        self._sum = total
        return {j: wire.encode(self.party, 2, total) for j in self._others()}

    def reveal(self, received: Mapping[int, bytes]) -> RingArray:
        """The total, from every other party's share of it."""
        if self._sum is None:
            raise wire.MessageError("reveal before combine")
        total = self._sum.copy()
        for j in self._others():
            if j not in received:
                raise wire.MessageError(f"no share of the total from party {j}")
            total += wire.decode(received[j], sender=j, step=2, shape=(self.length,))
        return total

    def _others(self) -> list[int]:
        return [j for j in range(self.n) if j != self.party]


def statistics_from_total(
    total: RingArray, spec: StatsSpec, fixed_point: FixedPoint64 | None = None
) -> dict[str, object]:
    """Count, sums, means, variances, covariance (``n - 1``) and histogram from the total.

    Raises:
        ValueError: the (possibly noised) count is below 2.
    """
    fxp = fixed_point or FixedPoint64()
    v = fxp.decode(np.asarray(total, dtype=np.uint64))
    d = len(spec.columns)
    B = np.asarray(spec.bounds, dtype=np.float64)
    n = float(v[0])
    if n < 2:
        raise ValueError("fewer than 2 rows in total")
    sums = v[1 : 1 + d] * B
    cross = v[1 + d : 1 + d + d * d].reshape(d, d) * np.outer(B, B)
    mean = sums / n
    cov = (cross - n * np.outer(mean, mean)) / (n - 1)
    out: dict[str, object] = {
        "count": n,
        "sum": dict(zip(spec.columns, sums.tolist(), strict=True)),
        "mean": dict(zip(spec.columns, mean.tolist(), strict=True)),
        "variance": dict(zip(spec.columns, np.diag(cov).tolist(), strict=True)),
        "covariance": cov.tolist(),
    }
    if spec.histogram is not None:
        counts = v[1 + d + d * d :]
        out["histogram"] = {
            "column": spec.histogram,
            "edges": list(spec.edges),
            "counts": counts.tolist(),
        }
        if spec.quantiles:
            values = histogram_quantiles(spec.edges, counts, spec.quantiles)
            out["quantiles"] = {
                "column": spec.histogram,
                "levels": list(spec.quantiles),
                "values": values.tolist(),
                "error_bound": float(np.max(np.diff(spec.edges))),
            }
    return out


def histogram_quantiles(
    edges: Sequence[float], counts: npt.ArrayLike, levels: Sequence[float]
) -> FloatArray:
    """Quantiles from a histogram: linear interpolation inside the bin where the cumulative
    count reaches ``q * total``.

    With exact counts each result lies in the bin holding the true ``q``-quantile of the
    rows, so it is off by less than that bin's width. Noised counts are clipped at zero
    first (post-processing).

    Raises:
        ValueError: the shapes do not fit, a level is outside ``[0, 1]`` or the counts are
            all zero.
    """
    e = np.asarray(edges, dtype=np.float64)
    c = np.maximum(np.asarray(counts, dtype=np.float64), 0.0)
    q = np.asarray(levels, dtype=np.float64)
    if c.shape != (e.size - 1,) or np.any((q < 0) | (q > 1)):
        raise ValueError("need one count per bin and levels in [0, 1]")
    total = float(c.sum())
    if total <= 0:
        raise ValueError("the histogram is empty")
    cum = np.concatenate([[0.0], np.cumsum(c)])
    target = np.maximum(q * total, 1e-12 * total)  # level 0: the first non-empty bin
    k = np.clip(np.searchsorted(cum[1:], target, side="left"), 0, c.size - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(c[k] > 0, (target - cum[k]) / c[k], 0.0)
    out: FloatArray = e[k] + np.clip(frac, 0.0, 1.0) * (e[k + 1] - e[k])
    return out
