"""DP-SGD for any PyTorch module: one entry point, drop-in objects, fast per-example clipping.

:func:`make_private` returns a module, optimiser and data loader that work in an unchanged
training loop::

    private = make_private(model, optimizer, loader, noise_multiplier=1.1, max_grad_norm=1.0)
    model, optimizer, loader = private
    for x, y in loader:                     # Poisson-sampled batches (maybe empty)
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()     # mean-reduced loss, as usual
        optimizer.step()                    # clip per example, add noise, account, update
    private.epsilon(1e-5)

Per-example gradient norms come from the layers' inputs and output gradients ("ghost"
norms: Linear via ||a|| ||g|| for 2-D inputs or Gram matrices for sequences, Conv via
unfold, Embedding via a token-equality Gram matrix, LayerNorm directly from its small
per-example gradients); the clipped sum sum_i c_i grad_i is then formed from the same
stored tensors, without materialising B copies of the gradient. Linear layers run through
a custom autograd function that skips autograd's own (unclipped, wasted) weight gradient.
Any other leaf module with parameters uses exact ``torch.func`` (vmap + grad) per-example
gradients. :func:`validate` says which path each layer takes and rejects BatchNorm (it
mixes examples, so per-example clipping is void).

Privacy: each optimiser step is the sampled Gaussian mechanism: every record is in the
batch independently with probability q (Poisson sampling), each example's gradient is
clipped to L2 norm ``max_grad_norm`` = C, and Gaussian noise of standard deviation z C
(from the CSPRNG by default) is added to the sum. One step is
``PoissonSampledEvent(q, GaussianEvent(z_eff))`` under add/remove-one-record neighbours,
where z_eff = z C / (C + g sqrt(d)) accounts for rounding the sum to the noise grid g
(d = number of trainable parameters); z_eff = z with a ``torch.Generator`` (which is
reproducible but not secure). The secure noise is
:func:`~tutela.hazmat.noise.sample_rounded_gaussian32`: the Gaussian rounded to g, with
its tail cut at 8.65 sigma (about 5e-18 of mass per coordinate, not added to delta).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as nnf
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tutela.dp.accounting import (
    AccountantKind,
    PLDAccountant,
    RDPAccountant,
    calibrate_noise_multiplier,
    make_accountant,
)
from tutela.dp.events import GaussianEvent, PoissonSampledEvent
from tutela.errors import PrivacyError
from tutela.hazmat.noise import rounded_gaussian32_granularity, sample_rounded_gaussian32
from tutela.hazmat.rng import SecureRandom

__all__ = [
    "Clipping",
    "DPOptimizer",
    "LayerPlan",
    "PoissonDataLoader",
    "PrivateTraining",
    "UnsupportedModuleError",
    "make_private",
    "validate",
]

_NORM_EPS = 1e-6


class Clipping(enum.Enum):
    """How per-example gradient norms are computed."""

    GHOST = "ghost"  # norms without per-example gradients where a layer allows it
    PER_SAMPLE = "per_sample"  # exact torch.func per-example gradients for every layer


class UnsupportedModuleError(PrivacyError):
    """The module cannot be trained with per-example clipping as it is (says how to fix)."""


@dataclass(frozen=True, slots=True)
class LayerPlan:
    """How one parameterised layer is clipped."""

    name: str
    module_type: str
    path: Literal["ghost", "per_sample"]
    parameters: int


_GHOST_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding, nn.LayerNorm)
_BATCHNORM = (nn.modules.batchnorm._BatchNorm, nn.SyncBatchNorm)


def _own_params(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad]


def _ghost_ok(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        return (
            module.groups == 1
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
        )
    if isinstance(module, nn.Embedding):
        return not module.sparse
    return isinstance(module, _GHOST_TYPES)


def validate(module: nn.Module, clipping: Clipping = Clipping.GHOST) -> tuple[LayerPlan, ...]:
    """Say up front how each layer with trainable parameters is clipped.

    Raises:
        UnsupportedModuleError: BatchNorm anywhere (suggests GroupNorm/LayerNorm), or a
            trainable parameter owned by a module whose children also hold parameters
            (per-example gradients cannot be attributed; move it into its own leaf module).
    """
    clipping = Clipping(clipping)
    plans: list[LayerPlan] = []
    for name, sub in module.named_modules():
        if isinstance(sub, _BATCHNORM):
            raise UnsupportedModuleError(
                f"{name or 'module'} is {type(sub).__name__}, which mixes examples in a batch "
                "and breaks per-example clipping; replace it with nn.GroupNorm(num_groups, "
                "num_channels) or nn.LayerNorm"
            )
        own = _own_params(sub)
        if not own:
            continue
        if any(p.requires_grad for c in sub.children() for p in c.parameters()):
            raise UnsupportedModuleError(
                f"{name or 'module'} ({type(sub).__name__}) holds parameters "
                f"{[n for n, _ in own]} and has sub-modules with parameters; move its own "
                "parameters into a leaf module so per-example gradients can be attributed"
            )
        path: Literal["ghost", "per_sample"] = (
            "ghost" if clipping is Clipping.GHOST and _ghost_ok(sub) else "per_sample"
        )
        plans.append(
            LayerPlan(name or "(root)", type(sub).__name__, path, sum(p.numel() for _, p in own))
        )
    if not plans:
        raise UnsupportedModuleError("the module has no trainable parameters")
    return tuple(plans)


# -- per-layer maths ----------------------------------------------------------------------
# A: the layer input, G: dLoss_i/dOutput (already scaled to per-example losses), c: clip
# factors. Each handler returns squared per-example norms and clipped sums per parameter.


def _linear_norm2(layer: nn.Linear, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    if a.dim() == 2:
        g2 = torch.linalg.vector_norm(g, dim=1).square_()
        n2: torch.Tensor = torch.linalg.vector_norm(a, dim=1).square_().mul_(g2)
        if layer.bias is not None and layer.bias.requires_grad:
            n2.add_(g2)
        return n2
    b = a.shape[0]
    a3 = a.reshape(b, -1, a.shape[-1])
    g3 = g.reshape(b, -1, g.shape[-1])
    t = a3.shape[1]
    if t * t <= a3.shape[2] * g3.shape[2]:
        # Gram trick: ||sum_t g_t a_t^T||^2 = <A A^T, G G^T>
        n2 = (torch.bmm(a3, a3.transpose(1, 2)) * torch.bmm(g3, g3.transpose(1, 2))).sum((1, 2))
    else:
        n2 = torch.bmm(g3.transpose(1, 2), a3).pow(2).sum((1, 2))
    if layer.bias is not None and layer.bias.requires_grad:
        n2 = n2 + g3.sum(1).pow(2).sum(1)
    return n2


def _linear_sum(
    layer: nn.Linear, a: torch.Tensor, g: torch.Tensor, c: torch.Tensor
) -> dict[str, torch.Tensor]:
    shape = (-1,) + (1,) * (g.dim() - 1)
    gc = g * c.view(shape)
    g2 = gc.reshape(-1, gc.shape[-1])
    out = {}
    if layer.weight.requires_grad:
        out["weight"] = g2.t().mm(a.reshape(-1, a.shape[-1]))
    if layer.bias is not None and layer.bias.requires_grad:
        out["bias"] = g2.sum(0)
    return out


def _linear_per_example(
    layer: nn.Linear, a: torch.Tensor, g: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Materialised per-example gradients (used when a layer runs several times a step)."""
    b = a.shape[0]
    a3 = a.reshape(b, -1, a.shape[-1])
    g3 = g.reshape(b, -1, g.shape[-1])
    out = {}
    if layer.weight.requires_grad:
        out["weight"] = torch.bmm(g3.transpose(1, 2), a3)
    if layer.bias is not None and layer.bias.requires_grad:
        out["bias"] = g3.sum(1)
    return out


def _conv_unfold(layer: nn.Conv1d | nn.Conv2d, a: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, nn.Conv1d):
        return nnf.unfold(
            a.unsqueeze(2),
            (1, layer.kernel_size[0]),
            dilation=(1, layer.dilation[0]),
            padding=(0, int(layer.padding[0])),  # type: ignore[arg-type]
            stride=(1, layer.stride[0]),
        )
    return nnf.unfold(
        a,
        layer.kernel_size,
        dilation=layer.dilation,
        padding=layer.padding,  # type: ignore[arg-type]
        stride=layer.stride,
    )


def _conv_norm2(layer: nn.Conv1d | nn.Conv2d, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    b = a.shape[0]
    au = _conv_unfold(layer, a)  # (B, Cin*k, L)
    gu = g.reshape(b, g.shape[1], -1)  # (B, Cout, L)
    length = au.shape[2]
    if length * length <= au.shape[1] * gu.shape[1]:
        n2 = (torch.bmm(au.transpose(1, 2), au) * torch.bmm(gu.transpose(1, 2), gu)).sum((1, 2))
    else:
        n2 = torch.bmm(gu, au.transpose(1, 2)).pow(2).sum((1, 2))
    if layer.bias is not None and layer.bias.requires_grad:
        n2 = n2 + gu.sum(2).pow(2).sum(1)
    return n2


def _conv_sum(
    layer: nn.Conv1d | nn.Conv2d, a: torch.Tensor, g: torch.Tensor, c: torch.Tensor
) -> dict[str, torch.Tensor]:
    b = a.shape[0]
    au = _conv_unfold(layer, a)
    gu = g.reshape(b, g.shape[1], -1) * c.view(-1, 1, 1)
    out = {}
    if layer.weight.requires_grad:
        w = torch.einsum("bol,bkl->ok", gu, au)
        out["weight"] = w.reshape(layer.weight.shape)
    if layer.bias is not None and layer.bias.requires_grad:
        out["bias"] = gu.sum((0, 2))
    return out


def _embedding_norm2(layer: nn.Embedding, ids: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    b = ids.shape[0]
    ids2 = ids.reshape(b, -1)
    g3 = g.reshape(b, ids2.shape[1], -1)
    if layer.padding_idx is not None:
        g3 = g3 * (ids2 != layer.padding_idx).unsqueeze(-1).to(g3.dtype)
    same = (ids2.unsqueeze(2) == ids2.unsqueeze(1)).to(g3.dtype)
    return (same * torch.bmm(g3, g3.transpose(1, 2))).sum((1, 2))


def _embedding_sum(
    layer: nn.Embedding, ids: torch.Tensor, g: torch.Tensor, c: torch.Tensor
) -> dict[str, torch.Tensor]:
    b = ids.shape[0]
    ids2 = ids.reshape(b, -1)
    g3 = g.reshape(b, ids2.shape[1], -1) * c.view(-1, 1, 1)
    if layer.padding_idx is not None:
        g3 = g3 * (ids2 != layer.padding_idx).unsqueeze(-1).to(g3.dtype)
    grad = torch.zeros_like(layer.weight)
    grad.index_add_(0, ids2.reshape(-1), g3.reshape(-1, g3.shape[-1]))
    return {"weight": grad}


def _layernorm_grads(
    layer: nn.LayerNorm, a: torch.Tensor, g: torch.Tensor
) -> dict[str, torch.Tensor]:
    dims = tuple(range(a.dim() - len(layer.normalized_shape), a.dim()))
    mean = a.mean(dims, keepdim=True)
    var = a.var(dims, unbiased=False, keepdim=True)
    xhat = (a - mean) / torch.sqrt(var + layer.eps)
    sum_dims = tuple(range(1, a.dim() - len(layer.normalized_shape)))
    out = {}
    if layer.weight is not None and layer.weight.requires_grad:
        out["weight"] = (g * xhat).sum(sum_dims) if sum_dims else g * xhat
    if layer.bias is not None and layer.bias.requires_grad:
        out["bias"] = g.sum(sum_dims) if sum_dims else g
    return out


def _functorch_grads(
    module: nn.Module, args: tuple[Any, ...], g: torch.Tensor
) -> dict[str, torch.Tensor]:
    params = {n: p.detach() for n, p in _own_params(module)}

    def inner(p: dict[str, torch.Tensor], x: tuple[Any, ...], gi: torch.Tensor) -> torch.Tensor:
        batched = tuple(t.unsqueeze(0) if isinstance(t, torch.Tensor) else t for t in x)
        out = torch.func.functional_call(module, p, batched)
        inner_product: torch.Tensor = (out * gi.unsqueeze(0)).sum()
        return inner_product

    in_dims = tuple(0 if isinstance(t, torch.Tensor) else None for t in args)
    grads: dict[str, torch.Tensor] = torch.func.vmap(
        torch.func.grad(inner), in_dims=(None, in_dims, 0)
    )(params, args, g)
    return grads


@dataclass
class _Capture:
    args: tuple[Any, ...]
    grad: torch.Tensor | None = None

    def add_grad(self, grad: torch.Tensor) -> None:
        g = grad.detach()
        self.grad = g if self.grad is None else self.grad + g


class _CapturingLinear(torch.autograd.Function):
    """nnf.linear whose backward records dLoss/dOutput and skips the weight gradient.

    The weight and bias gradients are formed later as clipped sums, so autograd's own
    (unclipped) weight-gradient matmul would be wasted work.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, cap: _Capture
    ) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.cap = cap
        return nnf.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        (g,) = grads
        ctx.cap.add_grad(g)
        (weight,) = ctx.saved_tensors
        gx = g.matmul(weight) if ctx.needs_input_grad[0] else None
        return gx, None, None, None


class _Engine:
    """Hooks that capture layer inputs and output gradients; computes clipped sums."""

    def __init__(self, module: nn.Module, plans: Sequence[LayerPlan], loss_reduction: str) -> None:
        self.loss_reduction = loss_reduction
        self.layers: list[tuple[nn.Module, LayerPlan]] = []
        self.param_names: dict[int, dict[str, nn.Parameter]] = {}
        self.captures: dict[int, list[_Capture]] = {}
        self.handles: list[Any] = []
        self.active = True
        names = dict(module.named_modules())
        self.patched: list[nn.Module] = []
        for plan in plans:
            sub = names["" if plan.name == "(root)" else plan.name]
            self.layers.append((sub, plan))
            self.param_names[id(sub)] = dict(_own_params(sub))
            if plan.path == "ghost" and type(sub) is nn.Linear:
                sub.forward = self._linear_forward(sub)  # type: ignore[method-assign,assignment]
                self.patched.append(sub)
            else:
                self.handles.append(sub.register_forward_hook(self._forward_hook))

    def _check_no_accumulation(self) -> None:
        if any(c.grad is not None for caps in self.captures.values() for c in caps):
            raise UnsupportedModuleError(
                "a forward pass after backward() without optimizer.step(): gradient "
                "accumulation over several batches would clip sums of different examples "
                "together; call step() after each backward (Poisson batches already vary in "
                "size) or zero_grad() to drop the captured batch"
            )

    def _linear_forward(self, layer: nn.Linear) -> Callable[[torch.Tensor], torch.Tensor]:
        def forward(x: torch.Tensor) -> torch.Tensor:
            if not (self.active and torch.is_grad_enabled() and layer.weight.requires_grad):
                return nnf.linear(x, layer.weight, layer.bias)
            self._check_no_accumulation()
            cap = _Capture((x.detach(),))
            self.captures.setdefault(id(layer), []).append(cap)
            out: torch.Tensor = _CapturingLinear.apply(x, layer.weight, layer.bias, cap)  # type: ignore[no-untyped-call]
            return out

        return forward

    def _forward_hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not self.active or not torch.is_grad_enabled() or not isinstance(output, torch.Tensor):
            return
        if not output.requires_grad:
            return
        self._check_no_accumulation()
        cap = _Capture(tuple(t.detach() if isinstance(t, torch.Tensor) else t for t in args))
        self.captures.setdefault(id(module), []).append(cap)

        output.register_hook(cap.add_grad)  # type: ignore[no-untyped-call]

    def clear(self) -> None:
        self.captures.clear()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        for layer in self.patched:
            del layer.forward
        self.patched.clear()

    def _batch_size(self) -> int:
        for caps in self.captures.values():
            for cap in caps:
                if cap.grad is not None:
                    return int(cap.grad.shape[0])
        return 0

    def clipped_sums(
        self, max_grad_norm: float
    ) -> tuple[dict[nn.Parameter, torch.Tensor], torch.Tensor]:
        """Return sum_i c_i grad_i per parameter and the unclipped per-example norms."""
        self.active = False  # torch.func re-runs modules; do not capture those calls
        try:
            return self._clipped_sums(max_grad_norm)
        finally:
            self.active = True

    def _clipped_sums(
        self, max_grad_norm: float
    ) -> tuple[dict[nn.Parameter, torch.Tensor], torch.Tensor]:
        batch = self._batch_size()
        norm2: torch.Tensor | None = None
        prepared: list[tuple[nn.Module, LayerPlan, list[_Capture], Any]] = []
        for module, plan in self.layers:
            caps = [c for c in self.captures.get(id(module), []) if c.grad is not None]
            if not caps or batch == 0:
                continue
            scale = float(batch) if self.loss_reduction == "mean" else 1.0
            for cap in caps:
                if cap.grad is not None and cap.grad.shape[0] != batch:
                    raise UnsupportedModuleError(
                        f"{plan.name}: batch dimension must come first in every layer input"
                    )
            gs = [c.grad * scale for c in caps if c.grad is not None]
            if plan.path == "ghost" and len(caps) == 1 and not isinstance(module, nn.LayerNorm):
                n2 = self._ghost_norm2(module, caps[0].args[0], gs[0])
                prepared.append((module, plan, caps, ("ghost", gs[0])))
            else:
                per = self._per_example(module, plan, caps, gs)
                n2 = torch.stack([v.reshape(batch, -1).pow(2).sum(1) for v in per.values()]).sum(0)
                prepared.append((module, plan, caps, ("materialised", per)))
            assert isinstance(n2, torch.Tensor)
            norm2 = n2 if norm2 is None else norm2 + n2
        if norm2 is None:
            return {}, torch.zeros(0)
        norms = norm2.clamp_min(0).sqrt()
        c = (max_grad_norm / (norms + _NORM_EPS)).clamp(max=1.0)
        sums: dict[nn.Parameter, torch.Tensor] = {}
        for module, _plan, caps, (kind, data) in prepared:
            params = self.param_names[id(module)]
            if kind == "ghost":
                part = self._ghost_sum(module, caps[0].args[0], data, c)
            else:
                part = {n: torch.einsum("b...,b->...", v, c.to(v.dtype)) for n, v in data.items()}
            for n, v in part.items():
                sums[params[n]] = v
        return sums, norms

    @staticmethod
    def _ghost_norm2(module: nn.Module, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if isinstance(module, nn.Linear):
            return _linear_norm2(module, a, g)
        if isinstance(module, nn.Conv1d | nn.Conv2d):
            return _conv_norm2(module, a, g)
        assert isinstance(module, nn.Embedding)
        return _embedding_norm2(module, a, g)

    @staticmethod
    def _ghost_sum(
        module: nn.Module, a: torch.Tensor, g: torch.Tensor, c: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        c = c.to(g.dtype)
        if isinstance(module, nn.Linear):
            return _linear_sum(module, a, g, c)
        if isinstance(module, nn.Conv1d | nn.Conv2d):
            return _conv_sum(module, a, g, c)
        assert isinstance(module, nn.Embedding)
        return _embedding_sum(module, a, g, c)

    @staticmethod
    def _per_example(
        module: nn.Module, plan: LayerPlan, caps: list[_Capture], gs: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        total: dict[str, torch.Tensor] = {}
        for cap, g in zip(caps, gs, strict=True):
            if plan.path == "ghost" and isinstance(module, nn.LayerNorm):
                part = _layernorm_grads(module, cap.args[0], g)
            elif plan.path == "ghost" and isinstance(module, nn.Linear):
                part = _linear_per_example(module, cap.args[0], g)
            else:
                part = _functorch_grads(module, cap.args, g)
            for n, v in part.items():
                total[n] = v if n not in total else total[n] + v
        return total


# -- data loading -------------------------------------------------------------------------


def _empty_like_batch(sample: Any) -> Any:
    if isinstance(sample, torch.Tensor):
        return sample.unsqueeze(0)[:0]
    if isinstance(sample, tuple | list):
        return type(sample)(_empty_like_batch(s) for s in sample)
    if isinstance(sample, dict):
        return {k: _empty_like_batch(v) for k, v in sample.items()}
    return torch.as_tensor([sample])[:0]


class PoissonDataLoader:
    """Batches in which every record appears independently with probability ``sample_rate``.

    Batch sizes vary and may be zero: an empty batch has the right structure with a
    leading dimension of 0. Sampling uses the CSPRNG (``SecureRandom``).

    Args:
        dataset: a map-style dataset.
        sample_rate: inclusion probability q.
        steps: batches per pass (``len(self)``).
        rng: generator for the sampling; fresh OS-keyed by default.
        collate_fn: turns a list of samples into a batch (torch's default).

    Privacy: Poisson sampling is what the accountant's amplification-by-sampling assumes;
    shuffling into fixed-size batches would not match the reported epsilon.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        sample_rate: float,
        steps: int,
        *,
        rng: SecureRandom | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        if not 0 < sample_rate <= 1:
            raise ValueError("sample_rate must be in (0, 1]")
        if steps < 1:
            raise ValueError("steps must be positive")
        self.dataset = dataset
        self.sample_rate = float(sample_rate)
        self.steps = int(steps)
        self.rng = rng if rng is not None else SecureRandom()
        self.collate_fn = collate_fn or torch.utils.data.default_collate
        self.size = len(dataset)  # type: ignore[arg-type]
        if self.size == 0:
            raise ValueError("the dataset is empty")

    def __len__(self) -> int:
        return self.steps

    def sample_indices(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """One Poisson sample of record indices."""
        return np.flatnonzero(self.rng.uniform(self.size) < self.sample_rate).astype(np.int64)

    def __iter__(self) -> Iterator[Any]:
        for _ in range(self.steps):
            idx = self.sample_indices()
            if isinstance(self.dataset, TensorDataset):
                t = torch.from_numpy(idx)
                yield tuple(x[t] for x in self.dataset.tensors)
            elif idx.size == 0:
                yield _empty_like_batch(self.dataset[0])
            else:
                yield self.collate_fn([self.dataset[int(i)] for i in idx])


# -- optimiser ----------------------------------------------------------------------------


class DPOptimizer:
    """Wraps an optimiser: ``step()`` clips per example, adds noise, accounts, then steps.

    Use it like the wrapped optimiser (an LR scheduler takes ``dp_optimizer.optimizer``).
    Attributes ``accountant``,
    ``noise_multiplier``, ``max_grad_norm``, ``sample_rate`` and ``steps_taken`` describe
    what was spent.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        engine: _Engine,
        params: list[nn.Parameter],
        *,
        noise_multiplier: float,
        max_grad_norm: float,
        sample_rate: float,
        expected_batch_size: float,
        loss_reduction: str,
        accountant: PLDAccountant | RDPAccountant,
        rng: SecureRandom | torch.Generator,
    ) -> None:
        self.optimizer = optimizer
        self._engine = engine
        self._params = params
        self.noise_multiplier = float(noise_multiplier)
        self.max_grad_norm = float(max_grad_norm)
        self.sample_rate = float(sample_rate)
        self.expected_batch_size = float(expected_batch_size)
        self.loss_reduction = loss_reduction
        self.accountant = accountant
        self._rng = rng
        self.steps_taken = 0
        self.last_norms: torch.Tensor = torch.zeros(0)
        sigma = self.noise_multiplier * self.max_grad_norm
        d = sum(p.numel() for p in params)
        if isinstance(rng, torch.Generator):
            self.granularity = 0.0
            self.effective_noise_multiplier = self.noise_multiplier
        else:
            self.granularity = rounded_gaussian32_granularity(sigma)
            self.effective_noise_multiplier = sigma / (
                self.max_grad_norm + self.granularity * math.sqrt(d)
            )
        self.event = PoissonSampledEvent(
            min(1.0, self.sample_rate), GaussianEvent(self.effective_noise_multiplier)
        )

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The wrapped optimiser's parameter groups (for LR schedulers)."""
        return self.optimizer.param_groups

    @property
    def state(self) -> Any:
        """The wrapped optimiser's state."""
        return self.optimizer.state

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimiser's state dict."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load the wrapped optimiser's state dict."""
        self.optimizer.load_state_dict(state)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear gradients and captured activations."""
        self.optimizer.zero_grad(set_to_none=set_to_none)
        self._engine.clear()

    def _noise(self, numel: int) -> torch.Tensor:
        """Noise for ``numel`` coordinates: in grid units (secure) or in value units."""
        sigma = self.noise_multiplier * self.max_grad_norm
        if isinstance(self._rng, torch.Generator):
            return torch.normal(0.0, sigma, (numel,), generator=self._rng)
        units = sample_rounded_gaussian32(sigma, numel, rng=self._rng, unit="grid")
        return torch.from_numpy(units)

    def privatise_gradients(self) -> None:
        """Replace every ``p.grad`` by the clipped, noised (and averaged) gradient."""
        sums, norms = self._engine.clipped_sums(self.max_grad_norm)
        self.last_norms = norms
        g = self.granularity
        divisor = self.expected_batch_size if self.loss_reduction == "mean" else 1.0
        for p in self._params:  # one parameter at a time keeps the peak memory low
            z = self._noise(p.numel()).view_as(p)
            s = sums.pop(p, None)
            s = torch.zeros_like(p) if s is None else s.detach()
            if g == 0:  # torch.Generator: plain float noise (not hardened)
                noisy = s.to(p.dtype).add_(z.to(p.dtype)).div_(divisor)
            elif s.dtype == torch.float32 and float(s.abs().max()) < 2.0**22 * g:
                # grid arithmetic in float32 is exact here: |s/g| < 2**22, |noise/g| < 2**20
                noisy = s.div_(g).round_().add_(z).mul_(g / divisor)
            else:  # float64 keeps the grid exact for any magnitude
                exact = torch.round(s.double() / g).add_(z.double()).mul_(g)
                noisy = exact.to(p.dtype).div_(divisor)
            p.grad = noisy
        self._engine.clear()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Clip, noise, account one sampled Gaussian step, then step the wrapped optimiser."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.privatise_gradients()
        self.accountant.compose(self.event)
        self.steps_taken += 1
        self.optimizer.step()
        return loss


@dataclass(frozen=True)
class PrivateTraining:
    """What :func:`make_private` returns; unpacks as ``module, optimizer, data_loader``."""

    module: nn.Module
    optimizer: DPOptimizer
    data_loader: PoissonDataLoader
    plan: tuple[LayerPlan, ...]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.module, self.optimizer, self.data_loader))

    @property
    def accountant(self) -> PLDAccountant | RDPAccountant:
        """The accountant holding every step taken so far."""
        return self.optimizer.accountant

    @property
    def noise_multiplier(self) -> float:
        """z: noise standard deviation / max_grad_norm."""
        return self.optimizer.noise_multiplier

    def epsilon(self, delta: float) -> float:
        """Epsilon spent so far at ``delta`` (upper bound, the accountant's kind)."""
        return self.accountant.get_epsilon(delta)

    def detach(self) -> None:
        """Remove the hooks from the module (the optimiser must not be stepped after)."""
        self.optimizer._engine.remove()


def make_private(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: DataLoader[Any],
    *,
    max_grad_norm: float,
    noise_multiplier: float | None = None,
    target_epsilon: float | None = None,
    delta: float = 1e-5,
    epochs: int | None = None,
    clipping: Clipping = Clipping.GHOST,
    loss_reduction: Literal["mean", "sum"] = "mean",
    accountant: AccountantKind = AccountantKind.PLD,
    rng: SecureRandom | torch.Generator | None = None,
) -> PrivateTraining:
    """Turn a module, its optimiser and data loader into DP-SGD drop-in replacements.

    Args:
        module: the model; hooks are attached in place (see :meth:`PrivateTraining.detach`).
        optimizer: any torch optimiser over the module's parameters.
        data_loader: gives the dataset, the expected batch size (``batch_size``), the
            steps per epoch (``len(data_loader)``) and ``collate_fn``; its sampler and
            shuffling are replaced by Poisson sampling with rate q = batch_size / len(dataset).
        max_grad_norm: per-example clipping bound C.
        noise_multiplier: z; give this or ``target_epsilon``.
        target_epsilon: calibrate the smallest z that keeps ``epochs`` epochs within
            (target_epsilon, delta) under ``accountant``.
        delta: the delta of the target.
        epochs: planned epochs (required with ``target_epsilon``).
        clipping: ``Clipping.GHOST`` (default) or ``Clipping.PER_SAMPLE``.
        loss_reduction: how the training loss reduces over the batch: ``"mean"``
            (1/B sum_i loss_i, torch's default) or ``"sum"``.
        accountant: PLD (default) or RDP.
        rng: ``SecureRandom`` (default: fresh, OS-keyed) for noise and sampling, or a
            ``torch.Generator`` for reproducible but NOT secure noise (sampling then uses
            a ``SecureRandom`` seeded from the generator's initial seed).

    Raises:
        UnsupportedModuleError: see :func:`validate`.
        ValueError: inconsistent arguments.

    Privacy: see the module docstring; ``PrivateTraining.epsilon(delta)`` reports the
    spend so far. The loss must be a sum (or mean) of per-example losses, and no layer may
    mix examples (BatchNorm is refused): the per-example gradients are read from each
    example's own slice of every layer's input and output gradient, so a loss that couples
    examples (batch-normalised or contrastive terms) would void the sensitivity bound.
    """
    if (noise_multiplier is None) == (target_epsilon is None):
        raise ValueError("give exactly one of noise_multiplier and target_epsilon")
    if not (math.isfinite(max_grad_norm) and max_grad_norm > 0):
        raise ValueError("max_grad_norm must be positive")
    if loss_reduction not in ("mean", "sum"):
        raise ValueError("loss_reduction must be 'mean' or 'sum'")
    plans = validate(module, clipping)
    dataset = data_loader.dataset
    n = len(dataset)  # type: ignore[arg-type]
    batch_size = data_loader.batch_size
    if not batch_size:
        raise ValueError("the data loader needs a batch_size (the expected batch size)")
    sample_rate = min(1.0, batch_size / n)
    steps_per_epoch = max(1, len(data_loader))
    if target_epsilon is not None:
        if epochs is None or epochs < 1:
            raise ValueError("target_epsilon needs the planned number of epochs")
        noise_multiplier = calibrate_noise_multiplier(
            target_epsilon, delta, sample_rate, epochs * steps_per_epoch, accountant
        )
        # the noise grid adds g sqrt(d) to the sensitivity; scale z up to absorb it
        if not isinstance(rng, torch.Generator):
            d = sum(p.numel() for p in module.parameters() if p.requires_grad)
            needed = noise_multiplier
            for _ in range(4):
                g = rounded_gaussian32_granularity(noise_multiplier * max_grad_norm)
                if noise_multiplier / (1 + g * math.sqrt(d) / max_grad_norm) >= needed:
                    break
                noise_multiplier = needed * (1 + g * math.sqrt(d) / max_grad_norm)
    assert noise_multiplier is not None
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError("noise_multiplier must be positive")
    if isinstance(rng, torch.Generator):
        sampler_rng = SecureRandom(int(rng.initial_seed()))
        noise_rng: SecureRandom | torch.Generator = rng
    else:
        sampler_rng = rng if rng is not None else SecureRandom()
        noise_rng = sampler_rng
    loader = PoissonDataLoader(
        dataset, sample_rate, steps_per_epoch, rng=sampler_rng, collate_fn=data_loader.collate_fn
    )
    params = [p for p in module.parameters() if p.requires_grad]
    opt_params = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if not {id(p) for p in params} <= opt_params:
        raise ValueError("the optimiser must cover every trainable parameter of the module")
    engine = _Engine(module, plans, loss_reduction)
    dp_opt = DPOptimizer(
        optimizer,
        engine,
        params,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        sample_rate=sample_rate,
        expected_batch_size=sample_rate * n,
        loss_reduction=loss_reduction,
        accountant=make_accountant(accountant),
        rng=noise_rng,
    )
    return PrivateTraining(module, dp_opt, loader, plans)
