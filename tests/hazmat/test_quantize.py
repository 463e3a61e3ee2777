"""Fixed point, stochastic rounding and the no-wrap bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.hazmat.masks import mask_dtype
from tutela.hazmat.quantize import (
    FixedPoint,
    bytes_per_element,
    check_no_wrap,
    from_modular,
    max_scale,
    noise_headroom,
    pack,
    stochastic_round,
    to_modular,
    unpack,
)
from tutela.hazmat.rng import SecureRandom


def test_stochastic_round_known_answers() -> None:
    rng = SecureRandom(1)
    # integers and exact halves of a power-of-two scale stay put / go to a neighbour
    z = stochastic_round(np.array([0.0, 1.0, -3.0, 2.5, -2.5]), 1.0, rng=rng)
    assert list(z[:3]) == [0, 1, -3]
    assert z[3] in (2, 3) and z[4] in (-3, -2)
    assert list(stochastic_round(np.array([0.25]), 4.0, rng=rng)) == [1]


def test_stochastic_round_is_unbiased() -> None:
    # mean of 200k roundings of 0.3 has std sqrt(0.21/200000) ~ 1.0e-3; 6 std bound
    # (false-failure rate < 1e-8)
    z = stochastic_round(np.full(200_000, 0.3), 1.0, rng=SecureRandom(2))
    assert set(np.unique(z)) == {0, 1}
    assert abs(z.mean() - 0.3) < 6.2e-3
    neg = stochastic_round(np.full(200_000, -7.75), 1.0, rng=SecureRandom(3))
    assert set(np.unique(neg)) == {-8, -7}
    assert abs(neg.mean() + 7.75) < 6e-3


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50),
    exp=st.integers(-4, 20),
    seed=st.integers(0, 1000),
)
def test_rounding_moves_less_than_one_step(values: list[float], exp: int, seed: int) -> None:
    scale = math.ldexp(1.0, exp)
    v = np.array(values)
    z = stochastic_round(v, scale, rng=SecureRandom(seed))
    assert np.all(np.abs(z - v * scale) < 1.0)


def test_large_values_take_the_float_path() -> None:
    v = np.array([2.0**40 + 0.5, -(2.0**40) - 0.5])
    z = stochastic_round(v, 1.0, rng=SecureRandom(4))
    assert np.all(np.abs(z - v) < 1.0)


def test_rejects_non_finite() -> None:
    with pytest.raises(ValueError):
        stochastic_round(np.array([1.0, np.nan]), 1.0, rng=SecureRandom(5))
    with pytest.raises(ValueError):
        FixedPoint(1.0, 4.0, 32).encode(np.array([np.inf]), rng=SecureRandom(5))


def test_fixed_point_clips_and_bounds() -> None:
    fp = FixedPoint(clip=2.0, scale=8.0, modulus_bits=16)
    z = fp.encode(np.array([100.0, -100.0, 1.0]), rng=SecureRandom(6))
    assert list(z[:2]) == [16, -16] and z[2] == 8
    assert fp.client_bound == 16
    assert np.all(np.abs(fp.encode(np.array([5.0, -5.0]), rng=SecureRandom(6), factor=0.5)) <= 8)


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(8, 64), data=st.data())
def test_modular_round_trip_and_packing(bits: int, data: st.DataObject) -> None:
    half = 1 << (bits - 1)
    ints = data.draw(st.lists(st.integers(-half, half - 1), min_size=0, max_size=40))
    z = np.array(ints, dtype=np.int64)
    words = to_modular(z, bits)
    assert words.dtype == mask_dtype(bits)
    assert np.array_equal(from_modular(words, bits), z)
    blob = pack(words, bits)
    assert len(blob) == bytes_per_element(bits) * len(ints)
    assert np.array_equal(unpack(blob, len(ints), bits), words)


def test_unpack_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        unpack(b"\x00" * 5, 2, 16)
    # 12-bit words packed in 2 bytes: a word >= 2**12 is out of range
    with pytest.raises(ValueError):
        unpack(b"\xff\xff", 1, 12)


def test_no_wrap_bound_holds_just_below_and_fails_at_the_edge() -> None:
    # n * B + H < 2**(b-1)
    check_no_wrap(4, 31, 8, 3)  # 124 + 3 = 127 < 128
    with pytest.raises(ValueError, match="could wrap"):
        check_no_wrap(4, 31, 8, 4)  # 128


def test_extreme_sums_at_the_bound_decode_exactly() -> None:
    bits, n = 12, 7
    scale = max_scale(n, 1.0, bits)
    fp = FixedPoint(1.0, scale, bits)
    check_no_wrap(n, fp.client_bound, bits)
    with pytest.raises(ValueError):
        check_no_wrap(n, FixedPoint(1.0, 2 * scale, bits).client_bound, bits)
    for sign in (1.0, -1.0):
        total = np.zeros(3, dtype=mask_dtype(bits))
        for _ in range(n):
            total += to_modular(fp.encode(np.full(3, sign * 5.0), rng=SecureRandom(7)), bits)
        assert np.all(from_modular(total, bits) == sign * n * fp.client_bound)


def test_max_scale_accounts_for_noise_headroom() -> None:
    quiet = max_scale(100, 1.0, 32)
    noisy = max_scale(100, 1.0, 32, noise_std_per_client=0.5, dim=1000)
    assert noisy < quiet
    fp = FixedPoint(1.0, noisy, 32)
    h = noise_headroom((0.5 * noisy) ** 2, 100, 1000)
    check_no_wrap(100, fp.client_bound, 32, h)
    with pytest.raises(ValueError):
        max_scale(1000, 1.0, 8)


def test_noise_headroom_tail() -> None:
    assert noise_headroom(0, 10, 10) == 0
    # tau = sqrt(2 ln(2 d / beta)); d = 1, beta = 2**-40 -> tau ~ 7.49
    assert noise_headroom(1.0, 1, 1) == math.ceil(math.sqrt(2 * math.log(2 / 2.0**-40)))


@pytest.mark.parametrize("bits", [8, 12, 16, 31, 32, 33, 40, 63, 64])
def test_modular_extremes_round_trip(bits: int) -> None:
    half = 1 << (bits - 1)
    z = np.array([-half, -half + 1, -1, 0, 1, half - 1], dtype=np.int64)
    words = to_modular(z, bits)
    assert int(words.max()) < 1 << bits
    assert np.array_equal(from_modular(words, bits), z)
    assert np.array_equal(unpack(pack(words, bits), z.shape[0], bits), words)
