"""Which per-example rule clips each layer, and what is refused before anything runs."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from tutela.errors import PrivacyError

__all__ = ["Clipping", "LayerPlan", "UnsupportedModuleError", "validate"]


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
