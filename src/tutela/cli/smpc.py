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

smpc_app = typer.Typer(
    help="Secure multi-party computation between sites (and in-process demos).",
    no_args_is_help=True,
)

_KEY_KINDS = {"id": "IDENTIFIER", "name+dob": "NAME_DOB", "phonetic+dob": "PHONETIC_DOB"}


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _channel(
    *,
    coordinator: str,
    ca: Path,
    cert: Path,
    key: Path,
    session: str,
    function: str,
    parties: list[str],
    timeout: float,
) -> Any:
    from tutela.server.agent.smpc import SmpcChannel, SmpcEndpoint

    for path in (ca, cert, key):
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
    return SmpcChannel(
        SmpcEndpoint(coordinator, ca, cert, key),
        session=session,
        function=function,
        parties=parties,
        timeout_s=timeout,
    )


def run_psi_party(
    *,
    coordinator: str,
    ca: Path,
    cert: Path,
    key: Path,
    session: str,
    parties: list[str],
    data: Path,
    mode: str,
    keys: list[str],
    name_columns: list[str],
    dob_column: str,
    id_column: str | None,
    day_first: bool,
    out: Path | None,
    timeout: float,
) -> dict[str, Any]:
    """One party of a PSI session: read its table, link, write its linked rows or shares."""
    import numpy as np
    import pandas as pd

    from tutela.server.agent.smpc_jobs import psi_function, run_psi
    from tutela.smpc.linkage import BlockingKey, blocking_keys
    from tutela.smpc.psi import PsiMode

    try:
        psi_mode = PsiMode(mode)
    except ValueError:
        raise ValueError(f"--mode must be one of {[m.value for m in PsiMode]}") from None
    if len(parties) != (3 if psi_mode is PsiMode.SHARES else 2):
        raise ValueError(
            "--party: give the requester and the responder"
            + (", then the dealer" if psi_mode is PsiMode.SHARES else "")
        )
    unknown = [k for k in keys if k not in _KEY_KINDS]
    if unknown or not keys:
        raise ValueError(f"--keys: choose from {sorted(_KEY_KINDS)}")
    kinds = [BlockingKey[_KEY_KINDS[k]] for k in keys]
    if not data.is_file():
        raise ValueError(f"no such file: {data}")
    table = pd.read_csv(data, dtype=str, keep_default_na=False)
    needed = [*name_columns, dob_column] if set(keys) - {"id"} else []
    needed += [id_column] if "id" in keys and id_column else []
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"{data}: no column {missing[0]!r}")
    rows: list[dict[str, object]] = [
        {str(k): v for k, v in r.items()} for r in table.to_dict("records")
    ]
    linkage = blocking_keys(
        rows, kinds, name=name_columns, dob=dob_column, identifier=id_column, day_first=day_first
    )
    with _channel(
        coordinator=coordinator, ca=ca, cert=cert, key=key, session=session,
        function=psi_function(psi_mode), parties=parties, timeout=timeout,
    ) as channel:  # fmt: skip
        channel.open()
        result = run_psi(channel, linkage, psi_mode)
        summary: dict[str, Any] = {
            "session": session,
            "party": channel.site,
            "mode": psi_mode.value,
            "rows": len(rows),
            "size": result.size,
            "bytes": {"sent": channel.bytes_sent, "received": channel.bytes_received},
        }
    if out is not None:
        if psi_mode is PsiMode.INTERSECTION:
            linked = table.iloc[result.rows].copy()
            linked.insert(0, "link", np.arange(len(linked)))
            linked.to_csv(out, index=False)
        elif psi_mode is PsiMode.SHARES:
            assert result.shares is not None
            pd.DataFrame({"row": np.arange(result.shares.size), "share": result.shares}).to_csv(
                out, index=False
            )
        summary["written"] = str(out)
    return summary


def run_dealer(
    *,
    coordinator: str,
    ca: Path,
    cert: Path,
    key: Path,
    session: str,
    parties: list[str],
    function: str,
    timeout: float,
) -> dict[str, Any]:
    """The dealer of one session: correlated randomness for the parties, nothing else.

    ``function`` is ``psi-shares`` or a training function
    (``train-vertical-i<iterations>-lr<rate>-l2<l2>``, as :func:`train_function` names it).
    """
    import re

    from tutela.server.agent.smpc_jobs import (
        psi_function,
        serve_psi_dealer,
        serve_train_dealer,
        train_function,
    )
    from tutela.smpc.psi import PsiMode

    train = re.fullmatch(r"train-vertical-i(\d+)-lr([0-9.e+-]+)-l2([0-9.e+-]+)", function)
    if function != psi_function(PsiMode.SHARES) and train is None:
        raise ValueError(
            f"--function: the dealer serves {psi_function(PsiMode.SHARES)!r} or "
            "'train-vertical-i<iterations>-lr<rate>-l2<l2>'"
        )
    with _channel(
        coordinator=coordinator, ca=ca, cert=cert, key=key, session=session,
        function=function, parties=parties, timeout=timeout,
    ) as channel:  # fmt: skip
        channel.open()
        if train is None:
            n = serve_psi_dealer(channel)
        else:
            iterations, rate, l2 = int(train[1]), float(train[2]), float(train[3])
            if train_function(iterations, rate, l2) != function:
                raise ValueError(
                    f"--function: write it as {train_function(iterations, rate, l2)!r}"
                )
            n = serve_train_dealer(channel, iterations=iterations, learning_rate=rate, l2=l2)
        return {"session": session, "dealer": channel.site, "ring_elements_per_party": n}


def run_train_party(
    *,
    coordinator: str,
    ca: Path,
    cert: Path,
    key: Path,
    session: str,
    parties: list[str],
    data: Path,
    features: list[str],
    label: str | None,
    iterations: int,
    learning_rate: float,
    l2: float,
    out: Path | None,
    timeout: float,
) -> dict[str, Any]:
    """One party of vertical training over its linked rows (``tutela smpc psi --out``)."""
    import json

    import numpy as np
    import pandas as pd

    from tutela.server.agent.smpc_jobs import run_train, train_function

    if len(parties) < 3:
        raise ValueError("--party: give every data party in order, then the dealer")
    if not data.is_file():
        raise ValueError(f"no such file: {data}")
    frame = pd.read_csv(data)
    if "link" in frame.columns:
        frame = frame.sort_values("link")
    missing = [c for c in [*features, *([label] if label else [])] if c not in frame.columns]
    if missing:
        raise ValueError(f"{data}: no column {missing[0]!r}")
    x = frame[features].to_numpy(dtype=float) if features else np.zeros((len(frame), 0))
    mean, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd == 0] = 1.0
    x = (x - mean) / sd  # this party's columns over all linked rows: its own, exact
    y = frame[label].to_numpy(dtype=float) if label else None
    with _channel(
        coordinator=coordinator, ca=ca, cert=cert, key=key, session=session,
        function=train_function(iterations, learning_rate, l2), parties=parties,
        timeout=timeout,
    ) as channel:  # fmt: skip
        channel.open()
        weights = run_train(
            channel, x, y, iterations=iterations, learning_rate=learning_rate, l2=l2
        )
        result: dict[str, Any] = {
            "session": session,
            "party": channel.site,
            "rows": len(frame),
            "weights": weights.tolist(),
            "own_columns": {
                "names": features,
                "standardisation_mean": mean.tolist(),
                "standardisation_sd": sd.tolist(),
            },
            "bytes": {"sent": channel.bytes_sent, "received": channel.bytes_received},
        }
    if out is not None:
        out.write_text(json.dumps(result, indent=2))
        result["written"] = str(out)
    return result


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
    timeout: float = _TIMEOUT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Private set intersection with another site, through the coordinator's relay."""
    emit_result(
        run_psi_party(
            coordinator=coordinator, ca=ca, cert=cert, key=key, session=session, parties=party,
            data=data, mode=mode, keys=_csv_list(keys), name_columns=_csv_list(name_columns),
            dob_column=dob_column, id_column=id_column, day_first=not month_first, out=out,
            timeout=timeout,
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
    timeout: float = _TIMEOUT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Logistic regression on linked rows whose columns the parties hold apart (vertical)."""
    emit_result(
        run_train_party(
            coordinator=coordinator, ca=ca, cert=cert, key=key, session=session, parties=party,
            data=data, features=_csv_list(features), label=label, iterations=iterations,
            learning_rate=learning_rate, l2=l2, out=out, timeout=timeout,
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


def run_stats_party(
    *,
    coordinator: str,
    ca: Path,
    cert: Path,
    key: Path,
    session: str,
    parties: list[str],
    data: Path,
    columns: list[str],
    bounds: list[float],
    histogram: str | None,
    edges: list[float],
    epsilon: float | None,
    delta: float,
    state_dir: Path | None,
    budget: float | None,
    timeout: float,
) -> dict[str, Any]:
    """One party of a joint-statistics session over its own table."""
    import pandas as pd

    from tutela.server.agent.smpc_jobs import StatsPrivacy, run_stats, stats_function
    from tutela.smpc.joint import StatsSpec

    if len(bounds) != len(columns):
        raise ValueError("--bounds: give one bound per column in --columns")
    spec = StatsSpec(tuple(columns), tuple(bounds), histogram, tuple(edges))
    privacy = None
    if epsilon is not None:
        if state_dir is None:
            raise ValueError("--epsilon needs --state-dir (where this site keeps its ledger)")
        privacy = StatsPrivacy(epsilon, delta, state_dir, budget if budget is not None else epsilon)
    if not data.is_file():
        raise ValueError(f"no such file: {data}")
    frame = pd.read_csv(data)
    table = {c: frame[c].to_numpy(dtype=float) for c in frame.columns if c in {*columns, histogram}}
    for name in [*columns, *([histogram] if histogram else [])]:
        if name not in table:
            raise ValueError(f"{data}: no column {name!r}")
    with _channel(
        coordinator=coordinator, ca=ca, cert=cert, key=key, session=session,
        function=stats_function(spec, privacy), parties=parties, timeout=timeout,
    ) as channel:  # fmt: skip
        result = run_stats(channel, table, spec, privacy=privacy)
        result["session"] = session
        result["party"] = channel.site
        result["bytes"] = {"sent": channel.bytes_sent, "received": channel.bytes_received}
    return result


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
    epsilon: float | None = typer.Option(None, "--epsilon", help="DP: epsilon of the release."),
    delta: float = typer.Option(1e-6, "--delta", help="DP: delta of the release."),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="DP: this site's ledger directory."
    ),
    budget: float | None = typer.Option(None, "--budget", help="DP: the ledger's total epsilon."),
    timeout: float = _TIMEOUT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Joint count, sum, mean, variance, covariance and histogram.

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
    except ValueError:
        raise ValueError("--bounds and --edges take comma-separated numbers") from None
    emit_result(
        run_stats_party(
            coordinator=coordinator, ca=ca, cert=cert, key=key, session=session, parties=party,
            data=data, columns=_csv_list(columns), bounds=numbers, histogram=histogram,
            edges=cuts, epsilon=epsilon, delta=delta, state_dir=state_dir, budget=budget,
            timeout=timeout,
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
