"""Value lists and identifier formats of the development evaluation set (:mod:`.development`).

Different names, organisations and cities from the held-out set, and other identifier
formats: MRNs with and without prefixes, account numbers with dashes and spaces,
Massachusetts, Ohio, Georgia, Michigan and Washington licences, professional licences,
DEA and NPI numbers, plates with state words, pump and hearing-aid serials, UDIs, IMEIs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from tutela.anonymize.eval.render import Filler, Patient, Piece, random_vin
from tutela.anonymize.recognizers import luhn_valid
from tutela.anonymize.spans import PiiLabel

L = PiiLabel


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST = _words(
    "Harold Gwendolyn Mateus Ayesha Cedric Lucinda Tomasz Keiko Ignatius Rowena Obinna Marta "
    "Florian Dagny Hamid Priscilla Vikram Esme Lachlan Juniper Horatio Beatrix Anselm Soraya "
    "Phineas Clementine Radu Noor Isidore Tabitha Winifred Emil"
)
FEMALE = frozenset(
    _words(
        "Gwendolyn Ayesha Lucinda Keiko Rowena Marta Dagny Priscilla Esme Juniper Beatrix "
        "Soraya Clementine Noor Tabitha Winifred"
    )
)
LAST = _words(
    "Grimsby Oyelowo Featherstone Marchetti Novotny Achebe Lindholm Carrasco Whitcombe "
    "Takahashi Ravenscroft Oduya Bielski Sandoval Hawthorne Quigley Moreau Abara Strand "
    "Castellano Winslow Petrova Ogunbanjo Bellweather Yilmaz Drummond McTavish Al-Sayed"
)
PROFESSIONS = (
    "carpenter",
    "truck driver",
    "registered nurse",
    "plumber",
    "cashier",
    "mail carrier",
    "chef",
    "attorney",
    "mechanic",
    "firefighter",
    "graphic designer",
    "janitor",
    "veterinarian",
    "construction worker",
    "teacher's aide",
    "pharmacy technician",
)
ORGS = (
    "Brightwater Staffing Inc.",
    "Quarry Hill Manufacturing",
    "Elmstead Public Schools",
    "Redfern Mutual Insurance Co.",
    "Silver Oak Assisted Living",
    "Keystone Home Health Agency",
    "Alder Creek Pharmacy",
    "Marsh & Tully LLP",
    "Northwind Courier Corp.",
    "Granite State Family Services",
    "Harper Valley Dental Group",
    "Lantern House Hospice",
)
HOSPITALS = (
    "Westbury General Hospital",
    "St. Aldric Medical Center",
    "Cranmore Memorial Hospital",
    "Hollis Valley Health Center",
    "Ridgeline Surgical Institute",
    "Ashgrove Community Hospital",
    "Mercy Harbor Clinic",
    "Dunmore Regional Cancer Center",
)
CITIES = (
    ("Pittsfield", "MA", "01201"),
    ("Dayton", "Ohio", "45402"),
    ("Macon", "GA", "31201"),
    ("Lansing", "MI", "48933"),
    ("Spokane", "WA", "99201"),
    ("Burlington", "Vermont", "05401"),
    ("Boise", "ID", "83702"),
    ("Topeka", "KS", "66603"),
    ("Erie", "Pennsylvania", "16501"),
    ("Mobile", "AL", "36602"),
    ("Reno", "NV", "89501"),
    ("Provo", "UT", "84601"),
)
COUNTRIES = ("Ireland", "Ghana", "Ukraine", "Brazil", "India", "Somalia", "Haiti", "Romania")
STREETS = (
    "Pleasant Street",
    "Orchard Hill Rd.",
    "Saddleback Way",
    "E. 14th Street",
    "Winthrop Ave",
    "Larkspur Lane",
    "S. Division St",
    "Kettle Pond Road",
    "Maplewood Terrace",
    "Fountain Square",
)
MONTHS = _words(
    "January February March April May June July August September October November December"
)
AREA = ("413", "937", "478", "517", "509", "802", "208", "785", "814", "251", "775", "385")


def digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(n))


def _ordinal(d: int) -> str:
    if d % 10 in (1, 2, 3) and d not in (11, 12, 13):
        return ("st", "nd", "rd")[d % 10 - 1]
    return "th"


def date(rng: random.Random) -> str:
    y, m, d = rng.randint(1929, 2026), rng.randint(1, 12), rng.randint(1, 28)
    month = MONTHS[m - 1]
    return rng.choice(
        (
            f"{m:02d}/{d:02d}/{y}",
            f"{m}-{d}-{y}",
            f"{month} {d}, {y}",
            f"{d}-{month[:3]}-{y % 100:02d}",
            f"{y}/{m:02d}/{d:02d}",
            f"{month[:3]} {d}",
            f"{d}{_ordinal(d)} of {month}",
            f"{month} {y}",
            f"{m}/{d}",
        )
    )


def phone(rng: random.Random) -> str:
    area = rng.choice(AREA)
    ex = f"{rng.randint(2, 9)}{rng.randint(1, 9)}{rng.randint(0, 9)}"
    line = digits(rng, 4)
    return rng.choice(
        (
            f"({area}) {ex}-{line}",
            f"{area}-{ex}-{line}",
            f"{area} {ex} {line}",
            f"+1-{area}-{ex}-{line}",
            f"{area}/{ex}-{line}",
        )
    )


def mrn(rng: random.Random) -> str:
    return rng.choice(
        (
            digits(rng, 7),
            f"{digits(rng, 3)}-{digits(rng, 3)}",
            "A" + digits(rng, 8),
            digits(rng, 8),
            f"000-{digits(rng, 3)}-{digits(rng, 2)}",
            f"MR{digits(rng, 6)}",
        )
    )


def account(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{digits(rng, 4)}-{digits(rng, 4)}-{digits(rng, 2)}",
            f"{digits(rng, 2)} {digits(rng, 4)} {digits(rng, 4)}",
            f"PA-{digits(rng, 6)}",
            digits(rng, 10),
            f"{digits(rng, 3)} {digits(rng, 3)} {digits(rng, 3)}",
        )
    )


def plan(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{letters(rng, 3)}{digits(rng, 9)}",
            f"{digits(rng, 9)}-{digits(rng, 2)}",
            f"H{digits(rng, 4)}-{digits(rng, 3)}",
            f"{letters(rng, 1)}{digits(rng, 2)} {digits(rng, 3)} {digits(rng, 3)}",
        )
    )


def dea(rng: random.Random) -> str:
    d = [rng.randint(0, 9) for _ in range(6)]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    return rng.choice("ABFGM") + letters(rng, 1) + "".join(map(str, d)) + str(check)


def npi(rng: random.Random) -> str:
    while True:
        body = str(rng.randint(1, 2)) + digits(rng, 8)
        for c in "0123456789":
            if luhn_valid("80840" + body + c):
                return body + c


def license_number(rng: random.Random) -> str:
    return rng.choice(
        (
            "S" + digits(rng, 8),  # Massachusetts
            letters(rng, 2) + digits(rng, 6),  # Ohio
            digits(rng, 9),  # Georgia
            f"{letters(rng, 1)} {digits(rng, 3)} {digits(rng, 3)} {digits(rng, 3)}"
            f" {digits(rng, 3)}",  # Michigan
            "WDL" + letters(rng, 3) + digits(rng, 5) + letters(rng, 1),  # Washington
            f"RN{digits(rng, 7)}",  # nursing licence
            f"MD-{digits(rng, 5)}",  # medical licence
        )
    )


def plate(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{rng.randint(1, 9)}{letters(rng, 2)}-{digits(rng, 3)}",
            f"{digits(rng, 1)}{letters(rng, 3)}-{digits(rng, 2)}",
            f"{letters(rng, 3)}{digits(rng, 4)}",
            f"{letters(rng, 2)} {digits(rng, 5)}",
        )
    )


def imei(rng: random.Random) -> str:
    while True:
        body = "49" + digits(rng, 12)
        for c in "0123456789":
            if luhn_valid(body + c):
                return body + c


def device(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{letters(rng, 3)}{digits(rng, 7)}",
            f"{digits(rng, 2)}-{digits(rng, 4)}-{digits(rng, 4)}",
            f"(01){digits(rng, 14)}(11){digits(rng, 6)}(21){letters(rng, 1)}{digits(rng, 4)}",
            imei(rng),
            f"{digits(rng, 4)}{letters(rng, 2)}",
            f"G{digits(rng, 9)}",
        )
    )


def biometric(rng: random.Random) -> str:
    return rng.choice(
        (
            f"FP {digits(rng, 7)}",
            f"IR-{digits(rng, 2)}-{digits(rng, 5)}",
            f"{digits(rng, 5)}",
            f"BIO{digits(rng, 6)}",
        )
    )


def ip(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return "2600:1700:" + ":".join(f"{rng.randint(0, 65535):x}" for _ in range(3)) + "::1"
    return (
        f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    )


def email(rng: random.Random, p: Patient) -> str:
    user = rng.choice(
        (
            f"{p.first.lower()}.{p.last.lower()}",
            f"{p.first[0].lower()}{p.last.lower()}{rng.randint(1, 9)}",
        )
    ).replace("'", "")
    return f"{user}@{rng.choice(('inbox.example.com', 'example.net', 'mail.example.us'))}"


def url(rng: random.Random, p: Patient) -> str:
    return rng.choice(
        (
            f"https://portal.westbury.example.org/records/{digits(rng, 7)}",
            f"http://www.example.com/{p.last.lower().replace(chr(39), '')}-fundraiser",
            f"https://meet.example.net/clinic-{digits(rng, 6)}",
            f"careteam.example.org/p/{letters(rng, 5).lower()}",
        )
    )


def city(rng: random.Random, with_zip: bool) -> list[Piece]:
    name, state, zipcode = rng.choice(CITIES)
    # The state is not an identifier under Safe Harbor (i2b2 would label it).
    pieces: list[Piece] = [(name, L.LOCATION), (", ", None), (state, None)]
    if with_zip:
        pieces += [(" ", None), (zipcode, L.ZIP)]
    return pieces


def street(rng: random.Random) -> str:
    unit = rng.choice(("", "", f", Apt {rng.randint(1, 40)}", f" #{rng.randint(100, 999)}"))
    return f"{rng.randint(1, 12000)} {rng.choice(STREETS)}{unit}"


def clinician(rng: random.Random) -> list[Piece]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    form = rng.randrange(4)
    if form == 0:
        return [("Dr. ", None), (f"{first} {last}", L.PERSON)]
    if form == 1:
        return [(f"{last}, {first}", L.PERSON), (" MD", None)]
    if form == 2:
        return [(f"{first} {last}", L.PERSON), (", RN", None)]
    return [("Dr. ", None), (last, L.PERSON)]


def new_patient(rng: random.Random) -> Patient:
    first = rng.choice(FIRST)
    return Patient(first, rng.choice(LAST), first in FEMALE)


def fillers() -> dict[str, Filler]:
    """Slot name to value generator for the development set's templates."""

    def one(label: PiiLabel, make: object) -> Filler:
        def fill(rng: random.Random, p: Patient) -> Sequence[Piece]:
            del p
            return [(make(rng), label)]  # type: ignore[operator]

        return fill

    return {
        "PT": lambda r, p: [(f"{p.first} {p.last}", L.PERSON)],
        "PT_LF": lambda r, p: [(f"{p.last}, {p.first}", L.PERSON)],
        "PT_FIRST": lambda r, p: [(p.first, L.PERSON)],
        "PT_LAST": lambda r, p: [(p.last, L.PERSON)],
        "TITLE": lambda r, p: [("Mrs." if p.female else "Mr.", None)],
        "PRONOUN": lambda r, p: [("She" if p.female else "He", None)],
        "RELATIVE": lambda r, p: [(f"{r.choice(FIRST)} {r.choice(LAST)}", L.PERSON)],
        "CLIN": lambda r, p: clinician(r),
        "JOB": one(L.PROFESSION, lambda r: r.choice(PROFESSIONS)),
        "ORG": one(L.ORGANIZATION, lambda r: r.choice(ORGS)),
        "HOSP": one(L.ORGANIZATION, lambda r: r.choice(HOSPITALS)),
        "CITY": lambda r, p: city(r, with_zip=False),
        "CITY_ZIP": lambda r, p: city(r, with_zip=True),
        "COUNTRY": one(L.LOCATION, lambda r: r.choice(COUNTRIES)),
        "STREET": one(L.ADDRESS, street),
        "ZIP": one(L.ZIP, lambda r: r.choice(CITIES)[2]),
        "DATE": one(L.DATE, date),
        "AGE": one(L.AGE, lambda r: str(r.randint(90, 108))),
        "PHONE": one(L.PHONE, phone),
        "EMAIL": lambda r, p: [(email(r, p), L.EMAIL)],
        "URL": lambda r, p: [(url(r, p), L.URL)],
        "IP": one(L.IP_ADDRESS, ip),
        "SSN": one(
            L.SSN, lambda r: f"{r.randint(1, 665):03d}-{digits(r, 2)}-{r.randint(1, 9999):04d}"
        ),
        "MRN": one(L.MRN, mrn),
        "ACCT": one(L.ACCOUNT, account),
        "PLAN": one(L.HEALTH_PLAN, plan),
        "LIC": one(L.LICENSE, license_number),
        "DEA": one(L.LICENSE, dea),
        "NPI": one(L.LICENSE, npi),
        "VIN": one(L.VEHICLE, random_vin),
        "PLATE": one(L.VEHICLE, plate),
        "DEV": one(L.DEVICE, device),
        "BIO": one(L.BIOMETRIC, biometric),
    }
