"""One party's runtime for additive sharing over Z_{2^64}, with its peers over any transport.

:class:`~tutela.smpc.session.Session` runs every party in one process; :class:`PartyRuntime`
is one party in its own process: it holds only its own shares, exchanges messages through an
``exchange(step, outbox) -> inbox`` function (the session relay in a deployment, queues in a
test) and takes its correlated randomness, in order, from a :class:`MaterialStream` a dealer
prepared. The protocols are those of :mod:`tutela.smpc.session` (input, open, exact-carry
truncation, SecureML masked-matrix products), with the same fixed point and error bounds.

A dealer prepares the streams without seeing any data: it runs the same program on a
:class:`ShapeRuntime`, which follows the shapes, asks a
:class:`~tutela.smpc.dealer.TrustedDealer` for every item the parties will need, in the
order they will need it, and keeps each party's shares (:meth:`ShapeRuntime.streams`).

Security: as :mod:`tutela.smpc.session` (semi-honest parties, a dealer that colludes with
no party and never sees party traffic). A stream that runs out or does not match the
program's shapes stops the computation with :class:`~tutela.smpc.wire.MessageError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tutela.hazmat.ring import FixedPoint64, RingArray, additive_share
from tutela.hazmat.rng import SecureRandom
from tutela.smpc import wire
from tutela.smpc.dealer import MatrixMask, TrustedDealer

__all__ = ["Masked", "MaterialStream", "PartyRuntime", "ShapeRuntime"]

Exchange = Callable[[str, Mapping[int, bytes], Sequence[int]], Mapping[int, bytes]]
FloatArray = npt.NDArray[np.float64]
_OFFSET = np.uint64(1 << 62)
_LOW63 = np.uint64((1 << 63) - 1)


@dataclass
class MaterialStream:
    """One party's correlated randomness, consumed in order."""

    items: list[RingArray] = field(default_factory=list)
    _next: int = 0

    def take(self, shape: tuple[int, ...]) -> RingArray:
        """The next item, which must have ``shape``."""
        if self._next >= len(self.items):
            raise wire.MessageError("the dealer's material ran out")
        item = self.items[self._next]
        if item.shape != shape:
            raise wire.MessageError("the dealer's material does not match the computation")
        self._next += 1
        return item

    def to_bytes(self) -> bytes:
        """Serialise (shapes and little-endian words)."""
        out = [struct.pack(">I", len(self.items))]
        for item in self.items:
            out.append(struct.pack(">B", item.ndim) + struct.pack(f">{item.ndim}I", *item.shape))
            out.append(np.ascontiguousarray(item, dtype="<u8").tobytes())
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data: bytes, *, max_words: int = 1 << 28) -> MaterialStream:
        """Inverse of :meth:`to_bytes` (:class:`~tutela.smpc.wire.MessageError` if malformed)."""
        try:
            (count,) = struct.unpack_from(">I", data, 0)
            off, items, words = 4, [], 0
            for _ in range(count):
                (ndim,) = struct.unpack_from(">B", data, off)
                shape = struct.unpack_from(f">{ndim}I", data, off + 1)
                off += 1 + 4 * ndim
                size = int(np.prod(shape, dtype=np.int64)) if shape else 1
                words += size
                if words > max_words or len(data) < off + 8 * size:
                    raise wire.MessageError("malformed dealer material")
                arr = np.frombuffer(data, dtype="<u8", count=size, offset=off)
                items.append(arr.astype(np.uint64).reshape(shape))
                off += 8 * size
        except struct.error:
            raise wire.MessageError("malformed dealer material") from None
        if off != len(data):
            raise wire.MessageError("malformed dealer material")
        return cls(items)


@dataclass(frozen=True)
class Masked:
    """This party's share of a matrix ``X``, of its dealer mask ``A``, and ``E = X - A``."""

    value: RingArray
    mask: RingArray
    opened: RingArray
    dealer_mask: MatrixMask | None = None
    index: int = -1  # the mask's number in a dealer-free run (tutela.smpc.pairwise)


class PartyRuntime:
    """One party's shares and the interactive protocols (see the module docstring).

    Args:
        party: this party's index.
        n_parties: number of parties.
        exchange: ``exchange(step, outbox, senders)`` sends ``outbox[j]`` to party ``j`` for
            ``step`` and returns the messages of that step from each of ``senders``.
        material: this party's dealer stream.
        fixed_point: encoding (default 20 fractional bits).
        rng: randomness for input sharing (default: OS-seeded).
    """

    def __init__(
        self,
        party: int,
        n_parties: int,
        exchange: Exchange,
        material: MaterialStream,
        *,
        fixed_point: FixedPoint64 | None = None,
        rng: SecureRandom | None = None,
    ) -> None:
        self.party, self.n = party, n_parties
        self.fxp = fixed_point or FixedPoint64()
        self._exchange, self._material = exchange, material
        self._rng = rng or SecureRandom()
        self._step = 0

    def _others(self) -> list[int]:
        return [j for j in range(self.n) if j != self.party]

    def _round(
        self, outbox: Mapping[int, bytes], senders: Sequence[int]
    ) -> tuple[int, Mapping[int, bytes]]:
        self._step += 1
        return self._step, self._exchange(f"s{self._step}", outbox, senders)

    def input(self, owner: int, value: npt.ArrayLike | None, shape: tuple[int, ...]) -> RingArray:
        """``owner`` shares its real-valued input of ``shape``; everyone gets a share."""
        if self.party == owner:
            enc = self.fxp.encode(np.asarray(value, dtype=np.float64))
            if enc.shape != shape:
                raise ValueError("the input does not have the agreed shape")
            shares = additive_share(enc, self.n, self._rng)
            step = self._step + 1
            self._round({j: wire.encode(owner, step, shares[j]) for j in self._others()}, [])
            return shares[owner]
        step, inbox = self._round({}, [owner])
        if owner not in inbox:
            raise wire.MessageError(f"no input share from party {owner}")
        return wire.decode(inbox[owner], sender=owner, step=step, shape=shape)

    def public(self, value: npt.ArrayLike) -> RingArray:
        """A share of a public real value (party 0 holds it, the others zero)."""
        enc = self.fxp.encode(np.asarray(value, dtype=np.float64))
        return enc if self.party == 0 else np.zeros_like(enc)

    def open_ring(self, share: RingArray) -> RingArray:
        """Every party broadcasts its share; all learn the value."""
        flat = np.ascontiguousarray(share, dtype=np.uint64).ravel()
        step = self._step + 1
        outbox = {j: wire.encode(self.party, step, flat) for j in self._others()}
        _, inbox = self._round(outbox, self._others())
        total = flat.copy()
        for j in self._others():
            if j not in inbox:
                raise wire.MessageError(f"no share from party {j}")
            total += wire.decode(inbox[j], sender=j, step=step, shape=flat.shape)
        return total.reshape(share.shape)

    def open(self, share: RingArray) -> FloatArray:
        """Open and decode a fixed-point value."""
        return self.fxp.decode(self.open_ring(share))

    def add_public(self, share: RingArray, c: npt.ArrayLike) -> RingArray:
        """``x + c`` for a public real ``c``."""
        return share + self.public(np.broadcast_to(np.asarray(c, np.float64), share.shape))

    def truncate(self, share: RingArray, shift: int | None = None) -> RingArray:
        """Divide by ``2**shift`` (default ``f``), floor or one more (see Session.truncate)."""
        m = self.fxp.frac_bits if shift is None else shift
        r = self._material.take(share.shape)
        r_high = self._material.take(share.shape)
        r_msb = self._material.take(share.shape)
        masked = share + r + (_OFFSET if self.party == 0 else np.uint64(0))
        c = self.open_ring(masked)
        c_msb = c >> np.uint64(63)
        c_high = (c & _LOW63) >> np.uint64(m)
        one = np.uint64(1)
        y = r_msb * (one - np.uint64(2) * c_msb) * np.uint64(1 << (63 - m)) - r_high
        if self.party == 0:
            y = y + c_msb * np.uint64(1 << (63 - m)) + c_high - np.uint64(1 << (62 - m))
        return np.asarray(y, dtype=np.uint64)

    def mul_public(self, share: RingArray, c: npt.ArrayLike, *, frac_bits: int = 20) -> RingArray:
        """``c * x`` for public reals ``c`` encoded with ``frac_bits`` bits, truncated."""
        scaled = np.rint(np.asarray(c, dtype=np.float64) * 2.0**frac_bits)
        if not np.all(np.isfinite(scaled)) or np.any(np.abs(scaled) >= 2.0**62):
            raise ValueError("public constant out of range for these frac_bits")
        return self.truncate(share * scaled.astype(np.int64).view(np.uint64), frac_bits)

    def mask_matrix(self, share: RingArray) -> Masked:
        """Open ``X - A`` once for a shared matrix ``X`` (dealer mask ``A``)."""
        mask = self._material.take(share.shape)
        return Masked(share, mask, self.open_ring(share - mask))

    def matmul(self, m: Masked, y: RingArray, *, transpose: bool = False) -> RingArray:
        """``X @ y`` (or ``X.T @ y``) for a masked ``X``, truncated."""
        rows = m.value.shape[1] if transpose else m.value.shape[0]
        b = self._material.take(y.shape)
        c = self._material.take((rows, y.shape[1]))
        return self._beaver_matmul(m, y, b, c, transpose=transpose)

    def _beaver_matmul(
        self, m: Masked, y: RingArray, b: RingArray, c: RingArray, *, transpose: bool
    ) -> RingArray:
        """``X @ y`` from shares of a triple ``(A, b, c = A @ b)`` (``A.T`` if transposed)."""
        f = self.open_ring(y - b)
        e = m.opened.T if transpose else m.opened
        a = m.mask.T if transpose else m.mask
        z = c + e @ b + a @ f
        if self.party == 0:
            z = z + e @ f
        return self.truncate(np.asarray(z, dtype=np.uint64))


class ShapeRuntime:
    """The dealer's dry run of a program: shapes only, material for every party, no data.

    Args:
        n_parties: number of parties.
        rng: the dealer's CSPRNG (default: OS-seeded).
    """

    def __init__(self, n_parties: int, rng: SecureRandom | None = None) -> None:
        self.n = n_parties
        self.party = -1  # the dealer is no party
        self.fxp = FixedPoint64()
        self._dealer = TrustedDealer(n_parties, rng)
        self._streams = [MaterialStream() for _ in range(n_parties)]

    def streams(self) -> list[MaterialStream]:
        """Each party's material, in the order the program uses it."""
        return self._streams

    def _give(self, shares: tuple[RingArray, ...]) -> None:
        for stream, share in zip(self._streams, shares, strict=True):
            stream.items.append(share)

    def input(self, owner: int, value: npt.ArrayLike | None, shape: tuple[int, ...]) -> RingArray:
        return np.zeros(shape, np.uint64)

    def public(self, value: npt.ArrayLike) -> RingArray:
        return np.zeros(np.shape(value), np.uint64)

    def open_ring(self, share: RingArray) -> RingArray:
        return np.zeros_like(share)

    def open(self, share: RingArray) -> FloatArray:
        return np.zeros(share.shape)

    def add_public(self, share: RingArray, c: npt.ArrayLike) -> RingArray:
        return share

    def truncate(self, share: RingArray, shift: int | None = None) -> RingArray:
        pair = self._dealer.truncation_pair(
            share.shape, self.fxp.frac_bits if shift is None else shift
        )
        for part in (pair.r, pair.r_high, pair.r_msb):
            self._give(part)
        return np.zeros_like(share)

    def mul_public(self, share: RingArray, c: npt.ArrayLike, *, frac_bits: int = 20) -> RingArray:
        return self.truncate(share, frac_bits)

    def mask_matrix(self, share: RingArray) -> Masked:
        mask = self._dealer.matrix_mask((share.shape[0], share.shape[1]))
        self._give(mask.shares)
        return Masked(share, mask.shares[0], share, mask)

    def matmul(self, m: Masked, y: RingArray, *, transpose: bool = False) -> RingArray:
        assert m.dealer_mask is not None
        b, c = self._dealer.matmul_triple(
            m.dealer_mask, (y.shape[0], y.shape[1]), transpose=transpose
        )
        self._give(b)
        self._give(c)
        rows = m.value.shape[1] if transpose else m.value.shape[0]
        return self.truncate(np.zeros((rows, y.shape[1]), np.uint64))
