"""Custom models in deployment: a site runs only the model code its policy allow-lists.

A study names its model by an importable factory and the SHA-256 of the factory's module
source (:class:`~tutela.fl.config.ModelSection`); each site allow-lists ``(factory, sha256)``
pairs (``[[models]]`` in its policy). These tests play the parties that would break that:

- a study naming a factory, or a hash, the site never allow-listed (refused, reason named);
- a site whose installed module is not the source the study hashed (a tampered or different
  install): refused before the module is imported, so none of its code runs;
- a coordinator announcing an initial model whose parameter names or shapes differ from what
  the allow-listed factory builds: refused at join, before any training;
- the coordinator never imports the model's module: a real deployment, the coordinator in
  this process and each site agent its own process, with the module on the agents' path
  only.

The site agents in the first three are the real :class:`SiteAgent` answering a coordinator
held in memory behind httpx's mock transport (as in ``test_agent_policy.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tutela.fl.config import parse_study
from tutela.fl.models import get_parameters, parameter_spec
from tutela.fl.records import parameters_from_bytes
from tutela.governance.minimisation import SitePolicy
from tutela.server import pki
from tutela.server.agent import AgentSettings, SiteAgent
from tutela.server.serve import BackgroundServer, ServerSettings
from tutela.server.tls import client_context

NAME = "hospital-1"
PURPOSE = "readmission-risk"
MODEL_SOURCE = '''"""A clinic's model (test module)."""
from pathlib import Path

from torch import nn

MARKER = Path(__file__).with_suffix(".imported")
MARKER.write_text("imported")  # proof that this module's code ran


def build(n_features: int, hidden: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, 1))
'''


def _module(root: Path, source: str = MODEL_SOURCE) -> tuple[str, Path]:
    """Write a uniquely named model module under ``root``; its name and path."""
    name = f"clinic_model_{uuid.uuid4().hex[:12]}"
    path = root / f"{name}.py"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return name, path


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _policy(models: list[tuple[str, str]]) -> str:
    entries = "".join(f'\n[[models]]\nfactory = "{f}"\nsha256 = "{h}"\n' for f, h in models)
    return (
        f'[purposes.{PURPOSE}]\ncolumns = ["age", "bmi", "sex"]\n\n'
        "[floor]\ndp_required = false\nsecure_aggregation_required = false\n" + entries
    )


def _study(factory: str, digest: str, **data: Any) -> dict[str, Any]:
    return {
        "study": {"name": "custom", "purpose": PURPOSE, "seed": 0},
        "data": {
            "dataset": None,
            "sites": 2,
            "outcome": "readmitted",
            "numeric": ["age", "bmi"],
            "categorical": ["sex"],
            "categories": {"sex": ["F", "M"]},
            "feature_bounds": {"age": [0, 120], "bmi": [10, 70]},
            **data,
        },
        "model": {"factory": factory, "source_sha256": digest, "options": {"hidden": 4}},
        "training": {"rounds": 1, "local_epochs": 1, "min_fit_sites": 2, "min_quorum": 2},
        "secure_aggregation": {"protocol": "none"},
    }


def _table(path: Path, rows: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 90, rows)
    pd.DataFrame(
        {
            "name": [f"patient {seed}-{i}" for i in range(rows)],
            "age": age,
            "bmi": rng.normal(28, 5, rows).round(1),
            "sex": rng.choice(["F", "M"], rows),
            "readmitted": (rng.random(rows) < (age - 20) / 80).astype(int),
        }
    ).to_csv(path, index=False)
    return path


class _Coordinator:
    """Answers the site API from memory; records the site's answers."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            path = request.url.path
            body = json.loads(request.content) if path.endswith("/participation") else None
            self.sent.append((path, body))
            return httpx.Response(200, json={})
        return httpx.Response(404, json={"detail": "not here"})

    def answers(self) -> list[dict[str, Any]]:
        return [b for p, b in self.sent if p.endswith("/participation")]


@pytest.fixture
def code_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on this process's import path holding the site's installed model code."""
    root = tmp_path / "site-code"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


def _agent(tmp_path: Path, policy: str) -> tuple[SiteAgent, _Coordinator]:
    (tmp_path / "policy.toml").write_text(policy)
    d = tmp_path / "pki"
    pki.init_ca(d)
    paths = pki.issue_to_files(d, kind="site", name=NAME)
    settings = AgentSettings(
        "https://coordinator.test",
        d / "ca.pem",
        paths.cert,
        paths.key,
        _table(tmp_path / "data.csv", 60, 1),
        SitePolicy.from_toml(tmp_path / "policy.toml"),
        state_dir=tmp_path / "state",
        outcome="readmitted",
    )
    agent = SiteAgent(settings, name=NAME)
    fake = _Coordinator()
    agent.transport.close()
    agent.transport.client = httpx.Client(
        base_url=settings.coordinator, transport=httpx.MockTransport(fake)
    )
    return agent, fake


@pytest.fixture
def agent_for(tmp_path: Path) -> Iterator[Any]:
    made: list[SiteAgent] = []

    def make(policy: str) -> tuple[SiteAgent, _Coordinator]:
        agent, fake = _agent(tmp_path, policy)
        made.append(agent)
        return agent, fake

    yield make
    for agent in made:
        agent.transport.close()


def _join(agent: SiteAgent, config: dict[str, Any], study_id: str, **task: Any) -> None:
    resolved = parse_study(config).resolved()
    agent.handle(
        {
            "kind": "join",
            "study_id": study_id,
            "config": resolved,
            "deadline": time.time() + 30,
            **task,
        }
    )


def test_a_factory_or_hash_not_on_the_allow_list_is_refused_with_the_reason(
    code_dir: Path, agent_for: Any
) -> None:
    module, path = _module(code_dir)
    factory, digest = f"{module}:build", _sha(path.read_text())
    agent, fake = agent_for(_policy([(factory, digest)]))

    _join(agent, _study(f"{module}:other", digest), "st-unlisted")
    _join(agent, _study(factory, "0" * 64), "st-wrong-hash")
    _join(agent, _study(factory, digest), "st-listed")  # the control: the pair it allows

    unlisted, wrong_hash, listed = fake.answers()
    assert unlisted["accept"] is False
    assert f"model factory '{module}:other' is not on this site's list" in unlisted["reason"]
    assert wrong_hash["accept"] is False
    assert (
        f"model factory '{factory}' is allow-listed with another source hash"
        in (wrong_hash["reason"])
    )
    assert "0" * 64 in wrong_hash["reason"]
    assert listed["accept"] is True, listed
    assert set(agent.studies) == {"st-listed"}


def test_an_installed_module_that_differs_from_the_declared_hash_is_refused_unimported(
    code_dir: Path, agent_for: Any
) -> None:
    """The study and the site policy both pin the reviewed source; the module installed at
    the site is another one (tampered). The site refuses, and none of its code ran."""
    module, path = _module(code_dir)
    reviewed = path.read_text()
    digest = _sha(reviewed)
    tampered = reviewed.replace("nn.Tanh()", "nn.ReLU()")
    path.write_text(tampered)
    marker = path.with_suffix(".imported")
    factory = f"{module}:build"
    agent, fake = agent_for(_policy([(factory, digest)]))

    _join(agent, _study(factory, digest), "st-tampered")

    (answer,) = fake.answers()
    assert answer["accept"] is False
    assert f"its source here has SHA-256 {_sha(tampered)}" in answer["reason"]
    assert f"not the study's {digest}" in answer["reason"]
    assert module not in sys.modules
    assert not marker.exists()
    assert agent.studies == {}

    path.write_text(reviewed)  # the reviewed source: now it is imported and joins
    _join(agent, _study(factory, digest), "st-reviewed")
    assert fake.answers()[-1]["accept"] is True
    assert marker.exists() and module in sys.modules


def test_a_model_whose_parameters_differ_from_the_studys_is_refused_before_training(
    code_dir: Path, agent_for: Any
) -> None:
    """The coordinator announces the study's initial model (names and shapes) with the
    invitation; a factory that builds anything else is refused at join."""
    module, path = _module(code_dir)
    factory, digest = f"{module}:build", _sha(path.read_text())
    agent, fake = agent_for(_policy([(factory, digest)]))
    import torch

    n = 2 + 3  # age, bmi, sex=F, sex=M, sex=other
    wider = parameter_spec(
        get_parameters(
            torch.nn.Sequential(torch.nn.Linear(n, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        )
    )
    renamed = parameter_spec(
        {"encoder.weight": np.zeros((4, n), np.float32), "encoder.bias": np.zeros(4, np.float32)}
    )
    same = parameter_spec(
        get_parameters(
            torch.nn.Sequential(torch.nn.Linear(n, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
        )
    )

    _join(agent, _study(factory, digest), "st-wider", parameters=wider)
    _join(agent, _study(factory, digest), "st-renamed", parameters=renamed)
    _join(agent, _study(factory, digest), "st-same", parameters=same)

    wide, named, ok = fake.answers()
    assert wide["accept"] is False
    assert "the model does not match the study's" in wide["reason"]
    assert "0.weight [4, 5] != [8, 5]" in wide["reason"]
    assert named["accept"] is False
    assert "missing encoder.bias, encoder.weight" in named["reason"]
    assert "unexpected 0.bias" in named["reason"]
    assert ok["accept"] is True, ok
    # nothing was set up to train for the refused studies
    assert set(agent.studies) == {"st-same"}


def _cli(*args: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tutela", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_coordinator_process_never_imports_the_models_module(tmp_path: Path) -> None:
    """A real deployment: the coordinator runs in this process; the data scientist submits
    with ``tutela server submit`` and each hospital runs ``tutela site run`` in its own
    process, both with the model's directory on their path. The study trains the custom
    model to completion, and this process never imported its module."""
    code = tmp_path / "clinic-code"  # on the agents' and the submitter's path only
    module, path = _module(code)
    factory, digest = f"{module}:build", _sha(path.read_text())
    assert str(code) not in sys.path

    pki_dir = tmp_path / "pki"
    pki.init_ca(pki_dir)
    pki.issue_to_files(pki_dir, kind="server", name="localhost", sans=["127.0.0.1"])
    ca = pki.PkiLayout(pki_dir).ca.cert
    (tmp_path / "policy.toml").write_text(_policy([(factory, digest)]))
    study_file = tmp_path / "study.toml"
    study = _study(factory, digest)
    study["data"].update({"path": str(_table(tmp_path / "all.csv", 40, 9))})
    study_file.write_text(_toml(study))

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "TUTELA_HOME": str(tmp_path / "home"),
    }
    server = BackgroundServer(ServerSettings(tmp_path / "coordinator", pki_dir, port=0)).start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        admin = ["--coordinator", server.url, "--ca", str(ca)]
        admin += ["--data-dir", str(tmp_path / "coordinator")]
        names = ["hospital-1", "hospital-2"]
        tokens = {n: _cli("server", "add-site", n, *admin, env=env, cwd=tmp_path) for n in names}
        sites = [f"--site={n}" for n in names]
        study_id = _cli("server", "submit", str(study_file), *admin, *sites, env=env, cwd=tmp_path)
        study_id = study_id.strip()
        for i, n in enumerate(names):
            site_dir = tmp_path / n
            site_dir.mkdir()
            cmd = [
                sys.executable, "-m", "tutela", "site", "run", "--coordinator", server.url,
                "--name", n, "--ca", str(ca), "--cert", str(site_dir / "site.pem"),
                "--key", str(site_dir / "site.key"), "--enrol-token", tokens[n].strip(),
                "--data", str(_table(site_dir / "rows.csv", 50, i)),
                "--policy", str(tmp_path / "policy.toml"), "--state-dir", str(site_dir / "state"),
                "--outcome", "readmitted", "--max-runtime", "300",
            ]  # fmt: skip
            log = (site_dir / "agent.log").open("wb")
            procs.append(
                subprocess.Popen(cmd, env=env, cwd=site_dir, stdout=log, stderr=subprocess.STDOUT)
            )
            log.close()
        token = (tmp_path / "coordinator" / "admin.token").read_text().strip()
        with httpx.Client(
            base_url=server.url,
            verify=client_context(ca),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as http:
            deadline = time.monotonic() + 300
            while True:
                status = http.get(f"/v1/admin/studies/{study_id}").json()
                if status["status"] in ("completed", "failed", "cancelled"):
                    break
                assert time.monotonic() < deadline, status
                time.sleep(0.5)
            final = parameters_from_bytes(http.get(f"/v1/admin/studies/{study_id}/model").content)
    finally:
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        server.stop()
    logs = "".join((tmp_path / n / "agent.log").read_text() for n in ("hospital-1", "hospital-2"))
    assert status["status"] == "completed", (status.get("error"), logs[-3000:])
    # the custom model trained: the final parameters are the factory's (hidden width 4)
    assert parameter_spec(final) == {
        "0.bias": [4], "0.weight": [4, 5], "2.bias": [1], "2.weight": [1, 4]
    }  # fmt: skip
    # the sites imported the module (its marker file), the coordinator's process did not
    assert path.with_suffix(".imported").exists()
    assert module not in sys.modules
    assert not any(name.startswith(module) for name in sys.modules)


def _toml(doc: dict[str, Any]) -> str:
    """A study mapping as TOML (tables of scalars, lists and inline tables)."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if v is None:
            raise ValueError("TOML has no null")
        return json.dumps(v)

    lines = []
    for section, body in doc.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in body.items() if v is not None]
    return "\n".join(lines) + "\n"
