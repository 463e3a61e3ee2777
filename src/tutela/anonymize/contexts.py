"""Identifiers found by the words that label them rather than by a fixed list of labels.

:mod:`.ids` knows the common labels (``MRN``, ``acct``, ``member ID``...). Records name
their numbers in many more ways, so this module reads the shapes of labelling instead:

* a word, then a word that says a number follows (``Reg. No.``, ``Docket No.``, ``Donor
  ID (CDL):``, ``Inmate Xaba #``): the first word picks the label, any word will do;
* key words that introduce a number on their own (``UHID``, ``HRN``, ``ICN``, ``claim``,
  ``bill``, ``ref``, ``GRP``, ``PIN``, ``wristband``), with ``:``, ``=``, ``#`` or a dot
  leader (``MRN........:``) between;
* ``key=value`` and ``"key": "value"`` pairs, the key split at underscores
  (``ordering_npi=``, ``city=``, ``pt=``);
* a line that a plan's label opens (``Insurance: ... ID ... GRP ...``, ``Mbr: ...``):
  every identifier-shaped token on it;
* masked Social Security numbers, whose last four digits still identify
  (``***-**-1234``, ``SSN (last four) 1234``);
* National Provider Identifiers (Luhn check) written after a clinician's name.

Identifiers placed by a record's layout (tables, HL7 fields, form roles) are in
:mod:`.layouts`.
"""

from __future__ import annotations

import re

from tutela.anonymize.ids import ID_VALUE
from tutela.anonymize.people import CREDENTIALS
from tutela.anonymize.spans import PiiLabel, Span
from tutela.anonymize.validators import npi_valid

_L = PiiLabel
# Words that pick the label of the number they introduce (checked in this order, on the
# words just before the value); anything else that introduces a number is a record number.
_FAMILIES: tuple[tuple[re.Pattern[str], PiiLabel], ...] = (
    (
        re.compile(
            r"(?i:\b(?:licen[cs]e|lic|CDL|DL|cert(?:ificate)?|permit|reg(?:istration)?"
            r"|registered|interpreter|NPI|DEA|prescriber|provider|practitioner|board)\b)"
        ),
        _L.LICENSE,
    ),
    (
        re.compile(
            r"(?i:\b(?:member|mbr|subscriber|beneficiary|enrollee|insured|policy|plan|PIN"
            r"|PhilHealth|NHIF|NHIS|medicaid|medicare|insurance|insurer|payer|payor|coverage"
            r"|card|GRP|group|medical[ \t]+aid|scheme|fund)\b)"
        ),
        _L.HEALTH_PLAN,
    ),
    (
        re.compile(
            r"(?i:\b(?:acc|acct|account|bill|billing|claim|invoice|inv|receipt|encounter|enc"
            r"|visit|session|ref|reference|specimen|accession|order|requisition|auth"
            r"|authori[sz]ation|transaction|ticket|FIN|CSN|HAR|ICN|episode|admission)\b)"
        ),
        _L.ACCOUNT,
    ),
    (re.compile(r"(?i:\b(?:SSN|social[ \t]+security)\b)"), _L.SSN),
    (re.compile(r"(?i:\b(?:serials?|device|model|IMEI|S/?Ns?|UDI)\b)"), _L.DEVICE),
)
# Words before "No." or "#" that number something other than a person's record.
_NOT_IDS = re.compile(
    r"(?i:\b(?:lot|batch|cat|catalog(?:ue)?|room|rm|bed|ward|bay|cubicle|tooth|teeth|step"
    r"|page|item|line|dose|tel|telephone|phone|fax|mobile|cell|contact|zip|postcode|post"
    r"|flat|apt|unit|suite|level|floor|house|plot|box|rx|qty|quantity|tab|tabs|cap|caps"
    r"|size|grade|stage|type|class|version|ver|v|table|figure|fig|question|part|section"
    r"|exhibit|slide|block|cassette|run|cycle|round|day|week|visit[ \t]+week|gauge"
    r"|french|fr|sample[ \t]+size|para|paragraph|clause|rule|form|lead|channel|port"
    # a product's or a document's number, not a person's
    r"|protocol|study|trial|model|version|edition|issue|volume|vol|catalogue|sku|product"
    r"|drawing|standard|regulation|act|circular|guideline)\b\.?)"
)
DIGITS4 = re.compile(r"(?:\D*\d){4}")
DIGITS5 = re.compile(r"(?:\D*\d){5}")
# A value that is a measurement, a range or a date, not an identifier.
_MEASURE = re.compile(r"\d+\.\d+(?:-\d+(?:\.\d+)?)?|\d{1,2}:\d{2}")
_DMY = re.compile(r"(\d{1,4})([/.-])(\d{1,2})\2(\d{2,4})")


def not_value(value: str) -> bool:
    """A measurement, a time or a plausible date, not an identifier."""
    if _MEASURE.fullmatch(value):
        return True
    m = _DMY.fullmatch(value)
    if m is None:
        return False
    a, b, c = int(m[1]), int(m[3]), m[4]
    if len(m[1]) == 4:
        return 1 <= b <= 12 and 1 <= int(c) <= 31 and len(c) <= 2
    if len(c) not in (2, 4):
        return False
    return (1 <= a <= 31 and 1 <= b <= 12) or (1 <= a <= 12 and 1 <= b <= 31)


# "Reg. No.: 0285465", "Docket No. 52-34-056", "Donor ID (CDL): B1768891", "old file no.
# 972-68-61", "Inmate Xaba #804-69-62", "interpreter ID 9413235", "ID# 973-09-00".
_NUMBERED = re.compile(
    r"(?P<n>(?<![\w#])(?:No|NO|Nos|Nr|NR|Num|num|no|nr)\b\.?|\bnumber\b|\bNumber\b|\bNUMBER\b"
    r"|#|\bID\b|\bId\b|\bI\.D\."
    # the numero sign, "identifier" and an ID card ("Reg. nº 55120/22", "ID card 880412-...")
    r"|(?<![\w#])[Nn][º°](?!\w)|№|\b[Ii]dentifier\b|\bIDENTIFIER\b|(?<=\bID[ \t])card\b)"
    r"[ \t]*(?:\((?P<k2>[A-Za-z]{2,8})\)[ \t]*)?(?:[:=#]|\.{2,}:?)?[ \t]*"
    rf"(?P<v>{ID_VALUE})"
)
# The one or two words before "No." (read backwards from it, so the pattern above is
# tried only where a "No.", "#" or "ID" stands).
_NUMBERED_KEY = re.compile(
    r"(?P<k>\b[A-Za-z][A-Za-z'-]{0,24}\.?(?:[ \t]+[A-Za-z][A-Za-z'-]{0,24}\.?)?)?[ \t]*"
    r"(?:\([A-Za-z]{2,8}\)[ \t]*)?$"
)
# Words that introduce an identifier with no "No." after them.
_KEY_WORDS = (
    r"UHID|HRN|ICN|MRN|MR|URN|CR|PIN|GRP|Grp|grp|CDL|Acc|ACC|acc|Acct|acct|ACCT|Mbr|MBR|mbr"
    r"|UDI|S/N|s/n|SN|sn|(?i:serials)|Group(?=[ \t]*[:#])|GROUP(?=[ \t]*[:#])"
    r"|(?i:claim|bill|invoice|ref|reference|session|wristband|booking|docket|chart|folio"
    r"|accession|requisition|cert|certificate|permit|policy|subscriber|enrollee"
    r"|beneficiary|PhilHealth|NHIF|NHIS|registration|rego|reg)"
)
_KEYED = re.compile(
    rf"(?<![\w./-])(?P<k>{_KEY_WORDS})\.?"
    r"(?:[ \t]+(?:there|here|is|was|on[ \t]+file|(?:at|from)[ \t]+(?:the[ \t]+)?(?:other"
    r"|previous|outside|referring|sending|their)[ \t]+(?:site|hospital|facility|clinic"
    r"|cent(?:re|er))))?"
    r"[ \t]*(?:[:=#-]|\.{2,}:?)?[ \t]*"
    rf"(?P<v>{ID_VALUE})"
)
# A GS1 UDI written without its brackets: (01) and 14 digits, then a date (17 or 11) and
# often a lot (10) or serial (21): "0107142551888596172809032134065055".
_GS1_RUN = re.compile(r"(?<![\w-])01\d{14}(?:1[17]\d{6})(?:(?:10|21)[A-Z0-9]{1,20})?(?![\w-])")
_LIST_MORE = re.compile(rf"[ \t]*(?:/|&|\band\b)[ \t]*(?P<v>{ID_VALUE})")
# A line a plan's label opens: every identifier on it is the plan's.
_PLAN_LINE = re.compile(
    r"(?im:^[ \t]*(?:insurance|insurer|payer|payor|coverage|medical[ \t]+aid|mbr|member"
    r"|subscriber|insured|health[ \t]+plan|plan)\b[^:\n]{0,20}:[^\n]*)"
)
_TOKEN = re.compile(
    r"(?<![\w/.:-])(?=[A-Z0-9/-]*\d)[A-Z0-9](?:[A-Z0-9/-]*[A-Z0-9])?(?![\w/:]|\.\d)"
)
COMPACT_DATE = re.compile(r"(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
_OTHER_KEY_BEFORE = re.compile(r"(?i:\b(?:acct|account|bill|tel|phone|fax|NPI)\b[^\n]{0,12})$")

# key=value pairs ("mrn=FQ1120;", "ordering_npi=1234567893", "city=Ashfield|") and JSON
# ("\"member_id\": \"QX-22\"").
_KV = re.compile(
    r"(?<![\w.])(?P<q>\"?)(?P<k>[A-Za-z][A-Za-z0-9_]{0,30})(?P=q)[ \t]*(?:=|(?<=\"):[ \t]*)"
    r"[ \t]*\"?(?P<v>[^|;&\"\n=]+?)\"?(?=[ \t]*(?:[|;&\"\n}]|$)|[ \t]+[A-Za-z_]+=)",
    re.MULTILINE,
)
_KV_LABELS: dict[str, PiiLabel] = {
    **dict.fromkeys(("mrn", "mr", "uhid", "hrn", "urn", "pid", "chart", "record"), _L.MRN),
    **dict.fromkeys(("acct", "account", "session", "claim", "visit", "enc", "bill"), _L.ACCOUNT),
    **dict.fromkeys(("encounter", "fin", "csn", "invoice", "order", "accession"), _L.ACCOUNT),
    **dict.fromkeys(("member", "policy", "subscriber", "plan", "mbi", "grp"), _L.HEALTH_PLAN),
    **dict.fromkeys(("npi", "dea", "license", "licence", "lic", "dl", "cdl"), _L.LICENSE),
    **dict.fromkeys(("ssn", "sin", "nino"), _L.SSN),
    **dict.fromkeys(("pt", "patient", "name", "client", "provider", "doctor"), _L.PERSON),
    **dict.fromkeys(("surname", "given", "first", "last", "guarantor", "nok"), _L.PERSON),
    **dict.fromkeys(("city", "town", "suburb", "village", "county", "country"), _L.LOCATION),
    **dict.fromkeys(("addr", "address", "street", "line1", "line2"), _L.ADDRESS),
    **dict.fromkeys(("zip", "postcode", "zipcode", "postal"), _L.ZIP),
    **dict.fromkeys(("dob", "birth", "dod", "admitted", "discharged"), _L.DATE),
    **dict.fromkeys(("phone", "tel", "mobile", "cell", "fax"), _L.PHONE),
    **dict.fromkeys(("email", "mail"), _L.EMAIL),
    **dict.fromkeys(("sn", "serial", "imei", "udi", "device"), _L.DEVICE),
    **dict.fromkeys(("ip",), _L.IP_ADDRESS),
    **dict.fromkeys(("employer", "facility", "site", "hospital", "clinic"), _L.ORGANIZATION),
    **dict.fromkeys(("occupation", "job", "profession"), _L.PROFESSION),
}
_PAREN_ID = re.compile(r"[ \t]*\((?P<v>[^()\s]*\d[^()\s]*)\)$")
_KV_TEXT = frozenset({_L.PERSON, _L.LOCATION, _L.ADDRESS, _L.ORGANIZATION, _L.PROFESSION})
_KV_ID_SUFFIX = frozenset({"id", "no", "num", "number", "nr", "ref"})

# Masked SSNs keep the last four digits ("***-**-1234", "XXX-XX-1234"), and so does
# "SSN (last four) 1234" / "last 4 of SSN: 1234".
_MASKED_SSN = re.compile(
    r"(?:\*{3}|[Xx]{3}|#{3})[- ]?(?:\*{2}|[Xx]{2}|#{2})[- ]?(?P<v>\d{4})(?!\d)"
    r"|(?i:\b(?:SSN|SS#|social[ \t]+security(?:[ \t]+(?:number|no\.?))?)[ \t]*\(?"
    r"(?:last[ \t]+(?:four|4)(?:[ \t]+digits)?|ending(?:[ \t]+in)?)\)?[ \t]*[:#]?[ \t]*)"
    r"(?P<w>\d{4})(?!\d)"
    r"|(?i:\blast[ \t]+(?:four|4)(?:[ \t]+digits)?[ \t]+of[ \t]+(?:the[ \t]+)?(?:SSN|social"
    r"[ \t]+security(?:[ \t]+number)?)[ \t]*(?:[:#]|is|was)?[ \t]*)(?P<x>\d{4})(?!\d)"
)
_MASK = re.compile(r"(?:[*Xx#]+[- ]?)+(?=\d)")
# An NPI (ten digits, Luhn with prefix 80840) after a clinician's name or role.
_NPI_CANDIDATE = re.compile(r"(?<![\w-])[12]\d{9}(?![\w-])")
_CLINICIAN_BEFORE = re.compile(
    rf"(?:\bDr\b|\b{CREDENTIALS}"
    r"|(?i:\b(?:ordering|ordered|referring|requesting|rendering|attending|provider"
    r"|prescriber|physician|clinician|doctor|24J)\b))[^\n]{0,60}$"
)


def _label_of(words: str, default: PiiLabel) -> PiiLabel:
    for pattern, label in _FAMILIES:
        if pattern.search(words):
            return label
    return default


def _trim_value(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1] in ".,:;-/":
        end -= 1
    return end


def _numbered(text: str) -> list[Span]:
    out: list[Span] = []
    for m in _NUMBERED.finditer(text):
        start, end = m.start("v"), _trim_value(text, m.start("v"), m.end("v"))
        value = text[start:end]
        lead = _NUMBERED_KEY.search(text, max(0, m.start() - 64), m.start())
        k = lead["k"] if lead is not None else None
        key = (k or "") + " " + (m["k2"] or "")
        first = lead.start() if lead is not None and k else m.start()
        before = text[max(0, first - 24) : m.start("n")] + " " + key
        if _NOT_IDS.search(key) or not_value(value):
            continue
        if m["n"] == "#" and not key.strip():
            continue  # "#60" alone is a count
        if not DIGITS5.match(value) and not (DIGITS4.match(value) and key.strip()):
            continue
        label = _label_of(before, _L.MRN)
        out.append(Span(start, end, label, 0.8, "numbered"))
    return out


def _keyed(text: str) -> list[Span]:
    out: list[Span] = []
    for m in _KEYED.finditer(text):
        start, end = m.start("v"), _trim_value(text, m.start("v"), m.end("v"))
        value = text[start:end]
        if not_value(value) or not DIGITS4.match(value):
            continue
        label = _label_of(m["k"], _L.MRN)
        out.append(Span(start, end, label, 0.8, "keyed"))
        more = _LIST_MORE.match(text, end)  # "serials QX7712 / QX7713"
        if more is not None and DIGITS4.match(more["v"]):
            out.append(Span(more.start("v"), more.end("v"), label, 0.8, "keyed"))
    return out


def _plan_lines(text: str) -> list[Span]:
    out: list[Span] = []
    for line in _PLAN_LINE.finditer(text):
        for m in _TOKEN.finditer(text, line.start(), line.end()):
            value = m[0]
            if not DIGITS5.match(value) or COMPACT_DATE.fullmatch(value):
                continue
            if not_value(value) or _OTHER_KEY_BEFORE.search(text, line.start(), m.start()):
                continue
            out.append(Span(m.start(), m.end(), _L.HEALTH_PLAN, 0.75, "plan_line"))
    return out


def _kv_label(key: str) -> PiiLabel | None:
    parts = [p for p in key.lower().split("_") if p]
    for part in reversed(parts):
        if part in _KV_LABELS:
            return _KV_LABELS[part]
    if parts and parts[-1] in _KV_ID_SUFFIX and len(parts) > 1:
        return _L.MRN
    return None


def _key_values(text: str) -> list[Span]:
    out: list[Span] = []
    if "=" not in text and '":' not in text:
        return out
    for m in _KV.finditer(text):
        label = _kv_label(m["k"])
        if label is None:
            continue
        start, end = m.span("v")
        while start < end and text[start] in " \t":
            start += 1
        end = _trim_value(text, start, end)
        mask = _MASK.match(text, start, end)
        if mask is not None:
            start = mask.end()  # "ssn=***-**-1234": only the digits left identify
        value = text[start:end]
        if end <= start:
            continue
        paren = _PAREN_ID.search(value)
        if label in _KV_TEXT and paren is not None:
            out.append(
                Span(start + paren.start("v"), start + paren.end("v"), _L.MRN, 0.8, "key_value")
            )
            end = start + paren.start()
            value = text[start:end]
        if label in _KV_TEXT:
            if not any(c.isalpha() for c in value) or value.lower() in {"none", "unknown", "n/a"}:
                continue
        elif not any(c.isdigit() for c in value):
            continue
        out.append(Span(start, end, label, 0.8, "key_value"))
    return out


def _masked_ssn(text: str) -> list[Span]:
    out: list[Span] = []
    for m in _MASKED_SSN.finditer(text):
        group = "v" if m["v"] else "w" if m["w"] else "x"
        out.append(Span(m.start(group), m.end(group), _L.SSN, 0.9, "ssn_masked"))
    return out


# A clinician's name, then after a comma or in brackets a registration or licence number
# ("requesting doctor Dr. Ada Obi, M44120Z", "Ordering: T. Obi, DDS (1234567893)").
_AFTER_CLINICIAN = re.compile(
    r"(?:\b(?:Dr|Doctor|doctor)\.?[ \t]+(?:[A-Z][\w'.-]*[ \t]+){0,3}[A-Z][\w'-]+"
    rf"|\b[A-Z][\w'.-]*(?:[ \t]+[A-Z][\w'.-]*){{0,3}},[ \t]+{CREDENTIALS})"
    rf"(?:,[ \t]*|[ \t]*\([ \t]*)(?P<v>{ID_VALUE})"
)


def _npi_after_clinician(text: str) -> list[Span]:
    out: list[Span] = []
    for m in _AFTER_CLINICIAN.finditer(text):
        value, start = m["v"], m.start("v")
        head, _, tail = value.partition(" ")
        if tail and head.isalpha():
            value, start = tail, start + len(head) + 1  # "GMC 7712093": the register's name
        if DIGITS5.match(value) and not not_value(value):
            out.append(Span(start, start + len(value), _L.LICENSE, 0.75, "npi"))
    for m in _NPI_CANDIDATE.finditer(text):
        if not npi_valid(m[0]):
            continue
        if _CLINICIAN_BEFORE.search(text, max(0, m.start() - 80), m.start()):
            out.append(Span(m.start(), m.end(), _L.LICENSE, 0.85, "npi"))
    return out


def recognize_contexts(text: str) -> list[Span]:
    """Identifiers by the shape of their labelling (see the module docstring)."""
    return (
        _numbered(text)
        + _keyed(text)
        + _plan_lines(text)
        + _key_values(text)
        + _masked_ssn(text)
        + [Span(*m.span(), _L.DEVICE, 0.85, "udi") for m in _GS1_RUN.finditer(text)]
        + _npi_after_clinician(text)
    )
