"""Pattern recognisers with validation for identifiers in free text.

Each recogniser is a plain function ``text -> list[Span]``. Patterns alone over-fire on
clinical notes (nine-digit lab accession numbers, ICD-10 codes, doses), so every pattern
is paired with a validator (SSN allocation rules, Luhn, IBAN mod-97, VIN check digit,
DEA and NPI checksums, ``phonenumbers`` validity) or with context words that must precede
it (``MRN``, ``member ID``, ``serial``...). This module holds the contact, date, age and
financial recognisers and the list the detector runs; identifiers with context words live
in :mod:`.ids`, places in :mod:`.places`, people and organisations in :mod:`.people`,
professions in :mod:`.professions`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

import phonenumbers

from tutela.anonymize.contexts import recognize_contexts
from tutela.anonymize.ids import recognize_ids
from tutela.anonymize.layouts import recognize_layouts
from tutela.anonymize.matching import has_context, spans_of
from tutela.anonymize.people import recognize_organization_rules, recognize_person_rules
from tutela.anonymize.places import US_STATES, recognize_location
from tutela.anonymize.professions import recognize_profession
from tutela.anonymize.spans import PiiLabel, Span
from tutela.anonymize.validators import (
    dea_valid,
    iban_valid,
    luhn_valid,
    npi_valid,
    ssn_valid,
    vin_valid,
)

__all__ = [
    "PATTERN_RECOGNIZERS",
    "US_STATES",
    "Recognizer",
    "dea_valid",
    "iban_valid",
    "luhn_valid",
    "npi_valid",
    "recognize_age_over_89",
    "recognize_credit_card",
    "recognize_date",
    "recognize_email",
    "recognize_iban",
    "recognize_ids",
    "recognize_ip",
    "recognize_location",
    "recognize_organization_rules",
    "recognize_person_rules",
    "recognize_phone",
    "recognize_profession",
    "recognize_ssn",
    "recognize_url",
    "run_patterns",
    "ssn_valid",
    "vin_valid",
]

Recognizer = Callable[[str], list[Span]]

# --------------------------------------------------------------------------- recognisers

_SSN = re.compile(r"(?<![\d.-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\d-]|\.\d)")
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|ss#|social security|soc\.? sec\.?)")


def recognize_ssn(text: str) -> list[Span]:
    """US Social Security numbers that pass the SSA allocation rules."""
    out: list[Span] = []
    for m in _SSN.finditer(text):
        if not ssn_valid(m.group(1), m.group(3), m.group(4)):
            continue
        context = has_context(text, m.start(), _SSN_CONTEXT)
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
    return spans_of(
        _IBAN, text, PiiLabel.IBAN, 0.95, "iban", validate=lambda m: iban_valid(m.group(0))
    )


# Letters outside ASCII count in both parts ("nadège@example.ph"), as mail systems allow.
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}\b")


def recognize_email(text: str) -> list[Span]:
    """E-mail addresses."""
    return spans_of(_EMAIL, text, PiiLabel.EMAIL, 0.95, "email")


_URL = re.compile(
    r"\b(?:https?://|www\.)[^\s<>\"'()]+"
    r"|\b(?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov|io|health|info|us|uk|ca|au|nz|ie)"
    r"(?:/[^\s<>\"'()]*)?(?![\w@.-])"
    # any other top-level domain when a path follows ("bit.ly/3xQ9", "t.co/Ab12")
    r"|\b(?:[a-z0-9-]+\.)+[a-z]{2,6}/[A-Za-z0-9][^\s<>\"'()]*",
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


_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:tel|phone|ph|call|fax|cell|mobile|mob|pager|contact|reach|ring|rang|text"
    r"|landline|number)"
)
# Cheap candidates first (NANP shapes and "+country" numbers); libphonenumber then decides.
_PHONE_CANDIDATE = re.compile(
    # not inside a web address ("example.org/j/7407739384")
    r"(?<![\w+/=-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s./-]?)\d{3}[\s.-]?\d{4}(?![\w-])"
    r"|(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?![\w-])"
)


# The North American trunk digit, then three groups joined by one separator
# ("1-876-040-1248"): written only for telephone numbers, assigned or not.
_TRUNK_GROUPED = re.compile(r"1([-.])[2-9]\d{2}\1\d{3}\1\d{4}")


# A number in national trunk format, as the UK, Ireland, Australia and New Zealand write
# them: a leading 0 and groups of digits ("020 7946 0018", "(03) 9555 0142", "0412 555 019").
_PHONE_NATIONAL = re.compile(
    r"(?<![\w+/=.-])(?:\(0\d{1,4}\)[ \t]?|0\d{1,4}[ \t.-])\d{2,6}(?:[ \t.-]\d{2,4}){0,2}"
    r"(?![\w-]|[./]\d)"
)
_NATIONAL_REGIONS = ("GB", "AU", "NZ", "IE")


def _phone_score(raw: str, regions: tuple[str, ...]) -> float:
    """0.9 for a number valid in one of ``regions``, 0.6 for one only possible there
    (numbering plans keep ranges for fiction and tests that are well-formed but never
    assigned), 0 for neither."""
    possible = False
    for region in regions:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return 0.9
        possible = possible or phonenumbers.is_possible_number(number)
    return 0.6 if possible else 0.0


def recognize_phone(text: str, region: str = "US") -> list[Span]:
    """Telephone and fax numbers validated by ``phonenumbers`` (libphonenumber): North
    American and international (``+44 ...``) numbers, and national trunk formats of the
    UK, Ireland, Australia and New Zealand (``0161 ...``, ``(02) ...``). A well-formed
    number that is not assigned counts when written with a country code or in grouped
    national form, the way only telephone numbers are written."""
    out: list[Span] = []
    for m in _PHONE_CANDIDATE.finditer(text):
        raw = m.group(0)
        if raw.endswith(")") and raw.count(")") > raw.count("("):
            raw = raw[:-1]  # "(+44 20 7946 0958)": the bracket closes the aside
        if sum(c.isdigit() for c in raw) < 10:
            continue
        score = _phone_score(raw, (region,))
        if _TRUNK_GROUPED.fullmatch(raw):
            score = max(score, 0.6)
        if score < 0.9 and not raw.startswith("+") and not _TRUNK_GROUPED.fullmatch(raw):
            continue
        if score and has_context(text, m.start(), _PHONE_CONTEXT):
            score = max(score, 0.9)
        elif score == 0.9:
            score = 0.75
        if score:
            out.append(Span(m.start(), m.start() + len(raw), PiiLabel.PHONE, score, "phonenumbers"))
    for m in _PHONE_NATIONAL.finditer(text) if "0" in text else ():
        raw = m.group(0)
        if not 9 <= sum(c.isdigit() for c in raw) <= 11:
            continue
        score = _phone_score(raw, _NATIONAL_REGIONS)
        if score and has_context(text, m.start(), _PHONE_CONTEXT):
            score = 0.9
        if score:
            out.append(Span(m.start(), m.end(), PiiLabel.PHONE, score, "phonenumbers"))
    return out


_MONTH_FORMS = (
    "Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    "|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?"
)
# Title case or capitals ("Mar", "MAR", "01-MAR-1997"); not lower case, where "may" and
# "march" are ordinary words.
_MONTH = rf"(?:{_MONTH_FORMS}|{_MONTH_FORMS.upper()})\.?"
_ORD = r"(?:st|nd|rd|th)?"
_DATE_NUMERIC = re.compile(r"(?<![\d/.-])(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?![\d/-]|\.\d)")
_DATE_ISO = re.compile(r"(?<![\d/.-])(\d{4})([/.-])(\d{1,2})\2(\d{1,2})(?![\d/-]|\.\d)")
_WEEKDAY = (
    r"(?:(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day|Mon|Tues?|Wed|Thu(?:rs?)?|Fri|Sat|Sun)\.?"
)
_DATE_WORDY = re.compile(
    rf"\b{_MONTH}\s+\d{{1,2}}{_ORD},?\s+\d{{4}}\b"
    rf"|\b\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}\b"
    # "3-Feb-1961", "3/Feb/1961", "3.Feb.1961"
    rf"|\b\d{{1,2}}([-/.]){_MONTH}\1(?:\d{{4}}|\d{{2}})\b"
    # "Apr-02-1936", "Apr/02/1936"
    rf"|\b{_MONTH}([-/])\d{{1,2}}\2(?:\d{{4}}|\d{{2}})\b"
    # "Tuesday, June 11", "Fri 3rd May 2024": a weekday makes a short date unambiguous
    rf"|\b{_WEEKDAY},?\s+(?:{_MONTH}\s+\d{{1,2}}{_ORD}|\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH})"
    r"(?:,?\s+\d{4})?\b"
)
# "20240303", "19870516": eight digits that read as a valid year, month and day (HL7 and
# file-name style); record numbers with context words outrank this.
_DATE_COMPACT = re.compile(
    r"(?<![\w./-])(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:\d{4}(?:\d{2})?)?"
    # a sentence may end right after one ("seen 19930821.")
    r"(?![\w/-]|\.\w)"
)
# "10/1984": month and a four-digit year.
# A product's expiry ("exp 09/2026") dates a batch, not a person.
_EXPIRY = re.compile(r"(?i:\b(?:exp|expires?|expiry|expiration|use\s+by|best\s+before)\b\.?:?\s*)$")
_DATE_NUMERIC_MONTH_YEAR = re.compile(
    r"(?<![\w/.-])(?:0?[1-9]|1[0-2])/(?:19|20)\d{2}(?![\w/]|[.-]\d)"
)
_DATE_MONTH_DAY = re.compile(rf"\b{_MONTH}\s+\d{{1,2}}{_ORD}\b(?!\s*(?:mg|ml|units?|%))")
_DATE_MONTH_YEAR = re.compile(rf"\b{_MONTH},?\s+(?:19|20)\d{{2}}\b")
_DATE_DAY_MONTH = re.compile(
    rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)\s+(?:of\s+)?|(?:[12]\d|3[01]|0?[1-9])\s+){_MONTH}(?!\w)"
    # "03MAR2024", "3Mar24"
    rf"|\b\d{{1,2}}{_MONTH}(?:\d{{4}}|\d{{2}})\b"
)
_DATE_MONTH_OF_YEAR = re.compile(rf"\b{_MONTH}\s+of\s+(?:19|20)\d{{2}}\b")
# Month/day without a year ("on 2/26") reads like a fraction or a score unless a word
# that introduces a date comes just before it.
_DATE_SHORT = re.compile(
    r"(?:(?i:\b(?:on|dated?|since|from|until|till|by|before|after|DOB|DOS|born|seen|visit"
    r"|encounter|admitted|discharged|implanted|received|due|through|thru|of|for|collected"
    r"|signed|completed|in|report|exam|birth|Mon|Tue|Tues|Wed|Thu|Thurs|Fri|Sat|Sun"
    # admission, discharge, death and injury dates as forms abbreviate them
    r"|DOA|DOD|DOI|DOS|placed|inserted)[:,]?)"
    r"|--|\()[ \t]*"
    # not a share of something ("in 3/4 of sessions")
    r"(?P<v>(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9]))(?![/\d]|\.\d|[ \t]+of\b)"
    # or before a clock time, as a log's time stamp ("9/22 07:15")
    r"|(?<![\w/.:-])(?P<t>(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9]))"
    r"(?=[ \t]+(?:[01]?\d|2[0-3]):[0-5]\d\b)"
)
# A year of birth alone ("(b. 1943)", "born in 1961", "YOB 1950").
_BIRTH_YEAR = re.compile(
    r"(?:\bb\.|\bborn(?:[ \t]+in)?|\bYOB\b:?|(?i:\byear[ \t]+of[ \t]+birth):?)[ \t]*"
    r"(?P<v>(?:18|19|20)\d{2})(?![\w/-]|[.,]\d)"
)


# Day, month in Roman numerals and year ("3.iv.24", "17.XI.1998"), as British notes write.
_DATE_ROMAN = re.compile(
    r"(?<![\w.])\d{1,2}([./-])(?:i{1,3}|iv|vi{0,3}|ix|xi{0,2}|I{1,3}|IV|VI{0,3}|IX|XI{0,2})\1"
    r"(?:\d{4}|\d{2})(?![\w/]|\.\d)"
)
_DAY_WORDS = (
    "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth"
    "|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth"
    "|twenty[- ](?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|thirtieth"
    "|thirty[- ]first"
)
# The day in words ("the twenty-third of May 2024", "June the first"), year optional.
_DATE_DAY_WORDS = re.compile(
    rf"(?i:\b(?:the[ \t]+)?(?:{_DAY_WORDS})[ \t]+(?:of[ \t]+)?)(?:{_MONTH})\b(?:,?[ \t]+\d{{4}}\b)?"
    rf"|\b(?:{_MONTH})[ \t]+(?i:the[ \t]+(?:{_DAY_WORDS}))\b(?:,?[ \t]+\d{{4}}\b)?"
)


def _plausible_dmy(a: int, b: int) -> bool:
    return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)


def recognize_date(text: str) -> list[Span]:
    """Dates: numeric (US and European order, ISO, compact ``20240303``), written months
    (``3rd March 2024``, ``Mar-03-2024``, ``03MAR2024``, ``Tuesday, June 11``), month-day,
    month-year (``Oct 1970``, ``10/1970``, but not an expiry such as ``exp 09/2026``),
    month/day after a word that introduces a date or before a clock time, and a year of
    birth (``b. 1943``)."""
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
    out += spans_of(_DATE_WORDY, text, PiiLabel.DATE, 0.9, "date")
    out += spans_of(_DATE_COMPACT, text, PiiLabel.DATE, 0.7, "date")
    out += spans_of(
        _DATE_NUMERIC_MONTH_YEAR,
        text,
        PiiLabel.DATE,
        0.7,
        "date",
        validate=lambda m: not _EXPIRY.search(text, max(0, m.start() - 12), m.start()),
    )
    out += spans_of(_DATE_MONTH_YEAR, text, PiiLabel.DATE, 0.7, "date")
    out += spans_of(_DATE_MONTH_DAY, text, PiiLabel.DATE, 0.6, "date")
    out += spans_of(_DATE_DAY_MONTH, text, PiiLabel.DATE, 0.7, "date")
    out += spans_of(_DATE_MONTH_OF_YEAR, text, PiiLabel.DATE, 0.75, "date")
    for m in _DATE_SHORT.finditer(text):
        group = "v" if m["v"] else "t"
        out.append(Span(m.start(group), m.end(group), PiiLabel.DATE, 0.6, "date"))
    out += spans_of(_BIRTH_YEAR, text, PiiLabel.DATE, 0.8, "date", group="v")
    out += spans_of(_DATE_ROMAN, text, PiiLabel.DATE, 0.85, "date")
    out += spans_of(_DATE_DAY_WORDS, text, PiiLabel.DATE, 0.85, "date")
    return out


_DIGIT_WORDS = "one|two|three|four|five|six|seven|eight|nine"
_UNIT_WORDS = (
    _DIGIT_WORDS + "|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen"
    "|nineteen|twenty"
)
# 90 to 129 in digits or words ("ninety-one", "one hundred and two", "a hundred").
_AGE_DIGITS = r"(9\d|1[0-2]\d)"
# 90 to 129 in words ("ninety-one", "one hundred and two", "a hundred"); only tried when
# the note holds "ninety" or "hundred", as most do not.
_AGE_WORDS = (
    rf"((?i:ninety(?:[- ](?:{_DIGIT_WORDS}))?"
    rf"|(?:one|a)[- ]hundred(?:(?:[- ]and)?[- ](?:{_UNIT_WORDS}))?))"
)
_AGE_AFTER = (
    # "92-year-old", "93 yo", "94 y/o", "98 y.o.", "97 years of age", "95yoF", "101 y --"
    r"(?=[- ]?(?:years?|yrs?|yr)\b|[\s-]?(?:y/?o|yo|y\.o\.?)(?![a-z])|yo[MF]\b"
    r"|[ ]y\b(?![/.'\w])|/[MF]\b"
    # "96Y/woman", "98Y", "99/male", "97 female": the sex or a bare "Y" beside the age
    r"|Y(?:/|\b)|/(?:fe)?male\b|/(?:wo)?man\b|/lady\b|/gentleman\b"
    r"|[ \t]+(?:fe)?male\b|[ \t]+(?:wo)?man\b|[ \t]+lady\b|[ \t]+gentleman\b)"
)
_CAP_WORD = r"[A-Z][a-z'\u00e0-\u00ff]+(?:-[A-Z]?[a-z'\u00e0-\u00ff]+)*"
_NOT_A_QUANTITY = (
    r"(?!\.\d|\s?(?:%|\+|mg|kg|cm|mm|lbs?|pounds|percent|/|-\d"
    r"|\s?(?:and|or)\s+(?:over|older|above)))"
)


def _age_pattern(number: str) -> re.Pattern[str]:
    return re.compile(
        rf"\b{number}{_AGE_AFTER}"
        # "aged 93", "age 95", "age: 91", "Age at collection: 96", "ages 90"
        rf"|(?i:\bage[sd]?\b)[^\d\n]{{0,20}}?\b{number}(?:Y\b|\b{_NOT_A_QUANTITY})"
        # a relative named, then the age ("lives with her sister Ada, 93", "gran Joy (95)")
        rf"|(?<=[a-z\u00df-\u00ff])[ \t]+{_CAP_WORD}(?:[ \t]+{_CAP_WORD})?(?:,[ \t]*|[ \t]+\()"
        rf"(?={number}(?:\)|[,;]|[ \t]+(?:is|was|who|found|come|comes|came|at|lives|has|had"
        r"|and|uses|needs|cares)\b))"
        rf"{number}\b{_NOT_A_QUANTITY}"
        # "F/93", "M/101"
        rf"|\b[MF]/{number}\b(?![/\d])"
        # "(94 F)", "| 102M |", "M, 97", "(F, 91)": the sex written beside the age
        rf"|\b{number}[ \t]?[MF]\b(?![°/'\w])|\b[MF],[ \t]*{number}\b(?![/\d.])"
        # "Mrs. Kaur (94)", "Pt, 92, confused", "I am 96 and", "she turned 100"
        rf"|(?:\b(?:Mr|Mrs|Ms|Miss|Mx)\.?[ \t]+[A-Z][\w'-]+(?:[ \t]+\(|,[ \t]+)"
        r"|\b(?:Pt|Patient|Client|Resident)(?:,|[ \t]+(?:is|was))[ \t]+"
        r"|(?i:\bI[ \t]+am|\bI'm|\b(?:she|he)[ \t]+is|\bturn(?:s|ed)|\bwill[ \t]+be)[ \t]+)"
        rf"{number}(?:(?=\))|(?=,)|\b{_NOT_A_QUANTITY}(?![ \t]*(?:minutes|min|hours|days"
        r"|weeks|months|times|am\b|pm\b|o'clock)))"
    )


_ORDINAL_UNITS = "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth"
_ORDINAL_TEENS = (
    "tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth"
    "|eighteenth|nineteenth|twentieth"
)
# "in her ninety-third year", "in his one hundred and second year", "his 100th birthday":
# an ordinal from the ninetieth up, in words or digits.
_AGE_ORDINAL = re.compile(
    r"(?i:\b(?:in|into|entering)[ \t]+(?:his|her|their|the|my)[ \t]+(?P<a>"
    rf"ninetieth|ninety[- ](?:{_ORDINAL_UNITS})|(?:one|a)[- ]hundredth"
    rf"|(?:one|a)[- ]hundred(?:[- ]and)?[- ](?:{_ORDINAL_UNITS}|{_ORDINAL_TEENS})"
    r"|(?:9\d|1[0-2]\d)(?:st|nd|rd|th))[ \t]+year\b"
    r"|\b(?P<b>(?:9\d|1[0-2]\d)(?:st|nd|rd|th)|ninetieth|ninety[- ](?:"
    rf"{_ORDINAL_UNITS})|(?:one|a)[- ]hundredth)[ \t]+birthday\b)"
)
# a temperature in Fahrenheit reads like an age beside a sex ("temp 101 F")
_FAHRENHEIT = re.compile(r"(?i:\b(?:temp\w*|T|Tmax|fever\w*|febrile|pyrexi\w*)\b|°)")
# a room, bed or bus number reads like an age beside a sex ("Room 101 F wing")
_PLACE_NUMBER = re.compile(
    r"(?i:\b(?:room|rm|bed|ward|bay|level|floor|suite|flat|apt|gate|platform|bus|route)"
    r"\.?[ \t]*)$"
)

_AGE = _age_pattern(_AGE_DIGITS)
_AGE_CANDIDATE = re.compile(r"(?<!\d)(?:9\d|1[0-2]\d)(?!\d)")
_AGE_BEFORE, _AGE_AFTER_CHARS = 64, 32  # context the pattern reads around the number
_AGE_IN_WORDS = _age_pattern(_AGE_WORDS)


def recognize_age_over_89(text: str) -> list[Span]:
    """Ages of 90 and over (Safe Harbor lets younger ages stay), in digits or words."""
    found: dict[tuple[int, int], Span] = {}

    def scan(pattern: re.Pattern[str], start: int, end: int, want: object = None) -> None:
        for m in pattern.finditer(text, start, end):
            group = next(i for i in range(1, (m.re.groups or 0) + 1) if m.group(i))
            span = m.span(group)
            if want is None or span == want:
                found.setdefault(span, Span(*span, PiiLabel.AGE, 0.85, "age"))

    # The full pattern runs only around numbers from 90 to 129 (a few per note), since
    # its context alternatives are slow to try at every position of a long note; a window
    # vouches only for its own number (the lookaheads of another may be cut off).
    for c in _AGE_CANDIDATE.finditer(text):
        start, end = max(0, c.start() - _AGE_BEFORE), min(len(text), c.end() + _AGE_AFTER_CHARS)
        scan(_AGE, start, end, c.span())
    lower = text.lower()
    if "ninety" in lower or "hundred" in lower:
        scan(_AGE_IN_WORDS, 0, len(text))
    if "year" in lower or "birthday" in lower:
        for m in _AGE_ORDINAL.finditer(text):
            span = m.span("a") if m["a"] else m.span("b")
            found.setdefault(span, Span(*span, PiiLabel.AGE, 0.85, "age"))
    return sorted(
        s
        for s in found.values()
        if not _PLACE_NUMBER.search(text, max(0, s.start - 12), s.start)
        and not (
            text[s.end : s.end + 2].strip().startswith("F")
            and _FAHRENHEIT.search(text, max(0, s.start - 24), s.start)
        )
    )


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
    recognize_contexts,
    recognize_layouts,
    recognize_location,
    recognize_person_rules,
    recognize_organization_rules,
    recognize_profession,
)
"""The recognisers that need no model, in the order the detector runs them."""


def run_patterns(text: str) -> Iterator[Span]:
    """Every pattern recogniser over ``text`` (overlaps unresolved)."""
    for recognizer in PATTERN_RECOGNIZERS:
        yield from recognizer(text)
