"""Two-party ECDH private set intersection for record linkage, as message objects with no I/O.

The *requester* (A) and the *responder* (B) each hold one tuple of blocking keys per row
(:func:`tutela.smpc.linkage.blocking_keys`). Each hashes its keys to P-256 and blinds them
with a secret scalar (:mod:`tutela.hazmat.ecgroup`); doubly blinded values are equal
exactly when the keys are. Three messages, all bytes, carried by any transport::

    A -> B  request    x(a H(key)) for A's keys, in A's order
    B -> A  response   x(b a H(key)) for A's keys, and x(b H(key)) for B's keys
    A -> B  finish     what B may learn (depends on the mode)

Modes (:class:`PsiMode`):

* ``INTERSECTION``: both learn which of their own rows link, in one joint order (A's row
  order), so they can compute on aligned rows. A row links to the first key kind (in the
  keys' order, see :class:`~tutela.smpc.linkage.BlockingKey`) that matches a row of B not
  already linked; each row links at most once. B's values arrive in B's row order, so A
  learns B's row positions of the linked rows; B learns the joint order of its linked rows.
* ``CARDINALITY``: only the number of common keys. B shuffles both lists of blinded values
  with fresh permutations, so A cannot tell which of its rows matched; A tells B the count.
  One key per row.
* ``SHARES``: additive shares in Z_{2^64} of ``[row i of A has a match]`` for every row of A,
  so a later joint computation can use the join while neither party learns it. B shuffles
  A's doubly blinded values with a permutation from a dealer's shuffle correlation
  (:meth:`tutela.smpc.dealer.TrustedDealer.shuffle_correlation`); A computes the membership
  bits in that unknown order, masks them with the dealer's uniform ``u`` and sends them; B
  un-shuffles them into its shares, A's shares are the dealer's ``z``. Every value B receives
  is blinded or uniformly masked. One key per row.

Within a party a repeated key counts once (its later rows get a random dummy key) and a
missing key (``None``) is a random dummy, so equal blinded values never show a party's
duplicates to the other and a dummy never matches.

Security: semi-honest parties, DDH on P-256 in the random-oracle model. Both learn the
other's number of rows (and of keys per row). Beyond that, ``INTERSECTION`` reveals the linked
rows to both (and B's row positions of them to A); ``CARDINALITY`` reveals only the count to
both; ``SHARES`` reveals the count to A and nothing to B, provided the dealer does not collude
with A (the dealer knows the permutation). A malicious party can make results wrong (it can
lie about the count or the masked bits) or probe chosen keys; nothing authenticates inputs.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tutela.hazmat.ecgroup import ELEMENT_BYTES, BlindingKey, InvalidElement
from tutela.hazmat.ring import RingArray
from tutela.hazmat.rng import SecureRandom
from tutela.smpc.dealer import ShuffleCorrelation, ShuffleMask, TrustedDealer, random_permutation
from tutela.smpc.wire import MessageError

__all__ = [
    "PsiMode",
    "PsiRequester",
    "PsiResponder",
    "PsiResult",
    "private_set_intersection",
]

Keys = Sequence[Sequence[bytes | None]]
_MAGIC = b"TUPS"
_HEAD = struct.Struct(">4sBBB8sIII")
_REQUEST, _RESPONSE, _FINISH = 1, 2, 3
_MAX_ELEMENTS = 1 << 24


class PsiMode(enum.Enum):
    """What the two parties learn (see the module docstring)."""

    INTERSECTION = "intersection"
    CARDINALITY = "cardinality"
    SHARES = "shares"


@dataclass(frozen=True, slots=True)
class PsiResult:
    """One party's output.

    Attributes:
        mode: the mode run.
        size: the number of linked rows (common keys), or None where this party must not
            learn it (the responder in ``SHARES`` mode).
        rows: ``INTERSECTION``: this party's linked rows, in the joint order; else empty.
        shares: ``SHARES``: this party's share of each requester row's membership bit
            (0 or 1 once both shares are added modulo 2**64); else None.
        bytes_sent / bytes_received: this party's traffic.
    """

    mode: PsiMode
    size: int | None
    rows: npt.NDArray[np.int64]
    shares: RingArray | None
    bytes_sent: int
    bytes_received: int


def _domain(session: bytes) -> bytes:
    return b"tutela/psi/v1/" + session


def _tag(session: bytes) -> bytes:
    return hashlib.sha256(_domain(session)).digest()[:8]


def _items(keys: Keys, mode: PsiMode, rng: SecureRandom) -> tuple[list[bytes], int]:
    """Flattened keys (row-major), repeats and missing keys replaced by dummies; and K."""
    widths = {len(row) for row in keys}
    if len(widths) > 1 or 0 in widths:
        raise ValueError("every row needs the same number (at least one) of keys")
    width = widths.pop() if widths else 1
    if mode is not PsiMode.INTERSECTION and width != 1:
        raise ValueError(f"{mode.value} mode takes one key per row")
    if len(keys) * width > _MAX_ELEMENTS:
        raise ValueError(f"at most {_MAX_ELEMENTS} keys per party")
    seen: set[bytes] = set()
    items = []
    for row in keys:
        for key in row:
            if key is not None and not isinstance(key, bytes):
                raise TypeError("keys must be bytes or None")
            if key is None or key in seen:
                items.append(b"\xffdummy" + rng.bytes(32))
            else:
                seen.add(key)
                items.append(key)
    return items, width


def _pack(mode: PsiMode, kind: int, session: bytes, *parts: list[bytes] | RingArray) -> bytes:
    points = [p for p in parts if isinstance(p, list)]
    words = [p for p in parts if not isinstance(p, list)]
    p1 = points[0] if points else []
    p2 = points[1] if len(points) > 1 else []
    w = np.ascontiguousarray(words[0] if words else np.zeros(0, np.uint64), dtype="<u8")
    head = _HEAD.pack(
        _MAGIC, 1, list(PsiMode).index(mode), kind, _tag(session), len(p1), len(p2), w.size
    )
    return b"".join([head, *p1, *p2, w.tobytes()])


def _unpack(
    data: bytes, mode: PsiMode, kind: int, session: bytes
) -> tuple[list[bytes], list[bytes], RingArray]:
    if not isinstance(data, bytes) or len(data) < _HEAD.size:
        raise MessageError("malformed PSI message")
    magic, version, mode_no, msg_kind, tag, n1, n2, nw = _HEAD.unpack_from(data)
    if magic != _MAGIC or version != 1:
        raise MessageError("not a PSI message")
    if mode_no != list(PsiMode).index(mode) or msg_kind != kind or tag != _tag(session):
        raise MessageError("PSI message of another mode, step or session")
    if max(n1, n2, nw) > _MAX_ELEMENTS:
        raise MessageError("PSI message too large")
    if len(data) != _HEAD.size + ELEMENT_BYTES * (n1 + n2) + 8 * nw:
        raise MessageError("PSI message has the wrong length")
    off = _HEAD.size
    blob = memoryview(data)
    p1 = [bytes(blob[off + ELEMENT_BYTES * i : off + ELEMENT_BYTES * (i + 1)]) for i in range(n1)]
    off += ELEMENT_BYTES * n1
    p2 = [bytes(blob[off + ELEMENT_BYTES * i : off + ELEMENT_BYTES * (i + 1)]) for i in range(n2)]
    off += ELEMENT_BYTES * n2
    words = np.frombuffer(data, dtype="<u8", count=nw, offset=off).astype(np.uint64)
    return p1, p2, words


def _reblind(key: BlindingKey, elements: list[bytes]) -> list[bytes]:
    try:
        return key.reblind(elements)
    except InvalidElement as exc:
        raise MessageError(f"PSI message refused: {exc}") from None


class PsiRequester:
    """Party A: sends the request, reads the response, sends the finish message.

    Args:
        keys: one tuple of blocking keys per row (``None`` for a missing key).
        mode: what the parties learn.
        session: the session identifier both parties use (binds messages and the hash).
        rng: randomness for the scalar and dummies (default: OS-seeded).
        mask: ``SHARES`` mode: this party's half of the dealer's shuffle correlation, of
            length ``len(keys)``.
        count_noise: ``CARDINALITY`` mode: integer noise (e.g. discrete Gaussian, drawn by
            the caller for DP) added to the count before it is released; the released
            count is clipped to ``[0, min(sizes)]``. A still computes the exact count;
            B, and every output, see only the noised one.
    """

    def __init__(
        self,
        keys: Keys,
        mode: PsiMode,
        *,
        session: bytes,
        rng: SecureRandom | None = None,
        mask: ShuffleMask | None = None,
        count_noise: int = 0,
    ) -> None:
        if count_noise and mode is not PsiMode.CARDINALITY:
            raise ValueError("count noise is for CARDINALITY mode")
        self._count_noise = int(count_noise)
        self.mode, self.session = mode, session
        self._rng = rng or SecureRandom()
        self._items, self.width = _items(keys, mode, self._rng)
        self.rows = len(keys)
        if (mode is PsiMode.SHARES) != (mask is not None):
            raise ValueError("SHARES mode, and only it, needs the dealer's shuffle mask")
        if mask is not None and (mask.u.shape != (self.rows,) or mask.z.shape != (self.rows,)):
            raise ValueError("the shuffle mask does not match the number of rows")
        self._mask = mask
        self._key = BlindingKey(self._rng)
        self._sent = self._received = 0

    def request(self) -> bytes:
        """The first message (A's blinded keys)."""
        msg = _pack(
            self.mode,
            _REQUEST,
            self.session,
            self._key.blind_items(self._items, _domain(self.session)),
        )
        self._sent += len(msg)
        return msg

    def finish(self, response: bytes) -> tuple[bytes, PsiResult]:
        """Read B's response; return the finish message for B and A's result.

        Raises:
            MessageError: the response is malformed or inconsistent with the request.
        """
        self._received += len(response)
        doubled, theirs, _ = _unpack(response, self.mode, _RESPONSE, self.session)
        if len(doubled) != len(self._items):
            raise MessageError("PSI response does not answer every key")
        if self.mode is not PsiMode.INTERSECTION and len(set(doubled)) != len(doubled):
            raise MessageError("PSI response repeats a value")
        table: dict[bytes, int] = {}
        for j, value in enumerate(_reblind(self._key, theirs)):
            table.setdefault(value, j)
        rows = np.zeros(0, np.int64)
        shares = None
        if self.mode is PsiMode.INTERSECTION:
            if len(theirs) % self.width:
                raise MessageError("PSI response has a partial row")
            mine, their_rows = self._link(doubled, table)
            rows, size = mine, len(mine)
            words = their_rows.astype(np.uint64)
        else:
            member = np.fromiter((v in table for v in doubled), dtype=bool, count=len(doubled))
            size = int(member.sum())
            if self.mode is PsiMode.CARDINALITY:
                size = min(max(size + self._count_noise, 0), len(doubled), len(theirs))
                words = np.array([size], np.uint64)
            else:
                assert self._mask is not None
                words = member.astype(np.uint64) + self._mask.u
                shares = self._mask.z.copy()
        msg = _pack(self.mode, _FINISH, self.session, words)
        self._sent += len(msg)
        return msg, PsiResult(self.mode, size, rows, shares, self._sent, self._received)

    def _link(
        self, doubled: list[bytes], table: dict[bytes, int]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        taken: set[int] = set()
        mine, theirs = [], []
        for r in range(self.rows):
            for p in range(self.width):
                j = table.get(doubled[r * self.width + p])
                if j is not None and j // self.width not in taken:
                    taken.add(j // self.width)
                    mine.append(r)
                    theirs.append(j // self.width)
                    break
        return np.array(mine, np.int64), np.array(theirs, np.int64)


class PsiResponder:
    """Party B: answers the request and reads the finish message.

    Args:
        keys: one tuple of blocking keys per row (as many keys per row as A).
        mode: what the parties learn.
        session: the session identifier both parties use.
        rng: randomness for the scalar, dummies and shuffles (default: OS-seeded).
        correlation: ``SHARES`` mode: this party's half of the dealer's shuffle correlation,
            of length A's number of rows.
    """

    def __init__(
        self,
        keys: Keys,
        mode: PsiMode,
        *,
        session: bytes,
        rng: SecureRandom | None = None,
        correlation: ShuffleCorrelation | None = None,
    ) -> None:
        self.mode, self.session = mode, session
        self._rng = rng or SecureRandom()
        self._items, self.width = _items(keys, mode, self._rng)
        self.rows = len(keys)
        if (mode is PsiMode.SHARES) != (correlation is not None):
            raise ValueError("SHARES mode, and only it, needs the dealer's shuffle correlation")
        self._corr = correlation
        self._key = BlindingKey(self._rng)
        self._requester_keys: int | None = None
        self._sent = self._received = 0

    def respond(self, request: bytes) -> bytes:
        """B's response to A's request.

        Raises:
            MessageError: the request is malformed, or its size does not fit the mode.
        """
        self._received += len(request)
        theirs, _, _ = _unpack(request, self.mode, _REQUEST, self.session)
        if self.mode is not PsiMode.INTERSECTION and len(set(theirs)) != len(theirs):
            raise MessageError("PSI request repeats a value")
        doubled = _reblind(self._key, theirs)
        mine = self._key.blind_items(self._items, _domain(self.session))
        if self.mode is PsiMode.SHARES:
            assert self._corr is not None
            if self._corr.perm.shape != (len(doubled),):
                raise MessageError("the requester's size does not match the dealer's correlation")
            doubled = [doubled[k] for k in self._corr.perm.tolist()]
        elif self.mode is PsiMode.CARDINALITY:
            doubled = [doubled[k] for k in random_permutation(self._rng, len(doubled)).tolist()]
        if self.mode is not PsiMode.INTERSECTION:
            mine = [mine[k] for k in random_permutation(self._rng, len(mine)).tolist()]
        self._requester_keys = len(theirs)
        msg = _pack(self.mode, _RESPONSE, self.session, doubled, mine)
        self._sent += len(msg)
        return msg

    def finish(self, message: bytes) -> PsiResult:
        """B's result from A's finish message.

        Raises:
            MessageError: malformed, out of order, or impossible values (rows out of range,
                a row twice, a count above either size).
        """
        if self._requester_keys is None:
            raise MessageError("PSI finish before the request")
        self._received += len(message)
        _, _, words = _unpack(message, self.mode, _FINISH, self.session)
        rows = np.zeros(0, np.int64)
        shares = None
        size: int | None
        if self.mode is PsiMode.INTERSECTION:
            if np.any(words >= np.uint64(self.rows)) or len(np.unique(words)) != words.size:
                raise MessageError("PSI finish names rows this party does not have")
            rows = words.astype(np.int64)
            size = int(rows.size)
        elif self.mode is PsiMode.CARDINALITY:
            if words.size != 1 or int(words[0]) > min(self.rows, self._requester_keys):
                raise MessageError("PSI finish carries an impossible count")
            size = int(words[0])
        else:
            assert self._corr is not None
            if words.shape != self._corr.e.shape:
                raise MessageError("PSI finish has the wrong number of masked bits")
            shares = words[np.argsort(self._corr.perm)] - self._corr.e
            size = None
        return PsiResult(self.mode, size, rows, shares, self._sent, self._received)


def private_set_intersection(
    requester: Keys,
    responder: Keys,
    mode: PsiMode = PsiMode.INTERSECTION,
    *,
    session: bytes = b"in-process",
    dealer: TrustedDealer | None = None,
    seed: int | None = None,
) -> tuple[PsiResult, PsiResult]:
    """Run both parties in this process (tests, benchmarks, one-machine demos).

    Args:
        requester: the requester's keys per row.
        responder: the responder's keys per row.
        mode: what the parties learn.
        session: the session identifier.
        dealer: ``SHARES`` mode: the two-party dealer (default: a fresh one).
        seed: makes every party's randomness deterministic (tests only).

    Returns:
        The requester's and the responder's results.
    """

    def rng(who: str) -> SecureRandom:
        return SecureRandom(None if seed is None else f"psi/{seed}/{who}".encode())

    mask = corr = None
    if mode is PsiMode.SHARES:
        mask, corr = (dealer or TrustedDealer(2, rng("dealer"))).shuffle_correlation(len(requester))
    a = PsiRequester(requester, mode, session=session, rng=rng("a"), mask=mask)
    b = PsiResponder(responder, mode, session=session, rng=rng("b"), correlation=corr)
    final, result_a = a.finish(b.respond(a.request()))
    return result_a, b.finish(final)
