"""The coordinator's DP-FedAvg state survives a restart: released rounds replay exactly."""

import numpy as np
import pytest

from tutela.dp.ledger import PrivacyLedger
from tutela.fl.privacy import ClientLevelDP
from tutela.fl.strategy import ClientUpdate
from tutela.secagg import SecAggConfig


def _updates(n, seed):
    rng = np.random.default_rng(seed)
    return [
        ClientUpdate(f"s{i}", {"w": rng.normal(size=6).astype(np.float32)}, 10) for i in range(n)
    ]


@pytest.mark.parametrize("secure", [False, True])
def test_a_restarted_coordinator_continues_the_adaptive_clip_and_the_spend(tmp_path, secure):
    def fresh(path):
        ledger = PrivacyLedger(path, value_discretization_interval=1e-3)
        secagg = SecAggConfig(dropout_tolerance=0.0) if secure else None
        return ClientLevelDP(
            ledger, "s", 5.0, 1e-5, 1.0, "pld", rounds=4, expected_sites=5, adaptive=True,
            secagg=secagg,
        )  # fmt: skip

    before = fresh(tmp_path / "a.sqlite")
    ref = {"w": np.zeros(6, np.float32)}
    for r in (1, 2):
        before.aggregate(r, _updates(5, r), ref)
    assert before.current_clip != 1.0
    after = fresh(tmp_path / "b.sqlite")  # a new process: an empty scratch ledger
    after.restore(before.state())
    after.restore(before.state())  # replaying twice changes nothing
    assert after.current_clip == before.current_clip
    assert after.round_config() == before.round_config()
    assert after.ledger.spent(after.scope) == pytest.approx(before.ledger.spent(before.scope))
    assert after.report()["rounds"] == before.report()["rounds"]
    after.aggregate(3, _updates(5, 3), ref)  # and it goes on from there
    assert [r["round"] for r in after.state()] == [1, 2, 3]
