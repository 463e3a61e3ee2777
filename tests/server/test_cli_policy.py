"""CLI commands of the deployment (in process and as a real subprocess) and site policies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.server.helpers import serve_https
from tutela.cli.main import app
from tutela.errors import ConfigError, PolicyViolation
from tutela.fl.config import parse_study
from tutela.fl.recipes import study_request
from tutela.governance.minimisation import SitePolicy, StudyRequest
from tutela.server import pki

runner = CliRunner()

STUDY: dict[str, Any] = {
    "study": {"purpose": "disease-outcome-prediction"},
    "privacy": {"mode": "sample", "epsilon": 4.0, "delta": 1e-5},
    "secure_aggregation": {"protocol": "secagg+"},
}


def test_pki_init_issue_and_doctor_via_cli(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    result = runner.invoke(app, ["pki", "init", "--dir", str(d)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["pki", "issue", "--dir", str(d), "--server", "--san", "coord.example"]
    )
    assert result.exit_code == 0, result.output
    assert set(pki.san_names(pki.load_cert(d / "server.pem"))) == {
        "localhost",
        "coord.example",
        "127.0.0.1",
        "::1",
    }
    result = runner.invoke(app, ["pki", "issue", "--dir", str(d), "--site", "hospital-7"])
    assert result.exit_code == 0 and (d / "sites" / "hospital-7.pem").exists()
    result = runner.invoke(app, ["pki", "issue", "--dir", str(d)])
    assert result.exit_code != 0  # neither --server nor --site: a usage error
    with serve_https(d / "server.pem", d / "server.key") as port:
        ok = runner.invoke(app, ["doctor", f"https://127.0.0.1:{port}", "--ca", str(d / "ca.pem")])
        bad = runner.invoke(app, ["doctor", f"http://127.0.0.1:{port}"])
    assert ok.exit_code == 0 and "ok: TLS OK" in ok.output
    assert bad.exit_code == 1 and "problem (tls-server-plain-url)" in bad.output


def test_cli_errors_are_one_line_in_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tutela",
            "pki",
            "issue",
            "--dir",
            str(tmp_path / "none"),
            "--server",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: no CA in {tmp_path / 'none'}: "
        f"run `tutela pki init --dir {tmp_path / 'none'}` first"
    ]


def _policy(text: str, tmp_path: Path) -> SitePolicy:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return SitePolicy.from_toml(path)


def _request(columns: list[str], **sections: dict[str, Any]) -> StudyRequest:
    return study_request(parse_study({**STUDY, **sections}), columns)


def test_policy_accepts_a_study_within_its_floor(tmp_path: Path) -> None:
    policy = _policy(
        'never_share = ["name"]\n[floor]\nmax_epsilon = 8\n'
        '[purposes.disease-outcome-prediction]\ncolumns = ["glucose", "bmi", "name"]\n',
        tmp_path,
    )
    decision = policy.evaluate(_request(["glucose", "bmi"]))
    assert decision.allowed, decision.reasons
    assert policy.allowed_columns("disease-outcome-prediction") == {"glucose", "bmi", "name"}
    assert policy.never_leaves("name") == "on the site's never-share list"
    # A column the purpose lists but that never leaves is refused.
    with pytest.raises(PolicyViolation, match="'name'"):
        policy.evaluate(_request(["glucose", "name"])).raise_if_denied()


def test_policy_refuses_weaker_studies_with_every_reason(tmp_path: Path) -> None:
    policy = _policy(
        "[floor]\nmax_epsilon = 2\nmax_delta = 1e-6\n"
        '[purposes.disease-outcome-prediction]\ncolumns = ["glucose"]\n',
        tmp_path,
    )
    reasons = policy.evaluate(_request(["glucose", "age"])).reasons
    assert any("'age'" in r for r in reasons)
    assert any("epsilon 4.0 exceeds" in r for r in reasons)
    assert any("delta 1e-05 exceeds" in r for r in reasons)
    reasons = policy.evaluate(
        _request(["glucose"], privacy={"mode": "none"}, secure_aggregation={"protocol": "none"})
    ).reasons
    assert any("differential privacy is required" in r for r in reasons)
    assert any("secure aggregation is required" in r for r in reasons)
    other = policy.evaluate(_request(["glucose"], study={"purpose": "marketing"}))
    assert other.reasons[0] == (
        "purpose 'marketing' is not accepted by this site (accepted: disease-outcome-prediction)"
    )


def test_policy_file_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_epsilon must be a positive"):
        _policy("[floor]\nmax_epsilon = -1\n", tmp_path)
    with pytest.raises(ConfigError, match=r"unknown key floor\.allow_everything"):
        _policy("[floor]\nallow_everything = true\n", tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        SitePolicy.from_toml(tmp_path / "missing.toml")


def test_agent_applies_dp_sgd_itself_when_the_study_asks(tmp_path: Path) -> None:
    """The site agent, not the study's code, adds the noise: it builds DP-SGD with its own
    ledger from the study's privacy section, and refuses modes it cannot enforce."""
    from functools import partial

    import numpy as np
    import pandas as pd

    from tutela.server.agent import AgentSettings, SiteAgent
    from tutela.server.agent.privacy import sample_level

    data = tmp_path / "data.csv"
    frame = pd.DataFrame(
        {"glucose": np.arange(40.0), "bmi": np.arange(40.0), "outcome": [0, 1] * 20}
    )
    frame.to_csv(data, index=False)
    policy = _policy(
        '[purposes.disease-outcome-prediction]\ncolumns = ["glucose", "bmi"]\n', tmp_path
    )
    d = tmp_path / "pki"
    pki.init_ca(d)
    site = pki.issue_to_files(d, kind="site", name="hospital-1")
    settings = AgentSettings(
        "https://127.0.0.1:9",
        d / "ca.pem",
        site.cert,
        site.key,
        data,
        policy,
        state_dir=tmp_path / "state",
    )
    agent = SiteAgent(settings, name="hospital-1")
    config = {
        "study": {"name": "s", "purpose": "disease-outcome-prediction"},
        "privacy": {
            "mode": "sample",
            "epsilon": 3.0,
            "delta": 1e-5,
            "max_grad_norm": 1.0,
            "accountant": "rdp",
        },
        "training": {"rounds": 1, "local_epochs": 1, "batch_size": 16},
    }
    site_dp = partial(
        sample_level, site=agent.name, policy=agent.settings.policy, state_dir=agent.state_dir
    )
    hook, dp = site_dp("study-1", config, 40)
    assert hook is not None and dp is not None and dp.noise_multipliers["hospital-1"] > 0.5
    assert (tmp_path / "state" / "ledger-study-1.sqlite").exists()
    none = {**config, "privacy": {"mode": "none"}}
    assert site_dp("study-1", none, 40) == (None, None)
    # client-level DP is the site's SiteClientDP, not DP-SGD: no DP-SGD hook for it
    client = {**config, "privacy": {**config["privacy"], "mode": "client"}}
    assert site_dp("study-1", client, 40) == (None, None)
    telepathy = {**config, "privacy": {**config["privacy"], "mode": "telepathy"}}
    with pytest.raises(PolicyViolation, match="not supported"):
        site_dp("study-1", telepathy, 40)
    agent.transport.close()
