"""A site signs the analytics policy it enforces for DP queries (``SitePolicy.to_json``
carries ``[analytics]`` in a canonical form), and ``tutela comply`` catches a site whose
report claims one analytics policy while it accepts queries under another: the coordinator's
audit log (written by the real coordinator here) holds every acceptance, and each is held
against the policy the site signed."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

from tests.governance.test_comply import AUDIT_KEY, GOOD, SITE_KEYS
from tutela.governance.audit import AuditLog, VerifierKey
from tutela.governance.comply import CheckResult, check_run
from tutela.governance.minimisation import SitePolicy
from tutela.governance.query_evidence import analytics_contradictions, log_events
from tutela.governance.site_report import sign_site_report
from tutela.server.authz import Principal, Role
from tutela.server.coordinator import Coordinator
from tutela.server.sealing import open_sealer
from tutela.server.store import Store, sqlite_url

ADMIN = Principal("root", Role.ADMIN)
ALICE = Principal("alice", Role.ANALYST)
GROUPED = "SELECT count(*), avg(clamp(bmi, 10, 60)) FROM patients WHERE age > 60 GROUP BY sex"

POLICY_TOML = """
[purposes.readmission-risk]
columns = ["age", "bmi", "hba1c", "sex"]

[floor]
dp_required = true
max_epsilon = 2.0
max_delta = 1e-6
secure_aggregation_required = true

[analytics]
min_cohort = 20
max_query_epsilon = 0.5
cohort_share = 0.2

[analytics.categories]
sex = ["F", "M"]
"""


def _policy(text: str = POLICY_TOML) -> SitePolicy:
    return SitePolicy.from_mapping(tomllib.loads(text))


def test_the_signed_policy_carries_the_analytics_table_in_a_canonical_form() -> None:
    policy = _policy()
    doc = policy.to_json()
    assert doc["analytics"] == {
        "min_cohort": 20, "cohort_share": 0.2, "max_query_epsilon": 0.5,
        "analyst_epsilon": 3.0, "study_epsilon": 5.0, "delta": 1e-6, "max_rows": 2**24,
        "categories": {"sex": ["F", "M"]},
    }  # fmt: skip
    # the same policy written in another order signs to the same bytes
    reordered = POLICY_TOML.replace(
        "min_cohort = 20\nmax_query_epsilon = 0.5\ncohort_share = 0.2",
        "cohort_share = 0.2\nmax_query_epsilon = 0.5\nmin_cohort = 20",
    )
    assert reordered != POLICY_TOML
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    assert json.dumps(_policy(reordered).to_json(), sort_keys=True, separators=(",", ":")) == (
        canonical
    )
    # a stricter or looser analytics table is another signed policy
    looser = _policy(POLICY_TOML.replace("max_query_epsilon = 0.5", "max_query_epsilon = 1.0"))
    assert looser.to_json() != doc


def _coordinator(tmp_path: Path, log: AuditLog) -> Coordinator:
    coordinator = Coordinator(
        Store(sqlite_url(tmp_path / "c.db"), open_sealer(tmp_path / "keyring"))
    )

    def mirror(actor: str, action: str, resource: str, outcome: str, detail: Any) -> None:
        log.append(actor, action, resource, outcome, detail)

    coordinator.core.audit_hook = mirror  # as the served coordinator mirrors its events
    for site in ("a", "b", "c"):
        coordinator.activate_site(ADMIN, site)
    return coordinator


def _accept(categories: dict[str, list[str]]) -> dict[str, Any]:
    return {"accept": True, "identity": "00", "certificate": "pem", "binding": "sig",
            "categories": categories}  # fmt: skip


def _run(tmp_path: Path, accepts: dict[str, tuple[float, str, dict[str, list[str]]]]) -> Path:
    """A run whose sites a and b sign the policy above, and whose audit log holds the
    queries the coordinator took acceptances for: site -> (epsilon, sql, categories)."""
    root = tmp_path / "run"
    root.mkdir()
    doc = copy.deepcopy(GOOD)
    signed = _policy().to_json()
    ledger = {"scope": "site", "spent_epsilon": 1.8}
    doc["sites"] = [sign_site_report(s, {**signed, "site": s}, ledger, SITE_KEYS[s])
                    for s in ("a", "b")]  # fmt: skip
    (root / "results.json").write_text(json.dumps(doc))
    log = AuditLog.open(root / "audit.sqlite")
    coordinator = _coordinator(tmp_path, log)
    for site, (epsilon, sql, categories) in accepts.items():
        query_id = coordinator.queries.submit(ALICE, sql, epsilon, purpose="readmission-risk")
        coordinator.queries.answer(site, query_id, _accept(categories))
    log.checkpoint(AUDIT_KEY, store=False).save(root / "audit.checkpoint")
    log.close()
    return root


def _floor(run: Path) -> CheckResult:
    report = check_run(run, "gdpr", audit_keys=[VerifierKey.of(AUDIT_KEY)])
    return next(r for r in report.results if r.id == "site-policy-floor")


def test_sites_that_accept_only_what_they_sign_pass(tmp_path: Path) -> None:
    run = _run(tmp_path, {"a": (0.5, GROUPED, {"sex": ["F", "M"]}),
                          "b": (0.3, "SELECT count(*) FROM patients", {})})  # fmt: skip
    floor = _floor(run)
    assert floor.status.value == "pass", floor.reason
    events = log_events(run / "audit.sqlite")
    assert [e["action"] for e in events].count("query.accept") == 2


def test_a_site_that_signs_a_stricter_epsilon_cap_than_it_enforces_is_caught(
    tmp_path: Path,
) -> None:
    """Site b signs max_query_epsilon = 0.5 but runs a looser policy: it accepts 0.8."""
    run = _run(tmp_path, {"a": (0.5, GROUPED, {"sex": ["F", "M"]}),
                          "b": (0.8, GROUPED, {"sex": ["F", "M"]})})  # fmt: skip
    floor = _floor(run)
    assert floor.status.value == "fail"
    assert set(floor.evidence["shortfalls"]) == {"b"}
    (reason,) = floor.evidence["shortfalls"]["b"]
    assert "at epsilon 0.8 above its signed maximum of 0.5 per query" in reason


def test_a_site_that_groups_over_other_categories_or_columns_than_it_signs_is_caught(
    tmp_path: Path,
) -> None:
    run = _run(
        tmp_path,
        {
            "a": (0.5, GROUPED, {"sex": ["F", "M", "X"]}),  # categories it does not sign
            "b": (0.5, "SELECT count(*) FROM patients GROUP BY ward",  # a column outside
                  {"ward": ["W1"]}),
        },
    )  # fmt: skip
    shortfalls = _floor(run).evidence["shortfalls"]
    assert (
        "declaring categories ['F', 'M', 'X'] for 'sex', not its signed ['F', 'M']"
        in (shortfalls["a"][0])
    )
    assert any("reads 'ward' outside purpose 'readmission-risk'" in r for r in shortfalls["b"])
    assert any("grouped by 'ward' for which it signs no categories" in r
               for r in shortfalls["b"])  # fmt: skip


def test_a_report_whose_analytics_table_was_edited_after_signing_does_not_verify(
    tmp_path: Path,
) -> None:
    """Claiming a stricter analytics table than the one signed breaks the signature."""
    run = _run(tmp_path, {"a": (0.5, GROUPED, {"sex": ["F", "M"]})})
    doc = json.loads((run / "results.json").read_text())
    doc["sites"][1]["policy"]["analytics"]["max_query_epsilon"] = 0.1
    (run / "results.json").write_text(json.dumps(doc))
    report = check_run(run, "gdpr", audit_keys=[VerifierKey.of(AUDIT_KEY)])
    verified = next(r for r in report.results if r.id == "site-reports-verified")
    assert verified.status.value == "fail" and "b's report" in verified.reason


def test_a_policy_without_an_analytics_table_accepts_no_query() -> None:
    events = [
        {"actor": "analyst:alice", "action": "query.submit", "resource": "query/q1",
         "details": {"sql": "SELECT count(*) FROM t", "epsilon": 0.1, "purpose": "p",
                     "reads": {"columns": [], "grouped": []}}},
        {"actor": "site:a", "action": "query.accept", "resource": "query/q1",
         "details": {"categories": {}}},
    ]  # fmt: skip
    signed = _policy().to_json()
    del signed["analytics"]
    assert analytics_contradictions({"a": signed}, events) == {
        "a": ["accepted query q1 but signs no analytics policy"]
    }
