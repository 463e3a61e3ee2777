"""Rounded Gaussian noise for a fixed-size vector, redrawn often (one DP-SGD step per draw).

:func:`tutela.hazmat.noise.sample_rounded_gaussian32` reads its uniforms through
:meth:`SecureRandom.bytes`, which joins the keystream from 64 KiB pieces (a cipher context
and two copies each). :class:`RoundedGaussian32Buffer` produces the same values for the
same keystream, but expands each draw's keystream with one AES-256-CTR context straight
into a reused buffer and writes the noise into a reused output array, so a hot loop
allocates nothing large.

Security: every draw takes a fresh 256-bit key from the CSPRNG (``rng.bytes(32)``) and
expands it with AES-256-CTR from counter zero; this is exactly the keystream a
:class:`SecureRandom` keyed with that key yields, so the draw is computationally
indistinguishable from uniform bits whenever the CSPRNG is (AES as a PRP; each key is used
for one draw, at most 2**32 blocks). Seeding a fast non-cryptographic generator (torch's
Mersenne Twister or Philox) from the OS would not do: its state, hence every later value,
can be recovered from its outputs or from the seed it was given, and noise an adversary can
predict protects nothing. Sampling time depends only on the size.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tutela.hazmat.noise import (
    _GRID32_BLOCK,
    _box_muller_block,
    rounded_gaussian32_granularity,
)
from tutela.hazmat.prg import KEY_BYTES
from tutela.hazmat.rng import SecureRandom

__all__ = ["RoundedGaussian32Buffer"]

_BYTES_PER_PAIR = 12  # a 64-bit radius word and a 32-bit angle word per two values
_ZERO_COUNTER = bytes(16)


class RoundedGaussian32Buffer:
    """Draws of :func:`sample_rounded_gaussian32` noise in grid units, into one reused array.

    Args:
        sigma: the noise standard deviation (in value units).
        capacity: the most values one draw may ask for.
        rng: the CSPRNG that keys each draw (fresh, OS-keyed by default).

    Each :meth:`draw` overwrites the array the previous one returned.

    Privacy: the values are ``round(N(0, sigma^2) / g)`` with ``g`` = :attr:`granularity`,
    the tail cut at 8.65 sigma, exactly as in :func:`sample_rounded_gaussian32`
    (``unit="grid"``); the caller rounds its answer to the same grid before adding them.

    Security: see the module docstring.
    """

    __slots__ = (
        "_out",
        "_plain",
        "_rng",
        "_scratch",
        "_sigma",
        "_stream",
        "capacity",
        "granularity",
    )

    def __init__(self, sigma: float, capacity: int, *, rng: SecureRandom | None = None) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError("capacity must be a non-negative integer")
        self.granularity = rounded_gaussian32_granularity(sigma)
        self._sigma = float(sigma)
        self.capacity = capacity
        self._rng = rng if rng is not None else SecureRandom()
        pairs = (capacity + 1) // 2
        self._out = np.empty(2 * pairs, dtype=np.float32)
        block = _BYTES_PER_PAIR * min(pairs, _GRID32_BLOCK)
        self._plain = bytes(block)
        self._stream = bytearray(block + 15)  # update_into wants a cipher block of slack
        self._scratch = np.empty(2 * min(pairs, _GRID32_BLOCK), dtype=np.float32)

    def add_on_grid(self, values: npt.NDArray[np.float32], out_scale: float) -> bool:
        """In place: ``values <- (round(values / g) + noise) * out_scale``, one fresh draw.

        The same values as rounding, adding :meth:`draw`'s noise and scaling, computed block
        by block while the block is in cache. Returns False, changing nothing and drawing
        nothing, when some ``|values / g|`` reaches 2**22 (float32 could then not hold the
        sum exactly; do that arithmetic in float64 with :meth:`draw` instead).

        Raises:
            ValueError: ``values`` is not a contiguous 1-D float32 array within the capacity.
        """
        size = values.shape[0] if values.ndim == 1 else -1
        if values.dtype != np.float32 or not values.flags.c_contiguous or size < 0:
            raise ValueError("values must be a contiguous 1-D float32 array")
        if size > self.capacity:
            raise ValueError(f"values must hold at most {self.capacity} entries")
        g = self.granularity
        if size == 0:
            return True
        if not max(-float(values.min()), float(values.max())) < 2.0**22 * g:
            return False
        m = (size + 1) // 2
        key = self._rng.bytes(KEY_BYTES)
        encryptor = Cipher(algorithms.AES(key), modes.CTR(_ZERO_COUNTER)).encryptor()
        plain, stream = memoryview(self._plain), memoryview(self._stream)
        inv_g, scale = np.float32(1.0 / g), np.float32(out_scale)
        for lo in range(0, m, _GRID32_BLOCK):
            hi = min(m, lo + _GRID32_BLOCK)
            k = hi - lo
            encryptor.update_into(plain[: _BYTES_PER_PAIR * k], self._stream)
            cos, sin = self._scratch[:k], self._scratch[k : 2 * k]
            _box_muller_block(stream[: _BYTES_PER_PAIR * k], self._sigma, g, cos, sin, False)
            # the noise for index j is what draw() would put at j: cos at lo.., sin at m + lo..
            for part, noise in ((values[lo:hi], cos), (values[m + lo : m + hi], sin)):
                np.multiply(part, inv_g, out=part)  # exact: g is a power of two
                np.rint(part, out=part)
                np.add(part, noise[: part.shape[0]], out=part)  # an odd size drops a sine
                np.multiply(part, scale, out=part)
        return True

    def draw(self, size: int) -> npt.NDArray[np.float32]:
        """``size`` fresh values in grid units (integers stored as float32), under a new key.

        Raises:
            ValueError: ``size`` is negative or above the capacity.
        """
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= self.capacity:
            raise ValueError(f"size must be an integer in [0, {self.capacity}]")
        m = (size + 1) // 2
        if m == 0:
            return self._out[:0]
        key = self._rng.bytes(KEY_BYTES)
        encryptor = Cipher(algorithms.AES(key), modes.CTR(_ZERO_COUNTER)).encryptor()
        plain, stream = memoryview(self._plain), memoryview(self._stream)
        g = self.granularity
        for lo in range(0, m, _GRID32_BLOCK):
            hi = min(m, lo + _GRID32_BLOCK)
            n = _BYTES_PER_PAIR * (hi - lo)
            encryptor.update_into(plain[:n], self._stream)
            out_cos, out_sin = self._out[lo:hi], self._out[m + lo : m + hi]
            _box_muller_block(stream[:n], self._sigma, g, out_cos, out_sin, False)
        return self._out[:size]
