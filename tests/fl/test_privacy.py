"""DP composed into federated rounds: budgets enforced, spends recorded, quorum refused."""

import numpy as np
import pytest

from tutela.dp.events import GaussianEvent
from tutela.dp.ledger import PrivacyLedger
from tutela.errors import QuorumNotMet
from tutela.fl.privacy import ClientLevelDP, SampleLevelDP
from tutela.fl.recipes import flagship_config, run_configured_study
from tutela.fl.strategy import ClientUpdate
from tutela.governance.audit import AuditLog
from tutela.secagg import SecAggConfig


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTELA_HOME", str(tmp_path / "home"))
    for var in ("TUTELA_KEYRING", "TUTELA_PASSPHRASE", "TUTELA_KEYFILE"):
        monkeypatch.delenv(var, raising=False)


def test_sample_level_dp_run_stays_within_every_site_budget(tmp_path):
    run = tmp_path / "run"
    res = run_configured_study(flagship_config(rounds=3, epsilon=2.0), run_dir=run)
    privacy = res["privacy"]
    assert privacy["accountant"] == "pld"
    assert 0 < privacy["epsilon"] <= 2.0
    for site, spent in privacy["per_site"].items():
        assert spent["rounds_charged"] == 3, site
        assert 0 < spent["epsilon"] <= 2.0
        assert spent["budget_left"] == pytest.approx(2.0 - spent["epsilon"], abs=1e-9)
    # The ledger on disk agrees after reopening (it survives the process).
    ledger = PrivacyLedger(run / "ledger.sqlite", value_discretization_interval=1e-3)
    assert ledger.spent("site:hospital-1") == pytest.approx(
        privacy["per_site"]["hospital-1"]["epsilon"]
    )
    assert len(ledger.records("site:hospital-1")) == 3
    # Every spend is in the audit log.
    log = AuditLog.open_existing(run / "audit.sqlite")
    spends = [r for r in log.records() if r.action == "privacy:spend"]
    assert len(spends) == 15
    log.close()


def test_a_site_with_a_spent_budget_refuses_to_train(tmp_path):
    ledger = PrivacyLedger(tmp_path / "l.sqlite", value_discretization_interval=1e-3)
    dp = SampleLevelDP(
        ledger,
        "s",
        epsilon=1.0,
        delta=1e-5,
        max_grad_norm=1.0,
        accountant="pld",
        rounds=2,
        local_epochs=1,
        batch_size=16,
        site_rows={"a": 64},
    )
    ledger.charge("site:a", GaussianEvent(6.0), label="someone else's query")
    import torch

    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.zeros(64, 3), torch.zeros(64)), batch_size=16
    )
    from tutela.errors import BudgetExceeded

    hook = dp.hook("a")

    def two_rounds():  # the planned two rounds no longer fit beside the earlier spend
        for r in (1, 2):
            hook(model, opt, loader, r)

    with pytest.raises(BudgetExceeded):
        two_rounds()
    assert ledger.spent("site:a") <= 1.0


def _updates(n, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    return [
        ClientUpdate(f"s{i}", {"w": rng.normal(size=dim).astype(np.float32)}, 10) for i in range(n)
    ]


def test_client_level_dp_refuses_a_round_below_the_planned_quorum(tmp_path):
    ledger = PrivacyLedger(tmp_path / "l.sqlite", value_discretization_interval=1e-3)
    dp = ClientLevelDP(ledger, "s", 5.0, 1e-5, 1.0, "pld", rounds=3, expected_sites=5)
    ref = {"w": np.zeros(6, np.float32)}
    with pytest.raises(QuorumNotMet):
        dp.aggregate(1, _updates(4), ref)
    assert ledger.records("study:s") == ()  # nothing was spent on a refused round
    agg = dp.aggregate(1, _updates(5), ref)
    assert agg.updates is None and agg.num_sites == 5
    assert len(ledger.records("study:s")) == 1


@pytest.mark.parametrize("secure", [False, True])
def test_client_level_dp_noise_has_the_calibrated_scale(tmp_path, secure):
    ledger = PrivacyLedger(tmp_path / "l.sqlite", value_discretization_interval=1e-3)
    secagg = SecAggConfig(dropout_tolerance=0.0) if secure else None
    dp = ClientLevelDP(
        ledger, "s", 50.0, 1e-5, 1.0, "pld", rounds=200, expected_sites=5, secagg=secagg
    )
    ups = [ClientUpdate(f"s{i}", {"w": np.zeros(4000, np.float32)}, 1) for i in range(5)]
    agg = dp.aggregate(1, ups, {"w": np.zeros(4000, np.float32)})
    # All-zero updates: the mean is pure noise with std z*C/5 per coordinate.
    expected = dp.noise_multiplier * 1.0 / 5
    observed = float(np.std(agg.mean_update["w"]))
    # 4000 samples: the sample std is within 10% with overwhelming probability (>1e-9).
    assert observed == pytest.approx(expected, rel=0.1)
    assert ledger.spent("study:s") <= 50.0


def test_distributed_noise_report_keeps_every_round_when_the_clip_adapts(tmp_path):
    ledger = PrivacyLedger(tmp_path / "l.sqlite", value_discretization_interval=1e-3)
    dp = ClientLevelDP(
        ledger,
        "s",
        20.0,
        1e-5,
        1.0,
        "pld",
        rounds=3,
        expected_sites=5,
        adaptive=True,
        secagg=SecAggConfig(dropout_tolerance=0.0),
    )
    ref = {"w": np.zeros(6, np.float32)}
    for r in (1, 2, 3):
        dp.aggregate(r, _updates(5, seed=r), ref)
    clips = [entry["clip_norm"] for entry in dp.report()["rounds"]]
    assert len(set(clips)) > 1  # the clip norm moved between rounds
    report = dp.secure_report()
    assert report["rounds"] == 3
    assert [r["round"] for r in report["per_round"]] == [1, 2, 3]
