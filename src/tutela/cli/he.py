"""``tutela he`` commands: HE as a service (keygen, encrypt, serve, predict, decrypt, score,
upload, query) and the in-process demos (demo, infer).

The data owner's commands keep the secret key in a key directory (``--keys``, default
``TUTELA_HOME/he``) under the governance keyring; the service (``tutela he serve``) holds
only public bundles and ciphertexts.
"""

from __future__ import annotations

import enum
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

he_app = typer.Typer(
    help="Homomorphic encryption: CKKS as a service (keygen, encrypt, serve, predict, decrypt, "
    "score, upload, query) and demos (CKKS, threshold Paillier).",
    no_args_is_help=True,
)


class AggregationMode(enum.StrEnum):
    """Which aggregation scheme the demo runs."""

    CKKS = "ckks"
    THRESHOLD = "threshold"


class InferenceOutput(enum.StrEnum):
    """What the server returns."""

    LOGIT = "logit"
    PROBABILITY = "probability"


def emit_result(result: dict[str, Any], as_json: bool, title: str) -> None:
    """Print a nested result as JSON or as a two-column table (dotted keys)."""
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("value", justify="right")

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                add(f"{prefix}{k}.", v)
        else:
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            table.add_row(prefix.rstrip("."), text)

    add("", result)
    Console().print(table)


def run_aggregation_demo(
    *, sites: int, size: int, mode: AggregationMode, seed: int, key_bits: int
) -> dict[str, Any]:
    """Encrypt random updates at ``sites`` sites, add them blind, decrypt the sum only."""
    import numpy as np

    if sites < 1 or size < 1:
        raise ValueError("--sites and --size must be at least 1")
    if mode is AggregationMode.THRESHOLD and sites < 2:
        raise ValueError("threshold mode needs at least 2 sites")
    rng = np.random.default_rng(seed)
    updates = [rng.uniform(-1.0, 1.0, size) for _ in range(sites)]
    plain_start = time.perf_counter()
    expected = np.sum(updates, axis=0)
    plain_s = time.perf_counter() - plain_start
    t0 = time.perf_counter()
    if mode is AggregationMode.CKKS:
        from tutela.he.aggregation import AggregationServer, SiteKeyring

        keyring = SiteKeyring.generate()
        server = AggregationServer(keyring.public_context(), keyring.params)
        t1 = time.perf_counter()
        payloads = [keyring.encrypt_update(u, aggregation_id=b"demo") for u in updates]
        t2 = time.perf_counter()
        agg = server.aggregate(payloads)
        t3 = time.perf_counter()
        res = keyring.decrypt_sum(agg, aggregation_id=b"demo")
        t4 = time.perf_counter()
        values, bound = res.values, res.error_bound
        p = keyring.params
        params: dict[str, Any] = {
            "scheme": "CKKS (TenSEAL)",
            "poly_modulus_degree": p.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(p.coeff_mod_bit_sizes),
            "scale_bits": p.scale_bits,
            "security_bits": 128,
            "who_can_decrypt": "any site (shared key); coordinator cannot",
        }
        key_bytes = len(keyring.public_context())
    else:
        from tutela.he import threshold as th

        pk, shares = th.deal_threshold_keys(sites, key_bits=key_bits)
        t1 = time.perf_counter()
        payloads = [th.encrypt_update(pk, u, aggregation_id=b"demo") for u in updates]
        t2 = time.perf_counter()
        agg = th.aggregate(pk, payloads)
        t3 = time.perf_counter()
        partials = [th.partial_decrypt(s, agg) for s in shares]
        tsum = th.combine(pk, agg, partials)
        t4 = time.perf_counter()
        values, bound = tsum.values, tsum.error_bound
        params = {
            "scheme": "Paillier, n-of-n threshold decryption",
            "key_bits": key_bits,
            "values_per_ciphertext": pk.slots(th.PackingParams()),
            "who_can_decrypt": f"all {sites} sites together only",
        }
        key_bytes = len(pk.to_bytes())
    err = float(np.max(np.abs(values - expected)))
    return {
        "mode": mode.value,
        "sites": sites,
        "values": size,
        "parameters": params,
        "max_abs_error": err,
        "error_bound": float(bound),
        "within_bound": err <= bound,
        "bytes": {
            "public_key_or_context": key_bytes,
            "contribution_per_site": len(payloads[0]),
            "aggregate": len(agg),
            "bytes_per_value": len(payloads[0]) / size,
            "expansion_vs_float64": len(payloads[0]) / (8 * size),
        },
        "seconds": {
            "keygen": t1 - t0,
            "encrypt_per_site": (t2 - t1) / sites,
            "aggregate": t3 - t2,
            "decrypt": t4 - t3,
            "plaintext_sum": plain_s,
        },
    }


def run_inference_demo(*, output: InferenceOutput) -> dict[str, Any]:
    """Score the breast-cancer test set under encryption with a plaintext-trained model."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from tutela.he.inference import SIGMOID_MAX_ERROR, InferenceClient, LogisticModel

    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    sk = LogisticRegression(C=0.1, max_iter=1000).fit(Xtr, ytr)
    model = LogisticModel.from_arrays(sk.coef_[0], float(sk.intercept_[0]))
    t0 = time.perf_counter()
    client = InferenceClient.generate(output.value)
    t1 = time.perf_counter()
    query = client.encrypt_features(Xte)
    t2 = time.perf_counter()
    result = model.score_encrypted(client.public_context(), query, output.value)
    t3 = time.perf_counter()
    scores = client.decrypt_scores(result)
    t4 = time.perf_counter()
    plain = model.score_plain(Xte, output.value)
    threshold = 0.0 if output is InferenceOutput.LOGIT else 0.5
    logits = model.score_plain(Xte)
    return {
        "output": output.value,
        "samples": int(Xte.shape[0]),
        "features": int(Xte.shape[1]),
        "accuracy_plaintext": float(np.mean((logits > 0) == yte)),
        "accuracy_encrypted": float(np.mean((scores > threshold) == yte)),
        "max_abs_error_vs_plaintext": float(np.max(np.abs(scores - plain))),
        "sigmoid_approximation_max_error_on_[-5,5]": (
            SIGMOID_MAX_ERROR if output is InferenceOutput.PROBABILITY else 0.0
        ),
        "bytes": {
            "public_context": len(client.public_context()),
            "query": len(query),
            "result": len(result),
        },
        "seconds": {
            "keygen": t1 - t0,
            "encrypt": t2 - t1,
            "server_evaluate": t3 - t2,
            "decrypt": t4 - t3,
        },
    }


@he_app.command("demo")
def demo(
    sites: int = typer.Option(3, "--sites", help="Number of sites contributing updates."),
    size: int = typer.Option(10_000, "--size", help="Length of each update vector."),
    mode: AggregationMode = typer.Option(AggregationMode.CKKS, "--mode", help="Scheme."),
    key_bits: int = typer.Option(2048, "--key-bits", help="Paillier modulus (threshold mode)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random updates (not of keys)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Encrypted aggregation of random updates among N sites: error, sizes, timings."""
    result = run_aggregation_demo(sites=sites, size=size, mode=mode, seed=seed, key_bits=key_bits)
    emit_result(
        result, as_json, f"encrypted aggregation ({mode.value}), {sites} sites x {size} values"
    )


@he_app.command("infer")
def infer(
    output: InferenceOutput = typer.Option(
        InferenceOutput.LOGIT, "--output", help="Return logits or cubic-sigmoid probabilities."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Encrypted logistic-regression scoring of the breast-cancer test set."""
    emit_result(run_inference_demo(output=output), as_json, f"encrypted inference ({output.value})")


# ---- HE as a service ------------------------------------------------------------------------

KeysOpt = Annotated[
    Path | None,
    typer.Option("--keys", help="The owner's key directory (default TUTELA_HOME/he)."),
]
ServiceOpt = Annotated[str, typer.Option("--service", help="The HE service, https://host:port.")]
CaOpt = Annotated[Path, typer.Option("--ca", help="The deployment's CA certificate.")]
CertOpt = Annotated[
    Path | None, typer.Option("--cert", help="Your client certificate (issued by the CA).")
]
CertKeyOpt = Annotated[Path | None, typer.Option("--cert-key", help="Its private key.")]
KeyringOpt = Annotated[
    Path | None, typer.Option("--keyring", help="The governance keyring (default Tutela's).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _keys_dir(keys: Path | None) -> Path:
    from tutela.governance.home import tutela_home

    return keys if keys is not None else tutela_home() / "he"


def _client(service: str, ca: Path, cert: Path | None, cert_key: Path | None) -> Any:
    from tutela.server.he_service.client import HeClient

    return HeClient(service, ca=ca, cert=cert, key=cert_key)


def read_table(path: Path) -> Any:
    """Read a CSV file as a pandas DataFrame (one clear error when it cannot be read)."""
    import pandas as pd

    from tutela.errors import DataError

    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV file: {exc}") from None


def _parse_bins(bins: list[str]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for spec in bins:
        name, sep, edges = spec.partition("=")
        try:
            values = [float(e) for e in edges.split(",")] if sep else []
        except ValueError:
            values = []
        if not name or len(values) < 2:
            raise ValueError(f"--bins {spec!r}: expected COLUMN=EDGE,EDGE[,EDGE...]")
        out[name] = values
    return out


def encrypt_table_for_analytics(
    key: Any, frame: Any, columns: list[str], bins: dict[str, list[float]]
) -> Any:
    """Encrypt ``columns`` of ``frame`` (plus one-hot bins) for upload as an analytics table."""
    import numpy as np

    from tutela.errors import DataError
    from tutela.he.analytics import bin_column, indicator_name

    missing = [c for c in [*columns, *bins] if c not in frame.columns]
    if missing:
        raise DataError(f"the table has no column(s) {', '.join(missing)}")
    names: list[str] = []
    parts: list[Any] = []
    for c in columns:
        try:
            parts.append(np.asarray(frame[c], dtype=np.float64)[:, None])
        except (TypeError, ValueError):
            raise DataError(f"column {c!r} is not numeric") from None
        names.append(c)
    for c, edges in bins.items():
        onehot = bin_column(frame[c], edges)
        parts.append(onehot)
        names += [indicator_name(c, i) for i in range(onehot.shape[1])]
    if not parts:
        raise ValueError("name at least one column (--columns) or binned column (--bins)")
    return key.encrypt_columns(np.hstack(parts), names, extra={"histograms": bins})


@he_app.command("keygen")
def keygen(
    service: Annotated[
        str | None, typer.Option("--service", help="Fetch the model card from this service.")
    ] = None,
    card: Annotated[
        Path | None, typer.Option("--card", help="A model card file (instead of --service).")
    ] = None,
    ca: Annotated[Path | None, typer.Option("--ca", help="The deployment's CA.")] = None,
    cert: CertOpt = None,
    cert_key: CertKeyOpt = None,
    keys: KeysOpt = None,
    keyring: KeyringOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key.")] = False,
) -> None:
    """Make a CKKS key pair for a service's model: secret key under the keyring, a public bundle."""
    from tutela.he.card import ModelCard
    from tutela.server.he_service.keys import BUNDLE_FILE, create_key_dir

    if (service is None) == (card is None):
        raise ValueError("give exactly one of --service or --card")
    if card is not None:
        model = ModelCard.loads(card.read_bytes())
    else:
        if ca is None:
            raise ValueError("--service needs --ca")
        assert service is not None
        with _client(service, ca, cert, cert_key) as client:
            model = client.model_card()
    directory = _keys_dir(keys)
    key = create_key_dir(directory, model, keyring=keyring, force=force)
    typer.echo(
        f"key {key.fingerprint.hex()[:16]} for model {model.name} ({model.kind}, depth "
        f"{model.depth}, N={model.params.poly_modulus_degree}) in {directory}; "
        f"public bundle {directory / BUNDLE_FILE}"
    )


@he_app.command("encrypt")
def encrypt(
    data: Annotated[Path, typer.Argument(help="A CSV file with a header row.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the encrypted table.")],
    keys: KeysOpt = None,
    keyring: KeyringOpt = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns", help="Analytics: comma-separated columns (default: the model's)."
        ),
    ] = None,
    bins: Annotated[
        list[str] | None,
        typer.Option("--bins", help="Analytics: COLUMN=EDGE,EDGE,... one-hot bins (repeatable)."),
    ] = None,
) -> None:
    """Encrypt a table column packed: the model's features, checked against its card."""
    from tutela.server.he_service.keys import open_key_dir

    key, card = open_key_dir(_keys_dir(keys), keyring=keyring)
    frame = read_table(data)
    if columns is None and not bins:
        table = key.encrypt_for_model({c: frame[c] for c in frame.columns}, card)
    else:
        chosen = [c for c in (columns or "").split(",") if c]
        table = encrypt_table_for_analytics(key, frame, chosen, _parse_bins(bins or []))
    out.write_bytes(table.payload)
    typer.echo(f"encrypted {table.rows} rows x {len(table.columns)} columns to {out}")


@he_app.command("serve")
def serve_cmd(
    model: Annotated[Path, typer.Argument(help="A run directory or an HE model file.")],
    pki: Annotated[Path, typer.Option("--pki", help="PKI directory (CA, server certificate).")],
    state: Annotated[Path, typer.Option("--state", help="The service's state directory.")],
    host: Annotated[str, typer.Option("--host", help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free port).")] = 8443,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="RBAC policy TOML naming principals.")
    ] = None,
    named_only: Annotated[
        bool,
        typer.Option("--named-only", help="Only principals the policy names may call."),
    ] = False,
    row_budget: Annotated[
        int, typer.Option("--row-budget", help="Rows one key may have scored in all.")
    ] = 1_000_000,
    max_request_mb: Annotated[
        float, typer.Option("--max-request-mb", help="Largest request body, MiB.")
    ] = 64.0,
    keyring: KeyringOpt = None,
) -> None:
    """Serve a model to owners of encrypted data (TLS, client certificates, RBAC, audit)."""
    from tutela.server.he_service.runner import HeServer, HeServeSettings

    settings = HeServeSettings(
        model=model,
        state_dir=state,
        pki_dir=pki,
        host=host,
        port=port,
        policy=policy,
        default_role=None if named_only else HeServeSettings.default_role,
        row_budget=row_budget,
        max_request_bytes=int(max_request_mb * 1024 * 1024),
        keyring=keyring,
    )
    server = HeServer(settings).bind()
    assert server.service is not None
    card = server.service.card

    def ready(url: str) -> None:
        typer.echo(
            f"serving {card.name} ({card.kind}, depth {card.depth}, "
            f"N={card.params.poly_modulus_degree}, logit error <= {card.error_bound:.3g}) "
            f"at {url}",
            err=True,
        )

    server.run(on_ready=ready)


@he_app.command("predict")
def predict_cmd(
    query: Annotated[Path, typer.Argument(help="An encrypted table (tutela he encrypt).")],
    service: ServiceOpt,
    ca: CaOpt,
    out: Annotated[Path, typer.Option("--out", help="Where to write the encrypted result.")],
    cert: CertOpt = None,
    cert_key: CertKeyOpt = None,
    keys: KeysOpt = None,
) -> None:
    """Send an encrypted table (and the public bundle) to the service; save the result."""
    from tutela.server.he_service.keys import BUNDLE_FILE

    bundle_path = _keys_dir(keys) / BUNDLE_FILE
    if not bundle_path.is_file():
        raise FileNotFoundError(f"no public bundle at {bundle_path}: run `tutela he keygen`")
    payload = query.read_bytes()
    with _client(service, ca, cert, cert_key) as client:
        client.upload_key(bundle_path.read_bytes())
        result = client.predict(payload)
    out.write_bytes(result)
    typer.echo(f"sent {len(payload)} bytes, received {len(result)} bytes into {out}")


def _scores(result: Any) -> dict[str, Any]:
    import numpy as np

    logits = result.values
    return {
        "rows": int(logits.shape[0]),
        "model": result.meta.get("model"),
        "error_bound": result.error_bound,
        "logit": logits.tolist(),
        "probability": (1.0 / (1.0 + np.exp(-logits))).tolist(),
    }


def _emit_scores(doc: dict[str, Any], out: Path | None, as_json: bool) -> None:
    if out is not None:
        import pandas as pd

        pd.DataFrame({"logit": doc["logit"], "probability": doc["probability"]}).to_csv(
            out, index=False
        )
    if as_json:
        typer.echo(json.dumps(doc))
        return
    where = f" written to {out}" if out is not None else ""
    typer.echo(
        f"{doc['rows']} predictions{where}; logit error bound {doc['error_bound']:.3g} "
        f"(stated by the service)"
    )


@he_app.command("decrypt")
def decrypt_cmd(
    result: Annotated[Path, typer.Argument(help="An encrypted result from the service.")],
    keys: KeysOpt = None,
    keyring: KeyringOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write a CSV of scores.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Decrypt a result with the owner's secret key."""
    from tutela.he.analytics import finish
    from tutela.server.he_service.keys import open_key_dir

    key, _card = open_key_dir(_keys_dir(keys), keyring=keyring)
    decrypted = key.decrypt_result(result.read_bytes())
    if decrypted.meta.get("op") == "predict":
        _emit_scores(_scores(decrypted), out, as_json)
        return
    doc = finish(decrypted)
    if "scores" in doc:
        doc["scores"] = doc["scores"].tolist()
    emit_result(doc, as_json, f"encrypted analytics ({doc['op']})")


@he_app.command("score")
def score_cmd(
    data: Annotated[Path, typer.Argument(help="A CSV file with the model's feature columns.")],
    service: ServiceOpt,
    ca: CaOpt,
    cert: CertOpt = None,
    cert_key: CertKeyOpt = None,
    keys: KeysOpt = None,
    keyring: KeyringOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write a CSV of scores.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """All of it for the owner: key (made if missing), encrypt, send, receive, decrypt."""
    from tutela.server.he_service.keys import CARD_FILE, create_key_dir, open_key_dir

    directory = _keys_dir(keys)
    frame = read_table(data)
    with _client(service, ca, cert, cert_key) as client:
        card = client.model_card()
        if not (directory / CARD_FILE).is_file():
            create_key_dir(directory, card, keyring=keyring)
        key, stored = open_key_dir(directory, keyring=keyring)
        if stored.digest != card.digest or stored.params != card.params:
            raise ValueError(
                f"the key in {directory} was made for another model; use another --keys "
                "directory or `tutela he keygen --force`"
            )
        table = key.encrypt_for_model({c: frame[c] for c in frame.columns}, card)
        client.upload_key(key.bundle())
        result = client.predict(table.payload)
    _emit_scores(_scores(key.decrypt_result(result)), out, as_json)


@he_app.command("upload")
def upload_cmd(
    data: Annotated[Path, typer.Argument(help="A CSV file with a header row.")],
    service: ServiceOpt,
    ca: CaOpt,
    columns: Annotated[
        str, typer.Option("--columns", help="Comma-separated columns to upload.")
    ] = "",
    bins: Annotated[
        list[str] | None,
        typer.Option("--bins", help="COLUMN=EDGE,EDGE,... one-hot bins (repeatable)."),
    ] = None,
    cert: CertOpt = None,
    cert_key: CertKeyOpt = None,
    keys: KeysOpt = None,
    keyring: KeyringOpt = None,
) -> None:
    """Upload an encrypted table for analytics; prints its id."""
    from tutela.server.he_service.keys import open_key_dir

    key, _card = open_key_dir(_keys_dir(keys), keyring=keyring)
    frame = read_table(data)
    chosen = [c for c in columns.split(",") if c]
    table = encrypt_table_for_analytics(key, frame, chosen, _parse_bins(bins or []))
    with _client(service, ca, cert, cert_key) as client:
        client.upload_key(key.bundle())
        doc = client.upload_table(table.payload)
    typer.echo(f"table {doc['table']}: {doc['rows']} rows, columns {', '.join(doc['columns'])}")


@he_app.command("query")
def query_cmd(
    table: Annotated[str, typer.Argument(help="A table id from `tutela he upload`.")],
    op: Annotated[str, typer.Option("--op", help="sum, mean, variance, histogram or linear.")],
    service: ServiceOpt,
    ca: CaOpt,
    column: Annotated[str | None, typer.Option("--column", help="The column.")] = None,
    weights: Annotated[
        str | None, typer.Option("--weights", help="linear: COLUMN=W,COLUMN=W,...")
    ] = None,
    bias: Annotated[float, typer.Option("--bias", help="linear: the intercept.")] = 0.0,
    cert: CertOpt = None,
    cert_key: CertKeyOpt = None,
    keys: KeysOpt = None,
    keyring: KeyringOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Encrypted analytics over an uploaded table; the owner decrypts the answer."""
    from tutela.he.analytics import Operation, finish
    from tutela.server.he_service.keys import open_key_dir

    try:
        operation = Operation(op)
    except ValueError:
        raise ValueError(f"--op must be one of {', '.join(o.value for o in Operation)}") from None
    parsed: dict[str, float] | None = None
    if weights is not None:
        parsed = {}
        for part in weights.split(","):
            name, sep, value = part.partition("=")
            try:
                parsed[name] = float(value)
            except ValueError:
                raise ValueError(f"--weights {part!r}: expected COLUMN=NUMBER") from None
            if not sep or not name:
                raise ValueError(f"--weights {part!r}: expected COLUMN=NUMBER")
    key, _card = open_key_dir(_keys_dir(keys), keyring=keyring)
    body = {"op": operation.value, "column": column, "weights": parsed, "bias": bias}
    with _client(service, ca, cert, cert_key) as client:
        result = client.query_table(table, body)
    doc = finish(key.decrypt_result(result))
    if "scores" in doc:
        doc["scores"] = doc["scores"].tolist()
    emit_result(doc, as_json, f"encrypted analytics ({operation.value})")


def register(app: typer.Typer) -> None:
    """Attach this domain's commands to the root app."""
    app.add_typer(he_app, name="he")
