"""Places: street addresses, cities before a US state, states, countries and ZIP codes."""

from __future__ import annotations

import re

from tutela.anonymize.clinical_lexicon import CLINICAL_LEXICON
from tutela.anonymize.matching import contextual, spans_of
from tutela.anonymize.spans import PiiLabel, Span

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
STATE_NAMES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|"
    "Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|"
    "Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|"
    "New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|"
    "Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|"
    "West Virginia|Wisconsin|Wyoming"
)
_STATE = rf"(?:{'|'.join(US_STATES)}|{STATE_NAMES})"
# Not "member ID 10837-56004" (Idaho's "ID" before a longer number).
_ZIP_AFTER_STATE = re.compile(rf"\b{_STATE}\.?,?\s+(?P<v>\d{{5}}(?:-\d{{4}})?)(?![\w-]|[.,/]\d)")
# "ZIP 98101", "zip code: 98101", "ZIP for the claim form: 98101"
_ZIP_CONTEXT = contextual(
    r"(?i:\bzip(?:\s*code)?|\bpostal\s+code)(?:[ \t]+(?:for|of|on|to)\b[^\n:\d]{0,40}:)?",
    r"\d{5}(?:-\d{4})?\b",
)
# The city before its state ("Spokane, WA"); the state itself stays, as Safe Harbor allows,
# unless the detector is asked to redact states (group ``s``).
_CITY_STATE = re.compile(
    rf"\b(?P<v>(?:[A-Z][a-zß-ÿ]+|St\.)(?:[ -][A-Z][a-zß-ÿ]+){{0,2}}),[ \t]+(?P<s>{_STATE})\b"
    r"(?=\.?,?[ \t]*(?:\d{5}|$|[^\w]))"
)
# Without the comma ("Akron OH 44308", "in Yakima WA,"), the city needs a ZIP after its
# state, or an address or a word of place ("in", "from", "near") before it.
_CITY_STATE_BARE = re.compile(
    r"(?:(?:\b(?:in|from|near|to|at|of)|\b(?:Street|St|Avenue|Ave|Road|Rd|Drive|Dr|Way|Lane|Ln"
    r"|Court|Ct|Place|Pl|Circle|Pkwy|Parkway|Blvd|Box[ \t]+\d+"
    r"|(?:Route|Road|Rd|Highway|Hwy)[ \t]+\d+|Lot[ \t]+\d+"
    r"|Apt[ \t]+\w+|Suite[ \t]+\w+|Unit[ \t]+\w+)\.?,)[ \t]+)?"
    rf"\b(?P<v>(?:[A-Z][a-z]+|St\.)(?:[ ][A-Z][a-z]+){{0,2}})[ \t]+(?P<s>{_STATE})\b"
    r"(?P<z>\.?,?[ \t]+\d{5}\b)?"
)
_STATE_NAME = re.compile(rf"\b(?:{STATE_NAMES})\b")
_STATE_BEFORE_ZIP = re.compile(rf"\b(?P<s>{'|'.join(US_STATES)})\.?,?[ \t]+\d{{5}}(?:-\d{{4}})?\b")
_STATE_ONLY = re.compile(rf"(?:{_STATE})\.?")
_COUNTRIES = (
    "Afghanistan|Albania|Algeria|Angola|Argentina|Armenia|Australia|Austria|Bangladesh|"
    "Belarus|Belgium|Bolivia|Bosnia|Brazil|Bulgaria|Burma|Cambodia|Cameroon|Canada|Chile|"
    "China|Colombia|Congo|Costa Rica|Croatia|Cuba|Czechia|Czech Republic|Denmark|"
    "Dominican Republic|Ecuador|Egypt|El Salvador|England|Eritrea|Estonia|Ethiopia|Fiji|"
    "Finland|France|Germany|Ghana|Greece|Guatemala|Guinea|Guyana|Haiti|Honduras|Hungary|"
    "Iceland|India|Indonesia|Iran|Iraq|Ireland|Israel|Italy|Ivory Coast|Jamaica|Japan|"
    "Jordan|Kazakhstan|Kenya|Korea|Kosovo|Kuwait|Laos|Latvia|Lebanon|Liberia|Libya|"
    "Lithuania|Malaysia|Mali|Mexico|Moldova|Mongolia|Morocco|Mozambique|Myanmar|Nepal|"
    "Netherlands|New Zealand|Nicaragua|Niger|Nigeria|Norway|Pakistan|Panama|Paraguay|Peru|"
    "Philippines|Poland|Portugal|Puerto Rico|Romania|Russia|Rwanda|Saudi Arabia|Scotland|"
    "Senegal|Serbia|Sierra Leone|Singapore|Slovakia|Somalia|South Africa|Spain|Sri Lanka|"
    "Sudan|Sweden|Switzerland|Syria|Taiwan|Tanzania|Thailand|Tunisia|Turkey|Uganda|Ukraine|"
    "United Kingdom|Uruguay|Uzbekistan|Venezuela|Vietnam|Wales|Yemen|Zambia|Zimbabwe|"
    "Trinidad|Tobago|Barbados|Bahamas|Belize|Botswana|Namibia|Lesotho|Malawi|Samoa|Tonga"
)
_COUNTRY = re.compile(rf"\b(?:{_COUNTRIES})\b")
# A capitalised word of a place's name, in the Latin letters places are written in
# ("Kōwhai", "Atatū", "Mühlenweg").
_PLACE_WORD = "[A-ZÀ-Þ][a-zß-ÿ\u0101-\u017f]+"
_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl"
    r"|Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq|Trail|Trl"
    # British, Irish and Australasian street kinds
    r"|Close|Crescent|Cres|Mews|Row|Parade|Pde|Grove|Gardens|Gdns|Hill|Rise|Esplanade|Quay"
    r"|Wharf|Promenade|Vale|Heights|Wynd|Brae"
    # more American kinds, and the "cross" and "main" roads of Indian addresses
    r"|Loop|Pike|Alley|Cross|Main)"
)
# A street named without a house number after "on", "off", "along" ("the bus stop on
# Harrow Crescent"); kinds that are also ordinary words (Court, Place, Hill...) left out.
_STREET_ALONE = re.compile(
    r"\b(?:on|off|along|down|up|near|outside)[ \t]+(?P<v>(?:[A-Z][a-z]+(?:'s)?[ \t]+){1,3}"
    r"(?:Street|Avenue|Ave|Road|Rd|Lane|Drive|Way|Close|Crescent|Mews|Row|Parade|Grove"
    r"|Terrace|Boulevard|Highway)(?:[ \t]+\d{1,3}\b)?)\b"
)
# The town after an address or a street, before punctuation or the end of the line
# ("12 Harrow Crescent, Oldham."): group ``v``.
_TOWN_AFTER = re.compile(
    rf",[ \t]*(?P<v>{_PLACE_WORD}(?:[ -]{_PLACE_WORD}){{0,2}})"
    r"(?=[ \t]*(?:[,.;:)\n]|$|[ \t]+(?:with|and|-|\u2013|\d)\b))"
)
# The town between an address and its ZIP or postcode, without a comma ("Apt 4 Oakdale
# 55120", "PO Box 12 Port Huron 48060"), or before a state ("12 Elm Rd Oakdale, MN").
_TOWN_BEFORE_ZIP = re.compile(
    rf"[ \t,]*(?P<v>{_PLACE_WORD}(?:[ -]{_PLACE_WORD}){{0,2}})"
    r"(?=[ \t]+(?:(?P<z>\d{5}(?:-\d{4})?)|\d{4})\b|,?[ \t]+(?:[A-Z]{2})\b[ \t,]+\d{5})"
)
# A ZIP straight after an address that already holds its town ("Purok 1, Brgy. San
# Isidro Bangued 45669").
_ZIP_NEXT = re.compile(r",?[ \t]+(?P<z>\d{5}(?:-\d{4})?)(?![\w-]|[.,/]\d)")
# A town before its region or country ("Mthatha, South Africa", "joined from Tondo, Manila").
_TOWN_BEFORE_COUNTRY = re.compile(
    rf"(?<![\w.])(?P<v>{_PLACE_WORD}(?:[ -]{_PLACE_WORD}){{0,2}}),[ \t]+(?=(?:{_COUNTRIES})\b)"
)
# A town after a verb of living or moving ("lives in Oldham", "transferred from Tralee").
_TOWN_CUE = re.compile(
    r"(?i:\b(?:lives|living|lived|resides|residing|resident|moved|relocated|transferred"
    r"|visiting|visitor|home)[ \t]+(?:in|from|to|at)[ \t]+)"
    rf"(?P<v>{_PLACE_WORD}(?:[ -]{_PLACE_WORD}){{0,2}})\b"
)
# Words after those verbs that name a ward, service or kind of home, not a town.
_NOT_TOWNS = frozenset(
    (
        "ward",
        "theatre",
        "theatres",
        "recovery",
        "resus",
        "emergency",
        "intensive",
        "high",
        "critical",
        "coronary",
        "day",
        "home",
        "hospital",
        "care",
        "the",
        "a",
        "an",
        "her",
        "his",
        "their",
        "our",
        "sheltered",
        "supported",
        "residential",
        "nursing",
        "respite",
        "hospice",
        "rehab",
        "rehabilitation",
        "general",
        "acute",
        "outpatients",
        "clinic",
        "icu",
        "unit",
        "community",
        "private",
        "public",
        "assisted",
    )
)
_ROAD_NUMBERED = (
    r"(?:(?:State|County|US|U\.S\.|Interstate|Farm|Rural)[ \t]+)?(?:Route|Rte\.?|Road|Rd\.?"
    r"|Highway|Hwy\.?)[ \t]+\d{1,4}[A-Z]?"
)
_ADDRESS = re.compile(
    # one line only: a house number ending one line and "Dr." opening the next is not one
    # "4120 County Road 12", "88 Route 9 Lot 4"
    rf"\b\d{{1,6}}[ \t]+{_ROAD_NUMBERED}\b"
    r"(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Lot|#)\.?[ \t]*[A-Z0-9-]+\b)?"
    rf"|\b\d{{1,6}}[ \t]+(?:[NSEW]\.?[ \t]+)?(?:{_PLACE_WORD}(?:'s)?|\d{{1,3}}(?:st|nd|rd|th))"
    # a numbered concession or line after its name ("12 Concession Road 8")
    rf"(?:[ \t]+{_PLACE_WORD}(?:'s)?){{0,3}}[ \t]+(?:(?:Road|Rd|Line)[ \t]+\d{{1,3}}\b"
    rf"|{_STREET_SUFFIX}\b\.?)"
    r"(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Lot|Trlr|Trailer|Ext|Spc|#)\.?[ \t]*"
    r"[A-Z0-9-]+\b)?"
    # "402 Rue Laurier", "18 Avenue de la Gare": the street's kind before its name
    r"|\b\d{1,6}[ \t]+(?:Rue|Avenue|Chemin|Boulevard|Via|Calle)[ \t]+"
    r"(?:(?:de|du|des|la|le|del|di)[ \t]+)*[A-Z][a-z]+"
    r"(?:[ \t]+(?!(?:Apt|Unit|Suite|Ste|Trlr|Lot)\b)[A-Z][a-z]+)?"
    r"(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Lot|Trlr|#)\.?[ \t]*[A-Z0-9-]+\b)?"
    # a post box, with a Kenyan-style postal code joined ("P.O. Box 9940-00100")
    r"|\bP\.?[ \t]?O\.?[ \t]+Box[ \t]+\d+(?:-\d{5})?\b"
    # rural routes and highway contracts ("Rt 4 Box 212", "HC 61 Box 18", "RR 2 Box 9")
    r"|\b(?:Rt|Rte|RR|HC|Route|Star[ \t]+Route)\.?[ \t]+\d{1,4}[ \t]+Box[ \t]+\d{1,6}\b"
    # a Philippine zone and barangay ("Purok 3, Brgy. Santa Cruz")
    rf"|\b(?:(?:Purok|Sitio|Zone)[ \t]+\d{{1,3}},?[ \t]+)?(?:Brgy|Barangay|Bgy)\.?[ \t]+"
    rf"{_PLACE_WORD}(?:[ \t]+{_PLACE_WORD}){{0,2}}"
    # a house numbered before its road in Indian and Singaporean forms ("No. 12, 3rd Cross,
    # Ramesh Nagar", "Blk 45 Jurong West St 4")
    rf"|\bNo\.?[ \t]*\d{{1,5}}[A-Z]?,[ \t]*\d{{1,3}}(?:st|nd|rd|th)[ \t]+(?:Cross|Main)"
    rf"(?:[ \t]+Road)?(?:,[ \t]*{_PLACE_WORD}(?:[ \t]+{_PLACE_WORD}){{0,2}})?"
    r"|\bBlk[ \t]+\d{1,4}[A-Z]?(?:[ \t]+[A-Z][a-z]+){1,4}(?:[ \t]+\d{1,3})?"
    r"(?:[ \t]+#\d{1,3}-\d{1,5})?"
)


# Postcodes of the UK ("BN3 7QL", "EC1A 1BB") and Canada ("K1A 0B6"), written with their
# space (run together, "E4V4M6" is a coma score); the town just before one (group ``t``).
_POSTCODE = re.compile(
    r"(?:\b(?P<t>[A-Z][a-z]+(?:[ -][A-Z][a-z]+)?),?[ \t]+)?(?P<v>\b(?:[A-Z]{1,2}\d[A-Z\d]?[ \t]\d"
    r"[ABD-HJLNP-UW-Z]{2}|[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][ \t]\d[ABCEGHJ-NPRSTV-Z]\d)\b)"
)
# A flat or unit on a named street without a house number ("Flat 12B, Marine Parade").
_UNIT_STREET = re.compile(
    r"\b(?:Flat|Unit|Apt|Apartment|Suite)\.?[ \t]*[A-Z0-9]{1,5},?[ \t]+"
    rf"(?:[A-Z][a-z]+(?:'s)?[ \t]+){{1,3}}{_STREET_SUFFIX}\b"
)
# "Flat 3, ", "Unit 4/", "Apt 12 ", "2/" before a house number
_UNIT_BEFORE = re.compile(
    r"(?:\b(?:Flat|Unit|Apt|Apartment|Suite|Ste|Shop|Level)\.?[ \t]*[A-Z0-9]{1,5}"
    r"(?:,[ \t]*|[ \t]+|/)|\b\d{1,4}/)$"
)


# Postal codes that are also common words or clinical abbreviations ("Main OR", "PA").
_AMBIGUOUS_STATES = frozenset(
    {"OR", "ME", "IN", "OK", "HI", "ID", "PA", "MD", "MA", "CO", "MS", "DE", "LA", "AL", "MT"}
)


def _bare_city_state(m: re.Match[str]) -> bool:
    if m["z"] is not None:
        return True
    return m.start() != m.start("v") and m["s"] not in _AMBIGUOUS_STATES


_SCHEDULE_WORDS = frozenset(
    [
        "times",
        "daily",
        "twice",
        "once",
        "weekly",
        "nightly",
        "hourly",
        "monthly",
        "doses",
        "tablets",
        "units",
    ]
)


def recognize_location(text: str) -> list[Span]:
    """Street addresses, cities written before a US state, countries and ZIP codes."""
    out: list[Span] = []
    for m in _ADDRESS.finditer(text):
        start, end = m.span()
        if any(w.lower() in _SCHEDULE_WORDS for w in m[0].split()[1:-1]):
            continue  # "3 Times Daily Loop": a schedule before a drug class, not a street
        unit = _UNIT_BEFORE.search(text, max(0, start - 24), start)
        if unit is not None:
            start = unit.start()
        if text[end - 1] == "." and not re.search(rf"{_STREET_SUFFIX}\.$", m.group(0)):
            end -= 1
        out.append(Span(start, end, PiiLabel.ADDRESS, 0.85, "address"))
    out += spans_of(_UNIT_STREET, text, PiiLabel.ADDRESS, 0.85, "address")
    for m in _POSTCODE.finditer(text):
        out.append(Span(m.start("v"), m.end("v"), PiiLabel.ZIP, 0.8, "zip"))
        if m["t"] and m["t"].split()[0].lower() not in _NOT_TOWNS:
            out.append(Span(m.start("t"), m.end("t"), PiiLabel.LOCATION, 0.75, "town"))
    streets = [(s.end, s.start) for s in out if s.label is PiiLabel.ADDRESS]
    for m in _STREET_ALONE.finditer(text):
        if any(w.lower() in CLINICAL_LEXICON for w in m["v"].split()[:-1]):
            continue  # "on Heart Failure Road": a pathway named like a street
        out.append(Span(m.start("v"), m.end("v"), PiiLabel.LOCATION, 0.7, "street"))
        streets.append((m.end("v"), m.start("v")))
    for end, _ in streets:
        zip_code = _ZIP_NEXT.match(text, end)
        if zip_code is not None:
            out.append(Span(zip_code.start("z"), zip_code.end("z"), PiiLabel.ZIP, 0.8, "zip"))
        town = _TOWN_AFTER.match(text, end) or _TOWN_BEFORE_ZIP.match(text, end)
        if town is not None and town["v"].split()[0].lower() not in _NOT_TOWNS:
            out.append(Span(town.start("v"), town.end("v"), PiiLabel.LOCATION, 0.75, "town"))
            if town.re is _TOWN_BEFORE_ZIP and town["z"]:
                # the ZIP the town was read by ("PO Box 12 Port Huron 48060")
                out.append(Span(town.start("z"), town.end("z"), PiiLabel.ZIP, 0.8, "zip"))
    for m in _TOWN_BEFORE_COUNTRY.finditer(text):
        words = m["v"].split()
        if words[0].lower() not in _NOT_TOWNS and words[-1].lower() not in CLINICAL_LEXICON:
            out.append(Span(m.start("v"), m.end("v"), PiiLabel.LOCATION, 0.7, "town"))
    for m in _TOWN_CUE.finditer(text):
        if m["v"].split()[0].lower() not in _NOT_TOWNS:
            out.append(Span(m.start("v"), m.end("v"), PiiLabel.LOCATION, 0.7, "town"))
    out += spans_of(_ZIP_AFTER_STATE, text, PiiLabel.ZIP, 0.9, "zip", group="v")
    out += spans_of(_ZIP_CONTEXT, text, PiiLabel.ZIP, 0.9, "zip", group="v")
    # a city written straight after its street ("9 Elm Rd Oakdale, MN") starts after it
    ends = {s.end for s in out if s.label is PiiLabel.ADDRESS}
    for m in _CITY_STATE.finditer(text):
        start = m.start("v")
        for end in ends:
            if start < end < m.end("v"):
                start = end + 1
        if start < m.end("v"):
            out.append(Span(start, m.end("v"), PiiLabel.LOCATION, 0.8, "city_state"))
    out += spans_of(
        _CITY_STATE_BARE,
        text,
        PiiLabel.LOCATION,
        0.75,
        "city_state",
        group="v",
        validate=_bare_city_state,
    )
    # above a "Surname, Given" reading of "Mthatha, South Africa"
    out += spans_of(_COUNTRY, text, PiiLabel.LOCATION, 0.88, "country")
    return out


def is_us_state(fragment: str) -> bool:
    """Whether ``fragment`` is exactly a US state's name or postal abbreviation."""
    return _STATE_ONLY.fullmatch(fragment.strip()) is not None


def recognize_states(text: str) -> list[Span]:
    """US states: full names anywhere, postal abbreviations after a city or before a ZIP.

    Safe Harbor lets states stay, so the detector runs this only when asked to redact
    them (i2b2 2014 labels them as locations).
    """
    out = spans_of(_STATE_NAME, text, PiiLabel.LOCATION, 0.8, "state")
    out += spans_of(_CITY_STATE, text, PiiLabel.LOCATION, 0.8, "state", group="s")
    out += spans_of(_STATE_BEFORE_ZIP, text, PiiLabel.LOCATION, 0.8, "state", group="s")
    return out
