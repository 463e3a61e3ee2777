"""The SecAgg+ neighbour graph: a randomly relabelled Harary graph H(k, m).

The m clients that advertised keys are placed on a ring in a pseudo-random order and each is
joined to the k/2 nearest clients on either side (k even), or to everyone when k >= m - 1.
The order is derived from a hash of the round id and of every signed key advertisement, so
every client computes the same graph locally and the server cannot pick it freely (it can
only grind by withholding advertisements, which costs it clients).

Security: H(k, m) is k-connected, so removing fewer than k clients (colluders and dropouts
together) cannot split the honest survivors into parts whose separate sums the server would
learn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

__all__ = ["graph_seed", "neighbours"]

_DOMAIN = b"tutela.secagg.graph/v1|"


def graph_seed(round_id: bytes, signed_advertisements: Iterable[bytes]) -> bytes:
    """SHA-256 over the round id and the advertisements' signed bytes (in id order)."""
    h = hashlib.sha256(_DOMAIN + round_id)
    for blob in signed_advertisements:
        h.update(len(blob).to_bytes(4, "big") + blob)
    return h.digest()


def neighbours(ids: Iterable[int], k: int, seed: bytes) -> Mapping[int, frozenset[int]]:
    """Each id's neighbours in the relabelled Harary graph of degree k over ``ids``."""
    members = sorted(set(ids))
    m = len(members)
    if m < 2:
        return {i: frozenset() for i in members}
    if k >= m - 1:
        everyone = frozenset(members)
        return {i: everyone - {i} for i in members}
    half = (k + 1) // 2
    ring = sorted(members, key=lambda i: hashlib.sha256(seed + i.to_bytes(8, "big")).digest())
    out: dict[int, frozenset[int]] = {}
    for p, i in enumerate(ring):
        near = {ring[(p + j) % m] for j in range(1, half + 1)}
        near |= {ring[(p - j) % m] for j in range(1, half + 1)}
        out[i] = frozenset(near)
    return out
