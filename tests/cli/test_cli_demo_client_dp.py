"""``tutela demo --privacy client``: DP-FedAvg over the network by default, valid results."""

import json
import time

from tests.cli.run import tutela
from tutela.governance.results import RunResults


def test_demo_with_client_level_dp_runs_over_the_network_and_validates(tmp_path):
    started = time.monotonic()
    r = tutela(
        "demo", "--privacy", "client", "--epsilon", "3", "--quick",
        "--out", "client.json", "--run-dir", "run",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr[-3000:]
    text = (tmp_path / "client.json").read_text()
    results = RunResults.model_validate_json(text)  # the published schema's model
    assert results.deployment is not None and results.deployment.sites_as_processes is True
    assert results.secure_aggregation is not None
    doc = json.loads(text)
    privacy = doc["privacy"]
    assert privacy["mode"] == "client" and "inside SecAgg+" in privacy["mechanism"]
    assert 0 < privacy["epsilon"] <= privacy["target_epsilon"] == 3.0
    assert len(privacy["rounds"]) == 10 and all(r["distributed"] for r in privacy["rounds"])
    # Every hospital charged its own ledger for its standardisation moments and each round,
    # and signed what it spent.
    assert {s["site"] for s in doc["sites"]} == {f"hospital-{i}" for i in range(1, 6)}
    for report in doc["sites"]:
        assert len(report["ledger"]["spends"]) == 11
        assert "standardisation" in report["ledger"]["spends"][0]["label"]
        assert report["ledger"]["spent_epsilon"] <= 3.0
    print(f"demo --privacy client --epsilon 3 --quick: {elapsed:.1f} s, "
          f"AUC {doc['federated']['auc']:.4f}")  # fmt: skip


def test_demo_refuses_inconsistent_privacy_options_in_one_line(tmp_path):
    r = tutela("demo", "--privacy", "client", "--quick", "--in-process", cwd=tmp_path)
    assert r.returncode != 0 and "needs an epsilon" in r.stderr
    r = tutela("demo", "--adaptive-clipping", "--epsilon", "3", "--in-process", cwd=tmp_path)
    assert r.returncode != 0 and "client-level DP" in r.stderr
