"""Dealer-free threshold Paillier keys (Boneh-Franklin 1997, then a masked inverse).

The N key holders (plus optional helpers, see below) generate an RSA modulus ``n = p q``
that no party can factor, and additive integer shares ``d_i`` of the Paillier decryption
exponent ``d`` (``d = 0 mod phi``, ``d = 1 mod n``), so :func:`tutela.he.threshold.
partial_decrypt` and :func:`~tutela.he.threshold.combine` work unchanged and need all N
shares. Every party is a state machine (:class:`KeyGenParty`: messages in, messages out,
no I/O); :func:`generate_threshold_keys` runs them in process, and the same messages can
ride on the coordinator's relay (private messages end-to-end encrypted to their receiver).

The protocol, for ``M`` generating parties with Shamir degree ``t = (M - 1) // 2``:

1. Candidate (one trial): key holder ``i`` draws ``p_i, q_i`` (key holder 0's are ``3 mod 4``
   and carry the offset that fixes the bit length, the others' are ``0 mod 4``); helpers add
   nothing. ``n = (sum p_i)(sum q_i)`` is revealed by one BGW multiplication over a prime
   field: every party Shamir-shares its ``p_i``, ``q_i`` (degree t) and a random
   degree-2t sharing of zero, then reveals ``P(j) Q(j) + Z(j)``. With ``M > 2t + 1`` the
   extra points are checked to lie on one polynomial.
2. Trial division: ``n`` is public, so every party rejects it if a prime below the bound
   divides it (then ``p`` or ``q`` has a small factor).
3. Biprimality test (Boneh-Franklin): for public bases ``g`` with Jacobi symbol ``(g/n) = 1``
   key holder 0 reveals ``g^((n + 1 - p_0 - q_0) / 4)`` and the others ``g^((p_i + q_i) / 4)``;
   ``n`` passes if the first equals plus or minus the product of the others, for every base.
   A non-biprime fails each base with probability at least 1/2. Then ``gcd(n, p + q - 1)
   = 1`` is checked by revealing ``(p + q - 1) r + n s`` for joint random ``r``, ``s``.
4. Key: with ``phi = n + 1 - p - q`` additively shared, the parties reveal ``theta = phi
   beta mod n`` for a joint random ``beta`` (BGW product, masked by ``n R``) and convert a
   second, secret sharing of the same product into integer additive shares of ``phi beta``
   (additive shares modulo the field prime, re-randomised, then the wrap-around count is
   found from each share's top bits, which are statistically independent of the secret).
   ``d = phi beta (theta^-1 mod n)``. Helpers hand their parts to the key holders, and
   the key holders re-randomise their shares with a zero sharing over the integers.
5. Key confirmation: every key holder partially decrypts a public test ciphertext; the
   product must decrypt to the public test plaintext, or the protocol aborts.

Security:
    Semi-honest parties with an honest majority among the ``M`` generating parties: any
    ``t < M / 2`` of them learn nothing about ``p``, ``q``, ``phi`` or ``d`` beyond the public
    ``n`` (BGW is information-theoretic; the revealed masked integers hide their secret
    parts statistically, 128 bits). BGW needs ``M >= 3``, so two key holders take one
    *helper*: a party without a key share (never the coordinator) that only completes the
    honest majority and learns nothing alone; the key stays secret unless the helper colludes
    with a key holder. Decryption needs all N key holders, as with a dealt key. Malicious
    parties are out of scope: a malformed message (wrong phase, trial, sender, size or range),
    an inconsistent reveal (when ``M > 2t + 1``) or a key that fails confirmation raises
    :class:`~tutela.errors.ProtocolAbort`; other deviations can make the protocol fail or
    retry but are not attributed. Rejected candidates are revealed, as in Boneh-Franklin;
    they are independent of the accepted one.
"""

from __future__ import annotations

import enum
import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tutela.errors import ProtocolAbort
from tutela.hazmat.rng import SecureRandom
from tutela.he._integers import (
    expand_hash,
    field_prime,
    jacobi,
    lagrange_at_zero,
    poly_eval,
    powmod,
    random_below,
    random_poly,
    trial_division_passes,
)
from tutela.he.keyreport import KeyGeneration, KeyGenMode
from tutela.he.threshold import KeyShare, PaillierPublicKey

__all__ = [
    "DistributedKeys",
    "KeyGenMessage",
    "KeyGenParams",
    "KeyGenParty",
    "Phase",
    "biprimality_base",
    "biprimality_passes",
    "biprimality_values",
    "deliver",
    "generate_threshold_keys",
    "run_parties",
]

_STAT = 128


class Phase(enum.IntEnum):
    """Protocol stages; private stages carry Shamir shares or pieces to one receiver."""

    CANDIDATE = 1
    MODULUS = 2
    BIPRIMALITY = 3
    GCD_SHARES = 4
    GCD_REVEAL = 5
    INVERSE_SHARES = 6
    INVERSE_REVEAL = 7
    RERANDOMISE = 8
    CARRY = 9
    HANDOFF = 10
    CONFIRM = 11


_PRIVATE = frozenset(
    {Phase.CANDIDATE, Phase.GCD_SHARES, Phase.INVERSE_SHARES, Phase.RERANDOMISE, Phase.HANDOFF}
)


@dataclass(frozen=True, slots=True)
class KeyGenMessage:
    """One protocol message. ``receiver`` is ``None`` for a broadcast."""

    session: bytes
    phase: Phase
    round: int
    sender: int
    receiver: int | None
    values: tuple[int, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyGenParams:
    """Sizes and test strengths.

    Attributes:
        key_bits: bit length of ``n`` (3072 for about 128-bit security, 2048 for 112-bit;
            the threshold Paillier functions need at least 1024; smaller only for tests).
        biprimality_rounds: Boneh-Franklin bases; a non-biprime passes with probability
            at most ``2**-biprimality_rounds``.
        trial_division_bound: primes up to this bound are tried on every candidate ``n``.
        max_trials: the protocol aborts after this many candidates.
        batch: candidates per message round (fewer, larger messages).
    """

    key_bits: int = 3072
    biprimality_rounds: int = 64
    trial_division_bound: int = 1 << 15
    max_trials: int = 10_000_000
    batch: int = 32

    def __post_init__(self) -> None:
        if self.key_bits < 128 or self.key_bits % 16:
            raise ValueError("key_bits must be a multiple of 16 and at least 128")
        if not 16 <= self.biprimality_rounds <= 256:
            raise ValueError("biprimality_rounds must be in [16, 256]")
        if not 3 <= self.trial_division_bound <= 1 << 20 or self.max_trials < 1:
            raise ValueError("trial_division_bound must be in [3, 2**20], max_trials >= 1")
        if not 1 <= self.batch <= 1024:
            raise ValueError("batch must be in [1, 1024]")

    @property
    def modulus_field(self) -> int:
        """Prime of the field in which candidates' products are revealed."""
        return field_prime(self.key_bits + 64)

    @property
    def key_field(self) -> int:
        """Prime of the field for the gcd check and the key (room for masks and carries)."""
        return field_prime(-(-(2 * self.key_bits + 512) // 64) * 64)


@functools.lru_cache(maxsize=64)
def _lagrange(n_points: int, prime: int) -> tuple[int, ...]:
    return tuple(lagrange_at_zero(range(1, n_points + 1), prime))


def _abort(msg: str) -> ProtocolAbort:
    return ProtocolAbort(f"key generation aborted: {msg}")


class KeyGenParty:
    """One party of dealer-free key generation (a key holder or a helper).

    Args:
        index: this party's index; ``0 .. n_key_holders - 1`` are key holders, the rest
            helpers.
        n_key_holders: number of decryption-key shares (>= 2).
        helpers: parties without a key share that complete the honest majority.
        params: sizes and test strengths (same at every party).
        session: a public identifier of this run (same at every party).
        rng: this party's randomness (default: a fresh OS-seeded CSPRNG).

    Security: see the module docstring.
    """

    def __init__(
        self,
        index: int,
        n_key_holders: int,
        *,
        helpers: int = 0,
        params: KeyGenParams | None = None,
        session: bytes,
        rng: SecureRandom | None = None,
    ) -> None:
        if n_key_holders < 2 or helpers < 0:
            raise ValueError("need at least 2 key holders and a non-negative helper count")
        if n_key_holders + helpers < 3:
            raise ValueError(
                "dealer-free generation needs at least 3 generating parties (an honest "
                "majority): add a helper or use the dealer role"
            )
        if not 0 <= index < n_key_holders + helpers:
            raise ValueError("index out of range")
        if not 1 <= len(session) <= 64:
            raise ValueError("session must be 1..64 bytes")
        self.index = index
        self.n_key_holders = n_key_holders
        self.n_parties = n_key_holders + helpers
        self.params = params or KeyGenParams()
        self.session = session
        self.degree = (self.n_parties - 1) // 2
        self.phase = Phase.CANDIDATE
        self.round = 0
        self.trials = 0
        self.trials_tested = 0
        self.modulus: int | None = None
        self.exponent: int | None = None
        self._rng = rng or SecureRandom()
        self._secret: dict[str, int] = {}
        self._candidates: list[tuple[int, int]] = []
        self._queue: list[tuple[int, int]] = []
        self._rounds_done = 0
        self._batch = 0
        self._finished = False

    def __repr__(self) -> str:
        role = "key holder" if self.is_key_holder else "helper"
        return f"KeyGenParty({self.index}, {role}, phase={self.phase.name}, round={self.round})"

    @property
    def is_key_holder(self) -> bool:
        """Whether this party ends with a share of the decryption key."""
        return self.index < self.n_key_holders

    @property
    def done(self) -> bool:
        """Whether the key is generated and confirmed."""
        return self._finished

    def key_share(self) -> KeyShare:
        """This key holder's share (the modulus must have at least 1024 bits)."""
        if not self.done or self.exponent is None or self.modulus is None:
            raise ValueError("no key share: generation is not finished or this is a helper")
        pk = PaillierPublicKey(self.modulus)
        return KeyShare(self.index, self.n_key_holders, pk, self.exponent)

    # -- messages ------------------------------------------------------------------------

    def start(self) -> list[KeyGenMessage]:
        """The first messages (the first candidate's shares)."""
        if self.round:
            raise ValueError("already started")
        return self._candidate()

    def receive(self, messages: Sequence[KeyGenMessage]) -> list[KeyGenMessage]:
        """Consume one message from every party for the current phase; return the next.

        Raises:
            ProtocolAbort: a malformed or inconsistent message, a failed key confirmation,
                or no biprime modulus within ``max_trials``.
        """
        if self.done:
            raise ValueError("key generation is finished")
        handler: Callable[[list[tuple[int, ...]]], list[KeyGenMessage]] = getattr(
            self, f"_on_{self.phase.name.lower()}"
        )
        return handler(self._collect(messages))

    def _collect(self, messages: Sequence[KeyGenMessage]) -> list[tuple[int, ...]]:
        private = self.phase in _PRIVATE
        by_sender: dict[int, tuple[int, ...]] = {}
        for m in messages:
            if not isinstance(m, KeyGenMessage) or not 0 <= m.sender < self.n_parties:
                raise _abort("a message from outside the roster")
            who = f"party {m.sender}"
            if m.session != self.session or m.round != self.round or m.phase is not self.phase:
                raise _abort(f"{who} sent a message for another session, round or phase")
            if m.receiver != (self.index if private else None):
                raise _abort(f"{who} sent a message addressed to the wrong receiver")
            if m.sender in by_sender:
                raise _abort(f"{who} sent two {self.phase.name} messages")
            if not all(type(v) is int for v in m.values):
                raise _abort(f"{who} sent a non-integer value")
            by_sender[m.sender] = m.values
        missing = sorted(set(range(self.n_parties)) - set(by_sender))
        if missing:
            raise _abort(f"no {self.phase.name} message from parties {missing}")
        return [by_sender[j] for j in range(self.n_parties)]

    def _check(self, rows: list[tuple[int, ...]], width: Callable[[int], int], hi: int) -> None:
        for j, row in enumerate(rows):
            if len(row) != width(j):
                raise _abort(f"party {j} sent {len(row)} values in {self.phase.name}")
            if any(not 0 <= v < hi for v in row):
                raise _abort(f"party {j} sent a value out of range in {self.phase.name}")

    def _send(self, phase: Phase, rows: Sequence[tuple[int, ...]]) -> list[KeyGenMessage]:
        self.phase = phase
        if phase in _PRIVATE:
            return [
                KeyGenMessage(self.session, phase, self.round, self.index, j, rows[j])
                for j in range(self.n_parties)
            ]
        return [KeyGenMessage(self.session, phase, self.round, self.index, None, rows[0])]

    def _share(self, prime: int, *polys: tuple[int, int]) -> list[tuple[int, ...]]:
        """Rows of Shamir shares, one per receiver: ``polys`` are (constant, degree)."""
        coeffs = [random_poly(self._rng, c, deg, prime) for c, deg in polys]
        return [
            tuple(poly_eval(cs, x, prime) for cs in coeffs) for x in range(1, self.n_parties + 1)
        ]

    def _open(self, points: list[int], prime: int) -> int:
        """Interpolate revealed points of a degree-2t polynomial at zero, checking them."""
        full = sum(c * y for c, y in zip(_lagrange(self.n_parties, prime), points, strict=True))
        need = 2 * self.degree + 1
        if need < self.n_parties:
            part = sum(c * y for c, y in zip(_lagrange(need, prime), points[:need], strict=True))
            if (part - full) % prime:
                raise _abort(f"the {self.phase.name} values do not lie on one polynomial")
        return full % prime

    # -- 1. candidate and modulus --------------------------------------------------------

    def _candidate(self) -> list[KeyGenMessage]:
        """A new round of candidates: shares of each ``p_i``, ``q_i`` and of zero."""
        batch = self.params.batch
        if self.trials + batch > self.params.max_trials:
            raise _abort(f"no biprime modulus within {self.params.max_trials} trials")
        self.round += 1
        half = self.params.key_bits // 2
        low = math.isqrt(1 << (2 * half - 1)) + 1  # p, q >= low makes n exactly key_bits
        span = ((1 << half) - low) // (4 * self.n_key_holders) - 1
        offset = low + (3 - low) % 4 if self.index == 0 else 0
        self._candidates = []
        for _ in range(batch):
            if self.is_key_holder:
                p = offset + 4 * random_below(self._rng, span)
                q = offset + 4 * random_below(self._rng, span)
            else:
                p = q = 0
            self._candidates.append((p, q))
        prime, t = self.params.modulus_field, self.degree
        polys = [spec for p, q in self._candidates for spec in ((p, t), (q, t), (0, 2 * t))]
        return self._send(Phase.CANDIDATE, self._share(prime, *polys))

    def _on_candidate(self, rows: list[tuple[int, ...]]) -> list[KeyGenMessage]:
        prime, batch = self.params.modulus_field, self.params.batch
        self._check(rows, lambda _: 3 * batch, prime)
        sums = [sum(col) for col in zip(*rows, strict=True)]
        out = tuple((sums[3 * c] * sums[3 * c + 1] + sums[3 * c + 2]) % prime for c in range(batch))
        return self._send(Phase.MODULUS, [out])

    def _on_modulus(self, rows: list[tuple[int, ...]]) -> list[KeyGenMessage]:
        prime, bound = self.params.modulus_field, self.params.trial_division_bound
        self._check(rows, lambda _: self.params.batch, prime)
        self._queue = []
        for c in range(self.params.batch):
            n = self._open([r[c] for r in rows], prime)
            if n.bit_length() != self.params.key_bits or n % 4 != 1:
                raise _abort("the revealed modulus is out of range (a party deviated)")
            if trial_division_passes(n, bound):
                self._queue.append((c, n))
        return self._next_candidate()

    def _next_candidate(self) -> list[KeyGenMessage]:
        """Test the next candidate that passed trial division, or start a new round."""
        self.modulus = None
        self._secret = {}
        if not self._queue:
            self.trials += self.params.batch
            return self._candidate()
        c, n = self._queue.pop(0)
        self.modulus = n
        self.trials_tested += 1
        p, q = self._candidates[c]
        self._secret = {"p": p, "q": q, "index": c}
        self._rounds_done = 0
        return self._biprimality(1)

    # -- 2. biprimality ------------------------------------------------------------------

    def _n(self) -> int:
        if self.modulus is None:
            raise _abort("no modulus yet")
        return self.modulus

    def _biprimality(self, count: int) -> list[KeyGenMessage]:
        self._batch = count
        n = self._n()
        values: tuple[int, ...] = ()
        if self.is_key_holder:
            bases = [
                biprimality_base(self.session, n, k)
                for k in range(self._rounds_done, self._rounds_done + count)
            ]
            p, q = self._secret["p"], self._secret["q"]
            values = biprimality_values(self.index, n, p, q, bases)
        return self._send(Phase.BIPRIMALITY, [values])

    def _on_biprimality(self, rows: list[tuple[int, ...]]) -> list[KeyGenMessage]:
        n = self._n()
        self._check(rows, lambda j: self._batch if j < self.n_key_holders else 0, n)
        if any(v == 0 for row in rows for v in row):
            raise _abort("a biprimality value is zero")
        if not biprimality_passes(n, rows[: self.n_key_holders]):
            return self._next_candidate()
        self._rounds_done += self._batch
        if self._rounds_done < self.params.biprimality_rounds:
            return self._biprimality(self.params.biprimality_rounds - self._rounds_done)
        return self._gcd_shares()

    def _gcd_shares(self) -> list[KeyGenMessage]:
        bits, half = self.params.key_bits, self.params.key_bits // 2
        a = 0
        if self.is_key_holder:
            a = self._secret["p"] + self._secret["q"] - (1 if self.index == 0 else 0)
        r = random_below(self._rng, 1 << (bits + _STAT))
        mask = self._n() * random_below(self._rng, 1 << (half + 2 * _STAT + 16))
        rows = self._share(
            self.params.key_field, (a, self.degree), (r, self.degree), (mask, 2 * self.degree)
        )
        return self._send(Phase.GCD_SHARES, rows)

    def _on_gcd_shares(self, rows: list[tuple[int, ...]]) -> list[KeyGenMessage]:
        prime = self.params.key_field
        self._check(rows, lambda _: 3, prime)
        a, b, z = (sum(col) for col in zip(*rows, strict=True))
        return self._send(Phase.GCD_REVEAL, [((a * b + z) % prime,)])

    def _on_gcd_reveal(self, rows: list[tuple[int, ...]]) -> list[KeyGenMessage]:
        self._check(rows, lambda _: 1, self.params.key_field)
        if math.gcd(self._open([r[0] for r in rows], self.params.key_field), self._n()) != 1:
            return self._next_candidate()
        self.trials += self._secret["index"] + 1
        self._candidates, self._queue = [], []
        return self._inverse_shares()

    # -- 3. the decryption exponent ------------------------------------------------------

    def _inverse_shares(self) -> list[KeyGenMessage]:
        n, bits = self._n(), self.params.key_bits
        phi = 0
        if self.is_key_holder:
            pq = self._secret["p"] + self._secret["q"]
            phi = n + 1 - pq if self.index == 0 else -pq
        beta = random_below(self._rng, 1 << (bits + _STAT))
        mask = n * random_below(self._rng, 1 << (bits + 2 * _STAT + 16))
        self._secret = {"phi": phi}
        rows = self._share(
            self.params.key_field,
            (phi, self.degree),
            (beta, self.degree),
            (mask, 2 * self.degree),
            (0, 2 * self.degree),
        )
        return self._send(Phase.INVERSE_SHARES, rows)

    def _on_inverse_shares(self, rows: list[tuple[int, ...]]) -> list[KeyGenMessage]:
        prime = self.params.key_field
        self._check(rows, lambda _: 4, prime)
        a, b, z_mask, z_zero = (sum(col) for col in zip(*rows, strict=True))
        lam = _lagrange(self.n_parties, prime)[self.index]
        self._secret = {"w": lam * (a * b + z_zero) % prime}
        return self._send(Phase.INVERSE_REVEAL, [((a * b + z_mask) % prime,)])

    def _on_inverse_reveal(self, rows: list[tuple[int, ...]]) -> list[KeyGenMessage]:
        prime, n = self.params.key_field, self._n()
        self._check(rows, lambda _: 1, prime)
        theta = self._open([r[0] for r in rows], prime) % n
        if math.gcd(theta, n) != 1:
            raise _abort("the masked inverse is not invertible (a party deviated)")
        self._secret["mu"] = pow(theta, -1, n)
        pieces = [
            0 if j == self.index else random_below(self._rng, prime) for j in range(self.n_parties)
        ]
        self._secret["w"] = (self._secret["w"] - sum(pieces)) % prime
        return self._send(Phase.RERANDOMISE, [(x,) for x in pieces])

    def _carry_shift(self) -> tuple[int, int]:
        """(bits of the secret product's bound, shift of the revealed top bits)."""
        product_bits = 2 * self.params.key_bits + _STAT + self.n_parties.bit_length()
        return product_bits, product_bits + _STAT

    def _on_rerandomise(self, rows: list[tuple[int, ...]]) -> list[KeyGenMessage]:
        prime = self.params.key_field
        self._check(rows, lambda _: 1, prime)
        self._secret["w"] = (self._secret["w"] + sum(r[0] for r in rows)) % prime
        _, shift = self._carry_shift()
        return self._send(Phase.CARRY, [(self._secret["w"] >> shift,)])

    def _on_carry(self, rows: list[tuple[int, ...]]) -> list[KeyGenMessage]:
        prime = self.params.key_field
        product_bits, shift = self._carry_shift()
        self._check(rows, lambda _: 1, 1 + (prime >> shift))
        top = sum(r[0] for r in rows) << shift
        wraps = (top + (self.n_parties << shift) - 1) // prime
        if not 0 <= wraps < self.n_parties or wraps * prime <= top - (1 << product_bits):
            raise _abort("the carry values are inconsistent (a party deviated)")
        share = self._secret["w"] - (wraps * prime if self.index == 0 else 0)
        part = self._secret["mu"] * share  # this party's integer part of d
        width = self.params.key_bits + prime.bit_length() + self.n_parties.bit_length() + _STAT
        if self.is_key_holder:  # re-randomise with a zero sharing among the key holders
            others = [j for j in range(self.n_key_holders) if j != self.index]
            pieces = {j: random_below(self._rng, 1 << width) for j in others}
            self.exponent = part - sum(pieces.values())
        else:  # a helper hands its whole part over, split among the key holders
            pieces = {j: random_below(self._rng, 1 << width) for j in range(1, self.n_key_holders)}
            pieces[0] = part - sum(pieces.values())
        self._secret = {}
        rows_out = [(pieces[j],) if j in pieces else () for j in range(self.n_parties)]
        return self._send(Phase.HANDOFF, rows_out)

    def _on_handoff(self, rows: list[tuple[int, ...]]) -> list[KeyGenMessage]:
        for j, row in enumerate(rows):
            expect = 1 if self.is_key_holder and j != self.index else 0
            if len(row) != expect:
                raise _abort(f"party {j} sent {len(row)} values in HANDOFF")
        values: tuple[int, ...] = ()
        if self.is_key_holder and self.exponent is not None:
            self.exponent += sum(r[0] for r in rows if r)
            c, _ = _test_ciphertext(self.session, self._n())
            values = (powmod(c, self.exponent, self._n() ** 2),)
        self._secret = {"confirming": 1}
        return self._send(Phase.CONFIRM, [values])

    def _on_confirm(self, rows: list[tuple[int, ...]]) -> list[KeyGenMessage]:
        n = self._n()
        n2 = n * n
        self._check(rows, lambda j: 1 if j < self.n_key_holders else 0, n2)
        _, m = _test_ciphertext(self.session, n)
        combined = math.prod(rows[j][0] for j in range(self.n_key_holders)) % n2
        if combined != (1 + m * n) % n2:
            raise _abort("key confirmation failed: the shares do not decrypt")
        self._secret = {}
        self._finished = True
        return []


def biprimality_base(session: bytes, n: int, k: int) -> int:
    """The ``k``-th public base: Jacobi symbol ``(g / n) = 1``, derived from a hash."""
    nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    for counter in range(1000):
        tag = k.to_bytes(4, "big") + counter.to_bytes(4, "big")
        g = expand_hash(b"tutela.he.keygen.base", session, nb, tag, bits=n.bit_length() + 64)
        if jacobi(g % n, n) == 1:
            return g % n
    raise _abort("no base with Jacobi symbol 1")  # pragma: no cover - probability 2^-1000


def biprimality_values(
    index: int, n: int, p_share: int, q_share: int, bases: Sequence[int]
) -> tuple[int, ...]:
    """Key holder ``index``'s Boneh-Franklin values for ``bases``.

    Key holder 0 (whose shares are ``3 mod 4``) gives ``g^((n + 1 - p_0 - q_0) / 4)``, the
    others (shares ``0 mod 4``) ``g^((p_i + q_i) / 4)``.
    """
    exp = (n + 1 - p_share - q_share) // 4 if index == 0 else (p_share + q_share) // 4
    return tuple(powmod(g, exp, n) for g in bases)


def biprimality_passes(n: int, rows: Sequence[Sequence[int]]) -> bool:
    """Boneh-Franklin: for each base, key holder 0's value is +- the others' product.

    That is ``g^(phi / 4) = +-1 mod n`` with ``phi = n + 1 - p - q``; a modulus that is not
    the product of two distinct primes fails each base with probability at least 1/2
    (the gcd check in the protocol covers the remaining case).
    """
    for k in range(len(rows[0])):
        rest = math.prod(row[k] for row in rows[1:]) % n
        if rows[0][k] % n not in (rest, n - rest):
            return False
    return True


def _test_ciphertext(session: bytes, n: int) -> tuple[int, int]:
    """A public Paillier ciphertext of a public plaintext under ``n``."""
    nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    m = expand_hash(b"tutela.he.keygen.m", session, nb, bits=n.bit_length() + 64) % n
    r = expand_hash(b"tutela.he.keygen.r", session, nb, bits=n.bit_length() + 64) % n
    n2 = n * n
    return (1 + m * n) * powmod(r, n, n2) % n2, m


# -- in-process transport ---------------------------------------------------------------


def deliver(
    parties: Sequence[KeyGenParty], messages: Sequence[KeyGenMessage]
) -> list[KeyGenMessage]:
    """Hand every party the messages addressed to it (and every broadcast); collect replies."""
    out: list[KeyGenMessage] = []
    for party in parties:
        inbox = [m for m in messages if m.receiver is None or m.receiver == party.index]
        out.extend(party.receive(inbox))
    return out


def run_parties(
    parties: Sequence[KeyGenParty],
    *,
    relay: Callable[[list[KeyGenMessage]], list[KeyGenMessage]] | None = None,
) -> None:
    """Run the parties to completion in process; ``relay`` may observe or alter traffic."""
    messages = [m for p in parties for m in p.start()]
    while not all(p.done for p in parties):
        if relay is not None:
            messages = relay(messages)
        messages = deliver(parties, messages)


@dataclass(frozen=True, slots=True)
class DistributedKeys:
    """A dealer-free key: the public key, one share per key holder, and how it was made."""

    public_key: PaillierPublicKey
    shares: tuple[KeyShare, ...]
    report: KeyGeneration


def generate_threshold_keys(
    n_parties: int,
    *,
    key_bits: int = 3072,
    helpers: int | None = None,
    params: KeyGenParams | None = None,
    seed: bytes | None = None,
) -> DistributedKeys:
    """Generate an n-of-n threshold Paillier key without a dealer (all parties in process).

    Args:
        n_parties: key holders (>= 2); all are needed to decrypt.
        key_bits: modulus size (at least 1024 here; see :class:`KeyGenParams`).
        helpers: share-less parties completing an honest majority (default: 1 for two key
            holders, else 0).
        params: protocol parameters (overrides ``key_bits``).
        seed: makes every party's randomness deterministic (tests only).

    Security: see the module docstring. In process, one caller sees every party's share;
    deployments run each :class:`KeyGenParty` at its own key holder.
    """
    params = params or KeyGenParams(key_bits=key_bits)
    if params.key_bits < 1024:
        raise ValueError("threshold Paillier keys need at least 1024 bits")
    n_helpers = (1 if n_parties == 2 else 0) if helpers is None else helpers
    session = os.urandom(16) if seed is None else b"seeded:" + seed[:32]
    parties = [
        KeyGenParty(
            i,
            n_parties,
            helpers=n_helpers,
            params=params,
            session=session,
            rng=SecureRandom(None if seed is None else seed + i.to_bytes(2, "big")),
        )
        for i in range(n_parties + n_helpers)
    ]
    run_parties(parties)
    shares = tuple(p.key_share() for p in parties[:n_parties])
    report = KeyGeneration(
        KeyGenMode.DISTRIBUTED,
        key_holders=n_parties,
        key_bits=params.key_bits,
        helpers=n_helpers,
        trials=parties[0].trials,
        biprimality_tests=parties[0].trials_tested,
    )
    return DistributedKeys(shares[0].public_key, shares, report)
