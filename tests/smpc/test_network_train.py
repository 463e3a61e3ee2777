"""Training between sites as separate processes through a real coordinator's relay: vertical
logistic regression with dealer-free (Paillier) triples, horizontal regression."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

from tutela.smpc.vertical import VerticalPlan, plaintext_reference

from .network import Deployment, finish, party

TOLERANCE = 1e-3  # max |secure - float64| per weight, as with the dealer
ITERATIONS = 3


def _standardise(m: np.ndarray) -> np.ndarray:
    sd = m.std(axis=0)
    return (m - m.mean(axis=0)) / np.where(sd == 0, 1.0, sd)


def test_dealer_free_vertical_training_between_two_processes_matches_plaintext(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Two hospitals and no dealer: each makes the other's triples with its own Paillier key
    (``--triples paillier``). The model equals float64 gradient descent on the joined table
    within the dealer's tolerance; the session had no third participant."""
    X, y = load_breast_cancer(return_X_y=True)
    rows = np.arange(40)
    a_cols, b_cols = [f"lab{c}" for c in range(3)], [f"dx{c}" for c in range(4)]
    a = pd.DataFrame(X[rows, :3], columns=a_cols).assign(link=rows)
    b = pd.DataFrame(X[rows, 3:7], columns=b_cols).assign(link=rows, outcome=y[rows].astype(int))
    a.sample(frac=1.0, random_state=1).to_csv(tmp_path / "a.csv", index=False)  # any row order
    b.to_csv(tmp_path / "b.csv", index=False)
    common = ["--session", "train-free", "--iterations", str(ITERATIONS), "--triples",
              "paillier", "--key-bits", "1024", "--json", "--party", "hospital-a", "--party",
              "hospital-b"]  # fmt: skip
    procs = [
        party(["train", *deployment.credentials("hospital-a"), *common, "--data",
               str(tmp_path / "a.csv"), "--features", ",".join(a_cols)]),
        party(["train", *deployment.credentials("hospital-b"), *common, "--data",
               str(tmp_path / "b.csv"), "--features", ",".join(b_cols), "--label", "outcome"]),
    ]  # fmt: skip
    results = finish(procs)
    for code, _out, err in results:
        assert code == 0, err
    outs = [json.loads(out) for _, out, _ in results]
    weights = [np.asarray(o["weights"]) for o in outs]
    assert np.array_equal(weights[0], weights[1])
    assert {o["triples"] for o in outs} == {"paillier"}
    plan = VerticalPlan(rows=40, widths=(3, 4), label_party=1, iterations=ITERATIONS)
    reference = plaintext_reference(
        [_standardise(X[rows, :3]), _standardise(X[rows, 3:7])], y[rows], plan
    )
    assert np.max(np.abs(weights[0] - reference)) < TOLERANCE
    events = [e for e in deployment.audit() if e["resource"] == "smpc/train-free"]
    assert events[-1]["action"] == "smpc.complete"


def test_dealer_free_training_needs_exactly_two_parties(deployment: Deployment) -> None:
    args = ["train", *deployment.credentials("hospital-a"), "--session", "x", "--data",
            "missing.csv", "--triples", "paillier", "--party", "hospital-a", "--party",
            "hospital-b", "--party", "dealer"]  # fmt: skip
    code, out, err = finish([party(args)])[0]
    assert code != 0
    assert "exactly two parties" in err and "Traceback" not in err


def _horizontal_args(d: Deployment, site: str, data: Path, *extra: str) -> list[str]:
    return ["train", *d.credentials(site), "--partition", "horizontal", "--data", str(data),
            "--features", "x0,x1,x2", "--bounds", "4,4,4", "--label", "y", "--json",
            "--party", "hospital-a", "--party", "hospital-b", "--party", "hospital-c",
            *extra]  # fmt: skip


def test_horizontal_regression_across_three_processes_matches_pooled_training(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Three hospitals with different rows of the same columns: linear regression from the
    secure sum of sufficient statistics equals least squares on the pooled table, logistic
    regression equals the same gradient descent on the pooled table (1e-4 per coefficient);
    with DP every party's ledger is charged for the training before anything is sent."""
    from tutela.dp.ledger import PrivacyLedger
    from tutela.smpc.horizontal import HorizontalModel, HorizontalSpec, plaintext_horizontal

    rng = np.random.default_rng(5)
    X = rng.uniform(-4, 4, size=(300, 3))
    y_lin = X @ np.array([1.5, -2.0, 0.25]) + 3.0 + rng.normal(0, 0.5, 300)
    y_log = (X @ np.array([1.0, -1.0, 0.5]) + rng.logistic(size=300) > 0).astype(float)
    sites = ["hospital-a", "hospital-b", "hospital-c"]
    paths = {}
    for k, rows in enumerate(np.array_split(np.arange(300), 3)):
        frame = pd.DataFrame(X[rows], columns=["x0", "x1", "x2"])
        frame.assign(y=y_lin[rows]).to_csv(tmp_path / f"lin{k}.csv", index=False)
        frame.assign(y=y_log[rows]).to_csv(tmp_path / f"log{k}.csv", index=False)
        paths[sites[k]] = k

    lin = finish([
        party(_horizontal_args(deployment, site, tmp_path / f"lin{k}.csv", "--session", "h-lin",
                               "--model", "linear", "--label-bound", "32"))
        for site, k in paths.items()
    ])  # fmt: skip
    for code, _out, err in lin:
        assert code == 0, err
    coef = [json.loads(out) for _, out, _ in lin]
    expected = np.linalg.lstsq(np.hstack([X, np.ones((300, 1))]), y_lin, rcond=None)[0]
    for c in coef:
        got = np.append([c["coefficients"][f"x{j}"] for j in range(3)], c["intercept"])
        assert np.max(np.abs(got - expected)) < 1e-4

    log = finish([
        party(_horizontal_args(deployment, site, tmp_path / f"log{k}.csv", "--session", "h-log",
                               "--iterations", "15", "--learning-rate", "2", "--epsilon", "2",
                               "--delta", "1e-5", "--state-dir", str(tmp_path / site)))
        for site, k in paths.items()
    ])  # fmt: skip
    for code, _out, err in log:
        assert code == 0, err
    models = [json.loads(out) for _, out, _ in log]
    assert models[0]["dp"]["releases"] == 16 and models[0]["dp"]["epsilon"] == 2.0
    weights = [
        np.append([m["coefficients"][f"x{j}"] for j in range(3)], m["intercept"]) for m in models
    ]
    assert all(np.array_equal(weights[0], w) for w in weights[1:])  # one noised release each
    spec = HorizontalSpec(HorizontalModel.LOGISTIC, ("x0", "x1", "x2"), (4.0, 4.0, 4.0), "y",
                          iterations=15, learning_rate=2.0)  # fmt: skip
    table = {f"x{j}": X[:, j] for j in range(3)} | {"y": y_log}
    reference = plaintext_horizontal(table, spec)
    assert np.max(np.abs(weights[0] - reference)) < 0.5  # noise (sigma per sum ~ z * 2)
    assert np.sign(weights[0][0]) == np.sign(reference[0])
    for site in sites:
        ledger = PrivacyLedger(tmp_path / site / "ledger-smpc.sqlite")
        assert [r.label for r in ledger.records("smpc")] == [
            "smpc horizontal logistic regression, session h-log"
        ]
        assert 1.9 < ledger.spent("smpc") <= 2.0 + 1e-6


def test_a_dp_psi_count_is_charged_to_both_ledgers_and_only_the_noised_count_leaves(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Cardinality PSI with --epsilon between two processes: each site charges its own
    ledger before the session opens; both parties, and the coordinator's audit record, hold
    the same noised count (the responder never receives the exact one)."""
    from tutela.dp.ledger import PrivacyLedger

    from .linkage_data import two_hospitals
    from .network import write_csv

    a_rows, b_rows, truth = two_hospitals(80, 70, 30, seed=12)
    data = {"hospital-a": write_csv(tmp_path / "a.csv", a_rows),
            "hospital-b": write_csv(tmp_path / "b.csv", b_rows)}  # fmt: skip
    procs = [
        party(["psi", *deployment.credentials(site), "--session", "count-dp", "--data",
               str(path), "--mode", "cardinality", "--keys", "name+dob", "--epsilon", "1",
               "--state-dir", str(tmp_path / site), "--json", "--party", "hospital-a",
               "--party", "hospital-b"])
        for site, path in data.items()
    ]  # fmt: skip
    results = finish(procs)
    for code, _out, err in results:
        assert code == 0, err
    sizes = [json.loads(out)["size"] for _, out, _ in results]
    assert sizes[0] == sizes[1] and abs(sizes[0] - len(truth)) <= 30  # sigma about 4.8
    for site in data:
        ledger = PrivacyLedger(tmp_path / site / "ledger-smpc.sqlite")
        assert [r.label for r in ledger.records("smpc")] == ["smpc PSI count, session count-dp"]
        assert 0.9 < ledger.spent("smpc") <= 1.0 + 1e-6
    complete = [
        e for e in deployment.audit()
        if e["resource"] == "smpc/count-dp" and e["action"] == "smpc.complete"
    ]  # fmt: skip
    detail = complete[0]["detail"]
    assert isinstance(detail, dict)
    assert {r["size"] for r in detail["released"].values()} == {sizes[0]}
