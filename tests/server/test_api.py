"""The coordinator's HTTP API over real TLS: authorisation matrix, enrolment, mutual TLS,
bad input answered with clear 4xx messages, and the audit trail of denials."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.server.conftest import Live, join_body, model_params
from tutela.fl.records import parameters_to_bytes
from tutela.governance.audit import AuditLog
from tutela.server import pki
from tutela.server.app import create_app, route_permissions
from tutela.server.authz import Principal, Role, decide

CALLERS = ("none", "admin", "data-scientist", "auditor", "site")


def _client(live: Live, caller: str) -> httpx.Client:
    if caller == "none":
        return live.client()
    if caller == "site":
        return live.client(site="hospital-1")
    return live.client(caller)


def _principal(caller: str) -> Principal | None:
    if caller == "none":
        return None
    if caller == "site":
        return Principal("hospital-1", Role.SITE)
    return Principal(f"{caller}-user", Role(caller))


def test_every_route_declares_audience_and_permission(live: Live) -> None:
    app = create_app(live.server.coordinator)  # type: ignore[arg-type]
    declared = route_permissions(app)
    assert len(declared) >= 20
    paths = {path for _method, path in declared}
    assert "/v1/site/tasks" in paths and "/v1/admin/audit" in paths and "/v1/enrol" in paths
    schema = app.openapi()
    for path, ops in schema["paths"].items():
        for op in ops.values():
            assert "x-permission" in op and "x-audience" in op, path


def test_authorisation_matrix_over_every_endpoint_and_role(live: Live) -> None:
    study = live.new_study()
    declared = route_permissions(create_app(live.server.coordinator))  # type: ignore[arg-type]
    clients = {caller: _client(live, caller) for caller in CALLERS}
    checked = 0
    for (method, path), (audience, permission) in sorted(declared.items()):
        url = re.sub(r"\{study_id\}", study, path)
        url = (
            url.replace("{round_no}", "1")
            .replace("{stage}", "fit")
            .replace("{recipient}", "hospital-2")
        )
        url = url.replace("{name}", "hospital-3")
        for caller in CALLERS:
            if method == "POST" and url.endswith(("/start", "/cancel", "/pause")):
                continue  # covered below; their authorisation is the same dependency
            kwargs: dict[str, object] = {}
            if method in ("POST", "PUT"):
                kwargs["content"] = b"{}"
                kwargs["headers"] = {"Content-Type": "application/json", "Idempotency-Key": "x"}
            response = clients[caller].request(method, url, **kwargs)  # type: ignore[arg-type]
            reason = decide(_principal(caller), audience, permission, url)
            if reason is None:
                # Allowed by role: anything but an authentication or role denial (an object
                # check such as "not invited to this study" may still answer 403).
                detail = (
                    str(response.json().get("detail", ""))
                    if response.headers.get("content-type", "").startswith("application/json")
                    and isinstance(response.json(), dict)
                    else ""
                )
                role_denial = "lacks permission" in detail or "this endpoint is for" in detail
                assert response.status_code != 401 and not role_denial, (
                    method,
                    url,
                    caller,
                    response.text,
                )
            elif caller == "none":
                assert response.status_code == 401, (method, url, caller, response.text)
                assert "credentials required" in response.json()["detail"]
            else:
                assert response.status_code == 403, (method, url, caller, response.text)
            checked += 1
    assert checked > 80
    # Control endpoints: only admin and data-scientist may start a study.
    for caller in ("none", "auditor", "site"):
        code = clients[caller].post(f"/v1/admin/studies/{study}/start").status_code
        assert code == (401 if caller == "none" else 403)
    assert clients["data-scientist"].post(f"/v1/admin/studies/{study}/start").status_code == 200
    for c in clients.values():
        c.close()


def test_denials_are_audited_in_the_store_and_the_merkle_log(live: Live) -> None:
    with live.client() as anon:
        assert anon.get("/v1/admin/audit").status_code == 401
    with live.client(site="hospital-1") as site:
        assert site.get("/v1/admin/studies").status_code == 403
    with live.client("auditor") as auditor:
        events = auditor.get("/v1/admin/audit").json()
        assert auditor.post("/v1/admin/sites", json={"name": "x1"}).status_code == 403
    denied = [e for e in events if e["action"] == "access.denied"]
    assert any(
        e["actor"] == "anonymous" and e["detail"]["reason"] == "no credentials" for e in denied
    )
    assert any(e["actor"] == "site:hospital-1" for e in denied)
    log = AuditLog.open(live.server.settings.data_dir / "audit.jsonl")
    actions = [r.action for r in log.records()]
    assert actions.count("access.denied") >= 3
    assert log.verify_unanchored().ok
    log.close()


def test_enrolment_exchanges_a_one_time_token_for_a_certificate(live: Live, tmp_path: Path) -> None:
    with live.admin() as admin:
        token = admin.post("/v1/admin/sites", json={"name": "hospital-9"}).json()["enrolment_token"]
    key = pki.new_private_key()
    with live.client() as anon:
        r = anon.post(
            "/v1/enrol", json={"token": token, "csr_pem": pki.make_csr(key, "evil-name").decode()}
        )
        assert r.status_code == 200, r.text
        cert_pem = r.json()["certificate_pem"]
        again = anon.post(
            "/v1/enrol", json={"token": token, "csr_pem": pki.make_csr(key, "hospital-9").decode()}
        )
        assert again.status_code == 403 and "used or expired" in again.json()["detail"]
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert pki.common_name(cert) == "hospital-9"  # bound to the token's site, not the CSR
    (tmp_path / "s.pem").write_text(cert_pem)
    (tmp_path / "s.key").write_bytes(pki.key_to_pem(key))
    ctx = ssl.create_default_context(cafile=str(live.ca))
    ctx.load_cert_chain(tmp_path / "s.pem", tmp_path / "s.key")
    with httpx.Client(base_url=live.url, verify=ctx) as site:
        assert site.get("/v1/site/tasks").status_code == 200
    # Another certificate for the same name (issued offline) is not the enrolled one.
    other = pki.issue_to_files(live.pki_dir, kind="site", name="hospital-9")
    ctx2 = ssl.create_default_context(cafile=str(live.ca))
    ctx2.load_cert_chain(other.cert, other.key)
    with httpx.Client(base_url=live.url, verify=ctx2) as impostor:
        r = impostor.get("/v1/site/tasks")
        assert r.status_code == 403 and "does not belong to an enrolled site" in r.json()["detail"]


def test_a_site_with_a_wrong_certificate_is_refused(live: Live, tmp_path: Path) -> None:
    other = tmp_path / "other-ca"
    pki.init_ca(other)
    rogue = pki.issue_to_files(other, kind="site", name="hospital-1")
    ctx = ssl.create_default_context(cafile=str(live.ca))
    ctx.load_cert_chain(rogue.cert, rogue.key)
    with httpx.Client(base_url=live.url, verify=ctx) as client, pytest.raises(httpx.TransportError):
        client.get("/v1/site/tasks")
    # A valid certificate of a site that is not registered gets a clear 403.
    with live.client(site="stranger") as stranger:
        r = stranger.get("/v1/site/tasks")
        assert r.status_code == 403 and "stranger" in r.json()["detail"]


def _running(live: Live) -> str:
    study = live.new_study(join_timeout_s=30, stage_timeout_s=30)
    with live.admin() as admin:
        assert admin.post(f"/v1/admin/studies/{study}/start").status_code == 200
    for site in ("hospital-1", "hospital-2", "hospital-3"):
        with live.client(site=site) as c:
            r = c.post(f"/v1/site/studies/{study}/participation", json=join_body())
            assert r.status_code == 200, r.text
    import time

    deadline = time.monotonic() + 10
    with live.client(site="hospital-1") as c:
        while time.monotonic() < deadline:
            tasks = c.get("/v1/site/tasks").json()["tasks"]
            if tasks and tasks[0]["kind"] == "fit":
                return study
            time.sleep(0.05)
    raise AssertionError("round 1 did not open")


def _update(study: str, round_no: int, arrays: dict[str, np.ndarray], n: int = 10) -> bytes:
    return parameters_to_bytes(
        arrays, metadata={"study": study, "round": str(round_no), "num_examples": str(n)}
    )


def test_bad_input_gets_a_clear_4xx(live: Live) -> None:
    study = _running(live)
    url = f"/v1/site/studies/{study}/rounds/1/stages/fit"
    good = {k: np.zeros_like(v) for k, v in model_params().items()}
    with live.client(site="hospital-1") as site:

        def post(body: bytes, path: str = url, key: str = "k") -> httpx.Response:
            return site.post(
                path,
                content=body,
                headers={"Idempotency-Key": key, "Content-Type": "application/octet-stream"},
            )

        r = post(b"\x00" * (65 * 1024 * 1024 + 1))
        assert r.status_code == 413 and "exceeds" in r.json()["detail"]
        r = post(
            _update(study, 1, {"0.weight": np.zeros((2, 7), np.float32), "0.bias": good["0.bias"]})
        )
        assert r.status_code == 422 and "shape (2, 7); expected (1, 7)" in r.json()["detail"]
        r = post(
            _update(study, 1, {"0.weight": np.zeros((1, 7), np.int32), "0.bias": good["0.bias"]})
        )
        assert r.status_code == 422 and "dtype int32" in r.json()["detail"]
        r = post(
            _update(
                study,
                1,
                {"0.weight": np.full((1, 7), np.inf, np.float32), "0.bias": good["0.bias"]},
            )
        )
        assert r.status_code == 422 and "NaN or infinite" in r.json()["detail"]
        r = post(b"not safetensors at all")
        assert r.status_code == 422 and "safetensors" in r.json()["detail"]
        r = post(_update(study, 1, good), path="/v1/site/studies/unknown-study/rounds/1/stages/fit")
        assert r.status_code == 404 and "unknown study" in r.json()["detail"]
        r = site.post(url, content=_update(study, 1, good))
        assert r.status_code == 422  # the Idempotency-Key header is required
        ok = post(_update(study, 1, good), key="round-1")
        assert ok.status_code == 200 and ok.json()["duplicate"] is False
        r = post(
            _update(study, 0, good), path=f"/v1/site/studies/{study}/rounds/0/stages/fit", key="old"
        )
        assert r.status_code == 409 and "earlier round" in r.json()["detail"]
        r = site.post(
            f"/v1/site/studies/{study}/rounds/1/metrics", json={"metrics": {"loss": "nan"}}
        )
        assert r.status_code == 422
    with live.admin() as admin:
        r = admin.post("/v1/admin/studies", json={"config": {"data": {"sites": 0}}})
        assert r.status_code == 422 and "data.sites" in r.json()["detail"]
        r = admin.get("/v1/admin/studies/nope")
        assert r.status_code == 404


def test_relay_carries_authenticated_opaque_messages(live: Live) -> None:
    study = _running(live)
    base = f"/v1/site/studies/{study}/rounds/1/relay/demo"
    with live.client(site="hospital-1") as one:
        r = one.post(
            f"{base}/hospital-2", content=b"\x01\x02opaque", headers={"Idempotency-Key": "m1"}
        )
        assert r.status_code == 200, r.text
        r = one.post(f"{base}/stranger", content=b"x", headers={"Idempotency-Key": "m2"})
        assert r.status_code == 422
        r = one.post(
            f"{base}/hospital-2",
            content=b"x" * (1024 * 1024 + 1),
            headers={"Idempotency-Key": "m3"},
        )
        assert r.status_code == 413
    with live.client(site="hospital-2") as two:
        r = two.get(base)
        from safetensors.numpy import load

        messages = load(r.content)
        assert set(messages) == {"hospital-1"}
        assert messages["hospital-1"].tobytes() == b"\x01\x02opaque"
    with live.client(site="hospital-3") as three:
        assert load(three.get(base).content) == {}


def test_cli_submit_and_status_against_a_live_coordinator(live: Live, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from tutela.cli.main import app

    study = tmp_path / "study.toml"
    study.write_text(
        '[data]\ndataset = "pima-diabetes"\nsites = 3\n'
        'columns = ["pregnancies", "glucose", "diastolic_bp", "skinfold", "bmi", '
        '"pedigree", "age"]\n'
        "[training]\nrounds = 1\nmin_quorum = 2\nmin_fit_sites = 2\n"
    )
    common = [
        "--coordinator",
        live.url,
        "--ca",
        str(live.ca),
        "--token",
        live.tokens["data-scientist"],
    ]
    runner = CliRunner()
    result = runner.invoke(app, ["server", "submit", str(study), *common, "--site", "hospital-1"])
    assert result.exit_code == 0, result.output
    study_id = result.output.strip()
    result = runner.invoke(app, ["server", "status", study_id, *common])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["status"] == "recruiting" and list(status["participation"]) == ["hospital-1"]
    no_columns = tmp_path / "bad.toml"
    no_columns.write_text('[data]\ndataset = "pima-diabetes"\nsites = 3\n')
    result = runner.invoke(app, ["server", "submit", str(no_columns), *common])
    assert result.exit_code != 0 and "data.columns" in str(result.exception)


def test_live_coordinator_on_each_database(db_url: str, tmp_path: Path, pki_dir: Path) -> None:
    from tests.server.conftest import start_live

    handle = start_live(tmp_path, pki_dir, db_url)
    try:
        study = _running(handle)
        good = {k: np.zeros_like(v) for k, v in model_params().items()}
        with handle.client(site="hospital-2") as site:
            body = _update(study, 1, good)
            headers = {"Idempotency-Key": "once", "Content-Type": "application/octet-stream"}
            url = f"/v1/site/studies/{study}/rounds/1/stages/fit"
            assert site.post(url, content=body, headers=headers).json()["duplicate"] is False
            assert site.post(url, content=body, headers=headers).json()["duplicate"] is True
    finally:
        handle.server.stop()


def test_cli_add_site_prints_a_one_time_token_and_needs_admin(live: Live) -> None:
    from typer.testing import CliRunner

    from tutela.cli.main import app

    runner = CliRunner()
    base = ["--coordinator", live.url, "--ca", str(live.ca)]
    result = runner.invoke(
        app, ["server", "add-site", "hospital-9", *base, "--token", live.tokens["admin"]]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("tte_") and len(token) > 20
    denied = runner.invoke(
        app, ["server", "add-site", "hospital-10", *base, "--token", live.tokens["auditor"]]
    )
    assert denied.exit_code != 0 and "403" in str(denied.exception)


def test_a_brief_study_status_carries_status_and_progress_only(live: Live) -> None:
    study = _running(live)
    with live.admin() as admin:
        full = admin.get(f"/v1/admin/studies/{study}").json()
        brief = admin.get(f"/v1/admin/studies/{study}", params={"brief": True}).json()
        assert brief == {
            k: full[k] for k in ("id", "status", "current_round", "total_rounds", "error")
        }
        assert brief["status"] == "running" and brief["current_round"] == 1
        assert admin.get("/v1/admin/studies/nope", params={"brief": True}).status_code == 404
    with live.client(site="hospital-1") as site:  # a site reads no study status, brief or not
        assert site.get(f"/v1/admin/studies/{study}", params={"brief": True}).status_code == 403
