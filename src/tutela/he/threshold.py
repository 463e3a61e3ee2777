"""Threshold (n-of-n) Paillier aggregation: no single party can decrypt.

TenSEAL has no threshold decryption, so the distributed-trust mode uses Paillier, whose
decryption is a single exponentiation and splits additively::

    dealer         deal_threshold_keys(N) ──► public key to all; key share d_i to site i;
                                              then forgets p, q, lambda and d
    each site      encrypt_update(pk, update) ──► coordinator
    coordinator    aggregate(pk, payloads, weights) ──► aggregate to every site
    each site      partial_decrypt(share, aggregate) ──► coordinator
    coordinator    combine(pk, aggregate, partials) ──► the (weighted) sum only

Decryption exponent: ``d = lambda * (lambda^-1 mod n)``, so ``d = 0 mod lambda`` and
``d = 1 mod n`` and, for ``c = (1 + n)^m r^n``, ``c^d = 1 + m n (mod n^2)``. The dealer
splits ``d`` over the integers: ``d_1..d_{N-1}`` uniform in ``[0, 2^(2k + 128))`` and
``d_N = d - sum``. Site ``i`` returns ``c^(d_i) mod n^2``; the product of all N partials is
``c^d``. Values are fixed point (``frac_bits``) and packed many per ciphertext in slots with
headroom, so sums never carry between slots: error only from rounding, at most
``2**-(frac_bits+1)`` per value per contribution (times its weight).

Security:
    Who holds what. The public key ``n`` is public. Site ``i`` holds ``d_i``. Keys come
    either from :func:`tutela.he.keygen.generate_threshold_keys` (the key holders generate
    ``n`` and the ``d_i`` among themselves; nobody ever holds ``p``, ``q`` or ``d``) or from
    a dealer (:func:`deal_threshold_keys`, wrapped by the role
    :class:`tutela.he.dealer.ThresholdKeyDealer`, never the coordinator): a trust
    assumption, since it sees the whole key while dealing and must erase it. Each way
    reports itself (:class:`tutela.he.keyreport.KeyGeneration`).

    What the coordinator learns. Ciphertexts are IND-CPA under the decisional composite
    residuosity assumption (``key_bits=3072`` for about 128-bit security, 2048 for
    112-bit). Any ``N - 1`` shares are within statistical distance ``2^-128`` of shares of
    an unrelated exponent, and given the result the last partial is determined by the
    others, so the partials reveal nothing beyond the decrypted sum: the coordinator (and
    every site) learns the sum and the number of contributions and weights it holds.

    What breaks it. All N share holders together can decrypt anything, including one
    site's contribution. A coordinator that asks every site to partially decrypt a single
    contribution (instead of the aggregate) learns it: sites must only decrypt aggregates
    of at least two contributions from authenticated senders (semi-honest coordinator
    assumed here). Partials are checked on combination (the product must be ``1 mod n``
    and every slot must fit its headroom), so a corrupted partial raises
    :class:`~tutela.errors.IntegrityError` rather than giving a wrong sum.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric import rsa

from tutela.errors import IntegrityError
from tutela.hazmat.paillier import powmod
from tutela.hazmat.rng import SecureRandom
from tutela.he import _wire

__all__ = [
    "KeyShare",
    "PackingParams",
    "PaillierPublicKey",
    "ThresholdSum",
    "aggregate",
    "combine",
    "deal_threshold_keys",
    "encrypt_update",
    "partial_decrypt",
]

_CONTRIBUTION = 11
_AGGREGATE = 12
_PARTIAL = 13
_STAT_BITS = 128
_MAX_VALUES = 1 << 22

_POWMOD = powmod  # gmpy2 where installed, else pow: one choice for every Paillier user


@dataclass(frozen=True, slots=True)
class PackingParams:
    """Fixed-point packing of floats into Paillier plaintext slots.

    Attributes:
        frac_bits: fractional bits; rounding error at most ``2**-(frac_bits+1)`` per value.
        value_bits: bits of one encoded value; ``|x| < 2**(value_bits - 1 - frac_bits)``.
        headroom_bits: bits left for sums; the total integer weight of an aggregate must
            stay below ``2**headroom_bits``.
    """

    frac_bits: int = 24
    value_bits: int = 40
    headroom_bits: int = 16

    def __post_init__(self) -> None:
        if not 0 <= self.frac_bits < self.value_bits - 1:
            raise ValueError("need 0 <= frac_bits < value_bits - 1")
        if not 2 <= self.value_bits <= 62 or not 1 <= self.headroom_bits <= 32:
            raise ValueError("value_bits must be in [2, 62] and headroom_bits in [1, 32]")
        if self.slot_bits % 8:
            raise ValueError("value_bits + headroom_bits must be a multiple of 8")

    @property
    def slot_bits(self) -> int:
        """Bits per packed slot (value plus headroom)."""
        return self.value_bits + self.headroom_bits

    @property
    def max_abs(self) -> float:
        """Largest encodable magnitude."""
        return 2.0 ** (self.value_bits - 1 - self.frac_bits) - 2.0**-self.frac_bits

    @property
    def max_total_weight(self) -> int:
        """Largest total integer weight an aggregate may carry."""
        return (1 << self.headroom_bits) - 1


@dataclass(frozen=True, slots=True)
class PaillierPublicKey:
    """A Paillier public key ``n`` (generator ``n + 1``)."""

    n: int

    def __post_init__(self) -> None:
        if self.n < (1 << 1023) or self.n % 2 == 0:
            raise ValueError("n must be an odd modulus of at least 1024 bits")

    @property
    def n_squared(self) -> int:
        """The ciphertext modulus ``n**2``."""
        return self.n * self.n

    @property
    def key_bits(self) -> int:
        """Bit length of ``n``."""
        return self.n.bit_length()

    @property
    def fingerprint(self) -> bytes:
        """32-byte identifier of the key."""
        return hashlib.sha256(b"tutela.he.paillier/v1\x00" + self.to_bytes()).digest()

    def to_bytes(self) -> bytes:
        """Big-endian ``n``."""
        return self.n.to_bytes((self.key_bits + 7) // 8, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> PaillierPublicKey:
        """Inverse of :meth:`to_bytes`."""
        return cls(int.from_bytes(data, "big"))

    def slots(self, params: PackingParams) -> int:
        """Values packed per ciphertext."""
        return (self.key_bits - 1) // params.slot_bits


@dataclass(frozen=True, slots=True)
class KeyShare:
    """Site ``index``'s additive share of the decryption exponent (secret)."""

    index: int
    n_parties: int
    public_key: PaillierPublicKey
    exponent: int = field(repr=False)


@dataclass(frozen=True, slots=True)
class ThresholdSum:
    """A jointly decrypted sum.

    Attributes:
        values: the (weighted) sum per coordinate.
        n_terms: number of contributions in the aggregate.
        total_weight: sum of the integer weights.
        error_bound: per-value absolute error bound (rounding only).
    """

    values: npt.NDArray[np.float64]
    n_terms: int
    total_weight: int
    error_bound: float


def deal_threshold_keys(
    n_parties: int, *, key_bits: int = 3072, rng: SecureRandom | None = None
) -> tuple[PaillierPublicKey, tuple[KeyShare, ...]]:
    """Generate a Paillier key and split its decryption exponent n-of-n (trusted dealer).

    Prefer :func:`tutela.he.keygen.generate_threshold_keys` (no dealer), or run this as the
    named role :class:`tutela.he.dealer.ThresholdKeyDealer`, which reports that it saw the key.

    Args:
        n_parties: number of share holders (>= 2); all are needed to decrypt.
        key_bits: modulus size: 3072 (about 128-bit security), 2048 (112-bit); 1024 only
            for tests.
        rng: randomness for the shares (the primes come from OpenSSL's CSPRNG).

    Security: see the module docstring; the dealer must erase everything it returns
    except what it sends out.
    """
    if n_parties < 2:
        raise ValueError("threshold decryption needs at least 2 parties")
    if key_bits < 1024 or key_bits % 256:
        raise ValueError("key_bits must be a multiple of 256 and at least 1024")
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=key_bits).private_numbers()
    return _deal_from_primes(numbers.p, numbers.q, n_parties, rng or SecureRandom())


def _deal_from_primes(
    p: int, q: int, n_parties: int, rng: SecureRandom
) -> tuple[PaillierPublicKey, tuple[KeyShare, ...]]:
    n = p * q
    key_bits = n.bit_length()
    lam = math.lcm(p - 1, q - 1)
    d = lam * pow(lam, -1, n)
    pk = PaillierPublicKey(n)
    share_bits = 2 * key_bits + _STAT_BITS
    nbytes = (share_bits + 7) // 8
    shares = [
        int.from_bytes(rng.bytes(nbytes), "big") >> (8 * nbytes - share_bits)
        for _ in range(n_parties - 1)
    ]
    shares.append(d - sum(shares))
    return pk, tuple(KeyShare(i, n_parties, pk, s) for i, s in enumerate(shares))


def _pack_values(x: npt.NDArray[np.float64], params: PackingParams, slots: int) -> list[int]:
    q = np.rint(x * 2.0**params.frac_bits).astype(np.int64) + (1 << (params.value_bits - 1))
    width = params.slot_bits // 8
    n_ct = -(-x.size // slots)
    padded = np.full(n_ct * slots, 1 << (params.value_bits - 1), dtype=np.int64)
    padded[: x.size] = q
    # slot 0 is least significant: reverse slots within each ciphertext, big-endian bytes
    be = padded.reshape(n_ct, slots)[:, ::-1].astype(">u8").view(np.uint8)
    be = be.reshape(n_ct, slots, 8)[:, :, 8 - width :].reshape(n_ct, slots * width)
    return [int.from_bytes(row.tobytes(), "big") for row in be]


def _unpack_values(m: int, params: PackingParams, slots: int) -> npt.NDArray[np.uint64]:
    width = params.slot_bits // 8
    if m.bit_length() > slots * params.slot_bits:
        raise IntegrityError("decrypted value does not fit its slots")
    raw = np.frombuffer(m.to_bytes(slots * width, "big"), dtype=np.uint8).reshape(slots, width)
    full = np.zeros((slots, 8), dtype=np.uint8)
    full[:, 8 - width :] = raw
    return full.view(">u8").reshape(slots)[::-1].astype(np.uint64)


def _ct_bytes(pk: PaillierPublicKey) -> int:
    return (2 * pk.key_bits + 7) // 8


def encrypt_update(
    pk: PaillierPublicKey,
    values: npt.ArrayLike,
    *,
    params: PackingParams | None = None,
    aggregation_id: bytes = b"",
    rng: SecureRandom | None = None,
) -> bytes:
    """Encrypt one site's update under the joint public key.

    Args:
        pk: the dealt public key.
        values: 1-D finite floats with ``|x| <= params.max_abs``.
        params: packing (default :class:`PackingParams`).
        aggregation_id: label of this aggregation (at most 256 bytes).
        rng: randomness for the encryption nonces.
    """
    p = params or PackingParams()
    if len(aggregation_id) > 256:
        raise ValueError("aggregation_id must be at most 256 bytes")
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or x.size > _MAX_VALUES:
        raise ValueError(f"values must be 1-D with 1..{_MAX_VALUES} entries")
    if not np.all(np.isfinite(x)) or float(np.max(np.abs(x))) > p.max_abs:
        raise ValueError(f"values must be finite with |x| <= {p.max_abs:g}")
    rng = rng or SecureRandom()
    n, n2 = pk.n, pk.n_squared
    rbytes = (pk.key_bits + _STAT_BITS + 7) // 8
    size = _ct_bytes(pk)
    blobs = []
    for m in _pack_values(x, p, pk.slots(p)):
        r = int.from_bytes(rng.bytes(rbytes), "big") % n
        c = ((1 + m * n) * _POWMOD(r, n, n2)) % n2
        blobs.append(c.to_bytes(size, "big"))
    fields = (x.size, p.frac_bits, p.value_bits, p.headroom_bits, 1, 1)
    return _wire.pack(_CONTRIBUTION, pk.fingerprint, aggregation_id, fields, (), blobs)


def _parse(pk: PaillierPublicKey, payload: bytes, kind: int) -> _wire.Envelope:
    max_ct = -(-_MAX_VALUES // max(1, pk.slots(PackingParams(0, 2, 6))))
    env = _wire.unpack(
        payload,
        expected_kind=kind,
        max_bytes=max_ct * (_ct_bytes(pk) + 4) + 4096,
        max_blobs=max_ct,
    )
    if env.fingerprint != pk.fingerprint:
        raise IntegrityError("payload is under a different key")
    size = _ct_bytes(pk)
    n2 = pk.n_squared
    for blob in env.blobs:
        if len(blob) != size or not 0 < int.from_bytes(blob, "big") < n2:
            raise IntegrityError("malformed ciphertext")
    return env


def _check_fields(env: _wire.Envelope, pk: PaillierPublicKey) -> PackingParams:
    if len(env.fields) != 6:
        raise IntegrityError("malformed payload")
    n_values, frac, vbits, hbits, n_terms, weight = env.fields
    try:
        params = PackingParams(frac, vbits, hbits)
    except ValueError as exc:
        raise IntegrityError("malformed payload") from exc
    if not (
        0 < n_values <= _MAX_VALUES
        and len(env.blobs) == -(-n_values // pk.slots(params))
        and n_terms >= 1
        and 1 <= weight <= params.max_total_weight
    ):
        raise IntegrityError("malformed payload")
    return params


def aggregate(
    pk: PaillierPublicKey, contributions: Sequence[bytes], weights: Sequence[int] | None = None
) -> bytes:
    """Coordinator: homomorphically add contributions (``c1 * c2`` adds plaintexts).

    Args:
        pk: the joint public key.
        contributions: payloads from :func:`encrypt_update` (same id, length, packing).
        weights: positive integer weights (``c**w`` multiplies by ``w``), or ``None``.

    Raises:
        IntegrityError: malformed payload or another key.
        ValueError: mismatched payloads, bad weights, or a total weight beyond the headroom.
    """
    if not contributions:
        raise ValueError("need at least one contribution")
    ws = [1] * len(contributions) if weights is None else [int(w) for w in weights]
    if len(ws) != len(contributions) or any(w < 1 for w in ws):
        raise ValueError("weights must be positive integers, one per contribution")
    envs = [_parse(pk, c, _CONTRIBUTION) for c in contributions]
    params = _check_fields(envs[0], pk)
    for env in envs:
        if env.fields != envs[0].fields or env.label != envs[0].label:
            raise ValueError("contributions differ in aggregation id, length or packing")
        if env.fields[4:] != (1, 1):
            raise IntegrityError("malformed payload")
    total = sum(ws)
    if total > params.max_total_weight:
        raise ValueError(f"total weight {total} exceeds {params.max_total_weight}")
    n2 = pk.n_squared
    size = _ct_bytes(pk)
    out = []
    for k in range(len(envs[0].blobs)):
        acc = 1
        for env, w in zip(envs, ws, strict=True):
            c = int.from_bytes(env.blobs[k], "big")
            acc = (acc * (c if w == 1 else _POWMOD(c, w, n2))) % n2
        out.append(acc.to_bytes(size, "big"))
    fields = (*envs[0].fields[:4], len(envs), total)
    return _wire.pack(_AGGREGATE, pk.fingerprint, envs[0].label, fields, (), out)


def partial_decrypt(share: KeyShare, aggregate_payload: bytes) -> bytes:
    """Site: raise each aggregate ciphertext to its exponent share.

    Security: only call this on an aggregate of several authenticated contributions (see
    the module docstring).
    """
    pk = share.public_key
    env = _parse(pk, aggregate_payload, _AGGREGATE)
    _check_fields(env, pk)
    n2 = pk.n_squared
    size = _ct_bytes(pk)
    try:
        parts = [
            _POWMOD(int.from_bytes(b, "big"), share.exponent, n2).to_bytes(size, "big")
            for b in env.blobs
        ]
    except (ValueError, ZeroDivisionError) as exc:  # not invertible mod n^2
        raise IntegrityError("malformed ciphertext") from exc
    digest = hashlib.sha256(bytes(aggregate_payload)).digest()
    return _wire.pack(_PARTIAL, pk.fingerprint, digest, (share.index, share.n_parties), (), parts)


def combine(
    pk: PaillierPublicKey, aggregate_payload: bytes, partials: Sequence[bytes]
) -> ThresholdSum:
    """Combine all N partial decryptions into the sum.

    Raises:
        IntegrityError: a missing, duplicated, foreign or corrupted partial, or a result
            that does not decode.
    """
    env = _parse(pk, aggregate_payload, _AGGREGATE)
    params = _check_fields(env, pk)
    n_values, _, _, _, n_terms, total = env.fields
    digest = hashlib.sha256(bytes(aggregate_payload)).digest()
    parsed = [_parse(pk, p, _PARTIAL) for p in partials]
    if not parsed:
        raise IntegrityError("no partial decryptions")
    n_parties = parsed[0].fields[1] if len(parsed[0].fields) == 2 else -1
    indices = sorted(p.fields[0] for p in parsed if len(p.fields) == 2)
    if indices != list(range(n_parties)) or any(
        p.label != digest or p.fields[1] != n_parties or len(p.blobs) != len(env.blobs)
        for p in parsed
    ):
        raise IntegrityError("partial decryptions do not match this aggregate")
    n, n2 = pk.n, pk.n_squared
    slots = pk.slots(params)
    words = []
    for k in range(len(env.blobs)):
        acc = 1
        for p in parsed:
            acc = (acc * int.from_bytes(p.blobs[k], "big")) % n2
        if acc % n != 1:
            raise IntegrityError("partial decryptions do not combine")
        words.append(_unpack_values((acc - 1) // n, params, slots))
    raw = np.concatenate(words)[:n_values]
    offset = total * (1 << (params.value_bits - 1))
    limit = total * ((1 << params.value_bits) - 1)
    if np.any(raw > np.uint64(limit)):
        raise IntegrityError("decrypted value out of range")
    ints = raw.astype(np.int64) - np.int64(offset)
    values = ints.astype(np.float64) * 2.0**-params.frac_bits
    bound = total * 2.0 ** -(params.frac_bits + 1)
    return ThresholdSum(values, int(n_terms), int(total), bound)
