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

Every layer with trainable parameters runs, while training, with its parameters detached
from autograd and its output passed through a tap that records dLoss/dOutput: autograd
computes only input gradients, and the per-example gradients are formed from each layer's
input and output gradient. Norms are "ghost" norms where a layer allows it (Linear via
||a|| ||g|| for 2-D inputs or Gram matrices for sequences, Conv via unfold, Embedding via a
token-equality Gram matrix, LayerNorm directly from its small per-example gradients); the
clipped sum sum_i c_i grad_i is then formed from the same stored tensors, without
materialising B copies of the gradient. Any other layer uses exact ``torch.func`` (vmap +
grad) per-example gradients, and so does a Parameter shared by several layers (tied
weights), whose per-example gradients are summed over the layers before clipping.
:func:`validate` says which path each layer takes and refuses, before anything runs, what
has no per-example rule (BatchNorm, RNN/LSTM/GRU, MultiheadAttention, parametrisations).

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

The bound C holds only if example i's gradient is what is read at index i of dimension 0
of every layer's input and output gradient, so a step is refused, before anything is
released, when: a layer sees a leading dimension other than the number of examples the
loader gave (a (sequence, batch, feature) tensor), or a second dimension of that same size
it has not yet been seen to tell apart; a parameter receives a gradient from outside its
layer's forward; a layer returns something other than a tensor; or a per-example gradient
is not finite. Layers must not mix examples (BatchNorm is refused; an operation across the
batch written in a ``forward`` is not detected).
"""

from __future__ import annotations

import contextlib
import enum
import math
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as nnf
from torch.nn.utils import parametrize
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tutela.dp.accounting import (
    AccountantKind,
    PLDAccountant,
    RDPAccountant,
    calibrate_noise_multiplier,
    make_accountant,
)
from tutela.dp.events import GaussianEvent, PoissonSampledEvent
from tutela.errors import DataError, PrivacyError
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
    """How one parameterised layer is clipped.

    ``tied_with`` names the other layers that hold one of this layer's parameters (tied
    weights); such layers take the ``per_sample`` path, which materialises a (batch, *shape)
    gradient per shared parameter.
    """

    name: str
    module_type: str
    path: Literal["ghost", "per_sample"]
    parameters: int
    tied_with: tuple[str, ...] = ()


_GHOST_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding, nn.LayerNorm)
_BATCHNORM = (nn.modules.batchnorm._BatchNorm, nn.SyncBatchNorm)
_CONV = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_BUILD_FROM_LINEAR = (
    "write the recurrence from nn.Linear layers applied step by step on (batch, feature) "
    "tensors (for an LSTM, one nn.Linear for the input and one for the hidden state, split "
    "into the four gates), which Tutela clips exactly, or freeze it with requires_grad_(False)"
)


def _own_params(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad]


def _ghost_ok(module: nn.Module, names: set[str]) -> bool:
    if not names <= {"weight", "bias"}:  # e.g. weight_g/weight_v: not the layer's maths
        return False
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        return (
            module.groups == 1
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
        )
    if isinstance(module, nn.Embedding):
        return not module.sparse
    return isinstance(module, _GHOST_TYPES)


def _refuse_unprovable(name: str, module: nn.Module) -> None:
    """Refuse layer kinds whose per-example gradients cannot be formed (says what to do)."""
    kind = type(module).__name__
    if isinstance(module, _BATCHNORM):
        raise UnsupportedModuleError(
            f"{name} is {kind}, which mixes examples in a batch and breaks per-example "
            "clipping; replace it with nn.GroupNorm(num_groups, num_channels) or nn.LayerNorm"
        )
    recurrent = isinstance(module, nn.RNNBase | nn.LSTMCell)
    attention = isinstance(module, nn.MultiheadAttention)
    reparametrised = parametrize.is_parametrized(module) or any(
        isinstance(h, WeightNorm | SpectralNorm) for h in module._forward_pre_hooks.values()
    )
    by_freq = isinstance(module, nn.Embedding | nn.EmbeddingBag) and module.scale_grad_by_freq
    if not (recurrent or attention or reparametrised or by_freq):
        return
    if not any(p.requires_grad for p in module.parameters()):
        return  # a frozen layer needs no per-example gradient
    if recurrent:
        raise UnsupportedModuleError(
            f"{name} is nn.{kind}, which has no per-example gradient rule in Tutela (fused "
            "recurrent kernels hide the per-step inputs, batch_first=False runs (sequence, "
            f"batch, feature) tensors, and LSTMs return tuples); {_BUILD_FROM_LINEAR}"
        )
    if attention:
        raise UnsupportedModuleError(
            f"{name} is nn.MultiheadAttention, which has no per-example gradient rule in "
            "Tutela (it reads its projection weights outside a layer's forward and defaults to "
            "(sequence, batch, feature) tensors); write attention from nn.Linear projections "
            "for query, key, value and output with "
            "torch.nn.functional.scaled_dot_product_attention on (batch, ...) tensors"
        )
    if reparametrised:
        raise UnsupportedModuleError(
            f"{name} ({kind}) computes its weight from other parameters before its forward "
            "(weight_norm, spectral_norm or torch.nn.utils.parametrize), where per-example "
            "gradients cannot be attributed; remove the parametrisation "
            "(torch.nn.utils.parametrize.remove_parametrizations) for DP training"
        )
    raise UnsupportedModuleError(
        f"{name} ({kind}) has scale_grad_by_freq=True, which divides each token's gradient by "
        "its count over the whole batch, so one example's gradient depends on the others; "
        "set scale_grad_by_freq=False"
    )


def validate(module: nn.Module, clipping: Clipping = Clipping.GHOST) -> tuple[LayerPlan, ...]:
    """Say up front how each layer with trainable parameters is clipped.

    Every trainable parameter must be covered by a per-example-gradient rule; a layer kind
    that has none is refused here rather than noised without its gradient.

    Args:
        module: the model.
        clipping: ``Clipping.GHOST`` (ghost norms where a layer allows it) or
            ``Clipping.PER_SAMPLE`` (``torch.func`` for every layer).

    Returns:
        One plan per layer that owns trainable parameters, in module order.

    Raises:
        UnsupportedModuleError: BatchNorm anywhere (suggests GroupNorm/LayerNorm); a
            trainable nn.RNN/LSTM/GRU, nn.LSTMCell or nn.MultiheadAttention (suggests
            nn.Linear building blocks); a parametrised weight (weight_norm, spectral_norm);
            an embedding with ``scale_grad_by_freq``; a trainable parameter owned by a
            module whose children also hold parameters (move it into its own leaf module);
            or no trainable parameter at all.
    """
    clipping = Clipping(clipping)
    found: list[tuple[str, nn.Module, list[tuple[str, nn.Parameter]]]] = []
    owners: dict[int, list[str]] = {}
    for name, sub in module.named_modules():
        label = name or "(root)"
        _refuse_unprovable(label, sub)
        own = _own_params(sub)
        if not own:
            continue
        if any(p.requires_grad for c in sub.children() for p in c.parameters()):
            raise UnsupportedModuleError(
                f"{name or 'module'} ({type(sub).__name__}) holds parameters "
                f"{[n for n, _ in own]} and has sub-modules with parameters; move its own "
                "parameters into a leaf module so per-example gradients can be attributed"
            )
        found.append((label, sub, own))
        for _, p in own:
            owners.setdefault(id(p), []).append(label)
    if not found:
        raise UnsupportedModuleError("the module has no trainable parameters")
    plans = []
    for label, sub, own in found:
        tied = tuple(sorted({o for _, p in own for o in owners[id(p)]} - {label}))
        ghost = clipping is Clipping.GHOST and not tied and _ghost_ok(sub, {n for n, _ in own})
        plans.append(
            LayerPlan(
                label,
                type(sub).__name__,
                "ghost" if ghost else "per_sample",
                sum(p.numel() for _, p in own),
                tied,
            )
        )
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
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], g: torch.Tensor
) -> dict[str, torch.Tensor]:
    params = {n: p.detach() for n, p in _own_params(module)}

    def inner(p: dict[str, torch.Tensor], x: tuple[Any, ...], gi: torch.Tensor) -> torch.Tensor:
        batched = tuple(t.unsqueeze(0) if isinstance(t, torch.Tensor) else t for t in x)
        out = torch.func.functional_call(module, p, batched, kwargs)
        inner_product: torch.Tensor = (out * gi.unsqueeze(0)).sum()
        return inner_product

    in_dims = tuple(0 if isinstance(t, torch.Tensor) else None for t in args)
    grads: dict[str, torch.Tensor] = torch.func.vmap(
        torch.func.grad(inner), in_dims=(None, in_dims, 0)
    )(params, args, g)
    return grads


def _batch_dims(module: nn.Module, t: torch.Tensor, *, output: bool) -> int:
    """How many leading dimensions of a layer's input (or output gradient) may hold examples.

    Trailing feature dimensions are excluded (a Linear's last, a LayerNorm's normalised
    shape); for convolutions and GroupNorm the layer's contract fixes dimension 0. Zero means
    the tensor has no batch dimension at all (an unbatched call).
    """
    if isinstance(module, _CONV):
        return 1 if t.dim() == len(module.kernel_size) + 2 else 0
    if isinstance(module, nn.GroupNorm):
        return 1 if t.dim() >= 2 else 0
    if isinstance(module, nn.Linear):
        return t.dim() - 1
    if isinstance(module, nn.LayerNorm):
        return t.dim() - len(module.normalized_shape)
    if isinstance(module, nn.Embedding) and output:
        return t.dim() - 1
    return t.dim()


@dataclass
class _Capture:
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    grad: torch.Tensor | None = None

    def add_grad(self, grad: torch.Tensor) -> None:
        g = grad.detach()
        self.grad = g if self.grad is None else self.grad + g


class _Tap(torch.autograd.Function):
    """Identity on a layer's output that records dLoss/dOutput on the way back.

    The layer ran with detached parameters, so autograd computes no (unclipped, wasted)
    parameter gradient; passing the parameters in only makes the output require grad when
    the layer's input does not. The parameters get ``None``: any gradient that still reaches
    them came from outside the layer's forward, which :class:`_Engine` refuses.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, cap: _Capture, out: torch.Tensor, *params: torch.Tensor
    ) -> torch.Tensor:
        ctx.cap = cap
        ctx.n_params = len(params)
        return out.detach()

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (g,) = grads
        ctx.cap.add_grad(g)
        return (None, g, *([None] * ctx.n_params))


@contextlib.contextmanager
def _detached(module: nn.Module, params: dict[str, nn.Parameter]) -> Iterator[None]:
    """Run ``module`` with its own trainable parameters detached from autograd."""
    try:
        for n, p in params.items():
            module._parameters[n] = cast(nn.Parameter, p.detach())
        yield
    finally:
        for n, p in params.items():
            module._parameters[n] = p


# the engine whose capturing forward a layer runs; a second make_private takes the layer over
_OWNERS: weakref.WeakKeyDictionary[nn.Module, _Engine] = weakref.WeakKeyDictionary()


class _Engine:
    """Captures layer inputs and output gradients, checks them, and forms clipped sums."""

    def __init__(
        self,
        module: nn.Module,
        plans: Sequence[LayerPlan],
        loss_reduction: str,
        loader: PoissonDataLoader | None = None,
    ) -> None:
        self.loss_reduction = loss_reduction
        self.loader = loader
        self.layers: list[tuple[nn.Module, LayerPlan]] = []
        self.param_names: dict[int, dict[str, nn.Parameter]] = {}
        self.captures: dict[int, list[_Capture]] = {}
        self.handles: list[Any] = []
        self.active = True
        self.detached = False
        # layers that had, in some step, dimension 0 as their only one of the sampled size
        self.proven: set[int] = set()
        self._loader_mark = loader.batches_drawn if loader is not None else 0
        self.qualified = {id(p): n for n, p in module.named_parameters()}
        names = dict(module.named_modules())
        self.patched: list[tuple[nn.Module, Any]] = []
        owners: dict[int, list[str]] = {}
        for plan in plans:
            sub = names["" if plan.name == "(root)" else plan.name]
            earlier = _OWNERS.get(sub)
            if earlier is not None and earlier is not self:
                earlier.remove()
            own = dict(_own_params(sub))
            self.layers.append((sub, plan))
            self.param_names[id(sub)] = own
            self.patched.append((sub, vars(sub).get("forward")))
            sub.forward = self._capturing_forward(sub, plan, own)  # type: ignore[method-assign]
            _OWNERS[sub] = self
            for p in own.values():
                owners.setdefault(id(p), []).append(plan.name)
        hooked: set[int] = set()
        for sub, _plan in self.layers:
            for p in self.param_names[id(sub)].values():
                if id(p) not in hooked:
                    hooked.add(id(p))
                    hook = self._outside_use_hook(p, owners[id(p)])
                    self.handles.append(p.register_hook(hook))  # type: ignore[no-untyped-call]

    def _check_no_accumulation(self) -> None:
        if any(c.grad is not None for caps in self.captures.values() for c in caps):
            raise UnsupportedModuleError(
                "a forward pass after backward() without optimizer.step(): gradient "
                "accumulation over several batches would clip sums of different examples "
                "together; call step() after each backward (Poisson batches already vary in "
                "size) or zero_grad() to drop the captured batch"
            )

    def _capturing_forward(
        self, layer: nn.Module, plan: LayerPlan, params: dict[str, nn.Parameter]
    ) -> Callable[..., Any]:
        original = layer.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            trainable = [p for p in params.values() if p.requires_grad]
            if not (self.active and trainable and torch.is_grad_enabled()):
                return original(*args, **kwargs)
            self._check_no_accumulation()
            tensor_kwargs = sorted(k for k, v in kwargs.items() if isinstance(v, torch.Tensor))
            if tensor_kwargs:
                raise UnsupportedModuleError(
                    f"{plan.name} ({plan.module_type}) was called with tensor keyword "
                    f"arguments {tensor_kwargs}; pass tensors positionally, so that each "
                    "example's slice (index i of dimension 0) can be found and checked"
                )
            with _detached(layer, params):
                out = original(*args, **kwargs)
            if not isinstance(out, torch.Tensor):
                raise UnsupportedModuleError(
                    f"{plan.name} ({plan.module_type}) returned {type(out).__name__}, not a "
                    "tensor, so its parameters would get no per-example gradient; wrap it so "
                    "the trainable layer returns one tensor (and return the rest from a "
                    "parameter-free parent), or freeze it with requires_grad_(False)"
                )
            if not (out.is_floating_point() or out.is_complex()):
                return out  # nothing differentiable flows back through it
            cap = _Capture(
                tuple(t.detach() if isinstance(t, torch.Tensor) else t for t in args), kwargs
            )
            self.captures.setdefault(id(layer), []).append(cap)
            tapped: torch.Tensor = _Tap.apply(cap, out, *trainable)  # type: ignore[no-untyped-call]
            return tapped

        return forward

    def _outside_use_hook(
        self, param: nn.Parameter, layers: list[str]
    ) -> Callable[[torch.Tensor | None], None]:
        name = self.qualified.get(id(param), "a parameter")
        where = " and ".join(layers)

        def hook(grad: torch.Tensor | None) -> None:
            if grad is not None and not self.detached:
                raise UnsupportedModuleError(
                    f"parameter {name!r} received a gradient from outside the forward of "
                    f"{where} (for example an output projection written as "
                    "h @ embedding.weight.T, or a penalty on the parameters in the loss), "
                    "which has no per-example attribution; tie weights by registering the "
                    "same Parameter in both layers (head.weight = embedding.weight), move the "
                    "computation into a layer, or use the optimiser's weight_decay for an L2 "
                    "penalty"
                )

        return hook

    def clear(self) -> None:
        self.captures.clear()

    def remove(self) -> None:
        """Restore every layer's forward and drop the hooks; the engine cannot clip after."""
        for h in self.handles:
            h.remove()
        self.handles.clear()
        for layer, previous in self.patched:
            if _OWNERS.get(layer) is self:
                del _OWNERS[layer]
            if previous is None:
                vars(layer).pop("forward", None)
            else:
                layer.forward = previous  # type: ignore[method-assign]
        self.patched.clear()
        self.captures.clear()
        self.detached = True

    def name_of(self, param: torch.Tensor) -> str:
        """The qualified name of a module parameter, or its shape for anything else."""
        return self.qualified.get(id(param), f"a tensor of shape {tuple(param.shape)}")

    def clipped_sums(
        self, max_grad_norm: float
    ) -> tuple[dict[nn.Parameter, torch.Tensor], torch.Tensor]:
        """Return sum_i c_i grad_i per parameter and the unclipped per-example norms.

        Raises:
            UnsupportedModuleError: a layer's input or output gradient does not have the
                batch's examples along dimension 0 (or cannot yet be told apart from another
                dimension of the same size), or the engine was detached.
            DataError: an example's gradient is not finite.
        """
        if self.detached:
            raise PrivacyError(
                "this PrivateTraining was detached (by detach() or by a later make_private "
                "on the same module); its optimiser can no longer clip"
            )
        self.active = False  # torch.func re-runs modules; do not capture those calls
        try:
            return self._clipped_sums(max_grad_norm)
        finally:
            self.active = True
            if self.loader is not None:
                self._loader_mark = self.loader.batches_drawn  # that batch is now spent

    def _batch_size(
        self, live: list[tuple[nn.Module, LayerPlan, list[_Capture]]]
    ) -> tuple[int, str | None]:
        """The batch size and, when it was not the loader's, the layer it was read from."""
        loader = self.loader
        if loader is not None and loader.batches_drawn > self._loader_mark:
            return loader.last_batch_size, None
        for _, plan, caps in live:
            for cap in caps:
                if cap.grad is not None and cap.grad.dim() > 0:
                    return int(cap.grad.shape[0]), plan.name
        return 0, live[0][1].name

    def _check_layout(
        self,
        module: nn.Module,
        plan: LayerPlan,
        caps: list[_Capture],
        batch: int,
        source: str | None,
    ) -> None:
        """Refuse a layer whose dimension 0 is not provably the batch's examples."""
        label = f"{plan.name} ({plan.module_type})"
        if source is None:
            batch_said = f"the batch the data loader gave has {batch} examples"
        else:
            batch_said = f"the batch has {batch} examples (read from layer {source})"
        ambiguous: tuple[str, tuple[int, ...], int] | None = None
        for cap in caps:
            assert cap.grad is not None
            seen = [("input", t) for t in cap.args if isinstance(t, torch.Tensor)]
            for what, t in [*seen, ("output gradient", cap.grad)]:
                shape = tuple(t.shape)
                lead = _batch_dims(module, t, output=what == "output gradient")
                if lead < 1:
                    raise UnsupportedModuleError(
                        f"{label} got an {what} of shape {shape} with no batch dimension (an "
                        "unbatched call, or a layer that reduces over the batch); give every "
                        "layer (batch, ...) tensors. Nothing was released"
                    )
                if shape[0] != batch:
                    raise UnsupportedModuleError(
                        f"{label} got an {what} of shape {shape}, but {batch_said}. "
                        "Per-example clipping reads example i at index i of dimension 0 of "
                        "every layer's input and output gradient, so a layer applied to a "
                        "(sequence, batch, feature) tensor would be clipped per position, not "
                        "per example, and the privacy bound would not hold. Put the batch "
                        "dimension first (batch_first=True, or x.transpose(0, 1) before this "
                        "layer). Nothing was released"
                    )
                others = [d for d in range(1, lead) if shape[d] == batch]
                if batch > 1 and others and ambiguous is None:
                    ambiguous = (what, shape, others[0])
        if ambiguous is None:
            if source is None and batch > 1:
                self.proven.add(id(module))
        elif id(module) not in self.proven:
            what, shape, dim = ambiguous
            raise UnsupportedModuleError(
                f"{label} got an {what} of shape {shape} and {batch_said}: dimensions 0 and "
                f"{dim} both have that size, and this layer has not yet been seen with a "
                "batch of another size, so Tutela cannot prove that dimension 0 holds the "
                "examples (a (sequence, batch, feature) tensor looks the same). This happens "
                "when a sequence length equals the batch size: call optimizer.zero_grad() and "
                "go on with the next batch (Poisson batches vary in size), or change the "
                "sequence length. Nothing was released"
            )

    def _clipped_sums(
        self, max_grad_norm: float
    ) -> tuple[dict[nn.Parameter, torch.Tensor], torch.Tensor]:
        live = []
        for module, plan in self.layers:
            caps = [c for c in self.captures.get(id(module), []) if c.grad is not None]
            if caps:
                live.append((module, plan, caps))
        if not live:
            return {}, torch.zeros(0)
        batch, source = self._batch_size(live)
        for module, plan, caps in live:
            self._check_layout(module, plan, caps, batch, source)
        if batch == 0:
            return {}, torch.zeros(0)
        scale = float(batch) if self.loss_reduction == "mean" else 1.0
        norm2: torch.Tensor | None = None
        ghost: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        # per-example gradients by parameter, summed over the layers that share it
        per_param: dict[int, tuple[nn.Parameter, torch.Tensor]] = {}
        for module, plan, caps in live:
            gs = [c.grad * scale for c in caps if c.grad is not None]
            if plan.path == "ghost" and len(caps) == 1 and not isinstance(module, nn.LayerNorm):
                n2 = self._ghost_norm2(module, caps[0].args[0], gs[0])
                norm2 = n2 if norm2 is None else norm2 + n2
                ghost.append((module, caps[0].args[0], gs[0]))
                continue
            params = self.param_names[id(module)]
            for n, v in self._per_example(module, plan, caps, gs).items():
                p = params[n]
                earlier = per_param.get(id(p))
                per_param[id(p)] = (p, v if earlier is None else earlier[1] + v)
        for _, v in per_param.values():
            n2 = v.reshape(batch, -1).pow(2).sum(1)
            norm2 = n2 if norm2 is None else norm2 + n2
        assert norm2 is not None
        norms = norm2.clamp_min(0).sqrt()
        bad = torch.nonzero(~torch.isfinite(norms)).flatten().tolist()
        if bad:
            raise DataError(
                f"{len(bad)} of the {batch} examples in this batch (positions {bad[:10]}) "
                "have a non-finite gradient: a NaN or inf in their features or labels, or a "
                "loss that overflows for them, would make the whole noisy update non-finite. "
                "Nothing was released; repair or drop those records, then call "
                "optimizer.zero_grad() and go on"
            )
        c = (max_grad_norm / (norms + _NORM_EPS)).clamp(max=1.0)
        sums: dict[nn.Parameter, torch.Tensor] = {}
        for module, a, g in ghost:
            params = self.param_names[id(module)]
            for n, v in self._ghost_sum(module, a, g, c).items():
                sums[params[n]] = v
        for p, v in per_param.values():
            sums[p] = torch.einsum("b...,b->...", v, c.to(v.dtype))
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
                part = _functorch_grads(module, cap.args, cap.kwargs, g)
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


def _check_finite(batch: Any, idx: np.ndarray[Any, np.dtype[np.int64]], where: str) -> None:
    """Raise DataError naming the records whose floating-point values are NaN or inf."""
    if isinstance(batch, tuple | list):
        for k, part in enumerate(batch):
            _check_finite(part, idx, f"{where}[{k}]")
        return
    if isinstance(batch, dict):
        for key, part in batch.items():
            _check_finite(part, idx, f"{where}[{key!r}]")
        return
    if not (isinstance(batch, torch.Tensor) and (batch.is_floating_point() or batch.is_complex())):
        return
    n = len(idx)
    if batch.dim() >= 1 and batch.shape[0] == n:
        finite = torch.isfinite(batch.reshape(n, -1)).all(1)
        if bool(finite.all()):
            return
        records = idx[(~finite).cpu().numpy()].tolist()
        said = f"records {records[:10]}{' ...' if len(records) > 10 else ''} of the dataset hold"
    elif bool(torch.isfinite(batch).all()):
        return
    else:
        said = "a batch holds"
    raise DataError(
        f"{said} NaN or inf in {where}; one such record would make the whole noisy DP-SGD "
        "update non-finite. Repair or drop those records before training"
    )


class PoissonDataLoader:
    """Batches in which every record appears independently with probability ``sample_rate``.

    Batch sizes vary and may be zero: an empty batch has the right structure with a
    leading dimension of 0. Sampling uses the CSPRNG (``SecureRandom``). Every batch is
    checked for NaN and inf in its floating-point tensors before it is yielded, and
    ``last_batch_size`` / ``batches_drawn`` let the optimiser check each layer's batch
    dimension against the number of examples actually sampled.

    Args:
        dataset: a map-style dataset.
        sample_rate: inclusion probability q.
        steps: batches per pass (``len(self)``).
        rng: generator for the sampling; fresh OS-keyed by default.
        collate_fn: turns a list of samples into a batch (torch's default).

    Raises:
        DataError: (while iterating) a sampled record holds NaN or inf; names the records.

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
        self.last_batch_size = 0
        self.batches_drawn = 0

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
                batch: Any = tuple(x[t] for x in self.dataset.tensors)
            elif idx.size == 0:
                batch = _empty_like_batch(self.dataset[0])
            else:
                batch = self.collate_fn([self.dataset[int(i)] for i in idx])
            if idx.size:
                _check_finite(batch, idx, "batch")
            self.last_batch_size = int(idx.size)
            self.batches_drawn += 1
            yield batch


# -- optimiser ----------------------------------------------------------------------------


class DPOptimizer:
    """Wraps an optimiser: ``step()`` clips per example, adds noise, accounts, then steps.

    Use it like the wrapped optimiser (an LR scheduler takes ``dp_optimizer.optimizer``).
    Attributes ``accountant``, ``noise_multiplier``, ``max_grad_norm``, ``sample_rate`` and
    ``steps_taken`` describe what was spent. A step that cannot be proven to clip each
    example (see :meth:`privatise_gradients`) raises before any noise is drawn or any spend
    is accounted; ``zero_grad()`` then drops the captured batch.
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
        """Replace every ``p.grad`` by the clipped, noised (and averaged) gradient.

        Raises:
            UnsupportedModuleError: a layer's batch dimension cannot be proven, or a tensor
                the optimiser updates received a gradient without a per-example rule.
            DataError: an example's gradient is not finite.

        Nothing is changed (no gradient, no noise drawn) when it raises.
        """
        covered = {id(p) for p in self._params}
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None and id(p) not in covered:
                    raise UnsupportedModuleError(
                        f"{self._engine.name_of(p)} has a gradient but no per-example rule "
                        "(it was frozen, or not in the module, when make_private ran); call "
                        "make_private again after changing which parameters are trainable"
                    )
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
        """Restore the module's layers and remove the hooks; the optimiser refuses to step after."""
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
        UnsupportedModuleError: see :func:`validate`; while training, see
            :meth:`DPOptimizer.privatise_gradients` (and a parameter that receives a gradient
            from outside its layer's forward is refused during ``backward()``).
        ValueError: inconsistent arguments, or an optimiser that does not hold exactly the
            module's trainable parameters.

    Privacy: one ``optimizer.step()`` is ``PoissonSampledEvent(q, GaussianEvent(z_eff))``
    under add/remove-one-record neighbours (see the module docstring);
    ``PrivateTraining.epsilon(delta)`` reports the spend so far. The loss must be a sum (or
    mean) of per-example losses, and no layer may mix examples (BatchNorm is refused): the
    per-example gradients are read from each example's own slice (index i of dimension 0) of
    every layer's input and output gradient, so a loss that couples examples (batch-normalised
    or contrastive terms) would void the sensitivity bound. What can be checked is: every
    trainable parameter has a per-example rule (checked here), every layer's dimension 0 has
    as many entries as the batch the returned loader gave and no other candidate dimension
    of that size the layer has not been seen to tell apart, no parameter gets a gradient
    from outside its layer, and every per-example gradient is finite (checked each step,
    before noise is drawn). Batches that do not come from the returned loader are not
    Poisson-sampled, so the reported epsilon does not cover them; their batch size is read
    from the first layer and only checked for consistency.
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
    opt_params = [p for group in optimizer.param_groups for p in group["params"]]
    if not {id(p) for p in params} <= {id(p) for p in opt_params}:
        raise ValueError("the optimiser must cover every trainable parameter of the module")
    module_params = {id(p) for p in module.parameters()}
    extra = [tuple(p.shape) for p in opt_params if p.requires_grad and id(p) not in module_params]
    if extra:
        raise ValueError(
            f"the optimiser also updates tensors that are not parameters of the module "
            f"(shapes {extra}); they would have no per-example gradient, so the optimiser "
            "must hold only the module's parameters"
        )
    engine = _Engine(module, plans, loss_reduction, loader)
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
