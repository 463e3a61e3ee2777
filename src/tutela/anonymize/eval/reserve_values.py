"""Values and fillers of the reserve set: names, places, organisations, dates, ages,
contact details and identifiers, as a transplant, dialysis and trial network spanning
Canada, West Africa, South Asia, Malaysia, Hong Kong, the Gulf, Malta and the US writes
them.
"""

from __future__ import annotations

import calendar
import random
import unicodedata
from collections.abc import Sequence

from tutela.anonymize.eval import reserve_ids as ids
from tutela.anonymize.eval.render import Filler, Patient, Piece
from tutela.anonymize.spans import PiiLabel

L = PiiLabel

# -- people ------------------------------------------------------------------------------

# origin: (women's first names, men's first names, surnames)
_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "yoruba": (
        ("Ayomikun", "Ibukunoluwa", "Moyosore", "Oreoluwa", "Titilope"),
        ("Kolawole", "Olanrewaju", "Adebowale", "Oluwadamilare"),
        ("Adegboyega", "Odunewu", "Olatunbosun", "Fagbemi", "Ogundipe"),
    ),
    "igbo": (
        ("Uzoamaka", "Adaugo", "Obiageli", "Chinwendu"),
        ("Chidiebere", "Somtochukwu", "Ikechukwu", "Nnaemeka"),
        ("Nwankwoala", "Ezeudu", "Obiekwe", "Iwuchukwu"),
    ),
    "akan": (
        ("Ekuwa", "Nhyira", "Dzifa", "Mawusi"),
        ("Ekow", "Fiifi", "Selorm", "Elikem"),
        ("Owusu-Ansah", "Amponsah", "Boakye-Danquah", "Agbenyega", "Dzeble"),
    ),
    "punjabi": (
        ("Mehwish", "Sundas", "Rimsha", "Iqra"),
        ("Zeeshan", "Waqas", "Shahzaib", "Usman Tariq"),
        ("Bhatti", "Abbasi", "Gondal", "Warraich"),
    ),
    "bengali": (
        ("Shampa", "Tahmina", "Rokeya", "Sharmin"),
        ("Tanvir", "Shafiqul", "Mizanur", "Rezaul"),
        ("Talukder", "Bhuiyan", "Majumder", "Khondoker"),
    ),
    "malay": (
        ("Nur Izzati", "Nor Syazwani", "Farhana", "Noor Azlina"),
        ("Mohd Faizal", "Wan Azlan", "Khairul Anuar", "Muhammad Haziq"),
        ("Kamaruddin", "Zainal Abidin", "Mat Isa", "Wan Ismail"),
    ),
    "cantonese": (
        ("Suet Ying", "Hoi Yan", "Ka Man", "Wing Sze"),
        ("Chun Kit", "Ka Lok", "Tsz Hin", "Wai Keung"),
        ("Kwok", "Yeung", "Cheuk", "Siu", "Fung"),
    ),
    "gulf": (
        ("Mouza", "Shamma", "Hessa", "Alanoud"),
        ("Humaid", "Rashed", "Obaid", "Jassim"),
        ("Al Mazrouei", "Al Ketbi", "Al Shamsi", "Al Kuwari", "Al Naimi"),
    ),
    "maltese": (
        ("Pawlina", "Ċettina", "Carmela", "Marija Dolores"),
        ("Ġużeppi", "Ċensu", "Pawlu", "Salvu"),
        ("Xuereb", "Buttigieg", "Psaila", "Mifsud Bonnici", "Zammit Cutajar"),
    ),
    "quebec": (
        ("Ghislaine", "Réjeanne", "Solange", "Marie-Josée"),
        ("Réjean", "Gaétan", "Ghislain", "Jean-Guy"),
        ("Lévesque-Dumont", "Thibodeau", "Ouellet", "Bergeron-Simard"),
    ),
    "anishinaabe": (
        ("Waaseyaa", "Memengwaa", "Giizhigookwe", "Wenonah"),
        ("Migizi", "Makwa", "Zhaawan", "Biidaaban"),
        ("Wabasse", "Kakegamic", "Meekis", "Sakanee", "Beardy-Fiddler"),
    ),
    "american": (
        ("Marybeth", "Lurleen", "Dolores-Ann", "Twyla"),
        ("Delbert", "Merle", "Royce", "Lyle"),
        ("Huckaby", "Stoltzfus", "Pettibone", "Vandersloot"),
    ),
}

FIRST: tuple[str, ...] = tuple(n for f, m, _ in _NAMES.values() for n in (*f, *m))
LAST: tuple[str, ...] = tuple(n for _, _, s in _NAMES.values() for n in s)

# -- places ------------------------------------------------------------------------------

# (city or town, region, postcode; "" where the country has none in everyday use)
CITIES: tuple[tuple[str, str, str], ...] = (
    ("Timmins", "Ontario", "P4N 7C5"),
    ("Kapuskasing", "ON", "P5N 2X4"),
    ("Sioux Lookout", "Ontario", "P8T 1B8"),
    ("Williams Lake", "British Columbia", "V2G 1M9"),
    ("Prince George", "BC", "V2L 3H2"),
    ("Matane", "Québec", "G4W 2K7"),
    ("Chicoutimi", "QC", "G7H 4K3"),
    ("Osogbo", "Osun State", "230212"),
    ("Owerri", "Imo State", "460281"),
    ("Abeokuta", "Ogun State", "110101"),
    ("Ilorin", "Kwara State", "240222"),
    ("Tamale", "Northern Region", ""),
    ("Koforidua", "Eastern Region", ""),
    ("Sialkot", "Punjab", "51310"),
    ("Bahawalpur", "Punjab", "63100"),
    ("Mardan", "Khyber Pakhtunkhwa", "23200"),
    ("Sylhet", "Sylhet Division", "3100"),
    ("Rajshahi", "Rajshahi Division", "6000"),
    ("Seremban", "Negeri Sembilan", "70450"),
    ("Kuantan", "Pahang", "25200"),
    ("Kota Bharu", "Kelantan", "15150"),
    ("Miri", "Sarawak", "98000"),
    ("Tuen Mun", "New Territories", ""),
    ("Sham Shui Po", "Kowloon", ""),
    ("Al Ain", "Abu Dhabi", ""),
    ("Khor Fakkan", "Sharjah", ""),
    ("Al Wakrah", "Al Wakrah Municipality", ""),
    ("Birkirkara", "Malta", "BKR 4013"),
    ("Żebbuġ", "Malta", "ZBG 1302"),
    ("Marsaskala", "Malta", "MSK 1512"),
    ("Dubuque", "Iowa", "52001"),
    ("Bismarck", "North Dakota", "58501-2214"),
    ("Lafayette", "Louisiana", "70506"),
)
_WITH_POSTCODE = tuple(c for c in CITIES if c[2])

# per country: the first and one-past-last index of its towns in CITIES, and street styles
_COUNTRIES: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "on": (0, 3, ("{n} Algonquin Blvd E", "RR 2, Site 14, Comp {n}", "{n} Riverside Dr")),
    "bc": (3, 5, ("Unit {m}, {n} Kingsway Ave", "{n} Oliver St")),
    "qc": (5, 7, ("{n}, rue des Érables", "{n} boul. Saint-Benoît")),
    "ng": (7, 11, ("Plot {m}, Oke-Fia Road", "No. {m} Wetheral Road, off Douglas Road")),
    "gh": (11, 13, ("House No. C/{n}, Lagoon Road", "Plot {m}, Choggu Yapalsi")),
    "pk": (13, 16, ("House {m}, Street 9, Mohalla Rangpura", "{m}-B Model Town")),
    "bd": (16, 18, ("Holding {m}/1, Zindabazar Road", "House {m}, Road {k}, Uposhohor")),
    "my": (18, 22, ("No. {m}, Jalan Seri Putra 3/{k}, Taman Seri Putra", "Lot {n}, Lorong {k}")),
    "hk": (22, 24, ("Flat {m}B, Block {k}, Siu Hong Court", "{k}/F, {n} Tai Nan Street")),
    "gulf": (24, 27, ("Villa {m}, Street {k}, Al Jimi", "Building {m}, Zone 90, Street {n}")),
    "mt": (27, 30, ("Flat {k}, Triq il-Kappillan Mifsud", "{m}, Triq San Ġorġ")),
    "us": (30, 33, ("{n} Kerper Blvd Apt {k}", "{n} County Road 17")),
}
_HOME = {
    "yoruba": "ng",
    "igbo": "ng",
    "akan": "gh",
    "punjabi": "pk",
    "bengali": "bd",
    "malay": "my",
    "cantonese": "hk",
    "gulf": "gulf",
    "maltese": "mt",
    "quebec": "qc",
    "anishinaabe": "on",
    "american": "us",
}

HOSPITALS: tuple[str, ...] = (
    *("Hôpital Notre-Dame-des-Neiges de Chicoutimi", "Temiskaming Shores Lakeview Hospital"),
    *("Kapuskasing Mattagami River General", "Thompson Valley Renal Institute"),
    *("Osogbo Oke-Fia Teaching Hospital", "Imo Riverside Federal Medical Centre"),
    *("Tamale Savannah Regional Hospital", "Gujranwala Sheranwala Gate Hospital"),
    *("Surma Valley Medical College Hospital", "Hospital Pakar Sri Menanti"),
    *("Butterfly Beach Hospital", "Jebel Hafeet Specialty Hospital", "Al Wakrah Harbour Hospital"),
    *("Sptar Sant'Ubaldesca", "Mississippi Bluffs Transplant Institute"),
    *("Maumee Valley Dialysis Center",),
)

ORGS: tuple[str, ...] = (
    *("Nickel Basin Smelting Ltd", "Kaministiquia Pulp & Paper", "Great Boreal Life Assurance"),
    *("Laurentian Mutual", "Oryx Gulf Health Insurance", "Takaful Perwira Berhad"),
    *("Ogun Crest HMO Ltd", "Obuasi Deep Levels Mining Co.", "Ladang Sungai Kelamah Sdn Bhd"),
    *("Sialkot Leatherworks Cooperative", "Kwun Lung Container Terminal"),
    *("Malta Dockyard Pensioners' Fund", "Mishkeegogamang Band Office"),
    *("École secondaire Jean-Dolbeau", "Lamashegu Senior High School"),
    *("Prairie Harvest Grain Elevators", "Tri-County Workers' Compensation Bureau"),
    *("Sylhet Tea Garden Workers Union",),
)

_JOBS = (
    *("underground miner", "smelter operator", "bush pilot", "school-bus driver"),
    *("rubber tapper", "palm-oil estate supervisor", "fishmonger", "quantity surveyor"),
    *("ferry deckhand", "tea-garden clerk", "leather-goods stitcher", "container crane operator"),
    *("dental hygienist", "kindergarten teacher", "long-haul trucker", "grain-elevator operator"),
    *("court interpreter", "imam", "tailor", "hairdresser"),
)

_RELATIONS_F = ("daughter", "niece", "sister", "granddaughter", "wife")
_RELATIONS_M = ("son", "nephew", "brother", "grandson", "husband")

_MONTHS = tuple(calendar.month_name[1:])
_MOIS: tuple[str, ...] = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet")
_MOIS += ("août", "septembre", "octobre", "novembre", "décembre")
_BULAN = ("Jan", "Feb", "Mac", "Apr", "Mei", "Jun", "Jul", "Ogos", "Sep", "Okt", "Nov", "Dis")
_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")

# -- number words ------------------------------------------------------------------------

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORD = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def words(n: int) -> str:
    """``n`` (0-199) in English words, hyphenating compounds: 94 -> ninety-four."""
    if not 0 <= n < 200:
        raise ValueError("words() takes 0-199")
    if n >= 100:
        rest = n - 100
        return "one hundred" + (f" and {words(rest)}" if rest else "")
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def ordinal(n: int) -> str:
    """``n`` (1-31) as an ordinal word: 4 -> fourth, 22 -> twenty-second."""
    w = words(n)
    head, _, last = w.rpartition("-")
    if last in _ORD:
        last = _ORD[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head}-{last}" if head else last


def year_words(y: int) -> str:
    """A year as dictated: 1941 -> nineteen forty-one, 2003 -> two thousand and three."""
    hi, lo = divmod(y, 100)
    if hi == 20 and lo < 10:
        return "two thousand" + (f" and {words(lo)}" if lo else "")
    if lo == 0:
        return f"{words(hi)} hundred"
    return f"{words(hi)} {'oh ' + words(lo) if lo < 10 else words(lo)}"


def suffix(n: int) -> str:
    """``n`` with its English ordinal suffix: 1st, 22nd, 13th."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


# -- fillers -----------------------------------------------------------------------------


def _one(value: str, label: PiiLabel | None) -> list[Piece]:
    return [(value, label)]


def _ascii(text: str) -> str:
    text = text.replace("ġ", "g").replace("Ġ", "G").replace("ż", "z").replace("Ż", "Z")
    norm = unicodedata.normalize("NFKD", text)
    return "".join(c for c in norm if c.isascii() and (c.isalnum() or c in " -'"))


def new_patient(rng: random.Random) -> Patient:
    """A patient whose first name and surname come from the same naming tradition, living
    mostly where that tradition is at home (sometimes elsewhere in the network)."""
    origin = rng.choice(list(_NAMES))
    women, men, surnames = _NAMES[origin]
    female = rng.random() < 0.5
    country = _HOME[origin] if rng.random() < 0.75 else rng.choice(list(_COUNTRIES))
    return Patient(
        first=rng.choice(women if female else men),
        last=rng.choice(surnames),
        female=female,
        extra={"origin": origin, "country": country},
    )


def _someone(rng: random.Random, female: bool | None = None) -> tuple[str, str]:
    women, men, surnames = _NAMES[rng.choice(list(_NAMES))]
    if female is None:
        return rng.choice(women + men), rng.choice(surnames)
    return rng.choice(women if female else men), rng.choice(surnames)


def _patient_name(rng: random.Random, p: Patient) -> list[Piece]:
    origin = p.extra.get("origin", "")
    if origin == "malay":
        link = " binti " if p.female else " bin "
        return _one(f"{p.first}{link}{p.last}", L.PERSON)
    if origin == "cantonese" and rng.random() < 0.6:
        return _one(f"{p.last.upper()} {p.first}", L.PERSON)
    form = rng.randrange(4)
    if form == 0:
        return _one(f"{p.last.upper()}, {p.first}", L.PERSON)
    if form == 1:
        return _one(f"{p.first[0]}. {p.last}", L.PERSON)
    return _one(f"{p.first} {p.last}", L.PERSON)


def _patient_caps(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(f"{p.last.upper()}, {p.first.upper()}", L.PERSON)


def _patient_first(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(p.first, L.PERSON)


_TITLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "yoruba": (("Mrs ", "Chief (Mrs) ", "Dr (Mrs) "), ("Mr ", "Chief ", "Alhaji ")),
    "igbo": (("Mrs ", "Lolo "), ("Mr ", "Chief ", "Ichie ")),
    "malay": (("Puan ", "Cik "), ("Encik ", "Tuan Haji ")),
    "quebec": (("Mme ",), ("M. ",)),
    "gulf": (("Ms ", "Sayyida "), ("Mr ", "Sayyid ")),
    "cantonese": (("Madam ", "Ms "), ("Mr ",)),
}


def _patient_last(rng: random.Random, p: Patient) -> list[Piece]:
    women, men = _TITLES.get(p.extra.get("origin", ""), (("Mrs ", "Ms. "), ("Mr ", "Mr. ")))
    title = rng.choice((*(women if p.female else men), ""))
    return [(title, None), (p.last, L.PERSON)]


def _patient_lower(rng: random.Random, p: Patient) -> list[Piece]:
    if rng.random() < 0.5:
        return _one(_ascii(p.first).lower(), L.PERSON)
    return _one(_ascii(f"{p.first} {p.last}").lower(), L.PERSON)


def _clinician(rng: random.Random, p: Patient) -> list[Piece]:
    first, last = _someone(rng)
    form = rng.randrange(5)
    if form == 0:
        return [("Dr ", None), (f"{first} {last}", L.PERSON)]
    if form == 1:
        return [("Dr. ", None), (f"{first[0]}. {last}", L.PERSON)]
    if form == 2:
        return [(f"{first} {last}", L.PERSON), (rng.choice((", MD", " MBBS", ", FRCPC")), None)]
    if form == 3:
        return [("Prof. ", None), (last, L.PERSON)]
    return [(f"{last.upper()} {first[0]}", L.PERSON)]


def _bare_name(rng: random.Random, p: Patient) -> list[Piece]:
    first, last = _someone(rng)
    return _one(rng.choice((f"{first} {last}", last, f"{first[0]}.{last}")), L.PERSON)


def _kin_name(rng: random.Random, p: Patient, female: bool | None) -> str:
    first, _ = _someone(rng, female)
    if rng.random() < 0.6:
        return f"{first.split()[0]} {p.last}"
    return first


def _kin(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(_kin_name(rng, p, None), L.PERSON)


def _relative(rng: random.Random, p: Patient) -> list[Piece]:
    female = rng.random() < 0.5
    relation = rng.choice(_RELATIONS_F if female else _RELATIONS_M)
    return [(f"{relation} ", None), (_kin_name(rng, p, female), L.PERSON)]


def _relation(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(rng.choice(_RELATIONS_F + _RELATIONS_M), None)


def _job(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(rng.choice(_JOBS), L.PROFESSION)


def _org(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(rng.choice(ORGS), L.ORGANIZATION)


def _hospital(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(rng.choice(HOSPITALS), L.ORGANIZATION)


def _country(rng: random.Random, p: Patient) -> tuple[int, int, tuple[str, ...]]:
    return _COUNTRIES.get(p.extra.get("country", ""), _COUNTRIES["on"])


def _street(rng: random.Random, p: Patient) -> list[Piece]:
    line = rng.choice(_country(rng, p)[2]).format(
        n=rng.randint(11, 2980), m=rng.randint(2, 88), k=rng.randint(1, 14)
    )
    return _one(line, L.ADDRESS)


def _home_town(rng: random.Random, p: Patient) -> tuple[str, str, str]:
    lo, hi, _ = _country(rng, p)
    return CITIES[rng.randrange(lo, hi)]


def _city(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(_home_town(rng, p)[0], L.LOCATION)


def _city_region(rng: random.Random, p: Patient) -> list[Piece]:
    city, region, _ = _home_town(rng, p) if rng.random() < 0.5 else rng.choice(CITIES)
    return [(city, L.LOCATION), (", ", None), (region, L.LOCATION)]


def _place(rng: random.Random, p: Patient) -> list[Piece]:
    """Town, region and postcode of the patient's home (a street line precedes it)."""
    city, region, post = _home_town(rng, p)
    if not post:
        return [(city, L.LOCATION), (", ", None), (region, L.LOCATION)]
    form = rng.randrange(3)
    if form == 0:
        return [(city, L.LOCATION), (" ", None), (region, L.LOCATION), ("  ", None), (post, L.ZIP)]
    if form == 1:
        return [(city, L.LOCATION), (", ", None), (region, L.LOCATION), (" ", None), (post, L.ZIP)]
    return [(post, L.ZIP), (" ", None), (city, L.LOCATION), (", ", None), (region, L.LOCATION)]


def _postcode(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(rng.choice(_WITH_POSTCODE)[2], L.ZIP)


def _birthplace(rng: random.Random, p: Patient) -> list[Piece]:
    city, region, _ = rng.choice(CITIES)
    return [(city, L.LOCATION), (" (", None), (region, L.LOCATION), (")", None)]


def _date_parts(rng: random.Random, lo: int = 1926, hi: int = 2024) -> tuple[int, int, int]:
    return rng.randint(lo, hi), rng.randint(1, 12), rng.randint(1, 28)


def _format_date(rng: random.Random, y: int, m: int, d: int) -> str:
    form = rng.randrange(14)
    forms = (
        f"{d:02d}.{m:02d}.{y}",
        f"{y}/{m}/{d}",
        f"{suffix(d)} of {_MONTHS[m - 1]} {y}",
        f"{_MONTHS[m - 1][:3]}-{d:02d}-{y % 100:02d}",
        f"{d} {_BULAN[m - 1]} {y}",
        f"{d:02d}-{_MONTHS[m - 1][:3].upper()}-{y}",
        f"{y}-{m:02d}-{d:02d}",
        f"{_MONTHS[m - 1]} {d}, {y}",
        f"{d:02d}/{m:02d}/{y % 100:02d}",
        f"{d} {_MOIS[m - 1]} {y}",
        f"{d}.{_ROMAN[m - 1]}.{y}",
        f"{y}{m:02d}{d:02d}",
        f"{d}-{m}-{y}",
        f"{_MONTHS[m - 1][:3]} {suffix(d)} {y}",
    )
    return forms[form]


def _date(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(_format_date(rng, *_date_parts(rng, 2015, 2024)), L.DATE)


def _dob(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(_format_date(rng, *_date_parts(rng, 1924, 1990)), L.DATE)


def _date_partial(rng: random.Random, p: Patient) -> list[Piece]:
    y, m, d = _date_parts(rng, 2008, 2024)
    value = rng.choice(
        (
            f"{_MONTHS[m - 1]} {y}",
            f"{m:02d}/{d:02d}",
            f"{d} {_MONTHS[m - 1]}",
            f"{_MOIS[m - 1]} {y}",
            f"{m}/{y}",
            f"{suffix(d)} {_MONTHS[m - 1][:3]}",
        )
    )
    return _one(value, L.DATE)


def _date_spoken(rng: random.Random, p: Patient) -> list[Piece]:
    y, m, d = _date_parts(rng, 1924, 2024)
    if rng.random() < 0.5:
        return _one(f"the {ordinal(d)} of {_MONTHS[m - 1]} {year_words(y)}", L.DATE)
    return _one(f"{_MONTHS[m - 1].lower()} {ordinal(d)} {year_words(y)}", L.DATE)


def _stamp(rng: random.Random, p: Patient) -> list[Piece]:
    y, m, d = _date_parts(rng, 2021, 2024)
    time = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    return [(f"{y}-{m:02d}-{d:02d}", L.DATE), (f" {time}", None)]


def _age(rng: random.Random, p: Patient) -> list[Piece]:
    n = rng.randint(90, 106)
    form = rng.randrange(8)
    if form == 0:
        return [(str(n), L.AGE), ("-year-old", None)]
    if form == 1:
        return [(words(n), L.AGE), (" years old", None)]
    if form == 2:
        return [(str(n), L.AGE), (" y/o", None)]
    if form == 3:
        return [(str(n), L.AGE), ("yo", None)]
    if form == 4:
        return [(str(n), L.AGE), (" ans", None)]
    if form == 5:
        return [(str(n), L.AGE), (" tahun", None)]
    if form == 6:
        return [(str(n), L.AGE), (" yrs", None)]
    return [(str(n), L.AGE)]


def _age_young(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(str(rng.randint(19, 88)), None)


def _digits_spoken(number: str) -> str:
    return " ".join(_ONES[int(c)] if c.isdigit() else "," for c in number).replace(" ,", ",")


def _phone_number(rng: random.Random) -> str:
    def d(n: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(n))

    return rng.choice(
        (
            f"({rng.choice(('705', '418', '250', '807'))}) 555-{d(4)}",
            f"{rng.choice(('705', '418', '250'))}.555.{d(4)}",
            f"+234 {rng.choice(('803', '806', '813'))} {d(3)} {d(4)}",
            f"+233 {rng.choice(('24', '20', '55'))} {d(3)} {d(4)}",
            f"+92 {rng.choice(('300', '321', '345'))} {d(7)}",
            f"+880 17{d(2)}-{d(6)}",
            f"+60 1{rng.choice('23679')}-{d(3)} {d(4)}",
            f"+852 {rng.choice('2359')}{d(3)} {d(4)}",
            f"+971 {rng.choice(('3', '50', '7'))} {d(3)} {d(4)}",
            f"+974 {d(4)} {d(4)}",
            f"+356 {rng.choice(('21', '79', '99'))}{d(2)} {d(4)}",
            f"563-555-{d(4)}",
        )
    )


def _phone(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(_phone_number(rng), L.PHONE)


def _phone_spoken(rng: random.Random, p: Patient) -> list[Piece]:
    area = rng.choice(("705", "418", "807"))
    tail = "".join(rng.choice("0123456789") for _ in range(4))
    return _one(_digits_spoken(f"{area},555,{tail}"), L.PHONE)


_MAIL_DOMAINS = (
    *("videotron.ca", "northwestel.net", "yahoo.com.my", "streamyx.com.my"),
    *("netvigator.com", "emirates.net.ae", "qatar.net.qa", "melita.mt"),
    *("gmail.com", "hotmail.co.uk", "mcleodusa.net"),
)


def _email(rng: random.Random, p: Patient) -> list[Piece]:
    first, last = (p.first, p.last) if rng.random() < 0.6 else _someone(rng)
    a = _ascii(first).lower().replace(" ", "")
    b = _ascii(last).lower().replace(" ", "").replace("'", "")
    local = rng.choice((f"{a}.{b}", f"{a[0]}{b}{rng.randint(1, 99)}", f"{b}_{a}", f"{a}{b[:3]}"))
    return _one(f"{local}@{rng.choice(_MAIL_DOMAINS)}", L.EMAIL)


def _url(rng: random.Random, p: Patient) -> list[Piece]:
    a = _ascii(p.first).lower().replace(" ", "")
    b = _ascii(p.last).lower().replace(" ", "")
    token = "".join(rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(8))
    value = rng.choice(
        (
            f"https://mychart.tvri-renal.ca/p/{token}",
            f"https://vc.jebelhafeet.ae/join/{token}",
            f"www.facebook.com/{a}.{b}",
            f"https://gofund.me/{token}",
            f"http://portal.sptarsu.gov.mt/pazjent?id={token}",
            f"https://trials.kdx-network.org/subjects/{token}",
            f"instagram.com/{a}_{b}",
        )
    )
    return _one(value, L.URL)


def _ip(rng: random.Random, p: Patient) -> list[Piece]:
    if rng.random() < 0.2:
        groups = ":".join(f"{rng.randrange(65536):x}" for _ in range(4))
        return _one(f"2001:db8:{groups}::{rng.randrange(4096):x}", L.IP_ADDRESS)
    first = rng.choice((10, 41, 72, 102, 175, 182, 196, 203))
    rest = ".".join(str(rng.randint(0, 254)) for _ in range(3))
    return _one(f"{first}.{rest}", L.IP_ADDRESS)


def _fixed(values: Sequence[str]) -> Filler:
    def fill(rng: random.Random, p: Patient) -> list[Piece]:
        return _one(rng.choice(list(values)), None)

    return fill


fillers: dict[str, Filler] = {
    "PT": _patient_name,
    "PT_CAPS": _patient_caps,
    "PT_FIRST": _patient_first,
    "PT_LAST": _patient_last,
    "PT_LC": _patient_lower,
    "CLIN": _clinician,
    "NAME": _bare_name,
    "KIN": _kin,
    "REL_KIN": _relative,
    "REL": _relation,
    "JOB": _job,
    "ORG": _org,
    "HOSP": _hospital,
    "ADDR": _street,
    "CITY": _city,
    "CITY_REGION": _city_region,
    "PLACE": _place,
    "POSTCODE": _postcode,
    "BIRTHPLACE": _birthplace,
    "DATE": _date,
    "DOB": _dob,
    "DATE_PART": _date_partial,
    "DATE_SPOKEN": _date_spoken,
    "STAMP": _stamp,
    "AGE": _age,
    "AGE_YOUNG": _age_young,
    "PHONE": _phone,
    "PHONE_SPOKEN": _phone_spoken,
    "EMAIL": _email,
    "URL": _url,
    "IP": _ip,
    **ids.FILLERS,
    "BED": _fixed(("Bed 4", "Bed 12B", "Cubicle 7", "Chair 3", "Station 2", "Rm 411")),
}
