"""Column classification: direct identifier, quasi-identifier, sensitive, other.

Each column gets a role and, where it matches one, the HIPAA Safe Harbor identifier kind
that decides its rule. The decision uses the column name first and then a sample of its
values (pattern recognisers, date parsing, uniqueness, text length), and records why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from tutela.anonymize.operators import parse_date
from tutela.anonymize.recognizers import run_patterns
from tutela.anonymize.spans import PiiLabel


class ColumnRole(StrEnum):
    """What a column is, for anonymisation purposes."""

    DIRECT_IDENTIFIER = "direct_identifier"
    QUASI_IDENTIFIER = "quasi_identifier"
    SENSITIVE = "sensitive"
    OTHER = "other"


class IdentifierKind(StrEnum):
    """HIPAA Safe Harbor identifier categories (45 CFR 164.514(b)(2)(i)) as column kinds."""

    NAME = "name"  # (A)
    ADDRESS = "address"  # (B) street address
    GEOGRAPHY = "geography"  # (B) city, county, precinct
    ZIP = "zip"  # (B) ZIP code
    DATE = "date"  # (C)
    BIRTH_DATE = "birth_date"  # (C)
    AGE = "age"  # (C) ages over 89
    PHONE = "phone"  # (D)
    FAX = "fax"  # (E)
    EMAIL = "email"  # (F)
    SSN = "ssn"  # (G)
    MRN = "mrn"  # (H)
    HEALTH_PLAN = "health_plan"  # (I)
    ACCOUNT = "account"  # (J)
    LICENSE = "license"  # (K)
    VEHICLE = "vehicle"  # (L)
    DEVICE = "device"  # (M)
    URL = "url"  # (N)
    IP = "ip"  # (O)
    BIOMETRIC = "biometric"  # (P)
    PHOTO = "photo"  # (Q)
    OTHER_ID = "other_id"  # (R)
    FREE_TEXT = "free_text"  # text that may contain any of the above


DIRECT_KINDS: frozenset[IdentifierKind] = frozenset(
    {
        IdentifierKind.NAME,
        IdentifierKind.ADDRESS,
        IdentifierKind.PHONE,
        IdentifierKind.FAX,
        IdentifierKind.EMAIL,
        IdentifierKind.SSN,
        IdentifierKind.MRN,
        IdentifierKind.HEALTH_PLAN,
        IdentifierKind.ACCOUNT,
        IdentifierKind.LICENSE,
        IdentifierKind.VEHICLE,
        IdentifierKind.DEVICE,
        IdentifierKind.URL,
        IdentifierKind.IP,
        IdentifierKind.BIOMETRIC,
        IdentifierKind.PHOTO,
        IdentifierKind.OTHER_ID,
    }
)
"""Kinds that identify a person on their own; Safe Harbor removes them."""


@dataclass(frozen=True)
class ColumnInfo:
    """Classification of one column and the evidence for it."""

    name: str
    role: ColumnRole
    kind: IdentifierKind | None
    reason: str


_K = IdentifierKind
_NAME_RULES: tuple[tuple[str, IdentifierKind | ColumnRole], ...] = (
    (r"ssn|social_?security|soc_?sec", _K.SSN),
    (r"mrn|medical_?record|record_?(?:no|num|number)|chart_?(?:no|num|number)", _K.MRN),
    (
        r"member_?id|insurance_?(?:id|no|number)|policy_?(?:id|no|number)|subscriber|"
        r"health_?plan|medicaid|medicare|mbi|beneficiary",
        _K.HEALTH_PLAN,
    ),
    (r"account|acct|iban|card_?(?:no|num|number)|credit_?card", _K.ACCOUNT),
    (r"licen[cs]e|dl_?(?:no|num|number)|certificate|dea", _K.LICENSE),
    (r"vin|plate|vehicle", _K.VEHICLE),
    (r"device|serial|udi|imei", _K.DEVICE),
    (r"url|website|homepage|web_?page", _K.URL),
    (r"ip|ip_?addr(?:ess)?|ipv[46]", _K.IP),
    (r"e_?mail", _K.EMAIL),
    (r"fax", _K.FAX),
    (r"phone|tel|telephone|mobile|cell|pager", _K.PHONE),
    (r"fingerprint|voice_?print|retina|iris_?scan|biometric", _K.BIOMETRIC),
    (r"photo|image|picture|face|portrait", _K.PHOTO),
    (
        r"(?:first|last|middle|full|given|family|maiden|patient|mother|father|guardian|"
        r"contact|sur)_?name|name|surname|forename|initials",
        _K.NAME,
    ),
    (r"address|street|addr|address_?line_?\d", _K.ADDRESS),
    (r"city|town|county|municipality|neighbou?rhood|precinct|district|village", _K.GEOGRAPHY),
    (r"zip|zip_?code|zipcode|postal_?code|postcode|zip5", _K.ZIP),
    (r"dob|birth_?date|date_?of_?birth|birth_?day|birthdate|born", _K.BIRTH_DATE),
    (r"age|age_?years|age_?at_?\w+", _K.AGE),
    (
        r"\w*_?date|date_?\w*|\w+_dt|dt_\w+|admit\w*|discharge\w*|admission\w*|death\w*|"
        r"visit\w*|encounter_?date|timestamp|\w+_time|\w+_at",
        _K.DATE,
    ),
    (
        r"notes?|comments?|text|narrative|description|summary|report|free_?text|remarks|"
        r"history|hpi|findings|impression",
        _K.FREE_TEXT,
    ),
    (
        r"(?:patient|person|subject|participant|member|record|encounter|visit|case|"
        r"customer|user)_?(?:id|no|num|number|key|uuid|guid)|uuid|guid|id",
        _K.OTHER_ID,
    ),
    (
        r"sex|gender|race|ethnicity|ethnic_?group|marital\w*|education\w*|occupation|job|"
        r"language|religion|nationality|native_?country|country|state|region|zip3|height|"
        r"weight|workclass|employment\w*|income_?bracket",
        ColumnRole.QUASI_IDENTIFIER,
    ),
    (
        r"diagnosis|diagnoses|dx|icd\w*|condition|disease|outcome|result\w*|test_?result|"
        r"medication\w*|drug\w*|procedure\w*|hiv\w*|treatment\w*|cancer\w*|salary|income|"
        r"disorder|pregnan\w*|substance\w*|prognosis|label|target",
        ColumnRole.SENSITIVE,
    ),
)
# Other words may precede a keyword ("home_phone", "primary_diagnosis") and a number-like
# suffix may follow ("account_number"), except for names: "drug_name" is not a person.
_AFFIXED = r"(?:[a-z0-9]+_)*(?:{pat})(?:_(?:no|num|number|nr|id|code|value|\d+))?"
_COMPILED = [
    (re.compile(f"(?:{pat})" if what is _K.NAME else _AFFIXED.format(pat=pat)), what)
    for pat, what in _NAME_RULES
]

_LABEL_KIND: dict[PiiLabel, IdentifierKind] = {
    PiiLabel.EMAIL: _K.EMAIL,
    PiiLabel.PHONE: _K.PHONE,
    PiiLabel.SSN: _K.SSN,
    PiiLabel.URL: _K.URL,
    PiiLabel.IP_ADDRESS: _K.IP,
    PiiLabel.CREDIT_CARD: _K.ACCOUNT,
    PiiLabel.IBAN: _K.ACCOUNT,
    PiiLabel.VEHICLE: _K.VEHICLE,
    PiiLabel.ADDRESS: _K.ADDRESS,
}


def _normalise(name: str) -> str:
    s = re.sub(r"([a-z])([A-Z])", r"\1_\2", name.strip())
    return re.sub(r"[^0-9a-z]+", "_", s.lower()).strip("_")


def _role_of(kind: IdentifierKind) -> ColumnRole:
    if kind in DIRECT_KINDS:
        return ColumnRole.DIRECT_IDENTIFIER
    if kind is IdentifierKind.FREE_TEXT:
        return ColumnRole.OTHER
    return ColumnRole.QUASI_IDENTIFIER


def _from_content(series: pd.Series, rng: np.random.Generator, sample: int) -> ColumnInfo | None:
    values = series.dropna()
    if values.empty:
        return None
    if len(values) > sample:
        values = values.iloc[np.sort(rng.choice(len(values), sample, replace=False))]
    if pd.api.types.is_datetime64_any_dtype(values):
        return ColumnInfo(str(series.name), ColumnRole.QUASI_IDENTIFIER, _K.DATE, "datetime dtype")
    if pd.api.types.is_numeric_dtype(values):
        return None
    texts = [str(v) for v in values]
    n = len(texts)
    votes: dict[PiiLabel, int] = {}
    for t in texts:
        for span in run_patterns(t):
            if len(span) >= 0.8 * len(t.strip()):
                votes[span.label] = votes.get(span.label, 0) + 1
                break
    if votes:
        label, count = max(votes.items(), key=lambda kv: kv[1])
        kind = _LABEL_KIND.get(label)
        if kind is not None and count >= 0.6 * n:
            return ColumnInfo(
                str(series.name), _role_of(kind), kind, f"{count}/{n} sampled values are {label}"
            )
    dated = sum(parse_date(t) is not None for t in texts)
    if dated >= 0.8 * n:
        return ColumnInfo(
            str(series.name),
            ColumnRole.QUASI_IDENTIFIER,
            _K.DATE,
            f"{dated}/{n} values parse as dates",
        )
    mean_len = sum(len(t) for t in texts) / n
    if mean_len > 40 and sum(" " in t for t in texts) >= 0.8 * n:
        return ColumnInfo(
            str(series.name),
            ColumnRole.OTHER,
            _K.FREE_TEXT,
            f"free text (mean {mean_len:.0f} chars)",
        )
    if n >= 20 and series.dropna().nunique() >= 0.95 * series.notna().sum():
        return ColumnInfo(
            str(series.name),
            ColumnRole.DIRECT_IDENTIFIER,
            _K.OTHER_ID,
            "values are unique per row (an identifying code)",
        )
    return None


def classify_column(
    series: pd.Series, *, rng: np.random.Generator | None = None, sample: int = 200
) -> ColumnInfo:
    """Classify one column from its name and a sample of its values.

    Args:
        series: the column (its ``name`` is used).
        rng: sampling generator (default: seeded with 0, so results are reproducible).
        sample: number of values inspected.
    """
    gen = rng if rng is not None else np.random.default_rng(0)
    name = str(series.name)
    norm = _normalise(name)
    for pattern, what in _COMPILED:
        if pattern.fullmatch(norm):
            if isinstance(what, IdentifierKind):
                if what is _K.OTHER_ID and series.nunique(dropna=True) < 0.5 * series.notna().sum():
                    continue  # an "id" column with many repeats is a grouping key, not a person
                return ColumnInfo(name, _role_of(what), what, f"column name {name!r}")
            return ColumnInfo(name, what, None, f"column name {name!r}")
    found = _from_content(series, gen, sample)
    if found is not None:
        return found
    return ColumnInfo(name, ColumnRole.OTHER, None, "no identifying name or content")


def classify_columns(
    df: pd.DataFrame,
    *,
    overrides: Mapping[str, ColumnRole] | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, ColumnInfo]:
    """Classify every column; ``overrides`` force roles for named columns.

    Raises:
        ValueError: an override names a column that does not exist.
    """
    overrides = dict(overrides or {})
    for col in overrides:
        if col not in df.columns:
            raise ValueError(f"unknown column {col!r}")
    gen = rng if rng is not None else np.random.default_rng(0)
    out: dict[str, ColumnInfo] = {}
    for col in df.columns:
        info = classify_column(df[col], rng=gen)
        if col in overrides:
            info = ColumnInfo(str(col), overrides[col], info.kind, "given by the caller")
        out[str(col)] = info
    return out
