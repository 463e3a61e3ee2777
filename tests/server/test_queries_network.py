"""Federated DP queries across processes: a TLS coordinator on loopback (this process) and
five hospital agents, each its own OS process beside its own Parquet file, policy and ledger.

- an answer is the noisy sum of the accepting sites' statistics: within 5 stated standard
  deviations of the truth (false-failure rate 6e-7 per value for fresh noise), its interval
  is read from the stated noise, and each accepting site charged exactly its noisy cohort
  test and the query's epsilon to its analyst and study scopes;
- no site's exact statistics appear in anything the coordinator keeps about a query (its
  answers, every SecAgg+ message it relayed or received, the result) or in its database (the
  audit log included): searched as JSON numbers and as float64/float32 bytes;
- a query over a column outside the policy and a query past a site's budget are refused with
  the reason (audited), and nothing is charged there; a cohort far below a site's minimum is
  refused with the reason and charges only the site's cohort test;
- ``tutela query`` in its own process answers the same way, and a non-analyst is refused.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.cli.run import tutela
from tutela.dp.ledger import PrivacyLedger
from tutela.dp.sql.engine import TableSource, check, evaluate
from tutela.dp.sql.parse import parse_sql
from tutela.errors import PolicyViolation, ProtocolAbort, ServiceError
from tutela.fl.queries import QueryRequest, query_scopes, sql_policy
from tutela.governance.minimisation import SitePolicy
from tutela.server import pki
from tutela.server.agent.query import LEDGER_FILE
from tutela.server.query_client import run_query
from tutela.server.query_demo import DEMO_PURPOSE, wait_enrolled, write_hospitals
from tutela.server.serve import BackgroundServer, ServerSettings, coordinator_verifier_key
from tutela.server.site_processes import site_command
from tutela.server.tls import client_context

COHORT = "SELECT count(*), avg(clamp(bmi, 10, 60)) FROM patients WHERE age > 60 GROUP BY sex"


class Deployment:
    def __init__(self, root: Path) -> None:
        self.root = root
        pki_dir = root / "pki"
        pki.init_ca(pki_dir, common_name="Test CA")
        pki.issue_to_files(pki_dir, kind="server", name="localhost", sans=["127.0.0.1"])
        self.ca = pki.PkiLayout(pki_dir).ca.cert
        self.sites = write_hospitals(root / "sites", hospitals=5, rows=15_000, seed=3)
        # hospital-4 asks for a cohort of 100,000 rows; hospital-5 has a small study budget
        for name, old, new in (
            ("hospital-4", "min_cohort = 10", "min_cohort = 100000"),
            ("hospital-5", "study_epsilon = 5.0", "study_epsilon = 0.7"),
        ):
            path = self.sites[name] / "site-policy.toml"
            path.write_text(path.read_text().replace(old, new))
        self.server = BackgroundServer(ServerSettings(root / "coordinator", pki_dir, port=0))
        self.server.start()
        self.admin = {"Authorization": f"Bearer {self.server.admin_token}"}
        self.client = httpx.Client(
            base_url=self.server.url, verify=client_context(self.ca), timeout=60
        )
        self.procs: list[subprocess.Popen[bytes]] = []
        audit_key = coordinator_verifier_key(root / "coordinator")
        for name, site_dir in self.sites.items():
            r = self.client.post("/v1/admin/sites", json={"name": name}, headers=self.admin)
            r.raise_for_status()
            kwargs = {
                "coordinator": self.server.url, "name": name, "ca_file": self.ca,
                "cert_file": site_dir / "site.pem", "key_file": site_dir / "site.key",
                "enrol_token": r.json()["enrolment_token"], "data": site_dir / "data.parquet",
                "policy_file": site_dir / "site-policy.toml", "state_dir": site_dir / "state",
                "audit_key": audit_key,
            }  # fmt: skip
            log = (site_dir / "agent.log").open("wb")
            self.procs.append(
                subprocess.Popen(
                    site_command(kwargs), stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            )  # fmt: skip
        self.analyst = self.token("analyst", "alice")
        wait_enrolled(self.client, self.admin, len(self.sites))

    def token(self, role: str, name: str) -> str:
        r = self.client.post("/v1/admin/tokens", json={"role": role, "name": name},
                             headers=self.admin)  # fmt: skip
        r.raise_for_status()
        return str(r.json()["token"])

    def ask(self, sql: str, epsilon: float = 0.5, token: str | None = None) -> Any:
        return run_query(
            self.server.url, sql, epsilon=epsilon, purpose=DEMO_PURPOSE,
            token=token or self.analyst, ca_file=self.ca, invite_timeout_s=90.0, timeout_s=300,
        )  # fmt: skip

    def ledger(self, site: str) -> PrivacyLedger:
        return PrivacyLedger(self.sites[site] / "state" / LEDGER_FILE)

    def spends(self) -> dict[str, int]:
        out = {}
        for site in self.sites:
            path = self.sites[site] / "state" / LEDGER_FILE
            out[site] = len(PrivacyLedger(path).records()) if path.exists() else 0
        return out

    def table(self, site: str) -> pd.DataFrame:
        return pd.read_parquet(self.sites[site] / "data.parquet")

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=30)
        self.client.close()
        self.server.stop()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path_factory.mktemp("queries"))
    try:
        yield deployment
    finally:
        deployment.close()


def _exact_statistics(net: Deployment, sql: str) -> dict[str, list[float]]:
    """Every answering site's exact statistics for ``sql`` (computed here, from its own
    file, nothing charged), and derived per-site values (the means)."""
    out = {}
    for site, site_dir in net.sites.items():
        policy = SitePolicy.from_toml(site_dir / "site-policy.toml")
        source = TableSource.of(site_dir / "data.parquet")
        try:
            limits = sql_policy(policy, DEMO_PURPOSE, source.header())
            stats = evaluate(check(parse_sql(sql), limits, source.header()), source)
        except PolicyViolation:
            continue
        if stats.rows < policy.analytics.min_cohort:
            continue  # far below: the site refuses (its noisy test, margins of thousands)
        v = stats.vector
        shape = stats.shape
        values = [float(x) for x in v if abs(x) > 1e-9]
        for g in range(len(shape.group_keys)):  # the site's own mean bmi per group
            n, s = v[shape.index(g, 1, "count")], v[shape.index(g, 1, "sum")]
            values.append(float(35 + 25 * s / n))
        out[site] = values
    return out


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    if isinstance(value, str):
        try:
            return _numbers(json.loads(value))
        except ValueError:
            return []
    return []


def _found(
    messages: list[bytes], files: list[bytes], numbers: list[float], values: list[float]
) -> list[float]:
    """The values that appear as a JSON number, as float64 bytes anywhere, or as float32
    bytes in a message (not in the database files, where a 4-byte pattern could occur by
    chance in megabytes of ciphertext)."""
    hits = []
    for stat in values:
        as_number = any(abs(n - stat) <= 1e-9 * max(1.0, abs(stat)) for n in numbers)
        raw64, raw32 = np.float64(stat).tobytes(), np.float32(stat).tobytes()
        in_bytes = any(raw64 in b for b in [*messages, *files])
        if as_number or in_bytes or any(raw32 in b for b in messages):
            hits.append(stat)
    return hits


def test_an_answer_is_the_noisy_sum_of_the_accepting_sites(net: Deployment) -> None:
    before = net.spends()
    result = net.ask(COHORT, 0.5)
    # hospital-5 takes part while its small study budget lasts (tests may run in any order)
    assert {"hospital-1", "hospital-2", "hospital-3"} <= set(result.sites) <= {
        "hospital-1", "hospital-2", "hospital-3", "hospital-5",
    }  # fmt: skip
    assert "below this site's minimum of 100000 rows" in result.refused["hospital-4"]
    pooled = pd.concat([net.table(s) for s in result.sites])
    kept = pooled[pooled.age > 60]
    for row in result.frame.itertuples():
        truth = int((kept.sex == row.sex).sum())
        assert abs(row.count - truth) < 5 * result.sigma
        assert row.count_ci_low < row.count < row.count_ci_high
        half = row.count_ci_high - row.count
        assert half == pytest.approx(1.959964 * result.sigma, rel=1e-5)
        assert 10 <= row.avg_bmi <= 60
    after = net.spends()
    # refused by its noisy cohort test: that test is charged (to both scopes), nothing more
    assert after["hospital-4"] == before["hospital-4"] + 2
    tests = net.ledger("hospital-4").records()[-2:]
    assert all(r.label.startswith("minimum-cohort test") for r in tests)
    request = QueryRequest(COHORT, 0.5, 1e-6, DEMO_PURPOSE, "alice")
    for site in result.sites:
        assert after[site] == before[site] + 4  # test and release, analyst's and study's
        records = net.ledger(site).records()
        assert {r.scope for r in records[-2:]} == set(query_scopes(request))
        assert all(r.event == request.event for r in records[-2:])
        assert all(r.label.startswith("minimum-cohort test") for r in records[-4:-2])
    # the coordinator's audit log names the query, each refusal's reason and the cost
    assert net.server.coordinator is not None
    events = net.server.coordinator.audit_events(limit=100_000)
    answer = [e for e in events if e["action"] == "query.answer"][-1]
    assert answer["detail"]["charged_at"] == result.sites
    assert answer["detail"]["epsilon"] == 0.5 and answer["detail"]["analyst"] == "alice"
    refusal = [e for e in events if e["action"] == "query.refuse"][-1]
    assert refusal["actor"] == "site:hospital-4" and "cohort" in refusal["detail"]["reason"]


def test_no_site_statistic_appears_in_what_the_coordinator_keeps(net: Deployment) -> None:
    result = net.ask(COHORT, 0.25)
    assert net.server.coordinator is not None
    queries = net.server.coordinator.queries
    record = queries.record(result.query_id)
    messages = [base64.b64decode(e["bytes"]) for e in record["transcript"] if "bytes" in e]
    assert len(messages) > 20  # every stage's messages, both ways
    numbers = _numbers(record)
    files = [p.read_bytes() for p in Path(net.server.settings.data_dir).rglob("*") if p.is_file()]
    # what the audit log says (its details; ids and timestamps are not statistics)
    numbers += _numbers([e["detail"] for e in net.server.coordinator.audit_events(limit=100_000)])
    exact = _exact_statistics(net, COHORT)
    assert set(exact) == {"hospital-1", "hospital-2", "hospital-3", "hospital-5"}
    for site, values in exact.items():
        assert values, site
        assert not _found(messages, files, numbers, values), site


def test_past_its_budget_a_site_refuses_and_is_not_charged(net: Deployment) -> None:
    # hospital-5's study budget is 0.7: a second query at 0.5 passes it, whatever ran before
    for _ in range(2):
        before = net.spends()
        result = net.ask(COHORT, 0.5)
        if "hospital-5" in result.refused:
            break
    assert "past its budget" in result.refused["hospital-5"]
    assert net.spends()["hospital-5"] == before["hospital-5"]
    assert result.sites == ["hospital-1", "hospital-2", "hospital-3"]


def test_a_column_outside_the_policy_is_refused_everywhere_and_nothing_is_charged(
    net: Deployment,
) -> None:
    before = net.spends()
    with pytest.raises(ProtocolAbort) as info:
        net.ask("SELECT count(*) FROM patients WHERE zip = '12345'", 0.5)
    text = str(info.value)
    assert "0 site(s) accepted" in text
    assert "'zip' is outside the site policy (a direct identifier)" in text
    assert net.spends() == before


def test_the_cli_in_its_own_process_and_a_non_analyst_refused(
    net: Deployment, tmp_path: Path
) -> None:
    done = tutela(
        "query", "SELECT count(*) FROM patients WHERE diabetes GROUP BY sex", "--epsilon", "0.2",
        "--coordinator", net.server.url, "--ca", str(net.ca), "--purpose", DEMO_PURPOSE,
        "--token", net.analyst, "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [r["sex"] for r in out["rows"]] == ["F", "M"]
    assert "cohort" in out["refused"]["hospital-4"]
    auditor = net.token("auditor", "carol")
    with pytest.raises(ServiceError, match="lacks permission query:run"):
        net.ask(COHORT, 0.1, token=auditor)
    bad = tutela(
        "query", "SELECT count(*) FROM patients", "--epsilon", "0.2", "--coordinator",
        net.server.url, "--ca", str(net.ca), "--purpose", DEMO_PURPOSE, "--token", auditor,
        cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    assert "lacks permission query:run" in bad.stderr
