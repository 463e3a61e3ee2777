"""The trusted dealer: correlated randomness (Beaver triples, truncation pairs) for N parties.

Security: the dealer is a trust assumption. It knows every triple and mask it hands out, so
it must not collude with any party and must not see the messages the parties exchange
(with them it could unmask every opened value). It never sees inputs or outputs. In a
deployment it is a separate service (or a TEE) that runs before the computation; replacing
it with an OT- or HE-based offline phase (SPDZ-style) removes the assumption at a large
cost. Each item is used once: reusing a triple or a truncation mask reveals differences
of secrets. The one sanctioned reuse is a matrix mask ``A`` for a fixed matrix ``X``
(``X - A`` is opened once and reused with fresh right-hand triples, as in SecureML).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tutela.hazmat.ring import RingArray, additive_share, random_ring
from tutela.hazmat.rng import SecureRandom

__all__ = ["MatrixMask", "ShuffleCorrelation", "ShuffleMask", "TruncationPair", "TrustedDealer"]


@dataclass(frozen=True, slots=True)
class TruncationPair:
    """Shares of a random ``r``, of ``(r mod 2**63) >> shift`` and of ``r >> 63``."""

    r: tuple[RingArray, ...]
    r_high: tuple[RingArray, ...]
    r_msb: tuple[RingArray, ...]


@dataclass(frozen=True, slots=True)
class MatrixMask:
    """Shares of a random matrix ``A`` the dealer remembers, to mask one fixed matrix."""

    mask_id: int
    shares: tuple[RingArray, ...]


@dataclass(frozen=True, slots=True)
class ShuffleMask:
    """The requester's half of a shuffle correlation: random ``u`` and ``z`` (length n)."""

    u: RingArray
    z: RingArray


@dataclass(frozen=True, slots=True)
class ShuffleCorrelation:
    """The responder's half: a random permutation ``perm`` and ``e = u[argsort(perm)] + z``.

    With it the responder un-shuffles a vector the requester masked with ``u`` into additive
    shares (``z`` on the requester's side) without either party seeing the other's half.
    """

    perm: npt.NDArray[np.int64]
    e: RingArray


def random_permutation(rng: SecureRandom, n: int) -> npt.NDArray[np.int64]:
    """A uniformly random permutation of ``range(n)`` (Fisher-Yates with exact draws)."""
    perm = np.arange(n, dtype=np.int64)
    if n < 2:
        return perm
    draws = rng.integers(np.arange(n, 1, -1, dtype=np.int64))  # j_i uniform in [0, n - i)
    for i, j in enumerate(draws.tolist()):
        k = n - 1 - i
        perm[k], perm[j] = perm[j], perm[k]
    return perm


class TrustedDealer:
    """Hands out one-time correlated randomness to ``n_parties`` parties.

    Args:
        n_parties: number of parties (>= 2).
        rng: the dealer's CSPRNG (default: fresh OS-seeded).

    Attributes:
        issued: number of ring elements of randomness issued so far (per party).
    """

    def __init__(self, n_parties: int, rng: SecureRandom | None = None) -> None:
        if n_parties < 2:
            raise ValueError("need at least 2 parties")
        self.n_parties = n_parties
        self._rng = rng or SecureRandom()
        self._masks: dict[int, RingArray] = {}
        self.issued = 0

    def _share(self, value: RingArray) -> tuple[RingArray, ...]:
        self.issued += int(value.size)
        return tuple(additive_share(value, self.n_parties, self._rng))

    def beaver_triple(
        self, shape: tuple[int, ...]
    ) -> tuple[tuple[RingArray, ...], tuple[RingArray, ...], tuple[RingArray, ...]]:
        """Shares of uniform ``a``, ``b`` and ``c = a * b`` (elementwise)."""
        a = random_ring(self._rng, shape)
        b = random_ring(self._rng, shape)
        return self._share(a), self._share(b), self._share(a * b)

    def truncation_pair(self, shape: tuple[int, ...], shift: int) -> TruncationPair:
        """Shares for truncating by ``shift`` bits (see ``Session.truncate``)."""
        if not 1 <= shift <= 62:
            raise ValueError("shift must be in [1, 62]")
        r = random_ring(self._rng, shape)
        low = r & np.uint64((1 << 63) - 1)
        return TruncationPair(
            self._share(r), self._share(low >> np.uint64(shift)), self._share(r >> np.uint64(63))
        )

    def matrix_mask(self, shape: tuple[int, int]) -> MatrixMask:
        """Shares of a fresh random matrix ``A``; the dealer keeps ``A`` for later triples."""
        a = random_ring(self._rng, shape)
        mask_id = len(self._masks)
        self._masks[mask_id] = a
        return MatrixMask(mask_id, self._share(a))

    def shuffle_correlation(self, n: int) -> tuple[ShuffleMask, ShuffleCorrelation]:
        """A shuffle correlation of length ``n`` for two parties (see :class:`ShuffleCorrelation`).

        Used by :mod:`tutela.smpc.psi` to turn a membership vector that the requester sees
        only in the responder's shuffled order into shares in the requester's row order.
        The dealer knows the permutation; it must not collude with the requester.
        """
        if self.n_parties != 2:
            raise ValueError("a shuffle correlation is for two parties")
        if n < 0:
            raise ValueError("n must be non-negative")
        self.issued += 2 * n
        perm = random_permutation(self._rng, n)
        u = random_ring(self._rng, n)
        z = random_ring(self._rng, n)
        return ShuffleMask(u, z), ShuffleCorrelation(perm, u[np.argsort(perm)] + z)

    def matmul_triple(
        self, mask: MatrixMask, rhs_shape: tuple[int, int], *, transpose: bool = False
    ) -> tuple[tuple[RingArray, ...], tuple[RingArray, ...]]:
        """Shares of a fresh ``B`` and of ``C = A @ B`` (or ``A.T @ B``) for mask ``A``."""
        a = self._masks[mask.mask_id]
        left = a.T if transpose else a
        if left.shape[1] != rhs_shape[0]:
            raise ValueError("triple shapes do not match the mask")
        b = random_ring(self._rng, rhs_shape)
        return self._share(b), self._share(left @ b)
