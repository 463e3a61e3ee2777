"""What one party runs for ``tutela smpc`` against the coordinator: PSI, the dealer, vertical
and horizontal training, joint statistics (the commands are in :mod:`tutela.cli.smpc`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_KEY_KINDS = {"id": "IDENTIFIER", "name+dob": "NAME_DOB", "phonetic+dob": "PHONETIC_DOB"}


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
    epsilon: float | None = None,
    delta: float = 1e-6,
    state_dir: Path | None = None,
    budget: float | None = None,
) -> dict[str, Any]:
    """One party of a PSI session: read its table, link, write its linked rows or shares.

    With ``epsilon`` (cardinality mode only) the released count is DP, charged to this
    site's ledger before the session opens.
    """
    import numpy as np
    import pandas as pd

    from tutela.server.agent.smpc_jobs import (
        StatsPrivacy,
        charge_psi_count,
        psi_function,
        run_psi,
    )
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
    privacy = None
    if epsilon is not None:
        if psi_mode is not PsiMode.CARDINALITY:
            raise ValueError("--epsilon: a DP count is for --mode cardinality")
        if state_dir is None:
            raise ValueError("--epsilon needs --state-dir (where this site keeps its ledger)")
        privacy = StatsPrivacy(epsilon, delta, state_dir, budget if budget is not None else epsilon)
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
        function=psi_function(psi_mode, privacy), parties=parties, timeout=timeout,
    ) as channel:  # fmt: skip
        noise = 0 if privacy is None else charge_psi_count(privacy, session)[0]
        channel.open()
        result = run_psi(channel, linkage, psi_mode, count_noise=noise)
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

    from tutela.server.agent.smpc_jobs import psi_function, serve_psi_dealer
    from tutela.server.agent.smpc_train import serve_train_dealer, train_function
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
    triples: str = "dealer",
    key_bits: int = 2048,
) -> dict[str, Any]:
    """One party of vertical training over its linked rows (``tutela smpc psi --out``).

    ``triples`` is ``dealer`` (the last ``--party`` is the dealer) or ``paillier`` (two
    parties, no dealer: each makes the other's triples with its own ``key_bits`` key).
    """
    import json

    import numpy as np
    import pandas as pd

    from tutela.server.agent.smpc_train import TripleSource, run_train, train_function

    try:
        source = TripleSource(triples)
    except ValueError:
        raise ValueError("--triples: dealer or paillier") from None
    if source is TripleSource.DEALER and len(parties) < 3:
        raise ValueError("--party: give every data party in order, then the dealer")
    if source is TripleSource.PAILLIER and len(parties) != 2:
        raise ValueError("--party: dealer-free (paillier) training is between exactly two parties")
    if key_bits < 1024 or key_bits % 256:
        raise ValueError("--key-bits: a multiple of 256, at least 1024 (2048 or more in use)")
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
        function=train_function(iterations, learning_rate, l2, source), parties=parties,
        timeout=timeout,
    ) as channel:  # fmt: skip
        channel.open()
        weights = run_train(
            channel, x, y, iterations=iterations, learning_rate=learning_rate, l2=l2,
            triples=source, key_bits=key_bits,
        )  # fmt: skip
        result: dict[str, Any] = {
            "session": session,
            "party": channel.site,
            "triples": source.value,
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


def run_horizontal_party(
    *,
    coordinator: str,
    ca: Path,
    cert: Path,
    key: Path,
    session: str,
    parties: list[str],
    data: Path,
    model: str,
    features: list[str],
    bounds: list[float],
    label: str | None,
    label_bound: float,
    iterations: int,
    learning_rate: float,
    l2: float,
    epsilon: float | None,
    delta: float,
    state_dir: Path | None,
    budget: float | None,
    out: Path | None,
    timeout: float,
) -> dict[str, Any]:
    """One party of horizontal training (its own rows, the same columns as the others)."""
    import json

    import pandas as pd

    from tutela.server.agent.smpc_jobs import StatsPrivacy
    from tutela.server.agent.smpc_train import horizontal_function, run_train_horizontal
    from tutela.smpc.horizontal import HorizontalModel, HorizontalSpec

    try:
        kind = HorizontalModel(model)
    except ValueError:
        raise ValueError("--model: logistic or linear") from None
    if label is None:
        raise ValueError("--label: every party of horizontal training names the label column")
    if len(bounds) != len(features):
        raise ValueError("--bounds: give one bound per column in --features")
    spec = HorizontalSpec(
        kind, tuple(features), tuple(bounds), label, label_bound, iterations, learning_rate, l2
    )
    privacy = None
    if epsilon is not None:
        if state_dir is None:
            raise ValueError("--epsilon needs --state-dir (where this site keeps its ledger)")
        privacy = StatsPrivacy(epsilon, delta, state_dir, budget if budget is not None else epsilon)
    if not data.is_file():
        raise ValueError(f"no such file: {data}")
    frame = pd.read_csv(data)
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{data}: no column {missing[0]!r}")
    table = {c: frame[c].to_numpy(dtype=float) for c in spec.columns}
    with _channel(
        coordinator=coordinator, ca=ca, cert=cert, key=key, session=session,
        function=horizontal_function(spec, privacy), parties=parties, timeout=timeout,
    ) as channel:  # fmt: skip
        result = run_train_horizontal(channel, table, spec, privacy=privacy)
        result.update(session=session, party=channel.site, rows=len(frame))
        result["bytes"] = {"sent": channel.bytes_sent, "received": channel.bytes_received}
    if out is not None:
        out.write_text(json.dumps(result, indent=2))
        result["written"] = str(out)
    return result


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
    quantiles: list[float] | None = None,
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
    spec = StatsSpec(tuple(columns), tuple(bounds), histogram, tuple(edges), tuple(quantiles or ()))
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
