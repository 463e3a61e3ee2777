"""Places: street addresses, cities before a US state, states, countries and ZIP codes."""

from __future__ import annotations

import re

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
    rf"\b(?P<v>(?:[A-Z][a-z]+|St\.)(?:[ -][A-Z][a-z]+){{0,2}}),[ \t]+(?P<s>{_STATE})\b"
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
    "United Kingdom|Uruguay|Uzbekistan|Venezuela|Vietnam|Wales|Yemen|Zambia|Zimbabwe"
)
_COUNTRY = re.compile(rf"\b(?:{_COUNTRIES})\b")
_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl"
    r"|Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq|Trail|Trl)"
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
    r"|\b\d{1,6}[ \t]+(?:[NSEW]\.?[ \t]+)?(?:[A-Z][a-z]+|\d{1,3}(?:st|nd|rd|th))"
    rf"(?:[ \t]+[A-Z][a-z]+){{0,3}}[ \t]+{_STREET_SUFFIX}\b\.?"
    r"(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Lot|#)\.?[ \t]*[A-Z0-9-]+\b)?"
    r"|\bP\.?[ \t]?O\.?[ \t]+Box[ \t]+\d+\b"
)


# Postal codes that are also common words or clinical abbreviations ("Main OR", "PA").
_AMBIGUOUS_STATES = frozenset(
    {"OR", "ME", "IN", "OK", "HI", "ID", "PA", "MD", "MA", "CO", "MS", "DE", "LA", "AL", "MT"}
)


def _bare_city_state(m: re.Match[str]) -> bool:
    if m["z"] is not None:
        return True
    return m.start() != m.start("v") and m["s"] not in _AMBIGUOUS_STATES


def recognize_location(text: str) -> list[Span]:
    """Street addresses, cities written before a US state, countries and ZIP codes."""
    out: list[Span] = []
    for m in _ADDRESS.finditer(text):
        end = m.end()
        if text[end - 1] == "." and not re.search(rf"{_STREET_SUFFIX}\.$", m.group(0)):
            end -= 1
        out.append(Span(m.start(), end, PiiLabel.ADDRESS, 0.85, "address"))
    out += spans_of(_ZIP_AFTER_STATE, text, PiiLabel.ZIP, 0.9, "zip", group="v")
    out += spans_of(_ZIP_CONTEXT, text, PiiLabel.ZIP, 0.9, "zip", group="v")
    out += spans_of(_CITY_STATE, text, PiiLabel.LOCATION, 0.8, "city_state", group="v")
    out += spans_of(
        _CITY_STATE_BARE,
        text,
        PiiLabel.LOCATION,
        0.75,
        "city_state",
        group="v",
        validate=_bare_city_state,
    )
    out += spans_of(_COUNTRY, text, PiiLabel.LOCATION, 0.75, "country")
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
