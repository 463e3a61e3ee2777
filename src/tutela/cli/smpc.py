"""``tutela smpc`` commands.

Run by each party against the coordinator (mutual TLS, end-to-end encrypted relay):
``psi`` (record linkage), ``stats`` with ``--coordinator`` (joint statistics), ``dealer``
(the correlated-randomness service). In one process, as demos: ``stats`` without
``--coordinator`` and ``logreg``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from tutela.cli.he import emit_result
from tutela.cli.smpc_parties import (
    run_dealer,
    run_horizontal_party,
    run_psi_party,
    run_stats_party,
    run_train_party,
)

smpc_app = typer.Typer(
    help="Secure multi-party computation between sites (and in-process demos).",
    no_args_is_help=True,
)


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


_COORD = typer.Option(..., "--coordinator", help="Coordinator URL (https://...).")
_CA = typer.Option(..., "--ca", help="The deployment CA certificate.")
_CERT = typer.Option(..., "--cert", help="This site's certificate.")
_KEY = typer.Option(..., "--key", help="This site's private key.")
_SESSION = typer.Option(..., "--session", help="Session id the parties agreed on.")
_PARTY = typer.Option(..., "--party", help="Every party, in order (repeat the option).")
_TIMEOUT = typer.Option(600.0, "--timeout", help="Seconds to wait for any peer.")


@smpc_app.command("psi")
def psi(
    coordinator: str = _COORD,
    ca: Path = _CA,
    cert: Path = _CERT,
    key: Path = _KEY,
    session: str = _SESSION,
    party: list[str] = _PARTY,
    data: Path = typer.Option(..., "--data", help="This party's table (CSV)."),
    mode: str = typer.Option("intersection", "--mode", help="intersection, cardinality or shares."),
    keys: str = typer.Option(
        "name+dob,phonetic+dob", "--keys", help="Blocking keys: id, name+dob, phonetic+dob."
    ),
    name_columns: str = typer.Option(
        "given_name,family_name", "--name-columns", help="Columns of the name."
    ),
    dob_column: str = typer.Option("date_of_birth", "--dob-column", help="Date-of-birth column."),
    id_column: str | None = typer.Option(
        None, "--id-column", help="Identifier column (for --keys id)."
    ),
    month_first: bool = typer.Option(False, "--month-first", help="Read 01/02/1980 as 2 January."),
    out: Path | None = typer.Option(None, "--out", help="Write the linked rows (or shares) here."),
    epsilon: float | None = typer.Option(None, "--epsilon", help="Cardinality: DP count."),
    delta: float = typer.Option(1e-6, "--delta", help="DP: delta of the count."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="DP: this site's ledger."),
    budget: float | None = typer.Option(None, "--budget", help="DP: the ledger's total epsilon."),
    timeout: float = _TIMEOUT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Private set intersection with another site, through the coordinator's relay."""
    emit_result(
        run_psi_party(
            coordinator=coordinator, ca=ca, cert=cert, key=key, session=session, parties=party,
            data=data, mode=mode, keys=_csv_list(keys), name_columns=_csv_list(name_columns),
            dob_column=dob_column, id_column=id_column, day_first=not month_first, out=out,
            timeout=timeout, epsilon=epsilon, delta=delta, state_dir=state_dir, budget=budget,
        ),
        as_json,
        f"PSI session {session}",
    )  # fmt: skip


@smpc_app.command("train")
def train(
    coordinator: str = _COORD,
    ca: Path = _CA,
    cert: Path = _CERT,
    key: Path = _KEY,
    session: str = _SESSION,
    party: list[str] = _PARTY,
    data: Path = typer.Option(
        ..., "--data", help="This party's linked rows (from smpc psi --out)."
    ),
    features: str = typer.Option("", "--features", help="This party's feature columns."),
    label: str | None = typer.Option(None, "--label", help="The label column (one party only)."),
    iterations: int = typer.Option(100, "--iterations", help="Gradient steps."),
    learning_rate: float = typer.Option(0.5, "--learning-rate", help="Step size."),
    l2: float = typer.Option(0.0, "--l2", help="Ridge penalty."),
    out: Path | None = typer.Option(None, "--out", help="Write the model (JSON) here."),
    partition: str = typer.Option(
        "vertical", "--partition", help="vertical (linked rows) or horizontal (own rows)."
    ),
    model: str = typer.Option("logistic", "--model", help="Horizontal: logistic or linear."),
    bounds: str = typer.Option("", "--bounds", help="Horizontal: public bound per feature."),
    label_bound: float = typer.Option(1.0, "--label-bound", help="Horizontal linear: |label|."),
    epsilon: float | None = typer.Option(None, "--epsilon", help="Horizontal DP: epsilon."),
    delta: float = typer.Option(1e-6, "--delta", help="Horizontal DP: delta."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="DP: this site's ledger."),
    budget: float | None = typer.Option(None, "--budget", help="DP: the ledger's total epsilon."),
    triples: str = typer.Option(
        "dealer", "--triples", help="dealer (last --party is the dealer) or paillier (no dealer)."
    ),
    key_bits: int = typer.Option(
        2048, "--key-bits", help="Paillier key size (--triples paillier)."
    ),
    timeout: float = _TIMEOUT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Logistic regression on linked rows whose columns the parties hold apart (vertical), or
    logistic/linear regression on rows the parties hold apart (horizontal, optional DP)."""
    if partition == "horizontal":
        try:
            numbers = [float(b) for b in _csv_list(bounds)]
        except ValueError:
            raise ValueError("--bounds takes comma-separated numbers") from None
        emit_result(
            run_horizontal_party(
                coordinator=coordinator, ca=ca, cert=cert, key=key, session=session,
                parties=party, data=data, model=model, features=_csv_list(features),
                bounds=numbers, label=label, label_bound=label_bound, iterations=iterations,
                learning_rate=learning_rate, l2=l2, epsilon=epsilon, delta=delta,
                state_dir=state_dir, budget=budget, out=out, timeout=timeout,
            ),
            as_json,
            f"horizontal {model} regression, session {session}",
        )  # fmt: skip
        return
    if partition != "vertical":
        raise ValueError("--partition: vertical or horizontal")
    emit_result(
        run_train_party(
            coordinator=coordinator, ca=ca, cert=cert, key=key, session=session, parties=party,
            data=data, features=_csv_list(features), label=label, iterations=iterations,
            learning_rate=learning_rate, l2=l2, out=out, timeout=timeout, triples=triples,
            key_bits=key_bits,
        ),
        as_json,
        f"vertical training, session {session}",
    )  # fmt: skip


@smpc_app.command("demo")
def demo(
    directory: Path = typer.Option(Path("smpc-demo"), "--dir", help="Where to put everything."),
    rows: int = typer.Option(400, "--rows", help="Patients per hospital."),
    common: int = typer.Option(300, "--common", help="Patients both hospitals have."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Two hospitals and a dealer as processes against a loopback coordinator: PSI, vertical
    training, joint statistics."""
    from tutela.server.smpc_demo import run_smpc_demo

    if not 2 <= common <= rows <= 100_000:
        raise ValueError("need 2 <= --common <= --rows <= 100000")
    result = run_smpc_demo(directory, rows=rows, common=common)
    if not as_json:
        result = {k: v for k, v in result.items() if k != "audit"} | {
            "audit_records": len(result["audit"])
        }
    emit_result(result, as_json, "SMPC between two hospitals (loopback)")


@smpc_app.command("dealer")
def dealer(
    coordinator: str = _COORD,
    ca: Path = _CA,
    cert: Path = _CERT,
    key: Path = _KEY,
    session: str = _SESSION,
    party: list[str] = _PARTY,
    function: str = typer.Option("psi-shares", "--function", help="The session's function."),
    timeout: float = _TIMEOUT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Serve one session's correlated randomness (a separate service, never a party)."""
    emit_result(
        run_dealer(
            coordinator=coordinator, ca=ca, cert=cert, key=key, session=session, parties=party,
            function=function, timeout=timeout,
        ),
        as_json,
        f"dealer for session {session}",
    )  # fmt: skip


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
    parties: int = typer.Option(3, "--parties", help="Demo: number of in-process parties."),
    columns: str = typer.Option("5", "--columns", help="Demo: how many columns; else their names."),
    coordinator: str | None = typer.Option(
        None, "--coordinator", help="Run as one party against this coordinator."
    ),
    ca: Path | None = typer.Option(None, "--ca", help="The deployment CA certificate."),
    cert: Path | None = typer.Option(None, "--cert", help="This site's certificate."),
    key: Path | None = typer.Option(None, "--key", help="This site's private key."),
    session: str | None = typer.Option(None, "--session", help="Session id the parties agreed on."),
    party: list[str] = typer.Option([], "--party", help="Every party, in order (repeat)."),
    data: Path | None = typer.Option(None, "--data", help="This party's table (CSV)."),
    bounds: str = typer.Option("", "--bounds", help="Public bound per column (|x| <= bound)."),
    histogram: str | None = typer.Option(None, "--histogram", help="Column for a histogram."),
    edges: str = typer.Option("", "--edges", help="Histogram bin edges."),
    quantiles: str = typer.Option(
        "", "--quantiles", help="Quantile levels read off the histogram, e.g. 0.25,0.5,0.75."
    ),
    epsilon: float | None = typer.Option(None, "--epsilon", help="DP: epsilon of the release."),
    delta: float = typer.Option(1e-6, "--delta", help="DP: delta of the release."),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="DP: this site's ledger directory."
    ),
    budget: float | None = typer.Option(None, "--budget", help="DP: the ledger's total epsilon."),
    timeout: float = _TIMEOUT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Joint count, sum, mean, variance, covariance, histogram and quantiles.

    With --coordinator: one party of a session over its own file (each party runs this).
    Without: a demo that splits a table among --parties in this process.
    """
    if coordinator is None:
        if not columns.isdigit():
            raise ValueError("--columns: a number of columns for the demo")
        emit_result(
            run_stats_demo(parties=parties, columns=int(columns)),
            as_json,
            f"joint statistics, {parties} parties",
        )
        return
    if ca is None or cert is None or key is None or session is None or data is None:
        raise ValueError("--coordinator needs --ca, --cert, --key, --session and --data")
    try:
        numbers = [float(b) for b in _csv_list(bounds)]
        cuts = [float(e) for e in _csv_list(edges)]
        levels = [float(q) for q in _csv_list(quantiles)]
    except ValueError:
        raise ValueError("--bounds, --edges and --quantiles take comma-separated numbers") from None
    emit_result(
        run_stats_party(
            coordinator=coordinator, ca=ca, cert=cert, key=key, session=session, parties=party,
            data=data, columns=_csv_list(columns), bounds=numbers, histogram=histogram,
            edges=cuts, quantiles=levels, epsilon=epsilon, delta=delta, state_dir=state_dir,
            budget=budget, timeout=timeout,
        ),
        as_json,
        f"joint statistics, session {session}",
    )  # fmt: skip


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
