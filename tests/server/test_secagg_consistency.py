"""The SecAgg+ consistency check over the network: the real TLS coordinator and real site
agents (on threads, so the test seams reach them) run the consistency-check stage in every
secure round, and a coordinator that changes the survivor set after the sites signed it is
refused by the site it lied to, which reveals no share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tutela.errors import ServiceError
from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.study import run_study
from tutela.secagg import ManualClock, SecAggServer
from tutela.secagg.messages import UnmaskRequest
from tutela.server.agent.site import SiteAgent
from tutela.server.agent.transport import SiteTransport
from tutela.server.deploy import run_study_over_network

SITES = ("hospital-1", "hospital-2", "hospital-3", "hospital-4")


def _config(rounds: int = 1) -> StudyConfig:
    return parse_study(
        {
            "study": {"seed": 2},
            "data": {"dataset": "pima-diabetes", "sites": len(SITES)},
            "training": {
                "rounds": rounds,
                "local_epochs": 1,
                "min_quorum": 2,
                "min_fit_sites": 2,
            },
            "secure_aggregation": {"protocol": "secagg+"},
        }
    )


def _record_submissions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, str]]:
    """(site, round, stage) of every stage submission the agents make."""
    submitted: list[tuple[str, int, str]] = []
    submit = SiteTransport.submit

    def recording_submit(
        transport: SiteTransport, task: dict[str, Any], stage: str, *a: Any
    ) -> Any:
        submitted.append((transport.site, int(task["round"]), stage))
        return submit(transport, task, stage, *a)

    monkeypatch.setattr(SiteTransport, "submit", recording_submit)
    return submitted


def test_the_network_runtime_runs_the_consistency_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted = _record_submissions(monkeypatch)
    config = _config()
    net = run_study_over_network(
        config, tmp_path / "net", sites_as_processes=False, with_baselines=False
    )
    assert [h["status"] for h in net["history"]] == ["aggregated"]
    # every site signed the survivor set and then unmasked, in the standardisation round
    # (round 0) and in the training round
    for round_no in (0, 1):
        for stage in ("masked_input", "consistency_check", "unmask"):
            sites = sorted(s for s, r, st in submitted if r == round_no and st == stage)
            assert sites == list(SITES), (round_no, stage)
    report = net["secure_aggregation"]
    assert report["dropped_total_per_stage"]["consistency_check"] == 0
    # the same study in process without secure aggregation: the same model up to the
    # stated quantisation bound of the round over its total weight
    local = run_study(
        config.with_overrides(secure_aggregation={"protocol": "none"}), with_baselines=False
    )
    weight = local.history[-1].num_examples
    assert weight > 0
    bound = report["quantization_error_bound"] / weight + 1e-6
    for name, value in local.final_parameters.items():
        assert np.max(np.abs(value - net["final_parameters"][name])) <= bound, name


def test_a_coordinator_that_changes_the_survivor_set_after_the_signatures_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The coordinator's SecAgg+ server tells hospital-1 (client 0), in its unmask request,
    that a peer that sent its masked input dropped (so that hospital-1 would reveal that
    peer's mask-key share while the others reveal its self-mask share). hospital-1 signed
    the true set and refuses; it never submits an unmask reply, and the round fails."""
    submitted = _record_submissions(monkeypatch)
    close = SecAggServer._close_consistency

    def lying_close(server: SecAggServer, alive: frozenset[int]) -> Any:
        out = close(server, alive)
        if isinstance(server._clock, ManualClock):  # the runner's own in-process rounds
            return out
        request = out[0]
        assert isinstance(request, UnmaskRequest)
        peer = max(request.survivors)
        out[0] = UnmaskRequest(
            request.round_id,
            tuple(i for i in request.survivors if i != peer),
            (*request.dropped, peer),
            request.signatures,
        )
        return out

    logs: list[str] = []
    init = SiteAgent.__init__

    def recording_init(agent: SiteAgent, *args: Any, **kwargs: Any) -> None:
        init(agent, *args, **kwargs)
        log = agent.log

        def recording_log(line: str) -> None:
            logs.append(line)
            log(line)

        agent.log = recording_log

    monkeypatch.setattr(SecAggServer, "_close_consistency", lying_close)
    monkeypatch.setattr(SiteAgent, "__init__", recording_init)
    with pytest.raises(ServiceError, match="standardisation failed"):
        run_study_over_network(
            _config(),
            tmp_path / "net",
            sites_as_processes=False,
            with_baselines=False,
            stage_timeout_s=3.0,
            timeout_s=120.0,
        )
    assert ("hospital-1", 0, "consistency_check") in submitted  # it signed the true set
    assert ("hospital-1", 0, "unmask") not in submitted  # and revealed nothing
    assert any(
        line.startswith("hospital-1:") and "differs from the set this client signed" in line
        for line in logs
    ), logs
