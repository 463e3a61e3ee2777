"""Federated standardisation in process: secure and noised paths, their plan and their charge."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tutela.dp.events import ComposedEvent, GaussianEvent
from tutela.dp.ledger import PrivacyLedger
from tutela.errors import PolicyViolation
from tutela.fl.config import StudyConfig
from tutela.fl.privacy import (
    STANDARDISATION_SHARE,
    client_level_calibration,
    standardisation_noise_multiplier,
)
from tutela.fl.recipes import LEDGER_PLD_GRID, flagship_config
from tutela.fl.standardisation import (
    StandardisationMode,
    StandardisationPlan,
    count_bound,
    standardisation_mode,
)
from tutela.fl.study import prepare_data, prepare_sites, run_study


def _config(**overrides: object) -> StudyConfig:
    config = flagship_config(rounds=1, sites=3, **overrides)  # type: ignore[arg-type]
    return config.with_overrides(data={"columns": prepare_data(config).columns})


def test_the_mode_follows_secure_aggregation_then_privacy() -> None:
    assert standardisation_mode(_config(secure_aggregation=False)) is StandardisationMode.PLAIN
    assert standardisation_mode(_config()) is StandardisationMode.SECURE
    private = _config(secure_aggregation=False, privacy="sample", epsilon=2.0)
    assert standardisation_mode(private) is StandardisationMode.NOISED


def test_the_secure_path_gives_the_plain_statistics_without_noise() -> None:
    plain_config = _config(secure_aggregation=False)
    plain = prepare_sites(plain_config, prepare_data(plain_config))
    secure_config = _config()
    secure = prepare_sites(secure_config, prepare_data(secure_config))
    # 62-bit words: the SecAgg+ quantisation is far below these tolerances
    np.testing.assert_allclose(secure.mean, plain.mean, rtol=1e-10)
    np.testing.assert_allclose(secure.std, plain.std, rtol=1e-6)
    np.testing.assert_allclose(secure.x_test, plain.x_test, atol=1e-5)


@pytest.mark.parametrize("mode", ["sample", "client"])
@pytest.mark.parametrize("secure", [True, False], ids=["secagg", "noised"])
def test_each_site_pays_for_its_standardisation_first_and_stays_in_budget(
    mode: str, secure: bool, tmp_path: Path
) -> None:
    from tutela.fl.recipes import build_aggregator, build_privacy

    config = _config(privacy=mode, epsilon=2.0, secure_aggregation=secure)
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite", value_discretization_interval=1e-3)
    plan = build_privacy(config, ledger, tmp_path, build_aggregator(config))
    run_study(
        config,
        aggregator=plan.aggregator,
        privatize=plan.privatize,
        with_baselines=False,
        ledger=ledger,
    )
    z = standardisation_noise_multiplier(2.0, config.privacy.delta, "pld")
    for site in ("hospital-1", "hospital-2", "hospital-3"):
        first, *rounds = ledger.records(f"site:{site}")
        assert "standardisation" in first.label and first.event == GaussianEvent(z)
        assert len(rounds) == 1 and "round 1" in rounds[0].label
        assert 0 < ledger.spent(f"site:{site}") <= 2.0
    if mode == "client":  # the study's own ledger holds the same release first
        first, *_ = ledger.records("study:" + config.study.name)
        assert "standardisation" in first.label and first.event == GaussianEvent(z)
        assert ledger.spent("study:" + config.study.name) <= 2.0


def test_the_slice_is_carved_out_of_the_client_level_calibration() -> None:
    z_s = standardisation_noise_multiplier(3.0, 1e-5, "pld")
    z, _ = client_level_calibration(3.0, 1e-5, 5, 30, "pld", adaptive=False)
    from tutela.dp.accounting import compute_epsilon
    from tutela.fl.privacy import central_round_event

    rounds = [central_round_event(z, 8, None)] * 30
    whole = ComposedEvent([GaussianEvent(z_s), *rounds])
    grid = LEDGER_PLD_GRID
    assert compute_epsilon(whole, 1e-5, value_discretization_interval=grid) <= 3.0
    # the slice is a tenth of epsilon on its own
    slice_only = compute_epsilon(GaussianEvent(z_s), 1e-5)
    assert slice_only == pytest.approx(STANDARDISATION_SHARE * 3.0, rel=2e-3)


def test_a_site_refuses_a_secure_plan_with_less_noise_or_another_vector() -> None:
    config = _config(privacy="sample", epsilon=2.0)
    plan = StandardisationPlan.of(config, list(config.data.columns or []))
    bound = count_bound([90, 120, 150])
    ids = (0, 1, 2)
    honest = plan.secagg_config(3, bound).plan(ids, plan.dim, max_weight=bound, round_id=bytes(32))
    assert plan.check_secure(honest, 120) == plan.event
    weak_config = replace(plan.secagg_config(3, bound), ddp_sigma=1.0)
    weak = weak_config.plan(ids, plan.dim, max_weight=bound, round_id=bytes(32))
    with pytest.raises(PolicyViolation, match="noise multiplier"):
        plan.check_secure(weak, 120)
    longer = plan.secagg_config(3, bound).plan(
        ids, plan.dim + 2, max_weight=bound, round_id=bytes(32)
    )
    with pytest.raises(PolicyViolation, match="vector length"):
        plan.check_secure(longer, 120)
    with pytest.raises(PolicyViolation, match="weight bound"):
        plan.check_secure(honest, int(bound) + 1)


def test_a_noisy_release_is_clamped_to_the_declared_ranges() -> None:
    config = _config(privacy="sample", epsilon=2.0)
    plan = StandardisationPlan.of(config, list(config.data.columns or []))
    d = plan.features
    wild = np.concatenate([np.full(d, 1e6), np.full(d, -1e6)])  # noise far beyond the data
    mean, std = plan.pooled(wild, 100)
    assert np.all(mean <= plan.high) and np.all(mean >= plan.low)
    half = (plan.high - plan.low) / 2
    assert np.all(std >= half / 8 - 1e-12) and np.all(std <= half + 1e-12)
