"""Per-layer maths: ghost norms, clipped sums and per-example gradients from stored tensors.

A: the layer input, G: dLoss_i/dOutput (already scaled to per-example losses), c: clip
factors. Each handler returns squared per-example norms or clipped sums per parameter.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as nnf

from tutela.dp.sgd.plan import _CONV, LayerPlan, _own_params


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


def ghost_norm2(module: nn.Module, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Linear):
        return _linear_norm2(module, a, g)
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        return _conv_norm2(module, a, g)
    assert isinstance(module, nn.Embedding)
    return _embedding_norm2(module, a, g)


def ghost_sum(
    module: nn.Module, a: torch.Tensor, g: torch.Tensor, c: torch.Tensor
) -> dict[str, torch.Tensor]:
    c = c.to(g.dtype)
    if isinstance(module, nn.Linear):
        return _linear_sum(module, a, g, c)
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        return _conv_sum(module, a, g, c)
    assert isinstance(module, nn.Embedding)
    return _embedding_sum(module, a, g, c)


def per_example(
    module: nn.Module,
    plan: LayerPlan,
    calls: list[tuple[tuple[Any, ...], dict[str, Any], torch.Tensor]],
) -> dict[str, torch.Tensor]:
    """Materialised per-example gradients, summed over the layer's calls (args, kwargs, G)."""
    total: dict[str, torch.Tensor] = {}
    for args, kwargs, g in calls:
        if plan.path == "ghost" and isinstance(module, nn.LayerNorm):
            part = _layernorm_grads(module, args[0], g)
        elif plan.path == "ghost" and isinstance(module, nn.Linear):
            part = _linear_per_example(module, args[0], g)
        else:
            part = _functorch_grads(module, args, kwargs, g)
        for n, v in part.items():
            total[n] = v if n not in total else total[n] + v
    return total
