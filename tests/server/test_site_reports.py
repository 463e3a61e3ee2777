"""Sites' signed reports at the coordinator: accepted only from the site they name and only
under the identity key that site registered at join, kept verbatim and once per content,
audited, and read back by people with the keys to verify them against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.server.conftest import Live, join_body, model_params, small_config
from tutela.errors import DataError, PermissionDenied
from tutela.fl.client import FeatureMoments
from tutela.fl.records import parameters_to_bytes
from tutela.governance.rbac import Role
from tutela.governance.site_report import sign_site_report, verify_site_report
from tutela.server.authz import Principal
from tutela.server.coordinator import Coordinator, DeploymentSettings, PayloadTooLargeError
from tutela.server.inbox import MAX_SITE_REPORT_BYTES
from tutela.server.sealing import open_sealer
from tutela.server.store import Store

ADMIN = Principal("alice", Role.ADMIN)
SITES = ("hospital-1", "hospital-2", "hospital-3")
POLICY = {"site": "x", "floor": {"dp_required": True, "max_epsilon": 2.0, "max_delta": 1e-5}}


def _identities() -> dict[str, Ed25519PrivateKey]:
    return {site: Ed25519PrivateKey.generate() for site in SITES}


def _public(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes_raw().hex()


def _report(site: str, key: Ed25519PrivateKey, spent: float = 0.5) -> dict[str, Any]:
    return sign_site_report(site, POLICY, {"private": True, "spent_epsilon": spent}, key)


def _body(report: dict[str, Any]) -> bytes:
    return json.dumps(report, sort_keys=True).encode()


def _joined(tmp_path: Path, keys: dict[str, Ed25519PrivateKey]) -> tuple[Coordinator, str]:
    """A recruiting study every site joined, each registering its identity key."""
    co = Coordinator(Store(f"sqlite:///{tmp_path / 'c.db'}", open_sealer(tmp_path / "keyring")))
    for site in SITES:
        co.activate_site(ADMIN, site)
    study = co.create_study(ADMIN, small_config(), DeploymentSettings(join_timeout_s=30))
    co.set_initial_model(ADMIN, study, parameters_to_bytes(model_params()))
    co.start(ADMIN, study)
    for site in SITES:
        moments = FeatureMoments(50, np.ones(7), np.full(7, 3.0))
        co.answer_invitation(
            site, study, accept=True, num_examples=50, moments=moments, identity=_public(keys[site])
        )
    return co, study


def test_a_report_is_kept_verbatim_once_per_content_and_audited(tmp_path: Path) -> None:
    keys = _identities()
    co, study = _joined(tmp_path, keys)
    first = _report("hospital-1", keys["hospital-1"])
    receipt = co.report_site("hospital-1", study, _body(first))
    again = co.report_site("hospital-1", study, _body(first))  # a resend after a lost reply
    assert not receipt.duplicate and again.duplicate and again.digest == receipt.digest
    later = _report("hospital-1", keys["hospital-1"], spent=0.9)  # after another round
    assert not co.report_site("hospital-1", study, _body(later)).duplicate
    with co.store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT report_json FROM site_reports")).scalars().all()
    assert stored == [_body(first).decode(), _body(later).decode()]

    read = co.site_reports(study)
    assert read["reports"] == [later]  # the latest report of each site, as the site sent it
    assert read["site_keys"] == {site: _public(keys[site]) for site in SITES}
    pinned = bytes.fromhex(read["site_keys"]["hospital-1"])
    assert verify_site_report(read["reports"][0], trusted_keys=[pinned])
    audited = [e for e in co.audit_events() if e["action"] == "site.report"]
    assert [e["actor"] for e in audited] == ["site:hospital-1", "site:hospital-1"]
    co.store.close()


def test_a_report_under_any_key_but_the_registered_one_is_refused(tmp_path: Path) -> None:
    keys = _identities()
    co, study = _joined(tmp_path, keys)
    # Re-signed by a fresh key: the signature holds for the key the report carries, but that
    # is not the key hospital-1 registered.
    fresh = _report("hospital-1", Ed25519PrivateKey.generate())
    assert verify_site_report(fresh)
    with pytest.raises(DataError, match="registered when it joined"):
        co.report_site("hospital-1", study, _body(fresh))
    # Loosened after signing, under the right key.
    tampered = _report("hospital-1", keys["hospital-1"])
    tampered["policy"] = {**tampered["policy"], "floor": {"dp_required": False}}
    with pytest.raises(DataError, match="registered when it joined"):
        co.report_site("hospital-1", study, _body(tampered))
    # Another site's genuine report, sent by hospital-1.
    theirs = _report("hospital-2", keys["hospital-2"])
    with pytest.raises(PermissionDenied, match="only report for itself"):
        co.report_site("hospital-1", study, _body(theirs))
    with pytest.raises(PermissionDenied, match="has not joined"):
        co.report_site("stranger", study, _body(_report("stranger", keys["hospital-1"])))
    with pytest.raises(DataError, match="JSON object"):
        co.report_site("hospital-1", study, b"[1, 2]")
    with pytest.raises(DataError, match="without NaN"):
        co.report_site("hospital-1", study, b'{"site": NaN}')
    with pytest.raises(PayloadTooLargeError):
        co.report_site("hospital-1", study, b" " * (MAX_SITE_REPORT_BYTES + 1))
    assert co.site_reports(study)["reports"] == []
    co.store.close()


def test_a_site_that_registered_no_identity_cannot_report(tmp_path: Path) -> None:
    co = Coordinator(Store(f"sqlite:///{tmp_path / 'c.db'}", open_sealer(tmp_path / "keyring")))
    for site in SITES:
        co.activate_site(ADMIN, site)
    study = co.create_study(ADMIN, small_config(), DeploymentSettings(join_timeout_s=30))
    co.set_initial_model(ADMIN, study, parameters_to_bytes(model_params()))
    co.start(ADMIN, study)
    moments = FeatureMoments(50, np.ones(7), np.full(7, 3.0))
    co.answer_invitation("hospital-1", study, accept=True, num_examples=50, moments=moments)
    report = _report("hospital-1", Ed25519PrivateKey.generate())
    with pytest.raises(PermissionDenied, match="registered no identity key"):
        co.report_site("hospital-1", study, _body(report))
    assert co.site_reports(study)["site_keys"] == {}
    co.store.close()


def test_reports_over_https_site_audience_in_and_people_out(live: Live) -> None:
    key = Ed25519PrivateKey.generate()
    study = live.new_study(join_timeout_s=30)
    with live.admin() as admin:
        assert admin.post(f"/v1/admin/studies/{study}/start").status_code == 200
    with live.client(site="hospital-1") as site:
        answer = {**join_body(), "identity": _public(key)}
        joined = site.post(f"/v1/site/studies/{study}/participation", json=answer)
        assert joined.status_code == 200, joined.text
        report = _report("hospital-1", key)
        url = f"/v1/site/studies/{study}/site-report"
        headers = {"Content-Type": "application/json"}
        r = site.post(url, content=_body(report), headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["stage"] == "site-report" and r.json()["duplicate"] is False
        assert site.post(url, content=_body(report), headers=headers).json()["duplicate"] is True
        stolen = site.post(
            url, content=_body(_report("hospital-1", Ed25519PrivateKey.generate())), headers=headers
        )
        assert stolen.status_code == 422 and "registered" in stolen.json()["detail"]
        other = site.post(url, content=_body(_report("hospital-2", key)), headers=headers)
        assert other.status_code == 403 and "only report for itself" in other.json()["detail"]
        malformed = site.post(url, content=b'{"site": "hospital-1"}', headers=headers)
        assert malformed.status_code == 422
        assert "malformed site report" in malformed.json()["detail"]
        # Sites send reports; they do not read the study's.
        assert site.get(f"/v1/admin/studies/{study}/site-reports").status_code == 403
    with live.client(Role.AUDITOR.value) as auditor:
        r = auditor.get(f"/v1/admin/studies/{study}/site-reports")
        assert r.status_code == 200, r.text
        assert r.json()["reports"] == [report]
        assert r.json()["site_keys"] == {"hospital-1": _public(key)}


def test_a_network_run_records_the_reports_the_coordinator_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real coordinator (agents on threads): results.json's ``sites`` are the
    reports the coordinator accepted (the agents write no file the runner could read), its
    ``site_keys`` are the keys the sites registered at join, and comply verifies each
    report under them."""
    from tutela.fl.recipes import flagship_config, run_configured_study
    from tutela.governance.audit import VerifierKey
    from tutela.governance.comply import check_run
    from tutela.governance.home import signing_key
    from tutela.server.agent import reports as agent_reports
    from tutela.server.deploy import run_study_over_network

    monkeypatch.setenv("TUTELA_HOME", str(tmp_path / "home"))
    for var in ("TUTELA_KEYRING", "TUTELA_PASSPHRASE", "TUTELA_KEYFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(agent_reports, "atomic_write", lambda _path, _data: None)

    def network(config: Any, deployment_dir: Path) -> Any:
        return run_study_over_network(
            config, deployment_dir, sites_as_processes=False, with_baselines=False
        )

    config = flagship_config(rounds=2, epsilon=3.0, sites=3)
    run_dir = tmp_path / "net"
    results = run_configured_study(config, run_dir=run_dir, network=network)
    assert not list((run_dir / "deployment" / "sites").glob("*/state/site-report-*.json"))
    names = {f"hospital-{i}" for i in (1, 2, 3)}
    assert results.sites is not None and {r.site for r in results.sites} == names
    assert results.site_keys is not None and set(results.site_keys) == names
    for report in results.sites:
        pinned = bytes.fromhex(results.site_keys[report.site])
        assert verify_site_report(report.model_dump(mode="json"), trusted_keys=[pinned])
        assert report.policy["floor"]["dp_required"] is True
        # the report after the last round: the standardisation release, then 2 rounds
        assert len(report.ledger["spends"]) == 3
    audit_keys = [VerifierKey.of(signing_key())]  # the run's audit key, pinned
    compliance = check_run(run_dir, "gdpr", audit_keys=audit_keys)
    checks = {r.id: r for r in compliance.results}
    verified = checks["site-reports-verified"]
    assert verified.status.value == "pass", verified.reason
    assert "registered at join" in verified.reason
    assert checks["site-policy-floor"].status.value == "pass"
    assert compliance.passed, compliance.failed
