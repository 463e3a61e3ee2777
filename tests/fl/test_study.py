import numpy as np
import pytest

from tutela.fl.recipes import flagship_config
from tutela.fl.rounds import RoundStatus
from tutela.fl.study import run_study
from tutela.fl.summary import round_outcome, summarise
from tutela.governance.results import RoundOutcome


def test_flagship_default_meets_the_utility_bar():
    """On the default demo, federated AUC is within 0.02 of centralised and above local-only."""
    config = flagship_config()
    run = run_study(config)
    res = summarise(config, run, privacy=None)
    assert res.centralized is not None and res.local_only is not None
    fed, cen, loc = res.federated, res.centralized, res.local_only
    assert fed.auc is not None and cen.auc is not None and loc.auc is not None
    assert fed.auc >= cen.auc - 0.02
    assert fed.auc > loc.auc
    assert len(res.history) == res.rounds == 30
    assert all(h.loss is not None and h.accuracy is not None for h in res.history)
    assert res.dataset.sites == 5
    assert sum(res.dataset.train_rows_per_site.values()) + res.dataset.test_rows == 532


@pytest.mark.parametrize("strategy", ["fedprox", "fedadam", "fedyogi", "fedmedian", "trimmed-mean"])
def test_every_strategy_learns(strategy):
    cfg = flagship_config(rounds=6, secure_aggregation=False).with_overrides(
        strategy={
            "name": strategy,
            "server_learning_rate": 0.05 if strategy in ("fedadam", "fedyogi") else None,
        }
    )
    res = run_study(cfg, with_baselines=False)
    assert res.federated["auc"] > 0.75


def test_same_seed_same_result():
    a = run_study(flagship_config(rounds=3), with_baselines=False)
    b = run_study(flagship_config(rounds=3), with_baselines=False)
    for k in a.final_parameters:
        np.testing.assert_array_equal(a.final_parameters[k], b.final_parameters[k])


def test_simulated_dropout_still_trains():
    cfg = flagship_config(rounds=5).with_overrides(training={"dropout": 0.3, "min_quorum": 2})
    res = run_study(cfg, with_baselines=False)
    assert any(r.failed for r in res.history) or all(
        r.status is RoundStatus.AGGREGATED for r in res.history
    )
    assert res.federated["auc"] > 0.7


def test_mlp_and_synthetic_ehr():
    cfg = flagship_config(rounds=3, dataset="synthetic-ehr").with_overrides(
        data={"rows": 3000}, model={"kind": "mlp", "hidden": [16]}
    )
    res = run_study(cfg, with_baselines=False)
    assert res.dataset.name == "synthetic-ehr"
    assert res.federated["auc"] > 0.6


def test_every_closed_round_status_has_a_results_outcome():
    closed = [s for s in RoundStatus if s is not RoundStatus.OPEN]
    assert {round_outcome(s) for s in closed} == set(RoundOutcome)
    with pytest.raises(ValueError):
        round_outcome(RoundStatus.OPEN)


def test_a_bare_engine_run_summarises_without_governance():
    config = flagship_config(rounds=2, secure_aggregation=False)
    res = summarise(config, run_study(config, with_baselines=False), privacy=None)
    assert res.governance is None and res.privacy is None and res.secure_aggregation is None
    assert res.centralized is None and res.deployment is None and res.run_dir is None
    assert [h.status for h in res.history] == [RoundOutcome.AGGREGATED] * 2
    assert res.config.data.sites == 5
