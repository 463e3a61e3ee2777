"""SecAgg+ cost: Tutela vs plain aggregation and vs Flower 1.42's SecAgg+, in one run.

Every cell runs one full round in this process (clients one after another, so CPU time is
the honest measure): Tutela's ``secure_sum`` with random float32 updates in [-1, 1) and
``round(dropout * n)`` clients dropping after sharing keys (the costliest point for the
server), the plain weighted sum of the same float32 vectors, and Flower 1.42.0's
``SecAggPlusWorkflow`` (its example's 3 shares / threshold 2) driven in process through a
minimal Grid in a separate virtual environment (``.bench-venvs/flwr-1.42.0``, installed by
this script with ``pip install -c constraints.txt "flwr==1.42.0"``), once with its example's
settings and once with Tutela's k and t. The Flower harness deflates and inflates every message
the way its transports do (the research note's harness A); Tutela's round likewise serialises
every message to bytes. If Flower cannot be installed the script says so and shows the research
note's recorded figure instead, marked with ``*``.

Columns: ``mask ms/1M`` is a client's masked-input stage (decrypt shares, clip, quantise,
expand and add k+1 masks, pack) per million parameters; ``server x plain`` is the server's
work from the first masked input to the released sum (accumulate, rebuild secrets, remove
masks, decode) over the plain weighted sum of the same vectors; ``round s`` is all clients
plus the server; ``B/param`` is a survivor's upload divided by d.

Usage::

    .venv/bin/python benchmarks/secagg.py [--quick] [--no-flower] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLOWER_VERSION = "1.42.0"
FLOWER_VENV = ROOT / ".bench-venvs" / f"flwr-{FLOWER_VERSION}"
# ../shared/research/flower-secagg-baseline.md, harness A (in process, with Flower's
# serialisation), n=100, d=1e6: 44.8 s per round (8.91 s of it protocol compute).
RECORDED_FLOWER = {(100, 10**6): 44.8}


# -- Flower side (runs inside the Flower venv; imports only flwr and numpy) -----------------


def flower_worker(n: int, d: int, dropout: float, seed: int, shares: int, threshold: int) -> None:
    import copy
    import logging

    import numpy as np
    from flwr.app import Context, Message, RecordDict
    from flwr.client import ClientApp, NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat
    from flwr.server import ServerConfig
    from flwr.server.compat.legacy_context import LegacyContext
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD
    from flwr.serverapp.grid import Grid
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
    from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity

    logging.getLogger("flwr").setLevel(logging.ERROR)
    TaskIdentity.run_id = 1
    TaskIdentity.node_id = 0
    TaskIdentity.task_id = 1
    rng = np.random.default_rng(seed)
    vecs = {nid: rng.uniform(-1, 1, d).astype(np.float32) for nid in range(1, n + 1)}
    ids = np.arange(1, n + 1)
    dropped = set(rng.choice(ids, size=round(dropout * n), replace=False).tolist())

    class Client(NumPyClient):  # type: ignore[misc]
        def __init__(self, nid: int) -> None:
            self.nid = nid

        def fit(self, parameters: Any, config: Any) -> Any:
            return [vecs[self.nid]], 1000, {}

    wire = {"bytes": 0}

    def roundtrip(msg: Any) -> Any:
        # what Flower's transports do to every message: deflate the object tree to bytes and
        # inflate it on the other side (the research note's harness A)
        objects = get_all_nested_objects(msg)
        contents = {oid: obj.deflate() for oid, obj in objects.items()}
        wire["bytes"] += sum(len(c) for c in contents.values())
        new = inflate_object_from_contents(msg.object_id, contents)
        new.metadata.__dict__.update(copy.deepcopy(msg.metadata.__dict__))
        return new

    app = ClientApp(client_fn=lambda ctx: Client(ctx.node_id).to_client(), mods=[secaggplus_mod])

    def context(nid: int) -> Any:
        return Context(run_id=1, node_id=nid, node_config={}, state=RecordDict(), run_config={})

    class LocalGrid(Grid):  # type: ignore[misc]
        def __init__(self) -> None:
            self._run = Run.create_empty(1)
            self.ctx = {nid: context(nid) for nid in vecs}
            self.count = 0

        def set_run(self, run: Any) -> None:
            self._run = run

        @property
        def run(self) -> Any:
            return self._run

        def create_message(
            self, content: Any, message_type: str, dst_node_id: int, group_id: str, ttl: Any = None
        ) -> Any:
            return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

        def get_node_ids(self) -> Any:
            return list(vecs)

        def push_messages(self, messages: Any) -> Any:
            raise NotImplementedError

        def pull_messages(self, message_ids: Any) -> Any:
            raise NotImplementedError

        def send_and_receive(self, messages: Any, *, timeout: Any = None) -> Any:
            out = []
            for m in messages:
                self.count += 1
                m.metadata.__dict__["_message_id"] = f"m{self.count}"
                nid = m.metadata.dst_node_id
                cfg = m.content.config_records.get("secaggplus_configs")
                stage = cfg.get("stage") if cfg is not None else None
                if nid in dropped and stage in ("collect_masked_vectors", "unmask"):
                    continue  # dropped after share_keys: no reply (as a timeout would)
                out.append(roundtrip(app(roundtrip(m), self.ctx[nid])))
            return out

    strategy = FedAvg(
        initial_parameters=ndarrays_to_parameters([np.zeros(d, np.float32)]),
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=2,
        min_available_clients=n,
    )
    ctx = LegacyContext(context(0), config=ServerConfig(num_rounds=1), strategy=strategy)
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(num_shares=shares, reconstruction_threshold=threshold)
    )
    t0 = time.process_time()
    workflow(LocalGrid(), ctx)
    cpu = time.process_time() - t0
    arr = ctx.state.array_records[MAIN_PARAMS_RECORD]
    got = parameters_to_ndarrays(compat.arrayrecord_to_parameters(arr, keep_input=True))[0]
    want = np.mean(np.stack([v for k, v in vecs.items() if k not in dropped]).astype(np.float64), 0)
    err = float(np.abs(got.astype(np.float64) - want).max())
    # Flower halts silently (global model left at zero) when a secret cannot be rebuilt
    print(
        json.dumps(
            {
                "round_cpu_s": cpu,
                "completed": err < 1e-3,
                "max_abs_error": err,
                "bytes_per_client": wire["bytes"] / n,
            }
        )
    )


def ensure_flower() -> tuple[Path | None, str]:
    python = FLOWER_VENV / "bin" / "python"
    probe = [str(python), "-c", f"import flwr; assert flwr.__version__ == '{FLOWER_VERSION}'"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python, "installed"
    try:
        FLOWER_VENV.parent.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(FLOWER_VENV)], check=True)
        subprocess.run(
            [
                str(FLOWER_VENV / "bin" / "pip"),
                "install",
                "-q",
                "-c",
                str(ROOT / "constraints.txt"),
                f"flwr=={FLOWER_VERSION}",
            ],
            check=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not install flwr=={FLOWER_VERSION}: {exc}"
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        return None, f"flwr=={FLOWER_VERSION} installed but does not import"
    return python, "installed now"


def run_flower(
    python: Path, n: int, d: int, dropout: float, seed: int, shares: int, threshold: int
) -> dict[str, Any] | None:
    cmd = [str(python), __file__, "--flower-worker"]
    cmd += [str(v) for v in (n, d, dropout, seed, shares, threshold)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=3600)
    if proc.returncode != 0:
        print(
            f"flower n={n} d={d}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr
        )
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- Tutela side ----------------------------------------------------------------------------


def run_tutela(n: int, d: int, dropout: float, seed: int) -> dict[str, Any]:
    import numpy as np

    from tutela.hazmat.rng import SecureRandom
    from tutela.secagg import DropoutPlan, SecAggConfig, Stage, secure_sum
    from tutela.secagg.simulate import plain_aggregate

    data = np.random.default_rng(seed)  # benchmark data only
    inputs = {i: data.uniform(-1, 1, d).astype(np.float32) for i in range(n)}
    gen = SecureRandom(seed)
    plan = DropoutPlan.random(range(n), dropout, rng=gen, stages=[Stage.MASKED_INPUT])
    cfg = SecAggConfig(dropout_tolerance=max(0.1, dropout))
    res = secure_sum(inputs, None, cfg, dropouts=plan, rng=gen)
    payloads = {i: inputs[i].tobytes() for i in res.survivors}
    t0 = time.process_time()
    plain = plain_aggregate(payloads, None, d)
    plain_s = time.process_time() - t0
    rep = res.report()
    mask_ms = rep["client_cpu_ms_median_by_stage"]["masked_input"]
    server_stage = rep["server_cpu_ms_by_stage"]
    server_ms = server_stage["masked_input"] + server_stage["unmask"]
    up = sorted(res.bytes_up[i] for i in res.survivors)[len(res.survivors) // 2]
    return {
        "n": n,
        "d": d,
        "dropout": dropout,
        "k": rep["k"],
        "t": rep["threshold"],
        "mask_ms": mask_ms,
        "mask_ms_per_1m": mask_ms * 1e6 / d,
        "client_ms": rep["client_cpu_ms_median"],
        "server_ms": server_ms,
        "server_total_ms": rep["server_cpu_ms"],
        "plain_ms": 1e3 * plain_s,
        "round_s": (sum(res.client_cpu_seconds.values()) + res.server_cpu_seconds),
        "bytes_per_param": up / d,
        "max_abs_error": float(np.abs(res.total - plain).max()),
        "error_bound": res.quantization_error_bound,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid (about a minute)")
    parser.add_argument("--no-flower", action="store_true", help="skip the Flower baseline")
    parser.add_argument(
        "--flower-max-cells", type=float, default=1e8, help="run Flower when n*d <= this"
    )
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--flower-worker", nargs=6, metavar=("N", "D", "DROP", "SEED", "SHARES", "T")
    )
    args = parser.parse_args()
    if args.flower_worker:
        n, d, dropout, seed, shares, t = args.flower_worker
        flower_worker(int(n), int(d), float(dropout), int(seed), int(shares), int(t))
        return

    if args.quick:
        grid = [(n, d, f) for n in (10, 40) for d in (10**3, 10**4) for f in (0.0, 0.1)]
    else:
        grid = [(n, d, f) for n in (10, 100, 500) for d in (10**4, 10**6) for f in (0.0, 0.1, 0.3)]
    python: Path | None = None
    status = "skipped (--no-flower)"
    if not args.no_flower:
        python, status = ensure_flower()
    print(f"Flower {FLOWER_VERSION}: {status}", flush=True)

    rows = []
    for n, d, f in grid:
        row = run_tutela(n, d, f, args.seed)
        row["flower_s"] = row["flower_same_s"] = None
        row["flower_note"] = row["flower_same_note"] = ""
        if python is not None and n * d <= args.flower_max_cells:
            fl = run_flower(python, n, d, f, args.seed, 3, 2)  # the Flower example's settings
            if fl is not None:
                row["flower_s"] = fl["round_cpu_s"]
                row["flower_note"] = "" if fl["completed"] else "halted"
            if f == 0.1 and row["k"] < n - 1:  # same neighbourhood and threshold as Tutela
                fl = run_flower(python, n, d, f, args.seed, row["k"] + 1, row["t"])
                if fl is not None:
                    row["flower_same_s"] = fl["round_cpu_s"]
                    row["flower_same_note"] = "" if fl["completed"] else "halted"
        if row["flower_s"] is None and (n, d) in RECORDED_FLOWER and f <= 0.1:
            row["flower_s"] = RECORDED_FLOWER[(n, d)]
            row["flower_note"] = "recorded*"
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    header = (
        "| n | d | drop | k | t | mask ms/1M | client ms | server ms | plain ms | server x plain "
        "| round s | Flower k=2,t=2 s (x) | Flower same k,t s (x) | B/param | max err (bound) |"
    )
    lines = [header, "|" + "---|" * 15]

    def flower_cell(seconds: float | None, note: str, ours: float) -> str:
        if seconds is None:
            return "n/a"
        if note == "halted":
            return f"{seconds:.2f} (halted)"
        mark = "*" if note == "recorded*" else ""
        return f"{seconds:.2f}{mark} ({seconds / ours:.1f}x)"

    for r in rows:
        lines.append(
            f"| {r['n']} | {r['d']:.0e} | {r['dropout']:.0%} | {r['k']} | {r['t']} "
            f"| {r['mask_ms_per_1m']:.1f} | {r['client_ms']:.1f} | {r['server_ms']:.1f} "
            f"| {r['plain_ms']:.1f} | {r['server_ms'] / max(r['plain_ms'], 1e-9):.2f} "
            f"| {r['round_s']:.2f} "
            f"| {flower_cell(r['flower_s'], r['flower_note'], r['round_s'])} "
            f"| {flower_cell(r['flower_same_s'], r['flower_same_note'], r['round_s'])} "
            f"| {r['bytes_per_param']:.3f} "
            f"| {r['max_abs_error']:.1e} ({r['error_bound']:.1e}) |"
        )
    table = "\n".join(lines)
    print(table)
    if any(r["flower_note"] == "recorded*" for r in rows):
        print(
            "* recorded figure from ../shared/research/flower-secagg-baseline.md "
            "(not measured in this run)"
        )
    if args.markdown:
        cmd = " ".join(["python", "benchmarks/secagg.py", *sys.argv[1:]])
        args.markdown.write_text(
            f"Command: `{cmd}`\n\nMachine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
            f"Flower {FLOWER_VERSION}: {status}\n\n{table}\n"
        )


if __name__ == "__main__":
    main()
