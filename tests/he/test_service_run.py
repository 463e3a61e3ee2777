"""Serving the federated model of a real run directory (trained here with the in-process
study API on the shipped breast-cancer data): a logistic model and a polynomial-activation
MLP (``kind = "poly-mlp"``), each with the standardisation the run recorded folded into its
first layer; encrypted predictions give exactly the run's own test accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.he._service_fixtures import make_pki
from tutela.errors import ConfigError, DataError
from tutela.fl.config import parse_study
from tutela.fl.models import QuadraticActivation, build_model, set_parameters
from tutela.fl.recipes import flagship_policy, run_configured_study
from tutela.fl.records import parameters_from_bytes
from tutela.fl.study import prepare_data
from tutela.governance.envelope import Envelope
from tutela.governance.home import open_keyring
from tutela.he.network import QUADRATIC_RELU
from tutela.server.he_service.client import HeClient
from tutela.server.he_service.keys import create_key_dir
from tutela.server.he_service.models import load_network
from tutela.server.he_service.runner import HeServer, HeServeSettings

MODELS = {"logistic": {"kind": "logistic"}, "poly-mlp": {"kind": "poly-mlp", "hidden": [16]}}


def _study(kind: str) -> dict[str, object]:
    return {
        "study": {"name": f"he-serve-{kind}", "seed": 3},
        "data": {"dataset": "breast-cancer", "sites": 3, "min_site_rows": 20},
        "model": MODELS[kind],
        "training": {"rounds": 3, "local_epochs": 1, "min_fit_sites": 2, "min_quorum": 2},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("he-run")
    mp = pytest.MonkeyPatch()
    mp.setenv("TUTELA_HOME", str(root / "study-home"))
    policy = dataclasses.replace(flagship_policy(), secure_aggregation_required=False)
    out = {}
    for kind in MODELS:
        config = parse_study(_study(kind))
        results = run_configured_study(config, run_dir=root / kind, policy=policy)
        out[kind] = (root / kind, config, results)
    yield root, out
    mp.undo()


def _test_rows(config, results) -> tuple[list[str], np.ndarray, np.ndarray]:
    columns = list(results.dataset.features)
    data = prepare_data(config.with_overrides(data={"columns": columns}), flagship_policy())
    x_test = data.x[data.test_rows].astype(np.float64)
    return columns, x_test, np.asarray(data.y[data.test_rows])


def test_a_run_without_its_standardisation_is_refused(runs, tmp_path: Path) -> None:
    _root, by_kind = runs
    run_dir = by_kind["logistic"][0]
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "standardisation.json").unlink()
    with pytest.raises(ConfigError, match="does not record the standardisation"):
        load_network(copy)


def test_relu_mlp_and_factory_runs_are_refused(runs, tmp_path: Path) -> None:
    _root, by_kind = runs
    doc = json.loads((by_kind["logistic"][0] / "results.json").read_text())
    doc["config"]["model"] = {"kind": "mlp", "hidden": [8]}
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="ReLU activations cannot be evaluated exactly"):
        load_network(tmp_path)
    doc["config"]["model"] = {"factory": "pkg.mod:build", "source_sha256": "0" * 64}
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="own model factory"):
        load_network(tmp_path)


def test_a_run_directory_whose_claims_differ_from_its_model_is_refused(
    runs, tmp_path: Path
) -> None:
    """Someone who controls the run directory edits results.json or standardisation.json:
    the stored layers must be those of the declared kind and widths, the standardisation one
    per feature, or nothing is served."""
    _root, by_kind = runs
    copy = tmp_path / "run"
    shutil.copytree(by_kind["poly-mlp"][0], copy)
    doc = json.loads((copy / "results.json").read_text())
    for claim, problem in [
        ({"kind": "logistic"}, "unexpected 2.bias"),  # a quadratic MLP served as logistic
        ({"kind": "poly-mlp", "hidden": [8]}, "shape of 0.bias"),
        ({"kind": "poly-mlp", "hidden": [16, 16]}, "missing 4.bias"),
    ]:
        doc["config"]["model"] = claim
        (copy / "results.json").write_text(json.dumps(doc))
        with pytest.raises(DataError, match=problem):
            load_network(copy)
    doc["config"]["model"] = MODELS["poly-mlp"]
    (copy / "results.json").write_text(json.dumps(doc))
    assert load_network(copy)[0].kind == "poly-mlp"
    (copy / "standardisation.json").write_text(json.dumps({"mean": [0.0], "std": [1.0]}))
    with pytest.raises(DataError, match="does not match the 30 features"):
        load_network(copy)


def test_the_served_polynomial_is_the_trained_module(runs) -> None:
    """The network the service evaluates (standardisation folded in, activation read from
    the trained module) equals the sites' PyTorch model on standardised rows."""
    _root, by_kind = runs
    run_dir, config, results = by_kind["poly-mlp"]
    network, _ = load_network(run_dir)
    assert network.kind == "poly-mlp" and network.activation == QUADRATIC_RELU
    model = build_model("poly-mlp", len(network.features), hidden=(16,))
    acts = [m for m in model.modules() if isinstance(m, QuadraticActivation)]
    assert [a.coefficients for a in acts] == [QUADRATIC_RELU]
    blob = (run_dir / "model.safetensors.enc").read_bytes()
    raw = Envelope(open_keyring(None, create=False)).decrypt(blob, name="model.safetensors.enc")
    set_parameters(model, parameters_from_bytes(raw))
    std = json.loads((run_dir / "standardisation.json").read_text())
    _cols, x_test, _y = _test_rows(config, results)
    z = (x_test - np.asarray(std["mean"])) / np.asarray(std["std"])
    with torch.no_grad():
        torch_logits = model.double()(torch.from_numpy(z))[:, 0].numpy()
    np.testing.assert_allclose(network.score_plain(x_test), torch_logits, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", list(MODELS))
def test_the_federated_model_served_from_its_run_directory(runs, kind: str) -> None:
    root, by_kind = runs
    run_dir, config, results = by_kind[kind]
    columns, x_test, y = _test_rows(config, results)
    pki = make_pki(root / f"pki-{kind}", "clinic-a")
    settings = HeServeSettings(
        model=run_dir, state_dir=root / f"state-{kind}", pki_dir=pki.root, port=0
    )
    server = HeServer(settings).start()  # decrypts the model with the study's keyring
    try:
        site = pki.site("clinic-a")
        with HeClient(server.url, ca=pki.ca.cert, cert=site.cert, key=site.key) as client:
            card = client.model_card()
            assert card.features == tuple(columns) and card.kind == kind
            assert card.depth == (1 if kind == "logistic" else 2)
            key = create_key_dir(root / f"keys-{kind}", card)
            table = key.encrypt_for_model({c: x_test[:, j] for j, c in enumerate(columns)}, card)
            client.upload_key(key.bundle())
            out = key.decrypt_result(client.predict(table.payload))
    finally:
        server.stop()
    assert server.service is not None
    plain = server.service.network.score_plain(x_test)
    assert out.values.shape == (x_test.shape[0],)
    assert np.max(np.abs(out.values - plain)) <= out.error_bound == card.error_bound
    assert np.array_equal(out.values > 0, plain > 0)  # every row decided the same way
    accuracy = float(np.mean((out.values > 0) == y))
    assert accuracy == pytest.approx(results.federated.accuracy, abs=1e-12)
