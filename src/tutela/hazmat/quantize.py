"""Fixed-point quantisation with stochastic rounding, and the no-wrap bound for sums mod 2**b.

A real vector ``x`` is clipped to ``[-clip, clip]``, multiplied by a power-of-two ``scale``
and rounded stochastically to an integer vector ``z`` (``floor(v + U)``, U uniform), so
``E[z] = v`` up to 2**-32 and ``|z - v| < 1``. Integers travel as words of Z_{2^b} (two's
complement); a sum of such words is decoded to the centred range ``[-2**(b-1), 2**(b-1))``.

The bound: if every client sends ``|z_i| <= B = ceil(clip * scale)`` per coordinate (plus
noise), the true integer sum of n clients satisfies ``|sum| <= n * B + H`` where H bounds the
summed noise. Whenever ``n * B + H < 2**(b-1)`` the centred decoding equals the true sum: no
wrap-around. :func:`check_no_wrap` enforces it and :func:`max_scale` picks the finest scale
that satisfies it. For Gaussian-type noise H holds with probability at least
``1 - failure`` over all coordinates (sub-Gaussian tail and a union bound); without noise the
bound is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from tutela.hazmat.masks import MaskArray, mask_dtype
from tutela.hazmat.rng import SecureRandom

__all__ = [
    "DEFAULT_WRAP_FAILURE",
    "FixedPoint",
    "bytes_per_element",
    "check_no_wrap",
    "from_modular",
    "max_scale",
    "noise_headroom",
    "pack",
    "stochastic_round",
    "to_modular",
    "unpack",
]

DEFAULT_WRAP_FAILURE = 2.0**-40
"""Probability that summed noise leaves the headroom, over all coordinates."""
_MAX_EXACT = 2.0**52  # |clip * scale| above this loses float64 integer precision
_INV_2_32 = 2.0**-32
_INT_PATH_LIMIT = 2.0**30  # |v| * 2**32 + 2**32 stays inside int64

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class FixedPoint:
    """A fixed-point encoding: values clipped to [-clip, clip], step 1 / scale, words mod 2**b."""

    clip: float
    scale: float
    modulus_bits: int

    def __post_init__(self) -> None:
        mask_dtype(self.modulus_bits)
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError("clip must be positive and finite")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError("scale must be positive and finite")
        if self.clip * self.scale > _MAX_EXACT:
            raise ValueError("clip * scale must stay below 2**52 (float64 precision)")

    @property
    def client_bound(self) -> int:
        """B: the largest |integer| one client can send per coordinate (before noise)."""
        return math.ceil(self.clip * self.scale)

    def encode(self, values: npt.ArrayLike, *, rng: SecureRandom, factor: float = 1.0) -> IntArray:
        """Clip to [-clip, clip], multiply by ``factor`` (0..1, e.g. a weight share), round.

        Returns integers with ``|z| <= B`` (for ``0 <= factor <= 1``).
        """
        if not 0 <= factor <= 1:
            raise ValueError("factor must be in [0, 1]")
        v = np.array(values, dtype=np.float64).reshape(-1)
        if not np.isfinite(v).all():
            raise ValueError("values must be finite")
        np.minimum(v, self.clip, out=v)
        np.maximum(v, -self.clip, out=v)
        v *= self.scale * factor
        return _round_in_place(v, self.clip * self.scale * factor, rng)


def bytes_per_element(modulus_bits: int) -> int:
    """Bytes one word of Z_{2^b} takes on the wire: ceil(b / 8)."""
    mask_dtype(modulus_bits)
    return -(-modulus_bits // 8)


def stochastic_round(values: npt.ArrayLike, scale: float, *, rng: SecureRandom) -> IntArray:
    """``floor(values * scale + U)`` with U uniform on {0, 2**-32, ..., 1 - 2**-32}.

    Each output is ``floor(v)`` or ``floor(v) + 1`` and equals ``floor(v) + 1`` with
    probability ``frac(v)`` to within 2**-32, so rounding is unbiased to within 2**-32 of a
    step and never moves a value by a whole step or more.

    Args:
        values: finite floats (any shape is flattened to 1-D).
        scale: multiplier applied first.
        rng: the uniform source (4 bytes per value).
    """
    v = np.multiply(np.asarray(values, dtype=np.float64).reshape(-1), scale)
    top = float(np.abs(v).max(initial=0.0))
    if not math.isfinite(top):
        raise ValueError("values must be finite")
    return _round_in_place(v, top, rng)


def _round_in_place(v: npt.NDArray[np.float64], top: float, rng: SecureRandom) -> IntArray:
    """Stochastic rounding of ``v`` (overwritten), given ``max |v| <= top``."""
    u = np.frombuffer(rng.bytes(4 * v.shape[0]), dtype="<u4")
    if top < _INT_PATH_LIMIT:
        # integers only: floor((v * 2**32 + u) / 2**32); v * 2**32 is exact (power of two)
        # and truncating it to an integer moves it by less than 2**-32 of a step
        v *= 2.0**32
        y = v.astype(np.int64)
        y += u
        y >>= 32
        return y
    v += u * _INV_2_32
    np.floor(v, out=v)
    return v.astype(np.int64)


def to_modular(z: IntArray, modulus_bits: int) -> MaskArray:
    """Two's-complement words of Z_{2^b} (in the word type of :func:`mask_dtype`)."""
    dtype = mask_dtype(modulus_bits)
    out = cast(MaskArray, np.asarray(z, dtype=np.int64).astype(dtype))
    if modulus_bits < 8 * dtype.itemsize:
        np.bitwise_and(out, dtype.type((1 << modulus_bits) - 1), out=out)
    return out


def from_modular(u: MaskArray, modulus_bits: int) -> IntArray:
    """Decode words of Z_{2^b} to the centred integers in ``[-2**(b-1), 2**(b-1))``."""
    dtype = mask_dtype(modulus_bits)
    words: npt.NDArray[Any] = np.asarray(u, dtype=dtype)
    if modulus_bits < 8 * dtype.itemsize:
        words = np.bitwise_and(words, dtype.type((1 << modulus_bits) - 1))
    if dtype.itemsize == 8:  # sign-extend bit b-1 by shifting it to the top and back
        shift = np.uint64(64 - modulus_bits)
        out: IntArray = np.left_shift(words, shift).view(np.int64) >> np.int64(64 - modulus_bits)
        return out
    top = np.left_shift(words, np.uint32(32 - modulus_bits)).view(np.int32)  # the same in 32 bits
    z: IntArray = (top >> np.int32(32 - modulus_bits)).astype(np.int64)
    return z


def noise_headroom(
    variance_per_client: float, n_clients: int, dim: int, failure: float = DEFAULT_WRAP_FAILURE
) -> int:
    """H: a bound on |sum of n clients' noise| per coordinate, over all ``dim`` coordinates.

    For noise that is sub-Gaussian with variance proxy ``variance_per_client`` (the
    discrete Gaussian is), ``P(|sum| > tau * sqrt(n * var)) <= 2 exp(-tau**2 / 2)``; tau is
    chosen so the union over ``dim`` coordinates is at most ``failure``.
    """
    if variance_per_client <= 0:
        return 0
    if not 0 < failure < 1:
        raise ValueError("failure must be in (0, 1)")
    tau = math.sqrt(2.0 * math.log(2.0 * max(dim, 1) / failure))
    return math.ceil(tau * math.sqrt(n_clients * variance_per_client))


def check_no_wrap(n_clients: int, client_bound: int, modulus_bits: int, headroom: int = 0) -> None:
    """Raise ``ValueError`` unless ``n * B + H < 2**(b-1)`` (a sum of n clients cannot wrap)."""
    mask_dtype(modulus_bits)
    if n_clients < 1 or client_bound < 0 or headroom < 0:
        raise ValueError("n_clients >= 1, client_bound >= 0 and headroom >= 0 required")
    total = n_clients * client_bound + headroom
    if total >= 1 << (modulus_bits - 1):
        raise ValueError(
            f"the sum of {n_clients} clients could wrap modulo 2**{modulus_bits}: "
            f"{n_clients} * {client_bound} + {headroom} >= 2**{modulus_bits - 1}; "
            "use more modulus bits, a smaller clip or a coarser scale"
        )


def max_scale(
    n_clients: int,
    clip: float,
    modulus_bits: int,
    *,
    noise_std_per_client: float = 0.0,
    dim: int = 1,
    failure: float = DEFAULT_WRAP_FAILURE,
) -> float:
    """The largest power-of-two scale whose encoding of n clients cannot wrap.

    Args:
        n_clients: most clients whose vectors are summed.
        clip: per-coordinate clip (real units).
        modulus_bits: b.
        noise_std_per_client: per-client noise std in real units (scaled with the scale).
        dim: coordinates (for the noise union bound).
        failure: see :func:`noise_headroom`.

    Raises:
        ValueError: even a scale of 1 / clip (one level per clip) would wrap.
    """
    mask_dtype(modulus_bits)
    if not (math.isfinite(clip) and clip > 0):
        raise ValueError("clip must be positive and finite")
    half = float(1 << (modulus_bits - 1))
    exponent = math.floor(math.log2(min(half / (n_clients * clip), _MAX_EXACT / clip)))
    floor_exponent = -math.ceil(math.log2(clip))  # coarsest useful: about one level per clip
    while exponent >= floor_exponent:
        scale = math.ldexp(1.0, exponent)
        var = (noise_std_per_client * scale) ** 2
        try:
            spec = FixedPoint(clip, scale, modulus_bits)
            check_no_wrap(
                n_clients,
                spec.client_bound,
                modulus_bits,
                noise_headroom(var, n_clients, dim, failure),
            )
        except ValueError:
            exponent -= 1
            continue
        return scale
    raise ValueError(
        f"modulus 2**{modulus_bits} is too small for {n_clients} clients with clip {clip}"
    )


def pack(words: MaskArray, modulus_bits: int) -> bytes:
    """Little-endian, ``ceil(b / 8)`` bytes per word (words must be < 2**b)."""
    dtype = mask_dtype(modulus_bits)
    arr = np.ascontiguousarray(words, dtype=dtype.newbyteorder("<"))
    width = bytes_per_element(modulus_bits)
    if width == dtype.itemsize:
        return arr.tobytes()
    return np.ascontiguousarray(arr.view(np.uint8).reshape(-1, dtype.itemsize)[:, :width]).tobytes()


def unpack(
    data: bytes | memoryview, size: int, modulus_bits: int, *, copy: bool = True
) -> MaskArray:
    """Inverse of :func:`pack`; raises ``ValueError`` on a wrong length or a word >= 2**b.

    With ``copy=False`` and whole-word packing the result may be a read-only view of ``data``.
    """
    dtype = mask_dtype(modulus_bits)
    width = bytes_per_element(modulus_bits)
    if len(data) != width * size:
        raise ValueError(f"expected {width * size} bytes for {size} words, got {len(data)}")
    raw = np.frombuffer(data, dtype=np.uint8)
    if width == dtype.itemsize:
        out = cast(MaskArray, raw.view(dtype.newbyteorder("<")).astype(dtype, copy=copy))
    else:
        full = np.zeros((size, dtype.itemsize), dtype=np.uint8)
        full[:, :width] = raw.reshape(size, width)
        out = cast(MaskArray, full.reshape(-1).view(dtype.newbyteorder("<")).astype(dtype))
    if modulus_bits < 8 * dtype.itemsize and size and int(out.max()) >> modulus_bits:
        raise ValueError("packed word out of range for the modulus")
    return out
