"""End-to-end tests through the real ``tutela`` command (subprocesses)."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.cli.run import tutela

ROOT = Path(__file__).resolve().parents[2]


def test_version(tmp_path):
    r = tutela("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("tutela ")


def test_demo_quick_writes_results(tmp_path):
    r = tutela(
        "demo", "--quick", "--in-process", "--out", "results.json", "--run-dir", "run", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert "federated" in r.stdout and "centralised" in r.stdout and "local-only" in r.stdout
    res = json.loads((tmp_path / "results.json").read_text())
    assert {
        "dataset",
        "rounds",
        "history",
        "federated",
        "centralized",
        "local_only",
        "config",
    } <= set(res)
    assert set(res["dataset"]) >= {"name", "rows", "sites"}
    assert res["rounds"] == len(res["history"]) == 10
    assert {"loss", "accuracy", "auc"} <= set(res["history"][-1])
    for key in ("federated", "centralized", "local_only"):
        assert set(res[key]) == {"accuracy", "auc", "log_loss"}
    assert res["config"]["data"]["sites"] == 5
    assert (tmp_path / "run" / "results.json").exists()
    assert (tmp_path / "run" / "model.safetensors.enc").exists()
    assert (tmp_path / "run" / "audit.sqlite").exists()
    assert res["secure_aggregation"]["protocol"] == "secagg+"
    assert res["privacy"] is None
    assert "not differentially private" in " ".join(r.stdout.lower().split())
    assert res["config"]["data"]["columns"] == res["dataset"]["features"]
    # The key that signed the run's audit log is named, pinned in this user's trust store,
    # and both `audit verify` and `comply` accept the run under it.
    (signed,) = [line for line in r.stdout.splitlines() if line.startswith("audit log signed by")]
    vkey = signed.split()[-1]
    assert vkey in (tmp_path / ".tutela" / "trusted-audit-keys").read_text()
    assert f"pinned in {Path('.tutela') / 'trusted-audit-keys'}" in r.stdout
    signature = (tmp_path / "run" / "audit.checkpoint").read_text().split("\n\n")[1]
    assert signature.startswith("\u2014 " + vkey.split("+")[0] + " ")
    verify = tutela("audit", "verify", "run/audit.sqlite", cwd=tmp_path)
    assert verify.returncode == 0, verify.stderr
    assert "ok:" in verify.stdout and vkey.split("+")[0] in verify.stdout
    comply = tutela("comply", "run", cwd=tmp_path)
    assert "| audit-log-verified | pass |" in comply.stdout, comply.stdout


def test_study_run_from_toml(tmp_path):
    study = (
        (ROOT / "examples/healthcare/study.toml").read_text().replace("rounds = 30", "rounds = 3")
    )
    (tmp_path / "s.toml").write_text(study)
    r = tutela("study", "run", "s.toml", "--out", "o.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "o.json").read_text())["rounds"] == 3


def test_bad_study_is_one_line_and_nonzero(tmp_path):
    (tmp_path / "bad.toml").write_text("[data]\nsites = 0\n[training]\nfraction_fit = 2\n")
    r = tutela("study", "run", "bad.toml", cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.sites" in lines[0] and "training.fraction_fit" in lines[0]
    assert "Traceback" not in r.stderr
    r = tutela("study", "run", "missing.toml", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == "error: study file not found: missing.toml"


def test_datasets_list_json(tmp_path):
    r = tutela("datasets", "list", "--json", cwd=tmp_path)
    assert r.returncode == 0
    names = {d["name"]: d for d in json.loads(r.stdout)}
    assert names["pima-diabetes"]["rows"] == 532
    assert names["breast-cancer"]["rows"] == 569
    assert all({"rows", "features", "outcome", "source"} <= set(d) for d in names.values())


def test_demo_runs_through_the_real_coordinator_by_default(tmp_path):
    """Default demo: TLS coordinator on loopback, one site-agent process per hospital, SecAgg+;
    the run directory passes the compliance checks and matches the in-process result."""
    r = tutela("demo", "--rounds", "3", "--out", "net.json", "--run-dir", "net", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    net = json.loads((tmp_path / "net.json").read_text())
    assert net["deployment"]["sites_as_processes"] is True
    assert net["deployment"]["transport"].startswith("https")
    assert net["secure_aggregation"]["protocol"] == "secagg+"
    assert len(net["history"]) == 3
    r = tutela(
        "demo",
        "--rounds",
        "3",
        "--in-process",
        "--out",
        "local.json",
        "--run-dir",
        "local",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    local = json.loads((tmp_path / "local.json").read_text())
    bound = net["secure_aggregation"]["quantization_error_bound"]
    assert abs(net["federated"]["auc"] - local["federated"]["auc"]) < 1e-3 + bound
    r = tutela("comply", "net", "--framework", "gdpr", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_demo_over_network_with_dp_reports_every_site_spend(tmp_path):
    """Under SecAgg+ the site agents run DP-SGD with their own ledgers and report the spend."""
    r = tutela(
        "demo",
        "--rounds",
        "2",
        "--epsilon",
        "3",
        "--out",
        "dp.json",
        "--run-dir",
        "dp",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "dp.json").read_text())
    privacy = res["privacy"]
    assert privacy["mechanism"].startswith("DP-SGD")
    assert set(privacy["per_site"]) == {f"hospital-{i}" for i in range(1, 6)}
    assert all(0 < s["epsilon"] <= 3.0 for s in privacy["per_site"].values())
    assert 0 < privacy["epsilon"] <= 3.0


def test_model_hash_finds_a_module_in_the_working_directory(tmp_path):
    """The console script has no current directory on its path: ``model hash`` looks there
    (or in ``--path``) first, and prints the file it hashed."""
    script = Path(sys.executable).parent / "tutela"
    if not script.exists():
        script = Path(shutil.which("tutela") or "tutela")
    source = "import torch\n\ndef build():\n    return torch.nn.Linear(3, 1)\n"
    (tmp_path / "mymodel.py").write_text(source)
    expected = hashlib.sha256(source.encode()).hexdigest()

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), "model", "hash", *args], cwd=cwd,
                              capture_output=True, text=True, timeout=300, check=False)  # fmt: skip

    here = run("mymodel:build", cwd=tmp_path)
    assert here.returncode == 0, here.stderr
    assert here.stdout.split() == [expected, str(tmp_path / "mymodel.py")]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    there = run("mymodel:build", "--path", str(tmp_path), cwd=elsewhere)
    assert there.returncode == 0 and there.stdout.split()[0] == expected
    missing = run("mymodel:build", cwd=elsewhere)
    assert missing.returncode != 0
    assert "is not installed here" in missing.stderr and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
