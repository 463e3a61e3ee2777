"""Time per federated round and peak memory vs number of sites and model size.

Baseline (same run, same machine): plain PyTorch training of one model on the same rows for
the same number of epochs, no federation. The ratio is the cost of federating that work
(per-site model copies, parameter records, sampling, aggregation, evaluation).

Each configuration runs in a fresh subprocess so peak RSS is its own.

    python benchmarks/fl_round.py            # sites 5, 50, 500; three model sizes
    python benchmarks/fl_round.py --quick    # sites 5, 50; two model sizes
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

ROWS_PER_SITE = 200
ROUNDS = 3
MODELS = {
    "logistic": ("logistic", []),
    "mlp-64x64": ("mlp", [64, 64]),
    "mlp-256x256": ("mlp", [256, 256]),
}


def _child(kind: str, sites: int, mode: str) -> dict[str, float]:
    import numpy as np
    import torch

    from tutela.fl.engine import RoundEngine
    from tutela.fl.models import get_parameters
    from tutela.fl.recipes import flagship_config
    from tutela.fl.study import build_strategy, prepare_data, prepare_sites

    torch.set_num_threads(1)
    model_kind, hidden = MODELS[kind]
    cfg = flagship_config(rounds=ROUNDS, dataset="synthetic-ehr", sites=sites).with_overrides(
        data={"rows": int(ROWS_PER_SITE * sites / 0.75), "partition": "iid", "min_site_rows": 1},
        model={"kind": model_kind, "hidden": hidden or [1]},
        training={"local_epochs": 1, "min_fit_sites": min(3, sites), "min_quorum": min(3, sites)},
    )
    if mode == "federated":
        data = prepare_data(cfg)
        prepared = prepare_sites(cfg, data)
        engine = RoundEngine(
            build_strategy(cfg),
            prepared.sites,
            min_quorum=3 if sites >= 3 else 1,
            evaluate_fn=prepared.evaluate,
        )
        initial = get_parameters(prepared.model_factory())
        torch.optim.SGD(prepared.model_factory().parameters(), lr=0.1)  # one-time lazy imports
        start = time.perf_counter()
        engine.run(ROUNDS, initial)
        elapsed = (time.perf_counter() - start) / ROUNDS
    else:
        data = prepare_data(cfg)
        prepared = prepare_sites(cfg, data)
        x = np.concatenate([s._x for s in prepared.sites.values()])
        y = np.concatenate([s._y for s in prepared.sites.values()])
        model = prepared.model_factory()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
            batch_size=32,
            shuffle=True,
        )
        loss_fn = torch.nn.BCEWithLogitsLoss()
        start = time.perf_counter()
        for _ in range(ROUNDS):
            for xb, yb in loader:
                opt.zero_grad()
                loss_fn(model(xb).squeeze(-1), yb).backward()
                opt.step()
            prepared.evaluate({k: v.detach().numpy() for k, v in model.named_parameters()})
        elapsed = (time.perf_counter() - start) / ROUNDS
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds_per_round": elapsed, "peak_rss_mb": rss_mb}


def _measure(kind: str, sites: int, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(sites), mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "SITES", "MODE"))
    args = parser.parse_args()
    if args.child:
        kind, sites, mode = args.child
        print(json.dumps(_child(kind, int(sites), mode)))
        return
    site_counts = [5, 50] if args.quick else [5, 50, 500]
    models = ["logistic", "mlp-64x64"] if args.quick else list(MODELS)
    header = (
        f"{'model':<12} {'sites':>5} {'rows':>7} {'plain s/round':>14} {'FL s/round':>11} "
        f"{'ratio':>6} {'plain MB':>9} {'FL MB':>7}"
    )
    print(
        f"baseline: plain PyTorch training on the pooled rows (same epochs), {ROUNDS} rounds, "
        f"{ROWS_PER_SITE} rows per site, 1 local epoch, batch 32, 1 thread"
    )
    print(header)
    print("-" * len(header))
    for kind in models:
        for sites in site_counts:
            plain = _measure(kind, sites, "plain")
            fed = _measure(kind, sites, "federated")
            ratio = fed["seconds_per_round"] / plain["seconds_per_round"]
            print(
                f"{kind:<12} {sites:>5} {sites * ROWS_PER_SITE:>7} "
                f"{plain['seconds_per_round']:>14.3f} "
                f"{fed['seconds_per_round']:>11.3f} {ratio:>6.2f} {plain['peak_rss_mb']:>9.0f} "
                f"{fed['peak_rss_mb']:>7.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
