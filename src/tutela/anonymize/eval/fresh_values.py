"""Value lists and identifier formats of the fresh held-out evaluation set (:mod:`.fresh`).

Written after the first held-out set's misses were known and before any further detector
change, so that set's errors could not shape it. Its names mix uncommon names with
common American ones that are also words; its states are labelled (i2b2 tags them, Safe
Harbor keeps them, so reports show both views); its identifier formats are new: MRNs with
spaces or a check digit, Epic/Cerner-style account numbers (HAR, FIN), old Medicare
claim numbers, Wisconsin, Minnesota, Colorado and Iowa licences, MAC addresses and GS1
UDIs with dates and lots, palm-vein and face-template references, HL7 compact dates.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from tutela.anonymize.eval.render import Filler, Patient, Piece, random_vin
from tutela.anonymize.spans import PiiLabel

L = PiiLabel


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST = _words(
    "Aurelio Benedikta Chidi Dorota Evander Fenella Giacomo Halima Idris Jolanta Kwame "
    "Leocadia Mirela Nkechi Osvaldo Pernille Quentin Rasmus Saoirse Tadeusz Ulrike Vasco "
    "Wanjiru Yesenia Zbigniew Bronwyn Cosimo Delphine Ezekiel Fionnuala Gunnar Hyacinth "
    "Grace Mark Rose Dwayne Tammy Curtis Brenda Luis"
)
FEMALE = frozenset(
    _words(
        "Benedikta Dorota Fenella Halima Jolanta Leocadia Mirela Nkechi Pernille Saoirse "
        "Ulrike Wanjiru Yesenia Bronwyn Delphine Fionnuala Hyacinth Grace Rose Tammy Brenda"
    )
)
LAST = _words(
    "Oyebanji Wieczorek Thistlewood Gallardo Prendergast Kristiansen Mbeki Lacroix "
    "Featherby Onwuachi Trujillo Haverford Nakashima Bergstrom Cavanaugh Ibekwe Zelenko "
    "Montalvo Rutherford Szymanski Holloway Adebayo Vukovic Fitzgerald "
    "Brown Patel Nguyen Young King Rivera Hill Washington"
)
PROFESSIONS = (
    "forklift operator",
    "nurse's aide",
    "stonemason",
    "barista",
    "insurance adjuster",
    "pastor",
    "crossing guard",
    "seamstress",
    "HVAC technician",
    "air traffic controller",
    "landscaper",
    "court reporter",
    "veterinary technician",
    "meat cutter",
    "postal clerk",
    "security guard",
)
ORGS = (
    "Tidewater Packaging Corp.",
    "Obsidian Data Systems",
    "Rolling Meadows Nursing Home",
    "Fairhaven Early Learning Center",
    "Copper Canyon Mining Co.",
    "Bayside Behavioral Health",
    "Summit Peak Credit Union",
    "Granville & Sons Roofing",
    "Evergreen Dialysis of Eastport",
    "Meridian Benefit Administrators",
    "Kestrel Regional Airlines",
    "Whitmore University",
)
HOSPITALS = (
    "Our Lady of the Lakes Hospital",
    "Stonebridge University Medical Center",
    "Palisade Valley Hospital",
    "Brookhaven Heart Institute",
    "Larchmont Pediatric Clinic",
    "Sawtooth Regional Medical Center",
    "Eastport Community Health Center",
    "Harrowgate Surgical Center",
)
CITIES = (
    ("Missoula", "MT", "59801"),
    ("Cedar Rapids", "Iowa", "52401"),
    ("Sioux Falls", "SD", "57104"),
    ("Lubbock", "Texas", "79401"),
    ("Akron", "OH", "44308"),
    ("Tallahassee", "FL", "32301"),
    ("Bozeman", "Montana", "59715"),
    ("Yakima", "WA", "98901"),
    ("Roanoke", "VA", "24011"),
    ("Green Bay", "Wisconsin", "54301"),
    ("Albuquerque", "NM", "87102"),
    ("Hartford", "CT", "06103"),
)
COUNTRIES = ("Eritrea", "Laos", "Honduras", "Bosnia", "Nepal", "Jamaica", "Cambodia", "Sudan")
STREETS = (
    "Cottonwood Circle",
    "Route 9",
    "Harbor View Pkwy",
    "S. Main St.",
    "Hawthorne Pl",
    "County Road 12",
    "Bramble Way",
    "Ridgecrest Dr.",
    "Wexford Ct.",
    "Lighthouse Point Rd",
)
MONTHS = _words(
    "January February March April May June July August September October November December"
)
WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
AREA = ("406", "319", "605", "806", "330", "850", "540", "414", "505", "860", "575", "563")
HEX = "0123456789ABCDEF"
KIN = ("daughter", "son", "wife", "husband", "niece", "brother", "partner", "granddaughter")


def _d(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def _a(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(n))


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(HEX) for _ in range(n))


def _date(rng: random.Random) -> str:
    y, m, d = rng.randint(1932, 2026), rng.randint(1, 12), rng.randint(1, 28)
    month = MONTHS[m - 1]
    return rng.choice(
        (
            f"{m}.{d}.{y}",
            f"{d} {month[:3]} {y}",
            f"{month[:3]}-{d:02d}-{y}",
            f"{y}{m:02d}{d:02d}",
            f"{rng.choice(WEEKDAYS)}, {month} {d}",
            f"{month[:3]} {y}",
            f"{m}/{y}",
            f"{m}/{d}/{y % 100:02d}",
            f"{month} {d}, {y}",
        )
    )


def _phone(rng: random.Random) -> str:
    area = rng.choice(AREA)
    ex = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
    line = _d(rng, 4)
    return rng.choice(
        (
            f"{area} {ex}-{line}",
            f"({area}) {ex} {line}",
            f"{area}{ex}{line}",
            f"{area}-{ex}-{line} ext. {rng.randint(10, 9999)}",
            f"+1.{area}.{ex}.{line}",
        )
    )


def _age(rng: random.Random) -> str:
    n = rng.randint(90, 104)
    words = {90: "ninety", 91: "ninety-one", 93: "ninety-three", 96: "ninety-six"}
    if n in words and rng.random() < 0.3:
        return words[n]
    return str(n)


def _mrn(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{_d(rng, 3)} {_d(rng, 2)} {_d(rng, 2)}",
            f"{_d(rng, 6)}-{_d(rng, 1)}",
            "0" + _d(rng, 8),
            _a(rng, 2) + _d(rng, 7),
            _d(rng, 10),
        )
    )


def _account(rng: random.Random) -> str:
    return rng.choice(
        (
            _d(rng, 11),
            f"{_d(rng, 3)}-{_d(rng, 7)}",
            "V" + _d(rng, 8),
            f"{_d(rng, 2)}-{_d(rng, 5)}-{_d(rng, 3)}",
            f"{_d(rng, 5)} {_d(rng, 5)}",
        )
    )


def _plan(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{_d(rng, 3)}-{_d(rng, 2)}-{_d(rng, 4)}-{rng.choice('ABCDM')}",  # old Medicare HICN
            f"{_a(rng, 3)}{_d(rng, 7)}01",
            "M" + _d(rng, 9),
            f"{_a(rng, 2)}{_d(rng, 3)}{_a(rng, 1)}{_d(rng, 4)}",
            f"{_d(rng, 5)}-{_d(rng, 5)}",
        )
    )


def _dea(rng: random.Random) -> str:
    d = [rng.randint(0, 9) for _ in range(6)]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    return rng.choice("BFGM") + _a(rng, 1) + "".join(map(str, d)) + str(check)


def _license(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{_a(rng, 1)}{_d(rng, 3)}-{_d(rng, 4)}-{_d(rng, 4)}-{_d(rng, 2)}",  # Wisconsin
            _a(rng, 1) + _d(rng, 12),  # Minnesota
            f"{_d(rng, 2)}-{_d(rng, 3)}-{_d(rng, 4)}",  # Colorado
            f"{_d(rng, 3)}{_a(rng, 2)}{_d(rng, 4)}",  # Iowa
            f"{_a(rng, 2)}.{_d(rng, 6)}",  # professional licence (board letters + number)
            _dea(rng),
        )
    )


def _plate(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{_a(rng, 1)}{_d(rng, 2)}-{_a(rng, 2)}{_d(rng, 1)}",
            f"{_a(rng, 2)}{_d(rng, 1)}-{_d(rng, 3)}{_a(rng, 1)}",
            f"{_d(rng, 1)}-{_a(rng, 4)}-{_d(rng, 2)}",
            f"{_a(rng, 3)} {_d(rng, 3)}",
        )
    )


def _device(rng: random.Random) -> str:
    yy, mm = rng.randint(25, 33), rng.randint(1, 12)
    return rng.choice(
        (
            ":".join(_hex(rng, 2) for _ in range(6)),  # MAC address of a home hub
            f"(01)00{_d(rng, 12)}(17){yy}{mm:02d}28(10){_a(rng, 1)}{_d(rng, 5)}(21){_d(rng, 6)}",
            _a(rng, 1) + _d(rng, 8),
            f"{_d(rng, 3)}-{_d(rng, 4)}-{_a(rng, 2)}",
            f"SN{_d(rng, 9)}",
        )
    )


def _biometric(rng: random.Random) -> str:
    return rng.choice(
        (
            "PV" + _d(rng, 7),
            f"FACE-{_hex(rng, 8)}",
            f"{_d(rng, 4)}-{_a(rng, 2)}-{_d(rng, 3)}",
            _hex(rng, 12).lower(),
        )
    )


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return f"2001:db8:{_hex(rng, 4).lower()}:{_hex(rng, 3).lower()}::{rng.randint(2, 99)}"
    head = rng.choice((24, 50, 71, 104, 130, 184, 203))
    return f"{head}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(2, 250)}"


def _email(rng: random.Random, p: Patient) -> str:
    user = rng.choice(
        (
            f"{p.first.lower()}_{p.last.lower()}{rng.randint(50, 99)}",
            f"{p.last.lower()}.{p.first[0].lower()}",
            f"{p.first[0].lower()}{p.last[0].lower()}{_d(rng, 4)}",
        )
    )
    domain = rng.choice(("webmail.example.edu", "example.co", "correo.example.net"))
    return f"{user}@{domain}"


def _url(rng: random.Random, p: Patient) -> str:
    return rng.choice(
        (
            f"https://zoom.example.com/j/{_d(rng, 11)}",
            f"http://{p.last.lower()}family.example.org/updates",
            f"portal.stonebridge.example.edu/appt/{_d(rng, 6)}",
            f"https://www.example.net/donate/{p.first.lower()}-{p.last.lower()}",
        )
    )


def _city(rng: random.Random, with_zip: bool) -> list[Piece]:
    city, state, zipcode = rng.choice(CITIES)
    sep = rng.choice((", ", " "))
    pieces: list[Piece] = [(city, L.LOCATION), (sep, None), (state, L.LOCATION)]
    if with_zip:
        pieces += [(rng.choice((" ", "  ")), None), (zipcode, L.ZIP)]
    return pieces


def _street(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return f"P.O. Box {rng.randint(10, 9999)}"
    unit = rng.choice(("", "", f" Apt {rng.randint(1, 12)}{rng.choice('ABCD')}", " Lot 14"))
    return f"{rng.randint(3, 24000)} {rng.choice(STREETS)}{unit}"


def _clinician(rng: random.Random) -> list[Piece]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    form = rng.randrange(5)
    if form == 0:
        return [(f"{first} {last}", L.PERSON), (", MD", None)]
    if form == 1:
        return [(f"{first} {last}", L.PERSON), (", PA-C", None)]
    if form == 2:
        return [("Dr. ", None), (f"{first[0]}. {last}", L.PERSON)]
    if form == 3:
        return [(f"{last.upper()}, {first.upper()}", L.PERSON), (" (MD)", None)]
    return [(f"{first} {last}", L.PERSON), (" RN BSN", None)]


def new_patient(rng: random.Random) -> Patient:
    first = rng.choice(FIRST)
    return Patient(first, rng.choice(LAST), first in FEMALE)


def fillers() -> dict[str, Filler]:
    """Slot name to value generator for the fresh set's templates."""

    def one(label: PiiLabel, make: object) -> Filler:
        def fill(rng: random.Random, p: Patient) -> Sequence[Piece]:
            del p
            return [(make(rng), label)]  # type: ignore[operator]

        return fill

    return {
        "PT": lambda r, p: [(f"{p.first} {p.last}", L.PERSON)],
        "PT_LF": lambda r, p: [(f"{p.last}, {p.first}", L.PERSON)],
        "PT_HL7": lambda r, p: [(f"{p.last.upper()}^{p.first.upper()}", L.PERSON)],
        "PT_LOWER": lambda r, p: [(f"{p.first.lower()} {p.last.lower()}", L.PERSON)],
        "PT_FIRST": lambda r, p: [(p.first, L.PERSON)],
        "PT_LAST": lambda r, p: [(p.last, L.PERSON)],
        "TITLE": lambda r, p: [(r.choice(("Ms.", "Mrs.")) if p.female else "Mr.", None)],
        "PRONOUN": lambda r, p: [("she" if p.female else "he", None)],
        "PRONOUN_CAP": lambda r, p: [("She" if p.female else "He", None)],
        "PRONOUN_POSS": lambda r, p: [("her" if p.female else "his", None)],
        "SEX": lambda r, p: [("F" if p.female else "M", None)],
        "KIN": lambda r, p: [(r.choice(KIN), None)],
        "KIN_CAP": lambda r, p: [(r.choice(KIN).capitalize(), None)],
        "RELATIVE": lambda r, p: [(f"{r.choice(FIRST)} {r.choice(LAST)}", L.PERSON)],
        "RELATIVE_FIRST": lambda r, p: [(r.choice(FIRST), L.PERSON)],
        "CLIN": lambda r, p: _clinician(r),
        "JOB": one(L.PROFESSION, lambda r: r.choice(PROFESSIONS)),
        "ORG": one(L.ORGANIZATION, lambda r: r.choice(ORGS)),
        "HOSP": one(L.ORGANIZATION, lambda r: r.choice(HOSPITALS)),
        "CITY": lambda r, p: _city(r, with_zip=False),
        "CITY_ZIP": lambda r, p: _city(r, with_zip=True),
        "COUNTRY": one(L.LOCATION, lambda r: r.choice(COUNTRIES)),
        "STREET": one(L.ADDRESS, _street),
        "DATE": one(L.DATE, _date),
        "AGE": one(L.AGE, _age),
        "PHONE": one(L.PHONE, _phone),
        "EMAIL": lambda r, p: [(_email(r, p), L.EMAIL)],
        "URL": lambda r, p: [(_url(r, p), L.URL)],
        "IP": one(L.IP_ADDRESS, _ip),
        "SSN": one(
            L.SSN,
            lambda r: r.choice(
                (
                    f"{r.randint(101, 665)}-{r.randint(10, 99)}-{r.randint(1000, 9999)}",
                    f"{r.randint(101, 665)}{r.randint(10, 99)}{r.randint(1000, 9999)}",
                )
            ),
        ),
        "MRN": one(L.MRN, _mrn),
        "ACCT": one(L.ACCOUNT, _account),
        "PLAN": one(L.HEALTH_PLAN, _plan),
        "LIC": one(L.LICENSE, _license),
        "VIN": one(L.VEHICLE, random_vin),
        "PLATE": one(L.VEHICLE, _plate),
        "DEV": one(L.DEVICE, _device),
        "BIO": one(L.BIOMETRIC, _biometric),
    }
