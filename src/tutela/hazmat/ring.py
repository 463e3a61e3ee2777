"""The ring Z_{2^64} for additive secret sharing: fixed-point encoding, sharing, reconstruction.

Ring elements are numpy ``uint64`` arrays; numpy's unsigned arithmetic wraps modulo 2**64,
so ``+``, ``-`` and ``*`` (including ``@`` on integer matrices) are ring operations. A ring
element is read as a signed number in two's complement, ``[-2**63, 2**63)``.

Fixed point: a real ``x`` is encoded as ``round(x * 2**f)`` (round half to even), so the
encoding error is at most ``2**-(f+1)``. A product of two encodings carries ``2f``
fractional bits and must be truncated by ``f`` bits (done interactively in ``tutela.smpc``).

Security: :func:`additive_share` draws ``n - 1`` shares uniformly from Z_{2^64} with the
injected CSPRNG and sets the last one so the shares sum to the secret. Each share alone,
and any ``n - 1`` of them together, are exactly uniform and independent of the secret:
sharing is perfectly hiding against any coalition of fewer than ``n`` parties.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tutela.hazmat.rng import SecureRandom

__all__ = [
    "RING_BITS",
    "FixedPoint64",
    "RingArray",
    "additive_share",
    "random_ring",
    "reconstruct",
    "to_signed",
]

RING_BITS = 64
RingArray = npt.NDArray[np.uint64]


def to_signed(x: RingArray) -> npt.NDArray[np.int64]:
    """Read ring elements as two's-complement signed integers (a view, no copy)."""
    return np.asarray(x, dtype=np.uint64).view(np.int64)


def random_ring(rng: SecureRandom, shape: int | tuple[int, ...]) -> RingArray:
    """Uniform elements of Z_{2^64} of the given shape, from ``rng``."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    size = int(np.prod(dims, dtype=np.int64)) if dims else 1
    return rng.uint64(size).reshape(dims)


def additive_share(secret: RingArray, n_parties: int, rng: SecureRandom) -> list[RingArray]:
    """Split ``secret`` into ``n_parties`` additive shares over Z_{2^64}.

    Args:
        secret: uint64 array (any shape).
        n_parties: number of shares, at least 2.
        rng: CSPRNG for the random shares.

    Returns:
        ``n_parties`` uint64 arrays of the secret's shape that sum to it modulo 2**64.

    Security: see the module docstring (perfect hiding below ``n_parties``).
    """
    if n_parties < 2:
        raise ValueError("additive sharing needs at least 2 parties")
    value = np.asarray(secret)
    if value.dtype != np.uint64:
        raise ValueError("secret must be a uint64 ring array")
    shares = [random_ring(rng, value.shape) for _ in range(n_parties - 1)]
    last = value.copy()
    for s in shares:
        last -= s
    shares.append(last)
    return shares


def reconstruct(shares: Sequence[RingArray]) -> RingArray:
    """Sum additive shares modulo 2**64."""
    if not shares:
        raise ValueError("need at least one share")
    total = np.array(shares[0], dtype=np.uint64, copy=True)
    for s in shares[1:]:
        total += np.asarray(s, dtype=np.uint64)
    return total


@dataclass(frozen=True, slots=True)
class FixedPoint64:
    """Fixed-point reals in Z_{2^64} with ``frac_bits`` fractional bits.

    Attributes:
        frac_bits: number of fractional bits ``f`` (1..30). Resolution ``2**-f``; a product
            of two encodings has ``2f`` fractional bits and must stay below ``2**62`` in
            magnitude (reals below ``2**(62 - 2f)``) before truncation.
    """

    frac_bits: int = 20

    def __post_init__(self) -> None:
        if isinstance(self.frac_bits, bool) or not 1 <= self.frac_bits <= 30:
            raise ValueError("frac_bits must be in [1, 30]")

    @property
    def resolution(self) -> float:
        """The step ``2**-f`` between representable values."""
        return 2.0**-self.frac_bits

    @property
    def max_abs(self) -> float:
        """Largest magnitude :meth:`encode` accepts: ``2**(62 - f)``."""
        return 2.0 ** (62 - self.frac_bits)

    @property
    def product_max_abs(self) -> float:
        """Largest magnitude of a product (or sum of products) before truncation: 2**(62-2f)."""
        return 2.0 ** (62 - 2 * self.frac_bits)

    def encode(self, x: npt.ArrayLike) -> RingArray:
        """Encode reals as ring elements: ``round(x * 2**f) mod 2**64``.

        Raises:
            ValueError: a value is not finite or exceeds :attr:`max_abs`.
        """
        arr = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError("fixed-point encoding needs finite values")
        if arr.size and float(np.max(np.abs(arr))) > self.max_abs:
            raise ValueError(f"value out of fixed-point range (|x| <= {self.max_abs:g})")
        return np.rint(arr * 2.0**self.frac_bits).astype(np.int64).view(np.uint64)

    def decode(self, x: RingArray) -> npt.NDArray[np.float64]:
        """Decode ring elements (two's complement) to reals."""
        return to_signed(x).astype(np.float64) * 2.0**-self.frac_bits
