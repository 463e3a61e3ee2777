"""Sites witness the coordinator's audit log over the real HTTPS API: they cosign its
checkpoints, the coordinator keeps the cosignatures, and a coordinator that rewrites,
truncates or re-keys its log gets no cosignature from a site that saw it before; that site
keeps the evidence and stops."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization

from tests.server.conftest import Live, small_config
from tutela.governance.audit import AuditLog, generate_signing_key
from tutela.governance.checkpoint import VerifierKey
from tutela.governance.minimisation import SitePolicy
from tutela.governance.trust import TrustStore
from tutela.governance.witness import (
    WitnessManifest,
    WitnessRefusal,
    load_cosigned,
    verify_witnessed,
    witness_name,
)
from tutela.server import pki
from tutela.server.agent import AgentSettings, SiteAgent
from tutela.server.agent.witness import SiteWitness
from tutela.server.authz import Role
from tutela.server.serve import (
    AUDIT_LOG,
    AUDIT_SIGNING_KEY,
    COSIGNED_DIR,
    BackgroundServer,
    ServerSettings,
    coordinator_verifier_key,
)

SITES = ("hospital-1", "hospital-2", "hospital-3")


def _witness(live: Live, site: str, state: Path) -> SiteWitness:
    client = live.client(site=site)
    return SiteWitness(
        lambda: client,
        site=site,
        state_dir=state / site,
        audit_key=coordinator_verifier_key(live.server.settings.data_dir),
    )


def test_sites_cosign_each_checkpoint_and_the_coordinator_keeps_the_cosignatures(
    live: Live, tmp_path: Path
) -> None:
    data_dir = live.server.settings.data_dir
    coordinator = live.server.coordinator
    assert coordinator is not None
    witnesses = [_witness(live, site, tmp_path) for site in SITES]
    for w in witnesses:
        assert w.witness_once() is not None
    coordinator.create_token(Role.AUDITOR, "carol", actor="alice")  # the log grows
    for w in witnesses:
        w.witness_once()  # checked with a consistency proof from the first checkpoint
    first = witnesses[0].witness
    assert first is not None and [cp.size for cp in first.cosigned()][-1] > 0
    assert len(first.cosigned()) == 2  # the site keeps its own copy of each
    cosigned = load_cosigned(data_dir / COSIGNED_DIR)
    assert len(cosigned) == 2
    assert [s.name for s in cosigned[-1].signatures][1:] == [witness_name(s) for s in SITES]
    trusted = [coordinator_verifier_key(data_dir), *(w.verifier_key for w in witnesses if w)]
    assert all(k is not None for k in trusted)
    keys = [k for k in trusted if k is not None]
    report, witnessed = verify_witnessed(data_dir / AUDIT_LOG, keys, cosigned, 3)
    assert report.ok, report.problem
    assert witnessed is not None and witnessed.ok, witnessed
    assert set(witnessed.witnesses) == {witness_name(s) for s in SITES}


def test_cosignatures_are_authenticated_bounded_and_under_the_sites_own_name(
    live: Live, tmp_path: Path
) -> None:
    w = _witness(live, "hospital-1", tmp_path)
    cos = w.witness_once()
    assert cos is not None and w.witness is not None
    latest = w.witness.latest
    assert latest is not None
    body = {"checkpoint": latest.body(), "cosignature": cos.line().rstrip("\n")}
    with live.client(site="hospital-2") as other:
        r = other.post("/v1/site/audit/cosignature", json=body)  # hospital-1's line
    assert r.status_code == 422 and "tutela.witness/hospital-2" in r.json()["detail"]
    with live.client(site="hospital-1") as own:
        unissued = {**body, "checkpoint": latest.body().replace("\n", "0\n", 1)}
        assert own.post("/v1/site/audit/cosignature", json=unissued).status_code == 404
        big = {**body, "cosignature": "x" * 20_000}
        assert own.post("/v1/site/audit/cosignature", json=big).status_code == 413
        assert own.post("/v1/site/audit/cosignature", json={"x": 1}).status_code == 422
        assert own.get("/v1/site/audit/checkpoint", params={"from_size": -1}).status_code == 422
    with live.client() as anonymous:
        assert anonymous.get("/v1/site/audit/checkpoint").status_code == 401
        assert anonymous.post("/v1/site/audit/cosignature", json=body).status_code == 401
    with live.admin() as admin:  # an admin token is no site
        assert admin.get("/v1/site/audit/checkpoint").status_code == 403


# the cheating coordinator ------------------------------------------------------------------


def _rewrite(data_dir: Path, keep: int, forged: int) -> None:
    """Keep the log's first ``keep`` records (its origin too), add ``forged`` made-up ones with
    every hash recomputed, and delete every checkpoint: a consistent, smaller or different
    history that the coordinator's own key will sign."""
    path = data_dir / AUDIT_LOG
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[: 1 + keep]), encoding="utf-8")
    path.with_name(path.name + ".checkpoints").unlink()
    with AuditLog.open(path) as log:
        for i in range(forged):
            log.append("coordinator", "round.close", f"forged-{i}", "ok", {})


def _swap_key(data_dir: Path) -> None:
    (data_dir / AUDIT_SIGNING_KEY).unlink()
    generate_signing_key(data_dir / AUDIT_SIGNING_KEY)


CHEATS: dict[str, tuple[Callable[[Path, int], None], str]] = {
    "rewritten": (lambda d, n: _rewrite(d, n - 3, 5), "rewritten"),
    "truncated": (lambda d, n: _rewrite(d, n - 3, 0), "shrank"),
    "re-keyed": (lambda d, n: _swap_key(d), "not signed by the pinned audit key"),
}


def _agent(tmp_path: Path, pki_dir: Path, url: str, audit_key: VerifierKey) -> SiteAgent:
    rng = np.random.default_rng(0)
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "data.csv"
    pd.DataFrame({"glucose": rng.normal(120, 30, 32), "outcome": rng.integers(0, 2, 32)}).to_csv(
        data, index=False
    )
    (tmp_path / "policy.toml").write_text('[purposes.p]\ncolumns = ["glucose"]\n')
    paths = pki.PkiLayout(pki_dir).site("hospital-1")
    settings = AgentSettings(
        url,
        pki.PkiLayout(pki_dir).ca.cert,
        paths.cert,
        paths.key,
        data,
        SitePolicy.from_toml(tmp_path / "policy.toml"),
        state_dir=tmp_path / "state",
        max_runtime_s=20.0,
        exit_when_done=False,
    )
    return SiteAgent(settings, name="hospital-1", audit_key=audit_key)


@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_a_coordinator_that_rewrites_truncates_or_rekeys_its_log_gets_no_cosignature(
    tmp_path: Path, pki_dir: Path, cheat: str
) -> None:
    from tests.server.conftest import start_live

    live = start_live(tmp_path, pki_dir)
    data_dir = live.server.settings.data_dir
    key = coordinator_verifier_key(data_dir)
    agent = _agent(tmp_path / "site", pki_dir, live.url, key)
    other = _witness(live, "hospital-2", tmp_path / "other")
    try:
        assert agent.witness_checks()
        assert other.witness_once() is not None
        seen = agent.witness.witness
        assert seen is not None and seen.latest is not None
        size = seen.latest.size
    finally:
        live.server.stop()
    assert size >= 5
    attack, words = CHEATS[cheat]
    attack(data_dir, size)
    again = BackgroundServer(
        ServerSettings(data_dir, pki_dir, port=live.server.port, tick_interval=0.05)
    ).start()
    try:
        assert again.coordinator is not None
        again.coordinator.create_token(Role.AUDITOR, "mallory", actor="admin")  # it goes on
        summary = agent.run()  # its first poll has news: it witnesses, refuses and stops
        assert summary["witness_refused"] is not None and words in summary["witness_refused"]
        assert agent.witness_refused == summary["witness_refused"]
        evidence = list((tmp_path / "site" / "state" / "witness" / "evidence").glob("*.json"))
        assert len(evidence) == 1
        recorded = json.loads(evidence[0].read_text())
        assert recorded["previous"] == seen.latest.encode()  # what it cosigned before
        assert not agent.witness_checks()  # it takes no further part
        # the other site, which saw the honest log, refuses too
        ctx = ssl.create_default_context(cafile=str(pki.PkiLayout(pki_dir).ca.cert))
        site2 = pki.PkiLayout(pki_dir).site("hospital-2")
        ctx.load_cert_chain(site2.cert, site2.key)
        with httpx.Client(base_url=again.url, verify=ctx) as client:
            other.client = lambda: client
            with pytest.raises(WitnessRefusal, match=words):
                other.witness_once()
        # and no cosignature of the cheating checkpoint reached the coordinator
        cosigned = load_cosigned(data_dir / COSIGNED_DIR)
        assert all(cp.size == size for cp in cosigned)
    finally:
        agent.transport.close()
        again.stop()


# the real deployment ------------------------------------------------------------------------


def test_the_network_deployment_leaves_cosignatures_that_audit_verify_accepts(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from tutela.cli.main import app
    from tutela.server.deploy import run_study_over_network

    results = run_study_over_network(
        small_config(), tmp_path / "run", sites_as_processes=False, with_baselines=False
    )
    witnesses = results["deployment"]["witnesses"]
    found = WitnessManifest.find(tmp_path / "run")
    assert found is not None
    directory, manifest = found
    assert len(manifest.witnesses) == 3 == len(witnesses["keys"])
    assert manifest.audit_key == coordinator_verifier_key(directory / "coordinator").encode()
    # the auditor pins the audit key and the three witness keys (compared out of band)
    store = tmp_path / "trusted"
    TrustStore(
        store, tuple(VerifierKey.parse(k) for k in (manifest.audit_key, *manifest.witnesses))
    ).save()
    log = directory / manifest.log
    cosigned = directory / manifest.cosigned
    args = ["audit", "verify", str(log), "--trust-store", str(store), "--witnesses", str(cosigned)]
    result = CliRunner().invoke(app, [*args, "--witness-quorum", "3"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "witnesses: 3 of 3 required" in result.output
    # each site kept its own copy of the checkpoint covering the whole log
    final = max(load_cosigned(cosigned), key=lambda cp: cp.size)
    for site in SITES:
        kept = load_cosigned(directory / "sites" / site / "state" / "witness" / "cosigned")
        assert kept[-1].body() == final.body()
    # a fourth witness nobody has cannot be asked for
    short = CliRunner().invoke(app, [*args, "--witness-quorum", "4"])
    assert short.exit_code != 0 and "quorum not met" in str(short.exception)


# the audit key, pinned once ----------------------------------------------------------------


def test_a_site_pins_the_ca_certified_audit_key_once_and_refuses_a_later_swap(
    tmp_path: Path, pki_dir: Path
) -> None:
    from tests.server.conftest import start_live
    from tutela.errors import ConfigError
    from tutela.server.audit_key import AUDIT_KEY_CERT, certify_audit_key, verify_audit_certificate

    ca = pki.load_cert(pki.PkiLayout(pki_dir).ca.cert)
    live = start_live(tmp_path, pki_dir)
    data_dir = live.server.settings.data_dir
    client = live.client(site="hospital-1")
    w = SiteWitness(
        lambda: client, site="hospital-1", state_dir=tmp_path / "site", audit_key=None, ca=ca
    )
    try:
        assert w.witness is None and w.enabled
        assert w.witness_once() is not None  # pinned the key the CA certified, then cosigned
        assert w.witness is not None
        assert w.witness.pinned == coordinator_verifier_key(data_dir)
        # what is not an audit key certificate by this CA is refused
        other_ca = tmp_path / "other-ca"
        pki.init_ca(other_ca)
        foreign = certify_audit_key(*pki.load_ca(other_ca), generate_signing_key())
        with pytest.raises(ConfigError, match="not issued by the deployment CA"):
            verify_audit_certificate(foreign.public_bytes(serialization.Encoding.PEM), ca)
        site_cert = pki.PkiLayout(pki_dir).site("hospital-2").cert.read_bytes()
        with pytest.raises(ConfigError, match="Ed25519"):
            verify_audit_certificate(site_cert, ca)
    finally:
        client.close()
        live.server.stop()
    # the coordinator swaps its key and has the same CA certify the new one
    _swap_key(data_dir)
    again = BackgroundServer(
        ServerSettings(data_dir, pki_dir, port=live.server.port, tick_interval=0.05)
    ).start()
    try:
        new_key = verify_audit_certificate((data_dir / AUDIT_KEY_CERT).read_bytes(), ca)
        assert new_key == coordinator_verifier_key(data_dir) != w.witness.pinned
        assert again.coordinator is not None
        again.coordinator.create_token(Role.AUDITOR, "mallory", actor="admin")
        with live.client(site="hospital-1") as fresh:
            w.client = lambda: fresh
            with pytest.raises(WitnessRefusal, match="not signed by the pinned audit key"):
                w.witness_once()
    finally:
        again.stop()
