"""What a party runs over its :class:`~tutela.server.agent.smpc.SmpcChannel`: PSI, the dealer.

Each function drives one party's side of a protocol from :mod:`tutela.smpc` (pure message
objects) over the session's end-to-end encrypted relay, and reports what it released to the
coordinator's audit record when done.

PSI parties are ``parties[0]`` (the requester) and ``parties[1]`` (the responder); in
``SHARES`` mode ``parties[2]`` is the dealer, a separate service that holds no data, sees no
message between the two parties (it holds no key for them) and sends each its half of the
shuffle correlation.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from tutela.errors import ProtocolAbort
from tutela.hazmat.rng import SecureRandom
from tutela.server.agent.smpc import SmpcChannel
from tutela.smpc.dealer import ShuffleCorrelation, ShuffleMask, TrustedDealer
from tutela.smpc.psi import PsiMode, PsiRequester, PsiResponder, PsiResult

__all__ = ["psi_function", "run_psi", "serve_psi_dealer"]

_U64 = np.dtype("<u8")


def psi_function(mode: PsiMode) -> str:
    """The session function name of a PSI mode."""
    return f"psi-{mode.value}"


def _words(*arrays: np.ndarray) -> bytes:
    return b"".join(
        struct.pack(">I", a.size) + np.ascontiguousarray(a, dtype=_U64).tobytes() for a in arrays
    )


def _unwords(data: bytes, count: int) -> list[np.ndarray]:
    out, off = [], 0
    for _ in range(count):
        if len(data) < off + 4:
            raise ProtocolAbort("malformed dealer message")
        (n,) = struct.unpack_from(">I", data, off)
        off += 4
        if len(data) < off + 8 * n:
            raise ProtocolAbort("malformed dealer message")
        out.append(np.frombuffer(data, dtype=_U64, count=n, offset=off).astype(np.uint64))
        off += 8 * n
    if off != len(data):
        raise ProtocolAbort("malformed dealer message")
    return out


def run_psi(
    channel: SmpcChannel,
    keys: Sequence[Sequence[bytes | None]],
    mode: PsiMode,
    *,
    rng: SecureRandom | None = None,
) -> PsiResult:
    """This party's side of PSI over ``channel`` (requester or responder by its position).

    Raises:
        ProtocolAbort: a peer went missing or sent something malformed (the session is
            aborted, naming it).
        ValueError: this site is the dealer, or the keys do not fit the mode.
    """
    parties = list(channel.parties)
    requester, responder = parties[0], parties[1]
    session = channel.session.encode()
    if channel.site == requester:
        mask = None
        if mode is PsiMode.SHARES:
            dealer = parties[2]
            channel.send("dealer-size", dealer, struct.pack(">Q", len(keys)))
            u, z = _unwords(channel.receive("dealer-mask", dealer), 2)
            mask = ShuffleMask(u, z)
        a = PsiRequester(keys, mode, session=session, rng=rng, mask=mask)
        channel.send("psi-request", responder, a.request())
        final, result = a.finish(channel.receive("psi-response", responder))
        channel.send("psi-finish", responder, final)
    elif channel.site == responder:
        corr = None
        if mode is PsiMode.SHARES:
            perm, e = _unwords(channel.receive("dealer-correlation", parties[2]), 2)
            if not np.array_equal(np.sort(perm), np.arange(perm.size, dtype=np.uint64)):
                channel.abort([parties[2]], "its shuffle correlation is not a permutation")
            corr = ShuffleCorrelation(perm.astype(np.int64), e)
        b = PsiResponder(keys, mode, session=session, rng=rng, correlation=corr)
        response = b.respond(channel.receive("psi-request", requester))
        channel.send("psi-response", requester, response)
        result = b.finish(channel.receive("psi-finish", requester))
    else:
        raise ValueError("the dealer runs serve_psi_dealer, not run_psi")
    channel.finish(
        {
            "function": channel.function,
            "released_to_this_party": {
                PsiMode.INTERSECTION: "linked rows",
                PsiMode.CARDINALITY: "intersection size",
                PsiMode.SHARES: "membership shares"
                + (" and size" if result.size is not None else ""),
            }[mode],
            "size": result.size,
        }
    )
    return result


def serve_psi_dealer(channel: SmpcChannel, *, rng: SecureRandom | None = None) -> int:
    """The dealer's side of SHARES-mode PSI: one shuffle correlation of the requester's size.

    Returns:
        The correlation's length.
    """
    parties = list(channel.parties)
    if channel.site != parties[2]:
        raise ValueError("the dealer is the third party of a SHARES-mode PSI session")
    data = channel.receive("dealer-size", parties[0])
    if len(data) != 8:
        channel.abort([parties[0]], "its size message is malformed")
    n = int(struct.unpack(">Q", data)[0])
    if n > 1 << 24:
        channel.abort([parties[0]], "it asked for more than 2**24 rows")
    mask, corr = TrustedDealer(2, rng).shuffle_correlation(n)
    channel.send("dealer-mask", parties[0], _words(mask.u, mask.z))
    channel.send("dealer-correlation", parties[1], _words(corr.perm.astype(np.uint64), corr.e))
    channel.finish({"function": channel.function, "released_to_this_party": "nothing"})
    return n
