"""Events (JSON round trips) and accountants (PLD, RDP, calibration, refusals)."""

from __future__ import annotations

import math

import dp_accounting
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.dp.accounting import (
    AccountantKind,
    PLDAccountant,
    RDPAccountant,
    calibrate,
    calibrate_noise_multiplier,
    compute_epsilon,
    dpsgd_event,
)
from tutela.dp.events import (
    ComposedEvent,
    DiscreteGaussianEvent,
    DiscreteLaplaceEvent,
    Event,
    GaussianEvent,
    LaplaceEvent,
    PoissonSampledEvent,
    PureDPEvent,
    SelfComposedEvent,
    SkellamEvent,
    event_from_dict,
    event_from_json,
    event_to_json,
)
from tutela.errors import AccountingError

Q = 256 / 60000
STEPS = 14062

positive = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False)
leaves = st.one_of(
    st.builds(GaussianEvent, positive),
    st.builds(LaplaceEvent, positive, positive),
    st.builds(DiscreteLaplaceEvent, positive, st.integers(1, 10)),
    st.builds(DiscreteGaussianEvent, positive, positive),
    st.builds(lambda mu, d2, extra: SkellamEvent(mu, d2 + extra, d2), positive, positive, positive),
    st.builds(PureDPEvent, positive),
)
events = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(PoissonSampledEvent, st.floats(1e-6, 1.0), inner),
        st.builds(SelfComposedEvent, inner, st.integers(1, 10_000)),
        st.builds(ComposedEvent, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None)
@given(events)
def test_event_json_round_trip(event: Event) -> None:
    text = event_to_json(event)
    back = event_from_json(text)
    assert back == event
    assert hash(back) == hash(event)
    assert event_to_json(back) == text


def test_malformed_events_are_rejected() -> None:
    with pytest.raises(ValueError):
        event_from_json("{not json")
    with pytest.raises(ValueError):
        event_from_dict({"type": "pickle"})
    with pytest.raises(ValueError):
        event_from_dict({"type": "gaussian", "noise_multiplier": 1.0, "extra": 2})
    with pytest.raises(ValueError):
        event_from_dict({"type": "gaussian", "noise_multiplier": -1.0})
    with pytest.raises(ValueError):
        GaussianEvent(0.0)
    with pytest.raises(ValueError):
        PoissonSampledEvent(1.5, GaussianEvent(1.0))
    with pytest.raises(ValueError):
        SelfComposedEvent(GaussianEvent(1.0), 0)
    with pytest.raises(TypeError):
        ComposedEvent([GaussianEvent(1.0), "gaussian"])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        SkellamEvent(1.0, l1_sensitivity=1.0, l2_sensitivity=2.0)


def test_pld_matches_dp_accounting_on_the_textbook_dpsgd_config() -> None:
    ours = compute_epsilon(dpsgd_event(1.1, Q, STEPS), 1e-5)
    ref = dp_accounting.pld.PLDAccountant()
    ref.compose(
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(Q, dp_accounting.GaussianDpEvent(1.1)), STEPS
        )
    )
    assert ours == pytest.approx(ref.get_epsilon(1e-5), rel=0.01)
    assert ours == pytest.approx(2.38, abs=0.01)
    rdp = compute_epsilon(dpsgd_event(1.1, Q, STEPS), 1e-5, AccountantKind.RDP)
    assert rdp == pytest.approx(2.597, abs=0.01)  # RDP is looser than PLD here
    assert rdp > ours


def test_calibration_inverts_the_pld_epsilon_on_both_sides() -> None:
    target = compute_epsilon(dpsgd_event(1.1, Q, STEPS), 1e-5)
    z = calibrate_noise_multiplier(target, 1e-5, Q, STEPS)
    assert z == pytest.approx(1.1, rel=2e-3)
    assert compute_epsilon(dpsgd_event(z, Q, STEPS), 1e-5) <= target
    assert compute_epsilon(dpsgd_event(z * (1 - 2e-3), Q, STEPS), 1e-5) > target


def test_rdp_calibration_on_both_sides() -> None:
    z = calibrate_noise_multiplier(3.0, 1e-5, 0.01, 1000, AccountantKind.RDP, tolerance=1e-4)
    assert compute_epsilon(dpsgd_event(z, 0.01, 1000), 1e-5, AccountantKind.RDP) <= 3.0
    assert compute_epsilon(dpsgd_event(z * 0.999, 0.01, 1000), 1e-5, AccountantKind.RDP) > 3.0


def test_generic_calibration_for_laplace_scale() -> None:
    scale = calibrate(LaplaceEvent, 0.5, 1e-9, tolerance=1e-4)
    assert scale == pytest.approx(2.0, rel=1e-3)  # Laplace: epsilon = sensitivity / scale


def test_calibration_rejects_impossible_targets() -> None:
    with pytest.raises(ValueError):
        calibrate_noise_multiplier(-1.0, 1e-5, 0.01, 10)
    with pytest.raises(ValueError):
        calibrate_noise_multiplier(1e-9, 1e-5, 1.0, 100_000, AccountantKind.RDP)


def test_unsampled_gaussians_use_the_exact_profile() -> None:
    from scipy.stats import norm

    z, eps = 2.0, 1.0
    exact = norm.cdf(-eps * z + 1 / (2 * z)) - math.exp(eps) * norm.cdf(-eps * z - 1 / (2 * z))
    acc = PLDAccountant()
    acc.compose(GaussianEvent(z))
    assert acc.get_delta(eps) == pytest.approx(exact, rel=1e-9)
    # T Gaussians with z compose into one with z / sqrt(T); mixed multipliers too
    acc2 = PLDAccountant()
    acc2.compose(GaussianEvent(4.0), count=3)
    acc2.compose(GaussianEvent(2.0))
    merged = (3 / 16 + 1 / 4) ** -0.5
    assert acc2.get_epsilon(1e-6) == pytest.approx(compute_epsilon(GaussianEvent(merged), 1e-6))
    # agrees with dp-accounting's discretised PLD, which is a (slightly) larger upper bound
    ref = dp_accounting.pld.PLDAccountant()
    ref.compose(dp_accounting.GaussianDpEvent(merged))
    assert acc2.get_epsilon(1e-6) <= ref.get_epsilon(1e-6) + 1e-9
    assert acc2.get_epsilon(1e-6) == pytest.approx(ref.get_epsilon(1e-6), rel=1e-3)


def test_mixed_history_goes_through_the_pld() -> None:
    acc = PLDAccountant(value_discretization_interval=1e-3)
    acc.compose(GaussianEvent(3.0), count=4)
    acc.compose(LaplaceEvent(5.0))
    eps = acc.get_epsilon(1e-6)
    gauss_only = compute_epsilon(GaussianEvent(1.5), 1e-6)
    assert gauss_only < eps <= gauss_only + 0.2 + 1e-2  # Laplace adds at most 1/5


def test_pure_and_laplace_events_give_their_epsilon() -> None:
    assert compute_epsilon(PureDPEvent(0.7), 1e-9) == pytest.approx(0.7, abs=1e-3)
    assert compute_epsilon(LaplaceEvent(2.0, 1.0), 1e-12) == pytest.approx(0.5, abs=1e-3)
    assert compute_epsilon(DiscreteLaplaceEvent(4.0, 2), 1e-12) == pytest.approx(0.5, abs=1e-3)
    # basic composition is an upper bound for pure DP
    assert compute_epsilon(SelfComposedEvent(PureDPEvent(0.1), 10), 1e-6) <= 1.0 + 1e-3


def test_history_is_grouped_and_matches_a_single_self_composition() -> None:
    step = PoissonSampledEvent(0.01, GaussianEvent(1.0))
    acc = PLDAccountant(value_discretization_interval=1e-3)
    for _ in range(200):
        acc.compose(step)
    assert acc.history == ((step, 200),)
    assert acc.get_epsilon(1e-5) == pytest.approx(
        compute_epsilon(SelfComposedEvent(step, 200), 1e-5, value_discretization_interval=1e-3),
        rel=1e-9,
    )


def test_pld_refuses_before_committing() -> None:
    acc = PLDAccountant()
    acc.compose(GaussianEvent(2.0))
    before = acc.get_epsilon(1e-5)
    bad = ComposedEvent([GaussianEvent(1.0), SkellamEvent(100.0, 2.0, 1.0)])
    with pytest.raises(AccountingError, match="RDP"):
        acc.compose(bad)
    with pytest.raises(AccountingError):
        acc.compose(PoissonSampledEvent(0.1, DiscreteLaplaceEvent(1.0)))
    assert acc.history == ((GaussianEvent(2.0), 1),)
    assert acc.get_epsilon(1e-5) == before


def test_rdp_refuses_sampled_non_gaussian() -> None:
    acc = RDPAccountant()
    with pytest.raises(AccountingError):
        acc.compose(PoissonSampledEvent(0.1, LaplaceEvent(1.0)))
    assert acc.get_epsilon(1e-5) == 0.0


def test_discrete_gaussian_rdp_equals_gaussian_rdp() -> None:
    # same zCDP bound as the continuous Gaussian with z = sigma / sensitivity
    dg = compute_epsilon(DiscreteGaussianEvent(20.0, 4.0), 1e-5, AccountantKind.RDP)
    g = compute_epsilon(GaussianEvent(5.0), 1e-5, AccountantKind.RDP)
    assert dg == pytest.approx(g, rel=0.02)


def test_skellam_rdp_approaches_gaussian_with_same_variance_and_is_above_it() -> None:
    # Sk(mu) has variance 2 mu; for large mu it behaves like a Gaussian of that variance
    mu = 5000.0
    sk = compute_epsilon(SkellamEvent(mu, 10.0, 10.0), 1e-5, AccountantKind.RDP)
    z = math.sqrt(2 * mu) / 10.0
    g = compute_epsilon(GaussianEvent(z), 1e-5, RDPAccountant(orders=range(2, 65)).kind)
    assert sk >= g
    assert sk == pytest.approx(g, rel=0.05)


def test_empty_accountants_report_zero() -> None:
    assert PLDAccountant().get_epsilon(1e-5) == 0.0
    assert RDPAccountant().get_delta(1.0) == 0.0
    with pytest.raises(ValueError):
        PLDAccountant().get_epsilon(0.0)
