"""Values and fillers for the sealed evaluation set (:mod:`.sealed`).

The names, places, organisations and identifier formats here were written for this set
alone, without reference to the detector or to the other evaluation sets. They follow
safety-net and non-US English-speaking settings: federally qualified health centres, VA
and Indian Health Service clinics, home health and hospice agencies, dental, optometry,
occupational and correctional health, school nursing, and hospitals in the Caribbean,
South Africa, India, Singapore, the Philippines and Kenya. Most organisations and many
places are invented.

Gold conventions: a person's name without its title; an age only when it is 90 or more
(younger ages are written but not labelled); a masked social security number is labelled
on the digits shown; ZIP is used for US postal codes only.
"""

from __future__ import annotations

import random
import string

from tutela.anonymize.eval.render import Filler, Patient, Piece, random_vin
from tutela.anonymize.spans import PiiLabel
from tutela.anonymize.validators import dea_valid, luhn_valid, npi_valid

L = PiiLabel

FEMALE_FIRST = (
    "Xiomara", "Yaritza", "Maricruz", "Graciela", "Thuy", "Phuong", "Ngoc Anh", "Maricel",
    "Jocelyn", "Marilou", "Rhodora", "Jenalyn", "Darlene", "Shandiin", "Nizhoni", "Kimimela",
    "Pa Nhia", "Mai Xee", "Nou", "Hodan", "Faadumo", "Sahra", "Ayaan", "Wislande",
    "Marie-Lourdes", "Nadège", "Guerline", "Kavitha", "Thenmozhi", "Valli", "Arulmozhi",
    "Nurul Ain", "Siti Hajar", "Norhayati", "Nomvula", "Thandeka", "Nolitha", "Wairimu",
    "Njeri", "Wambui", "Muthoni", "Morenike", "Temitope", "Yetunde", "Shenelle", "Marcia",
    "Gurpreet", "Dipika", "Wei Ling", "Hui Min", "Siew Mei", "Hope", "Faith", "Joy",
    "Mercy", "Precious", "Patience", "Blessing", "Willow", "Dolores", "Ofelia", "Teodora",
)  # fmt: skip
MALE_FIRST = (
    "Anselmo", "Leocadio", "Evaristo", "Heriberto", "Khanh", "Phong", "Tuan", "Rodel",
    "Arnel", "Ferdinand", "Wanbli", "Chaske", "Ahiga", "Takoda", "Yeng", "Kou", "Tou",
    "Chong", "Abdirahman", "Warsame", "Guled", "Jean-Robert", "Fritznel", "Wilner",
    "Senthil", "Murugan", "Karthikeyan", "Azlan", "Faizal", "Haziq", "Siyabonga", "Lwazi",
    "Zolani", "Kamau", "Githinji", "Kiprono", "Adebayo", "Olumide", "Babatunde", "Delroy",
    "Kemar", "Prakash", "Harjit", "Boon Keng", "Sunny", "Said", "Lucky", "Justice",
    "Godfrey", "Anacleto", "Hilario", "Macario", "Tranquilino", "Eusebio",
)  # fmt: skip
FIRST = FEMALE_FIRST + MALE_FIRST
LAST = (
    "Quintanilla", "Arreola", "Zamudio", "Benavides", "Huynh", "Duong", "Truong", "Ha",
    "Dimaculangan", "Macaraeg", "Pangilinan", "Dela Paz", "Manalastas", "Begay", "Yazzie",
    "Tsosie", "Benally", "Manygoats", "Two Bulls", "Iron Shell", "Yellow Hawk", "Vang",
    "Xiong", "Moua", "Thao", "Lor", "Hersi", "Jama", "Egal", "Warsame-Abdi", "Pierre-Louis",
    "Jean-Baptiste", "Dorvil", "Exantus", "Fleurimond", "Subramaniam", "Ramasamy",
    "Arumugam", "Natarajan", "bin Hashim", "Abdul Rahman", "Mthembu", "Ngcobo", "Mahlangu",
    "Xaba", "Qwabe", "Wachira", "Kariuki", "Ndungu", "Gachanja", "Chebet", "Akinwande",
    "Ogunleye", "Olawale", "Babalola", "McFarlane", "Grizzle", "Goh", "Teo", "Sandhu",
    "Baker", "Price", "Strong", "Said", "Hunter", "Bishop", "Little", "Moody", "Wise",
    "Hope", "Villaseñor", "Tallman",
)  # fmt: skip

HOSPITALS = (
    "Lone Cedar Community Health Center", "Ridgeback Valley Regional Medical Center",
    "Kanab Wash Indian Health Center", "Sweetgrass Butte Service Unit",
    "Palmyra Junction VA Clinic", "Bayou Teche Federally Qualified Health Center",
    "St. Brendan of the Marsh Hospital", "Mt. Elgon Mission Hospital",
    "Kariobangi North Sub-County Hospital", "Sir Lionel Ashby Memorial Hospital",
    "Umzimkhulu Valley Provincial Hospital", "Tan Keng Bee General Hospital",
    "Sto. Niño de Kalinga Provincial Hospital", "Shri Venkatesa Multispeciality Hospital",
    "Halfmoon Cay Polyclinic", "Blue Mesa Dental Clinic", "Clearwater Flats Eye Care",
    "Copperleaf Home Health and Hospice", "Harrow Pines Correctional Infirmary",
    "Mariposa Occupational Medicine", "Kestrel Point Rural Health Clinic",
    "Nyandarua Highlands Nursing Home", "Port Esperance Cottage Hospital",
    "Ilaya Bay Community Hospital",
)  # fmt: skip
EMPLOYERS = (
    "Sandhill Cooperative Grain", "Kestrel Bay Seafoods", "Harbourline Logistics",
    "Pelican Staffing Solutions", "Duststorm Concrete Pumping", "Three Rivers Casino Resort",
    "Mesa Verde Poultry Processing", "Kilima Tea Estates", "Marigold BPO Services",
    "Lion Rock Bus Lines", "Cane River Sugar Mill", "Blackwater Tribal Utility Authority",
)  # fmt: skip
INSURERS = (
    "Blue Agave Community Health Plan", "Cordillera Mutual Health Cooperative",
    "Ubuntu Medical Aid Scheme", "Heartland Prairie Medicaid MCO", "Sagebrush Advantage HMO",
    "Tamarind Island Health Assurance", "Northstar Workers' Comp Mutual",
)  # fmt: skip
SCHOOLS = (
    "Grand Mesa Unified School District", "Piñon Wells Middle School",
    "Hilltop Academy of Kiambu", "Little Owl Head Start", "Bayside Charter Elementary",
)  # fmt: skip
AGENCIES = (
    "Tri-County Area Agency on Aging", "Kaimana Interpreting Services",
    "Lumen Prior-Auth Services", "Cedar Hollow Meals on Wheels",
    "Four Winds Tribal Social Services", "Harbourside Legal Aid",
    "Rio Chama Housing Authority", "Sunrise Adult Day Centre", "High Desert Home Medical Supply",
)  # fmt: skip
ORGS = EMPLOYERS + INSURERS + SCHOOLS + AGENCIES

US_CITIES = (
    ("Piñon Wells", "NM", "USA"), ("Chalk Bluff", "AR", "USA"), ("Kayenta", "AZ", "USA"),
    ("Mobridge", "SD", "USA"), ("Wadena", "MN", "USA"), ("Immokalee", "FL", "USA"),
    ("Belle Glade", "FL", "USA"), ("Bethel", "AK", "USA"), ("Hardin", "MT", "USA"),
    ("Lewiston", "ME", "USA"), ("Merced", "CA", "USA"), ("Espanola", "NM", "USA"),
    ("Opelousas", "LA", "USA"), ("Crownpoint", "NM", "USA"), ("Eagle Butte", "SD", "USA"),
    ("Ouray Flats", "UT", "USA"), ("Tallowood", "TX", "USA"), ("Harlan Ferry", "KY", "USA"),
)  # fmt: skip
WORLD_CITIES = (
    ("Nyahururu", "Laikipia", "Kenya"), ("Eldama Ravine", "Baringo", "Kenya"),
    ("Githunguri", "Kiambu", "Kenya"), ("Mthatha", "Eastern Cape", "South Africa"),
    ("Lusikisiki", "Eastern Cape", "South Africa"), ("Tuguegarao", "Cagayan", "Philippines"),
    ("Bangued", "Abra", "Philippines"), ("Kumbakonam", "Tamil Nadu", "India"),
    ("Tiruvannamalai", "Tamil Nadu", "India"), ("Ang Mo Kio", "Singapore", "Singapore"),
    ("May Pen", "Clarendon", "Jamaica"), ("Port Maria", "St. Mary", "Jamaica"),
    ("Sangre Grande", "Trinidad", "Trinidad and Tobago"), ("Kuala Kangsar", "Perak", "Malaysia"),
    ("Jacmel", "Sud-Est", "Haiti"), ("Beledweyne", "Hiiraan", "Somalia"),
)  # fmt: skip
CITIES = US_CITIES + WORLD_CITIES
COUNTIES = (
    "McKinley County", "Dewey County", "Hendry County", "Androscoggin County",
    "St. Landry Parish", "Apache County", "Bethel Census Area", "Big Horn County",
)  # fmt: skip
STREETS = (
    "Calle Oro", "Sandhill Rd", "Juniper Loop", "Mesquite Dr", "Bayou Lafourche Hwy",
    "Yellowbird Ln", "Catalpa St", "N Ironwood Ave", "Cherry Creek Rd", "Old Mission Trl",
)  # fmt: skip
PROFESSIONS = (
    "retired longshoreman", "dental hygienist", "school bus driver", "tribal police officer",
    "sheep rancher", "blackjack dealer", "line cook", "matatu driver", "jeepney driver",
    "hawker stall owner", "call-centre agent", "seafarer", "tea picker", "crab fisherman",
    "home health aide", "correctional officer", "migrant farmworker", "poultry line worker",
    "welder", "lineman for the electric co-op", "substitute teacher", "hospice chaplain",
    "community health representative", "roofer", "sugar cane cutter", "security guard",
    "retired coal miner", "taxi-brousse driver", "nail technician", "forklift operator",
    "boda boda rider", "domestic helper", "pastor", "retired schoolteacher", "silversmith",
    "long-haul trucker", "grain elevator operator", "firefighter", "court interpreter",
    "tailor", "plumber's apprentice", "retired merchant marine", "casino cage cashier",
)  # fmt: skip
BIO_KINDS = (
    "fingerprint template", "retinal scan", "voiceprint", "facial template", "palm-vein scan",
    "iris code", "thumbprint",
)  # fmt: skip

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def age_words(n: int) -> str:
    """``n`` (0-199) in English words: 93 -> "ninety-three", 101 -> "one hundred and one"."""
    if not 0 <= n < 200:
        raise ValueError("age_words covers 0-199")
    if n >= 100:
        rest = n - 100
        return "one hundred" + (f" and {age_words(rest)}" if rest else "")
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def ordinal_suffix(n: int) -> str:
    """``n`` with its English ordinal suffix: 91 -> "91st", 112 -> "112th"."""
    if n % 100 in (11, 12, 13):
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _upper(rng: random.Random, n: int, alphabet: str = "ABCDEFGHJKLMNPRSTUVWXYZ") -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def npi(rng: random.Random) -> str:
    """A ten-digit National Provider Identifier with a valid check digit."""
    while True:
        body = rng.choice("12") + _digits(rng, 8)
        for c in string.digits:
            if npi_valid(body + c):
                return body + c


def dea(rng: random.Random, surname: str) -> str:
    """A DEA registration number for a prescriber called ``surname`` (valid checksum)."""
    first = rng.choice("ABFGM")
    second = next((c for c in surname.upper() if c.isalpha()), "X")
    d = [int(c) for c in _digits(rng, 6)]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    number = first + second + "".join(map(str, d)) + str(check)
    assert dea_valid(number)
    return number


def imei(rng: random.Random) -> str:
    """A fifteen-digit handset IMEI with a valid Luhn digit."""
    body = rng.choice(("35", "86", "01")) + _digits(rng, 12)
    return next(body + c for c in string.digits if luhn_valid(body + c))


def mbi(rng: random.Random) -> str:
    """A Medicare Beneficiary Identifier in the CMS character layout (no dashes)."""
    alpha = "ACDEFGHJKMNPQRTUVWXY"
    both = alpha + string.digits
    layout = ("1-9", "A", "AN", "N", "A", "AN", "N", "A", "A", "N", "N")
    out = []
    for pos in layout:
        pool = {"1-9": "123456789", "A": alpha, "AN": both, "N": string.digits}[pos]
        out.append(rng.choice(pool))
    return "".join(out)


def _ssn_parts(rng: random.Random) -> tuple[str, str, str]:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"


def _age(p: Patient) -> int:
    return int(p.extra["age"])


# ---- people ---------------------------------------------------------------------------


def _person(rng: random.Random, last: str | None = None) -> str:
    first = rng.choice(FIRST)
    last = last or rng.choice(LAST)
    form = rng.random()
    if form < 0.6:
        return f"{first} {last}"
    if form < 0.8:
        return f"{first[0]}. {last}"
    return f"{first} {rng.choice(string.ascii_uppercase)}. {last}"


def _pt(rng: random.Random, p: Patient) -> list[Piece]:
    mid = p.extra["middle"]
    forms = (
        f"{p.first} {p.last}",
        f"{p.last}, {p.first}",
        f"{p.last.upper()}, {p.first.upper()}",
        f"{p.first} {mid}. {p.last}",
        f"{p.last.upper()} {p.first}",
        f"{p.first.upper()} {p.last.upper()}",
    )
    return [(rng.choice(forms), L.PERSON)]


def _pt_lower(rng: random.Random, p: Patient) -> list[Piece]:
    name = f"{p.first} {p.last}".lower()
    return [(name if rng.random() < 0.7 else p.first.lower(), L.PERSON)]


def _pt_first(rng: random.Random, p: Patient) -> list[Piece]:
    return [(p.first, L.PERSON)]


def _pt_title(rng: random.Random, p: Patient) -> list[Piece]:
    title = rng.choice(("Mrs.", "Ms.", "Mrs", "Madam", "Mama")) if p.female else None
    if title is None:
        title = rng.choice(("Mr.", "Mr", "Mzee", "Bwana"))
    return [(f"{title} ", None), (p.last, L.PERSON)]


def _pt_last(rng: random.Random, p: Patient) -> list[Piece]:
    return [(p.last, L.PERSON)]


def _doc(rng: random.Random, p: Patient) -> list[Piece]:
    last = rng.choice(LAST)
    style = rng.randrange(4)
    if style == 0:
        return [("Dr. ", None), (_person(rng, last), L.PERSON)]
    if style == 1:
        return [("Dr ", None), (last, L.PERSON)]
    cred = rng.choice(("MD", "DO", "MBChB", "MBBS", "DDS", "OD", "NP-C", "PA-C", "FNP"))
    return [(_person(rng, last), L.PERSON), (f", {cred}", None)]


def _staff(rng: random.Random, p: Patient) -> list[Piece]:
    name = _person(rng)
    cred = rng.choice(("RN", "LPN", "LVN", "CNA", "MA", "BSN"))
    k = rng.randrange(3)
    if k == 0:
        return [(name, L.PERSON), (f" {cred}", None)]
    if k == 1:
        return [(name, L.PERSON), (f", {cred}", None)]
    return [(f"{cred} ", None), (name, L.PERSON)]


def _name(rng: random.Random, p: Patient) -> list[Piece]:
    return [(_person(rng), L.PERSON)]


_RELATIONS_F = ("daughter", "granddaughter", "niece", "sister", "wife", "mother", "auntie")
_RELATIONS_M = ("son", "grandson", "nephew", "brother", "husband", "uncle", "cousin")
_ELDERS = ("mother", "auntie", "uncle", "father")


def _rel(rng: random.Random, p: Patient) -> list[Piece]:
    female = rng.random() < 0.6
    rel = rng.choice(_RELATIONS_F if female else _RELATIONS_M)
    while _age(p) >= 60 and rel in _ELDERS:
        rel = rng.choice(_RELATIONS_F if female else _RELATIONS_M)
    first = rng.choice(FEMALE_FIRST if female else MALE_FIRST)
    last = p.last if rng.random() < 0.6 else rng.choice(LAST)
    return [(f"{rel} ", None), (f"{first} {last}", L.PERSON)]


def _old_rel(rng: random.Random, p: Patient) -> list[Piece]:
    """An elderly relative (90 or older) by first name and age, the way a carer mentions
    them; a patient who is old themselves gets a spouse or sibling instead of a parent."""
    female = rng.random() < 0.7
    if _age(p) >= 65:
        rel = rng.choice(("wife", "sister", "older sister") if female else ("husband", "brother"))
    elif female:
        rel = rng.choice(("grandmother", "lola", "gogo", "great-aunt", "shi má"))
    else:
        rel = rng.choice(("grandfather", "lolo", "mkhulu", "great-uncle"))
    first = rng.choice([f for f in (FEMALE_FIRST if female else MALE_FIRST) if f != p.first])
    age = rng.randint(max(90, _age(p) - 6), max(96, _age(p) + 4))
    if rng.random() < 0.5:
        return [(f"{rel} ", None), (first, L.PERSON), (" (", None), (str(age), L.AGE), (")", None)]
    return [(f"{rel} ", None), (first, L.PERSON), (", ", None), (str(age), L.AGE)]


# ---- ages -----------------------------------------------------------------------------


def _sex(rng: random.Random, p: Patient) -> list[Piece]:
    words = ("woman", "female", "lady", "F") if p.female else ("man", "male", "gentleman", "M")
    return [(rng.choice(words), None)]


def _age_adj(rng: random.Random, p: Patient) -> list[Piece]:
    a = _age(p)
    label = L.AGE if a >= 90 else None
    k = rng.randrange(7)
    if k == 0:
        return [(age_words(a), label), ("-year-old", None)]
    if k == 1:
        return [(age_words(a), label), (" year old", None)]
    return [(str(a), label), (("-year-old", " y/o", "yo", " yr old", "-yr-old")[k - 2], None)]


def _age_num(rng: random.Random, p: Patient) -> list[Piece]:
    a = _age(p)
    label = L.AGE if a >= 90 else None
    k = rng.randrange(5)
    if k == 0:
        return [(str(a), label), ("Y", None)]
    if k == 1:
        return [(str(a), label), (" yrs", None)]
    return [(str(a), label)]


def _age_phrase(rng: random.Random, p: Patient) -> list[Piece]:
    a = _age(p)
    label = L.AGE if a >= 90 else None
    k = rng.randrange(6)
    if k == 0:
        return [("aged ", None), (str(a), label)]
    if k == 1:
        return [(str(a), label), (" years of age", None)]
    if k == 2:
        return [
            ("in ", None),
            ("her" if p.female else "his", None),
            (" ", None),
            (ordinal_suffix(a + 1), label),
            (" year", None),
        ]
    if k == 3:
        return [(age_words(a), label), (" years old", None)]
    if k == 4:
        return [("age ", None), (str(a), label), (f" yrs {rng.randint(1, 11)} mos", None)]
    return [(str(a), label), (" years old", None)]


def _young(rng: random.Random, p: Patient) -> list[Piece]:
    return [(str(rng.randint(4, 78)), None)]


# ---- dates ----------------------------------------------------------------------------

_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


def _fmt_date(rng: random.Random, y: int, m: int, d: int) -> str:
    mon = _MONTHS[m - 1]
    k = rng.randrange(12)
    forms = (
        f"{m:02d}/{d:02d}/{y}",
        f"{m}/{d}/{y % 100:02d}",
        f"{d:02d}/{m:02d}/{y}",
        f"{d}-{mon[:3]}-{y}",
        f"{y}-{m:02d}-{d:02d}",
        f"{mon} {d}, {y}",
        f"{ordinal_suffix(d)} {mon} {y}",
        f"{d:02d}{mon[:3].upper()}{y % 100:02d}",
        f"{y}{m:02d}{d:02d}",
        f"{d}.{m}.{y}",
        f"{mon[:3]} {d} '{y % 100:02d}",
        f"{d} {mon[:3]} {y}",
    )
    return forms[k]


def _date(rng: random.Random, p: Patient) -> list[Piece]:
    y = rng.choice((2025, 2025, 2026))
    m, d = rng.randint(1, 12), rng.randint(1, 28)
    if rng.random() < 0.12:
        return [
            (rng.choice((f"{m}/{d}", f"{_MONTHS[m - 1][:3]} {d}", f"{d} {_MONTHS[m - 1]}")), L.DATE)
        ]
    return [(_fmt_date(rng, y, m, d), L.DATE)]


def _dob(rng: random.Random, p: Patient) -> list[Piece]:
    y, m, d = (int(x) for x in p.extra["dob"].split("-"))
    return [(_fmt_date(rng, y, m, d), L.DATE)]


def _born(rng: random.Random, p: Patient) -> list[Piece]:
    return [("b. ", None), (p.extra["dob"].split("-")[0], L.DATE)]


# ---- places ---------------------------------------------------------------------------


def _city(rng: random.Random, p: Patient) -> list[Piece]:
    return [(rng.choice(CITIES)[0], L.LOCATION)]


def _city_region(rng: random.Random, p: Patient) -> list[Piece]:
    city, region, country = rng.choice(CITIES)
    if country == "USA" or rng.random() < 0.5:
        return [(city, L.LOCATION), (", ", None), (region, L.LOCATION)]
    return [(city, L.LOCATION), (", ", None), (country, L.LOCATION)]


def _place(rng: random.Random, p: Patient) -> list[Piece]:
    k = rng.randrange(4)
    if k == 0:
        return [(rng.choice(COUNTIES), L.LOCATION)]
    if k == 1:
        return [(rng.choice(WORLD_CITIES)[2], L.LOCATION)]
    if k == 2:
        return [(rng.choice(WORLD_CITIES)[1], L.LOCATION)]
    return [
        (
            rng.choice(
                (
                    "Tohatchi Chapter",
                    "Cheyenne River",
                    "Little Haiti",
                    "Kibera",
                    "Tondo",
                    "Cedar Flats Colonia",
                    "Dharavi",
                    "Geylang",
                )
            ),
            L.LOCATION,
        )
    ]


def _street(rng: random.Random) -> str:
    k = rng.randrange(8)
    if k == 0:
        return f"HC {rng.randint(30, 79)} Box {rng.randint(100, 9999)}"
    if k == 1:
        return f"Rt {rng.randint(1, 9)} Box {rng.randint(10, 499)}"
    if k == 2:
        return f"PO Box {rng.randint(10, 3999)}"
    unit = rng.choice(
        (
            "",
            "",
            f" Apt {rng.randint(1, 40)}{rng.choice('ABCD')}",
            f" #{rng.randint(100, 450)}",
            f" Trlr {rng.randint(1, 60)}",
        )
    )
    return f"{rng.randint(2, 29999)} {rng.choice(STREETS)}{unit}"


def _intl_address(rng: random.Random) -> str:
    k = rng.randrange(6)
    if k == 0:
        return f"Blk {rng.randint(100, 699)} Ang Mo Kio Ave {rng.randint(1, 10)} #{rng.randint(2, 19):02d}-{rng.randint(10, 1999)}"  # noqa: E501
    if k == 1:
        return f"Purok {rng.randint(1, 7)}, Brgy. San Isidro"
    if k == 2:
        return f"No. {rng.randint(2, 88)}, {rng.randint(1, 6)}nd Cross, Gandhi Nagar"
    if k == 3:
        return f"P.O. Box {rng.randint(10, 9999)}-{rng.choice(('20300', '00100', '10400'))}"
    if k == 4:
        return f"{rng.randint(1, 400)} Sisulu Crescent, Ext {rng.randint(1, 9)}"
    return f"Lot {rng.randint(1, 90)} Bamboo Avenue"


def _zip_code(rng: random.Random) -> str:
    z = f"{rng.randint(501, 99950):05d}"
    return z + f"-{rng.randint(1, 9999):04d}" if rng.random() < 0.3 else z


def _address(rng: random.Random, p: Patient) -> list[Piece]:
    if rng.random() < 0.3:
        return [(_intl_address(rng), L.ADDRESS)]
    return [(_street(rng), L.ADDRESS)]


def _address_full(rng: random.Random, p: Patient) -> list[Piece]:
    city, state, _ = rng.choice(US_CITIES)
    sep = rng.choice((", ", " ", "\n    "))
    return [
        (_street(rng), L.ADDRESS),
        (sep, None),
        (city, L.LOCATION),
        (", ", None),
        (state, L.LOCATION),
        ("  " if rng.random() < 0.3 else " ", None),
        (_zip_code(rng), L.ZIP),
    ]


def _zip(rng: random.Random, p: Patient) -> list[Piece]:
    return [(_zip_code(rng), L.ZIP)]


# ---- organisations --------------------------------------------------------------------


def _hosp(rng: random.Random, p: Patient) -> list[Piece]:
    return [(rng.choice(HOSPITALS), L.ORGANIZATION)]


def _employer(rng: random.Random, p: Patient) -> list[Piece]:
    return [(rng.choice(EMPLOYERS), L.ORGANIZATION)]


def _insurer(rng: random.Random, p: Patient) -> list[Piece]:
    return [(rng.choice(INSURERS), L.ORGANIZATION)]


def _school(rng: random.Random, p: Patient) -> list[Piece]:
    return [(rng.choice(SCHOOLS), L.ORGANIZATION)]


def _agency(rng: random.Random, p: Patient) -> list[Piece]:
    return [(rng.choice(AGENCIES), L.ORGANIZATION)]


def _prof(rng: random.Random, p: Patient) -> list[Piece]:
    return [(p.extra["job"], L.PROFESSION)]


# ---- contact --------------------------------------------------------------------------


def _phone_number(rng: random.Random) -> str:
    a, b, c = rng.choice(("505", "928", "605", "907", "337", "239", "406")), "555", _digits(rng, 4)
    b = rng.choice((b, str(rng.randint(200, 989))))
    k = rng.randrange(14)
    forms = (
        f"({a}) {b}-{c}",
        f"{a}-{b}-{c}",
        f"{a}.{b}.{c}",
        f"{a} {b} {c}",
        f"+1 {a} {b} {c}",
        f"1-{a}-{b}-{c}",
        f"{a}{b}{c}",
        f"{a}-{b}-{c} ext. {rng.randint(10, 999)}",
        f"+254 7{_digits(rng, 2)} {_digits(rng, 6)}",
        f"+27 (0){_digits(rng, 2)} 555 {_digits(rng, 4)}",
        f"+91 9{_digits(rng, 4)} {_digits(rng, 5)}",
        f"+65 {rng.choice('689')}{_digits(rng, 3)} {_digits(rng, 4)}",
        f"+63 917 {_digits(rng, 3)} {_digits(rng, 4)}",
        f"1-876-{_digits(rng, 3)}-{_digits(rng, 4)}",
    )
    return forms[k]


def _phone(rng: random.Random, p: Patient) -> list[Piece]:
    return [(_phone_number(rng), L.PHONE)]


def _email(rng: random.Random, p: Patient) -> list[Piece]:
    f = p.first.lower().replace(" ", "").replace("-", "")
    last = p.last.lower().replace(" ", "").replace("-", "")
    k = rng.randrange(6)
    forms = (
        f"{f}.{last}@gmail.com",
        f"{f[0]}{last}{rng.randint(1, 99)}@yahoo.com",
        f"{last}_{f}@outlook.com",
        f"tita.{f}{rng.randint(60, 99)}@yahoo.com.ph",
        f"{f}{last[:3]}@lonecedarchc.org",
        f"{last}.{f}@gmail.co.ke",
    )
    return [(forms[k], L.EMAIL)]


def _staff_email(rng: random.Random, p: Patient) -> list[Piece]:
    first = rng.choice(FIRST).lower().split()[0].replace("-", "")
    last = rng.choice(LAST).lower().replace(" ", "").replace("-", "")
    dom = rng.choice(
        (
            "kanabwash-ihs.org",
            "copperleafhh.com",
            "mariposaocc.net",
            "bluemesadental.com",
            "tkbgh.com.sg",
        )
    )
    return [(f"{first[0]}{last}@{dom}", L.EMAIL)]


def _url(rng: random.Random, p: Patient) -> list[Piece]:
    k = rng.randrange(5)
    forms = (
        f"https://portal.lonecedarchc.org/msg/{_digits(rng, 6)}",
        f"www.facebook.com/{p.first.lower().replace(' ', '.')}.{p.last.lower().replace(' ', '')}",
        f"https://vv.palmyrajunction-va.org/join/{_upper(rng, 3).lower()}-{_digits(rng, 4)}",
        f"http://copperleafhh.com/evv?visit={_digits(rng, 7)}",
        f"https://telehealth.tkbgh.com.sg/r/{_upper(rng, 6)}",
    )
    return [(forms[k], L.URL)]


def _ip(rng: random.Random, p: Patient) -> list[Piece]:
    k = rng.randrange(5)
    if k == 0:
        return [
            (f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", L.IP_ADDRESS)
        ]
    if k == 1:
        return [(f"198.51.100.{rng.randint(1, 254)}", L.IP_ADDRESS)]
    if k == 2:
        return [
            (f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", L.IP_ADDRESS)
        ]
    hexes = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(4)]
    if k == 3:
        return [(f"2001:db8:{hexes[0]}:{hexes[1]}::{hexes[2]}", L.IP_ADDRESS)]
    return [(f"fe80::{hexes[0]}:{hexes[1]}:{hexes[2]}:{hexes[3]}", L.IP_ADDRESS)]


# ---- numbers --------------------------------------------------------------------------


def _ssn(rng: random.Random, p: Patient) -> list[Piece]:
    a, g, s = _ssn_parts(rng)
    k = rng.randrange(6)
    if k == 0:
        return [(f"{a}-{g}-{s}", L.SSN)]
    if k == 1:
        return [(f"{a} {g} {s}", L.SSN)]
    if k == 2:
        return [(f"{a}{g}{s}", L.SSN)]
    if k == 3:
        return [("xxx-xx-", None), (s, L.SSN)]
    if k == 4:
        return [("***-**-", None), (s, L.SSN)]
    return [("XXX-XX-", None), (s, L.SSN)]


def _ssn4(rng: random.Random, p: Patient) -> list[Piece]:
    return [(_ssn_parts(rng)[2], L.SSN)]


def _mrn(rng: random.Random, p: Patient) -> list[Piece]:
    return [(p.extra["mrn"], L.MRN)]


def _new_mrn(rng: random.Random) -> str:
    k = rng.randrange(10)
    forms = (
        _digits(rng, 8),
        f"A-{_digits(rng, 6)}",
        f"FQ{_digits(rng, 7)}",
        f"{_digits(rng, 3)}-{_digits(rng, 2)}-{_digits(rng, 2)}",
        f"IP{rng.randint(2019, 2025)}/{_digits(rng, 6)}",
        f"3300{_digits(rng, 6)}",
        f"{_digits(rng, 2)}-{_digits(rng, 2)}-{_digits(rng, 3)}",
        f"{_digits(rng, 10)}V{_digits(rng, 6)}",
        f"E{_digits(rng, 7)}",
        f"MTH/{_digits(rng, 5)}/{rng.randint(19, 25)}",
    )
    return forms[k]


def _other_mrn(rng: random.Random, p: Patient) -> list[Piece]:
    return [(_new_mrn(rng), L.MRN)]


def _plan(rng: random.Random, p: Patient) -> list[Piece]:
    k = rng.randrange(9)
    m = mbi(rng)
    forms = (
        m,
        f"{m[:4]}-{m[4:7]}-{m[7:]}",
        f"{rng.choice('5678')}{_digits(rng, 8)}",
        f"XJH{_digits(rng, 9)}",
        f"W{_digits(rng, 9)}",
        f"{_digits(rng, 2)}-{_digits(rng, 9)}-{_digits(rng, 1)}",
        f"{_digits(rng, 7)}",
        f"9{_digits(rng, 8)}",
        f"BAH-{_digits(rng, 4)}-{_digits(rng, 5)}",
    )
    return [(forms[k], L.HEALTH_PLAN)]


def _mbi(rng: random.Random, p: Patient) -> list[Piece]:
    m = mbi(rng)
    return [(m if rng.random() < 0.5 else f"{m[:4]}-{m[4:7]}-{m[7:]}", L.HEALTH_PLAN)]


def _group(rng: random.Random, p: Patient) -> list[Piece]:
    return [
        (
            rng.choice(
                (
                    f"{_digits(rng, 5)}",
                    f"GRP-{_digits(rng, 6)}",
                    f"{_upper(rng, 2)}{_digits(rng, 4)}",
                )
            ),
            L.HEALTH_PLAN,
        )
    ]


def _acct(rng: random.Random, p: Patient) -> list[Piece]:
    k = rng.randrange(8)
    forms = (
        f"{_digits(rng, 7)}-{_digits(rng, 4)}",
        f"{_digits(rng, 8)}",
        f"E{rng.randint(2024, 2026)}-{_digits(rng, 7)}",
        f"{rng.randint(2024, 2026)}{_digits(rng, 3)}{_digits(rng, 6)}",
        f"{_digits(rng, 2)}-{_digits(rng, 3)}",
        f"INV-{rng.randint(2025, 2026)}-{_digits(rng, 4)}",
        f"{_digits(rng, 9)}",
        f"B/{rng.randint(24, 26)}/{_digits(rng, 5)}",
    )
    return [(forms[k], L.ACCOUNT)]


def _dl(rng: random.Random, p: Patient) -> list[Piece]:
    k = rng.randrange(6)
    forms = (
        f"D{_digits(rng, 3)}-{_digits(rng, 4)}-{_digits(rng, 4)}",
        f"{_digits(rng, 9)}",
        f"B{_digits(rng, 7)}",
        f"{_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 3)}",
        f"{_upper(rng, 1)}{_digits(rng, 2)}-{_digits(rng, 2)}-{_digits(rng, 6)}",
        f"{_upper(rng, 2)}{_digits(rng, 6)}",
    )
    return [(forms[k], L.LICENSE)]


def _prof_lic(rng: random.Random, p: Patient) -> list[Piece]:
    k = rng.randrange(6)
    forms = (
        f"RN{_digits(rng, 6)}",
        _digits(rng, 7),
        f"MP {_digits(rng, 7)}",
        f"A{_digits(rng, 4)}",
        f"M{_digits(rng, 5)}{_upper(rng, 1)}",
        f"{_digits(rng, 2)}-{_digits(rng, 5)}",
    )
    return [(forms[k], L.LICENSE)]


def _npi(rng: random.Random, p: Patient) -> list[Piece]:
    return [(npi(rng), L.LICENSE)]


def _dea(rng: random.Random, p: Patient) -> list[Piece]:
    return [(dea(rng, rng.choice(LAST)), L.LICENSE)]


def _vin(rng: random.Random, p: Patient) -> list[Piece]:
    return [(random_vin(rng), L.VEHICLE)]


def _plate(rng: random.Random, p: Patient) -> list[Piece]:
    k = rng.randrange(6)
    forms = (
        f"{rng.randint(1, 9)}{_upper(rng, 3)}{_digits(rng, 3)}",
        f"{_digits(rng, 3)}-{_upper(rng, 3)}",
        f"K{_upper(rng, 2)} {_digits(rng, 3)}{_upper(rng, 1)}",
        f"S{_upper(rng, 2)} {_digits(rng, 4)} {_upper(rng, 1)}",
        f"{_upper(rng, 3)} {_digits(rng, 4)}",
        f"{_digits(rng, 4)} {_upper(rng, 2)}",
    )
    return [(forms[k], L.VEHICLE)]


def _serial(rng: random.Random, p: Patient) -> list[Piece]:
    k = rng.randrange(6)
    forms = (
        f"{_upper(rng, 3)}{_digits(rng, 6)}{_upper(rng, 1)}",
        f"{_digits(rng, 4)}-{_digits(rng, 2)}-{_digits(rng, 4)}",
        f"{_digits(rng, 11)}",
        f"{_upper(rng, 2)}{_digits(rng, 8)}",
        imei(rng),
        f"{_upper(rng, 1)}{_digits(rng, 2)}{_upper(rng, 1)}-{_digits(rng, 5)}",
    )
    return [(forms[k], L.DEVICE)]


def _udi(rng: random.Random, p: Patient) -> list[Piece]:
    gtin = "0" + _digits(rng, 13)
    exp = f"{rng.randint(26, 30)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    if rng.random() < 0.5:
        return [(f"(01){gtin}(17){exp}(21){_upper(rng, 2)}{_digits(rng, 6)}", L.DEVICE)]
    return [(f"01{gtin}17{exp}21{_digits(rng, 8)}", L.DEVICE)]


def _mac(rng: random.Random, p: Patient) -> list[Piece]:
    octets = [f"{rng.randint(0, 255):02X}" for _ in range(6)]
    sep = rng.choice((":", "-"))
    return [(sep.join(octets), L.DEVICE)]


def _bio(rng: random.Random, p: Patient) -> list[Piece]:
    k = rng.randrange(6)
    hexs = "".join(rng.choice("0123456789abcdef") for _ in range(10))
    forms = (
        f"FP-{_digits(rng, 4)}-{_digits(rng, 4)}-{_upper(rng, 2)}",
        f"BIO{_digits(rng, 8)}",
        f"RS/{rng.randint(2024, 2026)}/{_digits(rng, 4)}",
        f"VP-{_digits(rng, 2)}{_upper(rng, 1)}{_digits(rng, 1)}-{_digits(rng, 2)}{_upper(rng, 1)}",
        f"ft:{hexs}",
        f"PV-{_digits(rng, 3)}-{_digits(rng, 3)}",
    )
    return [(forms[k], L.BIOMETRIC)]


def _bio_kind(rng: random.Random, p: Patient) -> list[Piece]:
    return [(rng.choice(BIO_KINDS), None)]


def new_patient(rng: random.Random) -> Patient:
    """The patient of one note: name, sex, age (about four in ten are 90 or older), date of
    birth consistent with the age, job, and one record number reused across the note."""
    female = rng.random() < 0.55
    first = rng.choice(FEMALE_FIRST if female else MALE_FIRST)
    age = rng.randint(90, 106) if rng.random() < 0.4 else rng.randint(19, 89)
    dob = f"{2025 - age}-{rng.randint(1, 12)}-{rng.randint(1, 28)}"
    return Patient(
        first=first,
        last=rng.choice(LAST),
        female=female,
        extra={
            "age": str(age),
            "dob": dob,
            "middle": rng.choice(string.ascii_uppercase),
            "mrn": _new_mrn(rng),
            "job": rng.choice(PROFESSIONS),
        },
    )


fillers: dict[str, Filler] = {
    "PT": _pt, "PTF": _pt_first, "PTT": _pt_title, "PTL": _pt_last, "PTLOW": _pt_lower,
    "DOC": _doc,
    "STAFF": _staff, "NAME": _name, "REL": _rel, "OLDREL": _old_rel, "SEX": _sex,
    "AGEADJ": _age_adj, "AGENUM": _age_num, "AGEPHR": _age_phrase, "YOUNG": _young,
    "DATE": _date, "DOB": _dob, "BORN": _born, "CITY": _city, "CITYST": _city_region,
    "PLACE": _place, "ADDR": _address, "ADDRFULL": _address_full, "ZIP": _zip,
    "HOSP": _hosp, "EMPLOYER": _employer, "INSURER": _insurer, "SCHOOL": _school,
    "AGENCY": _agency, "PROF": _prof, "PHONE": _phone, "EMAIL": _email,
    "STAFFEMAIL": _staff_email, "URL": _url, "IP": _ip, "SSN": _ssn, "SSN4": _ssn4,
    "MRN": _mrn, "MRN2": _other_mrn, "PLAN": _plan, "MBI": _mbi, "GROUP": _group,
    "ACCT": _acct, "DL": _dl, "PROFLIC": _prof_lic, "NPI": _npi, "DEA": _dea, "VIN": _vin,
    "PLATE": _plate, "SERIAL": _serial, "UDI": _udi, "MAC": _mac, "BIO": _bio,
    "BIOKIND": _bio_kind,
}  # fmt: skip
"""Slot name to filler; the templates in :mod:`.sealed` use exactly these slots."""
