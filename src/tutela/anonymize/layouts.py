"""Identifiers and names placed by a record's layout rather than by a word before them.

* fixed-width tables: a header line of column names and the values under them;
* table rows without a header: an identifier in the cell after a person's name;
* HL7 v2 fields by position (``PID``, ``OBR``, ``ORC``, ``IN1``, ``GT1``) and provider
  numbers in person fields (XCN, ``ID^Family^Given``);
* people named after the role a form gives them (``Donor:``, ``Inmate:``, ``2 PATIENT``)
  or after a nurse's or aide's title (``LVN``, ``CNA``).
"""

from __future__ import annotations

import itertools
import re

from tutela.anonymize.contexts import COMPACT_DATE, DIGITS4, DIGITS5, not_value
from tutela.anonymize.spans import PiiLabel, Span

_L = PiiLabel

# Fixed-width tables: a header of column names (no digits) separated by wide gaps.
_CELL = re.compile(r"\S+(?:[ ]\S+)*")
# A row of a table without its header: cells apart by wide gaps or bars, an identifier
# right after a person's name ("Okafor, Ada   55120931   3/4/25   HBA1C").
_ROW_SPLIT = re.compile(r"[ \t]{3,}|[ \t]*\|[ \t]*")
_ROW_NAME = re.compile(
    r"(?:Mc|Mac|O')?[A-Z][A-Za-z'-]+"
    r"(?:,?[ \t]+(?:[A-Z]\.|(?:bin|van|de|la|del)|(?:Mc|Mac|O')?[A-Z][A-Za-z'-]+)){1,3}"
)
_ROW_ID = re.compile(r"(?=[A-Z0-9/-]*\d)[A-Z0-9][A-Z0-9/-]*[A-Z0-9]")
_HEADER_LABELS: tuple[tuple[re.Pattern[str], PiiLabel], ...] = (
    (re.compile(r"(?i:\b(?:MRN|MR|UHID|HRN|URN|chart|record|hosp(?:ital)?|ID)\b)"), _L.MRN),
    (re.compile(r"(?i:\b(?:acct|account|visit|encounter|FIN|CSN|claim)\b)"), _L.ACCOUNT),
    (re.compile(r"(?i:\b(?:member|policy|plan|subscriber)\b)"), _L.HEALTH_PLAN),
    (re.compile(r"(?i:\b(?:SSN)\b)"), _L.SSN),
    (re.compile(r"(?i:\b(?:name|patient|surname)\b)"), _L.PERSON),
)

# HL7 v2: segment, 1-based field number -> label.
_HL7_FIELDS: dict[str, dict[int, PiiLabel]] = {
    "PID": {2: _L.MRN, 3: _L.MRN, 4: _L.MRN, 18: _L.ACCOUNT, 19: _L.SSN, 20: _L.LICENSE},
    "OBR": {2: _L.ACCOUNT, 3: _L.ACCOUNT, 16: _L.LICENSE, 28: _L.LICENSE},
    "ORC": {2: _L.ACCOUNT, 3: _L.ACCOUNT, 12: _L.LICENSE},
    "IN1": {2: _L.HEALTH_PLAN, 8: _L.HEALTH_PLAN, 36: _L.HEALTH_PLAN, 49: _L.HEALTH_PLAN},
    "GT1": {2: _L.ACCOUNT, 12: _L.SSN},
    "PV1": {19: _L.ACCOUNT, 50: _L.ACCOUNT},
    "NK1": {33: _L.MRN},
}
# Fields that hold a person's name (XPN: "FAMILY^GIVEN^MIDDLE"): the patient, the
# mother's maiden name and aliases, next of kin, the guarantor and the insured.
_HL7_NAME_FIELDS: dict[str, frozenset[int]] = {
    "PID": frozenset({5, 6, 9}),
    "NK1": frozenset({2}),
    "GT1": frozenset({3}),
    "IN1": frozenset({16}),
}
_NAME_PART = re.compile(r"[A-Z\u00c0-\u00de][A-Za-z\u00c0-\u017f' .-]*")
# Segments whose person fields are XCN ("ID^Family^Given"); coded fields (OBX-3's
# "2345-7^Glucose^LN") are not people.
_XCN_SEGMENTS = frozenset({"OBR", "ORC", "PV1", "PD1", "ROL", "RXE", "RXO", "TXA", "PRD", "EVN"})
_HL7_SEGMENT = re.compile(r"^(?P<seg>[A-Z][A-Z0-9]{2})\|[^\n]*", re.MULTILINE)

# A person named after the role a form gives them ("Donor: CHEBET Ada", "Inmate: Obi, Ada",
# "2 PATIENT OBI Ada |", "Inmate Obi #A-4471") or after a nurse's or aide's title ("report
# called to LVN Ada Obi"), in any mix of capitals.
_ANY_NAME = (
    r"(?:Mc|Mac|O')?[A-Z][A-Za-z\u00c0-\u017f'-]+"
    r"(?:,?[ \t](?:[A-Z]\.|bin|van|de|la|del|dela|(?:Mc|Mac|O')?[A-Z][A-Za-z\u00c0-\u017f'-]+))"
    r"{1,3}"
)
_ROLE_NAME = re.compile(
    r"(?:\b(?:Donor|Inmate|Veteran|Employee|Member|Mbr|Student|Guardian|Parent/guardian"
    r"|Attending|ATTENDING|Collector|Interpreter|Claimant|Insured|Subscriber|Ship[ \t]+to"
    r"|PATIENT|Patient|Pt|NAME|Name|Client|Resident)\b\.*[ \t]*:[ \t]*"
    r"|^(?:Pt|Patient)[ \t]+|\b\d{1,2}[ \t]+PATIENT[ \t]+"
    r"|\b(?:LVN|LPN|BSN|CNA|DER|MRO|CHR|counsell?or|collector|medic|init\.)[ \t]+)"
    rf"(?P<v>{_ANY_NAME})"
    r"(?=[ \t]{2,}|[ \t]*(?:[|#(,;:]|$)|[ \t]+(?:\d|at\b|on\b|present|notified|updated|to\b))",
    re.MULTILINE,
)
_INMATE_HASH = re.compile(
    r"\b(?:Inmate|Prisoner|Detainee|Resident)[ \t]+"
    r"(?P<v>[A-Z][a-z'-]+(?:[ \t]+(?:bin|van|de|dela|[A-Z][a-z'-]+)){0,2})(?=[ \t]*#)"
)
_NOT_NAME_START = frozenset(
    [
        "No",
        "None",
        "Not",
        "Unknown",
        "Declined",
        "Pending",
        "Alert",
        "Stable",
        "See",
        "Same",
        "As",
        "Patient",
        "Pt",
        "Self",
    ]
)


# A key in capitals after the name's comma, its value next ("Ada Obi, SSN 536-..."):
# the next field, not a given name.
_KEY_AFTER = re.compile(r",[ \t]+[A-Z]{2,4}$")
_VALUE_NEXT = re.compile(r"[ \t]*[:#]?[ \t]*\d")


def _role_names(text: str) -> list[Span]:
    out: list[Span] = []
    for pattern in (_ROLE_NAME, _INMATE_HASH):
        for m in pattern.finditer(text):
            if m["v"].split()[0].strip(",") in _NOT_NAME_START:
                continue
            end = m.end("v")
            key = _KEY_AFTER.search(m["v"])
            if key is not None and _VALUE_NEXT.match(text, end):
                end = m.start("v") + key.start()
            out.append(Span(m.start("v"), end, _L.PERSON, 0.75, "role_name"))
    return out


def _cells(line: str, offset: int) -> list[tuple[int, int]]:
    return [(offset + m.start(), offset + m.end()) for m in _CELL.finditer(line)]


def _tables(text: str) -> list[Span]:
    out: list[Span] = []
    if "   " not in text:
        return out
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for i, line in enumerate(lines[:-1]):
        if "  " not in line.strip() or any(c.isdigit() for c in line):
            continue
        header = _cells(line, 0)
        if len(header) < 2:
            continue
        labels = []
        for a, b in header:
            name = line[a:b]
            labels.append(next((lab for pat, lab in _HEADER_LABELS if pat.search(name)), None))
        if not any(lab is not None for lab in labels):
            continue
        row = _cells(lines[i + 1], 0)
        for k, (a, b) in enumerate(row):
            # the same column when header and row have as many cells, else the column whose
            # header starts nearest before (or just after) the cell
            col = (
                k
                if len(row) == len(header)
                else max((j for j, (ha, _) in enumerate(header) if ha <= a + 2), default=None)
            )
            label = None if col is None else labels[col]
            if label is None:
                continue
            value = lines[i + 1][a:b]
            if label is _L.PERSON:
                if not value[:1].isupper() or any(c.isdigit() for c in value):
                    continue
            elif not DIGITS4.match(value) or not_value(value):
                continue
            base = offsets[i + 1]
            out.append(Span(base + a, base + b, label, 0.8, "table"))
    return out


def _rows(text: str) -> list[Span]:
    out: list[Span] = []
    pos = 0
    for line in text.split("\n"):
        if ("   " in line or "|" in line) and not _HL7_SEGMENT.match(line):
            cells: list[tuple[int, int]] = []
            last = 0
            for gap in _ROW_SPLIT.finditer(line):
                cells.append((last, gap.start()))
                last = gap.end()
            cells.append((last, len(line)))
            for (a0, b0), (a, b) in itertools.pairwise(cells):
                value = line[a:b]
                if (
                    _ROW_ID.fullmatch(value)
                    and DIGITS5.match(value)
                    and not not_value(value)
                    and not COMPACT_DATE.fullmatch(value)
                    and _ROW_NAME.fullmatch(line[a0:b0])
                ):
                    out.append(Span(pos + a, pos + b, _L.MRN, 0.7, "table"))
                    out.append(Span(pos + a0, pos + b0, _L.PERSON, 0.7, "table"))
        pos += len(line) + 1
    return out


def _name_parts(parts: list[str], start: int) -> list[Span]:
    """The leading name-shaped components of an HL7 name, from ``start``, as one span."""
    end = start
    for i, part in enumerate(parts):
        if not _NAME_PART.fullmatch(part):
            break
        end = start + sum(len(p) + 1 for p in parts[:i]) + len(part)
    return [Span(start, end, _L.PERSON, 0.85, "hl7_name")] if end > start else []


def _hl7(text: str) -> list[Span]:
    out: list[Span] = []
    if "|" not in text:
        return out
    for m in _HL7_SEGMENT.finditer(text):
        fields = _HL7_FIELDS.get(m["seg"], {})
        pos = m.start()
        for number, field in enumerate(m[0].split("|")):
            parts = field.split("^")
            if (
                m["seg"] in _XCN_SEGMENTS
                and number
                and len(parts) > 1
                and parts[1][:1].isupper()
                and DIGITS5.match(parts[0])
            ):
                # a person with an identifier (XCN: "ID^Family^Given"): a provider number,
                # then the name
                out.append(Span(pos, pos + len(parts[0]), _L.LICENSE, 0.85, "hl7"))
                out += _name_parts(parts[1:4], pos + len(parts[0]) + 1)
            elif number in _HL7_NAME_FIELDS.get(m["seg"], ()):
                out += _name_parts(field.split("~")[0].split("^")[:3], pos)
            label = fields.get(number)
            if label is not None and field:
                component = field.split("^")[0].split("~")[0]
                if DIGITS4.match(component) and not not_value(component):
                    out.append(Span(pos, pos + len(component), label, 0.85, "hl7"))
            pos += len(field) + 1
    return out


def recognize_layouts(text: str) -> list[Span]:
    """Identifiers and names by their place in a record (see the module docstring)."""
    return _tables(text) + _rows(text) + _hl7(text) + _role_names(text)
