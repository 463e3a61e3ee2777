"""DP-SGD through make_private against torch.func: whole models, tied weights, sensitivity.

The reference is torch.func (vmap + grad) over the whole model, run on a copy taken before
make_private; the private side is the real optimiser path (loader, forward, backward,
privatise_gradients) with negligible noise (z = 1e-12, torch.Generator). Everything runs in
float64 so a 1e-5 relative tolerance checks the maths, not rounding.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from tutela.dp.sgd import make_private, validate

D = torch.float64
torch.set_num_threads(1)

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TokenModel(nn.Module):
    """Embedding, a sequence Linear, a Conv1d over positions, then a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 6, padding_idx=0)
        self.mix = nn.Linear(6, 6)
        self.conv = nn.Conv1d(6, 4, 3, padding=1)
        self.out = nn.Linear(4, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.mix(self.emb(ids)))  # (B, T, 6)
        h = torch.relu(self.conv(h.transpose(1, 2)))  # (B, 4, T): channels, not the batch
        return self.out(h.mean(2))


class TiedLM(nn.Module):
    """A tiny language model whose output projection is the embedding matrix."""

    def __init__(self, vocab: int = 9, dim: int = 5) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.emb(ids)))  # (B, T, vocab)


def _ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y)


def _token_ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # the mean over every token is the mean over examples of each example's token mean
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def _mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor, Loss]:
    model = nn.Sequential(
        nn.Linear(6, 16), nn.ReLU(inplace=True), nn.Linear(16, 16), nn.LayerNorm(16),
        nn.Tanh(), nn.Linear(16, 3),
    )  # fmt: skip
    return model, torch.randn(10, 6, dtype=D), torch.randint(0, 3, (10,)), _ce


def _convnet() -> tuple[nn.Module, torch.Tensor, torch.Tensor, Loss]:
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(),
        nn.Conv2d(4, 3, 2, stride=2), nn.Flatten(), nn.Linear(3 * 3 * 3, 3),
    )  # fmt: skip
    return model, torch.randn(10, 2, 6, 6, dtype=D), torch.randint(0, 3, (10,)), _ce


def _tokens() -> tuple[nn.Module, torch.Tensor, torch.Tensor, Loss]:
    return TokenModel(), torch.randint(0, 11, (10, 7)), torch.randint(0, 3, (10,)), _ce


def _tied() -> tuple[nn.Module, torch.Tensor, torch.Tensor, Loss]:
    return TiedLM(), torch.randint(0, 9, (10, 6)), torch.randint(0, 9, (10, 6)), _token_ce


MODELS = {"mlp": _mlp, "convnet": _convnet, "tokens": _tokens, "tied": _tied}


def _reference(
    model: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-example gradients of the whole model by torch.func (tied weights counted once)."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def one(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(model, p, (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0))

    grads: dict[str, torch.Tensor] = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(
        params, x, y
    )
    return grads


def _private_sum(
    model: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor, clip: float
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The clipped sum and per-example norms through make_private's own loop (q = 1)."""
    loader = DataLoader(TensorDataset(x, y), batch_size=len(x))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    model, dp_opt, loader = make_private(
        model, opt, loader, noise_multiplier=1e-12, max_grad_norm=clip,
        rng=torch.Generator().manual_seed(0),
    )  # fmt: skip
    xb, yb = next(iter(loader))
    dp_opt.zero_grad()
    loss_fn(model(xb), yb).backward()
    dp_opt.privatise_gradients()
    sums = {n: p.grad * dp_opt.expected_batch_size for n, p in model.named_parameters()}  # type: ignore[operator]
    return sums, dp_opt.last_norms


@pytest.mark.parametrize("case", sorted(MODELS))
def test_clipped_sums_match_torch_func_per_example_gradients(case: str) -> None:
    torch.manual_seed(sorted(MODELS).index(case))
    model, x, y, loss_fn = MODELS[case]()
    model = model.to(D)
    grads = _reference(copy.deepcopy(model), loss_fn, x, y)
    norms = torch.sqrt(sum(g.reshape(len(x), -1).pow(2).sum(1) for g in grads.values()))
    clip = float(norms.median())  # some examples are clipped, some are not
    factors = (clip / (norms + 1e-6)).clamp(max=1)

    sums, got_norms = _private_sum(model, loss_fn, x, y, clip)

    assert torch.allclose(got_norms, norms, rtol=1e-5, atol=0)
    assert set(sums) == set(grads)
    for name, g in grads.items():
        want = torch.einsum("b...,b->...", g, factors)
        assert torch.allclose(sums[name], want, rtol=1e-5, atol=1e-10), name


def test_tied_weights_take_the_per_sample_path_and_say_so() -> None:
    plans = {p.name: p for p in validate(TiedLM())}
    assert plans["emb"].tied_with == ("head",)
    assert plans["head"].tied_with == ("emb",)
    assert plans["emb"].path == plans["head"].path == "per_sample"
    assert plans["norm"].path == "ghost"
    assert plans["norm"].tied_with == ()


@pytest.mark.parametrize("case", ["tied", "tokens"])
def test_removing_one_example_moves_the_clipped_sum_by_at_most_the_clip_norm(case: str) -> None:
    torch.manual_seed(7)
    model, x, y, loss_fn = MODELS[case]()
    model = model.to(D)
    clip = 0.05  # small enough that every example is clipped to exactly this norm
    full, norms = _private_sum(copy.deepcopy(model), loss_fn, x, y, clip)
    assert bool((norms > clip).all())
    for k in (0, 4, 9):
        keep = torch.arange(len(x)) != k
        rest, _ = _private_sum(copy.deepcopy(model), loss_fn, x[keep], y[keep], clip)
        moved = torch.sqrt(sum((full[n] - rest[n]).pow(2).sum() for n in full))
        assert float(moved) <= clip * (1 + 1e-9)
        assert float(moved) == pytest.approx(clip, rel=1e-4)  # a clipped example moves it by C
