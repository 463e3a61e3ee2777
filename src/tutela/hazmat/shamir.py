"""Shamir t-of-n secret sharing over the prime field GF(2**130 - 5).

A secret of ``16 * m`` bytes is cut into m 128-bit chunks; each chunk is the constant term
of its own random polynomial of degree ``t - 1``, and all m polynomials are evaluated at the
same x-coordinates, so one :class:`Share` carries m field elements. Reconstruction is
Lagrange interpolation at zero, done once per x-set and applied to every chunk.

Security: any ``t - 1`` shares are independent of the secret (information-theoretic), provided
the coefficients are uniform in the field; they are drawn by rejection from the CSPRNG, so
there is no modulo bias. With more than ``t`` shares, :func:`reconstruct_secret` checks that
they all lie on one polynomial of degree ``t - 1`` and raises :class:`ShareValidationError`
otherwise (it detects, but cannot locate, a bad share).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tutela.errors import ProtocolAbort
from tutela.hazmat.rng import SecureRandom

__all__ = [
    "CHUNK_BYTES",
    "ELEMENT_BYTES",
    "PRIME",
    "Share",
    "ShareValidationError",
    "interpolate_at",
    "lagrange_coefficients",
    "random_field_elements",
    "reconstruct_field",
    "reconstruct_secret",
    "split_field",
    "split_secret",
]

PRIME = (1 << 130) - 5
"""The field modulus, 2**130 - 5 (prime; the Poly1305 prime)."""
CHUNK_BYTES = 16
"""A secret is shared in 128-bit chunks (each < PRIME)."""
ELEMENT_BYTES = 17
"""Bytes of one serialised field element (big-endian, 130 bits rounded up)."""
_X_BYTES = 4
_MASK130 = (1 << 130) - 1


class ShareValidationError(ProtocolAbort):
    """Shares are malformed, too few, or do not lie on one polynomial."""


@dataclass(frozen=True, slots=True)
class Share:
    """One share: a non-zero x-coordinate and one field element per secret chunk."""

    x: int
    values: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 0 < self.x < min(PRIME, 1 << (8 * _X_BYTES)):
            raise ShareValidationError("share x-coordinate out of range")
        if not self.values or any(not 0 <= v < PRIME for v in self.values):
            raise ShareValidationError("share value out of range")

    def to_bytes(self) -> bytes:
        """Serialise as ``x (4 bytes BE) || values (17 bytes BE each)``."""
        return self.x.to_bytes(_X_BYTES, "big") + b"".join(
            v.to_bytes(ELEMENT_BYTES, "big") for v in self.values
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        """Parse :meth:`to_bytes` output; raises :class:`ShareValidationError` if malformed."""
        body = len(data) - _X_BYTES
        if body <= 0 or body % ELEMENT_BYTES:
            raise ShareValidationError("malformed share encoding")
        x = int.from_bytes(data[:_X_BYTES], "big")
        values = tuple(
            int.from_bytes(data[i : i + ELEMENT_BYTES], "big")
            for i in range(_X_BYTES, len(data), ELEMENT_BYTES)
        )
        return cls(x, values)


def random_field_elements(count: int, rng: SecureRandom) -> list[int]:
    """``count`` uniform elements of GF(PRIME), by rejection (no modulo bias)."""
    out: list[int] = []
    while len(out) < count:
        raw = rng.bytes(ELEMENT_BYTES * (count - len(out)))
        for i in range(0, len(raw), ELEMENT_BYTES):
            v = int.from_bytes(raw[i : i + ELEMENT_BYTES], "big") & _MASK130
            if v < PRIME:
                out.append(v)
    return out


def _check_threshold(threshold: int, xs: Sequence[int]) -> None:
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    if len(xs) < threshold:
        raise ValueError(f"need at least {threshold} x-coordinates, got {len(xs)}")
    if len(set(xs)) != len(xs):
        raise ValueError("x-coordinates must be distinct")
    if any(not 0 < x < min(PRIME, 1 << (8 * _X_BYTES)) for x in xs):
        raise ValueError("x-coordinates must be in [1, 2**32)")


def split_field(
    secrets: Sequence[int],
    threshold: int,
    xs: Sequence[int],
    *,
    rng: SecureRandom | None = None,
    coefficients: Sequence[Sequence[int]] | None = None,
) -> list[Share]:
    """Share field elements ``secrets`` t-of-len(xs), one polynomial per secret.

    Args:
        secrets: field elements in [0, PRIME).
        threshold: t, the number of shares that reconstruct (polynomial degree t - 1).
        xs: distinct non-zero x-coordinates, one share each.
        rng: randomness for the coefficients (a fresh OS-keyed generator by default).
        coefficients: for known-answer tests only: ``coefficients[j]`` are the t - 1
            non-constant coefficients (lowest degree first) of secret j's polynomial.

    Returns:
        One :class:`Share` per x, in the order of ``xs``.

    Security: any t - 1 of the shares reveal nothing about ``secrets``.
    """
    _check_threshold(threshold, xs)
    if not secrets or any(not 0 <= s < PRIME for s in secrets):
        raise ValueError("secrets must be non-empty field elements")
    if coefficients is None:
        gen = rng if rng is not None else SecureRandom()
        flat = random_field_elements((threshold - 1) * len(secrets), gen)
        coeffs = [
            flat[j * (threshold - 1) : (j + 1) * (threshold - 1)] for j in range(len(secrets))
        ]
    else:
        coeffs = [list(c) for c in coefficients]
        if len(coeffs) != len(secrets) or any(len(c) != threshold - 1 for c in coeffs):
            raise ValueError("need threshold - 1 coefficients per secret")
    shares = []
    for x in xs:
        values = []
        for s, cs in zip(secrets, coeffs, strict=True):
            acc = 0
            for c in reversed(cs):  # Horner: ((c_{t-1} x + ...) x + c_1) x + s
                acc = (acc + c) * x % PRIME
            values.append((acc + s) % PRIME)
        shares.append(Share(x, tuple(values)))
    return shares


def split_secret(
    secret: bytes, threshold: int, xs: Sequence[int], *, rng: SecureRandom | None = None
) -> list[Share]:
    """Share a byte string whose length is a positive multiple of 16 (see :func:`split_field`).

    Security: any t - 1 of the shares reveal nothing about ``secret``.
    """
    if not secret or len(secret) % CHUNK_BYTES:
        raise ValueError("secret length must be a positive multiple of 16 bytes")
    chunks = [
        int.from_bytes(secret[i : i + CHUNK_BYTES], "big")
        for i in range(0, len(secret), CHUNK_BYTES)
    ]
    return split_field(chunks, threshold, xs, rng=rng)


def _batch_inverse(values: Sequence[int]) -> list[int]:
    """Modular inverses of non-zero field elements with one exponentiation (Montgomery)."""
    prefix = [1] * (len(values) + 1)
    for i, v in enumerate(values):
        if v % PRIME == 0:
            raise ShareValidationError("duplicate share x-coordinates")
        prefix[i + 1] = prefix[i] * v % PRIME
    inv = pow(prefix[-1], PRIME - 2, PRIME)
    out = [0] * len(values)
    for i in range(len(values) - 1, -1, -1):
        out[i] = inv * prefix[i] % PRIME
        inv = inv * values[i] % PRIME
    return out


def _basis(xs: Sequence[int], points: Sequence[int]) -> list[list[int]]:
    """Lagrange basis values ``L_j(a)`` for every a in ``points`` (none of them in ``xs``)."""
    if len(set(xs)) != len(xs):
        raise ShareValidationError("duplicate share x-coordinates")
    t = len(xs)
    dens = []
    for j, xj in enumerate(xs):
        d = 1
        for m, xm in enumerate(xs):
            if m != j:
                d = d * (xj - xm) % PRIME
        dens.append(d)
    diffs = [(a - xj) % PRIME for a in points for xj in xs]
    inv = _batch_inverse(dens + diffs)
    weights = inv[:t]  # barycentric weights 1 / prod_{m != j} (x_j - x_m)
    out = []
    for e, a in enumerate(points):
        ell = 1
        for xm in xs:
            ell = ell * (a - xm) % PRIME
        row = inv[t + e * t : t + (e + 1) * t]
        out.append([ell * w % PRIME * r % PRIME for w, r in zip(weights, row, strict=True)])
    return out


def lagrange_coefficients(xs: Sequence[int], at: int = 0) -> list[int]:
    """Lagrange basis values ``L_j(at)`` for the distinct points ``xs`` over GF(PRIME)."""
    if at in xs:
        return [1 if x == at else 0 for x in xs]
    return _basis(xs, [at])[0]


def interpolate_at(shares: Sequence[Share], at: int) -> tuple[int, ...]:
    """Evaluate the polynomials through ``shares`` (exactly their degree + 1 points) at ``at``."""
    return _combine(shares, lagrange_coefficients([s.x for s in shares], at))


def _combine(shares: Sequence[Share], coeffs: Sequence[int]) -> tuple[int, ...]:
    width = len(shares[0].values)
    return tuple(
        sum(c * s.values[i] for c, s in zip(coeffs, shares, strict=True)) % PRIME
        for i in range(width)
    )


def reconstruct_field(
    shares: Sequence[Share], threshold: int, *, validate: bool = True
) -> tuple[int, ...]:
    """Recover the shared field elements from at least ``threshold`` shares.

    Args:
        shares: shares with distinct x-coordinates and equal widths.
        threshold: t used when splitting.
        validate: with more than t shares, check that every extra share lies on the
            polynomial defined by the first t (default on).

    Raises:
        ShareValidationError: too few, duplicate, ragged or inconsistent shares.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    if len(shares) < threshold:
        raise ShareValidationError(f"need {threshold} shares, got {len(shares)}")
    width = len(shares[0].values)
    if any(len(s.values) != width for s in shares):
        raise ShareValidationError("shares of different widths")
    if len({s.x for s in shares}) != len(shares):
        raise ShareValidationError("duplicate share x-coordinates")
    base = list(shares[:threshold])
    extras = list(shares[threshold:]) if validate else []
    rows = _basis([s.x for s in base], [0] + [e.x for e in extras])
    for extra, row in zip(extras, rows[1:], strict=True):
        if _combine(base, row) != extra.values:
            raise ShareValidationError("shares are inconsistent")
    return _combine(base, rows[0])


def reconstruct_secret(shares: Sequence[Share], threshold: int, *, validate: bool = True) -> bytes:
    """Recover a byte secret shared with :func:`split_secret`.

    Raises:
        ShareValidationError: see :func:`reconstruct_field`; also if a recovered chunk does
            not fit in 128 bits (a sign of corrupted shares).
    """
    values = reconstruct_field(shares, threshold, validate=validate)
    if any(v >> (8 * CHUNK_BYTES) for v in values):
        raise ShareValidationError("shares are inconsistent")
    return b"".join(v.to_bytes(CHUNK_BYTES, "big") for v in values)
