"""Tests of the AES-CTR CSPRNG.

Statistical checks use fixed seeds, so they are deterministic; for a random seed each
z-test at |z| < 5 would fail with probability below 6e-7 and each chi-square test at
p > 1e-6 with probability 1e-6.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing as mp
import sys
from multiprocessing.connection import Connection

import numpy as np
import numpy.typing as npt
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scipy import stats

from tutela.hazmat.rng import SecureRandom


def _z(successes: int, n: int, p: float) -> float:
    return (successes - n * p) / math.sqrt(n * p * (1 - p))


def test_seeded_stream_is_the_documented_aes_ctr_keystream() -> None:
    key = hashlib.sha256(b"tutela.hazmat.rng.SecureRandom/v1\x00" + b"kat").digest()
    enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    expected = enc.update(bytes(100_000)) + enc.finalize()
    rng = SecureRandom(b"kat")
    # reads of odd sizes, across the internal 64 KiB refill boundary, continue the stream
    got = rng.bytes(5) + rng.bytes(27) + rng.bytes(65_530) + rng.bytes(100_000 - 65_562)
    assert got == expected


def test_int_seed_equals_its_big_endian_bytes() -> None:
    assert SecureRandom(258).bytes(32) == SecureRandom(b"\x01\x02").bytes(32)


def test_determinism_and_independence() -> None:
    assert SecureRandom(1).bytes(64) == SecureRandom(1).bytes(64)
    assert SecureRandom(1).bytes(64) != SecureRandom(2).bytes(64)
    assert SecureRandom().bytes(32) != SecureRandom().bytes(32)
    assert "key" in repr(SecureRandom())
    assert "hidden" in repr(SecureRandom())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        SecureRandom(-1)
    with pytest.raises(TypeError):
        SecureRandom("seed")  # type: ignore[arg-type]
    rng = SecureRandom(3)
    with pytest.raises(ValueError):
        rng.bytes(-1)
    with pytest.raises(ValueError):
        rng.integers(0, 3)
    with pytest.raises(ValueError):
        rng.integers(2**62 + 1, 3)
    with pytest.raises(ValueError):
        rng.integers(5)
    with pytest.raises(ValueError):
        rng.bernoulli(4, 3)
    with pytest.raises(ValueError):
        rng.bernoulli_exp_neg(-1, 3)


def test_uint64_and_bits_are_balanced() -> None:
    rng = SecureRandom(4)
    words = rng.uint64(20_000)
    assert words.dtype == np.uint64
    top = int((words >> np.uint64(63)).sum())
    assert abs(_z(top, 20_000, 0.5)) < 5
    bits = rng.bits(40_001)
    assert bits.shape == (40_001,)
    assert abs(_z(int(bits.sum()), 40_001, 0.5)) < 5


@pytest.mark.parametrize("n", [7, 3 * 2**30, 3 * 2**60])
def test_integers_are_uniform_without_modulo_bias(n: int) -> None:
    rng = SecureRandom(5)
    draws = rng.integers(n, 30_000)
    assert draws.dtype == np.int64
    assert draws.min() >= 0
    assert draws.max() < n
    bins = 7 if n == 7 else 6
    counts = np.bincount((draws.astype(object) * bins // n).astype(np.int64), minlength=bins)
    assert stats.chisquare(counts).pvalue > 1e-6
    # for n = 3 * 2**60, plain `x % n` gives P(x < n/3) = 6/16 instead of 1/3 (12 sd here)
    low = int(np.sum(draws.astype(object) < n // 3))
    assert abs(_z(low, 30_000, (n // 3) / n)) < 5


def test_integers_with_per_element_bounds() -> None:
    rng = SecureRandom(6)
    bounds = np.array([1, 2, 3, 2**40, 2**62] * 2000)
    draws = rng.integers(bounds)
    assert np.all(draws < bounds)
    assert np.all(draws >= 0)
    assert np.all(draws[bounds == 1] == 0)
    assert abs(_z(int(np.sum(draws[bounds == 2])), 2000, 0.5)) < 5


def test_uniform_is_in_the_open_unit_interval() -> None:
    u = SecureRandom(7).uniform(50_000)
    assert u.min() > 0.0
    assert u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-6


@pytest.mark.parametrize(
    ("num", "den"),
    [(1, 3), (2, 7), (10**30, 3 * 10**30), (2**70 + 1, 2**72)],
)
def test_bernoulli_rational_is_exact(num: int, den: int) -> None:
    rng = SecureRandom(8)
    n = 30_000
    nums = np.array([num] * n, dtype=object)
    dens = np.array([den] * n, dtype=object)
    draws = rng.bernoulli(nums, dens)
    assert draws.dtype == bool
    assert abs(_z(int(draws.sum()), n, num / den)) < 5


def test_bernoulli_edges() -> None:
    rng = SecureRandom(9)
    assert not rng.bernoulli(np.zeros(100, dtype=np.int64), 5).any()
    assert rng.bernoulli(np.full(100, 5), 5).all()
    big = np.array([0] * 50 + [2**80] * 50, dtype=object)
    out = rng.bernoulli(big, np.array([2**80] * 100, dtype=object))
    assert not out[:50].any()
    assert out[50:].all()


@pytest.mark.parametrize(
    ("num", "den"), [(0, 1), (1, 2), (1, 1), (5, 2), (7, 1), (3 * 2**70, 2**70 + 1)]
)
def test_bernoulli_exp_neg_matches_exp(num: int, den: int) -> None:
    rng = SecureRandom(10)
    n = 30_000
    draws = rng.bernoulli_exp_neg(
        np.array([num] * n, dtype=object), np.array([den] * n, dtype=object)
    )
    p = math.exp(-num / den)
    if p == 1.0:
        assert draws.all()
    else:
        assert abs(_z(int(draws.sum()), n, p)) < 5


def _child_draw(rng: SecureRandom, conn: Connection) -> None:
    conn.send(rng.bytes(32))
    conn.close()


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX-only")
def test_unseeded_generator_rekeys_after_fork() -> None:
    ctx = mp.get_context("fork")
    for seeded in (False, True):
        rng = SecureRandom(7) if seeded else SecureRandom()
        rng.bytes(10)  # buffered keystream exists before the fork
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=_child_draw, args=(rng, child_end))
        proc.start()
        child = parent_end.recv()
        proc.join(30)
        mine = rng.bytes(32)
        # unseeded: a child never repeats the parent's noise; seeded: the stream is kept
        assert (child == mine) is seeded


@pytest.mark.parametrize(
    ("num", "den"), [(1, 3), (2, 7), (5, 5), (11, 4), (3 * 10**15, 10**15 + 7)]
)
def test_bernoulli_exp_neg_int64_paths_match_exp(num: int, den: int) -> None:
    # one shared denominator (scalar draws) and per-element denominators (the same
    # fraction written two ways, so each element's probability is exp(-num/den))
    rng = SecureRandom(14)
    n = 60_000
    shared = rng.bernoulli_exp_neg(np.full(n, num, dtype=np.int64), den)
    mixed = rng.bernoulli_exp_neg(
        np.tile(np.array([num, 3 * num], dtype=np.int64), n // 2),
        np.tile(np.array([den, 3 * den], dtype=np.int64), n // 2),
    )
    p = math.exp(-num / den)
    for draws in (shared, mixed):
        assert abs(_z(int(draws.sum()), n, p)) < 5


@pytest.mark.parametrize(("num", "den", "k0"), [(1, 1, 9), (1, 1, 3), (2, 3, 2), (1, 2, 6)])
def test_exp_neg_continues_exactly_from_a_later_step(num: int, den: int, k0: int) -> None:
    # CKS Algorithm 1 resumed at step k0 (steps 1..k0-1 succeeded): the first failing step
    # K has P(K >= k | K >= k0) = g**(k - k0) (k0 - 1)! / (k - 1)!; accept when K is odd
    rng = SecureRandom(15)
    n = 60_000
    draws = rng._exp_neg_unit(np.full(n, num, dtype=np.int64), den, k0=k0)
    g = num / den

    def tail(k: int) -> float:
        return g ** (k - k0) * math.factorial(k0 - 1) / math.factorial(k - 1)

    p = sum(tail(k) - tail(k + 1) for k in range(k0, k0 + 40) if k % 2 == 1)
    assert abs(_z(int(draws.sum()), n, p)) < 5


def test_geometric_exp_neg1_fits_its_pmf() -> None:
    # P(V = v) = exp(-v) (1 - exp(-1)); chi-square with the tail from 8 on pooled
    v = SecureRandom(16).geometric_exp_neg1(100_000)
    assert v.dtype == np.int64
    assert v.min() >= 0
    counts = np.bincount(np.minimum(v, 8), minlength=9)
    probs = np.array([math.exp(-k) * (1 - math.exp(-1)) for k in range(8)] + [math.exp(-8)])
    assert stats.chisquare(counts, probs * v.size).pvalue > 1e-6


def test_bernoulli_exp_neg_with_a_large_whole_part() -> None:
    # gamma = 6.5: six Bernoulli(exp(-1)) must all succeed, then Bernoulli(exp(-1/2))
    rng = SecureRandom(17)
    n = 400_000
    draws = rng.bernoulli_exp_neg(np.full(n, 13, dtype=np.int64), 2)
    assert abs(_z(int(draws.sum()), n, math.exp(-6.5))) < 5


class _TiedWords(SecureRandom):
    """A generator whose 64-bit words are all one value (bits still come from the stream)."""

    __slots__ = ("word",)

    def __init__(self, word: int) -> None:
        super().__init__(18)
        self.word = word

    def uint64(self, size: int) -> npt.NDArray[np.uint64]:
        return np.full(size, self.word, dtype=np.uint64)


def test_wide_bernoulli_settles_a_tied_word_exactly() -> None:
    # num/den = 1 / (3 * 2**64): the threshold floor(num * 2**64 / den) is 0, so every word
    # ties and each draw is settled by Bernoulli((num * 2**64 - 0 * den) / den) = 1/3
    den = 3 * 2**64
    n = 30_000
    rng = _TiedWords(0)
    draws = rng._bernoulli_wide(
        np.array([1] * n, dtype=object), np.array([den] * n, dtype=object), 1
    )
    assert draws.shape == (1, n)
    assert abs(_z(int(draws.sum()), n, 1 / 3)) < 5
