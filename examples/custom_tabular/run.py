"""The clinic's own model on its own CSV: in process, then over the network, same result.

What it shows:

1. ``make_data.py`` writes the clinic's table (numeric and categorical columns, plus
   identifiers no study may read); ``study.toml`` declares the column roles and names the
   model factory ``clinic_models:build`` with the SHA-256 of its source;
   ``site-policy.toml`` allow-lists exactly that factory and hash.
2. In process: ``tutela study run study.toml --policy site-policy.toml`` splits the table
   into three simulated hospitals, each enforcing the site policy.
3. Over the network: the same three hospitals, each holding only its own rows in its own
   CSV, run ``tutela site run`` against a coordinator started with ``tutela server start``
   (TLS on loopback, mutual TLS for sites, SecAgg+ between the sites). The coordinator runs
   without the example directory on its path: it never imports the model's code; the
   hospitals import it (after checking its hash) and ``tutela server submit`` (the data
   scientist) builds the initial model. The final global model is downloaded and evaluated
   on the same held-out patients.
4. Both runs' test metrics are printed; they agree within the SecAgg+ quantisation error
   (both runs aggregate through SecAgg+, whose stochastic rounding differs run to run).

Run it (about a minute on two cores)::

    python examples/custom_tabular/run.py [--workdir DIR]

Everything it writes goes under ``--workdir`` (default ``examples/custom_tabular/runs``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tutela.data.tables import read_table
from tutela.fl.config import load_study
from tutela.fl.models import set_parameters
from tutela.fl.records import parameters_from_bytes
from tutela.fl.study import prepare_data
from tutela.fl.task import predict
from tutela.server.tls import client_context

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the data scientist holds the model's code

import clinic_models  # noqa: E402
import make_data  # noqa: E402

TOLERANCE = 1e-3
"""How far the two runs' metrics may differ: both aggregate through SecAgg+, whose
stochastic rounding (at most the printed quantisation bound per parameter and round, a few
1e-5 here) moves the final model by far less."""


def tutela(*args: str) -> list[str]:
    """The command line of a ``tutela`` command in this interpreter."""
    return [sys.executable, "-m", "tutela", *args]


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run a command; its stdout, or exit with its error in one line."""
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        err = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        sys.exit(f"{' '.join(cmd[2:4])} failed: {err}")
    return done.stdout


def environment(work: Path, *, model_code: bool) -> dict[str, str]:
    """A process environment: one torch thread (tiny model, busy host), its own Tutela home,
    and the example directory on the path only for processes that may run the model."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TUTELA_HOME": str(work / "home")}
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if model_code:
        path.insert(0, str(HERE))
    env["PYTHONPATH"] = os.pathsep.join(path)
    return env


def metrics_line(m: dict[str, float]) -> str:
    return f"accuracy {m['accuracy']:.4f}  ROC AUC {m['auc']:.4f}  log loss {m['log_loss']:.4f}"


def in_process(work: Path) -> dict[str, float]:
    """``tutela study run`` over the whole table (three simulated hospitals)."""
    out = work / "in-process.json"
    cmd = ["study", "run", "study.toml", "--policy", "site-policy.toml"]
    cmd += ["--out", str(out), "--run-dir", str(work / "in-process")]
    run(tutela(*cmd), environment(work, model_code=True), HERE)
    results = json.loads(out.read_text())
    return dict(results["federated"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_hospitals(work: Path) -> tuple[dict[str, Path], Any]:
    """Each hospital's own CSV (all its columns, identifiers included: the policy keeps
    them home) as the simulation split the table, and the held-out test rows."""
    config = load_study(HERE / "study.toml")
    split = prepare_data(config)
    assert config.data.path is not None
    table = read_table(config.data.path)
    files = {}
    for name, rows in zip(split.site_names, split.site_rows, strict=True):
        (work / name).mkdir(parents=True, exist_ok=True)
        files[name] = work / name / "patients.csv"
        table.iloc[rows].to_csv(files[name], index=False)
    return files, table.iloc[split.test_rows]


def over_network(work: Path) -> tuple[dict[str, float], float]:
    """The same study through a coordinator and one ``tutela site run`` per hospital."""
    config = load_study(HERE / "study.toml")
    files, test = write_hospitals(work)
    plain = environment(work, model_code=False)  # the coordinator's: no model code
    sites_env = environment(work, model_code=True)
    pki = work / "pki"
    run(tutela("pki", "init", "--dir", str(pki)), plain, work)
    run(tutela("pki", "issue", "--dir", str(pki), "--server"), plain, work)
    ca, port = pki / "ca.pem", _free_port()
    url, data_dir = f"https://127.0.0.1:{port}", work / "coordinator"
    admin = ["--coordinator", url, "--ca", str(ca), "--data-dir", str(data_dir)]
    procs: list[subprocess.Popen[bytes]] = []
    with (work / "coordinator.log").open("wb") as log:
        start = ["server", "start", "--pki", str(pki), "--data-dir", str(data_dir)]
        coordinator = subprocess.Popen(  # noqa: S603
            tutela(*start, "--port", str(port)),
            env=plain, cwd=work, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        token = data_dir / "admin.token"
        http = httpx.Client(base_url=url, verify=client_context(ca), timeout=30)
        _wait_up(http, token, coordinator)
        http.headers["Authorization"] = f"Bearer {token.read_text().strip()}"
        tokens = {
            name: run(tutela("server", "add-site", name, *admin), plain, work) for name in files
        }
        sites = [f"--site={name}" for name in files]
        submit = tutela("server", "submit", str(HERE / "study.toml"), *admin, *sites)
        study_id = run(submit, sites_env, work).strip()  # the data scientist builds the model
        for i, (name, data) in enumerate(files.items()):
            agent = [
                "site", "run", "--coordinator", url, "--name", name, "--ca", str(ca),
                "--cert", str(work / name / "site.pem"), "--key", str(work / name / "site.key"),
                "--enrol-token", tokens[name].strip(), "--data", str(data),
                "--policy", str(HERE / "site-policy.toml"),
                "--state-dir", str(work / name / "state"),
                "--outcome", config.data.outcome or "outcome",
                "--seed", str(config.study.seed * 1000 + i), "--max-runtime", "600",
            ]  # fmt: skip
            with (work / name / "agent.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(  # noqa: S603
                        tutela(*agent),
                        env=sites_env,
                        cwd=work / name,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        status = _wait_done(http, study_id)
        if status["status"] != "completed":
            sys.exit(f"the study ended {status['status']}: {status.get('error')}")
        final = http.get(f"/v1/admin/studies/{study_id}/model")
        final.raise_for_status()
        bound = max(
            r["secure_aggregation"]["quantization_error_bound"]
            for r in status["rounds"]
            if "secure_aggregation" in r
        )
        return _evaluate(config, parameters_from_bytes(final.content), status, test), bound
    finally:
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        coordinator.terminate()
        coordinator.wait(timeout=30)


def _wait_up(http: httpx.Client, token: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("the coordinator did not start (see coordinator.log)")
        try:
            if token.exists() and http.get("/health").status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    sys.exit("the coordinator did not answer within 120 s")


def _wait_done(http: httpx.Client, study_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status: dict[str, Any] = http.get(f"/v1/admin/studies/{study_id}").json()
        if status["status"] in ("completed", "failed", "cancelled"):
            return status
        time.sleep(0.5)
    sys.exit("the study did not finish within 600 s")


def _evaluate(
    config: Any, params: dict[str, np.ndarray], status: dict[str, Any], test: Any
) -> dict[str, float]:
    """The final model's metrics on the held-out patients, encoded as the sites' rows and
    standardised with the mean and deviation the coordinator released."""
    roles = config.data.roles()
    features, labels = roles.encode(test, where="test set")
    released = status["standardisation"]
    x = (features.to_numpy(np.float64) - released["mean"]) / np.asarray(released["std"])
    model = clinic_models.build(len(roles.encoded_columns), **config.model.options)
    set_parameters(model, params)
    task = config.model.task
    return {k: float(v) for k, v in task.metrics(labels, predict(model, x, task)).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=HERE / "runs", help="where runs go")
    args = parser.parse_args()
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    make_data.write_table()

    local = in_process(work)
    print(f"in process:       {metrics_line(local)}")
    remote, bound = over_network(work)
    print(f"over the network: {metrics_line(remote)}")
    gap = max(abs(local[k] - remote[k]) for k in ("accuracy", "auc", "log_loss"))
    same = gap <= TOLERANCE
    print(
        f"largest metric difference {gap:.2e} (tolerance {TOLERANCE:g}; SecAgg+ quantisation "
        f"bound {bound:.2e} per parameter and round): {'equal' if same else 'DIFFERENT'}"
    )
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
