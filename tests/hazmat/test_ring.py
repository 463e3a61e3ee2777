"""Z_{2^64} fixed point and additive sharing: round trips and uniformity of shares.

Statistical tests use fixed seeds; for a fresh seed each chi-square check would fail with
probability 1e-6 (the stated false-failure rate).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tutela.hazmat.ring import FixedPoint64, additive_share, random_ring, reconstruct, to_signed
from tutela.hazmat.rng import SecureRandom

ALPHA = 1e-6
N_SAMPLES = 20_000


def _top_byte_pvalue(words: np.ndarray) -> float:
    counts = np.bincount((words >> np.uint64(56)).astype(np.int64), minlength=256)
    return float(stats.chisquare(counts).pvalue)


def _low_byte_pvalue(words: np.ndarray) -> float:
    counts = np.bincount((words & np.uint64(0xFF)).astype(np.int64), minlength=256)
    return float(stats.chisquare(counts).pvalue)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-(2.0**40), 2.0**40), min_size=1, max_size=20), st.integers(1, 22))
def test_fixed_point_round_trip_within_half_ulp(values, frac_bits) -> None:
    fx = FixedPoint64(frac_bits)
    x = np.asarray(values)
    x = x[np.abs(x) <= fx.max_abs]
    assert np.all(np.abs(fx.decode(fx.encode(x)) - x) <= 2.0 ** -(frac_bits + 1) * (1 + 1e-9))


def test_fixed_point_rejects_bad_input() -> None:
    fx = FixedPoint64(20)
    with pytest.raises(ValueError):
        fx.encode([np.nan])
    with pytest.raises(ValueError):
        fx.encode([fx.max_abs * 2])
    with pytest.raises(ValueError):
        FixedPoint64(0)
    assert fx.resolution == 2.0**-20 and fx.product_max_abs == 2.0**22


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=10))
def test_shares_reconstruct(n_parties, secret) -> None:
    s = np.array(secret, dtype=np.uint64)
    shares = additive_share(s, n_parties, SecureRandom(1))
    assert len(shares) == n_parties
    assert np.array_equal(reconstruct(shares), s)


@pytest.mark.parametrize("secret", [0, 2**63 + 12345, 2**64 - 1])
def test_every_share_and_every_n_minus_1_sum_is_uniform(secret) -> None:
    rng = SecureRandom(b"uniformity" + secret.to_bytes(8, "big"))
    shares = additive_share(np.full(N_SAMPLES, secret, dtype=np.uint64), 3, rng)
    views = [*shares, shares[0] + shares[1], shares[1] + shares[2], shares[0] + shares[2]]
    for view in views:
        assert _top_byte_pvalue(view) > ALPHA
        assert _low_byte_pvalue(view) > ALPHA


def test_share_distribution_does_not_depend_on_the_secret() -> None:
    a = additive_share(np.zeros(N_SAMPLES, dtype=np.uint64), 3, SecureRandom(7))
    b = additive_share(np.full(N_SAMPLES, 2**63 + 99, dtype=np.uint64), 3, SecureRandom(8))
    for i in range(3):
        table = np.stack(
            [
                np.bincount((a[i] >> np.uint64(56)).astype(np.int64), minlength=256),
                np.bincount((b[i] >> np.uint64(56)).astype(np.int64), minlength=256),
            ]
        )
        assert stats.chi2_contingency(table).pvalue > ALPHA


def test_the_uniformity_test_has_power() -> None:
    """A sharing that leaks (party 0 gets secret + small noise) fails the same check."""
    noise = (SecureRandom(3).uint64(N_SAMPLES) >> np.uint64(60)).astype(np.uint64)
    leaky = np.full(N_SAMPLES, 2**63, dtype=np.uint64) + noise
    assert _top_byte_pvalue(leaky) < ALPHA


def test_argument_checks_and_signed_view() -> None:
    with pytest.raises(ValueError):
        additive_share(np.zeros(2, dtype=np.uint64), 1, SecureRandom(1))
    with pytest.raises(ValueError):
        additive_share(np.zeros(2, dtype=np.int64), 2, SecureRandom(1))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        reconstruct([])
    assert to_signed(np.array([2**64 - 1], dtype=np.uint64))[0] == -1
    assert random_ring(SecureRandom(1), (2, 3)).shape == (2, 3)
