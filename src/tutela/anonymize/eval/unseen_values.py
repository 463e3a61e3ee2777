"""Values for the unseen evaluation set: its names, places, organisations and formats.

Written without reference to the detector or to the other sets' value lists. The names
lean Irish, Māori, West African, South and East Asian and Dutch/German (particles,
hyphens, apostrophes); places are small towns in six countries; organisations are
invented; identifiers use separators and prefixes of their own (NHS-style numbers with
spaces, hospital numbers with slashes, GS1 device identifiers, DVLA-style licences).
ZIP is used only for US ZIP codes; other countries' addresses carry no postcode.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable, Sequence

from tutela.anonymize.eval.render import Filler, Patient, Piece, random_vin
from tutela.anonymize.spans import PiiLabel
from tutela.anonymize.validators import dea_valid, ssn_valid

P = PiiLabel

FIRST_F = (
    "Niamh", "Aoife", "Ngozi", "Mehreen", "Yukiko", "Ingeborg", "Genevieve", "Tahnee",
    "Kirra", "Priyanka", "Leilani", "Zofia", "Carmel", "Merindah", "Ailsa", "Mei-Lin",
    "Fatoumata", "Rangimarie", "Ebere", "Chiamaka", "Solveig", "Anahera", "Perpetua",
    "Róisín", "Itzel", "Gulnara", "Tuyet", "Oluwakemi", "Philippa", "Gráinne",
)  # fmt: skip
FIRST_M = (
    "Colm", "Tadhg", "Oluwafemi", "Rangi", "Crispin", "Hamish", "Donnacha", "Kwabena",
    "Radosław", "Arjun", "Tawfiq", "Quang", "Hirotaka", "Tamati", "Fergus", "Yaw", "Ruairí",
    "Dmitri", "Wiremu", "Mortimer", "Ewart", "Leopold", "Hemi", "Barnaby", "Bao",
    "Callum", "Jarrah", "Benedikt", "Obafemi", "Oisín",
)  # fmt: skip
FIRST = FIRST_F + FIRST_M
LAST = (
    "O'Dowd", "McGillicuddy", "van der Westhuizen", "D'Souza", "Ní Bhriain", "ter Horst",
    "von Albrecht", "di Lorenzo", "Okonkwo", "Tuilagi", "Wirihana", "Balasubramanian",
    "Wróblewski", "Haddad", "Al-Rashidi", "Fitzwilliam", "Adeyemi-Cole", "Rautenbach",
    "Nakagawa", "Featherstonhaugh", "Bjørnstad", "Quaresma", "Mbeki-Dlamini", "Lefebvre",
    "St. Clair", "Le Quesne", "Thistlethwaite", "Yeboah", "Ramaswamy", "Karaka",
    "Pham-Whitlock", "Abernethy-Osei", "Penhaligon", "Tremayne", "Auclair", "Gallacher",
    "Macaulay", "Strachan", "Delacroix-Mensah", "MacLeod", "Vo", "Ng", "Hollingworth",
    "Ó Súilleabháin", "de Groot", "Hoogendijk", "Iwu", "Sandhu-Grewal",
)  # fmt: skip

HOSPITALS = (
    "Wattlebrook District Hospital", "St Brigid's Infirmary", "Royal Kestrel Hospital",
    "Mount Carrow Private Hospital", "Ironbark Base Hospital", "Glenmorrow Community Hospital",
    "Lakehead Regional Health Centre", "Tamsin Valley General", "Our Lady of the Snows Hospital",
    "Harbourside Children's Hospital", "Pemberton Cottage Hospital",
    "Queen Adelaide Memorial Hospital",
)  # fmt: skip
CLINICS = (
    "Bridgewater Medical Centre", "Coralline Family Practice", "Ashgrove Surgery",
    "Heathcote Sleep Clinic", "Riverbend Physiotherapy", "Kingfisher Lane Health Centre",
    "Mulberry Walk-in Centre", "Tidewater Dialysis Unit",
)  # fmt: skip
PHARMACIES = (
    "Pennyroyal Chemist", "Greenhill Pharmacy", "Capstan Discount Chemist",
    "Mortlake Apothecary", "Wrenfield Dispensary",
)  # fmt: skip
EMPLOYERS = (
    "Penfold Haulage Ltd", "Gannet Bay Fisheries", "Quarrington Steelworks",
    "Brindle & Sons Bakery", "Tallowood Timber Co.", "Corvid Analytics Pty Ltd",
    "Halloran Mining", "Bellbird Aged Care", "Sandpiper Freight", "Moorcroft Council",
)  # fmt: skip
SCHOOLS = (
    "Larchfield Primary School", "St Aidan's College", "Kookaburra Creek Public School",
    "Thornbury High", "Ravensworth Grammar",
)  # fmt: skip
CHURCHES = (
    "St Columba's Parish", "Riverside Gurdwara", "Wesley Uniting Church",
    "Bethel Pentecostal Assembly", "Al-Noor Mosque", "Holy Trinity Greek Orthodox Church",
)  # fmt: skip
INSURERS = (
    "Bluewater Mutual Health", "Southern Reach Health Fund", "Canopy Assurance",
    "Heritage Friendly Society", "Maplestone Life", "Ridgeline Benefit Plan",
)  # fmt: skip
LABS = ("Quillon Pathology", "Meridian Diagnostic Imaging", "Karrawang Laboratories")
ORGS = HOSPITALS + CLINICS + PHARMACIES + EMPLOYERS + SCHOOLS + CHURCHES + INSURERS + LABS

# (city, state or province, ZIP prefix or "" outside the US)
CITIES = (
    ("Havre", "Montana", "595"), ("Hibbing", "Minnesota", "557"),
    ("Presque Isle", "Maine", "047"), ("Prescott", "Arizona", "863"),
    ("Muskogee", "Oklahoma", "744"), ("Keokuk", "Iowa", "526"),
    ("Walla Walla", "Washington", "993"), ("Hattiesburg", "Mississippi", "394"),
    ("Ballarat", "Victoria", ""), ("Wagga Wagga", "New South Wales", ""),
    ("Toowoomba", "Queensland", ""), ("Kalgoorlie", "Western Australia", ""),
    ("Kamloops", "British Columbia", ""), ("Thunder Bay", "Ontario", ""),
    ("Moose Jaw", "Saskatchewan", ""), ("Rimouski", "Quebec", ""),
    ("Dundee", "", ""), ("Kilkenny", "", ""), ("Penzance", "", ""), ("Invercargill", "", ""),
)  # fmt: skip
US_STATE_CODES = {
    "Montana": "MT", "Minnesota": "MN", "Maine": "ME", "Arizona": "AZ", "Oklahoma": "OK",
    "Iowa": "IA", "Washington": "WA", "Mississippi": "MS",
}  # fmt: skip
COUNTRIES = (
    "Ghana", "Fiji", "Sri Lanka", "Tonga", "Moldova", "Ireland", "Nigeria", "Vietnam",
    "Samoa", "Kenya", "Portugal", "Bangladesh",
)  # fmt: skip
STREETS = (
    "Wexcombe Road", "Banksia Parade", "Gorse Lane", "Jacaranda Crescent", "Tinker's Row",
    "Kittiwake Close", "Old Mill Terrace", "Ferntree Gully Road", "Rue Laurier",
    "Concession Road 8", "Bellwether Drive", "Quarry Hill", "Marram Way", "Sycamore Mews",
)  # fmt: skip
JOBS = (
    "lorry driver", "pastry chef", "welder", "sheep shearer", "tram conductor",
    "dental hygienist", "long-haul pilot", "stonemason", "primary school teacher",
    "meatworks labourer", "bus driver", "florist", "locksmith", "crane operator",
    "barista", "church organist", "jockey", "quantity surveyor", "postie",
    "fishmonger", "software tester", "hairdresser", "scaffolder", "zookeeper",
)  # fmt: skip

MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)  # fmt: skip
_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth"}
_ORD |= {"nine": "ninth", "twelve": "twelfth"}
_ROMAN = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii")


def words(n: int) -> str:
    """``n`` (0 to 199) in English words: 92 -> "ninety-two"."""
    if n >= 100:
        rest = n - 100
        return "one hundred" + (f" and {words(rest)}" if rest else "")
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def ordinal_words(n: int) -> str:
    """``n`` as an ordinal in words: 92 -> "ninety-second"."""
    w = words(n)
    cut = max(w.rfind("-"), w.rfind(" ")) + 1
    head, last = w[:cut], w[cut:]
    if last in _ORD:
        last = _ORD[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + last


def _suffix(d: int) -> str:
    if d in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(n))


def _pattern(rng: random.Random, spec: str) -> str:
    """Fill ``spec``: each ``#`` becomes a digit, each ``@`` a letter, the rest stays."""
    out = (_digits(rng, 1) if c == "#" else _letters(rng, 1) if c == "@" else c for c in spec)
    return "".join(out)


def _formats(*specs: str) -> Callable[[random.Random], str]:
    return lambda rng: _pattern(rng, rng.choice(specs))


def _memo(p: Patient, key: str, make: Callable[[], str]) -> str:
    if key not in p.extra:
        p.extra[key] = make()
    return p.extra[key]


def _per_patient(key: str, fill: Filler) -> Filler:
    """``fill``, drawn once per patient: a note repeats the same home address or SSN."""

    def same(rng: random.Random, p: Patient) -> Sequence[Piece]:
        seed = int(_memo(p, key, lambda: str(rng.getrandbits(32))))
        return fill(random.Random(seed), p)  # noqa: S311 - synthetic data, not secrets

    return same


def _one(label: PiiLabel, make: Callable[[random.Random], str]) -> Filler:
    def fill(rng: random.Random, p: Patient) -> Sequence[Piece]:
        return [(make(rng), label)]

    return fill


def _pick(*values: str) -> Callable[[random.Random], str]:
    return lambda rng: rng.choice(values)


# -- people ------------------------------------------------------------------------------


def new_patient(rng: random.Random) -> Patient:
    """A patient with a name from this set's lists."""
    female = rng.random() < 0.5
    return Patient(rng.choice(FIRST_F if female else FIRST_M), rng.choice(LAST), female)


def _pt(rng: random.Random, p: Patient) -> Sequence[Piece]:
    form = rng.randrange(4)
    if form == 0:
        return [(f"{p.first} {p.last}", P.PERSON)]
    if form == 1:
        return [(f"{p.first} {rng.choice('ABCDEGJLMRT')}. {p.last}", P.PERSON)]
    if form == 2:
        return [(f"{p.first[0]}. {p.last}", P.PERSON)]
    return [(f"{p.first} {p.last}".upper(), P.PERSON)]


def _pt_title(rng: random.Random, p: Patient) -> Sequence[Piece]:
    title = rng.choice(("Mrs", "Ms", "Miss") if p.female else ("Mr", "Mr"))
    return [(f"{title} ", None), (p.last, P.PERSON)]


def _pt_sf(rng: random.Random, p: Patient) -> Sequence[Piece]:
    last = p.last.upper() if rng.random() < 0.6 else p.last
    return [(last, P.PERSON), (", ", None), (p.first, P.PERSON)]


def _pt_first(rng: random.Random, p: Patient) -> Sequence[Piece]:
    return [(p.first, P.PERSON)]


def _pt_lower(rng: random.Random, p: Patient) -> Sequence[Piece]:
    return [(f"{p.first} {p.last}".lower(), P.PERSON)]


def _someone(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _dr(rng: random.Random, p: Patient) -> Sequence[Piece]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    form = rng.randrange(4)
    if form == 0:
        return [("Dr ", None), (f"{first} {last}", P.PERSON)]
    if form == 1:
        return [("Dr ", None), (last, P.PERSON)]
    if form == 2:
        return [("Dr. ", None), (f"{first[0]}. {last}", P.PERSON)]
    return [(f"{first} {last}", P.PERSON)]


def _staff(rng: random.Random, p: Patient) -> Sequence[Piece]:
    if rng.random() < 0.3:
        return [(rng.choice(FIRST), P.PERSON)]
    return [(_someone(rng), P.PERSON)]


def _rel(rng: random.Random, p: Patient) -> Sequence[Piece]:
    last = p.last if rng.random() < 0.6 else rng.choice(LAST)
    return [(f"{rng.choice(FIRST)} {last}", P.PERSON)]


def _rel_first(rng: random.Random, p: Patient) -> Sequence[Piece]:
    return [(rng.choice(FIRST), P.PERSON)]


# -- ages and dates ----------------------------------------------------------------------


def _age_of(rng: random.Random, p: Patient) -> int:
    if "age" not in p.extra:
        # one patient in three is 89 or over, the ages Safe Harbor singles out
        old = rng.random() < 0.33
        p.extra["age"] = str(rng.randint(89, 103) if old else rng.randint(19, 88))
    return int(p.extra["age"])


def _age(rng: random.Random, p: Patient) -> Sequence[Piece]:
    a = _age_of(rng, p)
    pron = "her" if p.female else "his"
    forms: list[list[Piece]] = [
        [(str(a), P.AGE), ("yo", None)],
        [("aged ", None), (str(a), P.AGE)],
        [(str(a), P.AGE), (" yrs", None)],
        [(words(a), P.AGE), (" years old", None)],
        [(f"in {pron} ", None), (ordinal_words(a + 1), P.AGE), (" year", None)],
        [("aged ", None), (words(a), P.AGE)],
    ]
    return rng.choice(forms)


def _age_sex(rng: random.Random, p: Patient) -> Sequence[Piece]:
    a, s = str(_age_of(rng, p)), "F" if p.female else "M"
    forms: list[list[Piece]] = [[(f"{s}/", None), (a, P.AGE)], [(a, P.AGE), (s, None)]]
    forms += [[(a, P.AGE), (f" {s}", None)], [(f"{s}, ", None), (a, P.AGE)]]
    return rng.choice(forms)


def _age_child(rng: random.Random, p: Patient) -> Sequence[Piece]:
    forms: list[list[Piece]] = [
        [("aged ", None), (f"{rng.randint(2, 11)}/12", P.AGE)],
        [(str(rng.randint(13, 30)), P.AGE), (" months", None)],
        [(str(rng.randint(2, 9)), P.AGE), (" weeks old", None)],
        [("aged ", None), (words(rng.randint(3, 15)), P.AGE)],
    ]
    return rng.choice(forms)


def _age_rel(rng: random.Random, p: Patient) -> Sequence[Piece]:
    a = rng.randint(40, 101)
    if rng.random() < 0.5:
        return [(str(a), P.AGE), ("-year-old", None)]
    return [(words(a), P.AGE), ("-year-old", None)]


def _date_text(rng: random.Random, y: int, m: int, d: int) -> list[Piece]:
    mon = MONTHS[m - 1]
    forms = [
        f"{d}{_suffix(d)} of {mon} {y}",
        f"{d:02}/{m:02}/{y % 100:02}",
        f"{d}/{m}/{y}",
        f"{mon[:3]}-{d}-{y}",
        f"{d:02}-{mon[:3].upper()}-{y}",
        f"{d}.{m}.{y}",
        f"{d}.{_ROMAN[m - 1]}.{y % 100:02}",
        f"{d} {mon} {y}",
        f"{mon} {d}, {y}",
        f"{d} {mon[:3]} {y % 100:02}",
    ]
    i = rng.randrange(len(forms) + 2)
    if i == len(forms):
        return [("the ", None), (f"{ordinal_words(d)} of {mon} {y}", P.DATE)]
    if i == len(forms) + 1:
        return [(f"{d}{_suffix(d)} {mon}", P.DATE)]
    return [(forms[i], P.DATE)]


def _date(rng: random.Random, p: Patient) -> Sequence[Piece]:
    return _date_text(rng, rng.randint(2021, 2025), rng.randint(1, 12), rng.randint(1, 28))


def _dob(rng: random.Random, p: Patient) -> Sequence[Piece]:
    return _date_text(rng, rng.randint(1921, 2004), rng.randint(1, 12), rng.randint(1, 28))


def _month_year(rng: random.Random, p: Patient) -> Sequence[Piece]:
    return [(f"{rng.choice(MONTHS)} {rng.randint(2019, 2025)}", P.DATE)]


# -- contact details ---------------------------------------------------------------------


def phone(rng: random.Random) -> str:
    """A phone number in a UK, Australian, Canadian or NZ format (fictional ranges)."""
    n3 = f"{rng.randint(0, 999):03}"
    forms = [
        f"020 7946 0{n3}",
        f"+44 7700 900{n3}",
        f"07700 900{n3}",
        f"0161 496 0{n3}",
        f"(02) 5550 {rng.randint(1000, 9999)}",
        f"0491 570 {rng.randint(100, 199)}",
        f"+61 491 570 {rng.randint(100, 199)}",
        f"(604) 555-01{rng.randint(0, 99):02}",
        f"416.555.01{rng.randint(0, 99):02}",
        f"+1 613 555 01{rng.randint(0, 99):02}",
        f"+64 21 555 {rng.randint(1000, 9999)}",
        f"1-800-555-01{rng.randint(0, 99):02}",
    ]
    return rng.choice(forms)


_FOLD = str.maketrans("øØłŁ", "oOlL")


def _plain(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name.translate(_FOLD))
    return "".join(c for c in folded if c.isascii() and c not in "'. ").lower()


_MAIL_DOMAINS = (
    "fastmail.co.uk", "bigpond.net.au", "shaw.ca", "outlook.com.au", "yahoo.co.nz",
    "protonmail.ch", "sympatico.ca", "btinternet.com", "iinet.net.au",
)  # fmt: skip
_ORG_MAIL_HOSTS = (
    "wattlebrook.health.nsw.gov.au", "kestrelhospital.org.uk", "lakeheadrhc.on.ca",
    "ironbarkbase.qld.gov.au", "stbrigids.ie", "bluewatermutual.com",
)  # fmt: skip


def _email(rng: random.Random, p: Patient) -> Sequence[Piece]:
    first, last = _plain(p.first), _plain(p.last)
    domain = rng.choice(_MAIL_DOMAINS)
    user = rng.choice(
        (
            f"{first}.{last}", f"{first[0]}{last}{rng.randint(1, 99)}", f"{last}_{first}",
            f"{first}{rng.randint(1940, 2005)}", f"{first}-{last[:4]}",
        )
    )  # fmt: skip
    if rng.random() < 0.15:
        user = user.upper()
    return [(f"{user}@{domain}", P.EMAIL)]


def _email_org(rng: random.Random, p: Patient) -> Sequence[Piece]:
    user = rng.choice(("referrals", "intake", "pharmacy", "priorauth", "research.office"))
    host = rng.choice(_ORG_MAIL_HOSTS)
    return [(f"{user}@{host}", P.EMAIL)]


def _url(rng: random.Random, p: Patient) -> Sequence[Piece]:
    forms = [
        f"https://portal.wattlebrook.org.au/msg/{_digits(rng, 5)}",
        f"www.kestrelhealth.ca/telehealth/room/{_letters(rng, 3)}{rng.randint(1, 9)}-22B",
        f"https://meet.tallowhealth.nz/j/{_digits(rng, 4)}-{_digits(rng, 4)}",
        f"bit.ly/{_letters(rng, 2)}{_digits(rng, 2)}k{_letters(rng, 3).lower()}",
        f"http://stbrigids.ie/patients/{p.first.lower()}-{_digits(rng, 3)}",
        f"https://consent.quillon-research.org/s/{_letters(rng, 4).lower()}{_digits(rng, 3)}",
        f"myhealth.bluewatermutual.com/claims/{_digits(rng, 7)}",
    ]
    return [(rng.choice(forms), P.URL)]


def _ip(rng: random.Random, p: Patient) -> Sequence[Piece]:
    forms = [
        f"203.0.113.{rng.randint(1, 254)}",
        f"198.51.100.{rng.randint(1, 254)}",
        f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        f"2001:db8:{rng.randint(4096, 65535):x}::{rng.randint(16, 4095):x}",
    ]
    return [(rng.choice(forms), P.IP_ADDRESS)]


# -- places ------------------------------------------------------------------------------


def _street(rng: random.Random) -> str:
    n, street = rng.randint(2, 480), rng.choice(STREETS)
    forms = [f"{n} {street}", f"Unit {rng.randint(1, 12)}/{n} {street}"]
    forms += [
        f"Flat {rng.randint(1, 9)}, {n} {street}",
        f"Apt {rng.randint(101, 1208)}, {n} {street}",
    ]
    return rng.choice(forms)


def _zip(rng: random.Random, prefix: str) -> str:
    z = prefix + _digits(rng, 2)
    return z if rng.random() < 0.7 else f"{z}-{_digits(rng, 4)}"


def _address(rng: random.Random, p: Patient) -> Sequence[Piece]:
    city, state, prefix = rng.choice(CITIES)
    out: list[Piece] = [(_street(rng), P.ADDRESS), (", ", None), (city, P.LOCATION)]
    if prefix:
        code = US_STATE_CODES[state] if rng.random() < 0.7 else state
        return [*out, (", ", None), (code, P.LOCATION), (" ", None), (_zip(rng, prefix), P.ZIP)]
    if state:
        out += [(", ", None), (state, P.LOCATION)]
    return out


def _us_address(rng: random.Random, p: Patient) -> Sequence[Piece]:
    city, state, prefix = rng.choice([c for c in CITIES if c[2]])
    return [
        (_street(rng), P.ADDRESS), (", ", None), (city, P.LOCATION), (", ", None),
        (US_STATE_CODES[state], P.LOCATION), (" ", None), (_zip(rng, prefix), P.ZIP),
    ]  # fmt: skip


def _zip_only(rng: random.Random, p: Patient) -> Sequence[Piece]:
    return [(_zip(rng, rng.choice([c[2] for c in CITIES if c[2]])), P.ZIP)]


def _city(rng: random.Random, p: Patient) -> Sequence[Piece]:
    return [(rng.choice(CITIES)[0], P.LOCATION)]


def _city_state(rng: random.Random, p: Patient) -> Sequence[Piece]:
    city, state, _ = rng.choice([c for c in CITIES if c[1]])
    return [(city, P.LOCATION), (", ", None), (state, P.LOCATION)]


def _state(rng: random.Random, p: Patient) -> Sequence[Piece]:
    return [(rng.choice([c[1] for c in CITIES if c[1]]), P.LOCATION)]


# -- identifiers -------------------------------------------------------------------------


def nhs_number(rng: random.Random) -> str:
    """A 10-digit number with a valid NHS mod-11 check digit, spaced 3-3-4."""
    while True:
        d = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(x * (10 - i) for i, x in enumerate(d)) % 11
        if check == 11:
            check = 0
        if check != 10:
            s = "".join(map(str, d)) + str(check)
            return f"{s[:3]} {s[3:6]} {s[6:]}"


mrn = _formats(
    "00#####",
    "H-###-####",
    "MR/1#/######",
    "####-###-K",
    "RM-####-####",
    "K#######",
    "##-##-##-#",
    "N#####-##",
)
"""A hospital or UR number in one of this set's formats."""


def ssn(rng: random.Random) -> str:
    """A US social security number that keeps the SSA allocation rules."""
    while True:
        a, g, s = _digits(rng, 3), _digits(rng, 2), _digits(rng, 4)
        if ssn_valid(a, g, s):
            return rng.choice((f"{a}-{g}-{s}", f"{a} {g} {s}", f"{a}{g}{s}"))


health_plan = _formats(
    "BWM ### ### ###",
    "XQH########",
    "W####-#####-0#",
    "POL-#####-####",
    "SRF/######/@",
    "CAN###.###.###",
)
"""An insurance member, subscriber or policy identifier."""


def medicare(rng: random.Random) -> str:
    """An Australian Medicare card number in its printed 4-5-1 grouping."""
    return f"{rng.randint(2, 6)}{_digits(rng, 3)} {_digits(rng, 5)} {rng.randint(1, 9)}"


def ohip(rng: random.Random) -> str:
    """An Ontario health card number with its version code."""
    return f"{_digits(rng, 4)}-{_digits(rng, 3)}-{_digits(rng, 3)}-{_letters(rng, 2)}"


account = _formats(
    "####-#####-##",
    "ENC/202#/#######",
    "PA #### ####",
    "##########",
    "INV-@@-######",
    "###.###.####",
)
"""A billing, encounter or bank account number."""


def _dea(rng: random.Random, last: str) -> str:
    initial = _plain(last).upper()[0]
    while True:
        n = f"{rng.choice('ABFM')}{initial}{_digits(rng, 7)}"
        if dea_valid(n):
            return n


def _driver_licence(rng: random.Random, p: Patient) -> Sequence[Piece]:
    surname = ("".join(c for c in _plain(p.last) if c.isalpha()).upper() + "99999")[:5]
    forms = [
        f"{_digits(rng, 4)} {_digits(rng, 4)}",
        f"{p.last[0].upper()}{_digits(rng, 4)}-{_digits(rng, 5)}-{_digits(rng, 5)}",
        f"WDL-{_digits(rng, 4)}-{_digits(rng, 3)}",
        f"{surname}{_digits(rng, 6)}{p.first[0].upper()}{_letters(rng, 1)}9{_letters(rng, 2)}",
    ]
    return [(rng.choice(forms), P.LICENSE)]


def _dea_filler(rng: random.Random, p: Patient) -> Sequence[Piece]:
    return [(_dea(rng, rng.choice(LAST)), P.LICENSE)]


_registration = _formats("MED000#######", "NMW##########", "GMC-#######", "CPSO ######")


_plate = _formats("@@## @@@", "#@@@ ###", "@@@@ ###", "@@@-###")


_device = _formats(
    "@@@######H",
    "(01)00############(17)2###28(21)#######",
    "PMP-####-#####",
    "####-@@-#####",
    "HA-####-####-@",
    "@@### ### @",
)
_FINGERPRINT = _formats("FP-####-@@@#", "FPT#####@", "fp:####-####")
_RETINA = _formats("RET-#####-@@", "RS/###/####")
_VOICE = _formats("VP/202#/#####", "VPR-##@#-##")
_FACE = _formats("FT-#@#@-##@#", "FACE-###-@@@-###", "fm_######")


# -- occupations -------------------------------------------------------------------------


def _occupation(rng: random.Random, p: Patient) -> Sequence[Piece]:
    job = rng.choice(JOBS)
    art = "an" if job[0] in "aeiou" else "a"
    forms: list[list[Piece]] = [
        [("a retired ", None), (job, P.PROFESSION)],
        [(f"{art} ", None), (job, P.PROFESSION), (" by trade", None)],
        [("a part-time ", None), (job, P.PROFESSION)],
        [(f"formerly {art} ", None), (job, P.PROFESSION)],
        [("a self-employed ", None), (job, P.PROFESSION)],
    ]
    return rng.choice(forms)


def _job(rng: random.Random, p: Patient) -> Sequence[Piece]:
    return [(rng.choice(JOBS), P.PROFESSION)]


def _employer(rng: random.Random, p: Patient) -> Sequence[Piece]:
    return [(_memo(p, "employer", lambda: rng.choice(EMPLOYERS)), P.ORGANIZATION)]


fillers: dict[str, Filler] = {
    "PT": _pt,
    "PT_TITLE": _pt_title,
    "PT_SF": _pt_sf,
    "PT_FIRST": _pt_first,
    "PT_LOWER": _pt_lower,
    "DR": _dr,
    "STAFF": _staff,
    "REL": _rel,
    "REL_FIRST": _rel_first,
    "AGE": _age,
    "AGE_SEX": _age_sex,
    "AGE_CHILD": _age_child,
    "AGE_REL": _age_rel,
    "DATE": _date,
    "DOB": _dob,
    "MONTH_YEAR": _month_year,
    "PHONE": _one(P.PHONE, phone),
    "EMAIL": _per_patient("email", _email),
    "EMAIL_ORG": _email_org,
    "URL": _url,
    "IP": _ip,
    "ADDR": _per_patient("address", _address),
    "US_ADDR": _us_address,
    "STREET": _one(P.ADDRESS, _street),
    "STREET_LOC": _one(P.LOCATION, _pick(*STREETS)),
    "ZIP": _zip_only,
    "CITY": _city,
    "CITY_STATE": _city_state,
    "STATE": _state,
    "COUNTRY": _one(P.LOCATION, _pick(*COUNTRIES)),
    "HOSP": _one(P.ORGANIZATION, _pick(*HOSPITALS)),
    "CLINIC": _one(P.ORGANIZATION, _pick(*CLINICS)),
    "PHARM": _one(P.ORGANIZATION, _pick(*PHARMACIES)),
    "EMPLOYER": _employer,
    "SCHOOL": _one(P.ORGANIZATION, _pick(*SCHOOLS)),
    "CHURCH": _one(P.ORGANIZATION, _pick(*CHURCHES)),
    "INSURER": _one(P.ORGANIZATION, _pick(*INSURERS)),
    "LABORG": _one(P.ORGANIZATION, _pick(*LABS)),
    "OCC": _occupation,
    "JOB": _job,
    "MRN": _one(P.MRN, mrn),
    "NHS": _one(P.MRN, nhs_number),
    "SSN": _per_patient("ssn", _one(P.SSN, ssn)),
    "PLAN": _one(P.HEALTH_PLAN, health_plan),
    "MEDICARE": _one(P.HEALTH_PLAN, medicare),
    "OHIP": _one(P.HEALTH_PLAN, ohip),
    "ACCT": _one(P.ACCOUNT, account),
    "DL": _per_patient("licence", _driver_licence),
    "DEA": _dea_filler,
    "REG": _one(P.LICENSE, _registration),
    "VIN": _one(P.VEHICLE, random_vin),
    "PLATE": _one(P.VEHICLE, _plate),
    "DEVICE": _one(P.DEVICE, _device),
    "BIO_FP": _one(P.BIOMETRIC, _FINGERPRINT),
    "BIO_RET": _one(P.BIOMETRIC, _RETINA),
    "BIO_VOICE": _one(P.BIOMETRIC, _VOICE),
    "BIO_FACE": _one(P.BIOMETRIC, _FACE),
}
"""Slot name to value generator for :mod:`.unseen`'s templates."""
