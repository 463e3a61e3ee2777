"""In process, every simulated site enforces the run's site policy and signs what it enforced
and spent, so results.json has ``sites`` (and the keys the run gave its sites) on the
in-process path as on the network path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tutela.fl.recipes import flagship_config, flagship_policy, run_configured_study
from tutela.fl.study import run_study
from tutela.governance.audit import VerifierKey
from tutela.governance.comply import check_run
from tutela.governance.home import signing_key
from tutela.governance.site_report import verify_site_report


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTELA_HOME", str(tmp_path / "home"))
    for var in ("TUTELA_KEYRING", "TUTELA_PASSPHRASE", "TUTELA_KEYFILE"):
        monkeypatch.delenv(var, raising=False)


def test_each_site_signs_the_policy_it_enforced_and_its_own_ledger(tmp_path: Path) -> None:
    config = flagship_config(rounds=2, epsilon=3.0, sites=3)
    results = run_configured_study(config, run_dir=tmp_path / "run")
    assert results.sites is not None and results.site_keys is not None
    names = {f"hospital-{i}" for i in (1, 2, 3)}
    assert {r.site for r in results.sites} == set(results.site_keys) == names
    policy = flagship_policy().to_json()
    for report in results.sites:
        pinned = bytes.fromhex(results.site_keys[report.site])
        assert verify_site_report(report.model_dump(mode="json"), trusted_keys=[pinned])
        assert report.policy == policy
        ledger = report.ledger
        # the standardisation release, then 2 rounds
        assert ledger["scope"] == f"site:{report.site}" and len(ledger["spends"]) == 3
        assert results.privacy is not None
        site_spend = results.privacy.per_site[report.site].epsilon  # type: ignore[union-attr]
        assert ledger["spent_epsilon"] == pytest.approx(site_spend)
    checks = {r.id: r for r in check_run(tmp_path / "run", "gdpr").results}
    assert checks["site-reports-verified"].status.value == "pass"


def test_without_dp_the_sites_report_no_ledger_and_the_floor_holds(tmp_path: Path) -> None:
    results = run_configured_study(flagship_config(rounds=1, sites=3), run_dir=tmp_path / "run")
    assert results.sites is not None
    assert all(r.ledger == {"private": False} for r in results.sites)
    report = check_run(tmp_path / "run", "gdpr", audit_keys=[VerifierKey.of(signing_key())])
    checks = {r.id: r for r in report.results}
    assert checks["site-reports-verified"].status.value == "pass"
    assert checks["site-policy-floor"].status.value == "pass"
    assert report.passed, report.failed


def test_a_bare_engine_run_has_no_site_reports() -> None:
    run = run_study(flagship_config(rounds=1, sites=3), with_baselines=False)
    assert run.sites is None and run.site_keys is None
