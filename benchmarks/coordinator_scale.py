"""Coordinator at scale: rounds per minute and coordinator memory with N simulated agents,
tasks pushed (long polling) against the fixed-interval polling agents, in the same run.

The coordinator runs as its own process (``tutela server start``: HTTPS, mutual TLS, sealed
blobs, Merkle audit log) on PostgreSQL when ``--pg-url`` (or ``TUTELA_BENCH_PG_URL``) names
a server, else on SQLite (the table says which). Every agent enrols with a one-time token
(its own key pair and CSR, a certificate from the deployment CA), then speaks the site API
over its own mutual-TLS connection from an asyncio process: it answers the invitation, and
each round downloads the global model (10,000 parameters) and uploads a random float32
update (no local training: the numbers are the coordinator and its transport). Quorum is
every agent, so each round waits for all N uploads.

- **push**: agents long-poll ``/v1/site/tasks?wait=25&seen=<version>``; the coordinator
  answers when their tasks change. As the site agent does, an agent takes the model from
  the task and submits its update with ``wait`` and ``seen``, so the receipt brings its next
  task: one request per round.
- **baseline (polling)**: the same agents poll every 0.2 s when idle (the site agent's
  interval before tasks were pushed), without ``wait``; they fetch the model and submit,
  three requests per round.

Rounds/min is timed from the end of round 1 (every handshake and join done) to the last
round. RSS is the coordinator process's (peak, and after the last round); with
``--memory-rounds R`` it also prints the coordinator's RSS every 10 rounds over R rounds of
push at the smallest N.

Demo latency (``--demo``): the default ``tutela demo`` study (5 hospitals, 30 rounds,
SecAgg+) over the loopback network (one site-agent process per hospital) against the same
study in process, both in this run.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/coordinator_scale.py --agents 200 1000
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/coordinator_scale.py --demo
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tutela.fl.records import parameters_to_bytes
from tutela.server import pki
from tutela.server.agent.enrol import enrol
from tutela.server.wire import parse_tensors

DIM = 10_000
POLL_S = 0.2
WAIT_S = 25.0
FINISHED = ("completed", "failed", "cancelled")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _fresh_pg_db(base: str) -> str:
    import sqlalchemy as sa

    url = sa.engine.make_url(base)
    name = f"bench_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


class Coordinator:
    """A coordinator process, its PKI, N enrolled agents' files and an admin client."""

    def __init__(self, root: Path, agents: int, db_url: str | None) -> None:
        self.root = root
        self.pki = root / "pki"
        pki.init_ca(self.pki)
        pki.issue_to_files(self.pki, kind="server", name="localhost", sans=["127.0.0.1"])
        self.ca = pki.PkiLayout(self.pki).ca.cert
        self.port = _free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "tutela", "server", "start", "--data-dir",
               str(root / "data"), "--pki", str(self.pki), "--port", str(self.port)]  # fmt: skip
        if db_url is not None:
            cmd += ["--db-url", db_url]
        log = (root / "coordinator.log").open("wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
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
            base_url=self.url, verify=verify, timeout=300,
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        self.names = [f"site-{i:04d}" for i in range(agents)]
        tokens = {}
        for name in self.names:
            r = self.admin.post("/v1/admin/sites", json={"name": name})
            r.raise_for_status()
            tokens[name] = r.json()["enrolment_token"]
        self.agent_dir = root / "agents"
        self.agent_dir.mkdir()

        def one(name: str) -> None:
            enrol(self.url, self.ca, name, tokens[name], self.cert(name), self.key(name))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, self.names))

    def cert(self, name: str) -> Path:
        return self.agent_dir / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.agent_dir / f"{name}.key"

    def study(self, rounds: int) -> str:
        n = len(self.names)
        config = {
            "data": {"dataset": "pima-diabetes", "sites": n},
            "training": {"rounds": rounds, "min_quorum": n, "min_fit_sites": n},
        }
        deployment = {"stage_timeout_s": 900, "join_timeout_s": 900, "sites": self.names}
        r = self.admin.post("/v1/admin/studies", json={"config": config, "deployment": deployment})
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
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---- the agents (a separate process: python coordinator_scale.py --agents-of SPEC) ---------


async def _send(client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> httpx.Response:
    """One request, retried (as the site agent's transport does) while the connection fails,
    e.g. a keep-alive connection the server closed just as it was reused."""
    for attempt in range(20):
        try:
            return await client.request(method, path, **kw)
        except httpx.TransportError:
            await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
    return await client.request(method, path, **kw)


async def _agent(spec: dict[str, Any], name: str, rng: np.random.Generator) -> int:
    ctx = ssl.create_default_context(cafile=spec["ca"])
    ctx.load_cert_chain(spec["certs"][name], spec["keys"][name])
    study, push = spec["study"], spec["push"]
    requests = 0
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with httpx.AsyncClient(
        base_url=spec["url"], verify=ctx, timeout=WAIT_S + 600, limits=limits
    ) as client:
        seen: str | None = None
        followed: dict[str, Any] | None = None
        while True:
            if followed is not None:  # the next answer came back with the last submission
                data, followed = followed, None
            else:
                params = {"wait": WAIT_S, "seen": seen} if push and seen is not None else {}
                r = await _send(client, "GET", "/v1/site/tasks", params=params)
                requests += 1
                if r.status_code != 200:  # over a bound or busy: ask again without waiting
                    seen = None
                    await asyncio.sleep(POLL_S)
                    continue
                data = r.json()
            worked = False
            for task in data["tasks"]:
                worked = True
                if task["kind"] == "join":
                    body = {
                        "accept": True,
                        "num_examples": 100,
                        "moments": {"count": 100, "total": [0.0] * 7, "total_sq": [100.0] * 7},
                    }
                    r = await _send(
                        client, "POST", f"/v1/site/studies/{study}/participation", json=body
                    )
                    r.raise_for_status()
                elif task["kind"] == "fit":
                    if push and "model" in task:  # the model came in the task
                        model, _ = parse_tensors(base64.b64decode(task["model"]))
                    else:
                        got = await _send(client, "GET", f"/v1/site/studies/{study}/model")
                        requests += 1
                        model, _ = parse_tensors(got.content)
                    update = {
                        k: (rng.standard_normal(v.shape) * 0.01).astype(np.float32)
                        for k, v in model.items()
                    }
                    meta = {"study": study, "round": str(task["round"]), "num_examples": "100"}
                    # pushed: the receipt waits for this agent's next tasks answer
                    hold = {"wait": WAIT_S, "seen": data["version"]} if push else {}
                    r = await _send(
                        client,
                        "POST",
                        f"/v1/site/studies/{study}/rounds/{task['round']}/stages/fit",
                        params=hold,
                        content=parameters_to_bytes(update, metadata=meta),
                        headers={"Idempotency-Key": f"{name}-{task['round']}-{task['attempt']}"},
                    )
                    r.raise_for_status()
                    followed = r.json().get("next_tasks") if push else None
                requests += 1
            if data["studies"].get(study) in FINISHED:
                return requests
            if push:
                seen = data.get("version")
            elif not worked:
                await asyncio.sleep(POLL_S)


def _agents_main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())

    async def main() -> None:
        rng = np.random.default_rng(spec["seed"])
        # Start the agents gradually: a thousand TLS handshakes at once time out on 2 cores.
        tasks = []
        for name in spec["names"]:
            tasks.append(asyncio.create_task(_agent(spec, name, rng)))
            await asyncio.sleep(0.002)
        counts = await asyncio.gather(*tasks)
        Path(spec["out"]).write_text(json.dumps({"requests": sum(counts)}))

    asyncio.run(main())


def _closed(status: dict[str, Any]) -> int:
    return sum(r["status"] in ("aggregated", "quorum-not-met") for r in status["rounds"])


def measure(
    agents: int, rounds: int, *, push: bool, db_url: str | None, memory_every: int = 0
) -> dict[str, Any]:
    """One run: ``agents`` agents, ``rounds`` timed rounds after a first untimed one."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        coord = Coordinator(root, agents, db_url)
        try:
            idle = _rss_mib(coord.proc.pid)
            study = coord.study(rounds + 1)
            spec = {
                "url": coord.url, "ca": str(coord.ca), "study": study, "push": push,
                "names": coord.names, "seed": 0, "out": str(root / "agents.json"),
                "certs": {n: str(coord.cert(n)) for n in coord.names},
                "keys": {n: str(coord.key(n)) for n in coord.names},
            }  # fmt: skip
            (root / "spec.json").write_text(json.dumps(spec))
            agents_proc = subprocess.Popen(
                [sys.executable, __file__, "--agents-of", str(root / "spec.json")]
            )
            series: dict[int, float] = {}
            while _closed(coord.status(study)) < 1:
                if agents_proc.poll() is not None:
                    raise RuntimeError("the agents' process exited before round 1 closed")
                time.sleep(0.1)
            start = time.perf_counter()
            while True:
                status = coord.status(study)
                closed = _closed(status)
                if memory_every and closed % memory_every == 0 and closed not in series:
                    series[closed] = _rss_mib(coord.proc.pid)
                if status["status"] in FINISHED:
                    break
                time.sleep(0.2)
            elapsed = time.perf_counter() - start
            end_rss = _rss_mib(coord.proc.pid)
            peak = _rss_mib(coord.proc.pid, "VmHWM")
            agents_proc.wait(timeout=300)
            requests = json.loads((root / "agents.json").read_text())["requests"]
        finally:
            coord.stop()
    assert status["status"] == "completed", status.get("error")
    return {
        "rounds_per_min": rounds / elapsed * 60,
        "peak_mib": peak,
        "end_mib": end_rss,
        "idle_mib": idle,
        "requests_per_round": requests / (rounds + 1),
        "series": series,
    }


def demo() -> None:
    """The default demo study over the loopback network against in process, same run."""
    from tutela.fl.recipes import flagship_config
    from tutela.fl.study import run_study
    from tutela.server.deploy import run_study_over_network

    config = flagship_config()
    n, rounds = config.data.sites, config.training.rounds
    print(f"study: the default demo ({n} hospitals, {rounds} rounds, SecAgg+), no baselines")
    t = time.perf_counter()
    run_study(config, with_baselines=False)
    local = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result = run_study_over_network(config, Path(tmp) / "run", with_baselines=False)
        net = time.perf_counter() - t
    study = float(result["deployment"]["study_s"])
    print(f"in process (baseline): {local:.1f} s")
    print(
        f"network (coordinator + {n} site processes): study {study:.1f} s "
        f"(start to completed), ratio {study / local:.2f}x; "
        f"wall {net:.1f} s with set-up and process start-up, ratio {net / local:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (push)")
    parser.add_argument("--baseline-rounds", type=int, default=2, help="timed rounds (polling)")
    parser.add_argument("--memory-rounds", type=int, default=0)
    parser.add_argument("--pg-url", default=os.environ.get("TUTELA_BENCH_PG_URL"))
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--demo", action="store_true")
    parser.add_argument("--agents-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agents_of:
        _agents_main(args.agents_of)
        return
    if args.demo:
        demo()
        return
    store = "PostgreSQL" if args.pg_url else "SQLite (no PostgreSQL server given)"
    print(f"model: {DIM + 1} float32 parameters; store: {store}; {os.cpu_count()} CPUs")
    print(f"baseline: the same agents polling every {POLL_S} s (no long poll), same run\n")
    head = ("agents", "mode", "rounds/min", "ratio", "req/round", "peak MiB", "end MiB")
    print("{:>6}  {:>8}  {:>10}  {:>6}  {:>9}  {:>8}  {:>8}".format(*head), flush=True)
    for n in args.agents:
        db = _fresh_pg_db(args.pg_url) if args.pg_url else None
        pushed = measure(n, args.rounds, push=True, db_url=db)
        polled = None
        if not args.no_baseline:
            db = _fresh_pg_db(args.pg_url) if args.pg_url else None
            polled = measure(n, args.baseline_rounds, push=False, db_url=db)
        for mode, m in (("push", pushed), ("polling", polled)):
            if m is None:
                continue
            ratio = m["rounds_per_min"] / polled["rounds_per_min"] if polled else float("nan")
            print(
                f"{n:>6}  {mode:>8}  {m['rounds_per_min']:>10.1f}  {ratio:>6.2f}  "
                f"{m['requests_per_round']:>9.0f}  {m['peak_mib']:>8.1f}  {m['end_mib']:>8.1f}",
                flush=True,
            )
    if args.memory_rounds:
        n = min(args.agents)
        db = _fresh_pg_db(args.pg_url) if args.pg_url else None
        m = measure(n, args.memory_rounds, push=True, db_url=db, memory_every=10)
        points = ", ".join(f"{k}:{v:.0f}" for k, v in sorted(m["series"].items()))
        print(f"\nmemory ({n} agents, push): RSS MiB by closed round: {points}")


if __name__ == "__main__":
    main()
