"""CKKS parameters and TenSEAL context handling shared by aggregation and inference.

Parameter choice (defaults of :class:`CkksParams`): ring degree N = 8192 (4096 slots), a
coefficient modulus of 60 + 40 + 60 = 160 bits and a scale of 2**40. The HE standard
(homomorphicencryption.org, 2018) allows at most 218 bits of modulus at N = 8192 for
128-bit classical security with a ternary secret, which SEAL enforces: 160 bits is inside.
The middle 40-bit prime gives one rescale, enough for one multiplication by a plaintext
weight. After that rescale the 60-bit prime q0 is left, so decrypted values must stay below
``2**(60 - 40 - 1) = 2**19`` in magnitude.

Encrypted aggregation has its own addition-only preset (60 + 60 bits, no rescale level:
:data:`tutela.he.aggregation.AGGREGATION_PARAMS`), half the ciphertext size at the same
scale and range.

Error model (measured on this stack; ``tests/he`` re-checks it): each fresh encryption
adds at most about ``2**-27`` of absolute error per slot; multiplying by a plaintext weight
adds a relative error below ``2**-22`` of the weighted value. :meth:`CkksParams.error_bound`
states a per-slot bound with a safety factor of about 4 over the worst case measured.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import tenseal as ts

from tutela.errors import CryptoError, IntegrityError

__all__ = ["CkksParams", "fingerprint", "load_context", "make_context", "public_context_bytes"]

# HE standard (2018), 128-bit classical security, ternary secret: max log2(q) per degree.
_MAX_MODULUS_BITS = {4096: 109, 8192: 218, 16384: 438, 32768: 881}


@dataclass(frozen=True, slots=True)
class CkksParams:
    """CKKS parameters (128-bit security by the HE standard's table).

    Attributes:
        poly_modulus_degree: ring degree N; slots = N / 2.
        coeff_mod_bit_sizes: bit sizes of the modulus primes, first = q0, last = special.
        scale_bits: log2 of the encoding scale.
        max_abs: largest input magnitude a site may encrypt (checked at encryption).
    """

    poly_modulus_degree: int = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 40, 60)
    scale_bits: int = 40
    max_abs: float = 1024.0

    def __post_init__(self) -> None:
        limit = _MAX_MODULUS_BITS.get(self.poly_modulus_degree)
        if limit is None:
            raise ValueError(f"poly_modulus_degree must be one of {sorted(_MAX_MODULUS_BITS)}")
        if len(self.coeff_mod_bit_sizes) < 2:
            raise ValueError("coeff_mod_bit_sizes needs at least two primes")
        if sum(self.coeff_mod_bit_sizes) > limit:
            raise ValueError(
                f"coefficient modulus of {sum(self.coeff_mod_bit_sizes)} bits exceeds the "
                f"{limit} bits allowed for 128-bit security at N={self.poly_modulus_degree}"
            )
        if not 20 <= self.scale_bits < self.coeff_mod_bit_sizes[0]:
            raise ValueError("scale_bits must be in [20, first prime bits)")
        if not 0 < self.max_abs <= self.max_result_abs:
            raise ValueError(f"max_abs must be in (0, {self.max_result_abs:g}]")

    @property
    def slots(self) -> int:
        """Number of values one ciphertext holds (N / 2)."""
        return self.poly_modulus_degree // 2

    @property
    def depth(self) -> int:
        """Number of rescales (multiplications) the modulus chain allows."""
        return len(self.coeff_mod_bit_sizes) - 2

    @property
    def max_result_abs(self) -> float:
        """Largest magnitude a decrypted slot can hold at the last level: 2**(q0 - scale - 1)."""
        return 2.0 ** (self.coeff_mod_bit_sizes[0] - self.scale_bits - 1)

    def error_bound(
        self, n_terms: int, total_weight: float = 0.0, weighted_magnitude: float = 0.0
    ) -> float:
        """Per-slot absolute error bound of a decrypted (weighted) sum.

        Args:
            n_terms: number of ciphertexts summed.
            total_weight: ``sum_i |w_i|`` for a weighted sum, 0 for an unweighted one.
            weighted_magnitude: ``sum_i |w_i| * A_i`` where ``A_i`` bounds the slot's
                magnitude in contribution ``i``; 0 for an unweighted sum.

        Returns:
            ``(n_terms + total_weight) * 2**-(scale_bits - 16) + weighted_magnitude * 2**-20``
            (default scale: about 6e-8 per ciphertext, plus about 1e-6 times the weighted
            magnitude for plaintext weights). Without a rescale level (:attr:`depth` 0)
            weights are integers applied by exact doubling and adding, which multiplies
            each contribution's encryption error by ``|w_i|`` (the first term) and adds no
            encoding error, so the second term is dropped.
        """
        fresh = (n_terms + total_weight) * 2.0 ** -(self.scale_bits - 16)
        return fresh + (weighted_magnitude * 2.0**-20 if self.depth > 0 else 0.0)


def make_context(params: CkksParams) -> Any:
    """Create a TenSEAL CKKS context holding a fresh secret key (no Galois keys)."""
    ctx = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=params.poly_modulus_degree,
        coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
    )
    ctx.global_scale = 2.0**params.scale_bits
    ctx.auto_rescale = True
    ctx.auto_relin = True
    ctx.auto_mod_switch = True
    return ctx


def public_context_bytes(ctx: Any, *, relin_keys: bool) -> bytes:
    """Serialise the public part of ``ctx``: public key (+ relin keys), never the secret key."""
    return bytes(
        ctx.serialize(
            save_public_key=True,
            save_secret_key=False,
            save_galois_keys=False,
            save_relin_keys=relin_keys,
        )
    )


def fingerprint(public_context: bytes) -> bytes:
    """A 32-byte identifier of a key: SHA-256 over its serialised public context."""
    return hashlib.sha256(b"tutela.he.key/v1\x00" + public_context).digest()


def load_context(data: bytes, *, max_bytes: int, require_public: bool) -> Any:
    """Deserialise a TenSEAL context with a size limit.

    Args:
        data: serialised context.
        max_bytes: reject anything larger before parsing.
        require_public: if true, refuse a context that holds a secret key (a coordinator or
            server must never hold one).

    Raises:
        IntegrityError: oversized or malformed.
        CryptoError: ``require_public`` and the context holds a secret key.
    """
    if not isinstance(data, bytes | bytearray):
        raise TypeError("context must be bytes")
    if len(data) > max_bytes:
        raise IntegrityError(f"context exceeds the limit of {max_bytes} bytes")
    try:
        ctx = ts.context_from(bytes(data))
    except (ValueError, RuntimeError) as exc:
        raise IntegrityError("malformed context") from exc
    if require_public and ctx.is_private():
        raise CryptoError("refusing a context that holds a secret key; send the public context")
    ctx.auto_rescale = True
    ctx.auto_relin = True
    ctx.auto_mod_switch = True
    return ctx
