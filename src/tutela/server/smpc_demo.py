"""Secure computation between two hospitals on one machine (what ``tutela smpc demo`` runs).

A TLS coordinator on loopback (:class:`~tutela.server.serve.BackgroundServer`), two hospitals
and a dealer, each a separate ``tutela smpc`` process with its own certificate. The hospitals'
files come from :func:`~tutela.data.synthetic.generate_ehr`: the same patients appear in both,
hospital A writing names as ``First Last`` with ISO birth dates, hospital B as
``LAST, FIRST`` with day-first dates, and each holds different columns (A: age, BMI, glucose;
B: blood pressure, smoking, diabetes and the outcome). The demo runs, in order:

1. PSI cardinality: how many patients they share, and nothing else;
2. PSI intersection: each hospital's linked rows in one joint order;
3. vertical logistic regression on the linked rows (the dealer a third process);
4. joint statistics (count, mean, variance, histogram) of the age column over both
   hospitals' whole tables (rows of shared patients count once per hospital), through the
   secure sum;

then compares each result with plaintext on the pooled data and lists the coordinator's
``smpc.*`` audit records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from tutela.errors import TutelaError
from tutela.server import pki
from tutela.server.serve import BackgroundServer, ServerSettings
from tutela.server.tls import client_context

__all__ = ["run_smpc_demo", "write_demo_hospitals"]

SITES = ("hospital-a", "hospital-b", "dealer")
A_FEATURES = ("age", "bmi", "glucose")
B_FEATURES = ("systolic_bp", "smoker", "diabetes")


def write_demo_hospitals(root: Path, *, rows: int = 400, common: int = 300, seed: int = 0) -> int:
    """Write ``a.csv`` and ``b.csv`` under ``root``; return the true number of shared patients."""
    from tutela.data.synthetic import generate_ehr

    if not 2 <= common <= rows:
        raise ValueError("need 2 <= common <= rows")
    n = 2 * rows - common
    frame = generate_ehr(n, hospitals=1, seed=seed).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    birth = pd.to_datetime("2026-01-01") - pd.to_timedelta(
        frame["age"] * 365 + rng.integers(0, 365, n), unit="D"
    )
    frame["dob"] = birth.dt.strftime("%Y-%m-%d")
    first = frame["name"].str.split(" ").str[0]
    last = frame["name"].str.split(" ").str[-1]
    in_a = np.arange(0, rows)
    in_b = np.arange(rows - common, n)
    a = pd.DataFrame({"given_name": first, "family_name": last, "date_of_birth": frame["dob"]})
    a = pd.concat([a, frame[list(A_FEATURES)]], axis=1).iloc[in_a]
    b = pd.DataFrame(
        {
            "given_name": (last + ", " + first).str.upper(),
            "family_name": "",
            "date_of_birth": birth.dt.strftime("%d/%m/%Y"),
        }
    )
    b = pd.concat([b, frame[["age", *B_FEATURES, "outcome"]]], axis=1).iloc[in_b]
    root.mkdir(parents=True, exist_ok=True)
    a.sample(frac=1.0, random_state=seed).to_csv(root / "a.csv", index=False)
    b.sample(frac=1.0, random_state=seed + 1).to_csv(root / "b.csv", index=False)
    return common


def _run(args: list[list[str]], logs: Path, name: str) -> list[dict[str, Any]]:
    """Run each party's ``tutela smpc`` command as its own process; their JSON results."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "tutela", "smpc", *a, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for a in args
    ]
    out = []
    for i, p in enumerate(procs):
        stdout, stderr = p.communicate(timeout=1800)
        (logs / f"{name}-{i}.log").write_text(stderr, encoding="utf-8")
        if p.returncode != 0:
            raise TutelaError(f"{name}: a party failed: {stderr.strip().splitlines()[-1:]}")
        out.append(json.loads(stdout))
    return out


def run_smpc_demo(run_dir: Path, *, rows: int = 400, common: int = 300) -> dict[str, Any]:
    """Run the four computations of the module docstring; return their results and checks."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pki_dir = run_dir / "pki"
    layout = pki.PkiLayout(pki_dir)
    if not layout.ca.cert.exists():
        pki.init_ca(pki_dir, common_name="Tutela demo CA")
    pki.issue_to_files(pki_dir, kind="server", name="localhost", sans=["127.0.0.1", "::1"])
    for site in SITES:
        if not layout.site(site).cert.exists():
            pki.issue_to_files(pki_dir, kind="site", name=site)
    data = run_dir / "hospitals"
    truth = write_demo_hospitals(data, rows=rows, common=common)
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    server = BackgroundServer(ServerSettings(run_dir / "coordinator", pki_dir, port=0)).start()
    try:
        with httpx.Client(
            base_url=server.url, verify=client_context(layout.ca.cert), timeout=60
        ) as c:
            for site in SITES:
                r = c.post(
                    f"/v1/admin/sites/{site}/activate",
                    headers={"Authorization": f"Bearer {server.admin_token}"},
                )
                if r.status_code != 204:
                    raise TutelaError(f"cannot activate {site}: {r.text}")

        def creds(site: str) -> list[str]:
            paths = layout.site(site)
            return ["--coordinator", server.url, "--ca", str(layout.ca.cert),
                    "--cert", str(paths.cert), "--key", str(paths.key)]  # fmt: skip

        pair = ["--party", "hospital-a", "--party", "hospital-b"]
        files = {"hospital-a": data / "a.csv", "hospital-b": data / "b.csv"}
        size = _run(
            [["psi", *creds(s), "--session", "count", *pair, "--data", str(f),
              "--mode", "cardinality", "--keys", "name+dob"] for s, f in files.items()],
            logs, "psi-cardinality",
        )  # fmt: skip
        linked = _run(
            [["psi", *creds(s), "--session", "link", *pair, "--data", str(f),
              "--out", str(run_dir / f"{s}-linked.csv")] for s, f in files.items()],
            logs, "psi-intersection",
        )  # fmt: skip
        trio = [*pair, "--party", "dealer", "--session", "train", "--iterations", "60"]
        models = _run(
            [
                ["train", *creds("hospital-a"), *trio, "--data",
                 str(run_dir / "hospital-a-linked.csv"), "--features", ",".join(A_FEATURES)],
                ["train", *creds("hospital-b"), *trio, "--data",
                 str(run_dir / "hospital-b-linked.csv"), "--features", ",".join(B_FEATURES),
                 "--label", "outcome"],
                ["dealer", *creds("dealer"), *[a for a in trio if a not in ("--iterations", "60")],
                 "--function", "train-vertical-i60-lr0.5-l20"],
            ],
            logs, "train",
        )  # fmt: skip
        stats = _run(
            [["stats", *creds(s), "--session", "stats", *pair, "--data", str(f),
              "--columns", "age", "--bounds", "128", "--histogram", "age",
              "--edges", "0,40,65,128"] for s, f in files.items()],
            logs, "stats",
        )  # fmt: skip
        assert server.coordinator is not None
        audit = [
            {k: e[k] for k in ("actor", "action", "resource", "outcome")}
            for e in server.coordinator.audit_events(limit=10_000)
            if str(e["action"]).startswith("smpc.")
        ]
    finally:
        server.stop()

    a = pd.read_csv(data / "a.csv")
    b = pd.read_csv(data / "b.csv")
    a_l = pd.read_csv(run_dir / "hospital-a-linked.csv")
    b_l = pd.read_csv(run_dir / "hospital-b-linked.csv")
    x = np.hstack([a_l[list(A_FEATURES)].to_numpy(float), b_l[list(B_FEATURES)].to_numpy(float)])
    x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) == 0, 1.0, x.std(axis=0))
    from tutela.smpc.vertical import VerticalPlan, plaintext_reference

    y = b_l["outcome"].to_numpy()
    w = np.asarray(models[0]["weights"])
    plan = VerticalPlan(len(y), (len(A_FEATURES), len(B_FEATURES)), 1, iterations=60)
    reference = plaintext_reference([x[:, : len(A_FEATURES)], x[:, len(A_FEATURES) :]], y, plan)
    accuracy = float(np.mean(((x @ w[:-1] + w[-1]) > 0) == y))
    plain_accuracy = float(np.mean(((x @ reference[:-1] + reference[-1]) > 0) == y))
    pooled_age = pd.concat([a["age"], b["age"]])
    return {
        "coordinator": "stopped",
        "true_shared_patients": truth,
        "psi_cardinality": size[0]["size"],
        "psi_linked_rows": linked[0]["size"],
        "vertical_model": {
            "rows": models[0]["rows"],
            "training_accuracy": accuracy,
            "plaintext_training_accuracy": plain_accuracy,
            "max_weight_difference_to_plaintext": float(np.max(np.abs(w - reference))),
            "weights": w.round(4).tolist(),
        },
        "joint_statistics": {
            "count": stats[0]["count"],
            "mean_age": stats[0]["mean"]["age"],
            "histogram_age": stats[0]["histogram"]["counts"],
            "plaintext_mean_age": float(pooled_age.mean()),
            "plaintext_count": len(pooled_age),
        },
        "audit": audit,
        "directory": str(run_dir),
    }
