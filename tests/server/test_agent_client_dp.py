# ruff: noqa: F811 - pytest fixtures imported from test_agent_policy are parameters here
"""A site agent under client-level DP owns the guarantee: it checks each round's plan against
its own calibration, charges its own ledger before anything leaves, and clips its update.

The coordinator is the in-memory stand-in of :mod:`tests.server.test_agent_policy` (the real
site API over httpx's mock transport); the agent is the real one.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save as st_save

from tests.server.test_agent_peers import bound_peer
from tests.server.test_agent_policy import (  # noqa: F401 - fixtures
    NAME,
    STUDY_ID,
    FakeCoordinator,
    _config,
    _join,
    _ledger,
    _round,
    reads,
    site,
)
from tutela.dp.ledger import PrivacyLedger
from tutela.fl.config import parse_study
from tutela.fl.privacy import (
    WITHIN_CLIP,
    ClientLevelDP,
    central_round_event,
    client_level_dp,
)
from tutela.secagg import encode_message
from tutela.secagg.config import RoundParams
from tutela.secagg.messages import AdvertiseKeysRequest
from tutela.server.agent import SiteAgent
from tutela.server.agent.peers import bind_identity
from tutela.server.wire import parse_tensors

IDS = (0, 1, 2, 3, 4)


def _client_config(secagg: str) -> dict[str, Any]:
    return _config(
        data={"sites": 5},
        training={"min_fit_sites": 5, "min_quorum": 3},
        privacy={"mode": "client", "epsilon": 2.0},
        secure_aggregation={"protocol": secagg},
    )


def _coordinator_dp(config: dict[str, Any], tmp_path: Path) -> ClientLevelDP:
    ledger = PrivacyLedger(tmp_path / "coordinator.sqlite", value_discretization_interval=1e-3)
    return client_level_dp(parse_study(config), ledger)


def _secagg_task(agent: SiteAgent, fake: FakeCoordinator, dp: ClientLevelDP, params: RoundParams):
    message = np.frombuffer(encode_message(AdvertiseKeysRequest(params)), np.uint8).copy()
    fake.relay = st_save({"coordinator": message})
    root = Path(agent.settings.ca_file).parent  # the fixture's deployment PKI
    peers = {i: bound_peer(root, f"peer-{i}", STUDY_ID) for i in IDS[1:]}
    own = bind_identity(
        agent.settings.cert_file, agent.settings.key_file, STUDY_ID, NAME, agent.identity_public
    )
    registry = {0: {"site": NAME, "identity": agent.identity_public.hex(), **own}, **peers}
    return {
        **_round(1, kind="advertise_keys", **dp.round_config()),
        "client_id": 0,
        "registry": registry,
    }


def test_the_ledger_is_charged_before_any_key_or_masked_input_leaves(
    site: tuple[SiteAgent, FakeCoordinator], tmp_path: Path
) -> None:
    agent, fake = site
    config = _client_config("secagg+")
    _join(agent, config)
    dp = _coordinator_dp(config, tmp_path)
    params = dp.plan_secure(1, IDS, 3, bytes(32))
    assert agent.handle(_secagg_task(agent, fake, dp, params)) is True
    # The round stops here (the peers never answer, the coordinator aborts): the site sent
    # its key advertisement only, and its ledger already holds the whole round's release,
    # the same event the coordinator charged the study.
    assert len(fake.posted("/stages/advertise_keys")) == 1
    assert fake.posted("/stages/masked_input") == []
    (spend,) = _ledger(tmp_path).records("site:" + NAME)
    (_standardisation, study_spend) = dp.ledger.records(dp.scope)  # round 0 is not run here
    assert spend.event == study_spend.event
    report = agent.reports[STUDY_ID]["ledger"]
    assert report["spent_epsilon"] == pytest.approx(_ledger(tmp_path).spent("site:" + NAME))


@pytest.mark.parametrize("cheat", ["noise", "survivors", "clip-config"])
def test_a_plan_below_the_calibration_is_refused_before_anything_is_charged_or_sent(
    site: tuple[SiteAgent, FakeCoordinator], tmp_path: Path, cheat: str
) -> None:
    agent, fake = site
    config = _client_config("secagg+")
    _join(agent, config)
    dp = _coordinator_dp(config, tmp_path)
    honest = dp._secure_config(dp.current_clip)
    if cheat == "noise":
        weak = replace(honest, ddp_sigma=0.7 * honest.ddp_sigma)
    elif cheat == "survivors":
        weak = replace(honest, dropout_tolerance=0.2)  # 4 of 5 would do
    else:
        weak = honest
    params = weak.plan(IDS, 3, max_weight=1.0, round_id=bytes(32))
    task = _secagg_task(agent, fake, dp, params)
    if cheat == "clip-config":  # the plan is sized for clip 1; the config says clip 4
        task["config"] = {**task["config"], "dp_clip_norm": 4.0 * dp.current_clip}
    assert agent.handle(task) is False
    assert "DP-FedAvg round 1 refused" in agent.refused_rounds[(STUDY_ID, 1)]
    assert _ledger(tmp_path).records("site:" + NAME) == ()
    assert fake.posted("/stages/advertise_keys") == []


def test_with_central_noise_the_site_clips_and_reports_its_indicator_after_charging(
    site: tuple[SiteAgent, FakeCoordinator], tmp_path: Path
) -> None:
    agent, fake = site
    policy = replace(agent.settings.policy, secure_aggregation_required=False)
    agent.settings = replace(agent.settings, policy=policy)
    config = _client_config("none")
    _join(agent, config)
    dp = _coordinator_dp(config, tmp_path)
    stated = dp.round_config()
    low = {**stated, "dp_noise_multiplier": 0.9 * stated["dp_noise_multiplier"]}
    assert agent.handle(_round(1, **low)) is False  # a coordinator stating less noise
    # only its noised standardisation moments were charged (at join, before sending)
    (standardisation,) = _ledger(tmp_path).records("site:" + NAME)
    assert "standardisation" in standardisation.label
    tight = {**stated, "dp_clip_norm": 1e-3}
    assert agent.handle(_round(2, **tight)) is True
    (body,) = fake.posted("/stages/fit")
    update, meta = parse_tensors(body)
    norm = float(
        np.sqrt(sum(float(np.sum(np.square(v, dtype=np.float64))) for v in update.values()))
    )
    assert norm <= 1e-3 and meta[WITHIN_CLIP] == "0"
    (_, spend) = _ledger(tmp_path).records("site:" + NAME)
    assert spend.event == central_round_event(dp.noise_multiplier, 3, None)  # as in process
