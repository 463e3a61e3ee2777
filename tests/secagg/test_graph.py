"""The neighbour graph: regular, symmetric, shared by everyone, and k-connected."""

from __future__ import annotations

import itertools

from tutela.secagg.graph import graph_seed, neighbours


def _connected(nodes: set[int], graph: dict[int, frozenset[int]]) -> bool:
    if not nodes:
        return True
    start = next(iter(nodes))
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph[todo.pop()] & nodes:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen == nodes


def test_graph_is_regular_symmetric_and_deterministic() -> None:
    seed = graph_seed(bytes(32), [b"a", b"b"])
    ids = list(range(3, 40, 3))
    g = dict(neighbours(ids, 4, seed))
    assert g == dict(neighbours(reversed(ids), 4, seed))
    assert all(len(v) == 4 and i not in v for i, v in g.items())
    assert all(i in g[j] for i, v in g.items() for j in v)
    other = dict(neighbours(ids, 4, graph_seed(bytes(32), [b"a", b"c"])))
    assert other != g  # a different advertisement set relabels the ring


def test_k_at_least_m_minus_1_is_complete() -> None:
    g = neighbours(range(5), 4, bytes(32))
    assert all(v == frozenset(range(5)) - {i} for i, v in g.items())


def test_removing_fewer_than_k_nodes_never_disconnects() -> None:
    # H(k, m) is k-connected: check every removal of k - 1 nodes for m = 10, k = 4
    g = dict(neighbours(range(10), 4, graph_seed(bytes(32), [])))
    for removed in itertools.combinations(range(10), 3):
        assert _connected(set(range(10)) - set(removed), g)
    # and the bound is tight for some removal of k nodes (a ring cut)
    assert not all(
        _connected(set(range(10)) - set(r), g) for r in itertools.combinations(range(10), 4)
    )
