"""Column classification, the HIPAA Safe Harbor rules and the table pipeline."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tutela.anonymize import (
    ColumnRole,
    IdentifierKind,
    Profile,
    anonymize_table,
    apply_safe_harbor,
    check_privacy,
    classify_column,
    classify_columns,
    generate_patients,
    pseudonym,
)
from tutela.errors import AnonymizationError

KEY = bytes(range(32))
TODAY = dt.date(2025, 6, 1)

# One column per Safe Harbor identifier that lives in tables, (A)-(R).
IDENTIFIER_COLUMNS = {
    "patient_name": (IdentifierKind.NAME, ["Ana Silva", "Wei Chen"]),  # A
    "street_address": (IdentifierKind.ADDRESS, ["12 Elm St", "4 Oak Ave"]),  # B
    "city": (IdentifierKind.GEOGRAPHY, ["Boston", "Austin"]),  # B
    "home_phone": (IdentifierKind.PHONE, ["617-432-1234", "212-867-5309"]),  # D
    "fax": (IdentifierKind.FAX, ["617-432-1299", "212-867-5300"]),  # E
    "email": (IdentifierKind.EMAIL, ["a@example.org", "b@example.org"]),  # F
    "ssn": (IdentifierKind.SSN, ["536-22-1234", "536-22-1235"]),  # G
    "mrn": (IdentifierKind.MRN, ["00123456", "00123457"]),  # H
    "member_id": (IdentifierKind.HEALTH_PLAN, ["XZH123456789", "XZH123456788"]),  # I
    "account_number": (IdentifierKind.ACCOUNT, ["1234567890", "1234567891"]),  # J
    "license_number": (IdentifierKind.LICENSE, ["S12345678", "S12345679"]),  # K
    "vin": (IdentifierKind.VEHICLE, ["1M8GDM9AXKP042788", "1M8GDM9AXKP042789"]),  # L
    "device_serial": (IdentifierKind.DEVICE, ["PM123456X", "PM123457X"]),  # M
    "website": (IdentifierKind.URL, ["https://a.example.org", "https://b.example.org"]),  # N
    "ip_address": (IdentifierKind.IP, ["10.0.0.1", "10.0.0.2"]),  # O
    "fingerprint": (IdentifierKind.BIOMETRIC, ["f1", "f2"]),  # P
    "photo": (IdentifierKind.PHOTO, ["img1.jpg", "img2.jpg"]),  # Q
    "patient_id": (IdentifierKind.OTHER_ID, ["P1", "P2"]),  # R
}


@pytest.mark.parametrize("column", list(IDENTIFIER_COLUMNS))
def test_each_identifier_column_is_classified_and_dropped(column):
    kind, values = IDENTIFIER_COLUMNS[column]
    df = pd.DataFrame({column: values, "sex": ["F", "M"]})
    infos = classify_columns(df)
    assert infos[column].kind is kind
    out = apply_safe_harbor(df, infos, today=TODAY)
    assert column not in out.table.columns
    assert "sex" in out.table.columns


def test_identifiers_found_by_content_when_names_are_unhelpful():
    n = 40
    df = pd.DataFrame(
        {
            "c1": [f"user{i}@example.org" for i in range(n)],
            "c2": [f"536-22-{1000 + i}" for i in range(n)],
            "c3": [f"2020-01-{1 + i % 28:02d}" for i in range(n)],
            "c4": [f"Seen by Dr. Okafor on visit {i}, patient doing well today." for i in range(n)],
            "c5": [f"Z{i:06d}" for i in range(n)],
            "c6": ["a", "b"] * (n // 2),
        }
    )
    info = classify_columns(df)
    assert info["c1"].kind is IdentifierKind.EMAIL
    assert info["c2"].kind is IdentifierKind.SSN
    assert info["c3"].kind is IdentifierKind.DATE
    assert info["c4"].kind is IdentifierKind.FREE_TEXT
    assert info["c5"].kind is IdentifierKind.OTHER_ID
    assert info["c6"].role is ColumnRole.OTHER


def test_roles_of_quasi_and_sensitive_columns():
    assert classify_column(pd.Series(["F"], name="Sex")).role is ColumnRole.QUASI_IDENTIFIER
    assert classify_column(pd.Series(["I10"], name="diagnosis")).role is ColumnRole.SENSITIVE
    assert classify_column(pd.Series([1.0], name="bmi")).role is ColumnRole.OTHER
    assert classify_column(pd.Series([34], name="AgeYears")).kind is IdentifierKind.AGE


def test_dates_ages_zips_birth_years():
    df = pd.DataFrame(
        {
            "admit_date": ["2021-03-14", "March 2, 2019", "not a date"],
            "age": [45, 90, 103],
            "zip": ["02114", "03601", "89012-1234"],
            "dob": ["1930-05-01", "1980-01-01", "1935-06-30"],
        }
    )
    out = apply_safe_harbor(df, classify_columns(df), today=TODAY)
    t = out.table
    assert t["admit_date"].tolist()[:2] == [2021, 2019]
    assert pd.isna(t["admit_date"].iloc[2])
    assert t["age"].tolist() == [45, 90, 90]
    assert out.top_codes == {"age": 90.0}
    assert t["zip"].tolist() == ["021", "000", "000"]  # 036 and 890 are restricted ZIP3s
    assert t["dob"].tolist() == [1935, 1980, 1935]
    assert out.bottom_codes == {"dob": 1935.0}


def test_free_text_columns_are_detected_and_generalised(rules_detector):
    df = pd.DataFrame(
        {"notes": ["Mrs. Okafor (SSN 536-22-1234) seen 03/14/2021, 92-year-old, Boston, MA 02114."]}
    )
    out = apply_safe_harbor(df, classify_columns(df), detector=rules_detector, today=TODAY)
    text = out.table["notes"].iloc[0]
    assert "Okafor" not in text and "536-22-1234" not in text
    assert "2021" in text and "03/14" not in text
    assert "90+-year-old" in text
    assert "MA 021" in text and "02114" not in text
    assert out.text_spans["notes"]["SSN"] == 1


def test_pseudonymise_instead_of_drop_links_across_tables():
    df = pd.DataFrame({"ssn": ["536-22-1234", "536 22 1234"], "sex": ["F", "M"]})
    out = apply_safe_harbor(
        df, classify_columns(df), key=KEY, direct_identifiers="pseudonymize", today=TODAY
    )
    assert out.table["ssn"].tolist() == [pseudonym(KEY, "536-22-1234", "SSN")] * 2
    assert out.strict is False
    with pytest.raises(ValueError, match="key"):
        apply_safe_harbor(df, classify_columns(df), direct_identifiers="pseudonymize")


def test_pipeline_end_to_end_report(rules_detector):
    df = generate_patients(300, seed=4)
    res = anonymize_table(df, k=5, l=2, detector=rules_detector, today=TODAY)
    rep = res.report
    for col in ("name", "ssn", "mrn", "phone", "email", "address", "city", "patient_id"):
        assert col not in res.table.columns
    assert rep.k_achieved >= 5 and rep.l_achieved >= 2
    assert rep.verified
    assert rep.sensitive == "diagnosis"
    assert set(rep.quasi_identifiers) == {"state", "zip", "dob", "age", "sex", "race", "admit_date"}
    assert rep.rows_out + rep.suppressed_rows == 300
    assert rep.suppressed_rows <= 0.05 * 300
    assert rep.roles["ssn"] == "direct_identifier"
    assert 0 < rep.ncp < 1
    assert rep.risk["prosecutor_max"] <= 1 / 5
    # the independent check agrees with the report
    check = check_privacy(res.table, rep.quasi_identifiers, "diagnosis")
    assert (check.k, check.classes) == (rep.k_achieved, rep.equivalence_classes)
    j = rep.to_json()
    for field in ("k_achieved", "suppressed_rows", "equivalence_classes", "ncp", "roles"):
        assert field in j
    # ages over 89 never appear as such
    assert not any(s.isdigit() and int(s) >= 90 for s in res.table["age"].astype(str))


def test_pipeline_explicit_qis_and_profile_none():
    df = generate_patients(200, seed=5)
    res = anonymize_table(
        df, profile=Profile.NONE, k=4, quasi_identifiers=["age", "sex"], sensitive="diagnosis"
    )
    assert res.report.quasi_identifiers == ["age", "sex"]
    assert set(res.table["zip"]) <= set(df["zip"])  # profile "none" leaves ZIPs to the caller
    assert "ssn" not in res.table.columns
    assert check_privacy(res.table, ["age", "sex"]).k >= 4


def test_pipeline_errors_name_the_problem():
    df = generate_patients(30, seed=6)
    with pytest.raises(AnonymizationError, match="k=31"):
        anonymize_table(df, k=31)
    with pytest.raises(ValueError, match="'weight_kg'"):
        anonymize_table(df, k=2, quasi_identifiers=["age", "weight_kg"])
    with pytest.raises(ValueError, match="'outcome'"):
        anonymize_table(df, k=2, sensitive="outcome")
    with pytest.raises(ValueError, match="both"):
        anonymize_table(df, k=2, quasi_identifiers=["age", "sex"], sensitive="sex")


def test_missing_numeric_qis_count_against_the_budget():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"age": rng.integers(20, 80, 100).astype(float), "sex": ["F", "M"] * 50})
    df.loc[:2, "age"] = np.nan
    res = anonymize_table(df, profile=Profile.NONE, k=5, max_suppression=0.05)
    assert res.report.suppressed_rows >= 3
    with pytest.raises(AnonymizationError, match="missing values"):
        anonymize_table(df, profile=Profile.NONE, k=5, max_suppression=0.01)
