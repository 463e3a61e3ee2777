"""HE as a service over real TLS on loopback: keygen, encrypt, serve, predict, decrypt.

The service runs in this process on a background thread (uvicorn, mutual TLS, the
coordinator's authorize/audit/body limits); the cross-process flow through the real CLI is
in ``test_service_cli.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts

from tests.he._service_fixtures import (
    FEATURES,
    breast_cancer,
    frame,
    logistic_file,
    make_pki,
    mlp_file,
)
from tutela.errors import DataError, ServiceError
from tutela.he import messages
from tutela.he.owner import OwnerKey
from tutela.server.he_service.client import HeClient
from tutela.server.he_service.keys import create_key_dir, open_key_dir
from tutela.server.he_service.runner import HeServer, HeServeSettings

DATA = breast_cancer()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("he-service")
    mp = pytest.MonkeyPatch()
    mp.setenv("TUTELA_HOME", str(root / "owner-home"))
    yield root
    mp.undo()


def _serve(root: Path, model: Path, name: str, **kw: object) -> tuple[HeServer, object]:
    pki = make_pki(root / f"pki-{name}", "clinic-a", "auditor-x")
    settings = HeServeSettings(
        model=model, state_dir=root / f"state-{name}", pki_dir=pki.root, port=0, **kw
    )  # type: ignore[arg-type]
    return HeServer(settings).start(), pki


@pytest.fixture(scope="module")
def logistic(home: Path):
    net = logistic_file(home / "logistic.safetensors", DATA)
    policy = home / "policy.toml"
    policy.write_text('[principals.auditor-x]\nroles = ["auditor"]\n')
    server, pki = _serve(
        home, home / "logistic.safetensors", "logistic", policy=policy, row_budget=1000
    )
    yield net, server, pki
    server.stop()


def _client(server: HeServer, pki, name: str = "clinic-a") -> HeClient:
    site = pki.site(name)
    return HeClient(server.url, ca=pki.ca.cert, cert=site.cert, key=site.key)


def _round_trip(home: Path, net, server, pki, keys: str):
    with _client(server, pki) as client:
        card = client.model_card()
        key = create_key_dir(home / keys, card, force=True)
        table = key.encrypt_for_model(frame(DATA.x_test), card)
        client.upload_key(key.bundle())
        result = client.predict(table.payload)
    owner, _ = open_key_dir(home / keys)  # decrypt with the key as stored under the keyring
    return card, table, result, owner.decrypt_result(result)


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_predictions_equal_plaintext_within_the_stated_bound(
    home: Path, logistic, kind: str
) -> None:
    if kind == "logistic":
        net, server, pki = logistic
        stop = None
    else:
        net = mlp_file(home / "mlp.safetensors", DATA)
        server, pki = _serve(home, home / "mlp.safetensors", "mlp")
        stop = server
    try:
        card, _table, _result, out = _round_trip(home, net, server, pki, f"keys-{kind}")
    finally:
        if stop is not None:
            stop.stop()
    plain = net.score_plain(DATA.x_test)
    err = np.max(np.abs(out.values - plain))
    assert out.values.shape == (DATA.x_test.shape[0],)
    assert err <= out.error_bound == card.error_bound
    assert np.array_equal(out.values > 0, plain > 0)  # accuracy identical, row by row
    assert card.depth == (1 if kind == "logistic" else 2)
    assert card.params.coeff_mod_bit_sizes == (
        (60, 40, 60) if kind == "logistic" else (60, 40, 40, 60)
    )
    assert out.meta["model"] == card.digest and out.meta["rows"] == DATA.x_test.shape[0]
    if kind == "logistic":
        assert err < 1e-4


def test_a_curious_service_holds_no_secret_key(home: Path, logistic) -> None:
    net, server, pki = logistic
    card, table, result, out = _round_trip(home, net, server, pki, "keys-curious")
    state = server.settings.state_dir
    stored = sorted(p for p in state.rglob("*") if p.is_file())
    bundles = [p for p in stored if p.suffix == ".bundle"]
    assert bundles
    owner, _ = open_key_dir(home / "keys-curious")
    secret = owner.secret_bytes()
    for path in stored:  # nothing the service stored is or contains the secret context
        assert secret not in path.read_bytes()
    for path in bundles:
        env = messages.unpack(
            path.read_bytes(), kind=messages.BUNDLE, max_bytes=1 << 30, max_blobs=1
        )
        ctx = ts.context_from(env.blobs[0])
        assert not ctx.is_private()
        # the service's best attempt: decrypt what it received and what it sent
        vec = ts.ckks_vector_from(
            ctx,
            messages.unpack(result, kind=messages.RESULT, max_bytes=1 << 30, max_blobs=10).blobs[0],
        )
        with pytest.raises(ValueError, match="secret_key"):
            vec.decrypt()
    assert b"secret" not in (state / "audit.jsonl").read_bytes().lower()


def test_wrong_parameters_context_and_columns_are_refused(home: Path, logistic) -> None:
    net, server, pki = logistic
    with _client(server, pki) as client:
        card = client.model_card()
        # a key made with other CKKS parameters (depth 2) than the model's (depth 1)
        from tutela.he.network import params_for_depth

        other = OwnerKey.generate(params_for_depth(2))
        with pytest.raises(ServiceError, match=r"\(422\).*do not match the service's"):
            client.upload_key(other.bundle())
        # a bundle carrying a secret key
        key = create_key_dir(home / "keys-wrong", card, force=True)
        secret_ctx = ts.context_from(key.secret_bytes())
        leaky = messages.pack(
            messages.BUNDLE,
            __import__("tutela.he.ckks", fromlist=["fingerprint"]).fingerprint(
                bytes(secret_ctx.serialize(save_secret_key=True))
            ),
            {"params": messages.params_json(card.params)},
            [bytes(secret_ctx.serialize(save_secret_key=True))],
        )
        with pytest.raises(ServiceError, match=r"\(400\).*secret key"):
            client.upload_key(leaky)
        # a query under a key the service was never given
        stranger = OwnerKey.generate(card.params)
        with pytest.raises(ServiceError, match=r"unknown key"):
            client.predict(stranger.encrypt_for_model(frame(DATA.x_test[:3]), card).payload)
        client.upload_key(key.bundle())
        # wrong feature columns: the model's columns reordered, or a different count
        swapped = key.encrypt_columns(
            DATA.x_test[:3], [*FEATURES[1:], FEATURES[0]], model=card.digest
        )
        with pytest.raises(ServiceError, match=r"\(422\).*not the model's features"):
            client.predict(swapped.payload)
        fewer = key.encrypt_columns(DATA.x_test[:3, :29], FEATURES[:29], model=card.digest)
        with pytest.raises(ServiceError, match=r"\(422\).*not the model's features"):
            client.predict(fewer.payload)
        # prepared for another model
        other_model = key.encrypt_columns(DATA.x_test[:3], FEATURES, model="0" * 64)
        with pytest.raises(ServiceError, match="another model"):
            client.predict(other_model.payload)
        # tampered: a flipped bit, and a ciphertext from another key with a fresh checksum
        good = key.encrypt_for_model(frame(DATA.x_test[:3]), card).payload
        flipped = bytearray(good)
        flipped[len(flipped) // 2] ^= 0x01
        with pytest.raises(ServiceError, match=r"\(400\).*checksum"):
            client.predict(bytes(flipped))
        env = messages.unpack(good, kind=messages.TABLE, max_bytes=1 << 30, max_blobs=100)
        foreign = messages.unpack(
            stranger.encrypt_for_model(frame(DATA.x_test[:3]), card).payload,
            kind=messages.TABLE,
            max_bytes=1 << 30,
            max_blobs=100,
        )
        spliced = messages.pack(
            messages.TABLE, env.fingerprint, env.meta, [b"\x00" * 64, *foreign.blobs[1:]]
        )
        with pytest.raises(ServiceError, match=r"\(400\).*malformed ciphertext"):
            client.predict(spliced)


def test_owner_side_checks_columns_and_ranges(home: Path, logistic) -> None:
    net, server, pki = logistic
    with _client(server, pki) as client:
        card = client.model_card()
    key = create_key_dir(home / "keys-owner", card, force=True)
    cols = frame(DATA.x_test[:4])
    del cols["f3"]
    with pytest.raises(DataError, match=r"lacks the model's feature column.*f3"):
        key.encrypt_for_model(cols, card)
    high = frame(DATA.x_test[:4])
    high["f0"] = high["f0"] * 100
    with pytest.raises(DataError, match=r"'f0' row 1.*outside the model's declared range"):
        key.encrypt_for_model(high, card)


def test_oversize_unauthenticated_wrong_role_and_budget_are_refused(home: Path, logistic) -> None:
    import httpx

    from tutela.server.tls import client_context

    net, server, pki = logistic
    ctx = client_context(pki.ca.cert)
    with httpx.Client(base_url=server.url, verify=ctx) as anon:
        r = anon.get("/v1/he/model")
        assert r.status_code == 401
        assert r.json()["detail"].startswith("credentials required")
    with (
        _client(server, pki, "auditor-x") as auditor,
        pytest.raises(ServiceError, match=r"\(403\).*lacks permission model:read"),
    ):
        auditor.model_card()
    small = _serve(home, home / "logistic.safetensors", "small", max_request_bytes=4096)
    server2, pki2 = small
    try:
        with _client(server2, pki2) as client:
            card = client.model_card()
            key = create_key_dir(home / "keys-small", card, force=True)
            with pytest.raises(ServiceError, match=r"\(413\)"):
                client.upload_key(key.bundle())
    finally:
        server2.stop()
    audit = (server.settings.state_dir / "audit.jsonl").read_text()
    assert "access.denied" in audit and "auditor:auditor-x" in audit


def test_query_budget_per_key(home: Path, logistic) -> None:
    net, server, pki = logistic  # row budget 1000
    with _client(server, pki) as client:
        card = client.model_card()
        key = create_key_dir(home / "keys-budget", card, force=True)
        client.upload_key(key.bundle())
        query = key.encrypt_for_model(frame(DATA.x_test), card).payload  # 143 rows
        for _ in range(6):
            client.predict(query)
        with pytest.raises(ServiceError, match=r"\(429\).*budget of 1000"):
            client.predict(query)
    usage = json.loads((server.settings.state_dir / "usage.json").read_text())
    assert usage[key.fingerprint.hex()] == 6 * 143
