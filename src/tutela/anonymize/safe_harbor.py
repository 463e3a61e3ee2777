"""HIPAA Safe Harbor (45 CFR 164.514(b)(2)) as deterministic column rules.

* Direct identifiers (A, D-R: names, phone, fax, e-mail, SSN, MRN, health-plan, account,
  licence, vehicle and device numbers, URLs, IPs, biometrics, photos, other codes) and
  street addresses are dropped, or replaced by keyed pseudonyms when asked.
* Geographic subdivisions smaller than a state (B: city, county, precinct) are dropped;
  ZIP codes keep their first three digits, or ``000`` for the restricted ZIP3 areas.
* Dates (C) keep only the year; ages of 90 and over become ``90+``; birth years that imply
  an age over 89 are pooled into ``<=<year>``.
* Free-text columns go through the PII detector: dates, ages and ZIP codes in the text
  are generalised the same way and every other identifier is redacted.

Privacy: Safe Harbor also requires that the releasing entity has no actual knowledge that
the remainder could identify someone; no software can check that. Keyed pseudonyms are
derived from the identifier, which 164.514(c) does not allow for a re-identification code,
so a release that pseudonymises instead of dropping is reported as not strictly Safe
Harbor (``strict`` is false).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np
import pandas as pd

from tutela.anonymize.classify import DIRECT_KINDS, ColumnInfo, IdentifierKind
from tutela.anonymize.detector import PiiDetector
from tutela.anonymize.operators import (
    RESTRICTED_ZIP3,
    Generalize,
    Operator,
    Redact,
    apply_operator,
    parse_date,
    pseudonym,
)
from tutela.anonymize.spans import PiiLabel

DirectIdentifierPolicy = Literal["drop", "pseudonymize"]


class Action(StrEnum):
    """What the profile did to a column."""

    DROP = "drop"
    PSEUDONYMIZE = "pseudonymize"
    YEAR = "year"
    BIRTH_YEAR = "birth_year"
    AGE_TOP_CODE = "age_90_plus"
    ZIP3 = "zip3"
    TEXT = "text_detection"
    KEEP = "keep"


@dataclass(frozen=True)
class ColumnAction:
    """One column's rule and a short note (counts, thresholds)."""

    column: str
    action: Action
    note: str = ""


@dataclass(frozen=True)
class SafeHarborOutput:
    """The transformed table and what was done."""

    table: pd.DataFrame
    actions: tuple[ColumnAction, ...]
    top_codes: dict[str, float] = field(default_factory=dict)
    bottom_codes: dict[str, float] = field(default_factory=dict)
    text_spans: dict[str, dict[str, int]] = field(default_factory=dict)
    strict: bool = True


_KIND_LABEL: dict[IdentifierKind, PiiLabel] = {
    IdentifierKind.NAME: PiiLabel.PERSON,
    IdentifierKind.ADDRESS: PiiLabel.ADDRESS,
    IdentifierKind.PHONE: PiiLabel.PHONE,
    IdentifierKind.FAX: PiiLabel.PHONE,
    IdentifierKind.EMAIL: PiiLabel.EMAIL,
    IdentifierKind.SSN: PiiLabel.SSN,
    IdentifierKind.MRN: PiiLabel.MRN,
    IdentifierKind.HEALTH_PLAN: PiiLabel.HEALTH_PLAN,
    IdentifierKind.ACCOUNT: PiiLabel.ACCOUNT,
    IdentifierKind.LICENSE: PiiLabel.LICENSE,
    IdentifierKind.VEHICLE: PiiLabel.VEHICLE,
    IdentifierKind.DEVICE: PiiLabel.DEVICE,
    IdentifierKind.URL: PiiLabel.URL,
    IdentifierKind.IP: PiiLabel.IP_ADDRESS,
}
"""Column kinds whose pseudonyms match the text detector's labels, so a value pseudonymised
in a column and in free text gets the same pseudonym under one key."""

TEXT_OPERATORS: dict[PiiLabel, Operator] = {
    PiiLabel.DATE: Generalize(),
    PiiLabel.AGE: Generalize(),
    PiiLabel.ZIP: Generalize(),
}
"""Operators for identifiers found in free text (everything else is redacted)."""


def zip3(value: object) -> str | None:
    """First three digits of a US ZIP code, ``000`` for restricted areas, None if missing."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    digits = re.sub(r"\D", "", str(value).split(".")[0] if isinstance(value, float) else str(value))
    if not digits:
        return None
    digits = digits.zfill(5)[:5] if len(digits) <= 5 else digits[:5]
    head = digits[:3]
    return "000" if head in RESTRICTED_ZIP3 else head


def to_year(series: pd.Series) -> pd.Series:
    """Calendar year of every value (dates, datetimes or date strings); missing if unparseable."""
    if pd.api.types.is_datetime64_any_dtype(series):
        out: pd.Series = series.dt.year.astype("Int64")
        return out
    if pd.api.types.is_numeric_dtype(series):
        years = pd.to_numeric(series, errors="coerce")
        return years.where((years >= 1000) & (years <= 9999)).round().astype("Int64")

    def one(v: object) -> int | None:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return None
        parsed = parse_date(str(v))
        if parsed is not None:
            return parsed.date.year
        ts = pd.to_datetime(str(v), errors="coerce")
        return None if pd.isna(ts) else int(ts.year)

    return pd.Series([one(v) for v in series], index=series.index, dtype="Int64")


def apply_safe_harbor(
    df: pd.DataFrame,
    columns: Mapping[str, ColumnInfo],
    *,
    key: bytes | None = None,
    direct_identifiers: DirectIdentifierPolicy = "drop",
    detector: PiiDetector | None = None,
    today: dt.date | None = None,
) -> SafeHarborOutput:
    """Apply the Safe Harbor column rules (see the module docstring).

    Args:
        df: the input table (not modified).
        columns: classification of every column (:func:`classify_columns`).
        key: pseudonym key (required when ``direct_identifiers="pseudonymize"``).
        direct_identifiers: drop them (Safe Harbor) or pseudonymise them.
        detector: detector for free-text columns (default: ``PiiDetector()``).
        today: reference date for the over-89 birth-year rule (default: today).

    Raises:
        ValueError: pseudonymisation requested without a key.
    """
    if direct_identifiers == "pseudonymize" and key is None:
        raise ValueError("pseudonymising direct identifiers needs a key")
    ref = today or dt.date.today()
    out = df.copy()
    actions: list[ColumnAction] = []
    top: dict[str, float] = {}
    bottom: dict[str, float] = {}
    spans_by_col: dict[str, dict[str, int]] = {}
    strict = True
    for col in df.columns:
        info = columns[str(col)]
        kind = info.kind
        if kind in DIRECT_KINDS or kind is IdentifierKind.GEOGRAPHY:
            if direct_identifiers == "pseudonymize" and kind is not IdentifierKind.GEOGRAPHY:
                assert key is not None
                label = _KIND_LABEL.get(kind, "") if kind else ""
                out[col] = [None if pd.isna(v) else pseudonym(key, str(v), label) for v in df[col]]
                actions.append(ColumnAction(str(col), Action.PSEUDONYMIZE, "HMAC-SHA256"))
                strict = False
            else:
                out = out.drop(columns=[col])
                actions.append(ColumnAction(str(col), Action.DROP, f"identifier kind {kind}"))
        elif kind is IdentifierKind.ZIP:
            out[col] = pd.Series([zip3(v) for v in df[col]], index=df.index, dtype="object")
            restricted = int((out[col] == "000").sum())
            actions.append(
                ColumnAction(str(col), Action.ZIP3, f"{restricted} rows in restricted ZIP3")
            )
        elif kind is IdentifierKind.DATE:
            out[col] = to_year(df[col])
            actions.append(ColumnAction(str(col), Action.YEAR))
        elif kind is IdentifierKind.BIRTH_DATE:
            years = to_year(df[col])
            cutoff = ref.year - 90
            pooled = int((years <= cutoff).sum())
            out[col] = years.where(~(years <= cutoff), cutoff)
            bottom[str(col)] = float(cutoff)
            actions.append(
                ColumnAction(
                    str(col), Action.BIRTH_YEAR, f"{pooled} birth years pooled as <={cutoff}"
                )
            )
        elif kind is IdentifierKind.AGE:
            ages = pd.to_numeric(
                df[col].astype("string").str.extract(r"(\d+(?:\.\d+)?)", expand=False),
                errors="coerce",
            )
            over = int((ages >= 90).sum())
            out[col] = ages.where(~(ages >= 90), 90.0)
            top[str(col)] = 90.0
            actions.append(ColumnAction(str(col), Action.AGE_TOP_CODE, f"{over} ages shown as 90+"))
        elif kind is IdentifierKind.FREE_TEXT:
            det = detector if detector is not None else PiiDetector()
            values = df[col]
            mask = values.notna()
            texts = [str(v) for v in values[mask]]
            counts: dict[str, int] = {}
            redacted: list[str] = []
            for text, spans in zip(texts, det.detect_many(texts), strict=True):
                for s in spans:
                    counts[s.label.value] = counts.get(s.label.value, 0) + 1
                redacted.append(apply_operator(text, spans, TEXT_OPERATORS, default=Redact()))
            new = values.astype("object").copy()
            new[mask] = redacted
            out[col] = new
            spans_by_col[str(col)] = counts
            actions.append(
                ColumnAction(
                    str(col), Action.TEXT, f"{sum(counts.values())} identifiers; {det.status.note}"
                )
            )
        else:
            actions.append(ColumnAction(str(col), Action.KEEP))
    return SafeHarborOutput(
        table=out,
        actions=tuple(actions),
        top_codes=top,
        bottom_codes=bottom,
        text_spans=spans_by_col,
        strict=strict,
    )
