"""Dealer-free Beaver triples between two parties, from Paillier (Gilboa-style products).

For parties who accept no dealer. Party ``i`` draws its own shares ``a_i``, ``b_i`` of a
triple; the cross terms of ``c = (a_0 + a_1)(b_0 + b_1)`` are shared by oblivious products::

    party i ──► Enc_i(a_i)                                   (its own Paillier key)
    party j ──► Enc_i(a_i b_j + rho)                         (homomorphically, re-randomised)
    party i     decrypts a_i b_j + rho over the integers;    its share: that mod 2**64
    party j     keeps -rho mod 2**64

``rho`` is uniform in ``[0, 2**(128 + log2(k) + 80))`` for a sum of ``k`` products, so what
party ``i`` decrypts is within statistical distance ``2**-80`` of a value independent of
``b_j``, and its low 64 bits are exactly uniform. Both directions run at once, so one
triple batch costs one round trip. The triples are the dealer's format: uint64 shares over
Z_{2^64} with ``c_0 + c_1 = (a_0 + a_1)(b_0 + b_1)``. :func:`cross_product` is the same
step for matrix triples (``A @ B`` and ``A.T @ B`` with a fixed mask ``A``), which
:mod:`tutela.smpc.pairwise` uses for training.

Security: semi-honest parties, two of them; no third party. Party ``j`` sees only
ciphertexts under ``i``'s key (IND-CPA); party ``i`` sees its own values and the masked
products. A party that deviates (wrong ciphertexts, wrong products) can make the triples
wrong without detection (no sacrifice check); a malformed ciphertext is refused with
:class:`~tutela.smpc.wire.MessageError` naming the party that sent it.

Cost: one encryption and one decryption per element and direction, plus one
re-randomisation and one 64-bit exponentiation; ``2 * ceil(2 * key_bits / 8)`` bytes on the
wire per element each way (measured in ``benchmarks/smpc.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tutela.hazmat.paillier import (
    PaillierKeyPair,
    PaillierPublicKey,
    generate_paillier_keypair,
    parse_ciphertexts,
    serialise_ciphertexts,
)
from tutela.hazmat.ring import RingArray, random_ring
from tutela.hazmat.rng import SecureRandom
from tutela.smpc import wire

__all__ = ["PaillierTriples", "Triple", "cross_product", "decrypt_ring", "peer_key"]

STAT_BITS = 80
_RING = 1 << 64


@dataclass(frozen=True, slots=True)
class Triple:
    """This party's shares of a Beaver triple (``c = a * b`` elementwise over the ring)."""

    a: RingArray
    b: RingArray
    c: RingArray


def peer_key(data: bytes, peer: int) -> PaillierPublicKey:
    """Parse the other party's public key.

    Raises:
        MessageError: naming ``peer``, if it is no usable key.
    """
    try:
        key = PaillierPublicKey.from_bytes(data)
    except (ValueError, TypeError):
        raise wire.MessageError(f"party {peer} sent a malformed Paillier public key") from None
    if key.key_bits < 2 * 64 + 32 + STAT_BITS + 64:
        raise wire.MessageError(f"party {peer} sent a Paillier key too short for the ring")
    return key


def cross_product(
    key: PaillierPublicKey,
    encrypted: Sequence[Sequence[int]],
    b: RingArray,
    rng: SecureRandom,
) -> tuple[list[int], RingArray]:
    """Encrypted shares of ``A @ b`` for an encrypted ``A`` (rows x k) and this party's ``b``.

    Returns:
        The re-randomised ciphertexts of ``A @ b + rho`` (row-major, rows x cols) for the
        key's owner, and this party's share ``-rho mod 2**64``.
    """
    bm = np.asarray(b, dtype=np.uint64)
    k = len(encrypted[0]) if encrypted else 0
    if bm.ndim != 2 or bm.shape[0] != k:
        raise ValueError("the right-hand side does not fit the encrypted matrix")
    bound = 1 << (128 + max(1, math.ceil(math.log2(max(k, 2)))) + STAT_BITS)
    nbytes = (bound.bit_length() + 7) // 8
    columns = [[int(v) for v in bm[:, j].tolist()] for j in range(bm.shape[1])]
    out, mine = [], []
    for row in encrypted:
        for col in columns:
            rho = int.from_bytes(rng.bytes(nbytes), "big") % bound
            c = key.rerandomise(key.add_plain(key.dot(row, col), rho), rng)
            out.append(c)
            mine.append((-rho) % _RING)
    return out, np.array(mine, dtype=np.uint64).reshape(len(encrypted), bm.shape[1])


def decrypt_ring(keys: PaillierKeyPair, cs: Sequence[int], shape: tuple[int, ...]) -> RingArray:
    """Decrypt and reduce modulo ``2**64``."""
    return np.array([keys.decrypt(c) % _RING for c in cs], dtype=np.uint64).reshape(shape)


def parse_from(key: PaillierPublicKey, data: bytes, count: int, peer: int) -> list[int]:
    """Parse ``count`` ciphertexts from ``peer`` (:class:`MessageError` naming it if bad)."""
    try:
        return parse_ciphertexts(key, data, count)
    except ValueError as exc:
        raise wire.MessageError(f"party {peer} sent a malformed ciphertext: {exc}") from None


class PaillierTriples:
    """One party's side of dealer-free elementwise triple generation (two parties).

    Each call pair is one round trip: :meth:`offer` goes to the peer, the peer's offer goes
    into :meth:`answer`, whose result goes back to the peer, and the peer's answer goes
    into :meth:`finish`.

    Args:
        party: 0 or 1.
        keys: this party's Paillier key pair (default: a fresh one of ``key_bits``).
        key_bits: size of a fresh key.
        rng: randomness for shares, masks and encryption (default: OS-seeded).
    """

    def __init__(
        self,
        party: int,
        keys: PaillierKeyPair | None = None,
        *,
        key_bits: int = 2048,
        rng: SecureRandom | None = None,
    ) -> None:
        if party not in (0, 1):
            raise ValueError("dealer-free triples are between parties 0 and 1")
        self.party, self.peer = party, 1 - party
        self.keys = keys or generate_paillier_keypair(key_bits)
        self._rng = rng or SecureRandom()
        self._peer_key: PaillierPublicKey | None = None
        self._pending: tuple[RingArray, RingArray] | None = None
        self._mine: RingArray | None = None

    def key_message(self) -> bytes:
        """This party's public key, for the peer."""
        return self.keys.public.to_bytes()

    def accept_key(self, data: bytes) -> None:
        """Take the peer's public key (:class:`MessageError` if malformed)."""
        self._peer_key = peer_key(data, self.peer)

    def offer(self, shape: tuple[int, ...]) -> bytes:
        """Draw this party's ``a`` and ``b``; send ``Enc_own(a)``."""
        a, b = random_ring(self._rng, shape), random_ring(self._rng, shape)
        self._pending = (a, b)
        cs = [self.keys.encrypt(int(v), self._rng) for v in a.ravel().tolist()]
        return serialise_ciphertexts(self.keys.public, cs)

    def answer(self, data: bytes) -> bytes:
        """The peer's ``Enc_peer(a_peer)`` in; ``Enc_peer(a_peer * b + rho)`` out."""
        if self._pending is None or self._peer_key is None:
            raise wire.MessageError("answer before offer and the peer's key")
        b = self._pending[1]
        enc = parse_from(self._peer_key, data, b.size, self.peer)
        cs, self._mine = self._answer(enc, b)
        return serialise_ciphertexts(self._peer_key, cs)

    def _answer(self, enc: list[int], b: RingArray) -> tuple[list[int], RingArray]:
        assert self._peer_key is not None
        out, mine = [], []
        for c, bv in zip(enc, b.ravel().tolist(), strict=True):
            cs, share = cross_product(
                self._peer_key, [[c]], np.array([[bv]], dtype=np.uint64), self._rng
            )
            out.extend(cs)
            mine.append(share[0, 0])
        return out, np.array(mine, dtype=np.uint64).reshape(b.shape)

    def finish(self, data: bytes) -> Triple:
        """The peer's answer in; this party's triple shares out."""
        if self._pending is None or self._mine is None:
            raise wire.MessageError("finish before offer and answer")
        a, b = self._pending
        cross = decrypt_ring(
            self.keys, parse_from(self.keys.public, data, a.size, self.peer), a.shape
        )
        c = a * b + cross + self._mine
        self._pending = self._mine = None
        return Triple(a, b, np.asarray(c, dtype=np.uint64))
