"""Paillier encryption for two-party protocols: key pairs, encryption, CRT decryption.

The primes come from OpenSSL (``cryptography``'s RSA key generation, as
:func:`tutela.he.threshold.deal_threshold_keys` uses); this module adds only the Paillier
layer over them with generator ``n + 1``::

    Enc(m; s) = (1 + m n) s^n mod n^2,   Dec(c) by CRT modulo p^2 and q^2

Ciphertexts are additively homomorphic: ``Enc(a) Enc(b) = Enc(a + b)`` and
``Enc(a)^k = Enc(k a)`` (plaintexts modulo ``n``). ``gmpy2``, where installed, only speeds up
modular exponentiation; results are the same without it.

Security: IND-CPA under the decisional composite residuosity assumption (2048-bit ``n`` for
about 112-bit security, 3072 for 128; 1024 only in tests). Semi-honest use only: nothing
here proves that a ciphertext encrypts what a party claims. :func:`parse_ciphertexts`
refuses values outside ``Z*_{n^2}``, so a malformed message raises instead of decrypting to
garbage. Whoever raises a ciphertext to a secret power must re-randomise the result
(:meth:`PaillierPublicKey.rerandomise`) before sending it back, or the key holder, who
knows the original randomness, could recover the exponent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

from tutela.hazmat.rng import SecureRandom

__all__ = [
    "PaillierKeyPair",
    "PaillierPublicKey",
    "generate_paillier_keypair",
    "parse_ciphertexts",
    "powmod",
    "serialise_ciphertexts",
]

PowMod = Callable[[int, int, int], int]


def _default_powmod() -> PowMod:
    try:
        import gmpy2  # type: ignore[import]
    except ImportError:  # pure-Python fallback: same results, about 5-10x slower
        return pow

    def fast(base: int, exp: int, mod: int) -> int:
        return int(gmpy2.powmod(base, exp, mod))

    return fast


powmod: PowMod = _default_powmod()


def _random_below(rng: SecureRandom, bound: int) -> int:
    bits = bound.bit_length()
    nbytes = (bits + 7) // 8
    while True:
        x = int.from_bytes(rng.bytes(nbytes), "big") >> (8 * nbytes - bits)
        if 0 < x < bound:
            return x


@dataclass(frozen=True, slots=True)
class PaillierPublicKey:
    """A Paillier public key ``n`` (generator ``n + 1``)."""

    n: int
    n_squared: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.n < (1 << 1023) or self.n % 2 == 0:
            raise ValueError("a Paillier modulus is odd and has at least 1024 bits")
        object.__setattr__(self, "n_squared", self.n * self.n)

    @property
    def key_bits(self) -> int:
        """Bit length of ``n``."""
        return self.n.bit_length()

    @property
    def ciphertext_bytes(self) -> int:
        """Width of one serialised ciphertext."""
        return (self.n_squared.bit_length() + 7) // 8

    def to_bytes(self) -> bytes:
        """Big-endian ``n``."""
        return self.n.to_bytes((self.key_bits + 7) // 8, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> PaillierPublicKey:
        """Inverse of :meth:`to_bytes` (``ValueError`` for a modulus that cannot be a key)."""
        return cls(int.from_bytes(data, "big"))

    def randomiser(self, rng: SecureRandom) -> int:
        """A fresh ``s^n mod n^2`` for uniform ``s`` in ``Z*_n``."""
        return powmod(_random_below(rng, self.n), self.n, self.n_squared)

    def encrypt(self, m: int, rng: SecureRandom) -> int:
        """Encrypt ``m`` (reduced modulo ``n``) with fresh randomness."""
        return (1 + (m % self.n) * self.n) * self.randomiser(rng) % self.n_squared

    def rerandomise(self, c: int, rng: SecureRandom) -> int:
        """The same plaintext under fresh randomness."""
        return c * self.randomiser(rng) % self.n_squared

    def add_plain(self, c: int, m: int) -> int:
        """``Enc(Dec(c) + m)`` with the randomness of ``c`` (re-randomise before sending)."""
        return c * (1 + (m % self.n) * self.n) % self.n_squared

    def dot(self, cs: Sequence[int], ks: Sequence[int]) -> int:
        """``Enc(sum_i k_i Dec(c_i))`` for non-negative integers ``k_i`` (not re-randomised)."""
        acc = 1
        for c, k in zip(cs, ks, strict=True):
            if k:
                acc = acc * powmod(c, k, self.n_squared) % self.n_squared
        return acc


@dataclass(frozen=True, slots=True)
class PaillierKeyPair:
    """A Paillier key pair; decryption and the owner's encryptions use the CRT."""

    public: PaillierPublicKey
    p: int = field(repr=False)
    q: int = field(repr=False)
    _hp: int = field(init=False, repr=False)
    _hq: int = field(init=False, repr=False)
    _q_inv: int = field(init=False, repr=False)
    _q2_inv: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.p * self.q != self.public.n or self.p == self.q:
            raise ValueError("p and q must be the distinct factors of n")
        # L_p((n + 1)^(p - 1) mod p^2) = -q mod p, so h_p = (-q)^-1 mod p (and the same for q)
        object.__setattr__(self, "_hp", pow(-self.q, -1, self.p))
        object.__setattr__(self, "_hq", pow(-self.p, -1, self.q))
        object.__setattr__(self, "_q_inv", pow(self.q, -1, self.p))
        object.__setattr__(self, "_q2_inv", pow(self.q * self.q, -1, self.p * self.p))

    def decrypt(self, c: int) -> int:
        """The plaintext in ``[0, n)``."""
        p, q = self.p, self.q
        mp = (powmod(c, p - 1, p * p) - 1) // p * self._hp % p
        mq = (powmod(c, q - 1, q * q) - 1) // q * self._hq % q
        return mq + q * ((mp - mq) * self._q_inv % p)

    def encrypt(self, m: int, rng: SecureRandom) -> int:
        """Encrypt with the factorisation: ``s^n`` computed modulo ``p^2`` and ``q^2``."""
        pk, p, q = self.public, self.p, self.q
        s = _random_below(rng, pk.n)
        p2, q2 = p * p, q * q
        sp = powmod(s % p2, pk.n % (p * (p - 1)), p2)
        sq = powmod(s % q2, pk.n % (q * (q - 1)), q2)
        s_n = sq + q2 * ((sp - sq) * self._q2_inv % p2)
        return (1 + (m % pk.n) * pk.n) * s_n % pk.n_squared


def generate_paillier_keypair(key_bits: int = 2048) -> PaillierKeyPair:
    """A fresh key pair; the primes come from OpenSSL's RSA key generation.

    Args:
        key_bits: modulus size (a multiple of 256, at least 1024; 2048 or more outside tests).
    """
    if key_bits < 1024 or key_bits % 256:
        raise ValueError("key_bits must be a multiple of 256 and at least 1024")
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=key_bits).private_numbers()
    p, q = numbers.p, numbers.q
    if math.gcd(p * q, (p - 1) * (q - 1)) != 1:  # never for equal-size primes; checked anyway
        raise ValueError("unsuitable primes")
    return PaillierKeyPair(PaillierPublicKey(p * q), p, q)


def serialise_ciphertexts(pk: PaillierPublicKey, cs: Sequence[int]) -> bytes:
    """Fixed-width big-endian ciphertexts, back to back."""
    width = pk.ciphertext_bytes
    return b"".join(c.to_bytes(width, "big") for c in cs)


def parse_ciphertexts(pk: PaillierPublicKey, data: bytes, count: int) -> list[int]:
    """Inverse of :func:`serialise_ciphertexts`, checking each value is in ``Z*_{n^2}``.

    Raises:
        ValueError: wrong length, or a value that is no ciphertext under ``pk``.
    """
    width = pk.ciphertext_bytes
    if not isinstance(data, bytes) or len(data) != width * count:
        raise ValueError(f"expected {count} ciphertexts of {width} bytes")
    out = [int.from_bytes(data[i * width : (i + 1) * width], "big") for i in range(count)]
    for c in out:
        if not 0 < c < pk.n_squared or math.gcd(c, pk.n) != 1:
            raise ValueError("a value is not a ciphertext under this key")
    return out
