"""Federated DP queries on one machine: a TLS coordinator on loopback and one agent per
hospital, each beside its own Parquet file and policy, the analyst asking through the
coordinator (what ``tutela query-demo`` runs).

:func:`run_query_demo` makes a CA, starts the coordinator (:class:`BackgroundServer`),
writes each hospital's synthetic EHR rows (:func:`~tutela.data.synthetic.generate_ehr`, one
hospital per file, identifiers included: the policy keeps them in) and its site policy,
enrols the agents (processes by default), mints an ``analyst`` token, asks the queries with
:func:`~tutela.server.query_client.run_query`, and stops everything.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx

from tutela.errors import TutelaError
from tutela.server import pki
from tutela.server.agent import run_site
from tutela.server.query_client import QueryResult, run_query
from tutela.server.serve import BackgroundServer, ServerSettings, coordinator_verifier_key
from tutela.server.site_processes import SiteProcess
from tutela.server.tls import client_context

__all__ = [
    "DEMO_POLICY",
    "DEMO_PURPOSE",
    "DEMO_QUERIES",
    "run_query_demo",
    "wait_enrolled",
    "write_hospitals",
]

DEMO_PURPOSE = "cohort-discovery"
DEMO_QUERIES: tuple[tuple[str, float], ...] = (
    ("SELECT count(*) FROM patients WHERE age > 60 AND diabetes GROUP BY sex", 0.5),
    ("SELECT avg(clamp(bmi, 10, 60)), quantile(clamp(age, 0, 110), 0.5) FROM patients "
     "WHERE smoker GROUP BY sex", 0.5),
)  # fmt: skip
"""The questions the demo asks (SQL, epsilon)."""

DEMO_POLICY = """# What this hospital answers, whatever an analyst asks.
[purposes.cohort-discovery]
columns = ["age", "sex", "bmi", "systolic_bp", "glucose", "smoker", "diabetes",
           "hypertension", "ckd"]

[analytics]
min_cohort = 10
max_query_epsilon = 1.0
analyst_epsilon = 3.0
study_epsilon = 5.0
delta = 1e-6

[analytics.categories]
sex = ["F", "M"]
smoker = ["0", "1"]
diabetes = ["0", "1"]
hypertension = ["0", "1"]
"""


def write_hospitals(
    root: Path, *, hospitals: int = 5, rows: int = 20_000, seed: int = 0
) -> dict[str, Path]:
    """Each hospital's directory with ``data.parquet`` and ``site-policy.toml``."""
    from tutela.data.synthetic import generate_ehr

    frame = generate_ehr(rows, hospitals=hospitals, seed=seed)
    dirs: dict[str, Path] = {}
    for h in range(hospitals):
        name = f"hospital-{h + 1}"
        site_dir = root / name
        site_dir.mkdir(parents=True, exist_ok=True)
        table = frame[frame["hospital"] == h].drop(columns=["hospital"]).reset_index(drop=True)
        table.to_parquet(site_dir / "data.parquet", index=False)
        (site_dir / "site-policy.toml").write_text(DEMO_POLICY, encoding="utf-8")
        dirs[name] = site_dir
    return dirs


def run_query_demo(
    run_dir: Path,
    queries: tuple[tuple[str, float], ...] = DEMO_QUERIES,
    *,
    hospitals: int = 5,
    rows: int = 20_000,
    sites_as_processes: bool = True,
    analyst: str = "analyst-1",
) -> dict[str, Any]:
    """Ask ``queries`` of ``hospitals`` demo hospitals through a loopback coordinator.

    Returns:
        ``results`` (one :class:`QueryResult` per query, or the failure's message),
        ``audit`` (the coordinator's ``query.*`` audit events), ``sites`` (each hospital's
        directory) and ``coordinator`` (its URL, stopped by then).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pki_dir = run_dir / "pki"
    if not pki.PkiLayout(pki_dir).ca.cert.exists():
        pki.init_ca(pki_dir, common_name="Tutela demo CA")
    pki.issue_to_files(pki_dir, kind="server", name="localhost", sans=["127.0.0.1", "::1"])
    ca = pki.PkiLayout(pki_dir).ca.cert
    dirs = write_hospitals(run_dir / "sites", hospitals=hospitals, rows=rows)
    server = BackgroundServer(ServerSettings(run_dir / "coordinator", pki_dir, port=0)).start()
    audit_key = coordinator_verifier_key(run_dir / "coordinator")
    procs: list[SiteProcess] = []
    results: list[QueryResult | str] = []
    try:
        admin = {"Authorization": f"Bearer {server.admin_token}"}
        with httpx.Client(base_url=server.url, verify=client_context(ca), timeout=60.0) as c:
            for name, site_dir in dirs.items():
                r = c.post("/v1/admin/sites", json={"name": name}, headers=admin)
                r.raise_for_status()
                kwargs = {
                    "coordinator": server.url, "name": name, "ca_file": ca,
                    "cert_file": site_dir / "site.pem", "key_file": site_dir / "site.key",
                    "enrol_token": r.json()["enrolment_token"],
                    "data": site_dir / "data.parquet",
                    "policy_file": site_dir / "site-policy.toml",
                    "state_dir": site_dir / "state", "audit_key": audit_key,
                }  # fmt: skip
                if sites_as_processes:
                    procs.append(SiteProcess(kwargs, site_dir / "agent.log"))
                else:
                    threading.Thread(target=run_site, kwargs=kwargs, daemon=True).start()
            token = c.post(
                "/v1/admin/tokens", json={"role": "analyst", "name": analyst}, headers=admin
            )
            token.raise_for_status()
            analyst_token = token.json()["token"]
            wait_enrolled(c, admin, len(dirs))
        for sql, epsilon in queries:
            try:
                results.append(
                    run_query(
                        server.url, sql, epsilon=epsilon, purpose=DEMO_PURPOSE,
                        token=analyst_token, ca_file=ca, invite_timeout_s=60.0,
                    )
                )  # fmt: skip
            except TutelaError as exc:  # reported with the others
                results.append(f"{type(exc).__name__}: {exc}")
        assert server.coordinator is not None
        audit = [
            e for e in server.coordinator.audit_events(limit=100_000)
            if str(e["action"]).startswith("query.")
        ]  # fmt: skip
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck agent
                proc.kill()
        server.stop()
    return {"results": results, "audit": audit, "sites": dirs, "coordinator": server.url}


def wait_enrolled(client: httpx.Client, headers: dict[str, str], count: int) -> None:
    """Wait until ``count`` sites are enrolled (active), for up to two minutes."""
    import time

    give_up = time.monotonic() + 120.0
    while time.monotonic() < give_up:
        r = client.get("/v1/admin/sites", headers=headers)
        r.raise_for_status()
        if sum(1 for s in r.json() if s.get("status") == "active") >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the {count} demo hospitals did not enrol in time: {json.dumps(r.json())}")
