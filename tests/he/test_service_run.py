"""Serving the federated model of a real run directory (trained here with the in-process
study API on the shipped breast-cancer data): the standardisation is folded into the first
layer, and encrypted predictions give exactly the run's own test accuracy.

Runs do not yet record the standardisation their sites trained with (``fl`` writes
``results.json`` and the encrypted model only); until they do, the service refuses such a
run with a clear error (tested), and the positive test writes ``standardisation.json``
itself: the pooled mean and deviation of the sites' training rows, which is exactly what a
plain study (no DP, no secure aggregation) standardises with.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tests.he._service_fixtures import make_pki
from tutela.errors import ConfigError
from tutela.fl.config import parse_study
from tutela.fl.recipes import flagship_policy, run_configured_study
from tutela.fl.study import prepare_data
from tutela.server.he_service.client import HeClient
from tutela.server.he_service.keys import create_key_dir
from tutela.server.he_service.models import load_network
from tutela.server.he_service.runner import HeServer, HeServeSettings

STUDY = {
    "study": {"name": "he-serve-test", "seed": 3},
    "data": {"dataset": "breast-cancer", "sites": 3, "min_site_rows": 20},
    "model": {"kind": "logistic"},
    "training": {"rounds": 3, "local_epochs": 1, "min_fit_sites": 2, "min_quorum": 2},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("he-run")
    mp = pytest.MonkeyPatch()
    mp.setenv("TUTELA_HOME", str(root / "study-home"))
    config = parse_study(STUDY)
    policy = dataclasses.replace(flagship_policy(), secure_aggregation_required=False)
    results = run_configured_study(config, run_dir=root / "run", policy=policy)
    yield root, config, results, policy
    mp.undo()


def test_a_run_without_its_standardisation_is_refused(run) -> None:
    root, _config, _results, _policy = run
    with pytest.raises(ConfigError, match="does not record the standardisation"):
        load_network(root / "run")


def test_relu_mlp_runs_are_refused(run, tmp_path: Path) -> None:
    root, _config, _results, _policy = run
    doc = json.loads((root / "run" / "results.json").read_text())
    doc["config"]["model"] = {"kind": "mlp", "hidden": [8]}
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="ReLU activations cannot be evaluated exactly"):
        load_network(tmp_path)


def test_the_federated_model_served_from_its_run_directory(run) -> None:
    root, config, results, policy = run
    columns = list(results.dataset.features)
    data = prepare_data(config.with_overrides(data={"columns": columns}), flagship_policy())
    train = np.concatenate(data.site_rows)
    x = data.x[train].astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    (root / "run" / "standardisation.json").write_text(
        json.dumps({"mean": mean.tolist(), "std": std.tolist()})
    )
    pki = make_pki(root / "pki", "clinic-a")
    settings = HeServeSettings(
        model=root / "run", state_dir=root / "state", pki_dir=pki.root, port=0
    )
    server = HeServer(settings).start()  # decrypts the model with the study's keyring
    try:
        site = pki.site("clinic-a")
        with HeClient(server.url, ca=pki.ca.cert, cert=site.cert, key=site.key) as client:
            card = client.model_card()
            assert card.features == tuple(columns) and card.kind == "logistic"
            key = create_key_dir(root / "keys", card)
            x_test = data.x[data.test_rows].astype(np.float64)
            table = key.encrypt_for_model({c: x_test[:, j] for j, c in enumerate(columns)}, card)
            client.upload_key(key.bundle())
            out = key.decrypt_result(client.predict(table.payload))
    finally:
        server.stop()
    assert server.service is not None
    plain = server.service.network.score_plain(x_test)
    assert np.max(np.abs(out.values - plain)) <= out.error_bound
    y = data.y[data.test_rows]
    accuracy = float(np.mean((out.values > 0) == y))
    assert accuracy == pytest.approx(results.federated.accuracy, abs=1e-12)
