"""SecAgg+ server cost: unmasking against the plain weighted sum of the same vectors, in one run.

One round is played once between a :class:`~tutela.secagg.server.SecAggServer` and one
:class:`~tutela.secagg.client.SecAggClient` per input (random float32 updates in [-1, 1),
``round(dropout * n)`` clients dropping after sharing keys, the costliest point for the
server: each dropped client's pairwise masks with its live neighbours must be expanded and
removed). Every client reply is kept as bytes. The server's side is then replayed
``--repeat`` times into fresh servers, alternating with the baseline, and the medians are
compared:

- **server**: CPU seconds from the first masked input to the released sum: parse each
  masked input and add it to the running sum, close the stage, parse the unmask replies,
  rebuild every secret (Shamir) and check it against its commitment, expand and remove the
  self masks of the survivors and the pairwise masks of the dropped clients, decode.
- **plain** (the named baseline): :func:`tutela.secagg.simulate.plain_aggregate`, the
  weighted sum of the same survivors' float32 wire vectors into float64.

The table also splits the server's time (accumulate, rebuild secrets, masks, decode) and
counts the AES keystreams it expanded.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/secagg_server.py [--n 100] [--d 1000000]
        [--dropout 0.1] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tutela.hazmat import masks
from tutela.hazmat.kex import ed25519_public_bytes, generate_ed25519
from tutela.hazmat.rng import SecureRandom
from tutela.secagg import DropoutPlan, ManualClock, SecAggClient, SecAggConfig, SecAggServer, Stage
from tutela.secagg.config import ACTIVE_STAGES
from tutela.secagg.messages import decode_message, encode_message
from tutela.secagg.simulate import plain_aggregate


def record_round(n: int, d: int, dropout: float, seed: int) -> dict[str, Any]:
    """Play one round; keep the parameters, registry, per-stage replies (bytes) and inputs."""
    data = np.random.default_rng(seed)  # benchmark data only; masks use SecureRandom
    inputs = {i: data.uniform(-1, 1, d).astype(np.float32) for i in range(n)}
    gen = SecureRandom(seed)
    plan = DropoutPlan.random(range(n), dropout, rng=gen, stages=[Stage.MASKED_INPUT])
    config = SecAggConfig(dropout_tolerance=max(0.1, dropout))
    ids = tuple(range(n))
    params = config.plan(ids, d, max_weight=1.0, round_id=gen.bytes(32))
    identities = {c: generate_ed25519(gen) for c in ids}
    registry = {c: ed25519_public_bytes(k) for c, k in identities.items()}
    clients = {
        c: SecAggClient(c, identities[c], registry, rng=SecureRandom(gen.bytes(32))) for c in ids
    }
    for c in ids:
        clients[c].set_input(inputs[c])
    clock = ManualClock()
    server = SecAggServer(params, registry, clock=clock)
    replies: dict[Stage, dict[int, bytes]] = {}
    outbox = server.start()
    silent: set[int] = set()
    for stage in ACTIVE_STAGES:
        silent |= plan.drops_at(stage)
        replies[stage] = {}
        for cid, message in outbox.items():
            if cid in silent:
                continue
            raw = encode_message(clients[cid].handle(decode_message(encode_message(message))))  # type: ignore[arg-type]
            replies[stage][cid] = raw
            server.receive(cid, decode_message(raw))  # type: ignore[arg-type]
        nxt = server.step()
        if nxt is None:
            clock.advance(params.stage_timeout_s)
            nxt = server.step()
        assert nxt is not None
        outbox = nxt
    result = server.result()
    return {
        "params": params,
        "registry": registry,
        "replies": replies,
        "inputs": inputs,
        "survivors": result.survivors,
        "total": result.total,
    }


def replay_server(rec: dict[str, Any]) -> tuple[float, dict[str, float], np.ndarray]:
    """Replay the recorded replies into a fresh server; CPU seconds from the first masked input."""
    params = rec["params"]
    clock = ManualClock()
    server = SecAggServer(params, rec["registry"], clock=clock)
    server.start()
    spent = 0.0
    parts = {"accumulate": 0.0, "unmask_close": 0.0}
    for stage in ACTIVE_STAGES:
        timed = stage in (Stage.MASKED_INPUT, Stage.UNMASK)
        t0 = time.process_time()
        for cid, raw in rec["replies"][stage].items():
            server.receive(cid, decode_message(raw))  # type: ignore[arg-type]
        t1 = time.process_time()
        nxt = server.step()
        if nxt is None:
            clock.advance(params.stage_timeout_s)
            nxt = server.step()
        t2 = time.process_time()
        if stage is Stage.MASKED_INPUT:
            parts["accumulate"] += t2 - t0
        if stage is Stage.UNMASK:
            parts["unmask_close"] += t2 - t1
        if timed:
            spent += t2 - t0
    return spent, parts, server.result().total


def counted(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn`` counting AES keystreams opened by the mask code."""
    calls = 0
    original = getattr(masks, "_keystream", None)
    if original is None:  # an older tree (``PYTHONPATH`` to compare): no count
        return fn(), -1

    def spy(key: bytes, nbytes: int) -> Any:
        nonlocal calls
        calls += 1
        return original(key, nbytes)

    masks._keystream = spy  # type: ignore[assignment]
    try:
        return fn(), calls
    finally:
        masks._keystream = original  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--d", type=int, default=10**6)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    rec = record_round(args.n, args.d, args.dropout, args.seed)
    print(
        f"round played in {time.perf_counter() - t0:.1f} s (clients one after another)",
        file=sys.stderr,
    )
    payloads = {i: rec["inputs"][i].tobytes() for i in rec["survivors"]}
    survivors = len(rec["survivors"])
    dropped = args.n - survivors
    params = rec["params"]

    server_s: list[float] = []
    plain_s: list[float] = []
    split: dict[str, list[float]] = {"accumulate": [], "unmask_close": []}
    streams = 0
    for i in range(args.repeat):
        t0 = time.process_time()
        plain = plain_aggregate(payloads, None, args.d)
        plain_s.append(time.process_time() - t0)
        (spent, parts, total), streams = counted(lambda: replay_server(rec))
        server_s.append(spent)
        for key, value in parts.items():
            split[key].append(value)
        if i == 0:
            err = float(np.abs(total - plain).max())
            bound = params.quantization_error_bound(survivors)
            assert np.array_equal(total, rec["total"]), "replayed server released another sum"
            assert err <= bound, f"error {err} above the bound {bound}"

    med_server = statistics.median(server_s)
    med_plain = statistics.median(plain_s)
    print(
        f"n={args.n} d={args.d:.0e} dropout={args.dropout:.0%} (dropped {dropped} after "
        f"share_keys) k={params.neighbors} t={params.threshold} repeats={args.repeat}; "
        f"max error {err:.1e} (bound {bound:.1e})"
    )
    print("| n | d | dropped | k | AES streams | server ms | of which accumulate ms "
          "| unmask close ms | plain ms | server / plain |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.n} | {args.d:.0e} | {dropped} | {params.neighbors} | {streams} "
        f"| {1e3 * med_server:.1f} | {1e3 * statistics.median(split['accumulate']):.1f} "
        f"| {1e3 * statistics.median(split['unmask_close']):.1f} | {1e3 * med_plain:.1f} "
        f"| {med_server / med_plain:.2f}x |"
    )
    ratios = [s / p for s, p in zip(server_s, plain_s, strict=True)]
    print(f"per-repeat ratios: {', '.join(f'{r:.2f}' for r in ratios)}")


if __name__ == "__main__":
    main()
