"""``tutela demo --secure-aggregation ckks``: CKKS over the network, valid results that say
who can decrypt what."""

import stat
import time

from tests.cli.run import tutela
from tutela.governance.results import CkksReport, RunResults


def test_demo_with_ckks_runs_over_the_network_and_validates(tmp_path):
    started = time.monotonic()
    r = tutela(
        "demo", "--secure-aggregation", "ckks", "--quick",
        "--out", "ckks.json", "--run-dir", "run",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr[-3000:]
    results = RunResults.model_validate_json((tmp_path / "ckks.json").read_text())
    assert results.deployment is not None and results.deployment.sites_as_processes is True
    report = results.secure_aggregation
    assert isinstance(report, CkksReport)
    assert report.rounds == 10 and report.n == 5
    assert report.coordinator_holds_secret_key is False
    assert report.min_contributions_to_decrypt == 3
    holders = {h.party: h for h in report.key_holders or []}
    assert holders["coordinator"].can_decrypt == "nothing"
    assert "keyring" in holders["sites"].holds
    assert all(h.status.value == "aggregated" for h in results.history)
    # Each hospital's keyring is a private file in its own state directory; the
    # coordinator's directory holds none.
    sites = tmp_path / "run" / "deployment" / "sites"
    keyrings = sorted(sites.glob("*/state/ckks-keyring.key"))
    assert len(keyrings) == 5
    assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keyrings)
    secret = keyrings[0].read_bytes()[-256:]  # inside the serialised secret key
    coordinator = tmp_path / "run" / "deployment" / "coordinator"
    for path in coordinator.rglob("*"):
        assert not path.is_file() or secret not in path.read_bytes(), path
    print(f"demo --secure-aggregation ckks --quick: {elapsed:.1f} s, "
          f"AUC {results.federated.auc:.4f}, error bound {report.approximation_error_bound:.2g}, "
          f"{report.bytes_per_contribution} bytes per contribution")  # fmt: skip
