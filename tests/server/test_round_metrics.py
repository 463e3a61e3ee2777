"""The sites' evaluations of each global model over the network: bounded at the edge (a NaN,
an infinity or an out-of-range value is a 422 naming the key), kept per round and site,
combined weighted by rows with each site capped at what it declared at join, shown by
``tutela server status`` and the dashboard; and a site whose policy says
``report_metrics = false`` sends none and holds no rows out."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.server.conftest import Live, small_config
from tests.server.loopback import run_agents, site_table
from tests.server.test_dashboard import _join_and_open_round_one
from tutela.cli.main import app
from tutela.governance.minimisation import SitePolicy
from tutela.server.round_metrics import combine

GOOD = {"eval_loss": 0.5, "eval_accuracy": 0.8, "eval_auc": 0.9, "eval_rows": 40.0}


def _joined(live: Live) -> str:
    study = live.new_study()
    with live.admin() as c:
        assert c.post(f"/v1/admin/studies/{study}/start").status_code == 200
    co = live.server.coordinator
    assert co is not None
    _join_and_open_round_one(co, study)  # declares 100, 200 and 300 rows
    return study


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ('{"metrics": {"eval_accuracy": NaN, "eval_rows": 4}}', "finite"),
        ('{"metrics": {"eval_loss": Infinity, "eval_rows": 4}}', "finite"),
        ('{"metrics": {"eval_accuracy": 1.5, "eval_rows": 4}}', "eval_accuracy must be in [0, 1]"),
        ('{"metrics": {"eval_auc": -0.1, "eval_rows": 4}}', "eval_auc must be in [0, 1]"),
        ('{"metrics": {"eval_loss": -1, "eval_rows": 4}}', "eval_loss must be in"),
        ('{"metrics": {"eval_accuracy": 0.5, "eval_rows": 0}}', "eval_rows must be"),
        ('{"metrics": {"eval_accuracy": 0.5, "eval_rows": 2.5}}', "eval_rows must be"),
        ('{"metrics": {"eval_accuracy": 0.5}}', "eval_rows"),
    ],
)
def test_a_lying_site_gets_a_422_naming_what_is_out_of_range(
    live: Live, bad: str, needle: str
) -> None:
    study = _joined(live)
    with live.client(site="hospital-1") as site:
        r = site.post(
            f"/v1/site/studies/{study}/rounds/0/metrics",
            content=bad.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 422, r.text
        assert needle in r.text
        ok = site.post(f"/v1/site/studies/{study}/rounds/0/metrics", json={"metrics": GOOD})
        assert ok.status_code == 204, ok.text
    with live.admin() as c:
        status = c.get(f"/v1/admin/studies/{study}").json()
    assert status["initial_evaluation"]["sites"] == {"hospital-1": GOOD}


def test_the_aggregate_is_rows_weighted_and_a_site_weighs_at_most_what_it_declared(
    live: Live,
) -> None:
    study = _joined(live)
    reports = {  # hospital-1 declared 100 rows and claims a billion, all predicted right
        "hospital-1": {"eval_loss": 0.01, "eval_accuracy": 1.0, "eval_rows": 1e9},
        "hospital-2": {"eval_loss": 1.0, "eval_accuracy": 0.5, "eval_auc": 0.6, "eval_rows": 50},
    }
    for site, metrics in reports.items():
        with live.client(site=site) as c:
            r = c.post(f"/v1/site/studies/{study}/rounds/0/metrics", json={"metrics": metrics})
            assert r.status_code == 204, r.text
    with live.client("data-scientist") as c:
        status = c.get(f"/v1/admin/studies/{study}").json()
    agg = status["initial_evaluation"]["aggregate"]
    assert agg["rows"] == 150 and agg["sites"] == 2  # 100 (capped) + 50
    assert math.isclose(agg["accuracy"], (100 * 1.0 + 50 * 0.5) / 150)
    assert math.isclose(agg["loss"], (100 * 0.01 + 50 * 1.0) / 150)
    assert math.isclose(agg["auc"], 0.6)  # only hospital-2 gave one


def test_combine_without_a_metric_leaves_it_undefined() -> None:
    agg = combine({"a": {"eval_accuracy": 0.5, "eval_rows": 10.0}}, {"a": 0})
    assert agg == {"rows": 0, "sites": 1, "loss": None, "accuracy": None, "auc": None}


def test_a_policy_says_whether_metrics_leave_the_site(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("report_metrics = false\n[purposes.p]\ncolumns = ['a']\n")
    policy = SitePolicy.from_toml(path)
    assert policy.report_metrics is False and policy.to_json()["report_metrics"] is False
    assert SitePolicy.from_mapping(policy.to_json()) == policy
    path.write_text("report_metrics = 'yes'\n")
    with pytest.raises(Exception, match="report_metrics must be true or false"):
        SitePolicy.from_toml(path)


def test_real_agents_report_every_model_and_a_quiet_site_reports_none(
    live: Live, tmp_path: Path
) -> None:
    study = live.new_study(small_config(rounds=2, min_quorum=2, min_fit_sites=2))
    deployment = run_agents(live, tmp_path / "sites", study, quiet=frozenset({"hospital-3"}))
    with live.client("data-scientist") as c:
        status = c.get(f"/v1/admin/studies/{study}").json()
    # the reporting sites held out a quarter of their rows; the quiet one trains on all
    declared = {s: p["num_examples"] for s, p in status["participation"].items()}
    assert declared["hospital-3"] == len(site_table(seed=2))
    assert declared["hospital-1"] < len(site_table(seed=0)) * 0.8
    evaluations = {0: status["initial_evaluation"]} | {
        r["round"]: r["evaluation"] for r in status["rounds"]
    }
    assert sorted(evaluations) == [0, 1, 2]  # the initial, after round 1, the final model
    for evaluation in evaluations.values():
        assert set(evaluation["sites"]) == {"hospital-1", "hospital-2"}
        for metrics in evaluation["sites"].values():
            assert 0.0 <= metrics["eval_accuracy"] <= 1.0 and metrics["eval_rows"] >= 2
        agg = evaluation["aggregate"]
        assert agg["rows"] == sum(m["eval_rows"] for m in evaluation["sites"].values())
    # the model learns the planted rule: the final model beats the initial one
    assert evaluations[2]["aggregate"]["loss"] < evaluations[0]["aggregate"]["loss"]
    assert all(not r["refused"] for r in deployment.results.values())

    # tutela server status shows them, and so does the dashboard
    token = live.tokens["admin"]
    out = CliRunner().invoke(
        app,
        [
            "server",
            "status",
            study,
            "--coordinator",
            live.url,
            "--ca",
            str(live.ca),
            "--token",
            token,
        ],
    )
    assert out.exit_code == 0, out.output
    printed = json.loads(out.output)
    assert printed["rounds"][-1]["evaluation"]["aggregate"] == evaluations[2]["aggregate"]
    with live.client("data-scientist") as c:
        rounds = c.get("/v1/dashboard/studies").json()[0]["rounds"]
    final = next(r for r in rounds if r["round"] == 2)["metrics"]
    assert np.isclose(final["loss"], evaluations[2]["aggregate"]["loss"])
    assert np.isclose(final["accuracy"], evaluations[2]["aggregate"]["accuracy"])
