"""Membership inference (tutela.dp.membership): the metrics, LiRA, and attacks on real models.

The attacker plays against models trained on the shipped Pima data: a non-private MLP that
overfits its half of the records leaks membership (loss-attack AUC above 0.6); the
same model trained with strong DP-SGD does not (AUC near 0.5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tutela.data.datasets import load_dataset
from tutela.dp.membership import (
    evaluate_attack,
    lira_scores,
    logit_confidence,
    loss_scores,
    roc_auc,
    tpr_at_fpr,
)
from tutela.dp.sgd import make_private
from tutela.hazmat.rng import SecureRandom

# -- metrics --------------------------------------------------------------------------------


def test_auc_known_values() -> None:
    assert roc_auc([2, 3], [0, 1]) == 1.0
    assert roc_auc([0, 1], [2, 3]) == 0.0
    assert roc_auc([1, 1], [1, 1]) == 0.5
    # member > non-member pairs, by hand: 0 beats none, 4 beats 3, 6 and 7 beat all 4
    assert roc_auc([0, 4, 6, 7], [1, 2, 3, 5]) == pytest.approx(11 / 16)


def test_auc_matches_the_mann_whitney_statistic() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.5, 1, 300), rng.normal(0, 1, 200)
    u = stats.mannwhitneyu(a, b, alternative="two-sided").statistic
    assert roc_auc(a, b) == pytest.approx(u / (300 * 200))


def test_tpr_at_fpr_counts_false_positives_exactly() -> None:
    members = np.arange(100, 200, dtype=float)  # all above every non-member
    nonmembers = np.arange(100, dtype=float)
    assert tpr_at_fpr(members, nonmembers, 0.01) == 1.0
    # the top non-member (99) beats half the members; one false positive in 100 is allowed
    members = np.concatenate([np.full(50, 150.0), np.full(50, 98.5)])
    assert tpr_at_fpr(members, nonmembers, 0.01) == 1.0
    assert tpr_at_fpr(members, nonmembers, 0.0) == 0.5
    with pytest.raises(ValueError, match="fpr"):
        tpr_at_fpr(members, nonmembers, 1.5)


def test_attack_needs_members_and_nonmembers() -> None:
    with pytest.raises(ValueError, match="both members and non-members"):
        evaluate_attack("loss", [1.0, 2.0], [True, True])


def test_lira_recovers_the_optimal_test_on_gaussian_confidences() -> None:
    """Confidences N(2, 1) when in, N(0, 1) when out: the likelihood ratio is the optimal
    test, whose AUC is Phi(2 / sqrt 2) = 0.921."""
    rng = np.random.default_rng(0)
    shadows, records = 64, 400
    inside = rng.random((shadows, records)) < 0.5
    phi = rng.normal(0, 1, (shadows, records)) + 2.0 * inside
    member = rng.random(records) < 0.5
    target = rng.normal(0, 1, records) + 2.0 * member
    result = evaluate_attack("lira", lira_scores(target, phi, inside), member)
    assert result.auc == pytest.approx(stats.norm.cdf(2 / math.sqrt(2)), abs=0.04)
    with pytest.raises(ValueError, match="both in and out"):
        lira_scores(target, phi, np.ones_like(inside))
    # a record every shadow trained on borrows the others' in-out gap
    inside[:, 0] = True
    assert np.isfinite(lira_scores(target, phi, inside)).all()


def test_lira_uses_each_records_own_offset() -> None:
    """Records differ in how confident any model is on them (offsets); the global loss
    threshold is confused by them, LiRA is not."""
    rng = np.random.default_rng(1)
    shadows, records = 16, 600
    offset = rng.normal(0, 3, records)
    inside = rng.random((shadows, records)) < 0.5
    phi = offset + rng.normal(0, 0.5, (shadows, records)) + 1.0 * inside
    member = rng.random(records) < 0.5
    target = offset + rng.normal(0, 0.5, records) + 1.0 * member
    lira = evaluate_attack("lira", lira_scores(target, phi, inside), member)
    naive = evaluate_attack("threshold", target, member)
    assert lira.auc > 0.8 > 0.65 > naive.auc


# -- attacks on real models (Pima) ----------------------------------------------------------


def _pima_halves() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    data = load_dataset("pima-diabetes")
    x = data.numeric_matrix()
    x = (x - x.mean(0)) / x.std(0)
    member = np.random.default_rng(7).random(len(x)) < 0.5
    return torch.from_numpy(x), torch.from_numpy(data.outcome.astype(np.float32)), member


def _losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = model(x).squeeze(-1)
        return nn.functional.binary_cross_entropy_with_logits(out, y, reduction="none").numpy()


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(7, 128), nn.ReLU(), nn.Linear(128, 1))


def test_loss_attack_on_an_overfit_model_and_on_a_strongly_private_one() -> None:
    x, y, member = _pima_halves()
    idx = torch.from_numpy(np.flatnonzero(member))
    train = TensorDataset(x[idx], y[idx])

    plain = _mlp()
    opt = torch.optim.Adam(plain.parameters(), lr=0.01)
    for _ in range(400):  # full batch: memorise the ~266 members
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(plain(x[idx]).squeeze(-1), y[idx]).backward()
        opt.step()
    leaky = evaluate_attack("loss", loss_scores(_losses(plain, x, y)), member)

    private_model = _mlp()
    private = make_private(
        private_model, torch.optim.Adam(private_model.parameters(), lr=0.01),
        DataLoader(train, batch_size=64), max_grad_norm=1.0, target_epsilon=0.5,
        delta=1e-5, epochs=40, rng=SecureRandom(5),
    )  # fmt: skip
    for _ in range(40):
        for xb, yb in private.data_loader:
            private.optimizer.zero_grad()
            if len(xb):
                out = private.module(xb).squeeze(-1)
                nn.functional.binary_cross_entropy_with_logits(out, yb).backward()
            private.optimizer.step()
    private.detach()
    assert private.epsilon(1e-5) <= 0.5 + 1e-6
    guarded = evaluate_attack("loss", loss_scores(_losses(private_model, x, y)), member)

    # an AUC on 532 records has a standard error of about 0.025 (0.5 - 0.6: four of them)
    assert leaky.auc > 0.6
    assert abs(guarded.auc - 0.5) < 0.08
    assert guarded.auc < leaky.auc - 0.05
    assert (leaky.members, leaky.nonmembers) == (int(member.sum()), int((~member).sum()))


def test_logit_confidence_is_finite_at_the_extremes() -> None:
    phi = logit_confidence([0.0, 0.5, 1.0])
    assert np.isfinite(phi).all() and phi[1] == 0.0 and phi[0] < -20 < 20 < phi[2]
