"""Privacy-utility table for the flagship: AUC under DP vs epsilon.

For each epsilon (and non-private) the flagship study runs with DP-SGD at every hospital
(record-level DP per site, PLD accounting, SecAgg+ between sites) and reports the
federated model's test AUC next to the baselines trained with the same DP: centralised
DP-SGD on the pooled rows (what one trusted data holder could do) and local-only (each
hospital alone, averaged). Baseline: the non-private run in the same table.

    python benchmarks/dp_utility.py            # epsilon 0.5, 1, 3, 8 and non-private, 3 seeds
    python benchmarks/dp_utility.py --quick    # epsilon 1, 8 and non-private, 1 seed, 10 rounds
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dataset", default="pima-diabetes")
    args = parser.parse_args()
    os.environ.setdefault("TUTELA_HOME", tempfile.mkdtemp(prefix="tutela-bench-"))
    from tutela.fl.recipes import flagship_config, run_configured_study

    epsilons: list[float | None] = [1.0, 8.0, None] if args.quick else [0.5, 1.0, 3.0, 8.0, None]
    seeds = [0] if args.quick else [0, 1, 2]
    rounds = 10 if args.quick else 30
    print(
        f"dataset {args.dataset}, 5 hospitals (Dirichlet 0.5), {rounds} rounds, logistic model, "
        f"delta 1e-5, seeds {seeds}; AUC on the held-out test set (mean over seeds)"
    )
    header = (
        f"{'epsilon':>9} {'federated':>10} {'centralised':>12} {'local-only':>11} "
        f"{'fed/central':>12} {'eps spent':>10} {'seconds':>8}"
    )
    print(header)
    print("-" * len(header))
    for eps in epsilons:
        fed, cen, loc, spent = [], [], [], []
        start = time.perf_counter()
        for seed in seeds:
            cfg = flagship_config(rounds=rounds, epsilon=eps, seed=seed, dataset=args.dataset)
            res = run_configured_study(cfg)
            assert res.centralized is not None
            assert res.local_only is not None
            fed.append(res.federated.auc)
            cen.append(res.centralized.auc)
            loc.append(res.local_only.auc)
            spent.append(res.privacy.epsilon if res.privacy is not None else float("nan"))
        mean = statistics.fmean
        label = "none" if eps is None else f"{eps:g}"
        print(
            f"{label:>9} {mean(fed):>10.4f} {mean(cen):>12.4f} {mean(loc):>11.4f} "
            f"{mean(fed) / mean(cen):>12.3f} {max(spent):>10.3f} "
            f"{time.perf_counter() - start:>8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
