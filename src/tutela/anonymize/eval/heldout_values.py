"""Value lists and identifier formats of the held-out evaluation set (:mod:`.heldout`).

Written before any detector change for issue 17 and never scored while the recognisers
were tuned; only the final report runs the detector on it. Its phrasings (EHR exports
with pipes and field codes, letters in prose, patient messages), value lists (names,
organisations, cities) and identifier formats (MRNs with and without prefixes, account
numbers with dashes and spaces, several states' licence formats, UDIs, IMEIs, plates)
differ from the development set's (:mod:`.development`), and it is drawn with its own
seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from tutela.anonymize.eval.render import Filler, NoteKind, Patient, Piece, random_vin
from tutela.anonymize.recognizers import luhn_valid
from tutela.anonymize.spans import PiiLabel

L = PiiLabel
K = NoteKind

FIRST = [
    "Beatriz",
    "Oluwaseun",
    "Thanh",
    "Magdalena",
    "Rutger",
    "Siobhan",
    "Emeka",
    "Paulina",
    "Ximena",
    "Tobias",
    "Anneliese",
    "Kofi",
    "Marisol",
    "Declan",
    "Yusuf",
    "Ines",
    "Bartholomew",
    "Henrietta",
    "Esperanza",
    "Lorenzo",
    "Svetlana",
    "Abdullah",
    "Nadia",
    "Theodore",
    "Wilhelmina",
    "Cormac",
    "Rosalind",
    "Desmond",
    "Imogen",
    "Rafael",
    "Zainab",
    "Gustavo",
    "Ottilie",
    "Percival",
    "Marguerite",
    "Casimir",
    "Folasade",
    "Bogdan",
    "Agnieszka",
    "Eamon",
]
FEMALE = frozenset(
    [
        "Beatriz",
        "Magdalena",
        "Siobhan",
        "Paulina",
        "Ximena",
        "Anneliese",
        "Marisol",
        "Ines",
        "Henrietta",
        "Esperanza",
        "Svetlana",
        "Nadia",
        "Wilhelmina",
        "Rosalind",
        "Imogen",
        "Zainab",
        "Ottilie",
        "Marguerite",
        "Folasade",
        "Agnieszka",
    ]
)
LAST = [
    "Abernathy",
    "Vasquez-Ortega",
    "Nakamura",
    "Lindqvist",
    "O'Donnell",
    "Adeyemi",
    "Kaczmarek",
    "Ferreira",
    "Hoang",
    "MacAllister",
    "Delacroix",
    "Oyelaran",
    "Petrakis",
    "Whitlock",
    "Quintero",
    "Baptiste",
    "Szabo",
    "Castellanos",
    "Okoro",
    "Thorne",
    "Rahimi",
    "Kowalczyk",
    "Esposito",
    "Achterberg",
    "Lindgren",
    "Fairweather",
    "Pemberton",
    "Delgado",
    "Ashworth",
    "Villanueva",
    "Sokolov",
    "Halvorsen",
    "Mwangi",
    "Brennan",
    "Iwasaki",
    "Dufresne",
]
PROFESSIONS = (
    "longshoreman",
    "dental hygienist",
    "welder",
    "schoolteacher",
    "electrician",
    "paralegal",
    "software engineer",
    "bus driver",
    "dairy farmer",
    "hairdresser",
    "roofer",
    "accountant",
    "flight attendant",
    "machinist",
    "librarian",
    "line cook",
)
ORGS = (
    "Harbourview Logistics LLC",
    "Cascade Freight Inc.",
    "Tri-County Home Care Services",
    "Pinnacle Cardiology Associates",
    "Blue Heron Senior Living",
    "Greater Fenwick Transit Authority",
    "Lakeshore Family Practice",
    "Marlowe Insurance Group",
    "Hargrove Plumbing Co.",
    "Northgate Dialysis Partners",
    "Willowbend Community Foundation",
    "Sable Ridge School District",
)
HOSPITALS = (
    "St. Brigid's Rehabilitation Hospital",
    "Coastal Bend Imaging",
    "Ironwood Regional Hospital",
    "Mount Calder Medical Center",
    "Fenwick County General",
    "Bellhaven Children's Hospital",
    "Copperfield Urgent Care",
    "Eastmoor Veterans Clinic",
)
CITIES = (
    ("Duluth", "Minnesota", "55802"),
    ("Lowell", "MA", "01852"),
    ("Bangor", "ME", "04401"),
    ("Flagstaff", "AZ", "86001"),
    ("Savannah", "GA", "31401"),
    ("Eugene", "Oregon", "97401"),
    ("Pueblo", "CO", "81003"),
    ("Fargo", "ND", "58102"),
    ("Asheville", "NC", "28801"),
    ("Scranton", "PA", "18503"),
    ("Kalamazoo", "Michigan", "49007"),
    ("Chattanooga", "TN", "37402"),
)
COUNTRIES = ("Portugal", "Nigeria", "Vietnam", "Guatemala", "Poland", "the Philippines", "Peru")
STREETS = (
    "Old Mill Rd",
    "Quarry Lane",
    "W. Alder St.",
    "Cobblestone Ct",
    "N Kedzie Ave",
    "Birchwood Drive",
    "Ferry Street",
    "Juniper Hollow Road",
    "Garrison Ave",
    "Tamarack Blvd",
)
MONTHS = "January February March April May June July August September October November December"
MONTH_NAMES = MONTHS.split()
AREA = ("541", "971", "218", "978", "207", "928", "912", "719", "701", "828", "570", "269")


def _d(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def _a(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(n))


def _date(rng: random.Random) -> str:
    y, m, d = rng.randint(1931, 2025), rng.randint(1, 12), rng.randint(1, 28)
    month = MONTH_NAMES[m - 1]
    forms = (
        f"{m}/{d}/{y}",
        f"{d:02d}-{month[:3].upper()}-{y}",
        f"{y}-{m:02d}-{d:02d}",
        f"{month} {d}th" if d in (4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14) else f"{month} {d}",
        f"{d} {month} {y}",
        f"{month[:3]}. {d}, {y}",
        f"{m:02d}/{d:02d}/{y % 100:02d}",
        f"{month} of {y}",
    )
    return rng.choice(forms)


def _phone(rng: random.Random) -> str:
    area = rng.choice(AREA)
    ex = f"{rng.randint(2, 9)}{rng.randint(1, 9)}{rng.randint(0, 9)}"
    line = _d(rng, 4)
    return rng.choice(
        (
            f"{area}.{ex}.{line}",
            f"+1 ({area}) {ex} {line}",
            f"{area}-{ex}-{line} x{rng.randint(100, 999)}",
            f"({area}){ex}-{line}",
            f"1-{area}-{ex}-{line}",
        )
    )


def _age(rng: random.Random) -> str:
    return str(rng.randint(90, 106))


def _mrn(rng: random.Random) -> str:
    return rng.choice(
        (
            "00" + _d(rng, 6),
            "E" + _d(rng, 7),
            f"{_d(rng, 2)}-{_d(rng, 3)}-{_d(rng, 2)}",
            _d(rng, 7),
            "HN-" + _d(rng, 6),
            f"{_d(rng, 4)}-{_d(rng, 4)}",
        )
    )


def _account(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{_d(rng, 4)}-{_d(rng, 3)}-{_d(rng, 2)}",
            f"{_d(rng, 4)} {_d(rng, 4)} {_d(rng, 4)}",
            f"000-{_d(rng, 4)}-{_d(rng, 2)}",
            _d(rng, 8),
            f"{_d(rng, 4)} {_d(rng, 4)}",
        )
    )


def _plan(rng: random.Random) -> str:
    return rng.choice(
        (
            "W" + _d(rng, 10),
            _d(rng, 8) + rng.choice("ABC"),
            f"{_a(rng, 3)}-{_d(rng, 4)}-{_d(rng, 5)}",
            f"{_a(rng, 2)} {_d(rng, 2)} {_d(rng, 4)} {_d(rng, 3)}",
            f"{rng.randint(1, 9)}{_a(rng, 2)}{_d(rng, 1)}-{_a(rng, 2)}{_d(rng, 1)}"
            f"-{_a(rng, 2)}{_d(rng, 2)}",
        )
    )


def _dea(rng: random.Random) -> str:
    head = rng.choice("ABFM") + _a(rng, 1)
    d = [rng.randint(0, 9) for _ in range(6)]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    return head + "".join(map(str, d)) + str(check)


def _npi(rng: random.Random) -> str:
    while True:
        body = str(rng.randint(1, 2)) + _d(rng, 8)
        for c in "0123456789":
            if luhn_valid("80840" + body + c):
                return body + c


def _license(rng: random.Random) -> str:
    return rng.choice(
        (
            rng.choice("ABDEFGN") + _d(rng, 7),  # California
            f"{_d(rng, 3)} {_d(rng, 3)} {_d(rng, 3)}",  # New York
            f"{_a(rng, 1)}{_d(rng, 3)}-{_d(rng, 3)}-{_d(rng, 2)}-{_d(rng, 3)}-{_d(rng, 1)}",  # FL
            f"{_a(rng, 1)}{_d(rng, 3)}-{_d(rng, 4)}-{_d(rng, 4)}",  # Illinois
            _d(rng, 8),  # Texas
            f"{_d(rng, 2)} {_d(rng, 3)} {_d(rng, 3)}",  # Pennsylvania
            f"{_a(rng, 1)}{_d(rng, 4)} {_d(rng, 5)} {_d(rng, 5)}",  # New Jersey
        )
    )


def _plate(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{rng.randint(1, 9)}{_a(rng, 3)}{_d(rng, 3)}",
            f"{_a(rng, 3)}-{_d(rng, 4)}",
            f"{_a(rng, 3)} {_d(rng, 4)}",
            f"{_d(rng, 3)} {_a(rng, 3)}",
        )
    )


def _imei(rng: random.Random) -> str:
    while True:
        body = "35" + _d(rng, 12)
        for c in "0123456789":
            if luhn_valid(body + c):
                s = body + c
                return f"{s[:2]}-{s[2:8]}-{s[8:14]}-{s[14]}"


def _device(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{_a(rng, 3)}{_d(rng, 6)}{_a(rng, 1)}",
            f"{_d(rng, 7)}-{_d(rng, 2)}",
            f"(01)0{_d(rng, 13)}(21){_a(rng, 2)}{_d(rng, 4)}",
            f"{_a(rng, 2)}-{_d(rng, 2)}-{_d(rng, 5)}",
            f"{_d(rng, 4)}{_a(rng, 1)}{_d(rng, 4)}",
            _imei(rng),
        )
    )


def _biometric(rng: random.Random) -> str:
    return rng.choice(
        (
            f"FPT-{_d(rng, 5)}-{_a(rng, 1)}",
            f"VP{_d(rng, 5)}",
            f"RS-{_d(rng, 5)}-{_d(rng, 1)}",
            f"{_a(rng, 2)}{_d(rng, 6)}",
        )
    )


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return "fe80::" + ":".join(f"{rng.randint(0, 65535):x}" for _ in range(4))
    head = rng.choice((10, 172, 192, 66, 98))
    return f"{head}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _email(rng: random.Random, p: Patient) -> str:
    user = rng.choice(
        (
            f"{p.first[0].lower()}.{p.last.lower()}",
            f"{p.first.lower()}{rng.randint(10, 99)}",
            f"{p.last.lower()}_{p.first[0].lower()}",
        )
    ).replace("'", "")
    return f"{user}@{rng.choice(('mailbox.example.net', 'post.example.com', 'example.org'))}"


def _url(rng: random.Random, p: Patient) -> str:
    return rng.choice(
        (
            f"https://myhealth.northgate.example.org/msg/{_d(rng, 5)}",
            f"https://visit.example.com/room/{_a(rng, 4).lower()}-{_d(rng, 4)}",
            f"telemed.example.us/j/{_d(rng, 10)}",
            f"www.{p.last.lower().replace(chr(39), '')}caregivers.example.com",
        )
    )


def _city(rng: random.Random, with_zip: bool) -> list[Piece]:
    city, state, zipcode = rng.choice(CITIES)
    pieces: list[Piece] = [(city, L.LOCATION), (", ", None), (state, L.LOCATION)]
    if with_zip:
        pieces += [(" ", None), (zipcode, L.ZIP)]
    return pieces


def _street(rng: random.Random) -> str:
    unit = rng.choice(("", "", f" Unit {rng.randint(1, 30)}", f", Apt. {rng.randint(1, 9)}B"))
    return f"{rng.randint(2, 9899)} {rng.choice(STREETS)}{unit}"


def _clinician(rng: random.Random) -> list[Piece]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    form = rng.randrange(4)
    if form == 0:
        return [("Dr. ", None), (last, L.PERSON)]
    if form == 1:
        return [(f"{first[0]}. {last}", L.PERSON), (", MD", None)]
    if form == 2:
        return [(f"{first} {last}", L.PERSON), (", NP", None)]
    return [("Dr ", None), (f"{first} {last}", L.PERSON)]


def new_patient(rng: random.Random) -> Patient:
    first = rng.choice(FIRST)
    return Patient(first, rng.choice(LAST), first in FEMALE)


def fillers() -> dict[str, Filler]:
    def one(label: PiiLabel, make: object) -> Filler:
        def fill(rng: random.Random, p: Patient) -> Sequence[Piece]:
            del p
            return [(make(rng), label)]  # type: ignore[operator]

        return fill

    return {
        "PT": lambda r, p: [(f"{p.first} {p.last}", L.PERSON)],
        "PT_LF": lambda r, p: [(f"{p.last.upper()}, {p.first.upper()}", L.PERSON)],
        "PT_FIRST": lambda r, p: [(p.first, L.PERSON)],
        "PT_LAST": lambda r, p: [(p.last, L.PERSON)],
        "TITLE": lambda r, p: [("Ms." if p.female else "Mr.", None)],
        "RELATIVE": lambda r, p: [(f"{r.choice(FIRST)} {r.choice(LAST)}", L.PERSON)],
        "CLIN": lambda r, p: _clinician(r),
        "JOB": one(L.PROFESSION, lambda r: r.choice(PROFESSIONS)),
        "ORG": one(L.ORGANIZATION, lambda r: r.choice(ORGS)),
        "HOSP": one(L.ORGANIZATION, lambda r: r.choice(HOSPITALS)),
        "CITY": lambda r, p: _city(r, with_zip=False),
        "CITY_ZIP": lambda r, p: _city(r, with_zip=True),
        "COUNTRY": one(L.LOCATION, lambda r: r.choice(COUNTRIES)),
        "STREET": one(L.ADDRESS, _street),
        "ZIP": one(L.ZIP, lambda r: r.choice(CITIES)[2] + r.choice(("", f"-{_d(r, 4)}"))),
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
                    f"{r.randint(100, 665)}-{_d(r, 2)}-{r.randint(1000, 9999)}",
                    f"{r.randint(100, 665)} {r.randint(10, 99)} {r.randint(1000, 9999)}",
                    f"{r.randint(100, 665)}{r.randint(10, 99)}{r.randint(1000, 9999)}",
                )
            ),
        ),
        "MRN": one(L.MRN, _mrn),
        "ACCT": one(L.ACCOUNT, _account),
        "PLAN": one(L.HEALTH_PLAN, _plan),
        "LIC": one(L.LICENSE, _license),
        "DEA": one(L.LICENSE, _dea),
        "NPI": one(L.LICENSE, _npi),
        "VIN": one(L.VEHICLE, random_vin),
        "PLATE": one(L.VEHICLE, _plate),
        "DEV": one(L.DEVICE, _device),
        "BIO": one(L.BIOMETRIC, _biometric),
    }
