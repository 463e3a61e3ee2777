"""An in-process N-party runtime for additive sharing over Z_{2^64}, messages as bytes.

Party ``i`` holds ``shares[i]`` of every :class:`Shared` value; local steps (addition,
public scaling, reshaping) touch only that share. Every value that crosses between parties
is serialised by :mod:`tutela.smpc.wire` and moved by a :class:`Network`, which counts
rounds and bytes; an in-memory network runs the parties in one process, and the same
bytes could ride the coordinator's relay.

Protocols:
    * Input: the owner encodes its value in fixed point, shares it with its own CSPRNG and
      sends one share to each party (perfectly hiding).
    * Open: every party broadcasts its share; all sum the same messages.
    * Multiplication (Beaver): with a dealer triple ``(a, b, ab)`` open ``x - a`` and
      ``y - b`` (uniform, so they reveal nothing) and combine locally.
    * Matrix products (SecureML-style): a fixed matrix ``X`` is masked once by a dealer
      matrix ``A`` (``X - A`` opened once); each product with a fresh right-hand side uses
      a fresh ``(B, A @ B)``.
    * Truncation by ``m`` bits (Escudero et al., CRYPTO 2020, probabilistic truncation in
      Z_{2^k}): with a dealer pair ``r``, ``(r mod 2^63) >> m``, ``r >> 63``, open
      ``c = x + 2^62 + r`` (uniform) and correct the carry through the top bit exactly.
      The result is ``floor(x / 2^m)`` or one more (error at most one unit in the last
      place); it is exact in range for every ``|x| < 2^62`` with no wrap-around failure.

Security: semi-honest (honest-but-curious) parties, any coalition of up to ``N - 1``
parties learns nothing beyond the opened results; the dealer is trusted (see
:mod:`tutela.smpc.dealer`). Malicious parties can make results wrong without detection
(no MACs on shares). Fixed point: ``f`` fractional bits (default 20, resolution about
1e-6); values before truncation must stay below ``2**62`` in the ring, i.e. products below
``2**(62 - 2f)`` = about 4e6 at the default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tutela.hazmat.ring import FixedPoint64, RingArray, additive_share
from tutela.hazmat.rng import SecureRandom
from tutela.smpc import wire
from tutela.smpc.dealer import MatrixMask, TrustedDealer

__all__ = ["MaskedMatrix", "Network", "Session", "Shared", "Traffic"]

FloatArray = npt.NDArray[np.float64]
_OFFSET = np.uint64(1 << 62)
_LOW63 = np.uint64((1 << 63) - 1)


@dataclass(frozen=True, slots=True)
class Shared:
    """A secret-shared ring tensor: ``shares[i]`` is party ``i``'s share."""

    shares: tuple[RingArray, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the shared tensor."""
        return tuple(self.shares[0].shape)

    def local(self, fn: Callable[[RingArray], RingArray]) -> Shared:
        """Apply the same public linear map (reshape, index, sum, transpose...) to each share."""
        return Shared(tuple(np.asarray(fn(s), dtype=np.uint64) for s in self.shares))


@dataclass(frozen=True, slots=True)
class MaskedMatrix:
    """A shared matrix ``X`` opened once as ``E = X - A`` under a dealer mask ``A``."""

    value: Shared
    mask: MatrixMask
    opened: RingArray


@dataclass(slots=True)
class Traffic:
    """What crossed the network: rounds, messages and bytes (all parties together)."""

    rounds: int = 0
    messages: int = 0
    bytes: int = 0


@dataclass(slots=True)
class Network:
    """In-memory transport. One call to :meth:`exchange` is one communication round."""

    n_parties: int
    traffic: Traffic = field(default_factory=Traffic)

    def exchange(self, outboxes: Sequence[Mapping[int, bytes]]) -> list[dict[int, bytes]]:
        """Deliver ``outboxes[i][j]`` (bytes from party i to party j) into ``inbox[j][i]``."""
        if len(outboxes) != self.n_parties:
            raise ValueError("one outbox per party")
        inboxes: list[dict[int, bytes]] = [{} for _ in range(self.n_parties)]
        for i, outbox in enumerate(outboxes):
            for j, msg in outbox.items():
                if not isinstance(msg, bytes) or not 0 <= j < self.n_parties or j == i:
                    raise ValueError("messages must be bytes addressed to another party")
                inboxes[j][i] = msg
                self.traffic.messages += 1
                self.traffic.bytes += len(msg)
        self.traffic.rounds += 1
        return inboxes


class Session:
    """Runs N semi-honest parties in lockstep.

    Args:
        n_parties: number of parties (>= 2).
        fixed_point: the fixed-point encoding (default 20 fractional bits).
        dealer: source of triples (default: a fresh :class:`TrustedDealer`).
        seed: makes every party's and the dealer's randomness deterministic (tests only).

    Security: see the module docstring.
    """

    def __init__(
        self,
        n_parties: int,
        *,
        fixed_point: FixedPoint64 | None = None,
        dealer: TrustedDealer | None = None,
        seed: int | None = None,
    ) -> None:
        if n_parties < 2:
            raise ValueError("need at least 2 parties")
        self.n_parties = n_parties
        self.fxp = fixed_point or FixedPoint64()
        self._rngs = [
            SecureRandom(None if seed is None else f"party/{seed}/{i}".encode())
            for i in range(n_parties)
        ]
        self.dealer = dealer or TrustedDealer(
            n_parties, SecureRandom(None if seed is None else f"dealer/{seed}".encode())
        )
        if self.dealer.n_parties != n_parties:
            raise ValueError("dealer serves a different number of parties")
        self.network = Network(n_parties)
        self._step = 0

    @property
    def traffic(self) -> Traffic:
        """Rounds, messages and bytes exchanged so far."""
        return self.network.traffic

    # -- communication -----------------------------------------------------------------

    def _next_step(self) -> int:
        self._step += 1
        return self._step

    def input(self, owner: int, value: npt.ArrayLike) -> Shared:
        """Party ``owner`` secret-shares its private real-valued input."""
        return self.input_ring(owner, self.fxp.encode(value))

    def input_ring(self, owner: int, value: RingArray) -> Shared:
        """Party ``owner`` secret-shares a ring tensor (already encoded)."""
        if not 0 <= owner < self.n_parties:
            raise ValueError("no such party")
        step = self._next_step()
        shares = additive_share(
            np.asarray(value, dtype=np.uint64), self.n_parties, self._rngs[owner]
        )
        outboxes: list[dict[int, bytes]] = [{} for _ in range(self.n_parties)]
        outboxes[owner] = {
            j: wire.encode(owner, step, shares[j]) for j in range(self.n_parties) if j != owner
        }
        inboxes = self.network.exchange(outboxes)
        shape = shares[owner].shape
        held = [
            shares[owner]
            if j == owner
            else wire.decode(inboxes[j][owner], sender=owner, step=step, shape=shape)
            for j in range(self.n_parties)
        ]
        return Shared(tuple(held))

    def open_ring(self, *values: Shared) -> list[RingArray]:
        """Open several shared tensors in one round (every party learns them)."""
        step = self._next_step()
        flat = [
            np.concatenate([v.shares[i].ravel() for v in values]) for i in range(self.n_parties)
        ]
        outboxes = [
            {j: wire.encode(i, step, flat[i]) for j in range(self.n_parties) if j != i}
            for i in range(self.n_parties)
        ]
        inboxes = self.network.exchange(outboxes)
        totals = []
        for j in range(self.n_parties):
            total = flat[j].copy()
            for i, msg in inboxes[j].items():
                total += wire.decode(msg, sender=i, step=step, shape=flat[j].shape)
            totals.append(total)
        if any(not np.array_equal(totals[0], t) for t in totals[1:]):
            raise wire.MessageError("parties disagree on an opened value")
        out, pos = [], 0
        for v in values:
            size = int(np.prod(v.shape, dtype=np.int64)) if v.shape else 1
            out.append(totals[0][pos : pos + size].reshape(v.shape))
            pos += size
        return out

    def open(self, value: Shared) -> FloatArray:
        """Open a shared fixed-point tensor and decode it."""
        return self.fxp.decode(self.open_ring(value)[0])

    # -- local linear operations -------------------------------------------------------

    def add(self, a: Shared, b: Shared) -> Shared:
        """``a + b``."""
        return Shared(tuple(x + y for x, y in zip(a.shares, b.shares, strict=True)))

    def sub(self, a: Shared, b: Shared) -> Shared:
        """``a - b``."""
        return Shared(tuple(x - y for x, y in zip(a.shares, b.shares, strict=True)))

    def add_public(self, a: Shared, c: npt.ArrayLike) -> Shared:
        """``a + c`` for a public real ``c`` (party 0 adds it)."""
        enc = self.fxp.encode(np.broadcast_to(np.asarray(c, dtype=np.float64), a.shape))
        return Shared((a.shares[0] + enc, *a.shares[1:]))

    def mul_int(self, a: Shared, k: int) -> Shared:
        """``k * a`` for a public integer (exact, no truncation)."""
        factor = np.uint64(k % (1 << 64))
        return Shared(tuple(s * factor for s in a.shares))

    def mul_public(self, a: Shared, c: npt.ArrayLike, *, frac_bits: int | None = None) -> Shared:
        """``c * a`` for public reals ``c`` encoded with ``frac_bits`` bits, then truncated.

        More ``frac_bits`` give a more precise constant; the product ``|a * c| * 2**(f +
        frac_bits)`` must stay below ``2**62``.
        """
        bits = self.fxp.frac_bits if frac_bits is None else frac_bits
        if not 1 <= bits <= 62:
            raise ValueError("frac_bits must be in [1, 62]")
        scaled = np.rint(np.asarray(c, dtype=np.float64) * 2.0**bits)
        if not np.all(np.isfinite(scaled)) or np.any(np.abs(scaled) >= 2.0**62):
            raise ValueError("public constant out of range for these frac_bits")
        enc = scaled.astype(np.int64).view(np.uint64)
        prod = Shared(tuple(s * enc for s in a.shares))
        return self.truncate(prod, bits)

    # -- interactive operations --------------------------------------------------------

    def truncate(self, a: Shared, shift: int | None = None) -> Shared:
        """Divide by ``2**shift`` (default ``f``): floor or one more, for ``|a| < 2**62``."""
        m = self.fxp.frac_bits if shift is None else shift
        pair = self.dealer.truncation_pair(a.shape, m)
        masked = Shared(
            tuple(
                s + r + (_OFFSET if i == 0 else np.uint64(0))
                for i, (s, r) in enumerate(zip(a.shares, pair.r, strict=True))
            )
        )
        (c,) = self.open_ring(masked)
        c_msb = c >> np.uint64(63)
        c_high = (c & _LOW63) >> np.uint64(m)
        one = np.uint64(1)
        out = []
        for i in range(self.n_parties):
            v = pair.r_msb[i] * (one - np.uint64(2) * c_msb)
            y = v * np.uint64(1 << (63 - m)) - pair.r_high[i]
            if i == 0:
                y = y + c_msb * np.uint64(1 << (63 - m)) + c_high - np.uint64(1 << (62 - m))
            out.append(y)
        return Shared(tuple(out))

    def mul(self, x: Shared, y: Shared, *, truncate: bool = True) -> Shared:
        """Elementwise product with a Beaver triple (one round), then truncation."""
        if x.shape != y.shape:
            raise ValueError("shapes differ; broadcast with Shared.local first")
        a, b, c = self.dealer.beaver_triple(x.shape)
        e, f = self.open_ring(self.sub(x, Shared(a)), self.sub(y, Shared(b)))
        out = []
        for i in range(self.n_parties):
            z = c[i] + e * b[i] + f * a[i]
            if i == 0:
                z = z + e * f
            out.append(z)
        z_shared = Shared(tuple(out))
        return self.truncate(z_shared) if truncate else z_shared

    def mask_matrix(self, x: Shared) -> MaskedMatrix:
        """Mask a shared matrix once for reuse in many products (opens ``X - A``)."""
        if len(x.shape) != 2:
            raise ValueError("need a matrix")
        mask = self.dealer.matrix_mask((x.shape[0], x.shape[1]))
        (opened,) = self.open_ring(self.sub(x, Shared(mask.shares)))
        return MaskedMatrix(x, mask, opened)

    def matmul(self, m: MaskedMatrix, y: Shared, *, transpose: bool = False) -> Shared:
        """``X @ y`` (or ``X.T @ y``) for a masked ``X`` and a shared matrix ``y``, truncated."""
        if len(y.shape) != 2:
            raise ValueError("right-hand side must be 2-D")
        b, c = self.dealer.matmul_triple(m.mask, (y.shape[0], y.shape[1]), transpose=transpose)
        (f,) = self.open_ring(self.sub(y, Shared(b)))
        e = m.opened.T if transpose else m.opened
        out = []
        for i in range(self.n_parties):
            a_i = m.mask.shares[i].T if transpose else m.mask.shares[i]
            z = c[i] + e @ b[i] + a_i @ f
            if i == 0:
                z = z + e @ f
            out.append(z)
        return self.truncate(Shared(tuple(out)))
