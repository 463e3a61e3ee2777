"""Shared set-up for the HE-service tests: a PKI, trained models, a running service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from torch import nn

from tutela.he.network import QUADRATIC_RELU, PolyNetwork
from tutela.server.he_service.models import save_model_file
from tutela.server.pki import PkiLayout, init_ca, issue_to_files

FEATURES = [f"f{i}" for i in range(30)]


@dataclass
class Split:
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @property
    def ranges(self) -> list[tuple[float, float]]:
        """Declared ranges: 0 to twice the training maximum (every feature is >= 0)."""
        return [(0.0, float(2 * m)) for m in self.x_train.max(axis=0)]


def breast_cancer() -> Split:
    X, y = load_breast_cancer(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    return Split(xtr, xte, ytr, yte, xtr.mean(axis=0), xtr.std(axis=0))


def logistic_file(path: Path, data: Split) -> PolyNetwork:
    sk = LogisticRegression(C=0.1, max_iter=2000).fit(
        (data.x_train - data.mean) / data.std, data.y_train
    )
    return save_model_file(
        path, FEATURES, [(sk.coef_, sk.intercept_)], data.mean, data.std, ranges=data.ranges
    )


class _Quadratic(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a0, a1, a2 = QUADRATIC_RELU
        return a0 + a1 * h + a2 * h * h


def mlp_file(path: Path, data: Split, hidden: int = 8) -> PolyNetwork:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, hidden), _Quadratic(), nn.Linear(hidden, 1))
    x = torch.tensor((data.x_train - data.mean) / data.std, dtype=torch.float32)
    y = torch.tensor(data.y_train, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y)
        loss.backward()
        opt.step()
    layers = [
        (model[0].weight.detach().numpy(), model[0].bias.detach().numpy()),
        (model[2].weight.detach().numpy(), model[2].bias.detach().numpy()),
    ]
    return save_model_file(path, FEATURES, layers, data.mean, data.std, ranges=data.ranges)


def make_pki(root: Path, *clients: str) -> PkiLayout:
    init_ca(root)
    issue_to_files(root, kind="server", name="localhost", sans=["127.0.0.1"])
    for name in clients:
        issue_to_files(root, kind="site", name=name)
    return PkiLayout(root)


def frame(X: np.ndarray) -> dict[str, np.ndarray]:
    return {name: X[:, j] for j, name in enumerate(FEATURES)}
