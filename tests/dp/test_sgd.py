"""DP-SGD: ghost norms and clipped sums against exact per-example gradients, noise scale,
Poisson sampling, the validator, and an unchanged training loop.

Statistical checks use fixed seeds (deterministic); for a random seed the noise-scale
z-tests at |z| < 5 would fail with probability below 6e-7.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tutela.dp.accounting import AccountantKind, compute_epsilon, dpsgd_event
from tutela.dp.sgd import (
    Clipping,
    PoissonDataLoader,
    UnsupportedModuleError,
    make_private,
    validate,
)
from tutela.dp.sgd.engine import _Engine
from tutela.hazmat.noise import rounded_gaussian32_granularity
from tutela.hazmat.rng import SecureRandom

D = torch.float64
# tiny tensors: intra-op threads only add contention on a shared machine
torch.set_num_threads(1)


class Twice(nn.Module):
    """The same Linear used twice per forward (weight sharing)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.tanh(self.lin(x)))


class Scale(nn.Module):
    """A custom leaf module with its own parameter (takes the torch.func path)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(n, dtype=D))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w + torch.sin(x) * self.w**2


CASES: dict[str, tuple[Callable[[], nn.Module], Callable[[int], torch.Tensor], str]] = {
    "linear_2d": (lambda: nn.Linear(5, 3), lambda b: torch.randn(b, 5, dtype=D), "ghost"),
    "linear_seq_gram": (lambda: nn.Linear(6, 4), lambda b: torch.randn(b, 3, 6, dtype=D), "ghost"),
    "linear_seq_long": (lambda: nn.Linear(2, 2), lambda b: torch.randn(b, 9, 2, dtype=D), "ghost"),
    "linear_4d": (
        lambda: nn.Linear(3, 2, bias=False),
        lambda b: torch.randn(b, 2, 3, 3, dtype=D),
        "ghost",
    ),
    "conv1d": (
        lambda: nn.Conv1d(3, 4, 3, padding=1, stride=2),
        lambda b: torch.randn(b, 3, 11, dtype=D),
        "ghost",
    ),
    "conv2d": (
        lambda: nn.Conv2d(2, 3, (3, 2), padding=(1, 0), stride=(2, 1), dilation=(1, 2)),
        lambda b: torch.randn(b, 2, 7, 6, dtype=D),
        "ghost",
    ),
    "conv2d_long": (
        lambda: nn.Conv2d(1, 1, 2),
        lambda b: torch.randn(b, 1, 9, 9, dtype=D),
        "ghost",
    ),
    "embedding": (
        lambda: nn.Embedding(7, 4, padding_idx=0),
        lambda b: torch.randint(0, 7, (b, 12)),  # repeated tokens and padding
        "ghost",
    ),
    "layernorm_2d": (lambda: nn.LayerNorm(6), lambda b: torch.randn(b, 6, dtype=D), "ghost"),
    "layernorm_seq": (lambda: nn.LayerNorm(5), lambda b: torch.randn(b, 4, 5, dtype=D), "ghost"),
    "groupnorm": (
        lambda: nn.GroupNorm(2, 4),
        lambda b: torch.randn(b, 4, 5, dtype=D),
        "per_sample",
    ),
    "grouped_conv": (
        lambda: nn.Conv1d(4, 4, 3, groups=2),
        lambda b: torch.randn(b, 4, 8, dtype=D),
        "per_sample",
    ),
    "custom": (lambda: Scale(5), lambda b: torch.randn(b, 5, dtype=D), "per_sample"),
    "shared_linear": (Twice, lambda b: torch.randn(b, 4, dtype=D), "ghost"),
}


def _loss(out: torch.Tensor) -> torch.Tensor:
    # a non-linear per-example loss, mean-reduced over the batch
    flat = out.reshape(out.shape[0], -1).to(D)
    return (flat.pow(2).sum(1) + flat.sum(1).sin()).mean()


# every layer on its default path; the all-torch.func mode on a representative subset
# (each new module type costs a torch.func trace)
PARAMS = [(c, Clipping.GHOST) for c in sorted(CASES)] + [
    (c, Clipping.PER_SAMPLE) for c in ("conv2d", "embedding", "layernorm_seq", "linear_seq_gram")
]


@pytest.mark.parametrize(("case", "clipping"), PARAMS)
def test_norms_and_clipped_sums_match_exact_per_example_gradients(
    case: str, clipping: Clipping
) -> None:
    torch.manual_seed(sorted(CASES).index(case))
    make, inputs, path = CASES[case]
    module = make().to(D)
    b = 6
    x = inputs(b)
    params = list(module.parameters())
    exact = []
    for i in range(b):
        module.zero_grad()
        _loss(module(x[i : i + 1])).backward()
        exact.append([p.grad.clone() for p in params])  # type: ignore[union-attr]
    exact_norms = torch.stack([torch.sqrt(sum(g.pow(2).sum() for g in e)) for e in exact])

    plans = validate(module, clipping)
    assert {p.path for p in plans} == (
        {"per_sample"} if clipping is Clipping.PER_SAMPLE else {path}
    )
    engine = _Engine(module, plans, "mean")
    module.zero_grad()
    _loss(module(x)).backward()
    clip = float(exact_norms.median())  # some examples are clipped, some are not
    sums, norms = engine.clipped_sums(clip)
    engine.remove()
    assert torch.allclose(norms, exact_norms, rtol=1e-5, atol=0)
    factors = (clip / (exact_norms + 1e-6)).clamp(max=1)
    for j, p in enumerate(params):
        want = sum(factors[i] * exact[i][j] for i in range(b))
        assert torch.allclose(sums[p], want, rtol=1e-5, atol=1e-12), case


def test_validator_rejects_batchnorm_with_a_fix() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with pytest.raises(UnsupportedModuleError, match="GroupNorm"):
        validate(model)


def test_validator_rejects_parameters_it_cannot_attribute() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pos = nn.Parameter(torch.zeros(4))
            self.lin = nn.Linear(4, 4)

    with pytest.raises(UnsupportedModuleError, match="leaf module"):
        validate(Block())
    with pytest.raises(UnsupportedModuleError, match="no trainable"):
        validate(nn.ReLU())


def test_validator_reports_each_layer_path() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.GroupNorm(2, 4), nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    plans = validate(model)
    assert [(p.name, p.path, p.parameters) for p in plans] == [
        ("0", "ghost", 16),
        ("1", "per_sample", 8),
        ("2", "ghost", 2),
    ]


def _loader(n: int = 400, batch: int = 40, dim: int = 10) -> DataLoader[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=batch)


def test_noise_has_the_right_scale_and_lies_on_the_grid() -> None:
    torch.manual_seed(0)
    model = nn.Linear(100, 100)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    z, c = 1.3, 0.7
    private = make_private(
        model, opt, _loader(dim=100), noise_multiplier=z, max_grad_norm=c, rng=SecureRandom(5),
        loss_reduction="sum",
    )  # fmt: skip
    model, dp_opt, loader = private
    x, _ = next(iter(loader))
    dp_opt.zero_grad()
    (0.0 * model(x).sum()).backward()  # every per-example gradient is zero
    dp_opt.privatise_gradients()
    noise = torch.cat([p.grad.flatten() for p in model.parameters()])  # type: ignore[union-attr]
    n = noise.numel()
    sigma = z * c
    assert abs(float(noise.mean())) / (sigma / math.sqrt(n)) < 5
    assert abs(float(noise.std()) - sigma) / (sigma / math.sqrt(2 * n)) < 5
    g = rounded_gaussian32_granularity(sigma)
    assert torch.equal(torch.round(noise.double() / g), noise.double() / g)
    assert dp_opt.effective_noise_multiplier < z
    assert dp_opt.effective_noise_multiplier == pytest.approx(z / (1 + g * math.sqrt(n) / c))


def test_clipping_bounds_each_example_contribution() -> None:
    torch.manual_seed(1)
    model = nn.Linear(10, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model, dp_opt, _ = make_private(
        model, opt, _loader(), noise_multiplier=1e-9, max_grad_norm=0.5, loss_reduction="sum",
        rng=torch.Generator().manual_seed(0),
    )  # fmt: skip
    x = torch.randn(1, 10) * 100
    dp_opt.zero_grad()
    model(x).pow(2).sum().backward()
    dp_opt.privatise_gradients()
    norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))  # type: ignore[union-attr]
    assert norm == pytest.approx(0.5, rel=1e-4)
    assert float(dp_opt.last_norms[0]) > 100


def test_torch_generator_makes_noise_reproducible_and_secure_rng_too() -> None:
    def run(rng: SecureRandom | torch.Generator) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Linear(10, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        model, dp_opt, loader = make_private(
            model, opt, _loader(), noise_multiplier=1.0, max_grad_norm=1.0, rng=rng
        )
        for x, y in loader:
            dp_opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            dp_opt.step()
        return model.weight.detach().clone()

    assert torch.equal(run(torch.Generator().manual_seed(3)), run(torch.Generator().manual_seed(3)))
    assert torch.equal(run(SecureRandom(3)), run(SecureRandom(3)))
    assert not torch.equal(run(SecureRandom(3)), run(SecureRandom(4)))


def test_poisson_loader_batches_vary_and_can_be_empty() -> None:
    ds = TensorDataset(torch.arange(1000).float().unsqueeze(1))
    loader = PoissonDataLoader(ds, 0.05, 200, rng=SecureRandom(2))
    sizes = [len(b[0]) for b in loader]
    assert len(sizes) == 200
    mean = sum(sizes) / len(sizes)
    # each size is Binomial(1000, 0.05): mean 50, sd of the mean sqrt(47.5 / 200)
    assert abs(mean - 50) / math.sqrt(47.5 / 200) < 5
    assert len(set(sizes)) > 10
    tiny = PoissonDataLoader(ds, 1e-4, 50, rng=SecureRandom(2))
    batches = list(tiny)
    assert any(len(b[0]) == 0 for b in batches)
    assert all(b[0].shape[1:] == (1,) for b in batches)


class DictDataset(Dataset[dict[str, torch.Tensor]]):
    def __len__(self) -> int:
        return 30

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": torch.full((3,), float(i)), "y": torch.tensor(i % 2)}


def test_poisson_loader_empty_batch_keeps_structure_for_any_dataset() -> None:
    loader = PoissonDataLoader(DictDataset(), 1e-6, 3, rng=SecureRandom(0))
    batch = next(iter(loader))
    assert batch["x"].shape == (0, 3)
    assert batch["y"].shape == (0,)
    full = PoissonDataLoader(DictDataset(), 1.0, 1, rng=SecureRandom(0))
    assert next(iter(full))["x"].shape == (30, 3)


def test_empty_batch_step_adds_noise_and_counts() -> None:
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model, dp_opt, _ = make_private(model, opt, _loader(), noise_multiplier=1.0, max_grad_norm=1.0)
    before = model.weight.detach().clone()
    dp_opt.zero_grad()
    x, y = torch.zeros(0, 10), torch.zeros(0, dtype=torch.long)
    nn.functional.cross_entropy(model(x), y).backward()  # mean of nothing: nan
    dp_opt.step()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())  # type: ignore[arg-type]
    assert not torch.equal(model.weight, before)
    assert dp_opt.steps_taken == 1


def test_unchanged_training_loop_learns_and_reports_epsilon() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    private = make_private(
        model, opt, _loader(), noise_multiplier=0.8, max_grad_norm=1.0, rng=SecureRandom(1),
        accountant=AccountantKind.RDP,
    )  # fmt: skip
    model, optimizer, loader = private
    for _ in range(4):
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    data = _loader().dataset
    x_all, y_all = data.tensors  # type: ignore[attr-defined]
    with torch.no_grad():
        acc = (model(x_all).argmax(1) == y_all).float().mean()
    assert acc > 0.85
    steps = 4 * 10
    assert optimizer.steps_taken == steps
    z_eff = optimizer.effective_noise_multiplier
    expected = compute_epsilon(dpsgd_event(z_eff, 0.1, steps), 1e-5, AccountantKind.RDP)
    assert private.epsilon(1e-5) == pytest.approx(expected, rel=1e-9)
    private.detach()
    assert "forward" not in vars(model[0])


def test_target_epsilon_is_met_after_all_epochs() -> None:
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    # full-batch (q = 1) keeps the PLD calibration cheap; Poisson sampling is tested above
    private = make_private(
        model, opt, _loader(batch=400), target_epsilon=2.0, delta=1e-5, epochs=30,
        max_grad_norm=1.0,
    )  # fmt: skip
    model, dp_opt, loader = private
    for _ in range(30):
        for x, y in loader:
            dp_opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            dp_opt.step()
    eps = private.epsilon(1e-5)
    assert eps <= 2.0
    assert eps > 1.95  # the smallest noise that meets the target, not a lot more


def test_bad_arguments() -> None:
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        make_private(model, opt, _loader(), max_grad_norm=1.0)
    with pytest.raises(ValueError, match="epochs"):
        make_private(model, opt, _loader(), max_grad_norm=1.0, target_epsilon=1.0)
    other = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="optimiser"):
        make_private(model, other, _loader(), max_grad_norm=1.0, noise_multiplier=1.0)


def test_large_sums_take_the_exact_float64_grid_path() -> None:
    torch.manual_seed(2)
    model = nn.Linear(3, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model, dp_opt, _ = make_private(
        model, opt, _loader(dim=3), noise_multiplier=1e-3, max_grad_norm=1.0,
        loss_reduction="sum", rng=SecureRandom(9),
    )  # fmt: skip
    x = torch.ones(40, 3) * 10  # every example's gradient points the same way
    dp_opt.zero_grad()
    model(x).sum().backward()
    dp_opt.privatise_gradients()
    # clipped sum: 40 unit vectors along (1, 1, 1) / sqrt(3); noise std 1e-3
    want = torch.full((1, 3), 40 / math.sqrt(3))
    assert torch.allclose(model.weight.grad, want, atol=6e-3)  # type: ignore[arg-type]
    assert 2.0**22 * dp_opt.granularity < 40  # the float32 shortcut would not be exact


def test_gradient_accumulation_is_refused_not_silently_wrong() -> None:
    model = nn.Sequential(nn.Linear(10, 4), nn.GroupNorm(2, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model, dp_opt, _ = make_private(model, opt, _loader(), noise_multiplier=1.0, max_grad_norm=1.0)
    x = torch.randn(5, 10)
    model(x).sum().backward()
    with pytest.raises(UnsupportedModuleError, match="accumulation"):
        model(x).sum().backward()
    dp_opt.zero_grad()  # drops the captured batch; training goes on
    model(x).sum().backward()
    dp_opt.step()
    with torch.no_grad():
        model(x)  # evaluation never captures
    assert dp_opt._engine.captures == {}
