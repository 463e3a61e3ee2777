"""Distributed DP: per-client discrete Gaussian noise sized for the minimum survivors."""

from __future__ import annotations

import math

import numpy as np

from tutela.hazmat.rng import SecureRandom
from tutela.secagg import DropoutPlan, SecAggConfig, Stage, secure_sum


def test_sum_carries_the_target_noise_for_min_survivors() -> None:
    n, dim, target = 10, 3000, 3.0
    xs = {i: np.zeros(dim) for i in range(n)}
    cfg = SecAggConfig(ddp_sigma=target, clip=1.0, dropout_tolerance=0.2)
    plan = DropoutPlan.at(Stage.MASKED_INPUT, [4])
    res = secure_sum(xs, None, cfg, dropouts=plan, rng=SecureRandom(7))
    d = res.ddp()
    assert d["enabled"] and d["min_survivors"] == 8 and d["survivors"] == 9
    # variance rounded up to an integer number of steps^2: never below the target
    assert target <= d["guaranteed_sigma"] <= target * 1.001
    assert math.isclose(d["effective_sigma"], d["sigma_per_client"] * math.sqrt(9))
    # sample std of 3000 coordinates: relative sd ~ 1/sqrt(6000) = 1.3%; 6 sd band
    # (false-failure rate < 1e-8)
    std = float(res.total.std())
    assert abs(std / d["effective_sigma"] - 1) < 0.078
    assert abs(float(res.total.mean())) < 6 * d["effective_sigma"] / math.sqrt(dim)
    rep = res.report()
    assert rep["ddp"]["guaranteed_sigma"] == d["guaranteed_sigma"]


def test_noise_is_added_by_clients_not_the_server() -> None:
    # without DDP the same round is exact to the quantisation bound; with it, it is not
    xs = {i: np.full(500, 0.5) for i in range(6)}
    quiet = secure_sum(xs, None, SecAggConfig(clip=1.0), rng=SecureRandom(8))
    assert np.abs(quiet.total - 3.0).max() <= quiet.quantization_error_bound
    noisy = secure_sum(xs, None, SecAggConfig(clip=1.0, ddp_sigma=0.5), rng=SecureRandom(8))
    assert np.abs(noisy.total - 3.0).max() > 10 * noisy.quantization_error_bound
    assert noisy.params.noise_variance > 0
