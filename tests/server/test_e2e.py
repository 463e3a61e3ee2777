"""End to end over TLS on loopback: the flagship through the coordinator with one process
per hospital, and the documented fault cases (coordinator killed and restarted mid-round,
a site killed mid-round, a site whose policy refuses the study)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.models import get_parameters
from tutela.fl.records import parameters_to_bytes
from tutela.fl.study import prepare_data, prepare_sites, run_study
from tutela.server import pki
from tutela.server.agent import run_site
from tutela.server.deploy import run_study_over_network, write_site_files
from tutela.server.site_processes import site_command
from tutela.server.tls import client_context


def _config(rounds: int, secagg: str = "none", **training: Any) -> StudyConfig:
    return parse_study(
        {
            "study": {"seed": 1},
            "data": {"dataset": "pima-diabetes", "sites": 5 if secagg != "none" else 3},
            "training": {
                "rounds": rounds,
                "local_epochs": 1,
                "min_quorum": 2,
                "min_fit_sites": 2,
                **training,
            },
            "secure_aggregation": {"protocol": secagg},
        }
    )


def test_flagship_over_tls_with_secagg_matches_in_process(tmp_path: Path) -> None:
    config = _config(rounds=2, secagg="secagg+")
    net = run_study_over_network(
        config, tmp_path / "run", sites_as_processes=True, with_baselines=False
    )
    local = run_study(
        config.with_overrides(secure_aggregation={"protocol": "none"}), with_baselines=False
    )
    report = net["secure_aggregation"]
    assert report["protocol"] == "secagg+" and report["n"] == 5 and report["rounds"] == 2
    assert report["dropped_total_per_stage"] == {
        "advertise_keys": 0,
        "share_keys": 0,
        "masked_input": 0,
        "consistency_check": 0,
        "unmask": 0,
    }
    # The mean update differs from the plain one by at most the quantisation bound over the
    # total weight, per round; two rounds of FedAvg (server lr 1) add the two errors.
    bound = 2 * report["quantization_error_bound"] / 399 + 1e-6
    for name, value in local.final_parameters.items():
        assert np.max(np.abs(value - net["final_parameters"][name])) <= bound
    assert [h["round"] for h in net["history"]] == [1, 2]
    assert net["history"][-1]["accuracy"] == pytest.approx(
        local.history[-1].metrics["accuracy"], abs=0.02
    )
    assert net["federated"]["auc"] == pytest.approx(local.federated["auc"], abs=1e-3)
    assert net["deployment"]["sites_as_processes"] is True
    # Each site ran in its own process and enrolled with a one-time token.
    for i in range(1, 6):
        assert (tmp_path / "run" / "sites" / f"hospital-{i}" / "site.pem").exists()


def test_network_run_without_secagg_is_exactly_the_in_process_run(tmp_path: Path) -> None:
    config = _config(rounds=2)
    net = run_study_over_network(
        config, tmp_path / "run", sites_as_processes=False, with_baselines=False
    )
    local = run_study(config, with_baselines=False)
    for name, value in local.final_parameters.items():
        np.testing.assert_array_equal(value, net["final_parameters"][name])
    assert [h["accuracy"] for h in net["history"]] == [h.metrics["accuracy"] for h in local.history]


# ---- fault tests ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Deployment:
    """A coordinator process plus helpers to register sites and drive a study."""

    def __init__(self, root: Path, config: StudyConfig) -> None:
        self.root = root
        self.config = config
        self.pki = root / "pki"
        pki.init_ca(self.pki)
        pki.issue_to_files(self.pki, kind="server", name="localhost", sans=["127.0.0.1"])
        self.ca = pki.PkiLayout(self.pki).ca.cert
        self.port = _free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.data = prepare_data(config)
        self.prepared = prepare_sites(config, self.data)
        self.site_dirs = write_site_files(config, self.data, root / "sites")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_coordinator()
        self.headers = {
            "Authorization": f"Bearer {(root / 'coordinator' / 'admin.token').read_text().strip()}"
        }
        self.http = httpx.Client(
            base_url=self.url, verify=client_context(self.ca), timeout=30, headers=self.headers
        )

    def start_coordinator(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "tutela",
            "server",
            "start",
            "--data-dir",
            str(self.root / "coordinator"),
            "--pki",
            str(self.pki),
            "--port",
            str(self.port),
        ]
        log = (self.root / "coordinator.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with httpx.Client(verify=client_context(self.ca)) as c:
                    if c.get(f"{self.url}/health").status_code == 200:
                        return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("coordinator did not start")

    def kill_coordinator(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def create(self, stage_timeout_s: float = 30.0) -> str:
        tokens = {}
        for name in self.data.site_names:
            tokens[name] = self.http.post("/v1/admin/sites", json={"name": name}).json()[
                "enrolment_token"
            ]
        self.tokens = tokens
        cfg = self.config.with_overrides(data={"columns": list(self.data.columns)}).resolved()
        body = {
            "config": cfg,
            "deployment": {
                "stage_timeout_s": stage_timeout_s,
                "join_timeout_s": 60,
                "sites": list(self.data.site_names),
            },
        }
        study: str = self.http.post("/v1/admin/studies", json=body).json()["id"]
        initial = get_parameters(self.prepared.model_factory())
        self.http.put(
            f"/v1/admin/studies/{study}/model", content=parameters_to_bytes(initial)
        ).raise_for_status()
        self.http.post(f"/v1/admin/studies/{study}/start").raise_for_status()
        return study

    def site_kwargs(self, i: int) -> dict[str, Any]:
        name = self.data.site_names[i]
        d = self.site_dirs[name]
        return {
            "coordinator": self.url,
            "name": name,
            "ca_file": self.ca,
            "cert_file": d / "site.pem",
            "key_file": d / "site.key",
            "enrol_token": self.tokens[name],
            "data": d / "data.csv",
            "policy_file": d / "site-policy.toml",
            "state_dir": d / "state",
            "seed": self.config.study.seed * 1000 + i,
        }

    def site_thread(self, i: int, **overrides: Any) -> threading.Thread:
        kwargs = {**self.site_kwargs(i), **overrides, "max_runtime_s": 120.0}
        thread = threading.Thread(target=run_site, kwargs=kwargs, daemon=True)
        thread.start()
        return thread

    def site_process(self, i: int) -> subprocess.Popen[bytes]:
        log = (self.root / f"site-{i}.log").open("ab")
        return subprocess.Popen(
            site_command(self.site_kwargs(i)), stdout=log, stderr=subprocess.STDOUT
        )

    def status(self, study: str) -> dict[str, Any]:
        for _ in range(600):
            try:
                result: dict[str, Any] = self.http.get(f"/v1/admin/studies/{study}").json()
                return result
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("coordinator unreachable")

    def wait(self, study: str, predicate: Any, timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(study)
            if predicate(status):
                return status
            time.sleep(0.1)
        raise AssertionError(f"timed out; last status {status['status']} rounds {status['rounds']}")

    def close(self) -> None:
        self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _done(status: dict[str, Any]) -> bool:
    return status["status"] in ("completed", "failed", "cancelled")


def test_faults_killed_coordinator_killed_site_and_refusing_policy(tmp_path: Path) -> None:
    """One study, three faults, each ending as documented:

    - hospital-3's policy demands DP, SecAgg+ and fewer columns: it refuses at join, with
      every reason sent to the coordinator and audited; the study goes on without it;
    - hospital-4 (its own process) is killed while the study is paused after its first
      rounds (an administrator pauses it once it runs: the open round closes, no new one
      opens), then the study resumes: the rounds after the kill close at their deadline with
      the two live sites (quorum 2) and name it as failed (four rounds, so that at least
      one follows the kill however many ran before the pause landed);
    - the coordinator is SIGKILLed mid-round and restarted: the study resumes from the
      store and completes; no round loses or double-counts an accepted update.
    """
    config = parse_study(
        {
            "study": {"seed": 1},
            "data": {"dataset": "pima-diabetes", "sites": 4},
            "training": {"rounds": 4, "local_epochs": 1, "min_quorum": 2, "min_fit_sites": 2},
        }
    )
    dep = Deployment(tmp_path, config)
    strict = tmp_path / "strict-policy.toml"
    strict.write_text(  # the protective defaults: DP and SecAgg+ required
        '[purposes.disease-outcome-prediction]\ncolumns = ["glucose", "bmi"]\n'
    )
    rows = {name: len(r) for name, r in zip(dep.data.site_names, dep.data.site_rows, strict=True)}
    try:
        study = dep.create(stage_timeout_s=12.0)
        victim = dep.site_process(3)
        threads = [dep.site_thread(0), dep.site_thread(1), dep.site_thread(2, policy_file=strict)]
        dep.wait(study, lambda s: s["status"] == "running" and bool(s["rounds"]))
        assert dep.http.post(f"/v1/admin/studies/{study}/pause").status_code == 200
        paused = dep.wait(
            study,
            lambda s: s["status"] == "paused" and all(r["status"] != "open" for r in s["rounds"]),
        )
        assert 1 <= len(paused["rounds"]) <= 3, paused["rounds"]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        assert dep.http.post(f"/v1/admin/studies/{study}/start").status_code == 200
        after = len(paused["rounds"]) + 1
        dep.wait(study, lambda s: any(r["round"] == after for r in s["rounds"]))
        dep.kill_coordinator()  # no shutdown hook runs
        dep.start_coordinator()
        status = dep.wait(study, _done)
        for t in threads:
            t.join(timeout=60)
        audit = dep.http.get("/v1/admin/audit").json()
    finally:
        dep.close()
    assert status["status"] == "completed", status
    refusal = status["participation"]["hospital-3"]
    assert refusal["status"] == "refused" and refusal["num_examples"] == 0
    for reason in (
        "differential privacy is required",
        "secure aggregation is required",
        "columns not allowed",
    ):
        assert reason in refusal["reason"]
    assert "pregnancies" in refusal["reason"]
    refused = [e for e in audit if e["action"] == "study.refuse"]
    assert refused and refused[0]["actor"] == "site:hospital-3"
    rounds = status["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3, 4]
    assert all(r["status"] == "aggregated" for r in rounds)
    assert rounds[0]["sites"] == ["hospital-1", "hospital-2", "hospital-4"]
    for r in rounds[len(paused["rounds"]) :]:  # every round after the kill
        assert r["failed"] == ["hospital-4"]
        assert r["sites"] == ["hospital-1", "hospital-2"]
    for r in rounds:  # nothing lost, nothing counted twice
        assert r["num_examples"] == sum(rows[s] for s in r["sites"])
