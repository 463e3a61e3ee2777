"""The ``poly-mlp`` model kind: one activation shared by training and the HE service, and
DP-SGD's per-layer rules accept it (it has no parameters of its own)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tutela.dp.sgd import make_private, validate
from tutela.fl.config import parse_study
from tutela.fl.models import ModelKind, QuadraticActivation, build_model, get_parameters
from tutela.he.network import QUADRATIC_RELU, PolyNetwork


def test_a_study_file_declares_a_poly_mlp() -> None:
    config = parse_study({"study": {"name": "s"}, "model": {"kind": "poly-mlp", "hidden": [16]}})
    assert config.model.kind is ModelKind.POLY_MLP
    model = build_model(config.model.kind, 5, hidden=config.model.hidden)
    assert [type(m).__name__ for m in model] == ["Linear", "QuadraticActivation", "Linear"]
    assert model[1].coefficients == QUADRATIC_RELU
    assert not list(model[1].parameters())


def test_the_module_computes_the_networks_polynomial() -> None:
    """The same weights in PyTorch and in the HE network give the same logits."""
    model = build_model("poly-mlp", 4, hidden=(6, 3), seed=1).double()
    layers = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in model[::2]]
    net = PolyNetwork.from_standardised(
        list("abcd"), layers, np.zeros(4), np.ones(4), [(-3.0, 3.0)] * 4
    )
    x = np.random.default_rng(0).uniform(-3, 3, size=(50, 4))
    with torch.no_grad():
        expected = model(torch.from_numpy(x))[:, 0].numpy()
    np.testing.assert_allclose(net.score_plain(x), expected, rtol=1e-12, atol=1e-12)
    other = QuadraticActivation((0.0, 1.0, 0.5))  # coefficients are not ignored
    h = torch.tensor([2.0])
    assert float(other(h)) == pytest.approx(2.0 + 0.5 * 4.0)


def test_dp_sgd_clips_a_poly_mlp_per_layer_and_trains_it() -> None:
    model = build_model("poly-mlp", 30, hidden=(16,), seed=0)
    plans = validate(model)
    assert [(p.name, p.module_type, p.path) for p in plans] == [
        ("0", "Linear", "ghost"),
        ("2", "Linear", "ghost"),
    ]
    X, y = load_breast_cancer(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    mean, std = xtr.mean(axis=0), xtr.std(axis=0)
    data = TensorDataset(
        torch.tensor((xtr - mean) / std, dtype=torch.float32),
        torch.tensor(ytr, dtype=torch.float32),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    private = make_private(
        model,
        optimizer,
        DataLoader(data, batch_size=64),
        max_grad_norm=1.0,
        noise_multiplier=1.0,
        rng=torch.Generator().manual_seed(0),
    )
    net, opt, loader = private
    for _ in range(10):
        for xb, yb in loader:
            opt.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(net(xb)[:, 0], yb).backward()
            opt.step()
    assert 0 < private.epsilon(1e-5) < float("inf")
    assert all(np.all(np.isfinite(v)) for v in get_parameters(model).values())
    with torch.no_grad():
        logits = net(torch.tensor((xte - mean) / std, dtype=torch.float32))[:, 0].numpy()
    assert float(np.mean((logits > 0) == yte)) >= 0.9
