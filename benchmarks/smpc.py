"""Secure multi-party computation: logistic regression and joint statistics vs plaintext.

Breast cancer (sklearn, 569 x 30), 75/25 split, training rows split among N parties. The
baselines are sklearn's LogisticRegression (lbfgs) and numpy mean/cov on the pooled data,
measured in the same run; the secure rows add the in-process protocol's rounds and bytes
(all parties together; no network latency is simulated).

    python benchmarks/smpc.py            # 3 and 5 parties, 100 iterations
    python benchmarks/smpc.py --quick    # 3 parties, 40 iterations
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from tutela.smpc.logreg import Sigmoid, standardise, train_logistic_regression
from tutela.smpc.stats import joint_statistics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 parties, 40 iterations")
    args = ap.parse_args()
    party_counts = [3] if args.quick else [3, 5]
    iterations = 40 if args.quick else 100
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

    print("| task | parties | method | seconds | x baseline | accuracy | rounds | MB sent |")
    print("|---|---|---|---|---|---|---|---|")
    t = time.perf_counter()
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0, ddof=1)
    sk = LogisticRegression(max_iter=1000).fit((Xtr - mu) / sd, ytr)
    t_sk = time.perf_counter() - t
    acc_sk = sk.score((Xte - mu) / sd, yte)
    print(
        f"| logistic regression | 1 | sklearn lbfgs, pooled (baseline) | {t_sk:.3g} | 1x | "
        f"{acc_sk:.4f} | - | - |"
    )
    t = time.perf_counter()
    for _ in range(20):
        np.mean(X, axis=0)
        np.cov(X.T)
    t_np = (time.perf_counter() - t) / 20
    for n in party_counts:
        idx = np.array_split(np.arange(len(ytr)), n)
        t = time.perf_counter()
        std, m, s = standardise([Xtr[i] for i in idx])
        model = train_logistic_regression(
            [(std[k], ytr[i]) for k, i in enumerate(idx)],
            iterations=iterations,
            learning_rate=0.5,
            sigmoid=Sigmoid.LINEAR,
        )
        t_sec = time.perf_counter() - t
        acc = model.accuracy((Xte - m) / s, yte)
        print(
            f"| logistic regression | {n} | secure GD, {iterations} it, linear sigmoid "
            f"(incl. joint standardisation) | {t_sec:.3g} | {t_sec / t_sk:.1f}x | {acc:.4f} | "
            f"{model.traffic.rounds} | {model.traffic.bytes / 1e6:.2f} |"
        )
    print(
        f"| mean + covariance (30 cols) | 1 | numpy, pooled (baseline) | {t_np:.3g} | 1x | - | "
        f"- | - |"
    )
    for n in party_counts:
        parts = np.array_split(X, n)
        t = time.perf_counter()
        res = joint_statistics(parts)
        t_st = time.perf_counter() - t
        err = float(np.max(np.abs(res.correlation - np.corrcoef(X.T))))
        print(
            f"| mean + covariance (30 cols) | {n} | joint_statistics (max corr err {err:.1e}) | "
            f"{t_st:.3g} | {t_st / t_np:.0f}x | - | {res.traffic.rounds} | "
            f"{res.traffic.bytes / 1e6:.2f} |"
        )


if __name__ == "__main__":
    main()
