"""A commutative blinding group for ECDH-PSI: P-256 points, x-coordinate only.

Each party holds a secret scalar ``k``. It maps an item to a curve point ``H(item)`` and
sends ``x(k * H(item))``; the other party multiplies again, and ``x(k1 * k2 * H(item))``
is the same whichever blinded first. Two parties who end up with equal doubly blinded
values hold the same item; nobody learns an item it does not hold.

Why P-256 through ``cryptography``: the group has prime order (cofactor 1), so there is no
small-subgroup component to clear and every non-identity point generates the whole group;
the arithmetic is OpenSSL's (constant-time ``nistz256`` on x86-64), a maintained library the
project already depends on; and it is the curve OpenMined's PSI uses, so a benchmark against
it compares like with like. ``cryptography`` exposes scalar multiplication only as ECDH,
which returns the x-coordinate, so values travel as 32-byte x-coordinates. The x-coordinate
identifies a point up to sign, and ``x(k * P) = x(k * (-P))``, so blinding is a well-defined,
commutative map on the quotient of the group by ``{+1, -1}``; its security rests on the same
decisional Diffie-Hellman assumption as for full points (a DDH distinguisher on x-coordinates
is one on points). Receiving an x-coordinate, a party lifts it to the point with even ``y``
(either lift gives the same product's x-coordinate).

Hash to the group (try-and-increment): ``x = SHA-256(len(domain) || domain || counter ||
item)`` for counter 0, 1, ... until ``x`` is the x-coordinate of a curve point (about two
tries per item); the point is the lift with even ``y``. The discrete logarithm of the point
is unknown to everyone, which is what the protocol needs (the hash is modelled as a random
oracle, as in the ECDH-PSI literature). The number of tries depends on the item, so the local
running time leaks a few bits about each item to an observer of this machine's timing; nothing
of it reaches the other party, which only receives the blinded values after all are computed.

Security: semi-honest ECDH-PSI under DDH on P-256 in the random-oracle model (about 128-bit
security). The scalar is drawn uniformly in ``[1, n - 1]`` from the injected CSPRNG (bias
below ``2**-64``) and must be used for one protocol run only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric import ec

from tutela.hazmat.rng import SecureRandom

__all__ = ["ELEMENT_BYTES", "BlindingKey", "InvalidElement"]

ELEMENT_BYTES = 32
_CURVE = ec.SECP256R1()
_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_MAX_TRIES = 256


class InvalidElement(ValueError):
    """A received value is not the x-coordinate of a P-256 point."""


def _lift(x: bytes) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, b"\x02" + x)


def hash_to_point(item: bytes, domain: bytes) -> ec.EllipticCurvePublicKey:
    """The point ``H(item)`` under ``domain`` (try-and-increment, see the module docstring)."""
    prefix = len(domain).to_bytes(4, "big") + domain
    for counter in range(_MAX_TRIES):
        x = hashlib.sha256(prefix + counter.to_bytes(1, "big") + item).digest()
        if int.from_bytes(x, "big") >= _P:
            continue
        try:
            return _lift(x)
        except ValueError:
            continue
    raise AssertionError("no curve point after 256 tries (probability 2**-256)")


class BlindingKey:
    """One party's secret scalar for one PSI run.

    Args:
        rng: the CSPRNG the scalar is drawn from (default: fresh OS-seeded).
    """

    __slots__ = ("_key",)

    def __init__(self, rng: SecureRandom | None = None) -> None:
        draw = int.from_bytes((rng or SecureRandom()).bytes(40), "big")
        self._key = ec.derive_private_key(1 + draw % (_N - 1), _CURVE)

    def __repr__(self) -> str:
        return "BlindingKey(<secret>)"

    def blind_items(self, items: Iterable[bytes], domain: bytes) -> list[bytes]:
        """``x(k * H(item))`` for each item, 32 bytes each, in order."""
        exchange, ecdh = self._key.exchange, ec.ECDH()
        return [exchange(ecdh, hash_to_point(item, domain)) for item in items]

    def reblind(self, elements: Sequence[bytes]) -> list[bytes]:
        """``x(k * P)`` for each received x-coordinate ``x(P)``, in order.

        Raises:
            InvalidElement: a value is not 32 bytes or not on the curve.
        """
        exchange, ecdh = self._key.exchange, ec.ECDH()
        out = []
        for x in elements:
            if len(x) != ELEMENT_BYTES:
                raise InvalidElement("a blinded element is not 32 bytes")
            try:
                point = _lift(x)
            except ValueError:
                raise InvalidElement("a blinded element is not on the curve") from None
            out.append(exchange(ecdh, point))
        return out
