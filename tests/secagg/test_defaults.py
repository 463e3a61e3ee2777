"""Robust defaults: random 10% dropout at n=100 completes every round."""

from __future__ import annotations

import hashlib

import numpy as np

from tutela.hazmat.rng import SecureRandom
from tutela.secagg import DropoutPlan, SecAggConfig, choose_neighbors, secure_sum
from tutela.secagg.config import ACTIVE_STAGES
from tutela.secagg.graph import neighbours


def test_default_neighbourhood_at_n100() -> None:
    # k ~ 3.3 log2 n and t > k/2; any 10 dropouts leave every client t live neighbours
    assert choose_neighbors(100, 0.1, 2.0**-20) == (22, 12)
    k, t = choose_neighbors(500, 0.1, 2.0**-20)
    assert k < 40 and t == k // 2 + 1
    assert choose_neighbors(5, 0.1, 2.0**-20) == (4, 3)  # small n: complete graph


def _completes(n: int, k: int, t: int, plan: DropoutPlan, seed: bytes) -> bool:
    """The server's success conditions, evaluated on the real neighbour graph."""
    min_survivors = n - n // 10
    u1 = set(range(n)) - plan.advertise_keys
    u2 = u1 - plan.share_keys
    u3 = u2 - plan.masked_input
    u4 = u3 - plan.unmask
    if min(len(u1), len(u2), len(u3), len(u4)) < min_survivors:
        return False
    graph = neighbours(u1, k, seed)
    # masked input: t live neighbours; unmask: t neighbours answering for every secret
    return all(len(graph[u] & u2) >= t and len(graph[u] & u4) >= t for u in u2)


def test_defaults_survive_random_10_percent_dropout_in_1000_trials() -> None:
    n = 100
    k, t = choose_neighbors(n, 0.1, 2.0**-20)
    rng = SecureRandom(2024)
    ok = flower_like_ok = 0
    trials = 1000
    for trial in range(trials):
        plan = DropoutPlan.random(range(n), 0.1, rng=rng)
        seed = hashlib.sha256(trial.to_bytes(4, "big")).digest()
        ok += _completes(n, k, t, plan, seed)
        # Flower's example settings: 3 shares (2 neighbours), threshold 2, drops after
        # share_keys
        late = DropoutPlan(
            masked_input=plan.advertise_keys | plan.share_keys | plan.masked_input | plan.unmask
        )
        flower_like_ok += _completes(n, 2, 2, late, seed)
    assert ok == trials
    assert flower_like_ok < trials * 0.5  # the same check does fail for fragile settings


def test_full_round_at_n100_with_random_dropout() -> None:
    seed = 1
    xs = {i: np.random.default_rng(seed * 100 + i).uniform(-1, 1, 8) for i in range(100)}
    plan = DropoutPlan.random(range(100), 0.1, rng=SecureRandom(seed))
    assert plan.total == 10
    res = secure_sum(xs, None, SecAggConfig(), dropouts=plan, rng=SecureRandom(seed))
    assert len(res.survivors) == 100 - sum(len(plan.drops_at(s)) for s in ACTIVE_STAGES[:3])
    plain = sum(xs[i] for i in res.survivors)
    assert np.abs(res.total - plain).max() <= res.quantization_error_bound
    rep = res.report()
    assert rep["k"] == 22 and rep["threshold"] == 12 and rep["robustness_failure_bound"] == 0.0
