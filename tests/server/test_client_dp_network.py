"""Client-level DP (DP-FedAvg) through the coordinator, with the same results as in process.

The network runs use the real TLS coordinator and real site agents (on threads, so the
test-only seams below reach them): with central noise the coordinator's noise source is
seeded identically on both paths and the final weights are bit-identical; under SecAgg+
the sites' distributed noise is drawn at the sites, so the comparison zeroes the discrete
Gaussian sampler on both paths and the weights agree within the protocol's stated
quantisation bound. The epsilon each path reports is what its ledger was charged, noise
on or off: equal, and at most the target. A coordinator that lowers the noise is refused
by every site before anything leaves it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tutela.dp.ledger import PrivacyLedger
from tutela.fl import privacy as fl_privacy
from tutela.fl import standardisation as fl_standardisation
from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.privacy import ClientLevelDP, client_level_dp
from tutela.fl.recipes import LEDGER_PLD_GRID
from tutela.fl.study import run_study
from tutela.hazmat import noise as hazmat_noise
from tutela.hazmat.rng import SecureRandom
from tutela.secagg import SecAggConfig
from tutela.server import runtime
from tutela.server.deploy import run_study_over_network

SEED = bytes(range(32))


def _config(secagg: str, *, adaptive: bool = False, rounds: int = 2) -> StudyConfig:
    return parse_study(
        {
            "study": {"seed": 1},
            "data": {"dataset": "pima-diabetes", "sites": 4 if secagg != "none" else 3},
            "training": {"rounds": rounds, "local_epochs": 1, "min_fit_sites": 2, "min_quorum": 2},
            "privacy": {"mode": "client", "epsilon": 3.0, "adaptive_clipping": adaptive},
            "secure_aggregation": {"protocol": secagg},
        }
    )


def _in_process(config: StudyConfig, tmp_path: Path, rng: SecureRandom | None = None) -> Any:
    ledger = PrivacyLedger(tmp_path / "in-process.sqlite", value_discretization_interval=1e-3)
    dp = client_level_dp(config, ledger, rng=rng)
    run = run_study(config, aggregator=dp, with_baselines=False)
    return run, dp.report()


def _network(config: StudyConfig, tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    return run_study_over_network(
        config, tmp_path / "net", sites_as_processes=False, with_baselines=False, **kwargs
    )


def _transcript(net: dict[str, Any], run: Any) -> tuple[list[Any], list[Any]]:
    remote = [(h["round"], h["status"], h["sites"], h["num_examples"]) for h in net["history"]]
    local = [(r.server_round, r.status.value, list(r.sites), r.num_examples) for r in run.history]
    return remote, local


@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed-clip", "adaptive-clip"])
def test_central_noise_through_the_coordinator_is_bit_identical_to_in_process(
    adaptive: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config("none", adaptive=adaptive)
    # Test-only seam: the coordinator's DP-FedAvg draws its noise (update sum and clip count)
    # from the same seeded stream as the in-process run; the noise stays on.
    monkeypatch.setattr(
        runtime,
        "client_level_dp",
        lambda c, ledger: client_level_dp(c, ledger, rng=SecureRandom(SEED)),
    )
    # ...and each site's noise on its standardisation moments is zero on both paths (its
    # charge is that of the noisy release).
    monkeypatch.setattr(
        fl_standardisation, "sample_rounded_gaussian64", lambda sigma, n, rng=None: np.zeros(n)
    )
    net = _network(config, tmp_path)
    run, report = _in_process(config, tmp_path, SecureRandom(SEED))
    remote, local = _transcript(net, run)
    assert remote == local and all(status == "aggregated" for _, status, _, _ in remote)
    for name, value in run.final_parameters.items():
        np.testing.assert_array_equal(value, net["final_parameters"][name])
    privacy = net["privacy"]
    assert privacy["epsilon"] == report["epsilon"] <= privacy["target_epsilon"] == 3.0
    assert [r["clip_norm"] for r in privacy["rounds"]] == [r["clip_norm"] for r in report["rounds"]]
    if adaptive:
        assert privacy["rounds"][0]["clip_norm"] != privacy["rounds"][1]["clip_norm"]
    # Every site clipped its own update and charged its own ledger the same event per round.
    for name in ("hospital-1", "hospital-2", "hospital-3"):
        ledger = PrivacyLedger(
            tmp_path
            / "net"
            / "sites"
            / name
            / "state"
            / f"ledger-{net['deployment']['study_id']}.sqlite",
            value_discretization_interval=LEDGER_PLD_GRID,
        )
        records = ledger.records(f"site:{name}")  # the standardisation, then 2 rounds
        assert len(records) == 3 and "standardisation" in records[0].label
        assert ledger.spent(f"site:{name}") == pytest.approx(report["epsilon"])


def test_distributed_noise_inside_secagg_matches_in_process_within_the_quantisation_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config("secagg+", rounds=1)
    # Test-only seam: every site's discrete-Gaussian share is zero (on both paths); the plans,
    # the sites' checks and every charge are those of the noisy protocol.
    monkeypatch.setattr(
        hazmat_noise, "sample_discrete_gaussian", lambda sigma, n, rng=None: np.zeros(n, np.int64)
    )
    # The standardisation round (round 0) is quantised coarsely for its (here zeroed) noise:
    # both paths' statistics agree within that, then the in-process run reuses the network's
    # so that the weights compare the training round alone.
    pooled = fl_standardisation.StandardisationPlan.pooled
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def same_standardisation(self: Any, total: np.ndarray, count: float) -> Any:
        mean, std = pooled(self, total, count)
        if not seen:
            seen.append((mean, std))
            return mean, std
        # each path's sums are within the round's quantisation bound of the exact sums
        bound = fl_standardisation.count_bound([int(count)])  # at least the round's
        plan = self.secagg_config(4, bound).plan((0, 1, 2, 3), self.dim, max_weight=bound,
                                                 round_id=bytes(32))  # fmt: skip
        per_row = 2 * plan.quantization_error_bound(4) / count
        half = (self.high - self.low) / 2
        net_mean, net_std = seen[0]
        assert np.all(np.abs(mean - net_mean) <= half * per_row)
        assert np.all(np.abs(std**2 - net_std**2) <= half**2 * 3 * per_row)
        return net_mean, net_std

    monkeypatch.setattr(fl_standardisation.StandardisationPlan, "pooled", same_standardisation)
    net = _network(config, tmp_path)
    run, report = _in_process(config, tmp_path)
    remote, local = _transcript(net, run)
    assert remote == local and remote[0][1] == "aggregated"
    secure = net["secure_aggregation"]
    assert secure["n"] == 4 and secure["min_survivors"] == 4  # no site may drop
    # Each path's sum is within the bound of the exact sum of clipped updates; the mean
    # divides by the 4 planned sites.
    bound = 2 * secure["quantization_error_bound"] / 4
    for name, value in run.final_parameters.items():
        assert np.max(np.abs(value - net["final_parameters"][name])) <= bound
    assert net["privacy"]["epsilon"] == pytest.approx(report["epsilon"], rel=1e-12)
    assert net["privacy"]["epsilon"] <= 3.0
    assert net["privacy"]["rounds"][0]["distributed"] is True


def _weaker_noise(self: ClientLevelDP, clip: float) -> SecAggConfig:
    return replace(self.secagg, clip=clip, ddp_sigma=0.5 * self.noise_multiplier * clip)


def _fewer_survivors(self: ClientLevelDP, clip: float) -> SecAggConfig:
    sigma = self.noise_multiplier * clip
    return replace(self.secagg, clip=clip, ddp_sigma=sigma, dropout_tolerance=0.25)


@pytest.mark.parametrize(
    ("secagg", "cheat"),
    [
        ("none", "noise"),
        ("secagg+", "noise"),
        ("secagg+", "survivors"),
    ],
)
def test_a_coordinator_that_lowers_the_noise_is_refused_by_every_site(
    secagg: str, cheat: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(secagg, rounds=1)
    if secagg == "none":
        honest = ClientLevelDP.round_config

        def cheating(self: ClientLevelDP) -> dict[str, float]:
            return {**honest(self), fl_privacy.ROUND_NOISE: 0.5 * self.noise_multiplier}

        monkeypatch.setattr(ClientLevelDP, "round_config", cheating)
    else:
        lower = _weaker_noise if cheat == "noise" else _fewer_survivors
        monkeypatch.setattr(ClientLevelDP, "_secure_config", lower)
    net = _network(config, tmp_path, stage_timeout_s=4.0)
    (entry,) = net["history"]
    assert entry["status"] == "quorum-not-met" and entry["sites"] == []
    study = net["deployment"]["study_id"]
    for name in [f"hospital-{i}" for i in range(1, config.data.sites + 1)]:
        state = tmp_path / "net" / "sites" / name / "state"
        ledger = PrivacyLedger(
            state / f"ledger-{study}.sqlite", value_discretization_interval=LEDGER_PLD_GRID
        )
        # refused before charging or sending: only the standardisation was charged
        (spend,) = ledger.records(f"site:{name}")
        assert "standardisation" in spend.label
    # Nothing left any site in round 1: the coordinator's audit log holds no submission of
    # any of its stages (no update, no SecAgg+ key advertisement), only the sites joining
    # and, under SecAgg+, their answers to the standardisation round (round 0).
    audit = Path(net["deployment"]["audit_log"]).read_text(encoding="utf-8")
    submits = [line for line in audit.splitlines() if '"round.submit"' in line]
    assert all(f"study/{study}/round/0/" in line for line in submits)
    assert bool(submits) == (secagg == "secagg+")
    assert audit.count('"study.join"') == config.data.sites
