"""Real PyTorch models for tabular data, and moving their weights to and from records."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import torch
from torch import nn

from tutela.errors import DataError
from tutela.fl.records import Parameters, check_compatible


class ModelKind(StrEnum):
    LOGISTIC = "logistic"
    MLP = "mlp"


def build_model(
    kind: ModelKind | str, n_features: int, *, hidden: Sequence[int] = (32,), seed: int = 0
) -> nn.Module:
    """Build a binary classifier returning one logit per row.

    Args:
        kind: ``logistic`` (one linear layer) or ``mlp`` (ReLU hidden layers).
        n_features: input width.
        hidden: hidden layer widths for the MLP.
        seed: initial weights are a deterministic function of this seed.
    """
    if n_features < 1:
        raise ValueError("n_features must be positive")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        kind = ModelKind(kind)
        if kind is ModelKind.LOGISTIC:
            return nn.Sequential(nn.Linear(n_features, 1))
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        return nn.Sequential(*layers)
    finally:
        torch.random.set_rng_state(generator_state)


def get_parameters(module: nn.Module) -> Parameters:
    """Copy a module's trainable parameters into named float32 arrays."""
    return {
        name: p.detach().cpu().numpy().astype(np.float32, copy=True)
        for name, p in module.named_parameters()
    }


def set_parameters(module: nn.Module, params: Parameters) -> None:
    """Load named arrays into a module in place (names and shapes must match)."""
    current = get_parameters(module)
    try:
        check_compatible(params, current)
    except DataError:
        raise
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.from_numpy(np.asarray(params[name], np.float32)))
