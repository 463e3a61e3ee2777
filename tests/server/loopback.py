"""A small real deployment on loopback for the results tests: a live TLS coordinator
(:func:`tests.server.conftest.start_live`) and three site agents on threads, each with its own
CSV and policy, running a two-round study to completion."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.server.conftest import Live
from tutela.governance.minimisation import SitePolicy
from tutela.server import pki
from tutela.server.agent import SiteAgent
from tutela.server.agent.settings import AgentSettings
from tutela.server.serve import coordinator_verifier_key

SITE_NAMES = ("hospital-1", "hospital-2", "hospital-3")
FEATURES = [f"x{i}" for i in range(7)]
PURPOSE = "disease-outcome-prediction"


def site_table(seed: int, rows: int = 120) -> pd.DataFrame:
    """Seven features and a binary outcome that depends on the first two."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (rows, len(FEATURES)))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.5, rows) > 0).astype(int)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["outcome"] = y
    return frame


def policy_text(*, report_metrics: bool = True) -> str:
    return (
        f"report_metrics = {'true' if report_metrics else 'false'}\n"
        f'[purposes."{PURPOSE}"]\ncolumns = [{", ".join(repr(c) for c in FEATURES)}]\n'
        "[floor]\ndp_required = false\nsecure_aggregation_required = false\n"
    ).replace("'", '"')


@dataclass
class Deployment:
    live: Live
    study: str
    agents: dict[str, SiteAgent]
    results: dict[str, dict[str, Any]]


def run_agents(
    live: Live,
    root: Path,
    study: str,
    *,
    quiet: frozenset[str] = frozenset(),
    witness_interval_s: float = 2.0,
) -> Deployment:
    """Start the study, run the three agents (``quiet``: sites whose policy says
    ``report_metrics = false``; ``witness_interval_s``: their witnessing cadence) until it
    completes, and return what they did."""
    layout = pki.PkiLayout(live.pki_dir)
    audit_key = coordinator_verifier_key(live.server.settings.data_dir)
    agents: dict[str, SiteAgent] = {}
    for i, name in enumerate(SITE_NAMES):
        site_dir = root / name
        site_dir.mkdir(parents=True, exist_ok=True)
        site_table(seed=i).to_csv(site_dir / "data.csv", index=False)
        (site_dir / "policy.toml").write_text(policy_text(report_metrics=name not in quiet))
        paths = layout.site(name)
        settings = AgentSettings(
            live.url,
            layout.ca.cert,
            paths.cert,
            paths.key,
            site_dir / "data.csv",
            SitePolicy.from_toml(site_dir / "policy.toml"),
            state_dir=site_dir / "state",
            seed=i,
            max_runtime_s=120.0,
            poll_interval=0.05,
            witness_interval_s=witness_interval_s,
        )
        agents[name] = SiteAgent(settings, name=name, audit_key=audit_key)
    results: dict[str, dict[str, Any]] = {}

    def work(name: str) -> None:
        try:
            results[name] = agents[name].run()
        finally:
            agents[name].transport.close()

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in agents]
    for t in threads:
        t.start()
    with live.admin() as c:
        assert c.post(f"/v1/admin/studies/{study}/start").status_code == 200
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            status = c.get(f"/v1/admin/studies/{study}").json()
            if status["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.1)
    for t in threads:
        t.join(timeout=60)
    assert status["status"] == "completed", status
    return Deployment(live, study, agents, results)
