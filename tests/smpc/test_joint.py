"""The secure sum behind joint statistics: exact totals, uniform views, refused messages.

Statistical checks use fixed seeds; each would fail for a fresh seed with probability 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tutela.hazmat.ring import FixedPoint64
from tutela.hazmat.rng import SecureRandom
from tutela.smpc import wire
from tutela.smpc.joint import (
    SecureSum,
    StatsSpec,
    histogram_quantiles,
    local_vector,
    statistics_from_total,
)

ALPHA = 1e-6
SPEC = StatsSpec(("age", "bmi"), (120.0, 80.0), "age", (0.0, 30.0, 60.0, 120.0))


def _run(vectors: list[np.ndarray], seed: int = 0) -> tuple[list[np.ndarray], list[dict]]:
    """Every party's total, and every message each party received (its view)."""
    n = len(vectors)
    parties = [
        SecureSum(i, n, vectors[0].size, rng=SecureRandom(f"{seed}/{i}".encode())) for i in range(n)
    ]
    round1 = [p.share(v) for p, v in zip(parties, vectors, strict=True)]
    inbox1 = [{i: round1[i][j] for i in range(n) if i != j} for j in range(n)]
    round2 = [p.combine(inbox1[j]) for j, p in enumerate(parties)]
    inbox2 = [{i: round2[i][j] for i in range(n) if i != j} for j in range(n)]
    totals = [p.reveal(inbox2[j]) for j, p in enumerate(parties)]
    return totals, [{**inbox1[j], **{-i - 1: m for i, m in inbox2[j].items()}} for j in range(n)]


def _tables(seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"age": rng.uniform(0, 110, n), "bmi": rng.uniform(15, 45, n)} for n in (120, 80, 200)]


def test_joint_statistics_equal_the_pooled_table() -> None:
    tables = _tables(1)
    fxp = FixedPoint64()
    totals, _ = _run([fxp.encode(local_vector(t, SPEC)) for t in tables])
    assert all(np.array_equal(totals[0], t) for t in totals[1:])
    out = statistics_from_total(totals[0], SPEC)
    pooled = np.stack(
        [np.concatenate([t["age"] for t in tables]), np.concatenate([t["bmi"] for t in tables])]
    )
    assert out["count"] == pytest.approx(400, abs=1e-4)
    mean = out["mean"]
    assert isinstance(mean, dict)
    assert mean["age"] == pytest.approx(pooled[0].mean(), abs=1e-4)
    assert np.allclose(out["covariance"], np.cov(pooled), atol=1e-2, rtol=1e-5)
    hist = out["histogram"]
    assert isinstance(hist, dict)
    assert np.allclose(hist["counts"], np.histogram(pooled[0], bins=[0, 30, 60, 120])[0], atol=1e-4)


def test_every_message_a_party_receives_is_uniform() -> None:
    """Party 0's view (shares of the others' vectors and of the total) looks the same whether
    the others hold zeros or large values: uniform 64-bit words either way."""
    length = 2000
    for label, value in (("zeros", 0), ("large", 1 << 40)):
        vectors = [np.full(length, value, np.uint64) for _ in range(3)]
        _, views = _run(vectors, seed=7)
        for sender, message in views[0].items():
            if sender >= 0:  # round-1 shares of another party's vector
                words = wire.decode(message, sender=sender, step=1, shape=(length,))
                top = np.bincount((words >> np.uint64(56)).astype(np.int64), minlength=256)
                assert stats.chisquare(top).pvalue > ALPHA, label
                low = (words & np.uint64(0xFF)).astype(np.int64)
                assert stats.chisquare(np.bincount(low, minlength=256)).pvalue > ALPHA, label


def test_missing_or_misaddressed_shares_are_refused() -> None:
    a, b = SecureSum(0, 2, 3), SecureSum(1, 2, 3)
    from_b = b.share(np.zeros(3, np.uint64))[0]
    a.share(np.zeros(3, np.uint64))
    with pytest.raises(wire.MessageError, match="no share from party 1"):
        a.combine({})
    with pytest.raises(wire.MessageError):
        a.combine({1: wire.encode(0, 1, np.zeros(3, np.uint64))})  # claims the wrong sender
    with pytest.raises(wire.MessageError):
        a.combine({1: from_b[:-8]})
    a.combine({1: from_b})
    with pytest.raises(wire.MessageError, match="from party 1"):
        a.reveal({})


def test_bad_tables_and_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="beyond its bound"):
        local_vector({"age": [130.0], "bmi": [20.0]}, SPEC)
    with pytest.raises(ValueError, match="outside the histogram"):
        local_vector({"age": [-1.0], "bmi": [20.0]}, SPEC)
    with pytest.raises(ValueError, match="no column"):
        local_vector({"age": [1.0]}, SPEC)
    with pytest.raises(ValueError, match="increasing"):
        StatsSpec(("a",), (1.0,), "a", (1.0, 0.0))
    with pytest.raises(ValueError, match="bound per column"):
        StatsSpec(("a", "b"), (1.0,))


def test_quantiles_from_the_joint_histogram_are_within_one_bin_of_numpy() -> None:
    """Three parties' ages; quantiles read off the secure histogram (exact and DP-noised
    totals) against numpy's on the pooled rows, within the bin width."""
    rng = np.random.default_rng(11)
    ages = [rng.gamma(6.0, 7.0, size=n).clip(0, 119) for n in (150, 220, 90)]
    levels = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
    edges = tuple(float(e) for e in np.arange(0, 121, 5))
    spec = StatsSpec(("age",), (120.0,), "age", edges, levels)
    fxp = FixedPoint64()
    totals, _ = _run([fxp.encode(local_vector({"age": a}, spec)) for a in ages])
    out = statistics_from_total(totals[0], spec)
    quantiles = out["quantiles"]
    assert isinstance(quantiles, dict)
    expected = np.quantile(np.concatenate(ages), levels)
    assert np.all(np.abs(np.asarray(quantiles["values"]) - expected) <= 5.0)
    assert quantiles["error_bound"] == 5.0
    # noise on the counts (post-processing keeps the guarantee): still near, clipped at zero
    counts = np.asarray(out["histogram"]["counts"]) + rng.normal(0, 2.0, len(edges) - 1)  # type: ignore[index]
    noisy = histogram_quantiles(edges, counts, levels[1:-1])
    assert np.all(np.abs(noisy - expected[1:-1]) <= 10.0)
    with pytest.raises(ValueError, match="need a histogram"):
        StatsSpec(("age",), (120.0,), quantiles=(0.5,))
    with pytest.raises(ValueError, match="empty"):
        histogram_quantiles((0.0, 1.0), [0.0], (0.5,))
