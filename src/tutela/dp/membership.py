"""Membership-inference attacks on a released model: loss threshold and LiRA.

Both attacks turn what the model says about a record into a score (higher: more likely a
training member); :func:`evaluate_attack` reports the ROC AUC over members and
non-members and the true-positive rate at a low false-positive rate (1% by default), the
two numbers Carlini et al. ("Membership inference attacks from first principles", 2022)
argue matter.

- Loss threshold (Yeom et al. 2018): score = minus the record's loss.
- LiRA (Carlini et al. 2022, online variant): shadow models trained on random halves of a
  population give, for each record, the logit-scaled confidence phi = log(p / (1 - p)) of
  its true label when it was in and when it was out; a Gaussian fitted to each side gives
  the score log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out). With few shadows the
  variances are pooled over records (the paper's "global variance"), and a record that no
  shadow left out (or took in) borrows the average in-out gap of the others.

Everything here is arithmetic over arrays; training the target and shadow models is the
caller's (any runtime: DP-SGD, a federated study).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "AttackResult",
    "evaluate_attack",
    "lira_scores",
    "logit_confidence",
    "loss_scores",
    "roc_auc",
    "tpr_at_fpr",
]

_PROB_FLOOR = 1e-12
_MIN_STD = 1e-6
_GLOBAL_VARIANCE_BELOW = 32  # shadows per side under which variances are pooled


def _scores(values: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or len(a) == 0 or not np.isfinite(a).all():
        raise ValueError(f"{what} must be a non-empty 1-D array of finite numbers")
    return a


def roc_auc(members: npt.ArrayLike, nonmembers: npt.ArrayLike) -> float:
    """P[member score > non-member score] + P[tie] / 2 (the Mann-Whitney statistic)."""
    a = _scores(members, "member scores")
    b = _scores(nonmembers, "non-member scores")
    b_sorted = np.sort(b)
    below = np.searchsorted(b_sorted, a, side="left")
    ties = np.searchsorted(b_sorted, a, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(a) * len(b)))


def tpr_at_fpr(members: npt.ArrayLike, nonmembers: npt.ArrayLike, fpr: float = 0.01) -> float:
    """The largest true-positive rate of a threshold "score >= t" whose false-positive rate
    is at most ``fpr`` (no interpolation: with few non-members the achievable rates are
    multiples of 1 / len(nonmembers))."""
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    a = _scores(members, "member scores")
    b = np.sort(_scores(nonmembers, "non-member scores"))[::-1]
    allowed = math.floor(fpr * len(b) + 1e-9)  # false positives allowed
    # thresholds strictly above the (allowed + 1)-th highest non-member score
    if allowed >= len(b):
        return 1.0
    bar = b[allowed]
    return float(np.mean(a > bar))


@dataclass(frozen=True)
class AttackResult:
    """A membership attack's success.

    Attributes:
        attack: ``loss`` or ``lira``.
        auc: ROC AUC (0.5: no better than chance).
        tpr_at_1pct_fpr: true-positive rate at a false-positive rate of at most 1%.
        members, nonmembers: how many records of each kind were scored.
    """

    attack: str
    auc: float
    tpr_at_1pct_fpr: float
    members: int
    nonmembers: int


def evaluate_attack(attack: str, scores: npt.ArrayLike, is_member: npt.ArrayLike) -> AttackResult:
    """AUC and TPR at 1% FPR of ``scores`` (higher: member) against the truth."""
    s = _scores(scores, "scores")
    truth = np.asarray(is_member, dtype=bool)
    if truth.shape != s.shape:
        raise ValueError(f"scores {s.shape} and membership {truth.shape} differ in shape")
    if truth.all() or not truth.any():
        raise ValueError("an attack needs both members and non-members to be evaluated")
    members, nonmembers = s[truth], s[~truth]
    return AttackResult(
        attack,
        roc_auc(members, nonmembers),
        tpr_at_fpr(members, nonmembers, 0.01),
        int(truth.sum()),
        int((~truth).sum()),
    )


def loss_scores(losses: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The loss-threshold attack's scores: minus each record's loss."""
    return -_scores(losses, "losses")


def logit_confidence(prob_true_label: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """phi = log(p / (1 - p)) of the probability the model gives the true label."""
    p = np.clip(np.asarray(prob_true_label, dtype=np.float64), _PROB_FLOOR, 1 - _PROB_FLOOR)
    return np.log(p) - np.log1p(-p)


def _side(
    phi: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Per-record mean and standard deviation of ``phi`` where ``mask``, and which records
    have at least one observation (the mean of the others is NaN)."""
    counts = mask.sum(0)
    seen = counts > 0
    total = np.where(mask, phi, 0.0).sum(0)
    mean = np.where(seen, total / np.maximum(counts, 1), np.nan)
    dev2 = np.where(mask, (phi - np.nan_to_num(mean)) ** 2, 0.0).sum(0)
    if counts.min() < _GLOBAL_VARIANCE_BELOW:
        pooled = dev2.sum() / max(1, int(counts.sum()) - int(seen.sum()))
        std = np.full_like(total, math.sqrt(max(pooled, _MIN_STD**2)))
    else:
        std = np.sqrt(np.maximum(dev2 / np.maximum(counts - 1, 1), _MIN_STD**2))
    return mean, std, seen


def lira_scores(
    target_phi: npt.ArrayLike, shadow_phi: npt.ArrayLike, shadow_in: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """LiRA's likelihood-ratio scores (online variant).

    Args:
        target_phi: (records,) logit confidences on the attacked model.
        shadow_phi: (shadows, records) logit confidences on each shadow model.
        shadow_in: (shadows, records) whether each record trained each shadow.

    Raises:
        ValueError: shapes disagree, or no record is both in some shadow and out of another.
    """
    t = _scores(target_phi, "target confidences")
    phi = np.asarray(shadow_phi, dtype=np.float64)
    inside = np.asarray(shadow_in, dtype=bool)
    if phi.ndim != 2 or phi.shape != inside.shape or phi.shape[1] != len(t):
        raise ValueError(
            f"shadow confidences {phi.shape} and memberships {inside.shape} must both be "
            f"(shadows, {len(t)})"
        )
    if not np.isfinite(phi).all():
        raise ValueError("shadow confidences must be finite")
    mu_in, s_in, has_in = _side(phi, inside)
    mu_out, s_out, has_out = _side(phi, ~inside)
    both = has_in & has_out
    if not both.any():
        raise ValueError(
            "LiRA needs records both in and out of some shadow models; train more shadows "
            "(each on a random half of the population)"
        )
    # a record no shadow saw on one side gets that side's mean from the other side and the
    # average in-out gap over the records seen on both (with few shadows a few records are
    # in all of them, or in none)
    gap = float(np.mean(mu_in[both] - mu_out[both]))
    mu_in = np.where(has_in, mu_in, mu_out + gap)
    mu_out = np.where(has_out, mu_out, mu_in - gap)

    def log_normal(
        x: npt.NDArray[np.float64], mu: npt.NDArray[np.float64], s: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        return -0.5 * ((x - mu) / s) ** 2 - np.log(s)

    return log_normal(t, mu_in, s_in) - log_normal(t, mu_out, s_out)
