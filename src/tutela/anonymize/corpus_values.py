"""Value lists and value generators behind the seeded note corpus (:mod:`.corpus`).

Every value is synthetic: invented names, checksum-valid but random SSNs, cards, IBANs
and VINs, fictitious e-mail domains.
"""

from __future__ import annotations

import random

from tutela.anonymize.recognizers import luhn_valid, vin_valid

FIRST_NAMES = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Lisa",
    "Daniel",
    "Nancy",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Melissa",
    "George",
    "Deborah",
    "Aisha",
    "Mohammed",
    "Wei",
    "Mei",
    "Carlos",
    "Sofia",
    "Raj",
    "Priya",
    "Olga",
    "Dmitri",
    "Fatima",
    "Hiroshi",
    "Yuki",
    "Kwame",
    "Amara",
    "Mateo",
    "Lucia",
    "Tariq",
    "Leila",
    "Jamal",
    "Ngozi",
    "Arjun",
    "Ingrid",
    "Sven",
    "Chloe",
    "Liam",
    "Noah",
    "Emma",
    "Olivia",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Okafor",
    "Chen",
    "Patel",
    "Kowalski",
    "Ivanova",
    "Haddad",
    "Tanaka",
    "Mensah",
    "Okonkwo",
    "Silva",
    "Novak",
    "Schmidt",
    "Larsen",
    "Dubois",
    "Rossi",
    "Kim",
    "Park",
    "Singh",
    "Khan",
    "Cohen",
    "Murphy",
    "O'Brien",
    "Fitzgerald",
]
CITIES = (
    ("Boston", "MA", "02114"),
    ("Springfield", "IL", "62701"),
    ("Worcester", "MA", "01608"),
    ("Portland", "OR", "97205"),
    ("Austin", "TX", "78701"),
    ("Denver", "CO", "80203"),
    ("Columbus", "OH", "43215"),
    ("Madison", "WI", "53703"),
    ("Raleigh", "NC", "27601"),
    ("Tucson", "AZ", "85701"),
    ("Albany", "NY", "12207"),
    ("Burlington", "VT", "05401"),
    ("San Diego", "CA", "92101"),
    ("Salt Lake City", "UT", "84111"),
    ("New Haven", "CT", "06510"),
    ("Ann Arbor", "MI", "48104"),
)
STREETS = [
    "Elm",
    "Maple",
    "Oak",
    "Cedar",
    "Pine",
    "Washington",
    "Lincoln",
    "Jefferson",
    "Highland",
    "Park",
    "Lake",
    "Hill",
    "Main",
    "Church",
    "Spring",
    "Walnut",
    "Chestnut",
    "Sunset",
    "River",
    "Meadow",
    "Forest",
    "Cambridge",
    "Beacon",
    "Harbor",
]
SUFFIXES = [
    "Street",
    "St",
    "Avenue",
    "Ave",
    "Road",
    "Rd",
    "Lane",
    "Drive",
    "Court",
    "Boulevard",
    "Way",
    "Place",
    "Terrace",
]
HOSPITAL_PARTS = [
    "Riverside",
    "Lakeview",
    "Mercy",
    "Hillcrest",
    "Northside",
    "Valley",
    "Providence",
    "Summit",
    "Fairview",
    "Bayview",
    "Greenfield",
    "Westbrook",
    "Oakwood",
    "Pinecrest",
    "Brookdale",
]
HOSPITAL_KINDS = (
    "General Hospital",
    "Medical Center",
    "Memorial Hospital",
    "Community Clinic",
    "Regional Medical Center",
    "Family Health Center",
)
AREA_CODES = [
    "617",
    "212",
    "415",
    "312",
    "713",
    "206",
    "303",
    "404",
    "305",
    "602",
    "508",
    "978",
    "720",
    "503",
    "919",
    "520",
    "801",
    "734",
    "203",
    "608",
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def phone(rng: random.Random) -> str:
    area = rng.choice(AREA_CODES)
    exchange = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(1, 9)}"
    line = f"{rng.randint(0, 9999):04d}"
    fmt = rng.randrange(5)
    if fmt == 0:
        return f"({area}) {exchange}-{line}"
    if fmt == 1:
        return f"{area}-{exchange}-{line}"
    if fmt == 2:
        return f"{area}.{exchange}.{line}"
    if fmt == 3:
        return f"+1 {area} {exchange} {line}"
    return f"{area} {exchange} {line}"


def date(rng: random.Random) -> str:
    y, m, d = rng.randint(1935, 2024), rng.randint(1, 12), rng.randint(1, 28)
    month = MONTHS[m - 1]
    fmt = rng.randrange(9)
    return [
        f"{m:02d}/{d:02d}/{y}",
        f"{m}/{d}/{y % 100:02d}",
        f"{y}-{m:02d}-{d:02d}",
        f"{d:02d}.{m:02d}.{y}",
        f"{month} {d}, {y}",
        f"{d} {month} {y}",
        f"{month[:3]} {d}, {y}",
        f"{d:02d}-{month[:3]}-{y}",
        f"{month} {y}",
    ][fmt]


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always completes a Luhn number")


def card(rng: random.Random) -> str:
    digits = luhn_complete(rng.choice(["4", "51", "55"]), 16, rng)
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


def iban(rng: random.Random) -> str:
    bban = "".join(str(rng.randint(0, 9)) for _ in range(18))
    numeric = "".join(str(int(c, 36)) for c in bban + "DE00")
    check = 98 - int(numeric) % 97
    raw = f"DE{check:02d}{bban}"
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def vin(rng: random.Random) -> str:
    while True:
        chars = [rng.choice(_VIN_CHARS) for _ in range(17)]
        for check in "0123456789X":
            chars[8] = check
            vin = "".join(chars)
            if vin_valid(vin):
                return vin


def upper(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(n))


def digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def ip(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return "2001:db8:" + ":".join(f"{rng.randint(0, 65535):x}" for _ in range(6))
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))
