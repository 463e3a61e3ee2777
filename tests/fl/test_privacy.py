"""DP composed into federated rounds: budgets enforced, spends recorded, quorum refused."""

import math
from dataclasses import replace

import dp_accounting
import numpy as np
import pytest

from tutela.dp.events import ComposedEvent, GaussianEvent
from tutela.dp.ledger import PrivacyLedger
from tutela.errors import QuorumNotMet
from tutela.fl.privacy import ClientLevelDP, SampleLevelDP, standardisation_noise_multiplier
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
    privacy = res.model_dump(mode="json")["privacy"]
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
    records = ledger.records("site:hospital-1")
    assert len(records) == 4  # the standardisation release first, then 3 rounds
    assert "standardisation" in records[0].label
    # Every spend is in the audit log.
    log = AuditLog.open_existing(run / "audit.sqlite")
    spends = [r for r in log.records() if r.action == "privacy:spend"]
    assert len(spends) == 20
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
            hook(model, opt, loader, r, 1)

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
    # nothing was spent on a refused round (only the standardisation release before it)
    (standardisation,) = ledger.records("study:s")
    assert "standardisation" in standardisation.label
    agg = dp.aggregate(1, _updates(5), ref)
    assert agg.updates is None and agg.num_sites == 5
    assert len(ledger.records("study:s")) == 2


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


def _adaptive_secure(tmp_path, epsilon, rounds, grid=1e-3):
    ledger = PrivacyLedger(tmp_path / "l.sqlite", value_discretization_interval=grid)
    secagg = SecAggConfig(dropout_tolerance=0.0)
    dp = ClientLevelDP(
        ledger, "s", epsilon, 1e-5, 1.0, "pld", rounds=rounds, expected_sites=5,
        adaptive=True, secagg=secagg,
    )  # fmt: skip
    return ledger, dp, secagg


def test_adaptive_clipping_under_secagg_is_charged_the_composed_event(tmp_path):
    """The round releases the noisy update sum AND the noisy clip count: the ledger holds
    exactly their composition, as dp-accounting's own PLD accountant computes it."""
    grid = 1e-3
    ledger, dp, secagg = _adaptive_secure(tmp_path, 4.0, 3, grid)
    ref = {"w": np.zeros(6, np.float32)}
    dp.aggregate(1, _updates(5, seed=1), ref)

    # The protocol's parameters for this round, planned independently: 6 update coordinates
    # plus the count coordinate, clip 1, noise std z*C on the sum, 5 sites, no dropout.
    clip, dim = 1.0, 6
    sigma = dp.noise_multiplier * clip
    params = replace(secagg, clip=clip, ddp_sigma=sigma).plan(
        tuple(range(5)), dim + 1, max_weight=1.0, round_id=bytes(32)
    )
    step = 1.0 / params.scale
    noise = math.sqrt(params.noise_variance) * step * math.sqrt(5)  # std on each sum coordinate
    sigma_b = dp.count_noise_std  # the count noise the calibration assumed
    scale = min(sigma / sigma_b, 2 * clip)  # count coordinate: (b_i - 1/2) * scale
    z_update = noise / (clip + step * math.sqrt(dim))
    z_count = noise / (scale / 2 + step)
    assert noise / scale >= sigma_b  # the count is released with at least the stated noise

    # the study's ledger holds the standardisation release first
    z_s = standardisation_noise_multiplier(4.0, 1e-5, "pld")
    acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=grid)
    acc.compose(dp_accounting.GaussianDpEvent(z_s))
    acc.compose(
        dp_accounting.ComposedDpEvent(
            [dp_accounting.GaussianDpEvent(z_update), dp_accounting.GaussianDpEvent(z_count)]
        )
    )
    expected = acc.get_epsilon(1e-5)
    update_only = dp_accounting.pld.PLDAccountant(value_discretization_interval=grid)
    update_only.compose(dp_accounting.GaussianDpEvent(z_s))
    update_only.compose(dp_accounting.GaussianDpEvent(z_update))
    assert expected > update_only.get_epsilon(1e-5) * 1.01  # the count is not free

    (standardisation, record) = ledger.records("study:s")
    assert standardisation.event == GaussianEvent(z_s)
    assert isinstance(record.event, ComposedEvent)
    # Equal up to the PLD grid's composition order (a sum-only charge is off by over 1%).
    assert ledger.spent("study:s") == pytest.approx(expected, rel=1e-5)
    assert dp.report()["rounds"][0]["count_noise_std"] == pytest.approx(noise / scale)


def test_the_clip_count_under_secagg_is_released_noisily(tmp_path):
    """Every site's update is within the clip (all zeros), so the exact centred count is
    5/2 every round and the released fraction would be exactly 1.0 without noise; it must
    vary with the stated std (sigma_b / 5 in fraction units)."""
    _, dp, _ = _adaptive_secure(tmp_path, 200.0, 60)
    ref = {"w": np.zeros(6, np.float32)}
    zeros = [ClientUpdate(f"s{i}", {"w": np.zeros(6, np.float32)}, 10) for i in range(5)]
    for r in range(1, 61):
        dp.aggregate(r, zeros, ref)
    assert dp._clipper is not None
    fractions = np.asarray(dp._clipper.history)
    stds = {round(e["count_noise_std"], 9) for e in dp.report()["rounds"]}
    stated = max(stds) / 5
    # 60 draws: the sample std is within 40% of the true std except with probability
    # below 1e-4 (chi-square with 59 degrees of freedom); a noiseless count gives 0.
    observed = float(np.std(fractions - 1.0, ddof=0))
    assert 0.6 * min(stds) / 5 <= observed <= 1.4 * stated


def test_fedprox_trains_under_dp_sgd_and_its_proximal_step_pulls_towards_the_global_model(
    tmp_path,
):
    """The proximal term is decoupled from the per-example gradients, so DP-SGD accepts it."""
    import numpy as np

    from tutela.dp.ledger import PrivacyLedger
    from tutela.fl.client import LocalSite, LocalTraining
    from tutela.fl.models import build_model, get_parameters
    from tutela.fl.privacy import SampleLevelDP
    from tutela.fl.records import FitIns

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    factory = lambda: build_model("logistic", 4, seed=1)
    start = get_parameters(factory())

    def site(mu_seed):
        dp = SampleLevelDP(
            ledger=PrivacyLedger(tmp_path / f"l{mu_seed}-{len(list(tmp_path.iterdir()))}.sqlite"),
            study="prox",
            epsilon=50.0,
            delta=1e-5,
            max_grad_norm=1.0,
            accountant="rdp",
            rounds=2,
            local_epochs=3,
            batch_size=32,
            site_rows={"s": 200},
            dimension=5,
        )
        return LocalSite(
            "s",
            x,
            y,
            factory,
            LocalTraining(epochs=3, learning_rate=0.5),
            seed=mu_seed,
            privatize=dp.hook("s"),
        )

    free = site(0).fit(FitIns(start, {"local_epochs": 3, "proximal_mu": 0.0})).parameters
    prox = site(0).fit(FitIns(start, {"local_epochs": 3, "proximal_mu": 1.0})).parameters
    dist = lambda p: sum(float(np.sum((p[k] - start[k]) ** 2)) for k in p)
    assert all(np.isfinite(v).all() for v in prox.values())
    assert dist(prox) < dist(free)
