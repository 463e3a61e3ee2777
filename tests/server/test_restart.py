"""A coordinator restarted mid-study continues bit for bit: the strategy's explicit state
(FedAdam/FedYogi moments included) and the sampling RNG are persisted and restored exactly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load as st_load

from tests.server.test_store import ADMIN, SITES, Clock, open_coordinator, update_body
from tutela.fl.client import FeatureMoments
from tutela.fl.config import parse_study
from tutela.fl.records import parameters_from_bytes, parameters_to_bytes
from tutela.server.coordinator import Coordinator, DeploymentSettings
from tutela.server.store import StudyRow

STRATEGIES = ["fedavg", "fedprox", "fedadam", "fedyogi", "fedmedian", "trimmed-mean"]
ROUNDS = 3


def _start(co: Coordinator, strategy: str) -> str:
    for site in SITES:
        co.activate_site(ADMIN, site)
    config = parse_study(
        {
            "study": {"seed": 11},
            "data": {"dataset": "pima-diabetes", "sites": 3},
            "strategy": {"name": strategy},
            # Two of three sites per round: the sampling RNG decides who, every round.
            "training": {"rounds": ROUNDS, "fraction_fit": 0.5, "min_fit_sites": 2},
        }
    )
    study = co.create_study(ADMIN, config, DeploymentSettings(join_timeout_s=10))
    initial = {
        "0.weight": np.linspace(-0.3, 0.4, 7, dtype=np.float32).reshape(1, 7),
        "0.bias": np.array([0.05], np.float32),
    }
    co.set_initial_model(ADMIN, study, parameters_to_bytes(initial))
    co.start(ADMIN, study)
    for i, site in enumerate(SITES):
        moments = FeatureMoments(10 * (i + 1), np.ones(7), np.full(7, 3.0))
        co.answer_invitation(site, study, accept=True, num_examples=10 * (i + 1), moments=moments)
    assert co.tick()  # recruiting -> running
    return study


@dataclass
class Outcome:
    sampled: list[list[str]]  # the sites chosen in each round
    final: dict[str, np.ndarray[Any, Any]]  # the final global model
    state: dict[str, np.ndarray[Any, Any]]  # the persisted strategy state


def _run(db_url: str, keyring: Path, strategy: str, *, restart: bool) -> Outcome:
    """Run a study to completion; with ``restart``, replace the coordinator (same store)
    between every two rounds and in the middle of every round."""
    clock = Clock()
    co = open_coordinator(db_url, keyring, clock)
    study = _start(co, strategy)

    def restarted(old: Coordinator) -> Coordinator:
        if not restart:
            return old
        old.store.close()
        new = open_coordinator(db_url, keyring, clock)
        new.resume()
        return new

    sampled: list[list[str]] = []
    for r in range(1, ROUNDS + 1):
        co = restarted(co)  # between rounds
        assert co.tick()  # round r opens
        participants = co.study_status(study)["rounds"][-1]["participants"]
        sampled.append(participants)
        for j, site in enumerate(participants):
            value = 0.1 * (SITES.index(site) + 1) * (-1) ** r + 0.01 * r
            co.submit(site, study, r, "fit", f"{r}-{site}", update_body(study, r, value, 10 + j))
            if j == 0:
                co = restarted(co)  # mid-round, one update accepted
        assert co.tick()  # round r closes
    assert co.tick()
    assert co.study_status(study)["status"] == "completed"
    final = parameters_from_bytes(co.final_model(study))
    with co.store.read() as s:
        row = s.get(StudyRow, study)
        assert row is not None and row.strategy_state is not None
        state = st_load(co.store.unseal(row.strategy_state, f"strategy/{study}"))
    co.store.close()
    return Outcome(sampled, final, state)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_restarted_coordinator_finishes_bit_identical(
    strategy: str, db_url: str, tmp_path: Path
) -> None:
    # Both runs share one database (and keyring): the studies are independent rows.
    steady = _run(db_url, tmp_path / "keyring", strategy, restart=False)
    again = _run(db_url, tmp_path / "keyring", strategy, restart=True)
    assert again.sampled == steady.sampled  # the same sites sampled every round
    assert again.final.keys() == steady.final.keys()
    for name, value in steady.final.items():
        assert again.final[name].dtype == value.dtype
        assert np.array_equal(again.final[name], value), name
    if strategy in ("fedadam", "fedyogi"):
        assert {"initialised", "m/0.weight", "v/0.weight", "m/0.bias"} <= set(steady.state)
        assert steady.state["initialised"][0] == 1
    else:
        assert steady.state == {}
    assert again.state.keys() == steady.state.keys()
    for name, value in steady.state.items():
        assert np.array_equal(again.state[name], value), name
