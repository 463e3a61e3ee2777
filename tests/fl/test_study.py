import numpy as np
import pytest

from tutela.fl.recipes import flagship_config
from tutela.fl.study import run_study


def test_flagship_default_meets_the_utility_bar():
    """On the default demo, federated AUC is within 0.02 of centralised and above local-only."""
    res = run_study(flagship_config())
    fed, cen, loc = res["federated"], res["centralized"], res["local_only"]
    assert fed["auc"] >= cen["auc"] - 0.02
    assert fed["auc"] > loc["auc"]
    assert len(res["history"]) == res["rounds"] == 30
    assert {"loss", "accuracy", "auc"} <= set(res["history"][0]) | {"loss"}
    assert res["dataset"]["sites"] == 5
    assert sum(res["dataset"]["train_rows_per_site"].values()) + res["dataset"]["test_rows"] == 532


@pytest.mark.parametrize("strategy", ["fedprox", "fedadam", "fedyogi", "fedmedian", "trimmed-mean"])
def test_every_strategy_learns(strategy):
    cfg = flagship_config(rounds=6, secure_aggregation=False).with_overrides(
        strategy={
            "name": strategy,
            "server_learning_rate": 0.05 if strategy in ("fedadam", "fedyogi") else None,
        }
    )
    res = run_study(cfg, with_baselines=False)
    assert res["federated"]["auc"] > 0.75


def test_same_seed_same_result():
    a = run_study(flagship_config(rounds=3), with_baselines=False)
    b = run_study(flagship_config(rounds=3), with_baselines=False)
    for k in a["final_parameters"]:
        np.testing.assert_array_equal(a["final_parameters"][k], b["final_parameters"][k])


def test_simulated_dropout_still_trains():
    cfg = flagship_config(rounds=5).with_overrides(training={"dropout": 0.3, "min_quorum": 2})
    res = run_study(cfg, with_baselines=False)
    assert any(r["failed"] for r in res["history"]) or all(
        r["status"] == "aggregated" for r in res["history"]
    )
    assert res["federated"]["auc"] > 0.7


def test_mlp_and_synthetic_ehr():
    cfg = flagship_config(rounds=3, dataset="synthetic-ehr").with_overrides(
        data={"rows": 3000}, model={"kind": "mlp", "hidden": [16]}
    )
    res = run_study(cfg, with_baselines=False)
    assert res["dataset"]["name"] == "synthetic-ehr"
    assert res["federated"]["auc"] > 0.6
