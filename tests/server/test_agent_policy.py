"""The site agent owns its guarantees: it enforces its policy before reading a row, refuses
rounds beyond its policy or privacy plan before training, charges its own ledger for what it
runs, and signs what it enforced and spent.

The coordinator here is an in-memory stand-in speaking the real HTTP API (httpx's mock
transport): the agent under test is the real one, end to end from task to request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import save as st_save

from tutela.dp.ledger import PrivacyLedger
from tutela.fl.config import parse_study
from tutela.fl.models import build_model, get_parameters
from tutela.fl.records import parameters_to_bytes
from tutela.governance.minimisation import SitePolicy
from tutela.governance.site_report import verify_site_report
from tutela.secagg import SecAggConfig, encode_message
from tutela.secagg.messages import AdvertiseKeysRequest
from tutela.server import pki
from tutela.server.agent import AgentSettings, SiteAgent
from tutela.server.agent import settings as agent_settings

NAME = "hospital-1"
STUDY_ID = "st-1"
POLICY = """
never_share = ["nickname"]
report_metrics = false  # every row trains, so the charges below count all 64

[purposes.disease-outcome-prediction]
columns = ["glucose", "bmi", "nickname"]
"""


class FakeCoordinator:
    """Answers the site API from memory and records what the site sent."""

    def __init__(self, model: bytes) -> None:
        self.model = model
        self.relay: bytes | None = None
        self.sent: list[tuple[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path.endswith("/model"):
            return httpx.Response(200, content=self.model)
        if request.method == "GET" and "/relay/" in path and self.relay is not None:
            return httpx.Response(200, content=self.relay)
        if request.method == "POST":
            body = request.content
            is_json = path.endswith(("/participation", "/metrics"))
            self.sent.append((path, json.loads(body) if is_json else body))
            return httpx.Response(204 if path.endswith("/metrics") else 200, json={})
        return httpx.Response(404, json={"detail": f"no {path}"})

    def posted(self, suffix: str) -> list[Any]:
        return [body for path, body in self.sent if path.endswith(suffix)]


def _config(**sections: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "study": {"name": "s", "purpose": "disease-outcome-prediction", "seed": 0},
        "data": {"dataset": "pima-diabetes", "sites": 2, "columns": ["glucose", "bmi"]},
        "training": {"rounds": 3, "local_epochs": 1, "batch_size": 16},
        "privacy": {"mode": "sample", "epsilon": 2.0},
        "secure_aggregation": {"protocol": "secagg+"},
    }
    for key, value in sections.items():
        base[key] = {**base[key], **value}
    return parse_study(base).resolved()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``read_csv`` call the agent makes (to check what it reads, and when)."""
    calls: list[dict[str, Any]] = []
    real = pd.read_csv

    def spy(path: Any, **kwargs: Any) -> pd.DataFrame:
        calls.append(kwargs)
        return real(path, **kwargs)

    monkeypatch.setattr(agent_settings.pd, "read_csv", spy)
    return calls


@pytest.fixture
def site(
    tmp_path: Path, reads: list[dict[str, Any]]
) -> Iterator[tuple[SiteAgent, FakeCoordinator]]:
    rng = np.random.default_rng(0)
    data = tmp_path / "data.csv"
    pd.DataFrame(
        {
            "glucose": rng.normal(120, 30, 64),
            "bmi": rng.normal(30, 5, 64),
            "nickname": [f"pat-{i}" for i in range(64)],
            "ssn": [f"000-00-{i:04d}" for i in range(64)],
            "outcome": rng.integers(0, 2, 64),
        }
    ).to_csv(data, index=False)
    (tmp_path / "policy.toml").write_text(POLICY)
    d = tmp_path / "pki"
    pki.init_ca(d)
    paths = pki.issue_to_files(d, kind="site", name=NAME)
    settings = AgentSettings(
        "https://coordinator.test",
        d / "ca.pem",
        paths.cert,
        paths.key,
        data,
        SitePolicy.from_toml(tmp_path / "policy.toml"),
        state_dir=tmp_path / "state",
    )
    agent = SiteAgent(settings, name=NAME)
    model = parameters_to_bytes(get_parameters(build_model("logistic", 2, seed=0)))
    fake = FakeCoordinator(model)
    agent.transport.close()
    agent.transport.client = httpx.Client(
        base_url=settings.coordinator, transport=httpx.MockTransport(fake)
    )
    yield agent, fake
    agent.transport.close()


def _join(agent: SiteAgent, config: dict[str, Any]) -> None:
    agent.handle(
        {"kind": "join", "study_id": STUDY_ID, "config": config, "deadline": time.time() + 30}
    )


def _round(round_no: int, kind: str = "fit", **config: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "stage": kind,
        "study_id": STUDY_ID,
        "round": round_no,
        "attempt": 1,
        "config": {"local_epochs": 1, "learning_rate": 0.1, "server_round": round_no, **config},
        "standardisation": {"mean": [120.0, 30.0], "std": [30.0, 5.0]},
        "deadline": time.time() + 30,
    }


def _ledger(tmp_path: Path) -> PrivacyLedger:
    return PrivacyLedger(
        tmp_path / "state" / f"ledger-{STUDY_ID}.sqlite", value_discretization_interval=1e-3
    )


def test_a_study_asking_less_protection_is_refused_with_every_reason_before_any_row_is_read(
    site: tuple[SiteAgent, FakeCoordinator], reads: list[dict[str, Any]]
) -> None:
    agent, fake = site
    weak = _config(
        data={"columns": ["glucose", "bmi", "nickname"]},
        training={"local_epochs": 9},
        privacy={"mode": "none", "epsilon": None},
        secure_aggregation={"protocol": "none"},
    )
    _join(agent, weak)
    (answer,) = fake.posted("/participation")
    assert answer["accept"] is False
    for reason in (
        "differential privacy is required",
        "secure aggregation is required",
        "'nickname' (on the site's never-share list)",
        "9 local epochs per round exceed the site maximum 5",
    ):
        assert reason in answer["reason"], reason
    too_much = _config(privacy={"epsilon": 8.0, "delta": 1e-3})
    agent.handle(
        {"kind": "join", "study_id": "st-2", "config": too_much, "deadline": time.time() + 30}
    )
    reason = fake.posted("/participation")[-1]["reason"]
    assert "epsilon 8.0 exceeds the site maximum 3.0" in reason and "delta 0.001 exceeds" in reason
    assert reads and all(call.get("nrows") == 0 for call in reads)  # the header only
    assert agent.studies == {}


def test_a_hostile_round_is_refused_before_training_and_a_fair_one_is_charged_and_signed(
    site: tuple[SiteAgent, FakeCoordinator], reads: list[dict[str, Any]], tmp_path: Path
) -> None:
    agent, fake = site
    _join(agent, _config())
    (answer,) = fake.posted("/participation")
    assert answer["accept"] is True and answer["num_examples"] == 64
    # Only the accepted columns (and the outcome) were ever parsed.
    assert [sorted(c["usecols"]) for c in reads if c.get("usecols")] == [
        ["bmi", "glucose", "outcome"]
    ]
    assert agent.studies[STUDY_ID].site.num_examples == 64

    # The coordinator asks for 10x the epochs: beyond the site's limit (5 per round).
    assert agent.handle(_round(1, local_epochs=10)) is False
    assert "asks for 10 local epochs" in agent.refused_rounds[(STUDY_ID, 1)]
    assert agent.handle(_round(1)) is False  # a refused round stays refused
    # Within the limit but 3x what the site's privacy plan was calibrated for.
    assert agent.handle(_round(2, local_epochs=3)) is False
    assert "calibrated for 1 per round" in agent.refused_rounds[(STUDY_ID, 2)]
    assert fake.posted("/stages/fit") == [] and _ledger(tmp_path).records("site:" + NAME) == ()

    assert agent.handle(_round(3)) is True
    assert len(fake.posted("/stages/fit")) == 1
    ledger = _ledger(tmp_path)
    (spend,) = ledger.records("site:" + NAME)
    assert spend.event.count == 4  # 64 rows / batch 16, one epoch: exactly what ran
    assert agent.studies[STUDY_ID].site.steps_run == 4
    (metrics,) = fake.posted("/metrics")
    assert metrics["metrics"]["epsilon"] == pytest.approx(ledger.spent("site:" + NAME))

    report = json.loads((tmp_path / "state" / f"site-report-{STUDY_ID}.json").read_text())
    assert report == agent.reports[STUDY_ID]
    assert verify_site_report(report, trusted_keys=[agent.identity_public])
    assert report["policy"] == agent.settings.policy.to_json()
    assert report["ledger"]["spent_epsilon"] == pytest.approx(ledger.spent("site:" + NAME))
    assert len(report["ledger"]["spends"]) == 1
    altered = {**report, "policy": {**report["policy"], "never_share": []}}
    assert not verify_site_report(altered)
    agent.settings = replace(agent.settings, max_runtime_s=0.0)
    summary = agent.run()  # what the agent returns when it stops
    assert summary["site_reports"] == {STUDY_ID: report}
    assert set(summary["refused_rounds"]) == {f"{STUDY_ID}/round-1", f"{STUDY_ID}/round-2"}


def test_a_secagg_round_below_the_threshold_floor_is_refused_before_training(
    site: tuple[SiteAgent, FakeCoordinator], tmp_path: Path
) -> None:
    agent, fake = site
    agent.settings = replace(
        agent.settings, policy=replace(agent.settings.policy, min_secagg_threshold=4)
    )
    _join(agent, _config())
    params = SecAggConfig(neighbors=4, threshold=3).plan(
        (0, 1, 2, 3, 4), 3, max_weight=64.0, round_id=bytes(32)
    )
    message = np.frombuffer(encode_message(AdvertiseKeysRequest(params)), np.uint8).copy()
    fake.relay = st_save({"coordinator": message})
    task = {**_round(1, kind="advertise_keys"), "client_id": 0, "registry": {}}
    assert agent.handle(task) is False
    assert "threshold 3 is below the site's 4" in agent.refused_rounds[(STUDY_ID, 1)]
    assert _ledger(tmp_path).records("site:" + NAME) == ()
    assert fake.posted("/stages/advertise_keys") == []


def test_a_loopback_deployment_records_every_site_report_verbatim(tmp_path: Path) -> None:
    """Through the real coordinator: each site's report is the one it signed, its ledger
    has every round it trained, and its spend is what it told the coordinator."""
    from tutela.server.deploy import run_study_over_network

    config = parse_study(
        {
            "study": {"seed": 1},
            "data": {"dataset": "pima-diabetes", "sites": 3},
            "training": {"rounds": 2, "local_epochs": 1, "min_fit_sites": 3, "min_quorum": 3},
            "privacy": {"mode": "sample", "epsilon": 2.0},
        }
    )
    results = run_study_over_network(
        config, tmp_path / "run", sites_as_processes=False, with_baselines=False
    )
    reports = {r["site"]: r for r in results["sites"]}
    assert set(reports) == {"hospital-1", "hospital-2", "hospital-3"}
    for name, report in reports.items():
        assert verify_site_report(report), name
        assert report["policy"]["floor"]["dp_required"] is True
        ledger = report["ledger"]
        # the standardisation release, then 2 rounds
        assert ledger["scope"] == f"site:{name}" and len(ledger["spends"]) == 3
        assert ledger["spent_epsilon"] <= ledger["budget_epsilon"] == 2.0
        spent = results["privacy"]["per_site"][name]["epsilon"]
        assert ledger["spent_epsilon"] == pytest.approx(spent)
