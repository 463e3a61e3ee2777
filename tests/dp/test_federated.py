"""Client-level DP for FL: clipping, noise on the sum, quorum, adaptive clipping, events.

Statistical checks use fixed seeds (deterministic); for a random seed each z-test at
|z| < 5 would fail with probability below 6e-7.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tutela.dp.accounting import AccountantKind, compute_epsilon
from tutela.dp.events import GaussianEvent, PoissonSampledEvent, SelfComposedEvent
from tutela.dp.federated import (
    AdaptiveClipper,
    add_gaussian_noise,
    calibrate_client_level,
    check_quorum,
    clip_update,
    combined_noise_multiplier,
    dp_fedavg_event,
    sample_clients,
    update_norm,
)
from tutela.errors import QuorumNotMet
from tutela.hazmat.noise import rounded_gaussian64_granularity
from tutela.hazmat.rng import SecureRandom

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float32, st.integers(1, 20), elements=finite),
    arrays(np.float64, (3, 2), elements=finite),
    st.floats(1e-3, 1e3),
)
def test_clip_update_bounds_the_norm_and_keeps_direction(
    a: np.ndarray, b: np.ndarray, clip: float
) -> None:
    update = {"a": a, "b": b}
    clipped, norm = clip_update(update, clip)
    assert norm == pytest.approx(update_norm(update))
    assert update_norm(clipped) <= clip
    assert clipped["a"].dtype == np.float32
    if norm <= clip:
        np.testing.assert_array_equal(clipped["a"], a)
        np.testing.assert_array_equal(clipped["b"], b)
    elif norm > 0:
        scale = clip / norm
        np.testing.assert_allclose(clipped["b"], b * scale, rtol=1e-5, atol=1e-30)
    assert a.tolist() == update["a"].tolist()  # the input is not modified


def test_clip_update_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        clip_update({"a": np.ones(2)}, 0.0)
    with pytest.raises(ValueError):
        clip_update({"a": np.array([np.nan])}, 1.0)


def test_noise_on_the_sum_has_std_z_times_c_and_is_on_the_grid() -> None:
    z, c = 1.2, 0.5
    agg = {"w": np.full((200, 100), 0.1234567), "b": np.zeros(7)}
    noisy = add_gaussian_noise(agg, z * c, rng=SecureRandom(3))
    noise = np.concatenate([(noisy["w"] - agg["w"]).ravel(), noisy["b"]])
    n = noise.size
    sigma = z * c
    assert abs(noise.mean()) / (sigma / math.sqrt(n)) < 5
    assert abs(noise.std() - sigma) / (sigma / math.sqrt(2 * n)) < 5
    g = rounded_gaussian64_granularity(sigma)
    for arr in noisy.values():
        np.testing.assert_array_equal(np.rint(arr / g), arr / g)
    again = add_gaussian_noise(agg, z * c, rng=SecureRandom(3))
    np.testing.assert_array_equal(again["w"], noisy["w"])


def test_quorum_is_refused_not_warned() -> None:
    check_quorum(10, 10)
    with pytest.raises(QuorumNotMet, match="refused"):
        check_quorum(9, 10)


def test_sample_clients_rate() -> None:
    ids = [f"c{i}" for i in range(20_000)]
    chosen = sample_clients(ids, 0.1, rng=SecureRandom(4))
    assert set(chosen) <= set(ids)
    assert abs(len(chosen) - 2000) / math.sqrt(20_000 * 0.09) < 5


def test_adaptive_clipper_tracks_the_median() -> None:
    rng = np.random.default_rng(0)  # client update norms (data, not privacy noise)
    clipper = AdaptiveClipper(
        clip_norm=0.1, target_quantile=0.5, learning_rate=0.3, count_noise_std=2.0,
        expected_clients=100, rng=SecureRandom(5),
    )  # fmt: skip
    for _ in range(150):
        norms = rng.lognormal(mean=math.log(3.0), sigma=0.3, size=100)
        clipper.update([clipper.indicator(n) for n in norms])
    assert clipper.clip_norm == pytest.approx(3.0, rel=0.15)  # median of the norms
    assert len(clipper.history) == 150


def test_adaptive_clipper_events_include_the_count() -> None:
    clipper = AdaptiveClipper(clip_norm=1.0, count_noise_std=5.0, expected_clients=50)
    z_u = clipper.update_noise_multiplier(1.0)
    assert z_u > 1.0
    assert combined_noise_multiplier(z_u, 5.0) == pytest.approx(1.0)
    event = clipper.round_event(z_u, 0.01)
    assert isinstance(event, PoissonSampledEvent)
    assert event.sampling_rate == 0.01
    assert isinstance(event.event, GaussianEvent)
    assert event.event.noise_multiplier == pytest.approx(1.0)
    # releasing the count costs privacy: the same update noise alone gives less epsilon
    rdp = AccountantKind.RDP
    alone = compute_epsilon(
        SelfComposedEvent(PoissonSampledEvent(0.01, GaussianEvent(z_u)), 100), 1e-5, rdp
    )
    both = compute_epsilon(SelfComposedEvent(event, 100), 1e-5, rdp)
    assert both > alone
    with pytest.raises(ValueError):
        clipper.update([2])
    with pytest.raises(ValueError):
        AdaptiveClipper(clip_norm=1.0, count_noise_std=0.1).update_noise_multiplier(1.0)


def test_calibrate_client_level_on_both_sides() -> None:
    rdp = AccountantKind.RDP
    z = calibrate_client_level(3.0, 1e-5, 50, 1000, 100, accountant=rdp, tolerance=2e-3)
    assert compute_epsilon(dp_fedavg_event(z, 0.05, 100), 1e-5, rdp) <= 3.0
    assert compute_epsilon(dp_fedavg_event(z * 0.996, 0.05, 100), 1e-5, rdp) > 3.0


def test_calibrate_client_level_carves_out_the_count() -> None:
    # every client in every round (q = 1) keeps this calibration cheap
    z = calibrate_client_level(3.0, 1e-5, 100, 100, 50)
    z_u = calibrate_client_level(3.0, 1e-5, 100, 100, 50, count_noise_std=10.0)
    assert z_u > z  # the count's share costs the update some noise budget
    with_count = dp_fedavg_event(z_u, 1.0, 50, count_noise_std=10.0)
    assert compute_epsilon(with_count, 1e-5) <= 3.0
    assert combined_noise_multiplier(z_u, 10.0) == pytest.approx(z, rel=2e-3)
    with pytest.raises(ValueError, match="count_noise_std"):
        calibrate_client_level(3.0, 1e-5, 100, 100, 50, count_noise_std=0.01)


def test_dp_fedavg_event_shapes_and_grid_term() -> None:
    assert dp_fedavg_event(1.0, 1.0, 1) == GaussianEvent(1.0)
    ev = dp_fedavg_event(1.0, 0.1, 5, dimension=10**6)
    assert isinstance(ev, SelfComposedEvent)
    inner = ev.event
    assert isinstance(inner, PoissonSampledEvent)
    assert isinstance(inner.event, GaussianEvent)
    assert 1.0 - 1e-8 < inner.event.noise_multiplier < 1.0
