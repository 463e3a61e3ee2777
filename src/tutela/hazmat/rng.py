"""A vectorised cryptographically secure random generator over the AES-256-CTR keystream.

Every privacy-relevant draw in Tutela (DP noise, Poisson sampling, masks) goes through
:class:`SecureRandom`. Draws come in numpy batches, so a sampler never loops in Python once
per value.

Security: the key comes from ``os.urandom`` unless a seed is given. With a seed the stream is
fully determined by it; seeds are for tests and reproducible experiments only, never for a
deployment (anyone who knows the seed knows the noise). An unseeded generator is
fork-safe: a forked child notices the new process id and takes a fresh OS key, so parent
and child never share noise (a seeded one keeps its stream, by design). Draws are not
constant-time (rejection loops run a data-dependent number of rounds); the noise values
themselves are not secret-dependent inputs, but a co-located observer timing the sampler
may learn how many rounds ran.
"""

from __future__ import annotations

import builtins
import hashlib
import os
from typing import Any

import numpy as np
import numpy.typing as npt

from tutela.hazmat.prg import KEY_BYTES, aes_ctr_keystream

__all__ = ["SecureRandom"]

_BLOCK = 16
_CHUNK = 1 << 16
_LEMIRE_MAX = 1 << 32
_TWO64 = 1 << 64
_INT64_SAFE = 1 << 62
_NO_CAP = (1 << 63) - 1  # a run-length cap no run reaches
_FACT8 = 40320  # 8!
_UNDECIDED = 2
_RUN_COLUMNS = 6  # Bernoulli(exp(-1)) trials per element and pass (P(all 6 succeed) = e**-6)
_UNIT_COLUMNS = 4  # CKS steps per element and pass in _exp_neg_unit
_FIRST_COLUMNS = 2  # steps or trials per element in a first pass (most elements end there)
_SEED_DOMAIN = b"tutela.hazmat.rng.SecureRandom/v1\x00"

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class SecureRandom:
    """CSPRNG: AES-256-CTR keystream read sequentially, with vectorised draws.

    Args:
        seed: ``None`` (default) for a fresh 32-byte key from ``os.urandom``; or bytes / a
            non-negative int for a deterministic stream (tests only). The key is
            ``SHA-256(domain || seed)``.

    Security: see the module docstring. Two instances built from the same seed produce the
    same stream; instances built without a seed are independent.
    """

    __slots__ = ("_block", "_buf", "_key", "_pid", "_pos", "_seeded")

    def __init__(self, seed: bytes | int | None = None) -> None:
        self._seeded = seed is not None
        self._pid = os.getpid()
        if seed is None:
            self._key = os.urandom(KEY_BYTES)
        else:
            if isinstance(seed, bool) or not isinstance(seed, bytes | int):
                raise TypeError("seed must be bytes, a non-negative int, or None")
            if isinstance(seed, int):
                if seed < 0:
                    raise ValueError("an integer seed must be non-negative")
                seed = seed.to_bytes(max(1, (seed.bit_length() + 7) // 8), "big")
            self._key = hashlib.sha256(_SEED_DOMAIN + seed).digest()
        self._block = 0
        self._buf = b""
        self._pos = 0

    def __repr__(self) -> str:
        return "SecureRandom(<key hidden>)"

    # -- raw material -------------------------------------------------------------------

    def bytes(self, n: int) -> builtins.bytes:
        """Return ``n`` uniformly random bytes (the next keystream bytes)."""
        if n < 0:
            raise ValueError("n must be non-negative")
        if n == 0:
            return b""
        if not self._seeded and os.getpid() != self._pid:  # forked: never reuse the stream
            self._key = os.urandom(KEY_BYTES)
            self._pid = os.getpid()
            self._block, self._buf, self._pos = 0, b"", 0
        avail = len(self._buf) - self._pos
        if n <= avail:
            out = self._buf[self._pos : self._pos + n]
            self._pos += n
            return out
        # the stream is read strictly in order; AES runs on cache-sized chunks (much
        # faster than one huge call) and the counter advances by whole blocks
        parts = [self._buf[self._pos :]]
        need = n - avail
        while need >= _CHUNK:
            parts.append(self._keystream(_CHUNK))
            need -= _CHUNK
        self._buf, self._pos = b"", 0
        if need:
            self._buf = self._keystream(_CHUNK)
            parts.append(self._buf[:need])
            self._pos = need
        return b"".join(parts)

    def _keystream(self, nbytes: int) -> builtins.bytes:
        nonce = (self._block % (1 << 128)).to_bytes(_BLOCK, "big")
        self._block += -(-nbytes // _BLOCK)
        return aes_ctr_keystream(self._key, nbytes, nonce)

    def uint64(self, size: int) -> npt.NDArray[np.uint64]:
        """Return ``size`` independent uniform 64-bit unsigned integers."""
        _check_size(size)
        return np.frombuffer(self.bytes(8 * size), dtype="<u8").astype(np.uint64)

    def bits(self, size: int) -> BoolArray:
        """Return ``size`` independent fair bits as a bool array."""
        _check_size(size)
        raw = np.frombuffer(self.bytes(-(-size // 8)), dtype=np.uint8)
        return np.unpackbits(raw, count=size).astype(bool)

    # -- derived draws ------------------------------------------------------------------

    def integers(self, n: int | npt.ArrayLike, size: int | None = None) -> IntArray:
        """Uniform integers in ``[0, n)`` without modulo bias.

        Args:
            n: upper bound, ``1 <= n <= 2**62``; an int (then ``size`` is required) or an
                integer array (one bound per output; ``size`` must be ``None`` or match).
            size: number of draws when ``n`` is a scalar.

        Returns:
            int64 array. Each value is exactly uniform: 64-bit words at or above the largest
            multiple of ``n`` below ``2**64`` are rejected and redrawn.
        """
        bounds = _bounds(n, size)
        if bounds.size and int(bounds.max()) <= _LEMIRE_MAX:
            return self._integers_small(bounds)
        out = np.empty(bounds.shape[0], dtype=np.int64)
        pending = np.arange(bounds.shape[0])
        while pending.size:
            b = bounds[pending].astype(np.uint64)
            x = self.uint64(pending.size)
            rem = (np.uint64(0) - b) % b  # 2**64 mod b
            ok = (rem == 0) | (x < (np.uint64(0) - rem))
            out[pending[ok]] = (x[ok] % b[ok]).astype(np.int64)
            pending = pending[~ok]
        return out

    def _integers_small(self, bounds: IntArray) -> IntArray:
        """Lemire's multiply-shift method with exact rejection, for bounds <= 2**32."""
        out = np.empty(bounds.shape[0], dtype=np.int64)
        pending: IntArray | None = None
        b_all = bounds.astype(np.uint64)
        while True:
            b = b_all if pending is None else b_all[pending]
            m = b.shape[0]
            x = np.frombuffer(self.bytes(4 * m), dtype="<u4").astype(np.uint64)
            prod = x * b  # < 2**64: exact
            low = prod & np.uint64(0xFFFFFFFF)
            ok = np.ones(m, dtype=bool)
            maybe = low < b
            if maybe.any():
                bm = b[maybe]
                threshold = (np.uint64(_LEMIRE_MAX) - bm) % bm
                ok[maybe] = low[maybe] >= threshold
            value = (prod >> np.uint64(32)).astype(np.int64)
            if pending is None:
                out[:] = value
                pending = np.flatnonzero(~ok)
            else:
                out[pending[ok]] = value[ok]
                pending = pending[~ok]
            if pending.size == 0:
                return out

    def uniform(self, size: int) -> npt.NDArray[np.float64]:
        """Uniform floats in the open interval (0, 1): ``(k + 0.5) / 2**53``, k uniform."""
        _check_size(size)
        k = (self.uint64(size) >> np.uint64(11)).astype(np.float64)
        return (k + 0.5) * (1.0 / 9007199254740992.0)

    def bernoulli(self, numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> BoolArray:
        """Exact Bernoulli(numerator / denominator) draws, one per element.

        Args:
            numerator: integers with ``0 <= numerator <= denominator``; an int64 array, or
                an object array of Python ints for values beyond 2**62.
            denominator: positive integers of the same shape (or a scalar).

        Returns:
            bool array; ``True`` with probability exactly ``numerator / denominator``.

        Small denominators use one unbiased uniform integer per draw; big (object-dtype)
        ones compare fresh random bits with the binary expansion of the fraction, lazily
        (two bits per draw on average), so no arithmetic ever leaves exact integers.
        """
        num, den = _broadcast_rational(numerator, denominator)
        if num.dtype != object:
            return self.integers(den) < num
        return self._bernoulli_big(num, den)

    def _bernoulli_big(self, num: npt.NDArray[Any], den: npt.NDArray[Any]) -> BoolArray:
        out = np.zeros(num.shape[0], dtype=bool)
        pending = np.arange(num.shape[0])
        rem = num.copy()
        while pending.size:
            r = rem[pending] * 2
            d = den[pending]
            pbit = np.asarray(r >= d, dtype=bool)
            r = r - np.where(pbit, d, 0)
            rem[pending] = r
            u = self.bits(pending.size)
            decided = u != pbit
            out[pending[decided]] = pbit[decided]
            pending = pending[~decided]
        return out

    def bernoulli_exp_neg(self, numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> BoolArray:
        """Exact Bernoulli(exp(-numerator / denominator)) for non-negative rationals.

        Canonne, Kamath and Steinke (2020), Algorithm 1: for gamma in [0, 1], draw
        A_k ~ Bernoulli(gamma / k) for k = 1, 2, ... until one fails and accept if the
        failing k is odd; gamma > 1 is split as floor(gamma) draws of Bernoulli(exp(-1))
        (all must succeed) and one of Bernoulli(exp(-frac(gamma))). All arithmetic is on
        integers.

        Vectorised across elements and across steps: each pass draws several steps k of
        every pending element from one block of keystream (see :meth:`_exp_neg_unit`), so a
        call costs a few numpy operations, not one per step.
        """
        num, den = _broadcast_rational(numerator, denominator, allow_above_one=True)
        whole = num // den
        frac = num - whole * den
        if den.dtype == object and den.max(initial=0) < _INT64_SAFE:
            frac, den = frac.astype(np.int64), den.astype(np.int64)  # exact: frac < den
        cap = np.minimum(whole, _NO_CAP).astype(np.int64) if whole.dtype == object else whole
        alive = np.asarray(self._exp_neg1_runs(cap) >= whole, dtype=bool)
        idx = np.flatnonzero(alive)
        if idx.size:
            d: int | npt.NDArray[Any] = den[idx]
            if den.dtype != object and den[0] == den.min() == den.max():
                d = int(den[0])  # one denominator (the usual case): scalar draws
            alive[idx] = self._exp_neg_unit(frac[idx], d)
        return alive

    def geometric_exp_neg1(self, size: int) -> IntArray:
        """``size`` draws of V with P(V >= v) = exp(-v), v = 0, 1, 2, ...

        V is the number of successes of independent Bernoulli(exp(-1)) trials before the
        first failure (the floor of an Exp(1) variable), each trial exact as in
        :meth:`bernoulli_exp_neg`.
        """
        _check_size(size)
        return self._exp_neg1_runs(np.full(size, _NO_CAP, dtype=np.int64))

    def _below(self, bound: int, size: int) -> npt.NDArray[np.uint64]:
        """``size`` uniform integers in ``[0, bound)`` for one bound, 1 <= bound < 2**64.

        Exact: words at or above the largest multiple of the bound below 2**w are redrawn,
        so ``word % bound`` is uniform; 32-bit words (w = 32) for bounds up to 2**32 (values
        returned as uint32 then), 64-bit ones above.
        """
        if bound <= _LEMIRE_MAX:
            x32 = np.frombuffer(self.bytes(4 * size), dtype="<u4").astype(np.uint32)
            rem = _LEMIRE_MAX % bound
            if rem:
                limit32 = np.uint32(_LEMIRE_MAX - rem)
                bad = np.flatnonzero(x32 >= limit32)
                while bad.size:
                    x32[bad] = np.frombuffer(self.bytes(4 * bad.size), dtype="<u4")
                    bad = bad[x32[bad] >= limit32]
            if bound == _LEMIRE_MAX:
                return x32  # type: ignore[return-value]
            return x32 % np.uint32(bound)  # type: ignore[return-value]
        x = self.uint64(size)
        rem = _TWO64 % bound
        if rem:
            limit = np.uint64(_TWO64 - rem)
            bad = np.flatnonzero(x >= limit)
            while bad.size:
                x[bad] = self.uint64(bad.size)
                bad = bad[x[bad] >= limit]
        return x % np.uint64(bound)

    def _below_each(self, bound: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
        """One uniform integer in ``[0, bound[i])`` per element (1 <= bound < 2**64), exact."""
        x = self.uint64(bound.shape[0])
        rem = (np.uint64(0) - bound) % bound  # 2**64 mod bound
        limit = np.uint64(0) - rem  # the largest multiple of the bound below 2**64, mod 2**64
        bad = np.flatnonzero((rem != 0) & (x >= limit))
        while bad.size:
            x[bad] = self.uint64(bad.size)
            bad = bad[x[bad] >= limit[bad]]
        return x % bound

    def _bernoulli_wide(self, num: npt.NDArray[Any], den: npt.NDArray[Any], cols: int) -> BoolArray:
        """``cols`` exact Bernoulli(num/den) draws per element (shape (cols, n)), Python ints.

        One 64-bit word w per draw against c = floor(num * 2**64 / den): w < c succeeds,
        w > c fails, and w == c (probability 2**-64) succeeds with probability
        (num * 2**64 - c * den) / den, drawn exactly; in all P = num / den.
        """
        scaled = num * _TWO64
        c = scaled // den
        whole = np.asarray(c >= _TWO64, dtype=bool)  # num == den
        thr = np.where(whole, _TWO64 - 1, c).astype(np.uint64)
        w = self.uint64(cols * num.shape[0]).reshape(cols, -1)
        out: BoolArray = (w < thr) | whole
        tie_col, tie_row = np.nonzero((w == thr) & ~whole)
        if tie_row.size:
            rest = (scaled - c * den)[tie_row]
            out[tie_col, tie_row] = self._bernoulli_big(rest, den[tie_row])
        return out

    def _exp_neg_unit(
        self, num: npt.NDArray[Any], den: int | npt.NDArray[Any], k0: int = 1
    ) -> BoolArray:
        """Bernoulli(exp(-num/den)) for num/den in [0, 1]: CKS Algorithm 1 from step k0 on.

        Steps k0, k0 + 1, ... are decided in blocks (two steps in the first pass, since most
        elements stop there, four after). A_k = C_k and B_k with C_k ~ Bernoulli(num/den)
        and B_k ~ Bernoulli(1/k) independent (so A_k ~ Bernoulli(gamma/k)). The B_k of a
        block are the digits of one uniform integer R in mixed radix (k, k + 1, ...): the
        block's B all succeed up to step j exactly when R is divisible by the product of the
        radices up to j. An element whose block holds no failing step goes on to the next
        block with fresh draws (the earlier draws only decided that it goes on).

        Args:
            num: 1-D array with 0 <= num <= den; int64, or object (Python ints).
            den: one int (then below 2**63 unless num is object) or an array like num
                (int64 below 2**63, or object).
            k0: the first step (the caller has seen steps 1..k0-1 succeed).
        """
        n = num.shape[0]
        out = np.zeros(n, dtype=bool)
        rows = np.arange(n)
        big = num.dtype == object
        k, cols = k0, _FIRST_COLUMNS
        while rows.size:
            prods = _radix_products(k, cols)
            cols = len(prods)
            m = rows.size
            r = self._below(prods[-1], m)
            nn = num[rows]
            if big:
                dd = den[rows] if isinstance(den, np.ndarray) else np.full(m, den, dtype=object)
                c = self._bernoulli_wide(nn, dd, cols)
            elif isinstance(den, np.ndarray):
                bound = np.tile(den[rows].astype(np.uint64), cols)
                c = self._below_each(bound).reshape(cols, m) < nn.astype(np.uint64)
            else:
                c = self._below(den, m * cols).reshape(cols, m) < nn.astype(np.uint64)
            alive = c[0].copy()
            if prods[0] > 1:  # B_1 = 1
                alive &= r % r.dtype.type(prods[0]) == 0
            run = alive.astype(np.int64)  # steps that succeeded before the first failure
            for j in range(1, cols):
                alive &= c[j]
                alive &= r % r.dtype.type(prods[j]) == 0  # B_k..B_(k+j) all succeed
                run += alive
            done = np.flatnonzero(~alive)
            out[rows[done]] = (k + run[done]) % 2 == 1  # the failing step is k + run
            rows = rows[alive]
            k, cols = k + cols, _UNIT_COLUMNS
        return out

    def _exp_neg1_runs(self, cap: IntArray) -> IntArray:
        """Per element, successes of Bernoulli(exp(-1)) trials before the first failure.

        Drawing stops at the first failure or once the count reaches ``cap`` (the count is
        then ``>= cap``); ``cap`` 0 draws nothing. Each trial is CKS Algorithm 1 with
        gamma = 1 (A_1 = 1, A_k ~ Bernoulli(1/k)), decided for steps 2..8 by a table lookup
        of one uniform integer below 8! (its mixed-radix digits are the B_k); the rare
        trial whose steps 2..8 all succeed goes on from step 9. Two trials per element in
        the first pass (a run ends there with probability 1 - e**-2), six after.
        """
        count = np.zeros(cap.shape[0], dtype=np.int64)
        rows = np.flatnonzero(cap > 0)
        cols = _FIRST_COLUMNS
        while rows.size:
            m = rows.size
            cells = _EXP_NEG1_TABLE[self._below(_FACT8, m * cols)]
            undecided = np.flatnonzero(cells == _UNDECIDED)
            if undecided.size:
                cells[undecided] = self._exp_neg_unit(np.ones(undecided.size, np.int64), 1, k0=9)
            ok = cells.reshape(cols, m).astype(bool)
            alive = ok[0].copy()
            run = alive.astype(np.int64)
            for j in range(1, cols):
                alive &= ok[j]
                run += alive
            count[rows] += run
            rows = rows[alive & (count[rows] < cap[rows])]
            cols = _RUN_COLUMNS
        return count


def _radix_products(k: int, cols: int) -> list[int]:
    """Running products k, k(k+1), ... of up to ``cols`` radices, the last <= 2**62."""
    prods = [k]
    while len(prods) < cols and prods[-1] * (k + len(prods)) <= _INT64_SAFE:
        prods.append(prods[-1] * (k + len(prods)))
    return prods


def _exp_neg1_table() -> npt.NDArray[np.int8]:
    """Bernoulli(exp(-1)) decided from R uniform below 8!: 1 accept, 0 reject, 2 undecided.

    With A_1 = 1 and B_k = (k-th mixed-radix digit of R == 0) for k = 2..8, the first
    failing step is 2 + z, z the number of k in 2..8 with R divisible by k! (divisibility
    by k! implies it by (k-1)!, so z counts the leading zero digits). Accept if that step is
    odd; R = 0 (all of steps 2..8 succeed) is left undecided.
    """
    r = np.arange(_FACT8, dtype=np.int64)
    z = np.zeros(_FACT8, dtype=np.int64)
    f = 1
    for k in range(2, 9):
        f *= k
        z += r % f == 0
    table: npt.NDArray[np.int8] = (z % 2 == 1).astype(np.int8)
    table[z == 7] = _UNDECIDED
    return table


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 0:
        raise ValueError(f"size must be a non-negative int, got {size!r}")


def _bounds(n: int | npt.ArrayLike, size: int | None) -> IntArray:
    if np.ndim(n) == 0:
        if size is None:
            raise ValueError("size is required when n is a scalar")
        _check_size(size)
        value = int(n)  # type: ignore[arg-type]
        if not 1 <= value <= _INT64_SAFE:
            raise ValueError(f"n must be in [1, 2**62], got {value}")
        return np.full(size, value, dtype=np.int64)
    arr = np.asarray(n)
    if arr.ndim != 1 or (size is not None and arr.shape[0] != size):
        raise ValueError("n must be a scalar or a 1-D array matching size")
    if arr.size and (arr.dtype == object or not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError("n must hold integers below 2**62")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 1 or arr.max() > _INT64_SAFE):
        raise ValueError("every bound must be in [1, 2**62]")
    return arr


def _as_int_array(x: npt.ArrayLike) -> npt.NDArray[Any]:
    arr = np.atleast_1d(np.asarray(x))
    if arr.dtype == object:
        values = arr.ravel().tolist()
        kinds = set(map(type, values))
        if not all(issubclass(k, int | np.integer) for k in kinds):
            raise ValueError("rational parts must be integers")
        if not all(issubclass(k, int) for k in kinds):  # numpy scalars would overflow
            ints = np.empty(arr.size, dtype=object)
            ints[:] = [int(v) for v in values]
            arr = ints.reshape(arr.shape)
        if arr.min(initial=0) > -_INT64_SAFE and arr.max(initial=0) < _INT64_SAFE:
            return arr.astype(np.int64)
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError("rational parts must be integers")
    return arr.astype(np.int64)


def _broadcast_rational(
    numerator: npt.ArrayLike, denominator: npt.ArrayLike, *, allow_above_one: bool = False
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    num = _as_int_array(numerator)
    den = _as_int_array(denominator)
    if den.shape[0] == 1 and num.shape[0] != 1:
        den = np.repeat(den, num.shape[0])
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError("numerator and denominator must be 1-D and of the same length")
    if object in (num.dtype, den.dtype):
        num, den = num.astype(object), den.astype(object)
    if num.size:
        if np.any(den <= 0) or np.any(num < 0):
            raise ValueError("need numerator >= 0 and denominator > 0")
        if not allow_above_one and np.any(num > den):
            raise ValueError("a probability numerator cannot exceed its denominator")
    return num, den


_EXP_NEG1_TABLE = _exp_neg1_table()
