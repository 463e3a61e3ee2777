"""Generalisation hierarchies for categorical quasi-identifiers."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

ROOT = "*"


@dataclass(frozen=True)
class Hierarchy:
    """A generalisation tree: every value (leaf) has a chain of ancestors up to ``*``.

    Build with :meth:`from_paths` (ARX-style rows: value, then coarser levels),
    :meth:`flat` (value -> ``*``) or :meth:`prefix` (codes such as ZIPs by dropping
    trailing digits).

    Attributes:
        parent: child label -> parent label; the root ``*`` has no entry.
    """

    parent: Mapping[str, str]

    @classmethod
    def from_paths(cls, paths: Mapping[str, Sequence[str]]) -> Hierarchy:
        """From ``{value: [level1, level2, ...]}`` (coarser levels, root optional; a level
        equal to the one below it is skipped).

        Raises:
            ValueError: a label gets two different parents, or a value is its own ancestor.
        """
        parent: dict[str, str] = {}
        for value, levels in paths.items():
            chain = [str(value)]
            for x in [*[str(x) for x in levels if str(x) != ROOT], ROOT]:
                if x != chain[-1]:  # ARX-style rows repeat a label where a level keeps it
                    chain.append(x)
            if len(set(chain)) != len(chain):
                raise ValueError(f"hierarchy path of {value!r} repeats a label")
            for child, par in itertools.pairwise(chain):
                if parent.get(child, par) != par:
                    raise ValueError(
                        f"hierarchy label {child!r} has two parents: {parent[child]!r}, {par!r}"
                    )
                parent[child] = par
        return cls(parent)

    @classmethod
    def flat(cls, values: Iterable[str]) -> Hierarchy:
        """Every value directly under ``*`` (suppression is the only generalisation)."""
        return cls({str(v): ROOT for v in values if str(v) != ROOT})

    @classmethod
    def prefix(cls, values: Iterable[str], keep: Sequence[int] = (3, 1)) -> Hierarchy:
        """Codes generalised by keeping a prefix and masking the rest with ``*``.

        ``keep=(3, 1)`` maps ``02114`` -> ``021**`` -> ``0****`` -> ``*``.
        """
        paths: dict[str, list[str]] = {}
        for v in values:
            s = str(v)
            paths[s] = [s[:n] + "*" * (len(s) - n) for n in keep if n < len(s)]
        return cls.from_paths(paths)

    def ancestors(self, value: str) -> list[str]:
        """``value`` and its ancestors up to ``*``."""
        chain = [value]
        while chain[-1] != ROOT:
            nxt = self.parent.get(chain[-1])
            if nxt is None:
                raise KeyError(f"value {value!r} is not in the hierarchy")
            chain.append(nxt)
        return chain

    def leaves(self) -> list[str]:
        """Labels that are nobody's parent."""
        parents = set(self.parent.values())
        return sorted(v for v in self.parent if v not in parents)


@dataclass
class CompiledHierarchy:
    """Integer form of a :class:`Hierarchy` restricted to observed values (internal)."""

    labels: list[str]
    leaf_codes: dict[str, int]
    n_leaves: int
    anc: npt.NDArray[np.int64]  # [depth, leaf] -> node id at that depth (leaf itself below)
    leaf_count: npt.NDArray[np.int64]  # node id -> number of observed leaves under it
    children: dict[int, list[int]]
    _child_maps: dict[int, npt.NDArray[np.int64]] = field(default_factory=dict)
    _lca_cache: dict[bytes, int] = field(default_factory=dict)

    @classmethod
    def build(cls, hierarchy: Hierarchy, observed: Sequence[str]) -> CompiledHierarchy:
        values = sorted({str(v) for v in observed})
        labels: list[str] = []
        ids: dict[str, int] = {}

        def node(label: str) -> int:
            if label not in ids:
                ids[label] = len(labels)
                labels.append(label)
            return ids[label]

        for v in values:  # leaves get ids 0..L-1
            node(v)
        paths = [list(reversed(hierarchy.ancestors(v))) for v in values]  # root ... leaf
        depth = max(len(p) for p in paths)
        anc = np.empty((depth, len(values)), dtype=np.int64)
        children: dict[int, list[int]] = {}
        for j, path in enumerate(paths):
            path_ids = [node(lab) for lab in path]
            for d in range(depth):
                anc[d, j] = path_ids[min(d, len(path_ids) - 1)]
            for par, ch in itertools.pairwise(path_ids):
                kids = children.setdefault(par, [])
                if ch not in kids:
                    kids.append(ch)
        leaf_count = np.zeros(len(labels), dtype=np.int64)
        for j in range(len(values)):
            for nid in set(anc[:, j].tolist()):
                leaf_count[nid] += 1
        return cls(
            labels=labels,
            leaf_codes={v: i for i, v in enumerate(values)},
            n_leaves=len(values),
            anc=anc,
            leaf_count=leaf_count,
            children=children,
        )

    def lca(self, leaves: npt.NDArray[np.int64]) -> int:
        """Lowest common ancestor of the given leaf codes (repeats allowed)."""
        present = np.bincount(leaves, minlength=self.n_leaves) > 0
        key = present.tobytes()
        cached = self._lca_cache.get(key)
        if cached is not None:
            return cached
        a = self.anc[:, np.flatnonzero(present)]
        same = (a == a[:, :1]).all(axis=1)
        depth = int(same.argmin()) if not same.all() else len(same)
        node = int(a[max(depth - 1, 0), 0])
        self._lca_cache[key] = node
        return node

    def lca_groups(
        self, leaves: npt.NDArray[np.int64], starts: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """LCA per group of a group-sorted leaf array (``starts``: first index of each group)."""
        a = self.anc[:, leaves]
        same = np.minimum.reduceat(a, starts, axis=1) == np.maximum.reduceat(a, starts, axis=1)
        depth = np.where(same.all(axis=0), same.shape[0], same.argmin(axis=0))
        out: npt.NDArray[np.int64] = a[np.maximum(depth - 1, 0), starts]
        return out

    def child_map(self, node: int) -> npt.NDArray[np.int64]:
        """Leaf code -> index of the child of ``node`` containing it (-1 if outside)."""
        cached = self._child_maps.get(node)
        if cached is not None:
            return cached
        out = np.full(self.n_leaves, -1, dtype=np.int64)
        for i, ch in enumerate(self.children.get(node, [])):
            under = np.any(self.anc == ch, axis=0)
            out[under] = i
        self._child_maps[node] = out
        return out
