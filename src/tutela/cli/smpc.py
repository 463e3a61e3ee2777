"""``tutela smpc`` commands: joint statistics and secure logistic regression demos."""

from __future__ import annotations

import time
from typing import Any

import typer

from tutela.cli.he import emit_result

smpc_app = typer.Typer(
    help="Secure multi-party computation demos (additive sharing).", no_args_is_help=True
)


def _breast_cancer() -> tuple[Any, Any, list[str]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return data.data, data.target, [str(n) for n in data.feature_names]


def run_stats_demo(*, parties: int, columns: int) -> dict[str, Any]:
    """Joint statistics of the breast-cancer table split row-wise among ``parties``."""
    import numpy as np

    from tutela.smpc.stats import joint_statistics

    if parties < 2:
        raise ValueError("--parties must be at least 2")
    X, _, names = _breast_cancer()
    if not 1 <= columns <= X.shape[1]:
        raise ValueError(f"--columns must be in [1, {X.shape[1]}]")
    X = X[:, :columns]
    if parties > X.shape[0]:
        raise ValueError("more parties than rows")
    parts = np.array_split(X, parties)
    t0 = time.perf_counter()
    res = joint_statistics(parts)
    secure_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    mean, cov = X.mean(axis=0), np.cov(X.T).reshape(columns, columns)
    plain_s = time.perf_counter() - t0
    corr = np.corrcoef(X.T).reshape(columns, columns)
    return {
        "dataset": "sklearn breast_cancer",
        "parties": parties,
        "rows_per_party": [int(p.shape[0]) for p in parts],
        "columns": columns,
        "count": res.count,
        "mean": {n: float(m) for n, m in zip(names, res.mean, strict=False)},
        "std": {n: float(v) ** 0.5 for n, v in zip(names, res.variance, strict=False)},
        "max_abs_error": {
            "mean": float(np.max(np.abs(res.mean - mean))),
            "covariance": float(np.max(np.abs(res.covariance - cov))),
            "correlation": float(np.nanmax(np.abs(res.correlation - corr))),
        },
        "within_stated_bounds": bool(
            np.all(np.abs(res.mean - mean) <= res.mean_error_bound)
            and np.all(np.abs(res.covariance - cov) <= res.covariance_error_bound)
        ),
        "traffic": {"rounds": res.traffic.rounds, "bytes": res.traffic.bytes},
        "seconds": {"secure": secure_s, "plaintext": plain_s},
    }


def run_logreg_demo(*, parties: int, iterations: int, learning_rate: float) -> dict[str, Any]:
    """Secure LR on breast cancer split among ``parties`` vs plaintext sklearn LR."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from tutela.smpc.logreg import standardise, train_logistic_regression

    if parties < 2:
        raise ValueError("--parties must be at least 2")
    X, y, _ = _breast_cancer()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    idx = np.array_split(np.arange(len(ytr)), parties)
    t0 = time.perf_counter()
    std, mu, sd = standardise([Xtr[i] for i in idx])
    model = train_logistic_regression(
        [(std[k], ytr[i]) for k, i in enumerate(idx)],
        iterations=iterations,
        learning_rate=learning_rate,
    )
    secure_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sk = LogisticRegression(max_iter=1000).fit((Xtr - mu) / sd, ytr)
    plain_s = time.perf_counter() - t0
    return {
        "dataset": "sklearn breast_cancer (75/25 split)",
        "parties": parties,
        "train_rows_per_party": [len(i) for i in idx],
        "iterations": iterations,
        "sigmoid": "linear (0.5 + z/4)",
        "accuracy": {
            "secure": model.accuracy((Xte - mu) / sd, yte),
            "plaintext_sklearn": float(sk.score((Xte - mu) / sd, yte)),
        },
        "traffic": {"rounds": model.traffic.rounds, "bytes": model.traffic.bytes},
        "seconds": {"secure": secure_s, "plaintext_sklearn": plain_s},
    }


@smpc_app.command("stats")
def stats(
    parties: int = typer.Option(3, "--parties", help="Number of parties holding rows."),
    columns: int = typer.Option(5, "--columns", help="How many columns to analyse."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Joint count/mean/std/covariance of a table split among N parties."""
    emit_result(
        run_stats_demo(parties=parties, columns=columns),
        as_json,
        f"joint statistics, {parties} parties",
    )


@smpc_app.command("logreg")
def logreg(
    parties: int = typer.Option(3, "--parties", help="Number of parties holding rows."),
    iterations: int = typer.Option(60, "--iterations", help="Gradient steps."),
    learning_rate: float = typer.Option(0.5, "--learning-rate", help="Step size."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Secure logistic regression vs plaintext sklearn on breast cancer."""
    emit_result(
        run_logreg_demo(parties=parties, iterations=iterations, learning_rate=learning_rate),
        as_json,
        f"secure logistic regression, {parties} parties",
    )


def register(app: typer.Typer) -> None:
    """Attach this domain's commands to the root app."""
    app.add_typer(smpc_app, name="smpc")
