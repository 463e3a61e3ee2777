"""DP-SGD's secure noise: it comes from the CSPRNG (never torch's generator), it is the
hazmat rounded Gaussian value for value, and it is Gaussian.

Statistical checks use fixed seeds (deterministic). For a random seed the KS tests at
p < 1e-4 would fail with probability 1e-4 each.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tutela.dp.sgd import make_private
from tutela.hazmat.noise import sample_rounded_gaussian32
from tutela.hazmat.noise_buffer import RoundedGaussian32Buffer
from tutela.hazmat.rng import SecureRandom

torch.set_num_threads(1)

SIZES = [0, 1, 2, 7, 32768, 32769, 65541, 100_003]


def _keyed(key: bytes) -> SecureRandom:
    """A SecureRandom whose AES-256-CTR key is ``key`` (to replay a draw's keystream)."""
    rng = SecureRandom(0)
    rng._key = key  # type: ignore[misc]
    return rng


@pytest.mark.parametrize("size", SIZES)
def test_buffered_noise_is_the_hazmat_sampler_value_for_value(size: int) -> None:
    buffer = RoundedGaussian32Buffer(0.9, max(SIZES), rng=SecureRandom(11))
    got = buffer.draw(size).copy()
    key = SecureRandom(11).bytes(32)  # the key the draw took
    want = sample_rounded_gaussian32(0.9, size, rng=_keyed(key), unit="grid")
    assert got.dtype == want.dtype == np.float32
    assert np.array_equal(got, want)


def test_each_draw_takes_a_fresh_key_from_the_csprng() -> None:
    buffer = RoundedGaussian32Buffer(1.0, 1000, rng=SecureRandom(4))
    first = buffer.draw(1000).copy()
    second = buffer.draw(1000).copy()
    assert not np.array_equal(first, second)
    keys = SecureRandom(4)
    keys.bytes(32)
    want = sample_rounded_gaussian32(1.0, 1000, rng=_keyed(keys.bytes(32)), unit="grid")
    assert np.array_equal(second, want)


def test_a_draw_larger_than_the_capacity_is_refused() -> None:
    buffer = RoundedGaussian32Buffer(1.0, 10)
    with pytest.raises(ValueError, match=r"size must be an integer in \[0, 10\]"):
        buffer.draw(11)
    with pytest.raises(ValueError, match="capacity"):
        RoundedGaussian32Buffer(1.0, -1)


def _noise_step(
    sigma: float, rng: SecureRandom | None, *, din: int = 300, dout: int = 200
) -> torch.Tensor:
    """The released gradient of one step whose per-example gradients are all zero."""
    model = nn.Linear(din, dout)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(64, din)
    loader = DataLoader(TensorDataset(x, torch.zeros(64)), batch_size=8)
    _, dp_opt, _ = make_private(
        model, opt, loader, noise_multiplier=sigma, max_grad_norm=1.0, rng=rng,
        loss_reduction="sum",
    )  # fmt: skip
    dp_opt.zero_grad()
    (0.0 * model(x[:8]).sum()).backward()
    dp_opt.privatise_gradients()
    return torch.cat([p.grad.flatten() for p in model.parameters()])  # type: ignore[union-attr]


def test_default_noise_does_not_come_from_torch_generator() -> None:
    # torch.manual_seed fixes torch's default generator: noise drawn from it would repeat
    torch.manual_seed(0)
    first = _noise_step(1.0, None)
    after_first = torch.rand(4)
    torch.manual_seed(0)
    second = _noise_step(1.0, None)
    after_second = torch.rand(4)
    assert float(first.abs().max()) > 1.0  # it is noise, not zero
    assert not torch.equal(first, second)
    # and the step did not draw from torch's generator at all
    torch.manual_seed(0)
    nn.Linear(300, 200)  # what _noise_step draws from torch: the init and the inputs
    torch.randn(64, 300)
    assert torch.equal(torch.rand(4), after_first)
    assert torch.equal(after_first, after_second)


def test_released_noise_is_gaussian_with_the_stated_sigma() -> None:
    sigma = 1.3
    noise = _noise_step(sigma, SecureRandom(21)).double().numpy()
    assert noise.size == 300 * 200 + 200
    assert stats.kstest(noise, stats.norm(scale=sigma).cdf).pvalue > 1e-4
    # the same test tells a 3% wrong scale apart, so it has the power to fail
    assert stats.kstest(noise, stats.norm(scale=sigma * 1.03).cdf).pvalue < 1e-4


def test_buffered_noise_tails_and_scale() -> None:
    sigma = 2.0
    buffer = RoundedGaussian32Buffer(sigma, 400_000, rng=SecureRandom(8))
    values = buffer.draw(400_000).astype(np.float64) * buffer.granularity
    assert stats.kstest(values, stats.norm(scale=sigma).cdf).pvalue > 1e-4
    # tails: P(|x| > 3 sigma) = 0.0027; binomial sd sqrt(400000 * 0.0027) ~ 33
    beyond = int((np.abs(values) > 3 * sigma).sum())
    assert abs(beyond - 400_000 * 0.0027) < 5 * math.sqrt(400_000 * 0.0027)
    assert np.all(np.abs(values) < 8.7 * sigma)


def test_the_replay_key_helper_matches_secure_random_seeding() -> None:
    # _keyed must mirror SecureRandom's key derivation, or the equality tests prove nothing
    seed_key = hashlib.sha256(b"tutela.hazmat.rng.SecureRandom/v1\x00" + bytes([5])).digest()
    assert _keyed(seed_key).bytes(64) == SecureRandom(5).bytes(64)


@pytest.mark.parametrize("size", [1, 7, 32769, 65541])
def test_adding_on_the_grid_equals_rounding_then_adding_a_draw(size: int) -> None:
    x = (np.random.default_rng(size).standard_normal(size) * 3).astype(np.float32)
    fused = RoundedGaussian32Buffer(1.1, 70_000, rng=SecureRandom(5))
    separate = RoundedGaussian32Buffer(1.1, 70_000, rng=SecureRandom(5))
    g = fused.granularity
    y = x.copy()
    assert fused.add_on_grid(y, g / 7)
    want = (np.rint(x * np.float32(1 / g)) + separate.draw(size)) * np.float32(g / 7)
    assert np.array_equal(y, want)


def test_adding_on_the_grid_refuses_values_float32_cannot_hold_exactly() -> None:
    buffer = RoundedGaussian32Buffer(1.0, 100, rng=SecureRandom(6))
    x = np.zeros(100, dtype=np.float32)
    x[17] = np.float32(2.0**22 * buffer.granularity)  # |x/g| = 2**22: sums would round
    before = x.copy()
    assert not buffer.add_on_grid(x, 1.0)
    assert np.array_equal(x, before)
    # nothing was drawn: the next draw is the first key's
    want = sample_rounded_gaussian32(1.0, 100, rng=_keyed(SecureRandom(6).bytes(32)), unit="grid")
    assert np.array_equal(buffer.draw(100), want)
    with pytest.raises(ValueError, match="contiguous 1-D float32"):
        buffer.add_on_grid(np.zeros(10), 1.0)
