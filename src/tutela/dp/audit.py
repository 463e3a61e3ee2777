"""Empirical privacy audit in one training run (Steinke, Nasr and Jagielski, NeurIPS 2023).

An accountant's epsilon is an upper bound that holds only if the implementation under it
does what the analysis assumes. This module measures a lower bound from one training run:

1. take m canaries and include each independently with probability 1/2 (S_i = +1 or -1);
2. train once on the real data plus the included canaries;
3. score every canary (higher: more likely included), guess +1 for the ``k_plus`` highest
   scores and -1 for the ``k_minus`` lowest, abstain on the rest (r = k_plus + k_minus);
4. count the v correct guesses and turn (m, r, v) into the largest epsilon that an
   (epsilon, delta)-DP algorithm would produce so many correct guesses with probability
   below 1 - confidence (:func:`epsilon_lower_bound`).

Two ways to train and score:

- **white-box** (:func:`audit_dp_sgd`): Dirac gradient canaries injected into the clipped sum
  of a :func:`~tutela.dp.sgd.make_private` optimiser, each on its own coordinate of a block
  of parameters that no data touches; an included canary is Poisson-sampled into a step
  like a record (rate q) and contributes a gradient of norm exactly C; the score is the
  inner product of the final-minus-initial model with the canary's direction.
- **black-box** (:func:`audit_black_box`): input canaries (mislabelled or out-of-distribution
  records) added to the training data; the score is minus the released model's loss on
  each canary. The caller's ``train`` runs whatever is audited, e.g. a whole federated study.

Privacy: the audit states nothing about privacy by itself; a lower bound above the
accounted epsilon is evidence (at the stated confidence) that the implementation or its
accounting is wrong. A bound below it shows no such error, and is not a proof of privacy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from scipy import stats
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tutela.dp.sgd import make_private
from tutela.dp.sgd.optimizer import DPOptimizer
from tutela.hazmat.rng import SecureRandom

__all__ = [
    "AuditMode",
    "AuditResult",
    "AuditedModule",
    "CanaryBlock",
    "DiracCanaries",
    "audit_black_box",
    "audit_dp_sgd",
    "audit_scores",
    "default_guesses",
    "draw_inclusion",
    "epsilon_lower_bound",
    "guess",
    "mislabelled_canaries",
    "one_run_p_value",
    "out_of_distribution_canaries",
]

_BISECTION_STEPS = 30  # as in the paper's appendix: 2**-30 of the bracket


class AuditMode(StrEnum):
    """How canaries are inserted and scored."""

    WHITE_BOX = "white-box"
    BLACK_BOX = "black-box"


# -- the bound (the paper's Theorem and the numerical procedure of its appendix) --------------


def _check_counts(m: int, r: int, v: int) -> None:
    for name, value in (("m", m), ("r", r), ("v", v)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= correct <= guesses <= canaries, got {v}, {r}, {m}")


def _check_delta(delta: float) -> None:
    if not (math.isfinite(delta) and 0 <= delta <= 1):
        raise ValueError(f"delta must be in [0, 1], got {delta}")


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """Probability of at least ``v`` correct among ``r`` guesses on ``m`` canaries, at most,
    if the algorithm is (epsilon, delta)-DP (the null hypothesis).

    Steinke et al., Theorem 5.2 and the appendix's procedure: with q = e^eps / (1 + e^eps)
    (the accuracy of eps-DP randomised response), the p-value is
    ``P[Binomial(r, q) >= v] + 2 m delta max_{1<=i<=v} P[v > Binomial(r, q) >= v - i] / i``,
    capped at 1.

    Raises:
        ValueError: counts out of order, a negative or non-finite epsilon, delta outside [0, 1].
    """
    _check_counts(m, r, v)
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise ValueError(f"epsilon must be finite and non-negative, got {epsilon}")
    _check_delta(delta)
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(stats.binom.sf(v - 1, r, q))  # P[Binomial(r, q) >= v]
    if delta == 0 or v == 0:
        return min(tail, 1.0)
    i = np.arange(1, v + 1)
    # running sums P[v > Binomial(r, q) >= v - i], i = 1..v
    window = np.cumsum(stats.binom.pmf(v - i, r, q))
    alpha = float(np.max(window / i))
    return min(tail + alpha * delta * 2 * m, 1.0)


def epsilon_lower_bound(m: int, r: int, v: int, *, delta: float, confidence: float) -> float:
    """The largest epsilon rejected at ``confidence``: ``v`` correct of ``r`` guesses on ``m``
    canaries would have probability below ``1 - confidence`` under (epsilon, delta)-DP.

    The paper's search: raise an upper end in steps of 1 until the p-value reaches
    1 - confidence, then bisect 30 times, keeping the lower end rejected. Returns 0.0 when
    no epsilon is rejected.

    Raises:
        ValueError: counts out of order, delta outside [0, 1], confidence outside (0, 1).
    """
    _check_counts(m, r, v)
    _check_delta(delta)
    if not (math.isfinite(confidence) and 0 < confidence < 1):
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    beta = 1.0 - confidence
    low, high = 0.0, 1.0  # p(low) < beta is kept; p(high) >= beta
    if one_run_p_value(m, r, v, low, delta) >= beta:
        return 0.0
    while one_run_p_value(m, r, v, high, delta) < beta:
        low, high = high, high + 1.0
    for _ in range(_BISECTION_STEPS):
        mid = (low + high) / 2
        if one_run_p_value(m, r, v, mid, delta) < beta:
            low = mid
        else:
            high = mid
    return low


# -- canaries, guesses, the result ------------------------------------------------------------


def draw_inclusion(m: int, rng: SecureRandom | None = None) -> npt.NDArray[np.bool_]:
    """Include each of ``m`` canaries independently with probability 1/2 (CSPRNG default)."""
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"the number of canaries must be a positive int, got {m!r}")
    return np.asarray((rng or SecureRandom()).bits(m), dtype=bool)


def default_guesses(m: int) -> int:
    """Guesses on each side when none are given: a quarter of the canaries (r = m / 2)."""
    return max(1, m // 4)


def guess(
    scores: npt.ArrayLike, k_plus: int, k_minus: int, rng: SecureRandom | None = None
) -> npt.NDArray[np.int8]:
    """+1 for the ``k_plus`` highest scores, -1 for the ``k_minus`` lowest, 0 elsewhere.

    Ties are broken at random, so equal scores carry no hidden order.

    Raises:
        ValueError: non-finite scores, negative counts, or more guesses than canaries.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or not np.isfinite(s).all():
        raise ValueError("scores must be a one-dimensional array of finite numbers")
    if k_plus < 0 or k_minus < 0 or k_plus + k_minus > len(s):
        raise ValueError(
            f"need 0 <= k_plus, k_minus and k_plus + k_minus <= {len(s)} canaries, "
            f"got {k_plus} and {k_minus}"
        )
    tiebreak = (rng or SecureRandom()).uniform(len(s))
    order = np.lexsort((tiebreak, s))  # ascending score, random among equal scores
    t = np.zeros(len(s), dtype=np.int8)
    if k_minus:
        t[order[:k_minus]] = -1
    if k_plus:
        t[order[len(s) - k_plus :]] = 1
    return t


@dataclass(frozen=True)
class AuditResult:
    """One audit: what was inserted, guessed and concluded.

    Attributes:
        mode: white-box or black-box.
        canaries: m, the canaries drawn (each included with probability 1/2).
        included: how many were included.
        k_plus, k_minus: guesses "included" and "excluded".
        guesses: r = k_plus + k_minus.
        correct: v, the correct guesses.
        confidence: the confidence of the lower bound (1 - beta).
        delta: the delta of the (epsilon, delta) claim tested.
        epsilon_lower_bound: the empirical lower bound on epsilon.
        claimed_epsilon: the accountant's epsilon for the run, when known.
    """

    mode: AuditMode
    canaries: int
    included: int
    k_plus: int
    k_minus: int
    guesses: int
    correct: int
    confidence: float
    delta: float
    epsilon_lower_bound: float
    claimed_epsilon: float | None

    @property
    def contradicts_claim(self) -> bool | None:
        """Whether the lower bound exceeds the claimed epsilon (``None`` without a claim)."""
        if self.claimed_epsilon is None:
            return None
        return self.epsilon_lower_bound > self.claimed_epsilon

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the mode as its value)."""
        out = asdict(self)
        out["mode"] = self.mode.value
        out["contradicts_claim"] = self.contradicts_claim
        return out


def audit_scores(
    scores: npt.ArrayLike,
    included: npt.ArrayLike,
    *,
    mode: AuditMode,
    k_plus: int | None = None,
    k_minus: int | None = None,
    confidence: float = 0.95,
    delta: float = 0.0,
    claimed_epsilon: float | None = None,
    rng: SecureRandom | None = None,
) -> AuditResult:
    """Guess from ``scores`` (higher: more likely included) and bound epsilon.

    ``k_plus`` and ``k_minus`` default to :func:`default_guesses`; they must be fixed before
    the scores are seen (choosing them afterwards would void the confidence).
    """
    s = np.asarray(scores, dtype=np.float64)
    inc = np.asarray(included, dtype=bool)
    if s.shape != inc.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and inclusion {inc.shape} must be equal 1-D shapes")
    m = len(s)
    kp = default_guesses(m) if k_plus is None else k_plus
    km = default_guesses(m) if k_minus is None else k_minus
    t = guess(s, kp, km, rng)
    truth = np.where(inc, 1, -1)
    v = int(np.sum(t == truth))
    r = kp + km
    bound = epsilon_lower_bound(m, r, v, delta=delta, confidence=confidence)
    return AuditResult(
        mode=mode,
        canaries=m,
        included=int(inc.sum()),
        k_plus=kp,
        k_minus=km,
        guesses=r,
        correct=v,
        confidence=confidence,
        delta=delta,
        epsilon_lower_bound=bound,
        claimed_epsilon=claimed_epsilon,
    )


# -- white-box: Dirac gradient canaries on a DP-SGD optimiser ---------------------------------


class CanaryBlock(nn.Module):
    """m trainable coordinates that only canary gradients reach (never called in forward).

    DP-SGD noises them like every other parameter; a canary's Dirac gradient is its one
    coordinate, so the data's gradients never mask it.
    """

    def __init__(self, m: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(m))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class AuditedModule(nn.Module):
    """A model with a :class:`CanaryBlock` beside it; the forward is the model's."""

    def __init__(self, model: nn.Module, m: int) -> None:
        super().__init__()
        self.model = model
        self.canary = CanaryBlock(m)

    def forward(self, *args: Any) -> Any:
        return self.model(*args)


class DiracCanaries:
    """Dirac gradient canaries injected into a :class:`DPOptimizer`'s clipped sum.

    Canary i, when included, is sampled into each step with the optimiser's rate q, like a
    record, and then adds the gradient ``-C e_i`` (norm exactly C, the clip) on coordinate i
    of ``block``: a descent step moves that coordinate up, so the score, the inner product
    of the final-minus-initial model with the canary's direction e_i, is the coordinate's
    change.

    Attributes:
        included: which canaries are in the training set.
        counts: how many steps sampled each canary (0 for every excluded one).
    """

    def __init__(
        self,
        block: CanaryBlock,
        included: npt.NDArray[np.bool_],
        *,
        sample_rate: float,
        max_grad_norm: float,
        rng: SecureRandom | None = None,
    ) -> None:
        if included.shape != tuple(block.weight.shape):
            raise ValueError("one inclusion flag per canary coordinate is needed")
        self.block = block
        self.included = included.astype(bool)
        self.sample_rate = float(sample_rate)
        self.max_grad_norm = float(max_grad_norm)
        self.rng = rng if rng is not None else SecureRandom()
        self.counts = np.zeros(len(included), dtype=np.int64)
        self.initial = block.weight.detach().clone()

    def attach(self, optimizer: DPOptimizer) -> None:
        """Inject this step's sampled canaries into every later step of ``optimizer``."""
        if not any(p is self.block.weight for p in optimizer._params):
            raise ValueError("the optimiser does not train the canary block")
        optimizer.canary_gradients = self.gradients

    def gradients(self) -> dict[nn.Parameter, torch.Tensor]:
        """This step's canary gradients (sampled now), summed, for the canary block."""
        sampled = self.included & (self.rng.uniform(len(self.included)) < self.sample_rate)
        self.counts += sampled
        g = torch.zeros_like(self.block.weight, dtype=torch.float32)
        g[torch.from_numpy(sampled)] = -self.max_grad_norm
        return {self.block.weight: g}

    def scores(self) -> npt.NDArray[np.float64]:
        """Inner product of the final-minus-initial block with each canary's direction."""
        delta = self.block.weight.detach() - self.initial
        return delta.double().numpy().copy()


def _batches(loader: Any, epochs: int) -> Iterator[Any]:
    for _ in range(epochs):
        yield from loader


def audit_dp_sgd(
    model: nn.Module,
    dataset: TensorDataset,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    canaries: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    max_grad_norm: float,
    noise_multiplier: float | None = None,
    target_epsilon: float | None = None,
    delta: float = 1e-5,
    confidence: float = 0.95,
    k_plus: int | None = None,
    k_minus: int | None = None,
    rng: SecureRandom | None = None,
) -> AuditResult:
    """White-box one-run audit of :func:`~tutela.dp.sgd.make_private`'s DP-SGD.

    Trains ``model`` (with a :class:`CanaryBlock` of ``canaries`` coordinates beside it) on
    ``dataset`` with plain SGD made private, Dirac canaries injected (:class:`DiracCanaries`),
    then guesses and bounds epsilon; ``claimed_epsilon`` is the run's accountant at ``delta``.

    Args:
        model: the model (trained in place).
        dataset: (features, labels) records.
        loss_fn: ``loss_fn(model(x), y)``, mean-reduced over the batch.
        canaries: m.
        epochs, batch_size, learning_rate, max_grad_norm: DP-SGD's settings.
        noise_multiplier, target_epsilon: give one (as :func:`make_private`).
        delta: the delta of the claim and of the bound.
        confidence: of the lower bound.
        k_plus, k_minus: guesses each side (default :func:`default_guesses`).
        rng: CSPRNG for inclusion, canary sampling, DP-SGD's noise and sampling, tie breaks.
    """
    rng = rng if rng is not None else SecureRandom()
    included = draw_inclusion(canaries, rng)
    audited = AuditedModule(model, canaries)
    optimizer = torch.optim.SGD(audited.parameters(), lr=learning_rate)
    loader = DataLoader(dataset, batch_size=batch_size)
    private = make_private(
        audited,
        optimizer,
        loader,
        max_grad_norm=max_grad_norm,
        noise_multiplier=noise_multiplier,
        target_epsilon=target_epsilon,
        delta=delta,
        epochs=epochs,
        rng=rng,
    )
    dirac = DiracCanaries(
        audited.canary,
        included,
        sample_rate=private.optimizer.sample_rate,
        max_grad_norm=max_grad_norm,
        rng=rng,
    )
    dirac.attach(private.optimizer)
    try:
        for x, y in _batches(private.data_loader, epochs):
            private.optimizer.zero_grad()
            if len(x):
                torch.autograd.backward(loss_fn(audited(x), y))
            private.optimizer.step()
    finally:
        private.detach()
    return audit_scores(
        dirac.scores(),
        included,
        mode=AuditMode.WHITE_BOX,
        k_plus=k_plus,
        k_minus=k_minus,
        confidence=confidence,
        delta=delta,
        claimed_epsilon=private.epsilon(delta),
        rng=rng,
    )


# -- black-box: input canaries, loss scores on the released model ------------------------------

CanaryTrainer = Callable[[npt.NDArray[np.bool_]], tuple[npt.NDArray[np.float64], float | None]]
"""``train(included) -> (loss of each canary on the released model, claimed epsilon)``."""


def audit_black_box(
    train: CanaryTrainer,
    canaries: int,
    *,
    delta: float = 1e-5,
    confidence: float = 0.95,
    k_plus: int | None = None,
    k_minus: int | None = None,
    rng: SecureRandom | None = None,
) -> AuditResult:
    """Black-box one-run audit: ``train`` adds the included canaries to the training data,
    runs what is audited, and returns each canary's loss on the released model (all m, in
    order) with the run's claimed epsilon; the score is minus the loss.

    Raises:
        ValueError: ``train`` returned a loss per canary of the wrong shape or not finite.
    """
    rng = rng if rng is not None else SecureRandom()
    included = draw_inclusion(canaries, rng)
    losses, claimed = train(included.copy())
    losses = np.asarray(losses, dtype=np.float64)
    if losses.shape != (canaries,) or not np.isfinite(losses).all():
        raise ValueError(f"train must return {canaries} finite canary losses, got {losses.shape}")
    return audit_scores(
        -losses,
        included,
        mode=AuditMode.BLACK_BOX,
        k_plus=k_plus,
        k_minus=k_minus,
        confidence=confidence,
        delta=delta,
        claimed_epsilon=claimed,
        rng=rng,
    )


def mislabelled_canaries(
    x: npt.ArrayLike, y: npt.ArrayLike, m: int, rng: SecureRandom | None = None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """``m`` distinct records drawn from ``(x, y)`` with their binary label flipped.

    Raises:
        ValueError: fewer records than canaries, or labels that are not 0/1.
    """
    xs = np.asarray(x, dtype=np.float32)
    ys = np.asarray(y)
    if len(xs) < m:
        raise ValueError(f"{m} mislabelled canaries need at least {m} records, got {len(xs)}")
    if not np.isin(ys, (0, 1)).all():
        raise ValueError("mislabelled canaries flip binary 0/1 labels")
    keys = (rng or SecureRandom()).uniform(len(xs))
    pick = np.argsort(keys)[:m]
    return xs[pick].copy(), (1 - ys[pick]).astype(np.int64)


def out_of_distribution_canaries(
    low: Sequence[float], high: Sequence[float], m: int, rng: SecureRandom | None = None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """``m`` records uniform over the box ``[low, high]`` (declared feature ranges, not the
    data's joint distribution) with uniformly random 0/1 labels."""
    lo = np.asarray(low, dtype=np.float64)
    hi = np.asarray(high, dtype=np.float64)
    if lo.shape != hi.shape or lo.ndim != 1 or not (hi > lo).all():
        raise ValueError("low and high must be equal-length ranges with low < high")
    gen = rng or SecureRandom()
    u = gen.uniform(m * len(lo)).reshape(m, len(lo))
    labels = np.asarray(gen.bits(m), dtype=np.int64)
    return (lo + u * (hi - lo)).astype(np.float32), labels
