"""One-run privacy audit (tutela.dp.audit): the bound, the canaries, and DP-SGD audited.

The DP-SGD tests play the cheating implementation: an optimiser that silently drops its
noise (a test-only patch of ``DPOptimizer._release``) while its accountant still claims
epsilon = 1 must be caught (lower bound above the claim); with the noise in place the
bound stays below the claim.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tutela.dp.audit import (
    AuditedModule,
    AuditMode,
    AuditResult,
    DiracCanaries,
    audit_black_box,
    audit_dp_sgd,
    audit_scores,
    default_guesses,
    draw_inclusion,
    epsilon_lower_bound,
    guess,
    mislabelled_canaries,
    one_run_p_value,
    out_of_distribution_canaries,
)
from tutela.dp.sgd import make_private
from tutela.dp.sgd.optimizer import DPOptimizer
from tutela.hazmat.rng import SecureRandom


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# -- the bound ------------------------------------------------------------------------------


@pytest.mark.parametrize("r", [10, 100, 500])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_all_correct_guesses_give_the_closed_form(r: int, confidence: float) -> None:
    """With delta = 0 and every guess right, P[correct] = q^r, so the bound is
    logit((1 - confidence)^(1/r)) (for r = 100 at 95%: 3.49)."""
    expected = _logit((1 - confidence) ** (1 / r))
    got = epsilon_lower_bound(1000, r, r, delta=0.0, confidence=confidence)
    assert got == pytest.approx(expected, abs=1e-6)


def test_known_value_r100_at_95_percent() -> None:
    assert epsilon_lower_bound(1000, 100, 100, delta=0.0, confidence=0.95) == pytest.approx(
        3.4930, abs=1e-4
    )


def _p_value_by_hand(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """The theorem's p-value written out term by term with exact binomial coefficients."""
    q = math.exp(eps) / (1 + math.exp(eps))

    def pmf(k: int) -> float:
        return math.comb(r, k) * q**k * (1 - q) ** (r - k)

    tail = sum(pmf(k) for k in range(v, r + 1))
    alpha = max(sum(pmf(k) for k in range(v - i, v)) / i for i in range(1, v + 1))
    return min(1.0, tail + 2 * m * delta * alpha)


@pytest.mark.parametrize(("m", "r", "v", "eps", "delta"), [
    (50, 20, 15, 0.5, 1e-3), (200, 40, 33, 1.0, 1e-4), (10, 10, 9, 2.0, 0.01),
    (100, 30, 30, 0.0, 1e-5),
])  # fmt: skip
def test_p_value_matches_the_theorem_term_by_term(
    m: int, r: int, v: int, eps: float, delta: float
) -> None:
    assert one_run_p_value(m, r, v, eps, delta) == pytest.approx(
        _p_value_by_hand(m, r, v, eps, delta), rel=1e-9
    )


def test_bound_sits_where_the_p_value_crosses_one_minus_confidence() -> None:
    """Rejected just below the bound, not rejected just above (both sides checked)."""
    m, r, v, delta = 1000, 200, 170, 1e-5
    eps = epsilon_lower_bound(m, r, v, delta=delta, confidence=0.95)
    assert eps > 0
    assert one_run_p_value(m, r, v, eps - 1e-6, delta) < 0.05
    assert one_run_p_value(m, r, v, eps + 1e-6, delta) >= 0.05


def test_bound_is_monotone_in_confidence_correct_guesses_and_delta() -> None:
    by_conf = [epsilon_lower_bound(1000, 200, 170, delta=1e-5, confidence=c)
               for c in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999)]  # fmt: skip
    assert all(a > b for a, b in itertools.pairwise(by_conf))
    by_v = [epsilon_lower_bound(1000, 200, v, delta=1e-5, confidence=0.95)
            for v in (120, 140, 160, 180, 200)]  # fmt: skip
    assert all(a < b for a, b in itertools.pairwise(by_v))
    by_delta = [epsilon_lower_bound(1000, 200, 180, delta=d, confidence=0.95)
                for d in (0.0, 1e-6, 1e-4, 1e-3)]  # fmt: skip
    assert all(a >= b for a, b in itertools.pairwise(by_delta))
    assert by_delta[0] > by_delta[-1]


def test_chance_guessing_bounds_nothing() -> None:
    assert epsilon_lower_bound(1000, 200, 100, delta=1e-5, confidence=0.95) == 0.0
    assert epsilon_lower_bound(1000, 0, 0, delta=0.0, confidence=0.95) == 0.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="correct <= guesses <= canaries"):
        epsilon_lower_bound(10, 20, 5, delta=0.0, confidence=0.95)
    with pytest.raises(ValueError, match="confidence"):
        epsilon_lower_bound(10, 5, 5, delta=0.0, confidence=1.0)
    with pytest.raises(ValueError, match="delta"):
        one_run_p_value(10, 5, 5, 1.0, -0.1)
    with pytest.raises(TypeError):
        epsilon_lower_bound(10, 5.0, 5, delta=0.0, confidence=0.95)  # type: ignore[arg-type]


def test_randomised_response_is_caught_rarely_and_bounded_tightly() -> None:
    """eps0-DP randomised response on m canaries: the 95% bound exceeds eps0 in at most
    about 5% of runs (validity; false-failure rate of this check below 1e-4: Binomial(200,
    0.05) >= 25), and comes within a factor of two of eps0 on average (the bound is close
    for randomised response)."""
    eps0, m, trials = 2.0, 1000, 200
    keep = math.exp(eps0) / (1 + math.exp(eps0))
    rng = np.random.default_rng(1234)
    gen = SecureRandom(99)
    over, bounds = 0, []
    for _ in range(trials):
        included = rng.random(m) < 0.5
        truthful = rng.random(m) < keep
        scores = np.where(included == truthful, 1.0, -1.0)
        result = audit_scores(
            scores, included, mode=AuditMode.BLACK_BOX, k_plus=250, k_minus=250,
            confidence=0.95, rng=gen,
        )  # fmt: skip
        over += result.epsilon_lower_bound > eps0
        bounds.append(result.epsilon_lower_bound)
    assert over < 25
    assert stats.binom.sf(24, trials, 0.05) < 1e-4
    assert eps0 / 2 < float(np.mean(bounds)) < eps0


# -- canaries and guesses ---------------------------------------------------------------------


def test_inclusion_draws_exactly_m_fair_coins() -> None:
    inc = draw_inclusion(10_000, SecureRandom(5))
    assert inc.shape == (10_000,) and inc.dtype == bool
    # 4.5 standard deviations: false-failure rate below 1e-5
    assert abs(int(inc.sum()) - 5000) < 4.5 * 50
    with pytest.raises(ValueError, match="positive"):
        draw_inclusion(0)


def test_guesses_are_exactly_the_top_and_bottom_k() -> None:
    scores = np.arange(20, dtype=float)
    t = guess(scores, 3, 5, SecureRandom(1))
    assert list(np.flatnonzero(t == 1)) == [17, 18, 19]
    assert list(np.flatnonzero(t == -1)) == [0, 1, 2, 3, 4]
    assert int((t == 0).sum()) == 12
    with pytest.raises(ValueError, match="k_plus"):
        guess(scores, 15, 6)
    with pytest.raises(ValueError, match="finite"):
        guess([1.0, float("nan")], 1, 0)


def test_tied_scores_are_guessed_at_random() -> None:
    """Equal scores carry no order: the canary guessed 'in' among ties varies."""
    picked = {int(np.flatnonzero(guess(np.zeros(8), 1, 0, SecureRandom(s)) == 1)[0])
              for s in range(40)}  # fmt: skip
    assert len(picked) > 3


def test_default_guesses_and_counts_in_the_result() -> None:
    inc = np.array([True, False] * 50)
    result = audit_scores(inc.astype(float), inc, mode=AuditMode.WHITE_BOX, rng=SecureRandom(0))
    assert default_guesses(100) == 25
    assert (result.canaries, result.included, result.guesses, result.correct) == (100, 50, 50, 50)
    assert result.to_dict()["mode"] == "white-box"


def test_input_canaries() -> None:
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.array([0, 1] * 10)
    cx, cy = mislabelled_canaries(x, y, 7, SecureRandom(3))
    assert cx.shape == (7, 2)
    rows = [int(np.flatnonzero((x == row).all(1))[0]) for row in cx]
    assert len(set(rows)) == 7 and list(cy) == [1 - y[i] for i in rows]
    with pytest.raises(ValueError, match="at least"):
        mislabelled_canaries(x, y, 21)
    ox, oy = out_of_distribution_canaries([0, 10], [1, 20], 50, SecureRandom(4))
    assert ox.shape == (50, 2) and set(np.unique(oy)) <= {0, 1}
    assert (ox[:, 0] >= 0).all() and (ox[:, 1] <= 20).all() and (ox[:, 1] >= 10).all()


# -- white-box DP-SGD ---------------------------------------------------------------------------


def _data(n: int = 256, d: int = 10) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).float())


def _bce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(out.squeeze(-1), y)


def _noise_free_release(self: DPOptimizer, p: nn.Parameter, s: torch.Tensor | None) -> torch.Tensor:
    """The cheat: the clipped sum released without noise (the accountant is untouched)."""
    s = torch.zeros_like(p) if s is None else s.detach()
    return s.to(p.dtype).div(self.expected_batch_size)


def _audit(seed: int, confidence: float = 0.95) -> AuditResult:
    return audit_dp_sgd(
        nn.Sequential(nn.Linear(10, 1)), _data(), loss_fn=_bce, canaries=200, epochs=4,
        batch_size=32, learning_rate=0.5, max_grad_norm=1.0, target_epsilon=1.0,
        delta=1e-5, confidence=confidence, rng=SecureRandom(seed),
    )  # fmt: skip


def test_dp_sgd_without_noise_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DPOptimizer, "_release", _noise_free_release)
    result = _audit(seed=1)
    assert result.claimed_epsilon == pytest.approx(1.0, abs=0.01)
    assert result.epsilon_lower_bound > 3.0 > result.claimed_epsilon
    assert result.contradicts_claim is True


def test_dp_sgd_with_noise_stays_below_its_claim() -> None:
    result = _audit(seed=2)
    assert result.canaries == 200 and result.guesses == 100
    assert result.claimed_epsilon == pytest.approx(1.0, abs=0.01)
    assert result.epsilon_lower_bound < result.claimed_epsilon
    assert result.contradicts_claim is False


def test_confidence_is_honoured_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DPOptimizer, "_release", _noise_free_release)
    low, high = _audit(seed=3, confidence=0.5), _audit(seed=3, confidence=0.999)
    assert (low.correct, low.guesses) == (high.correct, high.guesses)  # same run, same seed
    assert high.epsilon_lower_bound < low.epsilon_lower_bound
    for r in (low, high):
        assert r.epsilon_lower_bound == epsilon_lower_bound(
            r.canaries, r.guesses, r.correct, delta=r.delta, confidence=r.confidence
        )


def test_exactly_the_included_canaries_reach_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without noise each canary coordinate moves by lr C (times sampled) / B exactly, and an
    excluded canary's never moves: m canaries are inserted, no more, no fewer."""
    monkeypatch.setattr(DPOptimizer, "_release", _noise_free_release)
    m, lr = 64, 0.25
    rng = SecureRandom(11)
    audited = AuditedModule(nn.Sequential(nn.Linear(10, 1)), m)
    opt = torch.optim.SGD(audited.parameters(), lr=lr)
    private = make_private(audited, opt, DataLoader(_data(), batch_size=32),
                           max_grad_norm=1.0, noise_multiplier=1.0, rng=rng)  # fmt: skip
    included = draw_inclusion(m, rng)
    canaries = DiracCanaries(
        audited.canary, included, sample_rate=private.optimizer.sample_rate,
        max_grad_norm=1.0, rng=rng,
    )  # fmt: skip
    canaries.attach(private.optimizer)
    for _ in range(3):
        for x, y in private.data_loader:
            private.optimizer.zero_grad()
            if len(x):
                _bce(audited(x), y).backward()
            private.optimizer.step()
    expected = lr * 1.0 * canaries.counts / private.optimizer.expected_batch_size
    np.testing.assert_allclose(canaries.scores(), expected, rtol=1e-5, atol=1e-7)
    assert (canaries.counts[~included] == 0).all()
    # each included canary is sampled like a record: Binomial(steps, q) times (4.5 sd: a
    # false-failure rate below 1e-5)
    q, trials = private.optimizer.sample_rate, private.optimizer.steps_taken * int(included.sum())
    total = int(canaries.counts[included].sum())
    assert abs(total - trials * q) < 4.5 * math.sqrt(trials * q * (1 - q))
    assert canaries.scores().shape == (m,)


def test_canaries_refuse_an_optimiser_without_their_block() -> None:
    audited = AuditedModule(nn.Sequential(nn.Linear(10, 1)), 8)
    other = nn.Sequential(nn.Linear(10, 1))
    private = make_private(other, torch.optim.SGD(other.parameters(), lr=0.1),
                           DataLoader(_data(), batch_size=32), max_grad_norm=1.0,
                           noise_multiplier=1.0)  # fmt: skip
    canaries = DiracCanaries(audited.canary, np.ones(8, bool), sample_rate=0.1, max_grad_norm=1)
    with pytest.raises(ValueError, match="canary block"):
        canaries.attach(private.optimizer)


# -- black-box --------------------------------------------------------------------------------


def test_black_box_catches_a_model_that_memorises_its_records() -> None:
    """A released 'model' that remembers its training records exactly (a lookup table):
    loss 0 on an included canary, log 2 on an excluded one."""
    m = 120
    seen: list[np.ndarray] = []

    def train(included: np.ndarray) -> tuple[np.ndarray, float | None]:
        seen.append(included)
        return np.where(included, 0.0, math.log(2)), 1.0

    result = audit_black_box(train, m, delta=1e-5, rng=SecureRandom(8))
    assert len(seen) == 1 and seen[0].shape == (m,)
    assert result.correct == result.guesses == 60
    assert result.epsilon_lower_bound > 2.0 > result.claimed_epsilon  # type: ignore[operator]


def test_black_box_refuses_a_trainer_that_drops_canaries() -> None:
    with pytest.raises(ValueError, match="finite canary losses"):
        audit_black_box(lambda inc: (np.zeros(len(inc) - 1), None), 10)
