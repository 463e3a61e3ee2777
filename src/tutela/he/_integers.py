"""Big-integer helpers for dealer-free Paillier key generation.

Uniform draws from the CSPRNG, Shamir polynomials over a prime field, Lagrange coefficients
at zero, public primes for the fields, small primes for trial division and the Jacobi
symbol. Everything works on Python ints; ``gmpy2``, where installed, only speeds up modular
exponentiation and the search for a field prime.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence

from tutela.hazmat.rng import SecureRandom
from tutela.he.threshold import _POWMOD

__all__ = [
    "expand_hash",
    "field_prime",
    "jacobi",
    "lagrange_at_zero",
    "poly_eval",
    "powmod",
    "random_below",
    "random_poly",
    "small_primes_product",
    "trial_division_passes",
]

powmod = _POWMOD


def random_below(rng: SecureRandom, bound: int) -> int:
    """Uniform integer in ``[0, bound)`` by rejection (no modulo bias)."""
    if bound < 1:
        raise ValueError("bound must be positive")
    bits = (bound - 1).bit_length()
    if bits == 0:
        return 0
    nbytes = (bits + 7) // 8
    shift = 8 * nbytes - bits
    while True:
        x = int.from_bytes(rng.bytes(nbytes), "big") >> shift
        if x < bound:
            return x


def random_poly(rng: SecureRandom, constant: int, degree: int, prime: int) -> list[int]:
    """Coefficients (constant first) of a uniformly random polynomial with a fixed constant."""
    return [constant % prime] + [random_below(rng, prime) for _ in range(degree)]


def poly_eval(coeffs: Sequence[int], x: int, prime: int) -> int:
    """Horner evaluation of ``coeffs`` (constant first) at ``x`` modulo ``prime``."""
    acc = 0
    for c in reversed(coeffs):
        acc = (acc * x + c) % prime
    return acc


def lagrange_at_zero(xs: Sequence[int], prime: int) -> list[int]:
    """Coefficients ``l_i`` with ``f(0) = sum l_i f(x_i)`` for any ``f`` of degree < len(xs)."""
    out = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * xj % prime
                den = den * (xj - xi) % prime
        out.append(num * pow(den, -1, prime) % prime)
    return out


def _is_probable_prime(n: int, rounds: int = 40) -> bool:
    """Miller-Rabin with public bases derived from ``n`` (for public field moduli)."""
    if n < 4:
        return n in (2, 3)
    if n % 2 == 0 or math.gcd(n, small_primes_product(1000)) != 1:
        return n in _small_primes(1000)
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for i in range(rounds):
        a = 2 + expand_hash(
            b"tutela.he.mr",
            n.to_bytes((n.bit_length() + 7) // 8, "big"),
            i.to_bytes(4, "big"),
            bits=n.bit_length() + 64,
        ) % (n - 3)
        x = powmod(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


@functools.lru_cache(maxsize=16)
def field_prime(bits: int) -> int:
    """The largest prime below ``2**bits`` (public; the same for every party)."""
    if bits < 16:
        raise ValueError("field too small")
    try:
        import gmpy2  # type: ignore[import]

        return int(gmpy2.prev_prime(1 << bits))
    except (ImportError, AttributeError):  # pure Python: same prime, slower search
        return prev_prime_pure(bits)


def prev_prime_pure(bits: int) -> int:
    """The largest (probable) prime below ``2**bits``, without gmpy2."""
    candidate = (1 << bits) - 1
    while not _is_probable_prime(candidate):
        candidate -= 2
    return candidate


@functools.lru_cache(maxsize=8)
def _small_primes(bound: int) -> tuple[int, ...]:
    sieve = bytearray([1]) * (bound + 1)
    sieve[0:2] = b"\x00\x00"
    for i in range(2, math.isqrt(bound) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return tuple(i for i, flag in enumerate(sieve) if flag)


@functools.lru_cache(maxsize=8)
def small_primes_product(bound: int) -> int:
    """Product of the primes up to ``bound`` (trial division is one gcd with it)."""
    return math.prod(_small_primes(bound))


@functools.lru_cache(maxsize=8)
def _tiers(bound: int) -> tuple[int, ...]:
    """Products of the primes up to ``bound`` in growing ranges (cheap ranges first)."""
    primes = _small_primes(bound)
    edges = [e for e in (100, 1000, 5000) if e < bound] + [bound]
    out, low = [], 0
    for edge in edges:
        out.append(math.prod(p for p in primes if low < p <= edge))
        low = edge
    return tuple(out)


def trial_division_passes(n: int, bound: int) -> bool:
    """Whether no prime up to ``bound`` divides ``n`` (small ranges first: most fail there)."""
    return all(math.gcd(n, prod) == 1 for prod in _tiers(bound))


def jacobi(a: int, n: int) -> int:
    """The Jacobi symbol ``(a / n)`` for odd positive ``n``."""
    if n <= 0 or n % 2 == 0:
        raise ValueError("n must be odd and positive")
    a %= n
    result = 1
    while a:
        while a % 2 == 0:
            a //= 2
            if n % 8 in (3, 5):
                result = -result
        a, n = n, a
        if a % 4 == 3 and n % 4 == 3:
            result = -result
        a %= n
    return result if n == 1 else 0


def expand_hash(domain: bytes, *parts: bytes, bits: int) -> int:
    """A public ``bits``-bit integer from SHAKE-256 over length-prefixed parts."""
    h = hashlib.shake_256(domain + b"\x00")
    for part in parts:
        h.update(len(part).to_bytes(4, "big") + part)
    nbytes = (bits + 7) // 8
    return int.from_bytes(h.digest(nbytes), "big") >> (8 * nbytes - bits)
