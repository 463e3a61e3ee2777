"""A two-party runtime with no dealer: Paillier-made triples and truncation.

:class:`PairwiseRuntime` runs the same programs as :class:`~tutela.smpc.party.PartyRuntime`
(e.g. :func:`tutela.smpc.vertical.train_vertical`) between exactly two parties who accept
no third party. What a dealer would hand out is made between the two parties instead:

* Matrix masks: each party draws its own share ``A_i`` of the mask and sends ``Enc_i(A_i)``
  once (its own Paillier key).
* Matrix triples for ``A @ B`` (or ``A.T @ B``): each party draws its share ``B_i``; the
  cross terms ``A_0 @ B_1`` and ``A_1 @ B_0`` come from
  :func:`tutela.smpc.triples.cross_product` (one round trip, both directions at once).
  Same ring, same format: ``C_0 + C_1 = (A_0 + A_1) @ (B_0 + B_1)`` over Z_{2^64}.
* Truncation by ``m`` bits: party 1 draws ``r`` and sends ``x_1 + r`` with ``Enc_1(r >> 63)``;
  party 0 learns ``c = x + 2^62 + r`` (uniform, since it never sees ``r``) and returns
  ``Enc_1(msb(c) * msb(r) + mu)`` (``mu`` uniform below ``2**128``; one re-randomised
  ciphertext carries ``(key_bits - 1) // 130`` such slots, so party 1 decrypts once per
  slot group); with
  that one shared bit product both hold shares of ``floor(x / 2^m)`` or one more, the exact
  formula of :meth:`PartyRuntime.truncate` with ``r`` known to party 1 only.

Security: semi-honest, two parties, no dealer. Party 0 sees ``x_1 + r`` (uniform), opened
masked values (as with a dealer) and ciphertexts under party 1's key; party 1 sees
ciphertexts under party 0's key and ``msb(c) msb(r) + mu`` (statistically hiding, distance
``2**-128``), plus the same opened masked values. Neither sees the other's input, shares or
any intermediate. A malformed ciphertext aborts with
:class:`~tutela.smpc.wire.MessageError` naming the sender.

Cost: each matrix product costs ``rows * k`` 64-bit exponentiations and ``rows``
encryptions per party; each truncated element one encryption by party 1 and a share of
one packed encryption and decryption (see ``benchmarks/smpc.py``).
"""

from __future__ import annotations

import struct

import numpy as np

from tutela.hazmat.paillier import (
    PaillierKeyPair,
    PaillierPublicKey,
    powmod,
    serialise_ciphertexts,
)
from tutela.hazmat.ring import FixedPoint64, RingArray, random_ring
from tutela.hazmat.rng import SecureRandom
from tutela.smpc import wire
from tutela.smpc.party import Exchange, Masked, MaterialStream, PartyRuntime
from tutela.smpc.triples import cross_product, decrypt_ring, parse_from, peer_key

__all__ = ["PairwiseRuntime"]

_OFFSET = np.uint64(1 << 62)
_LOW63 = np.uint64((1 << 63) - 1)
_MU_BYTES = 16
SLOT_BITS = 8 * _MU_BYTES + 2  # pi + mu < 2**128 + 1: no carry into the next slot


class PairwiseRuntime(PartyRuntime):
    """One of two parties, with correlated randomness made pairwise (module docstring).

    Args:
        party: 0 or 1.
        exchange: as for :class:`~tutela.smpc.party.PartyRuntime`.
        keys: this party's Paillier key pair (2048 bits or more outside tests).
        fixed_point: encoding (default 20 fractional bits).
        rng: randomness for shares, masks and encryption (default: OS-seeded).

    Attributes:
        paillier_bytes: bytes of ciphertexts and keys this party sent.
    """

    def __init__(
        self,
        party: int,
        exchange: Exchange,
        keys: PaillierKeyPair,
        *,
        fixed_point: FixedPoint64 | None = None,
        rng: SecureRandom | None = None,
    ) -> None:
        if party not in (0, 1):
            raise ValueError("the dealer-free runtime is for parties 0 and 1")
        super().__init__(party, 2, exchange, MaterialStream(), fixed_point=fixed_point, rng=rng)
        self.peer = 1 - party
        self._keys = keys
        self._peer_key: PaillierPublicKey | None = None
        self._peer_masks: list[list[list[int]]] = []
        self.paillier_bytes = 0

    def _send_receive(self, message: bytes | None, expect: bool) -> bytes | None:
        """One step: send ``message`` to the peer (if any); receive from it (if ``expect``)."""
        if message is not None:
            self.paillier_bytes += len(message)
        outbox = {} if message is None else {self.peer: message}
        _, inbox = self._round(outbox, [self.peer] if expect else [])
        if not expect:
            return None
        if self.peer not in inbox:
            raise wire.MessageError(f"no message from party {self.peer}")
        return inbox[self.peer]

    def _key(self) -> PaillierPublicKey:
        if self._peer_key is None:
            got = self._send_receive(self._keys.public.to_bytes(), True)
            assert got is not None
            self._peer_key = peer_key(got, self.peer)
        return self._peer_key

    def mask_matrix(self, share: RingArray) -> Masked:
        """Open ``X - A`` once; ``A``'s shares are drawn here, each sent encrypted."""
        peer = self._key()
        rows, cols = share.shape
        mask = random_ring(self._rng, (rows, cols))
        own = [self._keys.encrypt(int(v), self._rng) for v in mask.ravel().tolist()]
        got = self._send_receive(serialise_ciphertexts(self._keys.public, own), True)
        assert got is not None
        enc = parse_from(peer, got, rows * cols, self.peer)
        self._peer_masks.append([enc[i * cols : (i + 1) * cols] for i in range(rows)])
        index = len(self._peer_masks) - 1
        return Masked(share, mask, self.open_ring(share - mask), index=index)

    def matmul(self, m: Masked, y: RingArray, *, transpose: bool = False) -> RingArray:
        """``X @ y`` (or ``X.T @ y``) with a triple made pairwise, truncated."""
        if not 0 <= m.index < len(self._peer_masks):
            raise ValueError("mask this matrix with this runtime first")
        peer = self._key()
        b = random_ring(self._rng, y.shape)
        enc_peer = self._peer_masks[m.index]
        if transpose:
            enc_peer = [list(col) for col in zip(*enc_peer, strict=True)]
        cs, mine = cross_product(peer, enc_peer, b, self._rng)
        got = self._send_receive(serialise_ciphertexts(peer, cs), True)
        assert got is not None
        left = m.mask.T if transpose else m.mask
        shape = (left.shape[0], y.shape[1])
        theirs = decrypt_ring(
            self._keys, parse_from(self._keys.public, got, shape[0] * shape[1], self.peer), shape
        )
        c = np.asarray(left @ b + theirs + mine, dtype=np.uint64)
        return self._beaver_matmul(m, y, b, c, transpose=transpose)

    def truncate(self, share: RingArray, shift: int | None = None) -> RingArray:
        """Divide by ``2**shift`` (default ``f``): ``floor`` or one more (module docstring)."""
        m = self.fxp.frac_bits if shift is None else shift
        if not 1 <= m <= 62:
            raise ValueError("shift must be in [1, 62]")
        peer = self._key()
        shape, size = share.shape, int(share.size)
        x = np.ascontiguousarray(share, dtype=np.uint64).ravel()
        high = np.uint64(1 << (63 - m))
        if self.party == 1:
            r = random_ring(self._rng, size)
            r_msb = r >> np.uint64(63)
            enc = [self._keys.encrypt(int(v), self._rng) for v in r_msb.tolist()]
            step = self._step + 1
            ring = wire.encode(1, step, x + r)
            self._send_receive(
                struct.pack(">I", len(ring)) + ring + serialise_ciphertexts(self._keys.public, enc),
                False,
            )
            got = self._send_receive(None, True)
            assert got is not None
            pi = self._unpack_products(got, size)
            r_high = (r & _LOW63) >> np.uint64(m)
            y = r_msb * high - r_high - pi * np.uint64(2) * high
            return np.asarray(y, dtype=np.uint64).reshape(shape)
        step = self._step + 1
        got = self._send_receive(None, True)
        assert got is not None
        masked, enc = self._split(got, step, size, peer)
        c = x + masked + _OFFSET
        c_msb = c >> np.uint64(63)
        selected = [e if bit else 1 for e, bit in zip(enc, c_msb.tolist(), strict=True)]
        out, mu = self._pack_products(peer, selected)
        self._send_receive(serialise_ciphertexts(peer, out), False)
        pi0 = np.uint64(0) - mu
        c_high = (c & _LOW63) >> np.uint64(m)
        y = c_high + c_msb * high - pi0 * np.uint64(2) * high - np.uint64(1 << (62 - m))
        return np.asarray(y, dtype=np.uint64).reshape(shape)

    def _slots(self, key: PaillierPublicKey) -> int:
        return (key.key_bits - 1) // SLOT_BITS

    def _pack_products(
        self, key: PaillierPublicKey, selected: list[int]
    ) -> tuple[list[int], RingArray]:
        """``Enc(pi_k + mu_k)`` packed ``slots`` to a ciphertext (slot ``k`` at bit
        ``SLOT_BITS * k``), re-randomised; returns them and the ``mu_k`` mod 2**64."""
        slots, shift = self._slots(key), 1 << SLOT_BITS
        out: list[int] = []
        mu: list[int] = []
        for start in range(0, len(selected), slots):
            chunk = selected[start : start + slots]
            acc, packed = 1, 0
            for e in reversed(chunk):  # Horner: acc = prod_k e_k^(2^(SLOT_BITS k))
                acc = powmod(acc, shift, key.n_squared) * e % key.n_squared
            noise = [int.from_bytes(self._rng.bytes(_MU_BYTES), "big") for _ in chunk]
            for value in reversed(noise):
                packed = (packed << SLOT_BITS) + value
            out.append(key.rerandomise(key.add_plain(acc, packed), self._rng))
            mu.extend(v % (1 << 64) for v in noise)
        return out, np.array(mu, dtype=np.uint64)

    def _unpack_products(self, data: bytes, size: int) -> RingArray:
        """Decrypt the peer's packed ``pi_k + mu_k``; each slot modulo 2**64."""
        slots = self._slots(self._keys.public)
        count = -(-size // slots)
        mask = (1 << SLOT_BITS) - 1
        values: list[int] = []
        for c in parse_from(self._keys.public, data, count, self.peer):
            plain = self._keys.decrypt(c)
            values.extend((plain >> (SLOT_BITS * k)) & mask for k in range(slots))
        return np.array([v % (1 << 64) for v in values[:size]], dtype=np.uint64)

    def _split(
        self, data: bytes, step: int, size: int, key: PaillierPublicKey
    ) -> tuple[RingArray, list[int]]:
        if len(data) < 4:
            raise wire.MessageError(f"party {self.peer} sent a malformed truncation message")
        (n,) = struct.unpack_from(">I", data)
        masked = wire.decode(data[4 : 4 + n], sender=self.peer, step=step, shape=(size,))
        return masked, parse_from(key, data[4 + n :], size, self.peer)
