"""Empirical privacy of the flagship: one-run audits and membership inference, one table.

Data: the shipped Pima data (MASS Pima.tr + Pima.te, 532 rows) split as the flagship splits
it (seed 0: 25% held-out test set, the rest over 5 hospitals by Dirichlet(0.5) label skew).

1. One-run audit (Steinke, Nasr and Jagielski 2023), 95% confidence, delta = 1e-5:
   - white-box: 1000 Dirac gradient canaries on the largest hospital's DP-SGD optimiser with
     the flagship's settings at study epsilon 2 (DP-SGD share 1.8); baseline in the same
     run: the same optimiser with its noise removed (an injected bug the audit must catch);
   - black-box: 100 mislabelled canaries over the hospitals, the whole federated study
     (SecAgg+, 30 rounds), private at epsilon 2 against non-private.
2. Membership inference on the released federated model, private (epsilon 2) against
   non-private: ``runs`` flagship studies, each on a random half of the training rows; each
   run is attacked once with the others as LiRA's shadow models (leave one out); members are
   the run's half, non-members the other half of the training rows. Loss-threshold attack
   on the same runs.

Run: ``python benchmarks/dp_audit.py [--runs 8] [--quick]``; prints one table.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any
from unittest import mock

import numpy as np
import torch

from tutela.cli.dp_audit import CanaryKindOpt, _prepared, black_box, white_box
from tutela.dp.membership import (
    evaluate_attack,
    lira_scores,
    logit_confidence,
    loss_scores,
)
from tutela.dp.sgd.optimizer import DPOptimizer
from tutela.fl.models import set_parameters
from tutela.fl.recipes import flagship_config, run_configured_study
from tutela.fl.study import study_model_factory
from tutela.fl.summary import StudyRun
from tutela.fl.task import Task, predict

EPSILON = 2.0


def _noise_free_release(self: DPOptimizer, p: Any, s: torch.Tensor | None) -> torch.Tensor:
    s = torch.zeros_like(p) if s is None else s.detach()
    return s.to(p.dtype).div(self.expected_batch_size)


def _audits(rounds: int | None) -> list[tuple[str, Any, float]]:
    rows = []
    private = flagship_config(epsilon=EPSILON, rounds=rounds)
    t = time.perf_counter()
    result = white_box(private, 1000, confidence=0.95, guesses=None, seed=1)
    rows.append(("white-box, DP-SGD as shipped", result, time.perf_counter() - t))
    t = time.perf_counter()
    with mock.patch.object(DPOptimizer, "_release", _noise_free_release):
        result = white_box(private, 1000, confidence=0.95, guesses=None, seed=1)
    rows.append(("white-box, noise removed (bug)", result, time.perf_counter() - t))
    for label, config in (
        (f"black-box, study at eps {EPSILON:g}", private),
        ("black-box, study without DP", flagship_config(rounds=rounds)),
    ):
        t = time.perf_counter()
        result = black_box(
            config, 100, kind=CanaryKindOpt.MISLABELLED, confidence=0.95, guesses=None, seed=2
        )
        rows.append((label, result, time.perf_counter() - t))
    return rows


def _membership(config: Any, runs: int, seed: int) -> tuple[Any, Any, float]:
    """Loss and LiRA attacks over ``runs`` studies on random halves (leave one out)."""
    data, policy = _prepared(config)
    pool = np.concatenate(data.site_rows)
    rng = np.random.default_rng(seed)
    inside = rng.random((runs, len(pool))) < 0.5
    phi = np.zeros((runs, len(pool)))
    losses = np.zeros((runs, len(pool)))
    t = time.perf_counter()
    for j in range(runs):
        keep = set(pool[inside[j]].tolist())
        half = replace(
            data,
            site_rows=[
                np.array([r for r in rows if r in keep], np.int64) for rows in data.site_rows
            ],
        )
        done: list[StudyRun] = []
        run_configured_study(
            config, policy=policy, data=half, with_baselines=False, on_complete=done.append
        )
        model = study_model_factory(config, data.x.shape[1])()
        set_parameters(model, done[0].final_parameters)
        x = data.x[pool]
        std = done[0].standardisation
        if std is not None:
            x = (x - np.asarray(std["mean"], np.float32)) / np.asarray(std["std"], np.float32)
        prob = np.clip(predict(model, x, Task.BINARY).reshape(-1), 1e-12, 1 - 1e-12)
        p_true = np.where(data.y[pool] == 1, prob, 1 - prob)
        phi[j] = logit_confidence(p_true)
        losses[j] = -np.log(p_true)
    elapsed = time.perf_counter() - t
    lira, loss = [], []
    for j in range(runs):
        others = np.arange(runs) != j
        lira.append(lira_scores(phi[j], phi[others], inside[others]))
        loss.append(loss_scores(losses[j]))
    member = inside.reshape(-1)
    return (
        evaluate_attack("loss", np.concatenate(loss), member),
        evaluate_attack("lira", np.concatenate(lira), member),
        elapsed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="studies per privacy setting")
    parser.add_argument("--quick", action="store_true", help="10 rounds instead of 30")
    args = parser.parse_args()
    rounds = 10 if args.quick else None
    torch.set_num_threads(1)

    print("One-run audit (95% confidence, delta 1e-5), Pima, flagship split")
    print(f"{'configuration':34} {'m':>5} {'r':>4} {'v':>4} {'eps_lb':>7} {'eps_acc':>8} "
          f"{'lb/acc':>7} {'s':>6}")  # fmt: skip
    for label, r, seconds in _audits(rounds):
        acc = r.claimed_epsilon
        ratio = f"{r.epsilon_lower_bound / acc:.3f}" if acc else "-"
        acc_text = f"{acc:.3f}" if acc is not None else "none"
        print(
            f"{label:34} {r.canaries:>5} {r.guesses:>4} {r.correct:>4} "
            f"{r.epsilon_lower_bound:>7.3f} {acc_text:>8} {ratio:>7} {seconds:>6.0f}"
        )

    print()
    print(f"Membership inference on the released federated model ({args.runs} runs per row, "
          "members: the run's half of the training rows, non-members: the other half)")  # fmt: skip
    print(f"{'configuration':34} {'attack':>6} {'AUC':>6} {'TPR@1%':>7} {'AUC/AUC(no DP)':>15}")
    results = {}
    timing = {}
    for label, config in (
        ("study without DP (baseline)", flagship_config(rounds=rounds)),
        (f"study at eps {EPSILON:g}", flagship_config(epsilon=EPSILON, rounds=rounds)),
    ):
        loss, lira, seconds = _membership(config, args.runs, seed=3)
        results[label] = (loss, lira)
        timing[label] = seconds
    base = results["study without DP (baseline)"]
    for label, attacks in results.items():
        for attack, reference in zip(attacks, base, strict=True):
            print(
                f"{label:34} {attack.attack:>6} {attack.auc:>6.3f} "
                f"{attack.tpr_at_1pct_fpr:>7.3f} {attack.auc / reference.auc:>15.3f}"
            )
    for label, seconds in timing.items():
        print(f"# {label}: {args.runs} studies in {seconds:.0f} s")


if __name__ == "__main__":
    main()
