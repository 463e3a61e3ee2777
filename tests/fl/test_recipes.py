"""The composed study run: policy, minimisation, SecAgg+, audit, encryption at rest."""

import json

import numpy as np
import pytest

from tutela.errors import IntegrityError, PolicyViolation
from tutela.fl.privacy import SecureAggregator, max_abs_difference
from tutela.fl.recipes import flagship_config, flagship_policy, run_configured_study
from tutela.fl.records import parameters_from_bytes
from tutela.fl.study import run_study
from tutela.fl.summary import summarise
from tutela.governance.audit import AuditLog, VerifierKey
from tutela.governance.comply import check_run
from tutela.governance.envelope import Envelope
from tutela.governance.home import open_keyring, signing_key
from tutela.governance.minimisation import SitePolicy
from tutela.governance.results import (
    CkksReport,
    SampleLevelPrivacy,
    SecAggPlusReport,
    committed_schema,
    load_results,
)
from tutela.secagg import DropoutPlan, SecAggConfig


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTELA_HOME", str(tmp_path / "home"))
    for var in ("TUTELA_KEYRING", "TUTELA_PASSPHRASE", "TUTELA_KEYFILE"):
        monkeypatch.delenv(var, raising=False)


def test_run_directory_is_complete_and_compliant(tmp_path):
    run = tmp_path / "run"
    res = run_configured_study(flagship_config(rounds=3), run_dir=run)
    on_disk = json.loads((run / "results.json").read_text())
    assert on_disk["governance"]["minimisation"]["kept"] == res.dataset.features
    assert on_disk["secure_aggregation"]["protocol"] == "secagg+"
    assert on_disk["run_dir"] == str(run) and on_disk["privacy"] is None
    # What was written is what was returned, and it validates against the published schema.
    assert load_results(run / "results.json") == res
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    jsonschema_rs.validator_for(committed_schema()).validate(on_disk)
    # The model is stored encrypted and decrypts only with the keyring, under its own name.
    blob = (run / "model.safetensors.enc").read_bytes()
    params = parameters_from_bytes(
        Envelope(open_keyring()).decrypt(blob, name="model.safetensors.enc")
    )
    assert set(params) == {"0.weight", "0.bias"}
    with pytest.raises(IntegrityError):
        Envelope(open_keyring()).decrypt(blob, name="other.enc")
    # Every round is in the audit log, which a checkpoint signed by the home key covers.
    log = AuditLog.open_existing(run / "audit.sqlite")
    actions = [r.action for r in log.records()]
    assert actions.count("round:complete") == 3
    assert actions[0] == "study:start" and actions[-1] == "study:complete"
    pinned = [VerifierKey.of(signing_key())]
    assert log.verify(pinned).ok
    log.close()
    for framework in ("gdpr", "hipaa", "ccpa"):
        assert check_run(run, framework, audit_keys=pinned).passed, framework
    assert "audit-log-verified" in check_run(run, "gdpr", audit_keys=[]).failed


def test_policy_refusal_is_audited_and_stops_the_study(tmp_path):
    run = tmp_path / "run"
    strict = SitePolicy.from_mapping(
        {
            "purposes": {"disease-outcome-prediction": {"columns": ["glucose", "bmi"]}},
            "floor": {"dp_required": True, "secure_aggregation_required": True},
        }
    )
    with pytest.raises(PolicyViolation, match="site policy refuses"):
        run_configured_study(flagship_config(rounds=2), run_dir=run, policy=strict)
    log = AuditLog.open_existing(run / "audit.sqlite")
    refused = [r for r in log.records() if r.action == "study:refused"]
    assert len(refused) == 1 and refused[0].outcome == "denied"
    log.close()
    assert not (run / "results.json").exists()


def test_study_without_secure_aggregation_is_refused_by_flagship_policy(tmp_path):
    with pytest.raises(PolicyViolation, match="secure aggregation"):
        run_configured_study(
            flagship_config(rounds=2, secure_aggregation=False), policy=flagship_policy()
        )


def test_identifier_column_never_leaves(tmp_path):
    cfg = flagship_config(rounds=2, dataset="synthetic-ehr").with_overrides(
        data={"rows": 400, "columns": ["age", "bmi", "zip"]}
    )
    with pytest.raises(PolicyViolation):
        run_configured_study(cfg, run_dir=tmp_path / "run")


def test_secure_aggregation_matches_plain_within_quantisation():
    cfg = flagship_config(rounds=4, secure_aggregation=False)
    plain = run_study(cfg, with_baselines=False)
    agg = SecureAggregator(SecAggConfig())
    secure = run_study(cfg, with_baselines=False, aggregator=agg)
    assert secure.secure_aggregation is not None
    bound = secure.secure_aggregation["quantization_error_bound"]
    assert max_abs_difference(plain.final_parameters, secure.final_parameters) < 50 * bound
    assert secure.secure_aggregation["rounds"] == 4


def test_secure_aggregation_survives_a_dropout_mid_protocol():
    cfg = flagship_config(rounds=2, secure_aggregation=False)
    agg = SecureAggregator(
        SecAggConfig(dropout_tolerance=0.3), dropouts={1: DropoutPlan.at("masked_input", [2])}
    )
    res = run_study(cfg, with_baselines=False, aggregator=agg)
    rep = summarise(cfg, res, privacy=None).secure_aggregation
    assert isinstance(rep, SecAggPlusReport) and rep.per_round is not None
    assert rep.dropped_per_stage["masked_input"] == 1
    assert rep.per_round[0].survivors == 4
    assert np.isfinite(res.federated["auc"])


def test_ckks_aggregation_matches_plain_and_passes_compliance(tmp_path):
    """Updates travel as CKKS ciphertexts; the coordinator adds them with a public context
    only, and the result matches plain averaging within the stated approximation bound."""
    plain = run_study(flagship_config(rounds=2, secure_aggregation=False), with_baselines=False)
    cfg = flagship_config(rounds=2).with_overrides(secure_aggregation={"protocol": "ckks"})
    run = tmp_path / "run"
    res = run_configured_study(cfg, run_dir=run)
    report = res.secure_aggregation
    assert isinstance(report, CkksReport) and report.coordinator_holds_secret_key is False
    assert report.n == 5 and report.rounds == 2
    params = parameters_from_bytes(
        Envelope(open_keyring()).decrypt(
            (run / "model.safetensors.enc").read_bytes(), name="model.safetensors.enc"
        )
    )
    # Two rounds: each mean is within the bound, and the second round starts from the first.
    assert max_abs_difference(plain.final_parameters, params) < 1e-3
    assert check_run(run, "gdpr", audit_keys=[VerifierKey.of(signing_key())]).passed


def test_ckks_tampered_contribution_is_detected():
    from tutela.errors import IntegrityError
    from tutela.fl.ckks import CkksAggregator, ckks_round_id

    agg = CkksAggregator.ceremony()
    round_1, round_2 = ckks_round_id("s", 1), ckks_round_id("s", 2)
    sites = [agg.site(f"hospital-{i}") for i in range(2)]
    honest = [site.encrypt(np.ones(4), round_1) for site in sites]
    weights = {site.name: 1.0 for site in sites}
    blob = bytearray(honest[0])
    blob[len(blob) // 2] ^= 0xFF
    payloads = {sites[0].name: bytes(blob), sites[1].name: honest[1]}
    with pytest.raises(IntegrityError):
        sites[0].decrypt_mean(agg.coordinator.aggregate(payloads, weights), round_1, weights)
    # Contributions replayed into another round fail the keyed check too.
    honest_payloads = {site.name: c for site, c in zip(sites, honest, strict=True)}
    with pytest.raises(IntegrityError):
        sites[1].decrypt_mean(agg.coordinator.aggregate(honest_payloads, weights), round_2, weights)


def _keys(value):
    """The key structure of a results document (keys of every mapping, first list item)."""
    if isinstance(value, dict):
        return {k: _keys(v) for k, v in value.items()}
    if isinstance(value, list) and value:
        return [_keys(value[0])]
    return None


def _same_keys(a, b, where="results"):
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), f"{where}: {sorted(set(a) ^ set(b))}"
        for key in a:
            _same_keys(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and a and b:
        _same_keys(a[0], b[0], f"{where}[0]")


def test_network_and_in_process_runs_write_the_same_results(tmp_path):
    """The same DP study through the coordinator (site agents on threads) and in process:
    both results.json files validate and have the same keys in every section both fill."""
    from tutela.server.deploy import run_study_over_network

    def network(config, deployment_dir):
        return run_study_over_network(
            config, deployment_dir, sites_as_processes=False, with_baselines=False
        )

    config = flagship_config(rounds=2, epsilon=3.0)
    net = run_configured_study(config, run_dir=tmp_path / "net", network=network)
    local = run_configured_study(config, run_dir=tmp_path / "local")
    docs = {}
    for name, res in (("net", net), ("local", local)):
        assert load_results(tmp_path / name / "results.json") == res
        docs[name] = json.loads((tmp_path / name / "results.json").read_text())
    assert docs["net"]["deployment"] is not None and docs["local"]["deployment"] is None
    for doc in docs.values():
        doc.pop("deployment")
    _same_keys(_keys(docs["net"]), _keys(docs["local"]))
    assert isinstance(net.secure_aggregation, SecAggPlusReport)
    assert net.secure_aggregation.rounds == 2
    assert set(net.secure_aggregation.dropped_per_stage) == {
        "advertise_keys",
        "share_keys",
        "masked_input",
        "consistency_check",
        "unmask",
    }
    assert [h.status for h in net.history] == [h.status for h in local.history]
    assert isinstance(net.privacy, SampleLevelPrivacy)
    assert set(net.privacy.per_site) == {f"hospital-{i}" for i in range(1, 6)}
    report = check_run(tmp_path / "net", "gdpr", audit_keys=[VerifierKey.of(signing_key())])
    assert report.passed, [r for r in report.results if r.id in report.failed]
