"""RFC 6962 / RFC 9162 Merkle tree hashing, compact ranges, inclusion and consistency proofs.

Definitions (RFC 9162 §2.1, SHA-256)::

    MTH({})       = SHA-256()
    MTH({d0})     = SHA-256(0x00 || d0)                         leaf hash
    MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  k = largest power of 2 < n

Proof generation follows RFC 6962 §2.1.1 (``PATH``) and §2.1.2 (``PROOF``/``SUBPROOF``);
verification follows the iterative algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2. Indices
are zero-based. All functions here work on leaf *hashes*.

Security:
    SHA-256 with the 0x00/0x01 domain separation of the RFC, so a leaf can never be
    presented as an interior node (second-preimage resistance of the tree).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "MerkleTree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_leaves",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_SIZE = 32


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    if hi - lo == 1:
        return leaves[lo]
    k = _split(hi - lo)
    return node_hash(_mth(leaves, lo, lo + k), _mth(leaves, lo + k, hi))


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """Tree head of the given leaf hashes (``EMPTY_ROOT`` when there are none)."""
    if not leaves:
        return EMPTY_ROOT
    return CompactRange.from_leaves(leaves).root()


class CompactRange:
    """The frontier of a growing tree: one subtree hash per set bit of the size.

    Appending a leaf merges equal-sized subtrees (amortised O(1), worst case O(log n))
    and the root is a fold over at most ``log2(n)`` hashes, so an append-only log never
    needs its old leaves to extend the tree or compute the current tree head.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise ValueError("size must be non-negative")
        if len(hashes) != size.bit_count():
            raise ValueError("a compact range holds one hash per set bit of its size")
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError("hashes must be 32 bytes")
        self._size = size
        self._hashes = list(hashes)  # largest subtree first

    @classmethod
    def from_leaves(cls, leaves: Sequence[bytes]) -> CompactRange:
        """Frontier of a tree with the given leaf hashes."""
        rng = cls()
        for leaf in leaves:
            rng.append(leaf)
        return rng

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Subtree hashes, largest (leftmost) first."""
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        """An independent copy."""
        return CompactRange(self._size, self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        hashes = self._hashes
        node = leaf
        size = self._size
        while size & 1:
            node = node_hash(hashes.pop(), node)
            size >>= 1
        hashes.append(node)
        self._size += 1

    def root(self) -> bytes:
        """Current tree head (RFC MTH of all leaves so far)."""
        if not self._hashes:
            return EMPTY_ROOT
        node = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            node = node_hash(left, node)
        return node

    def to_bytes(self) -> bytes:
        """The subtree hashes concatenated (the size is stored alongside)."""
        return b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, size: int, raw: bytes) -> CompactRange:
        """Inverse of :meth:`to_bytes`."""
        if len(raw) % HASH_SIZE:
            raise ValueError("compact range bytes must be a multiple of 32")
        return cls(size, [raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE)])


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """Audit path ``PATH(index, D[0:size])`` (RFC 6962 §2.1.1), bottom-up.

    Raises:
        ValueError: ``index`` not in ``[0, size)`` or ``size`` beyond the leaves given.
    """
    n = len(leaves) if size is None else size
    if not 0 < n <= len(leaves) or not 0 <= index < n:
        raise ValueError(f"no leaf {index} in a tree of size {n}")
    return _path(lambda lo, hi: _mth(leaves, lo, hi), index, n)


def consistency_proof(
    leaves: Sequence[bytes], old_size: int, new_size: int | None = None
) -> list[bytes]:
    """Consistency proof ``PROOF(old_size, D[0:new_size])`` (RFC 6962 §2.1.2).

    Empty when ``old_size == new_size``.

    Raises:
        ValueError: not ``0 < old_size <= new_size <= len(leaves)``.
    """
    n = len(leaves) if new_size is None else new_size
    if not 0 < old_size <= n <= len(leaves):
        raise ValueError(f"no consistency proof from size {old_size} to {n}")
    return _proof(lambda lo, hi: _mth(leaves, lo, hi), old_size, n)


def _path(mth: Callable[[int, int], bytes], index: int, n: int) -> list[bytes]:
    """``PATH(index, D[0:n])`` with ``mth(lo, hi)`` giving ``MTH(D[lo:hi])``."""
    path: list[bytes] = []
    lo, hi, m = 0, n, index
    # Walk down; collect siblings top-down, then reverse to the RFC's bottom-up order.
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(mth(lo + k, hi))
            hi = lo + k
        else:
            path.append(mth(lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def _proof(mth: Callable[[int, int], bytes], old_size: int, n: int) -> list[bytes]:
    """``PROOF(old_size, D[0:n])`` with ``mth(lo, hi)`` giving ``MTH(D[lo:hi])``."""
    if old_size == n:
        return []
    proof: list[bytes] = []
    lo, hi, m, complete = 0, n, old_size, True
    while True:
        if m == hi - lo:
            if not complete:
                proof.append(mth(lo, hi))
            break
        k = _split(hi - lo)
        if m <= k:
            proof.append(mth(lo + k, hi))
            hi = lo + k
        else:
            proof.append(mth(lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    proof.reverse()
    return proof


class MerkleTree:
    """Every leaf hash of an append-only tree and the hash of every complete subtree.

    A subtree of ``2**h`` leaves starting at a multiple of ``2**h`` is stored once, when its
    last leaf arrives, so the hash of any range the RFC's proofs ask for is a fold of at
    most ``2 log2(n)`` stored hashes: roots, inclusion and consistency proofs of any size up
    to :attr:`size` cost O(log n) instead of rehashing all n leaves, and appending is
    amortised O(1). Memory: about 64 bytes per leaf (each level packed in one buffer).

    Example:
        >>> tree = MerkleTree([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])
        >>> tree.root() == root_from_leaves([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])
        True
    """

    __slots__ = ("_levels",)

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0]) // HASH_SIZE

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash, and every subtree it completes.

        Raises:
            ValueError: not a 32-byte hash.
        """
        if len(leaf) != HASH_SIZE:
            raise ValueError("leaf hashes are 32 bytes")
        levels, node, h = self._levels, bytes(leaf), 0
        while True:
            level = levels[h]
            level += node
            if (len(level) // HASH_SIZE) & 1:
                return
            node = node_hash(bytes(level[-2 * HASH_SIZE : -HASH_SIZE]), bytes(level[-HASH_SIZE:]))
            h += 1
            if h == len(levels):
                levels.append(bytearray())

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        if not 0 <= index < self.size:
            raise IndexError(f"no leaf {index} in a tree of size {self.size}")
        return bytes(self._levels[0][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:  # a complete subtree: stored
            start = (lo // n) * HASH_SIZE
            return bytes(self._levels[n.bit_length() - 1][start : start + HASH_SIZE])
        k = _split(n)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """Tree head of the first ``size`` leaves (default: all; ``EMPTY_ROOT`` for none).

        Raises:
            ValueError: ``size`` beyond the tree.
        """
        n = self.size if size is None else size
        if not 0 <= n <= self.size:
            raise ValueError(f"no tree of size {n} in a tree of size {self.size}")
        return EMPTY_ROOT if n == 0 else self._mth(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """As :func:`inclusion_proof` over this tree's leaves, in O(log n)."""
        n = self.size if size is None else size
        if not 0 < n <= self.size or not 0 <= index < n:
            raise ValueError(f"no leaf {index} in a tree of size {n}")
        return _path(self._mth, index, n)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """As :func:`consistency_proof` over this tree's leaves, in O(log n)."""
        n = self.size if new_size is None else new_size
        if not 0 < old_size <= n <= self.size:
            raise ValueError(f"no consistency proof from size {old_size} to {n}")
        return _proof(self._mth, old_size, n)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check an inclusion proof (RFC 9162 §2.1.3.2). Returns ``False`` on any mismatch."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check a consistency proof (RFC 9162 §2.1.4.2). Returns ``False`` on any mismatch."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and hmac.compare_digest(old_root, new_root)
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)
