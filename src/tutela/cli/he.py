"""``tutela he`` commands: encrypted aggregation and encrypted inference demos."""

from __future__ import annotations

import enum
import json
import time
from typing import Any

import typer

he_app = typer.Typer(
    help="Homomorphic encryption demos (CKKS, threshold Paillier).", no_args_is_help=True
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


def register(app: typer.Typer) -> None:
    """Attach this domain's commands to the root app."""
    app.add_typer(he_app, name="he")
