"""Pattern recognisers with validation for identifiers in free text.

Each recogniser is a plain function ``text -> list[Span]``. Patterns alone over-fire on
clinical notes (nine-digit lab accession numbers, ICD-10 codes, doses), so every pattern
is paired with a validator (SSN allocation rules, Luhn, IBAN mod-97, VIN check digit,
DEA checksum, ``phonenumbers`` validity) or with context words that must precede it
(``MRN``, ``member ID``, ``serial``...).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

import phonenumbers

from tutela.anonymize.spans import PiiLabel, Span

Recognizer = Callable[[str], list[Span]]

# --------------------------------------------------------------------------- validators


def luhn_valid(digits: str) -> bool:
    """Luhn (mod-10) checksum used by payment cards, IMEIs and NPIs."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """SSA allocation rules: no 000/666/9xx area, no 00 group, no 0000 serial."""
    if len(area) != 3 or len(group) != 2 or len(serial) != 4:
        return False
    if area in {"000", "666"} or area.startswith("9"):
        return False
    return group != "00" and serial != "0000"


def iban_valid(candidate: str) -> bool:
    """ISO 13616 IBAN check: length 15-34 and the mod-97 remainder equals 1."""
    s = candidate.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    if not s.isalnum():
        return False
    rearranged = s[4:] + s[:4]
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    return int(numeric) % 97 == 1


_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_valid(vin: str) -> bool:
    """ISO 3779 / North-American VIN check digit (position 9)."""
    v = vin.upper()
    if len(v) != 17 or any(c not in _VIN_VALUES for c in v):
        return False
    total = sum(_VIN_VALUES[c] * w for c, w in zip(v, _VIN_WEIGHTS, strict=True))
    check = total % 11
    return v[8] == ("X" if check == 10 else str(check))


def dea_valid(number: str) -> bool:
    """DEA registration number checksum (two letters, seven digits)."""
    if len(number) != 9 or not number[:2].isalpha() or not number[2:].isdigit():
        return False
    d = [int(c) for c in number[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


# --------------------------------------------------------------------------- helpers


def _spans(
    pattern: re.Pattern[str],
    text: str,
    label: PiiLabel,
    score: float,
    source: str,
    group: int | str = 0,
    validate: Callable[[re.Match[str]], bool] | None = None,
) -> list[Span]:
    out: list[Span] = []
    for m in pattern.finditer(text):
        if validate is not None and not validate(m):
            continue
        start, end = m.span(group)
        if end > start:
            out.append(Span(start, end, label, score, source))
    return out


_CONTEXT_WINDOW = 40


def _has_context(text: str, start: int, words: re.Pattern[str]) -> bool:
    return words.search(text, max(0, start - _CONTEXT_WINDOW), start) is not None


# --------------------------------------------------------------------------- recognisers

_SSN = re.compile(r"(?<![\d.-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\d-]|\.\d)")
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|ss#|social security|soc\.? sec\.?)")


def recognize_ssn(text: str) -> list[Span]:
    """US Social Security numbers that pass the SSA allocation rules."""
    out: list[Span] = []
    for m in _SSN.finditer(text):
        if not ssn_valid(m.group(1), m.group(3), m.group(4)):
            continue
        context = _has_context(text, m.start(), _SSN_CONTEXT)
        sep = m.group(2)
        if sep == "-":
            score = 0.95 if context else 0.85
        elif context:
            score = 0.9
        else:
            continue  # bare nine digits or space-separated: too ambiguous without context
        out.append(Span(m.start(), m.end(), PiiLabel.SSN, score, "ssn"))
    return out


_CARD = re.compile(r"(?<![\d.-])(?:\d[ -]?){12,18}\d(?![\d-]|\.\d)")


def recognize_credit_card(text: str) -> list[Span]:
    """Payment card numbers (13-19 digits, issuer prefix, Luhn checksum)."""
    out: list[Span] = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group(0))
        if 13 <= len(digits) <= 19 and digits[0] in "3456" and luhn_valid(digits):
            out.append(Span(m.start(), m.end(), PiiLabel.CREDIT_CARD, 0.9, "luhn"))
    return out


_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")


def recognize_iban(text: str) -> list[Span]:
    """International bank account numbers validated by mod-97."""
    return _spans(
        _IBAN, text, PiiLabel.IBAN, 0.95, "iban", validate=lambda m: iban_valid(m.group(0))
    )


_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")


def recognize_email(text: str) -> list[Span]:
    """E-mail addresses."""
    return _spans(_EMAIL, text, PiiLabel.EMAIL, 0.95, "email")


_URL = re.compile(
    r"\b(?:https?://|www\.)[^\s<>\"'()]+"
    r"|\b(?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov|io|health|info|us|uk)(?:/[^\s<>\"'()]*)?(?![\w@.-])",
    re.IGNORECASE,
)


def recognize_url(text: str) -> list[Span]:
    """Web addresses (scheme or ``www.`` prefixed, or bare domains with common TLDs)."""
    out: list[Span] = []
    for m in _URL.finditer(text):
        start, end = m.span()
        while end > start and text[end - 1] in ".,;:!?":
            end -= 1
        if text[max(0, start - 1) : start] == "@":
            continue  # the domain part of an e-mail address
        score = 0.9 if m.group(0).lower().startswith(("http", "www.")) else 0.6
        out.append(Span(start, end, PiiLabel.URL, score, "url"))
    return out


_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])")


def recognize_ip(text: str) -> list[Span]:
    """IPv4 and IPv6 addresses (validated by :mod:`ipaddress`)."""
    out: list[Span] = []
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group(0))
        except ValueError:
            continue
        out.append(Span(m.start(), m.end(), PiiLabel.IP_ADDRESS, 0.8, "ipv4"))
    for m in _IPV6.finditer(text):
        cand = m.group(0)
        if cand.count(":") < 2 or not re.search(r"[0-9A-Fa-f]", cand):
            continue
        try:
            ipaddress.IPv6Address(cand)
        except ValueError:
            continue
        out.append(Span(m.start(), m.end(), PiiLabel.IP_ADDRESS, 0.85, "ipv6"))
    return out


_PHONE_CONTEXT = re.compile(r"(?i)\b(?:tel|phone|ph|call|fax|cell|mobile|pager|contact|reach)")
# Cheap candidates first (NANP shapes and "+country" numbers); libphonenumber then decides.
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w+-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-]?)\d{3}[\s.-]?\d{4}(?![\w-])"
    r"|(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?![\w-])"
)


def recognize_phone(text: str, region: str = "US") -> list[Span]:
    """Telephone and fax numbers validated by ``phonenumbers`` (libphonenumber)."""
    out: list[Span] = []
    for m in _PHONE_CANDIDATE.finditer(text):
        raw = m.group(0)
        if sum(c.isdigit() for c in raw) < 10:
            continue
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(number):
            continue
        score = 0.9 if _has_context(text, m.start(), _PHONE_CONTEXT) else 0.75
        out.append(Span(m.start(), m.end(), PiiLabel.PHONE, score, "phonenumbers"))
    return out


_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_ORD = r"(?:st|nd|rd|th)?"
_DATE_NUMERIC = re.compile(r"(?<![\d/.-])(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?![\d/-]|\.\d)")
_DATE_ISO = re.compile(r"(?<![\d/.-])(\d{4})([/.-])(\d{1,2})\2(\d{1,2})(?![\d/-]|\.\d)")
_DATE_WORDY = re.compile(
    rf"\b{_MONTH}\s+\d{{1,2}}{_ORD},?\s+\d{{4}}\b"
    rf"|\b\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}\b"
    rf"|\b\d{{1,2}}-{_MONTH}-(?:\d{{4}}|\d{{2}})\b"
)
_DATE_MONTH_DAY = re.compile(rf"\b{_MONTH}\s+\d{{1,2}}{_ORD}\b(?!\s*(?:mg|ml|units?|%))")
_DATE_MONTH_YEAR = re.compile(rf"\b{_MONTH},?\s+(?:19|20)\d{{2}}\b")


def _plausible_dmy(a: int, b: int) -> bool:
    return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)


def recognize_date(text: str) -> list[Span]:
    """Dates: numeric (US and European order, ISO), written months, month-day, month-year."""
    out: list[Span] = []
    for m in _DATE_NUMERIC.finditer(text):
        a, b = int(m.group(1)), int(m.group(3))
        if not _plausible_dmy(a, b):
            continue
        if m.group(2) == "." and len(m.group(4)) == 2:
            continue  # "1.5.10" reads like a version or a dose list
        out.append(Span(m.start(), m.end(), PiiLabel.DATE, 0.85, "date"))
    for m in _DATE_ISO.finditer(text):
        year, month, day = int(m.group(1)), int(m.group(3)), int(m.group(4))
        if 1800 <= year <= 2199 and 1 <= month <= 12 and 1 <= day <= 31:
            out.append(Span(m.start(), m.end(), PiiLabel.DATE, 0.9, "date"))
    out += _spans(_DATE_WORDY, text, PiiLabel.DATE, 0.9, "date")
    out += _spans(_DATE_MONTH_YEAR, text, PiiLabel.DATE, 0.7, "date")
    out += _spans(_DATE_MONTH_DAY, text, PiiLabel.DATE, 0.6, "date")
    return out


_AGE = re.compile(
    r"\b(9\d|1[0-2]\d)(?=[- ](?:years?|yrs?|y/o|yo)\b|\s?(?:y/?o|yo)\b)"
    r"|(?i:\baged?\s+)(9\d|1[0-2]\d)\b"
)


def recognize_age_over_89(text: str) -> list[Span]:
    """Ages of 90 and over (Safe Harbor lets younger ages stay)."""
    out: list[Span] = []
    for m in _AGE.finditer(text):
        group = 1 if m.group(1) else 2
        out.append(Span(m.start(group), m.end(group), PiiLabel.AGE, 0.85, "age"))
    return out


def _contextual(keywords: str, value: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(
        rf"(?:{keywords})(?:\s*(?:[:#=]|\bno\.|\bno\b|\bnumber\b|\bis\b|\bwas\b))*\s*(?P<v>{value})",
        flags,
    )


_MRN = _contextual(
    r"(?i:\bMRN|\bMR\s?#|\bMR\s?No\.?|\bmedical record(?:\s+(?:number|no\.?|#))?"
    r"|\bchart\s+(?:number|no\.?|#)|\bhospital\s+(?:number|no\.?|id))",
    r"[A-Z]{0,3}-?\d{5,10}\b",
)
_HEALTH_PLAN = _contextual(
    r"(?i:\bmember\s+(?:id|number|#)|\bsubscriber\s+(?:id|number)|\bpolicy\s+(?:id|number|no\.?|#)"
    r"|\bhealth\s+plan(?:\s+(?:id|number|#))?|\binsurance\s+(?:id|number|#)|\bmedicaid(?:\s+id)?"
    r"|\bmedicare(?:\s+(?:id|number))?|\bMBI|\bbeneficiary\s+(?:id|number)|\bgroup\s+(?:number|#))",
    r"(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{5,16}\b",
)
_MBI = re.compile(
    r"\b[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?"
    r"[AC-HJKMNP-RT-Y]{2}\d{2}\b"
)
_ACCOUNT = _contextual(
    r"(?i:\b(?:bank\s+|billing\s+)?(?:account|acct)(?:\s+(?:number|no\.?|#))?)",
    r"\d[\d-]{5,16}\d\b",
)
_LICENSE = _contextual(
    r"(?i:\bdriver'?s?\s+licen[cs]e(?:\s+(?:number|no\.?|#))?|\blicen[cs]e\s+(?:number|no\.?|#)"
    r"|\bDL\s*#?|\bDEA(?:\s+(?:number|#))?|\bcertificate\s+(?:number|no\.?|#))",
    r"(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{4,14}\b",
)
_DEA = re.compile(r"\b[ABFGMPRX][A-Z9]\d{7}\b")
_VIN = re.compile(r"\b[A-HJ-NPR-Z0-9]{17}\b")
_PLATE = _contextual(
    r"(?i:\blicen[cs]e\s+plate(?:\s+(?:number|no\.?|#))?|\bplate\s+(?:number|no\.?|#)|\bplate)",
    r"(?=[A-Z0-9 -]*\d)[A-Z0-9]{2,4}[- ]?[A-Z0-9]{2,4}\b",
)
_DEVICE = _contextual(
    r"(?i:\bserial(?:\s+(?:number|no\.?|#))?|\bS/N|\bdevice\s+(?:id|identifier|serial)|\bUDI"
    r"|\bIMEI|\bimplant\s+(?:id|serial))",
    r"(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{5,24}\b",
)


def recognize_ids(text: str) -> list[Span]:
    """Record, plan, account, licence, vehicle and device numbers (context words required,
    except checksum-validated VINs, DEA numbers and Medicare beneficiary identifiers)."""
    out: list[Span] = []
    out += _spans(_MRN, text, PiiLabel.MRN, 0.9, "mrn", group="v")
    out += _spans(_HEALTH_PLAN, text, PiiLabel.HEALTH_PLAN, 0.85, "health_plan", group="v")
    out += _spans(_MBI, text, PiiLabel.HEALTH_PLAN, 0.7, "mbi")
    out += _spans(_ACCOUNT, text, PiiLabel.ACCOUNT, 0.85, "account", group="v")
    out += _spans(_LICENSE, text, PiiLabel.LICENSE, 0.85, "license", group="v")
    out += _spans(
        _DEA, text, PiiLabel.LICENSE, 0.7, "dea", validate=lambda m: dea_valid(m.group(0))
    )
    out += _spans(
        _VIN,
        text,
        PiiLabel.VEHICLE,
        0.9,
        "vin",
        validate=lambda m: vin_valid(m.group(0)) and not m.group(0).isdigit(),
    )
    out += _spans(_PLATE, text, PiiLabel.VEHICLE, 0.8, "plate", group="v")
    out += _spans(_DEVICE, text, PiiLabel.DEVICE, 0.85, "device", group="v")
    return out


US_STATES = [
    "AL",
    "AK",
    "AZ",
    "AR",
    "CA",
    "CO",
    "CT",
    "DE",
    "DC",
    "FL",
    "GA",
    "HI",
    "ID",
    "IL",
    "IN",
    "IA",
    "KS",
    "KY",
    "LA",
    "ME",
    "MD",
    "MA",
    "MI",
    "MN",
    "MS",
    "MO",
    "MT",
    "NE",
    "NV",
    "NH",
    "NJ",
    "NM",
    "NY",
    "NC",
    "ND",
    "OH",
    "OK",
    "OR",
    "PA",
    "RI",
    "SC",
    "SD",
    "TN",
    "TX",
    "UT",
    "VT",
    "VA",
    "WA",
    "WV",
    "WI",
    "WY",
    "PR",
]
_STATE_NAMES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|"
    "Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|"
    "Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|"
    "New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|"
    "Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|"
    "West Virginia|Wisconsin|Wyoming"
)
_STATE = rf"(?:{'|'.join(US_STATES)}|{_STATE_NAMES})"
_ZIP_AFTER_STATE = re.compile(rf"\b{_STATE}\.?,?\s+(?P<v>\d{{5}}(?:-\d{{4}})?)\b")
_ZIP_CONTEXT = _contextual(r"(?i:\bzip(?:\s*code)?|\bpostal\s+code)", r"\d{5}(?:-\d{4})?\b")
_CITY_STATE = re.compile(
    rf"\b(?P<v>[A-Z][a-z]+(?:[ -][A-Z][a-z]+){{0,2}}),\s+{_STATE}\b(?=\.?,?\s*(?:\d{{5}}|$|[^\w]))"
)
_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl"
    r"|Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq|Trail|Trl)"
)
_ADDRESS = re.compile(
    r"\b\d{1,6}\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+|\d{1,3}(?:st|nd|rd|th))(?:\s+[A-Z][a-z]+){0,3}"
    rf"\s+{_STREET_SUFFIX}\b\.?"
    r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|#)\.?\s*[A-Z0-9-]+\b)?"
    r"|\bP\.?\s?O\.?\s+Box\s+\d+\b"
)


def recognize_location(text: str) -> list[Span]:
    """Street addresses, cities written before a US state, and ZIP codes."""
    out: list[Span] = []
    for m in _ADDRESS.finditer(text):
        end = m.end()
        if text[end - 1] == "." and not re.search(rf"{_STREET_SUFFIX}\.$", m.group(0)):
            end -= 1
        out.append(Span(m.start(), end, PiiLabel.ADDRESS, 0.85, "address"))
    out += _spans(_ZIP_AFTER_STATE, text, PiiLabel.ZIP, 0.9, "zip", group="v")
    out += _spans(_ZIP_CONTEXT, text, PiiLabel.ZIP, 0.9, "zip", group="v")
    out += _spans(_CITY_STATE, text, PiiLabel.LOCATION, 0.8, "city_state", group="v")
    return out


_NAME = r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?"
_TITLED = re.compile(
    rf"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Nurse|RN|NP|PA)\.?\s+(?P<v>{_NAME}(?:\s+[A-Z]\.)?(?:\s+{_NAME})?)"
)
_NAME_CONTEXT = re.compile(
    r"(?:\b(?:[Pp]atient|[Nn]ame|[Ss]on|[Dd]aughter|[Ww]ife|[Hh]usband|[Mm]other|[Ff]ather"
    r"|[Ss]pouse|[Ss]ister|[Bb]rother|[Cc]ontact|[Ss]igned|[Gg]uardian|[Cc]aregiver|[Pp]roxy)"
    r"(?:\s+name)?\s*[:,-]?\s*(?:is\s+)?)"
    rf"(?P<v>{_NAME}(?:\s+[A-Z]\.)?\s+{_NAME}|[A-Z][a-z]+,\s+[A-Z][a-z]+)"
)


def recognize_person_rules(text: str) -> list[Span]:
    """Names after titles (``Dr.``, ``Mrs.``) or relationship/context words (``Patient:``)."""
    out = _spans(_TITLED, text, PiiLabel.PERSON, 0.85, "title", group="v")
    out += _spans(_NAME_CONTEXT, text, PiiLabel.PERSON, 0.75, "name_context", group="v")
    return out


_ORG = re.compile(
    r"\b(?:(?:St\.|Saint)\s+)?(?:[A-Z][a-z]+\s+){1,4}"
    r"(?:Hospital|Medical Center|Medical Centre|Clinic|Health System|Healthcare|Infirmary"
    r"|Medical Group|Pharmacy|Health Center|Rehabilitation Center|Nursing Home|University)\b"
)


def recognize_organization_rules(text: str) -> list[Span]:
    """Names of hospitals, clinics, pharmacies and similar institutions."""
    return _spans(_ORG, text, PiiLabel.ORGANIZATION, 0.8, "org_rule")


PATTERN_RECOGNIZERS: tuple[Recognizer, ...] = (
    recognize_ssn,
    recognize_credit_card,
    recognize_iban,
    recognize_email,
    recognize_url,
    recognize_ip,
    recognize_phone,
    recognize_date,
    recognize_age_over_89,
    recognize_ids,
    recognize_location,
    recognize_person_rules,
    recognize_organization_rules,
)
"""The recognisers that need no model, in the order the detector runs them."""


def run_patterns(text: str) -> Iterator[Span]:
    """Every pattern recogniser over ``text`` (overlaps unresolved)."""
    for recognizer in PATTERN_RECOGNIZERS:
        yield from recognizer(text)
