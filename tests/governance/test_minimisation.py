"""Data minimisation and the site policy: floor, task limits, protective defaults."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.errors import ConfigError, DataError, PolicyViolation
from tutela.governance.audit import AuditLog
from tutela.governance.minimisation import (
    DEFAULT_MAX_DELTA,
    DEFAULT_MAX_EPSILON,
    DIRECT_IDENTIFIERS,
    SitePolicy,
    StudyRequest,
    is_direct_identifier,
    minimise,
    normalise_column,
)

POLICY_TOML = """
site = "st-marys"
never_share = ["Ward"]

[purposes.readmission-risk]
columns = ["age", "sex", "bmi", "hba1c", "los_days", "ward"]

[purposes.billing-audit]
columns = ["age", "email"]

[floor]
dp_required = true
max_epsilon = 3.0
max_delta = 1e-5
secure_aggregation_required = true
min_k = 5
"""


@pytest.fixture
def policy(tmp_path: Path) -> SitePolicy:
    path = tmp_path / "site.toml"
    path.write_text(POLICY_TOML)
    return SitePolicy.from_toml(path)


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Patient Name": ["Ann", "Bob"],
            "mrn": ["M1", "M2"],
            "age": [71, 64],
            "sex": ["F", "M"],
            "bmi": [31.0, 24.5],
            "hba1c": [7.1, 5.4],
            "los_days": [4, 2],
            "ward": ["A", "B"],
            "religion": ["x", "y"],
        }
    )


def test_minimise_keeps_exactly_the_request_and_explains_drops(
    policy: SitePolicy, table: pd.DataFrame
) -> None:
    original = table.copy()
    out, record = minimise(table, "readmission-risk", ["hba1c", "age", "sex"], policy)
    assert list(out.columns) == ["hba1c", "age", "sex"]
    assert out.equals(table[["hba1c", "age", "sex"]])
    assert table.equals(original)  # input untouched
    assert record.kept == ("hba1c", "age", "sex")
    assert record.dropped == {
        "Patient Name": "never leaves the site (a direct identifier)",
        "mrn": "never leaves the site (a direct identifier)",
        "bmi": "not requested by the study",
        "los_days": "not requested by the study",
        "ward": "never leaves the site (on the site's never-share list)",
        "religion": "not allowed for purpose 'readmission-risk'",
    }
    assert set(record.kept) | set(record.dropped) == set(table.columns)
    assert record.to_json()["dropped"]["religion"].startswith("not allowed")


def test_forbidden_columns_are_named(policy: SitePolicy, table: pd.DataFrame) -> None:
    with pytest.raises(PolicyViolation, match=r"'mrn' \(a direct identifier\)"):
        minimise(table, "readmission-risk", ["age", "mrn"], policy)
    with pytest.raises(PolicyViolation, match=r"'ward' \(on the site's never-share list\)"):
        minimise(table, "readmission-risk", ["ward"], policy)
    # allowed by the purpose list, yet a direct identifier: never leaves
    with pytest.raises(PolicyViolation, match="'email'"):
        minimise(table.assign(email="a@b"), "billing-audit", ["email"], policy)
    with pytest.raises(
        PolicyViolation, match="not allowed for purpose 'readmission-risk': 'religion'"
    ):
        minimise(table, "readmission-risk", ["age", "religion"], policy)
    with pytest.raises(PolicyViolation, match="purpose 'marketing' is not accepted"):
        minimise(table, "marketing", ["age"], policy)
    with pytest.raises(DataError, match="'bmi'"):
        minimise(table.drop(columns=["bmi"]), "readmission-risk", ["bmi"], policy)
    with pytest.raises(ValueError):
        minimise(table, "readmission-risk", ["age", "age"], policy)


def test_minimisation_is_audited(policy: SitePolicy, table: pd.DataFrame, tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "audit.sqlite")
    minimise(table, "readmission-risk", ["age"], policy, audit=log)
    (rec,) = list(log.records())
    assert (rec.actor, rec.action, rec.resource) == (
        "site:st-marys",
        "data:minimise",
        "purpose/readmission-risk",
    )
    assert rec.details["kept"] == ["age"]
    assert "mrn" in rec.details["dropped"]
    log.close()


@settings(max_examples=40, deadline=None)
@given(st.sets(st.sampled_from(["age", "sex", "bmi", "hba1c", "los_days", "ward", "mrn", "x"])))
def test_output_never_contains_anything_outside_the_allowed_request(cols: set[str]) -> None:
    policy = SitePolicy.from_mapping(
        {"never_share": ["ward"], "purposes": {"p": {"columns": ["age", "sex", "bmi", "mrn"]}}}
    )
    df = pd.DataFrame(
        {c: [1] for c in ["age", "sex", "bmi", "hba1c", "los_days", "ward", "mrn", "x"]}
    )
    request = sorted(cols)
    try:
        out, record = minimise(df, "p", request, policy)
    except PolicyViolation:
        assert any(c not in {"age", "sex", "bmi"} for c in request)
        return
    assert set(out.columns) == set(request) <= {"age", "sex", "bmi"}
    assert not set(record.dropped) & set(out.columns)


def test_identifier_names() -> None:
    for name in [
        "SSN",
        "Patient Name",
        "e-mail",
        "contact_email",
        "patient_mrn",
        "Zip Code",
        "DOB",
    ]:
        assert is_direct_identifier(name), name
    for name in ["age", "sex", "hba1c", "zip3", "diagnosis_name_code", "smoker"]:
        assert not is_direct_identifier(name), name
    assert "name" in DIRECT_IDENTIFIERS
    assert normalise_column("  Patient--Name ") == "patient_name"


def _request(**kw: object) -> StudyRequest:
    base: dict[str, object] = {
        "study": "s1",
        "purpose": "readmission-risk",
        "columns": ("age", "sex"),
        "dp_mode": "client",
        "epsilon": 2.0,
        "delta": 1e-6,
        "secure_aggregation": "secagg+",
    }
    base.update(kw)
    return StudyRequest(**base)  # type: ignore[arg-type]


def test_evaluate_accepts_a_compliant_request(policy: SitePolicy) -> None:
    decision = policy.evaluate(_request())
    assert decision.allowed, decision.reasons
    assert decision.reasons == ()
    assert {f.rule for f in decision.findings} == {
        "purpose", "never-share", "columns", "dp-required", "epsilon", "delta",
        "secure-aggregation",
    }  # fmt: skip
    decision.raise_if_denied()


@pytest.mark.parametrize(
    ("change", "rule", "fragment"),
    [
        ({"dp_mode": "none"}, "dp-required", "differential privacy is required"),
        ({"epsilon": 8.0}, "epsilon", "epsilon 8.0 exceeds the site maximum 3.0"),
        ({"epsilon": None}, "epsilon", "states no epsilon"),
        ({"delta": 1e-3}, "delta", "exceeds"),
        ({"secure_aggregation": "none"}, "secure-aggregation", "secure aggregation is required"),
        ({"local_epochs": 6}, "local-epochs", "6 local epochs per round exceed the site maximum 5"),
        ({"secagg_threshold": 1}, "secagg-threshold", "threshold 1 is below the site minimum 2"),
        (
            {"purpose": "billing-audit", "columns": ("age", "email")},
            "never-share",
            "'email' (a direct identifier)",
        ),
        ({"columns": ("age", "religion")}, "columns", "'religion'"),
        ({"purpose": "marketing"}, "purpose", "not accepted"),
        ({"releases_records": True, "k": 3}, "k-anonymity", "at least 5-anonymous"),
    ],
)
def test_evaluate_denies_with_reasons(
    policy: SitePolicy, change: dict[str, object], rule: str, fragment: str
) -> None:
    decision = policy.evaluate(_request(**change))
    assert not decision.allowed
    failed = [f for f in decision.findings if not f.passed]
    assert [f.rule for f in failed] == [rule]
    assert fragment in failed[0].message
    with pytest.raises(PolicyViolation, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        decision.raise_if_denied()


def test_defaults_are_protective() -> None:
    policy = SitePolicy()
    assert policy.purposes == {}  # nothing is allowed until the site lists it
    assert policy.dp_required and policy.secure_aggregation_required
    assert policy.block_direct_identifiers
    assert policy.max_epsilon == DEFAULT_MAX_EPSILON <= 3.0
    assert policy.max_delta == DEFAULT_MAX_DELTA <= 1e-5
    assert policy.min_k >= 5 and policy.min_secagg_threshold >= 2
    assert policy.max_local_epochs == 5 and policy.max_steps_per_round == 10_000
    # A file that only lists a purpose gets every protective default, not a permissive one.
    assert SitePolicy.from_mapping({"purposes": {"p": {"columns": ["age"]}}}) == SitePolicy(
        {"p": frozenset({"age"})}
    )
    decision = SitePolicy({"p": frozenset({"age"})}).evaluate(StudyRequest("s", "p", ("age",)))
    assert set(decision.reasons) == {
        "differential privacy is required by this site but the study has it off",
        "secure aggregation is required by this site but the study uses none",
    }
    weak = StudyRequest("s", "p", ("age",), "sample", 8.0, 1e-3, "secagg+")
    assert set(SitePolicy({"p": frozenset({"age"})}).evaluate(weak).reasons) == {
        "epsilon 8.0 exceeds the site maximum 3.0",
        "delta 0.001 exceeds the site maximum 1e-05",
    }


def test_a_study_asking_less_protection_is_refused_with_every_reason(policy: SitePolicy) -> None:
    request = _request(
        purpose="readmission-risk",
        columns=("age", "ward", "religion"),
        dp_mode="none",
        secure_aggregation="none",
        local_epochs=9,
        releases_records=True,
        k=2,
    )
    decision = policy.evaluate(request)
    failed = {f.rule for f in decision.findings if not f.passed}
    assert failed == {
        "never-share", "columns", "dp-required", "secure-aggregation", "local-epochs",
        "k-anonymity",
    }  # fmt: skip
    with pytest.raises(PolicyViolation) as exc:
        decision.raise_if_denied()
    for reason in decision.reasons:
        assert reason in str(exc.value)


def test_check_task_refuses_a_round_beyond_the_limits() -> None:
    policy = SitePolicy(max_local_epochs=2, max_steps_per_round=40)
    policy.check_task(local_epochs=2, steps=40)
    with pytest.raises(PolicyViolation, match="asks for 3 local epochs") as exc:
        policy.check_task(local_epochs=3, steps=60)
    assert "60 optimiser steps" in str(exc.value)  # every limit exceeded is named
    with pytest.raises(PolicyViolation, match="41 optimiser steps"):
        policy.check_task(local_epochs=1, steps=41)


def test_policy_json_round_trips_through_the_file_shape(policy: SitePolicy) -> None:
    doc = policy.to_json()
    assert doc["floor"]["max_epsilon"] == 3.0 and doc["limits"]["max_local_epochs"] == 5
    assert SitePolicy.from_mapping(doc) == policy


def test_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="site policy not found"):
        SitePolicy.from_toml(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[floor\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        SitePolicy.from_toml(tmp_path / "bad.toml")


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"purposes": {"p": {"columns": "age"}}}, "purposes.p.columns"),
        ({"floor": {"max_epsilon": "3"}}, "floor.max_epsilon"),
        ({"floor": {"dp_required": 1}}, "floor.dp_required"),
        ({"floor": {"max_epsilon": -1.0}}, "max_epsilon must be a positive"),
        ({"floor": {"colour": 1}}, "floor.colour"),
        ({"floor": {"max_delta": 1.5}}, "max_delta must be in"),
        ({"limits": {"max_local_epochs": 0}}, "max_local_epochs must be a positive"),
        ({"limits": {"max_steps_per_round": 1.5}}, "limits.max_steps_per_round"),
        ({"limits": {"max_rounds": 3}}, "unknown key limits.max_rounds"),
        ({"purposes": {"p": {"columns": [], "why": "x"}}}, "purposes.p.why"),
        ({"sitez": 1}, "unknown key 'sitez'"),
    ],
)
def test_policy_errors(doc: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        SitePolicy.from_mapping(doc)
