"""Coordinator throughput and memory: rounds per minute and peak RSS versus number of sites.

The coordinator runs as its own process (``tutela server start``: HTTPS, mutual TLS,
encrypted SQLite store, Merkle audit log). Sites are simulated as concurrent asyncio clients
on loopback, each with its own client certificate: they poll for tasks, join, download the
global model and upload a random float32 update of the model's size (no local training, so
the numbers measure the coordinator and its transport, not PyTorch).

Baseline (measured in the same run): the same number of sites and rounds aggregated in
process by the same strategy code (``PlainAggregator`` + ``FedAvg``), with no network, no
store and no encryption. The ratio says what the real deployment path costs per round.

Memory: coordinator RSS after 10 and after 100 rounds with 5 sites (it must not grow:
individual updates are deleted once aggregated and nothing accumulates per round).

Usage:  .venv/bin/python benchmarks/coordinator.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tutela.fl.engine import PlainAggregator
from tutela.fl.records import parameters_to_bytes
from tutela.fl.strategy import ClientUpdate, FedAvg
from tutela.server import pki
from tutela.server.wire import parse_tensors

DIM = 10_000  # parameters of the benchmark model (one float32 tensor plus a bias)
POLL_S = 0.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Coordinator:
    """A coordinator process with a PKI and an admin client."""

    def __init__(self, root: Path, sites: int) -> None:
        self.root = root
        self.pki = root / "pki"
        pki.init_ca(self.pki)
        pki.issue_to_files(self.pki, kind="server", name="localhost", sans=["127.0.0.1"])
        self.ca = pki.PkiLayout(self.pki).ca.cert
        self.names = [f"site-{i:03d}" for i in range(sites)]
        for name in self.names:
            pki.issue_to_files(self.pki, kind="site", name=name)
        self.port = _free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "tutela",
            "server",
            "start",
            "--data-dir",
            str(root / "data"),
            "--pki",
            str(self.pki),
            "--port",
            str(self.port),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        verify = ssl.create_default_context(cafile=str(self.ca))
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/health", verify=verify).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        token = (root / "data" / "admin.token").read_text().strip()
        self.admin = httpx.Client(
            base_url=self.url,
            verify=verify,
            timeout=120,
            headers={"Authorization": f"Bearer {token}"},
        )
        for name in self.names:
            self.admin.post(f"/v1/admin/sites/{name}/activate").raise_for_status()

    def study(self, rounds: int) -> str:
        n = len(self.names)
        config = {
            "data": {"dataset": "pima-diabetes", "sites": n},
            "training": {"rounds": rounds, "min_quorum": n, "min_fit_sites": n},
        }
        r = self.admin.post(
            "/v1/admin/studies",
            json={
                "config": config,
                "deployment": {"stage_timeout_s": 600, "join_timeout_s": 600, "sites": self.names},
            },
        )
        r.raise_for_status()
        study: str = r.json()["id"]
        model = {"w": np.zeros((1, DIM), np.float32), "b": np.zeros(1, np.float32)}
        self.admin.put(
            f"/v1/admin/studies/{study}/model", content=parameters_to_bytes(model)
        ).raise_for_status()
        self.admin.post(f"/v1/admin/studies/{study}/start").raise_for_status()
        return study

    def status(self, study: str) -> dict[str, Any]:
        result: dict[str, Any] = self.admin.get(f"/v1/admin/studies/{study}").json()
        return result

    def stop(self) -> None:
        self.admin.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _site(name: str, coord: Coordinator, study: str, rng: np.random.Generator) -> None:
    paths = pki.PkiLayout(coord.pki).site(name)
    ctx = ssl.create_default_context(cafile=str(coord.ca))
    ctx.load_cert_chain(paths.cert, paths.key)
    async with httpx.AsyncClient(base_url=coord.url, verify=ctx, timeout=600) as client:
        while True:
            data = (await client.get("/v1/site/tasks")).json()
            worked = False
            for task in data["tasks"]:
                worked = True
                if task["kind"] == "join":
                    body = {
                        "accept": True,
                        "num_examples": 100,
                        "moments": {"count": 100, "total": [0.0] * 7, "total_sq": [100.0] * 7},
                    }
                    (
                        await client.post(f"/v1/site/studies/{study}/participation", json=body)
                    ).raise_for_status()
                elif task["kind"] == "fit":
                    model, _ = parse_tensors(
                        (await client.get(f"/v1/site/studies/{study}/model")).content
                    )
                    update = {
                        k: (rng.standard_normal(v.shape) * 0.01).astype(np.float32)
                        for k, v in model.items()
                    }
                    meta = {"study": study, "round": str(task["round"]), "num_examples": "100"}
                    r = await client.post(
                        f"/v1/site/studies/{study}/rounds/{task['round']}/stages/fit",
                        content=parameters_to_bytes(update, metadata=meta),
                        headers={"Idempotency-Key": f"{name}-{task['round']}"},
                    )
                    r.raise_for_status()
            if data["studies"].get(study) in ("completed", "failed", "cancelled"):
                return
            if not worked:
                await asyncio.sleep(POLL_S)


def _random_update(model: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {k: (rng.standard_normal(v.shape) * 0.01).astype(np.float32) for k, v in model.items()}


def _run_sites(coord: Coordinator, study: str) -> None:
    async def main() -> None:
        rng = np.random.default_rng(0)
        await asyncio.gather(*(_site(n, coord, study, rng) for n in coord.names))

    asyncio.run(main())


def _rounds_closed(status: dict[str, Any]) -> list[float]:
    return [r for r in status["rounds"] if r["status"] in ("aggregated", "quorum-not-met")]  # type: ignore[misc]


def measure(sites: int, rounds: int) -> dict[str, float]:
    """Rounds per minute and peak RSS of the coordinator for ``sites`` simulated sites."""
    with tempfile.TemporaryDirectory() as tmp:
        coord = Coordinator(Path(tmp), sites)
        try:
            base_rss = _rss_kib(coord.proc.pid, "VmRSS")
            study = coord.study(rounds + 1)
            thread = threading.Thread(target=_run_sites, args=(coord, study), daemon=True)
            thread.start()
            # Time from the end of round 1 (joins and TLS handshakes done) to the last round.
            while len(_rounds_closed(coord.status(study))) < 1:
                time.sleep(0.05)
            start = time.perf_counter()
            while coord.status(study)["status"] != "completed":
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
            thread.join(timeout=60)
            peak = _rss_kib(coord.proc.pid, "VmHWM")
        finally:
            coord.stop()
    return {
        "rounds_per_min": rounds / elapsed * 60,
        "peak_mib": peak / 1024,
        "idle_mib": base_rss / 1024,
    }


def baseline(sites: int, rounds: int) -> float:
    """Rounds per minute of the same aggregation in process (no network, store or crypto)."""
    rng = np.random.default_rng(0)
    params = {"w": np.zeros((1, DIM), np.float32), "b": np.zeros(1, np.float32)}
    strategy = FedAvg(min_fit_sites=sites)
    start = time.perf_counter()
    for r in range(1, rounds + 1):
        updates = [
            ClientUpdate(
                f"s{i}",
                {
                    k: (rng.standard_normal(v.shape) * 0.01).astype(np.float32)
                    for k, v in params.items()
                },
                100,
            )
            for i in range(sites)
        ]
        params = strategy.aggregate_fit(r, params, PlainAggregator().aggregate(r, updates, params))
    return rounds / (time.perf_counter() - start) * 60


def memory_growth(short: int, long: int) -> dict[int, float]:
    """Coordinator RSS (MiB) after every ``short`` rounds up to ``long`` rounds, 5 sites."""
    with tempfile.TemporaryDirectory() as tmp:
        coord = Coordinator(Path(tmp), 5)
        try:
            study = coord.study(long)
            thread = threading.Thread(target=_run_sites, args=(coord, study), daemon=True)
            thread.start()
            series: dict[int, float] = {}
            while True:
                status = coord.status(study)
                closed = len(_rounds_closed(status))
                mark = closed - closed % short
                if mark >= short and mark not in series:
                    series[mark] = _rss_kib(coord.proc.pid, "VmRSS") / 1024
                if status["status"] == "completed":
                    break
                time.sleep(0.1)
            series[long] = _rss_kib(coord.proc.pid, "VmRSS") / 1024
            thread.join(timeout=60)
        finally:
            coord.stop()
    return series


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="5 and 50 sites, 3 rounds; memory 3 vs 30 rounds"
    )
    args = parser.parse_args()
    site_counts = (5, 50) if args.quick else (5, 50, 200)
    rounds = 3 if args.quick else 5
    short, long = (3, 30) if args.quick else (10, 100)
    print(
        f"model: {DIM + 1} float32 parameters; site poll interval {POLL_S} s; {os.cpu_count()} CPUs"
    )
    print(
        "baseline: the same rounds aggregated in process (PlainAggregator + FedAvg), "
        "no network, store or crypto\n"
    )
    header = ("sites", "rounds/min", "baseline r/min", "ratio", "peak RSS MiB", "idle RSS MiB")
    print("{:>5}  {:>10}  {:>14}  {:>8}  {:>12}  {:>12}".format(*header))
    for n in site_counts:
        m = measure(n, rounds)
        b = baseline(n, rounds)
        print(
            f"{n:>5}  {m['rounds_per_min']:>10.1f}  {b:>14.1f}  {m['rounds_per_min'] / b:>8.4f}  "
            f"{m['peak_mib']:>12.1f}  {m['idle_mib']:>12.1f}"
        )
    series = memory_growth(short, long)
    a, b = series[short], series[long]
    half = series.get(long // 2, a)
    print(
        f"\nmemory (5 sites): RSS after {short} rounds {a:.1f} MiB, "
        f"after {long} rounds {b:.1f} MiB, ratio {b / a:.3f}; "
        f"second half ({long // 2} -> {long}) {b - half:+.1f} MiB"
    )
    points = ", ".join(f"{v:.0f}" for _, v in sorted(series.items()))
    print(f"RSS every {short} rounds (MiB): {points}")


if __name__ == "__main__":
    main()
