"""The flagship study through the real coordinator: TLS on loopback, one agent per hospital.

:func:`run_study_over_network` does on one machine what a deployment does across many:

1. makes a CA in the run directory and issues the coordinator's certificate;
2. starts the coordinator (HTTPS, mutual TLS for sites, encrypted SQLite store, Merkle
   audit log);
3. registers every hospital and hands each agent a one-time enrolment token; each agent
   enrols (CSR -> certificate), checks the study against its local policy and joins;
4. runs the study's rounds (with SecAgg+ between the sites, or CKKS under a keyring the
   sites hold and the coordinator never sees, when the study asks for it); every site pins
   the coordinator's audit key (handed to it as an operator would, out of band) and
   witnesses the coordinator's audit log each round and once more when the study ended;
5. evaluates each round's global model on the held-out test set with the same code as the
   in-process engine and returns the same results mapping;
6. copies the sites' cosignatures into ``RUN_DIR/cosignatures`` and names the log, the
   audit key and the witness keys in ``RUN_DIR/witnesses.json``
   (:class:`~tutela.governance.witness.WitnessManifest`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tutela.errors import AuditError, ServiceError, TransportError
from tutela.fl.ckks import ckks_report, min_contributions
from tutela.fl.config import StudyConfig
from tutela.fl.models import get_parameters
from tutela.fl.records import parameters_to_bytes
from tutela.fl.rounds import RoundStatus
from tutela.fl.study import (
    PreparedStudy,
    StudyData,
    baselines,
    dataset_summary,
    prepare_data,
    prepare_sites,
)
from tutela.governance.witness import WitnessManifest, WitnessRefusal
from tutela.he.aggregation import SiteKeyring
from tutela.server import pki
from tutela.server.admin_client import ENDED, wait_for_end
from tutela.server.agent import run_site
from tutela.server.agent.ckks import provision_keyring
from tutela.server.agent.witness import WITNESS_DIR, witness_now
from tutela.server.serve import (
    AUDIT_LOG,
    BackgroundServer,
    ServerSettings,
    coordinator_verifier_key,
)
from tutela.server.site_processes import SiteProcess, prewarm
from tutela.server.tls import client_context
from tutela.server.wire import parse_tensors

OUTCOME_COLUMN = "outcome"


def write_site_files(config: StudyConfig, data: StudyData, root: Path) -> dict[str, Path]:
    """Write each hospital's rows (every column it holds, plus the outcome) and its policy.

    Under CKKS aggregation this also plays the key ceremony: one keyring, written to every
    hospital's state directory as a private (0600) file (:mod:`tutela.server.agent.ckks`).
    A real deployment runs the ceremony out of band among the sites; the coordinator never
    holds the keyring (the sites send it the public context).
    """
    frame = data.dataset.features
    dirs: dict[str, Path] = {}
    keyring = SiteKeyring.generate() if config.secure_aggregation.protocol == "ckks" else None
    for name, rows in zip(data.site_names, data.site_rows, strict=True):
        site_dir = root / name
        site_dir.mkdir(parents=True, exist_ok=True)
        table = frame.iloc[rows].copy()
        table[OUTCOME_COLUMN] = data.y[rows]
        table.to_csv(site_dir / "data.csv", index=False)
        (site_dir / "site-policy.toml").write_text(_site_policy(config, data.columns))
        if keyring is not None:
            provision_keyring(site_dir / "state", keyring)
        dirs[name] = site_dir
    return dirs


def _site_policy(config: StudyConfig, columns: list[str]) -> str:
    """A hospital policy (see :mod:`tutela.governance.minimisation`) that admits ``config``."""
    p = config.privacy
    floor = [
        f"dp_required = {json.dumps(p.mode != 'none')}",
        f"secure_aggregation_required = {json.dumps(config.secure_aggregation.protocol != 'none')}",
    ]
    if p.mode != "none" and p.epsilon is not None:
        floor += [f"max_epsilon = {p.epsilon!r}", f"max_delta = {p.delta!r}"]
    return (
        "# What this hospital allows, whatever a study asks.\n"
        "# (The demo evaluates each round on the study's own test set: its sites train on all\n"
        "# their rows, as in process, and hold none out to report metrics on.)\n"
        "report_metrics = false\n\n"
        f"[purposes.{json.dumps(config.study.purpose)}]\n"
        f"columns = [{', '.join(json.dumps(c) for c in columns)}]\n\n"
        "[floor]\n" + "\n".join(floor) + "\n\n"
        f"[limits]\nmax_local_epochs = {config.training.local_epochs}\n"
    )


def _site_kwargs(
    url: str, ca: Path, site_dir: Path, name: str, token: str, seed: int, audit_key: str
) -> dict[str, Any]:
    return {
        "coordinator": url,
        "name": name,
        "ca_file": ca,
        "cert_file": site_dir / "site.pem",
        "key_file": site_dir / "site.key",
        "enrol_token": token,
        "data": site_dir / "data.csv",
        "policy_file": site_dir / "site-policy.toml",
        "state_dir": site_dir / "state",
        "seed": seed,
        "audit_key": audit_key,
    }


def _wait_enrolled(
    client: httpx.Client,
    headers: dict[str, str],
    names: set[str],
    procs: list[SiteProcess],
    timeout: float,
) -> None:
    """Wait until every site in ``names`` enrolled (a site process that exits first fails)."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get("/v1/admin/sites", headers=headers)
        r.raise_for_status()
        enrolled = {s["name"] for s in r.json() if s.get("enrolled_at") is not None}
        if names <= enrolled:
            return
        dead = [p.args for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            missing = ", ".join(sorted(names - enrolled))
            raise ServiceError(f"site(s) {missing} did not enrol" + (" (exited)" if dead else ""))
        time.sleep(0.1)


def _wait_terminal(
    client: httpx.Client, study_id: str, headers: dict[str, str], timeout: float
) -> dict[str, Any]:
    """The study's full status once it ended (:func:`~tutela.server.admin_client.wait_for_end`:
    held by the coordinator until the status changes), read once in full."""
    client.headers.update(headers)
    brief = wait_for_end(client, study_id, timeout)
    if brief["status"] not in ENDED:
        raise ServiceError(
            f"the study did not finish within {timeout:.0f} s (status {brief['status']})"
        )
    status: dict[str, Any] = client.get(f"/v1/admin/studies/{study_id}").json()
    return status


def evaluate_rounds(
    client: httpx.Client,
    study_id: str,
    headers: dict[str, str],
    status: dict[str, Any],
    prepared: PreparedStudy,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Per-round history (shaped like the in-process engine's) and the final parameters."""
    history: list[dict[str, Any]] = []
    final: dict[str, np.ndarray] | None = None
    for r in status["rounds"]:
        if r["status"] not in (RoundStatus.AGGREGATED, RoundStatus.QUORUM_NOT_MET):
            continue
        body = client.get(
            f"/v1/admin/studies/{study_id}/rounds/{r['round']}/model", headers=headers
        )
        body.raise_for_status()
        arrays, _ = parse_tensors(body.content)
        params = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
        final = params
        entry = {
            "round": r["round"],
            "status": r["status"],
            "sites": r.get("sites", []),
            "failed": r.get("failed", []),
            "num_examples": r.get("num_examples", 0),
            **{k: float(v) for k, v in prepared.evaluate(params).items()},
        }
        entry.setdefault("loss", entry.get("log_loss"))
        history.append(entry)
    if final is None:
        body = client.get(f"/v1/admin/studies/{study_id}/model", headers=headers)
        body.raise_for_status()
        arrays, _ = parse_tensors(body.content)
        final = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    return history, final


def run_study_over_network(
    config: StudyConfig,
    run_dir: Path,
    *,
    sites_as_processes: bool = True,
    stage_timeout_s: float = 60.0,
    timeout_s: float = 1800.0,
    with_baselines: bool = True,
) -> dict[str, Any]:
    """Run ``config`` through a TLS coordinator on loopback with one agent per hospital.

    Args:
        config: the study (the same object :func:`tutela.fl.study.run_study` takes).
        run_dir: where the CA, coordinator state, site files and logs go.
        sites_as_processes: one OS process per hospital (default), each running
            ``tutela site run`` forked from a launcher that imported the agent's stack once
            (:mod:`~tutela.server.site_processes`); False runs the agents
            on threads of this process (faster, same protocol, same TLS).
        stage_timeout_s: deadline of each round stage.
        timeout_s: give up after this long.
        with_baselines: also compute the centralised and local-only baselines.

    Returns:
        The in-process engine's results mapping (``dataset``, ``rounds``, ``history``,
        ``federated``, ``config``, ``privacy``, ``secure_aggregation``, baselines,
        ``final_parameters``, ``elapsed_s``) plus ``deployment`` (how it ran).
    """
    started = time.perf_counter()
    if sites_as_processes:  # the sites' launcher imports their stack meanwhile
        prewarm()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_data(config)
    prepared = prepare_sites(config, data)
    initial = get_parameters(prepared.model_factory())

    pki_dir = run_dir / "pki"
    if not pki.PkiLayout(pki_dir).ca.cert.exists():
        pki.init_ca(pki_dir, common_name="Tutela demo CA")
    pki.issue_to_files(pki_dir, kind="server", name="localhost", sans=["127.0.0.1", "::1"])
    ca = pki.PkiLayout(pki_dir).ca.cert
    site_dirs = write_site_files(config, data, run_dir / "sites")

    server = BackgroundServer(ServerSettings(run_dir / "coordinator", pki_dir, port=0)).start()
    # What the coordinator's operator prints and every site operator pins, compared out of band.
    audit_key = coordinator_verifier_key(run_dir / "coordinator").encode()
    procs: list[SiteProcess] = []
    threads: list[threading.Thread] = []
    client: httpx.Client | None = None
    try:
        token_path = run_dir / "coordinator" / "admin.token"
        headers = {"Authorization": f"Bearer {token_path.read_text().strip()}"}
        client = httpx.Client(base_url=server.url, verify=client_context(ca), timeout=60.0)
        tokens: dict[str, str] = {}
        for name in data.site_names:
            r = client.post("/v1/admin/sites", json={"name": name}, headers=headers)
            r.raise_for_status()
            tokens[name] = r.json()["enrolment_token"]
        # The agents start now (forked from the launcher, which imported their stack while
        # this process set up) and enrol while the study is set up; it starts once every
        # site is up, so the join deadline is the sites' time to decide, not their start-up.
        for i, name in enumerate(data.site_names):
            seed = config.study.seed * 1000 + i
            kwargs = _site_kwargs(
                server.url, ca, site_dirs[name], name, tokens[name], seed, audit_key
            )
            if sites_as_processes:
                procs.append(SiteProcess(kwargs, site_dirs[name] / "agent.log"))
            else:
                thread = threading.Thread(target=run_site, kwargs=kwargs, daemon=True)
                thread.start()
                threads.append(thread)
        study_cfg = config.with_overrides(data={"columns": list(data.columns)}).resolved()
        r = client.post(
            "/v1/admin/studies",
            json={
                "config": study_cfg,
                "deployment": {
                    "stage_timeout_s": stage_timeout_s,
                    "join_timeout_s": max(stage_timeout_s, 120.0),
                    "sites": list(data.site_names),
                },
            },
            headers=headers,
        )
        r.raise_for_status()
        study_id = r.json()["id"]
        client.put(
            f"/v1/admin/studies/{study_id}/model",
            content=parameters_to_bytes(initial),
            headers={**headers, "Content-Type": "application/octet-stream"},
        ).raise_for_status()
        _wait_enrolled(client, headers, set(data.site_names), procs, timeout_s)
        study_started = time.perf_counter()
        client.post(f"/v1/admin/studies/{study_id}/start", headers=headers).raise_for_status()
        status = _wait_terminal(client, study_id, headers, timeout_s)
        study_s = time.perf_counter() - study_started
        released = status.get("standardisation", {})
        if released.get("mean") is not None:  # evaluate as the sites were standardised
            prepared.standardise_test_set(
                np.asarray(released["mean"], np.float64), np.asarray(released["std"], np.float64)
            )
        history, final = evaluate_rounds(client, study_id, headers, status, prepared)
        ledger = client.get(f"/v1/admin/studies/{study_id}/privacy", headers=headers).json()
        signed = _site_reports(client, study_id, headers, procs, threads)
        _witness_end(server.url, ca, site_dirs, audit_key)
    finally:
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread in threads:
            thread.join(timeout=30)
        if client is not None:
            client.close()
        server.stop()
    if status["status"] != "completed":
        raise ServiceError(f"the study ended {status['status']}: {status.get('error')}")
    witnesses = _copy_cosignatures(run_dir, site_dirs, audit_key)
    secagg_reports = [
        r["secure_aggregation"] for r in status["rounds"] if "secure_aggregation" in r
    ]
    results: dict[str, Any] = {
        "dataset": dataset_summary(config, data),
        "rounds": config.training.rounds,
        "history": history,
        "federated": prepared.evaluate(final),
        "config": config.resolved(),
        "privacy": _privacy_summary(config, ledger, run_dir),
        "privacy_rounds": ledger.get("events") if config.privacy.mode == "client" else None,
        "secure_aggregation": _ckks_summary(config, secagg_reports)
        if config.secure_aggregation.protocol == "ckks"
        else _secagg_summary(secagg_reports),
        "sites": signed["reports"] or None,
        "site_keys": signed["site_keys"] or None,
        "deployment": {
            "transport": "https (TLS 1.2+, mutual TLS for sites)",
            "coordinator": server.url,
            "study_id": study_id,
            "sites_as_processes": sites_as_processes,
            "study_s": study_s,
            "store": "sqlite (blobs sealed with the governance envelope)",
            "audit_log": str(run_dir / "coordinator" / AUDIT_LOG),
            "witnesses": witnesses,
            "run_dir": str(run_dir),
            "rounds": [
                {k: r.get(k) for k in ("round", "status", "sites", "failed", "num_examples")}
                for r in status["rounds"]
            ],
        },
    }
    if with_baselines:
        results.update(baselines(config, prepared, initial))
    results["final_parameters"] = final
    results["standardisation"] = released  # the statistics the sites trained with
    results["elapsed_s"] = time.perf_counter() - started
    return results


def _site_reports(
    client: httpx.Client,
    study_id: str,
    headers: dict[str, str],
    procs: list[SiteProcess],
    threads: list[threading.Thread],
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Each site's latest signed report, verbatim, and the identity key each site registered
    at join, both as the coordinator recorded them (``reports``, ``site_keys``).

    A site sends its last report after its last submission, so the agents are first given
    ``timeout`` seconds to finish (they stop once they see the study end). A site that
    refused the study sent none. Readers verify each report against the key its site
    registered (``site_keys``), never against the key the report carries.
    """
    give_up = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, give_up - time.monotonic()))
        except subprocess.TimeoutExpired:
            break
    for thread in threads:
        thread.join(timeout=max(0.0, give_up - time.monotonic()))
    r = client.get(f"/v1/admin/studies/{study_id}/site-reports", headers=headers)
    r.raise_for_status()
    signed: dict[str, Any] = r.json()
    return signed


def _witness_end(url: str, ca: Path, site_dirs: dict[str, Path], audit_key: str) -> None:
    """Each site witnesses the coordinator's log once more, now that the study has ended and
    its agent has left (what each site operator's agent does at the end of a study), so the
    checkpoint covering the whole log carries every site's cosignature."""
    for name, site_dir in site_dirs.items():
        kwargs = _site_kwargs(url, ca, site_dir, name, "", 0, audit_key)
        if not Path(kwargs["cert_file"]).exists():
            continue  # never enrolled: no witness
        try:
            witness_now(
                coordinator=url,
                name=name,
                ca_file=ca,
                cert_file=kwargs["cert_file"],
                key_file=kwargs["key_file"],
                state_dir=kwargs["state_dir"],
                audit_key=audit_key,
            )
        except (WitnessRefusal, TransportError, AuditError):
            continue  # its refusal and evidence stay in its state directory


def _copy_cosignatures(run_dir: Path, site_dirs: dict[str, Path], audit_key: str) -> dict[str, Any]:
    """Copy the coordinator's cosigned checkpoints to ``run_dir/cosignatures`` and write the
    witness manifest (the log, the audit key, each site's witness key)."""
    source = run_dir / "coordinator" / (AUDIT_LOG + ".cosigned")
    target = run_dir / "cosignatures"
    if target.exists():
        shutil.rmtree(target)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        target.mkdir(parents=True)
    keys = []
    for site_dir in site_dirs.values():
        vkey = site_dir / "state" / WITNESS_DIR / "witness.vkey"
        if vkey.is_file():
            keys.append(vkey.read_text(encoding="utf-8").strip())
    manifest = WitnessManifest(
        log=f"coordinator/{AUDIT_LOG}",
        cosigned="cosignatures",
        audit_key=audit_key,
        witnesses=tuple(keys),
    )
    path = manifest.save(run_dir)
    return {
        "manifest": str(path),
        "audit_key": audit_key,
        "keys": keys,
        "cosignatures": str(target),
        "cosigned_checkpoints": len(list(target.glob("*.checkpoint"))),
    }


def _privacy_summary(
    config: StudyConfig, ledger: dict[str, Any], run_dir: Path
) -> dict[str, Any] | None:
    if config.privacy.mode == "client":
        return _client_privacy_summary(config, ledger.get("events") or [], run_dir)
    reports = ledger.get("site_reports") or {}
    if config.privacy.mode == "none" or not reports:
        return None
    return {
        "level": "record (sample-level DP at each site, applied by the site agent)",
        "mechanism": "DP-SGD: Poisson sampling, per-example clipping, Gaussian noise (CSPRNG)",
        "neighbouring": "add/remove one patient record at one site",
        "accountant": config.privacy.accountant,
        "epsilon": max(float(r["epsilon"]) for r in reports.values()),
        "target_epsilon": config.privacy.epsilon,
        "delta": config.privacy.delta,
        "per_site": reports,
    }


def _client_privacy_summary(
    config: StudyConfig, rounds: list[dict[str, Any]], run_dir: Path
) -> dict[str, Any] | None:
    """The DP-FedAvg report of the rounds the coordinator released (its study ledger),
    accounted as in process: the rounds are replayed into ``run_dir/ledger.sqlite``."""
    from tutela.dp.ledger import PrivacyLedger
    from tutela.fl.privacy import client_level_dp
    from tutela.fl.recipes import LEDGER_PLD_GRID

    if not rounds:
        return None
    ledger = PrivacyLedger(run_dir / "ledger.sqlite", value_discretization_interval=LEDGER_PLD_GRID)
    dp = client_level_dp(config, ledger)
    dp.restore(rounds)
    return dp.report()


def _ckks_summary(config: StudyConfig, reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The study's CKKS section from the coordinator's round reports (as in process)."""
    return ckks_report(reports, min_contributions(config.training.min_quorum))


def _secagg_summary(reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not reports:
        return None
    last = reports[-1]
    dropped: dict[str, int] = {}
    for report in reports:
        for stage, names in report.get("dropped", {}).items():
            dropped[stage] = dropped.get(stage, 0) + len(names)
    return {**last, "rounds": len(reports), "dropped_total_per_stage": dropped}
