"""The clinic's own PyTorch model, named in a study as ``clinic_models:build``.

A study names this factory with the SHA-256 of this file (``tutela model hash
clinic_models:build``), and each hospital allow-lists that pair in its site policy: change
a byte here and every site refuses the study until the hash is updated in both places.
The coordinator never imports this module; only the sites (and the data scientist) do.
"""

from __future__ import annotations

import torch
from torch import nn


class ClinicNet(nn.Module):
    """A small residual MLP for tabular features: one logit for a binary outcome."""

    def __init__(self, n_features: int, hidden: int) -> None:
        super().__init__()
        self.inp = nn.Linear(n_features, hidden)
        self.block = nn.Sequential(nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        h = h + self.block(h)
        return self.out(nn.functional.gelu(h))


def build(n_features: int, hidden: int = 16) -> nn.Module:
    """The model for ``n_features`` encoded input columns (the study passes it)."""
    return ClinicNet(n_features, hidden)
