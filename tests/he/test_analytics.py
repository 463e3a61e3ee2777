"""Encrypted analytics on an uploaded encrypted table, over TLS: the service computes sums,
means, variances, histograms and linear scores on ciphertexts; the owner decrypts each
answer within the error bound the result states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.he._service_fixtures import FEATURES, breast_cancer, logistic_file, make_pki
from tutela.cli.he import encrypt_table_for_analytics
from tutela.errors import DataError, ServiceError
from tutela.he.analytics import bin_column, finish
from tutela.server.he_service.client import HeClient
from tutela.server.he_service.keys import create_key_dir
from tutela.server.he_service.runner import HeServer, HeServeSettings

DATA = breast_cancer()
EDGES = [0.0, 10.0, 15.0, 20.0, 30.0]


@pytest.fixture(scope="module")
def uploaded(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("he-analytics")
    mp = pytest.MonkeyPatch()
    mp.setenv("TUTELA_HOME", str(root / "home"))
    logistic_file(root / "model.safetensors", DATA)
    pki = make_pki(root / "pki", "clinic-a")
    settings = HeServeSettings(
        model=root / "model.safetensors", state_dir=root / "state", pki_dir=pki.root, port=0
    )
    server = HeServer(settings).start()
    site = pki.site("clinic-a")
    client = HeClient(server.url, ca=pki.ca.cert, cert=site.cert, key=site.key)
    key = create_key_dir(root / "keys", client.model_card())
    X = np.vstack([DATA.x_train, DATA.x_test])  # 569 rows
    frame = pd.DataFrame(X, columns=FEATURES)
    table = encrypt_table_for_analytics(key, frame, ["f0", "f1", "f2"], {"f0": EDGES})
    client.upload_key(key.bundle())
    doc = client.upload_table(table.payload)
    yield client, key, doc["table"], X, server
    client.close()
    server.stop()
    mp.undo()


def _ask(uploaded, magnitudes=None, **query):
    client, key, table, _x, _server = uploaded
    body = {"op": query.pop("op"), "column": query.get("column"), "weights": query.get("weights"),
            "bias": query.get("bias", 0.0)}  # fmt: skip
    return finish(key.decrypt_result(client.query_table(table, body)), magnitudes)


def test_sum_mean_variance_within_the_stated_bound(uploaded) -> None:
    x = uploaded[3][:, 0]
    for op, expected in (("sum", x.sum()), ("mean", x.mean()), ("variance", x.var(ddof=1))):
        doc = _ask(uploaded, op=op, column="f0")
        assert doc["rows"] == 569
        assert abs(doc["value"] - expected) <= doc["error_bound"], (op, doc)
        assert doc["error_bound"] < 1e-3 * max(1.0, abs(expected))


def test_histogram_counts_are_exact(uploaded) -> None:
    doc = _ask(uploaded, op="histogram", column="f0")
    expected = bin_column(uploaded[3][:, 0], EDGES).sum(axis=0).astype(int).tolist()
    assert doc["exact"] is True and doc["counts"] == expected and sum(expected) == 569


def test_linear_score_per_row(uploaded) -> None:
    X = uploaded[3]
    weights = {"f0": 0.5, "f2": -0.01}
    doc = _ask(uploaded, op="linear", weights=weights, bias=1.5)
    assert doc["error_bound"] is None  # the service cannot know the owner's magnitudes
    magnitudes = {"f0": float(np.abs(X[:, 0]).max()), "f2": float(np.abs(X[:, 2]).max())}
    doc = _ask(uploaded, magnitudes, op="linear", weights=weights, bias=1.5)
    expected = 0.5 * X[:, 0] - 0.01 * X[:, 2] + 1.5
    err = np.max(np.abs(doc["scores"] - expected))
    assert err <= doc["error_bound"] < 1e-4


def test_bad_queries_are_refused(uploaded) -> None:
    with pytest.raises(ServiceError, match=r"\(422\).*not binned"):
        _ask(uploaded, op="histogram", column="f1")
    with pytest.raises(ServiceError, match=r"\(422\).*no column 'f9'"):
        _ask(uploaded, op="mean", column="f9")
    with pytest.raises(ServiceError, match=r"\(422\).*no column\(s\) nope"):
        _ask(uploaded, op="linear", weights={"nope": 1.0})
    with pytest.raises(ServiceError, match=r"\(422\)"):
        _ask(uploaded, op="median", column="f0")
    client = uploaded[0]
    with pytest.raises(ServiceError, match=r"\(422\).*malformed table id"):
        client.query_table("not-a-table", {"op": "sum", "column": "f0"})
    with pytest.raises(DataError, match="outside the histogram edges"):
        bin_column([31.0], EDGES)


def test_the_service_stored_ciphertexts_only(uploaded, tmp_path: Path) -> None:
    _client, key, table_id, X, server = uploaded
    stored = (server.settings.state_dir / "tables" / f"{table_id}.table").read_bytes()
    assert np.float64(X[0, 0]).tobytes() not in stored
    assert key.secret_bytes() not in stored
