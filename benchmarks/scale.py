"""Simulated devices at scale: Tutela's Ray backend against Flower's simulation engine on Ray.

The same cross-device study on both: the handwritten digits (scikit-learn), each device a
label-skewed partition (2 of the 10 classes, 8 rows), a multinomial logistic regression,
one local epoch (batch 8, learning rate 0.5), FedAvg over ``--per-round`` devices sampled
per round, for 1,000 and 10,000 devices. Each system runs in its own process on a local
Ray instance with the same CPUs; this script samples the resident memory of that process
and every process under it (driver, Ray's services, workers) and reports the peak.

- Tutela: :func:`tutela.fl.cross_device.cross_device_config` run by ``run_study`` with
  ``backend=RayBackend()`` (PyTorch at the devices).
- Flower 1.42.0 (``flwr[simulation]``, in its own virtual environment
  ``.bench-venvs/flwr-sim-1.42.0`` that this script creates): a ClientApp training the same
  model in numpy on the same partitions, the message-API ``FedAvg`` with
  ``fraction_train = per_round / devices``, ``run_simulation`` with one CPU per client.

Seconds per round are wall-clock between the end of one round and the end of the next
(round 1, which starts the workers, is reported apart); the ratio column is Tutela over
Flower. ``--privacy`` adds a Tutela row with client-level DP-FedAvg (adaptive clipping)
inside SecAgg+ among the sampled devices, whose SecAgg+ clients run on the Ray workers;
``--secagg-on-driver`` adds the same study with those clients in the driver process (the
layout before they moved to the workers), as the same-run baseline.

    .venv/bin/python benchmarks/scale.py [--devices 1000 10000] [--per-round 1000]
        [--rounds 4] [--cpus 2] [--no-flower] [--privacy N] [--secagg-on-driver]
    .venv/bin/python benchmarks/scale.py --only-secagg   # SecAgg+ server/plain ratio only
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLOWER_VERSION = "1.42.0"
FLOWER_VENV = ROOT / ".bench-venvs" / f"flwr-sim-{FLOWER_VERSION}"
ROWS, CLASSES_PER_DEVICE, BATCH, LR = 8, 2, 8, 0.5


# -- memory of a process tree ---------------------------------------------------------------


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every process below it (from /proc)."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            parent[int(proc.name)] = int(fields[1])
            rss[int(proc.name)] = int((proc / "statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    total, seen, stack = 0, set(), [root]
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_measured(cmd: list[str], timeout: float) -> tuple[dict[str, Any] | None, int, str]:
    """Run ``cmd``; return its last stdout line as JSON, the peak tree RSS and stderr's tail."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    done.set()
    sampler.join()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
    return result, peak, "\n".join(err.strip().splitlines()[-3:])


def per_round(stamps: list[float]) -> dict[str, float]:
    """Round 1 (workers starting) and the median of the later rounds, from end stamps."""
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return {
        "first_s": gaps[0],
        "round_s": statistics.median(gaps[1:]) if len(gaps) > 1 else gaps[0],
    }


# -- Tutela (main environment) --------------------------------------------------------------


def tutela_worker(devices: int, sampled: int, rounds: int, cpus: int, privacy: int) -> None:
    """One Tutela run; ``privacy``: 0 plain, 1 DP + SecAgg+ with the devices' SecAgg+
    clients on the workers, 2 the same with those clients in this process."""
    import tempfile

    import ray

    from tutela.dp.ledger import PrivacyLedger
    from tutela.fl.cross_device import cross_device_config, digits_devices, digits_model
    from tutela.fl.privacy import client_level_dp
    from tutela.fl.ray_backend import RayBackend
    from tutela.fl.study import run_study

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    data = digits_devices(devices, rows_per_device=ROWS, classes_per_device=CLASSES_PER_DEVICE)
    config = cross_device_config(
        devices, sampled, rounds=rounds, learning_rate=LR,
        epsilon=8.0 if privacy else None, secure_aggregation=privacy,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        aggregator = (
            client_level_dp(config, PrivacyLedger(Path(scratch) / "ledger.sqlite"))
            if privacy
            else None
        )
        if aggregator is not None and privacy == 2:
            from tutela.secagg.simulate import LocalClients

            aggregator.client_hosts = LocalClients  # run_study then leaves them here
        stamps = [time.perf_counter()]
        run = run_study(
            config, data=data, model_factory=digits_model(0), aggregator=aggregator,
            with_baselines=False, backend=RayBackend(),
            progress=lambda _r: stamps.append(time.perf_counter()),
        )  # fmt: skip
    print(json.dumps({**per_round(stamps), "accuracy": run.federated["accuracy"]}))


# -- Flower (its own environment; imports only flwr, numpy and scikit-learn) ----------------


def flower_worker(devices: int, sampled: int, rounds: int, cpus: int) -> None:
    import logging

    import numpy as np
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg
    from flwr.simulation import run_simulation
    from sklearn.datasets import load_digits

    logging.getLogger("flwr").setLevel(logging.ERROR)
    x_all, y_all = load_digits(return_X_y=True)
    x_all = (x_all / 16.0).astype(np.float32)
    cache: dict[int, tuple[Any, Any]] = {}

    def partition(pid: int) -> tuple[Any, Any]:
        # same scheme as tutela.fl.cross_device.digits_devices (own generator per device)
        if pid not in cache:
            rng = np.random.default_rng([0, pid])
            classes = rng.choice(10, size=CLASSES_PER_DEVICE, replace=False)
            pool = np.flatnonzero(np.isin(y_all, classes))
            rows = rng.choice(pool, size=ROWS, replace=False)
            cache[pid] = (x_all[rows], y_all[rows])
        return cache[pid]

    client = ClientApp()

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        x, y = partition(int(context.node_config["partition-id"]))
        w, b = msg.content["arrays"].to_numpy_ndarrays()
        rng = np.random.default_rng()
        order = rng.permutation(len(y))
        for i in range(0, len(y), BATCH):
            idx = order[i : i + BATCH]
            logits = x[idx] @ w.T + b
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), y[idx]] -= 1.0
            w = w - LR * (p.T @ x[idx]) / len(idx)
            b = b - LR * p.mean(axis=0)
        content = RecordDict(
            {
                "arrays": ArrayRecord([w.astype(np.float32), b.astype(np.float32)]),
                "metrics": MetricRecord({"num-examples": len(y)}),
            }
        )
        return Message(content=content, reply_to=msg)

    server = ServerApp()
    stamps: list[float] = []

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_train=sampled / devices,
            fraction_evaluate=0.0,
            min_train_nodes=sampled,
            min_available_nodes=devices,
        )

        def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
            stamps.append(time.perf_counter())
            return MetricRecord({})

        initial = ArrayRecord([np.zeros((10, 64), np.float32), np.zeros(10, np.float32)])
        strategy.start(grid=grid, initial_arrays=initial, num_rounds=rounds, evaluate_fn=evaluate)

    run_simulation(
        server_app=server,
        client_app=client,
        num_supernodes=devices,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": cpus, "include_dashboard": False},
        },
    )
    print(json.dumps(per_round(stamps)))


def ensure_flower() -> Path | None:
    python = FLOWER_VENV / "bin" / "python"
    probe = [str(python), "-c", f"import flwr; assert flwr.__version__ == '{FLOWER_VERSION}'"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    try:
        FLOWER_VENV.parent.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(FLOWER_VENV)], check=True)
        pip = str(FLOWER_VENV / "bin" / "pip")
        subprocess.run(
            [pip, "install", "-q", f"flwr[simulation]=={FLOWER_VERSION}", "scikit-learn"],
            check=True,
            timeout=1800,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"could not install flwr[simulation]=={FLOWER_VERSION}: {exc}", file=sys.stderr)
        return None
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--per-round", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--no-flower", action="store_true")
    parser.add_argument(
        "--privacy", type=int, default=0, metavar="N",
        help="also run DP-FedAvg inside SecAgg+ with N devices per round",
    )  # fmt: skip
    parser.add_argument(
        "--secagg-on-driver", action="store_true",
        help="with --privacy, also run the SecAgg+ clients in the driver (the baseline)",
    )  # fmt: skip
    parser.add_argument(
        "--only-secagg", action="store_true",
        help="only the SecAgg+ server/plain ratio (benchmarks/secagg_server.py: n=100, d=1e6)",
    )  # fmt: skip
    parser.add_argument("--tutela-worker", nargs=5, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--flower-worker", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tutela_worker:
        d, s, r, c, p = args.tutela_worker
        tutela_worker(d, s, r, c, p)
        return
    if args.flower_worker:
        flower_worker(*args.flower_worker)
        return

    if args.only_secagg:  # the server's unmasking against the plain weighted sum, same run
        script = str(ROOT / "benchmarks" / "secagg_server.py")
        sys.exit(subprocess.run([sys.executable, script, "--repeat", "5"], check=False).returncode)
    flower = None if args.no_flower else ensure_flower()
    me = str(Path(__file__).resolve())
    rows: list[tuple[str, int, int, dict[str, Any] | None, int]] = []
    for devices in args.devices:
        sampled = min(args.per_round, devices)
        common = [str(devices), str(sampled), str(args.rounds), str(args.cpus)]
        res, peak, err = run_measured([sys.executable, me, "--tutela-worker", *common, "0"], 3600)
        if res is None:
            print(f"tutela {devices}: failed: {err}", file=sys.stderr)
        rows.append(("tutela-ray", devices, sampled, res, peak))
        if flower is not None:
            res, peak, err = run_measured([str(flower), me, "--flower-worker", *common], 3600)
            if res is None:
                print(f"flower {devices}: failed: {err}", file=sys.stderr)
            rows.append(("flower-1.42-ray", devices, sampled, res, peak))
        layouts = [("1", "tutela-ray dp-fedavg+secagg+ (clients on workers)")]
        if args.secagg_on_driver:
            layouts.append(("2", "tutela-ray dp-fedavg+secagg+ (clients on driver)"))
        for code, label in layouts if args.privacy else []:
            cmd = [sys.executable, me, "--tutela-worker", str(devices), str(args.privacy),
                   str(args.rounds), str(args.cpus), code]  # fmt: skip
            res, peak, err = run_measured(cmd, 3600)
            if res is None:
                print(f"{label} {devices}: failed: {err}", file=sys.stderr)
            rows.append((label, devices, args.privacy, res, peak))

    print(f"cpus={args.cpus} rounds={args.rounds} (round 1 starts the workers)")
    print("| system | devices | per round | round 1 s | s/round | peak RSS MB | vs Flower |")
    print("|---|---|---|---|---|---|---|")
    baseline = {(d, s): r for name, d, s, r, _p in rows if name.startswith("flower") and r}
    for name, devices, sampled, res, peak in rows:
        if res is None:
            print(f"| {name} | {devices} | {sampled} | failed | | {peak / 2**20:.0f} | |")
            continue
        base = baseline.get((devices, sampled))  # the same study on Flower, if it ran
        ratio = f"{res['round_s'] / base['round_s']:.2f}x" if base and name != "flower" else ""
        print(
            f"| {name} | {devices} | {sampled} | {res['first_s']:.1f} | {res['round_s']:.2f} | "
            f"{peak / 2**20:.0f} | {ratio if not name.startswith('flower') else '1.00x'} |"
        )


if __name__ == "__main__":
    main()
