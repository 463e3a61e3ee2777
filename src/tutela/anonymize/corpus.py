"""A seeded generator of labelled synthetic clinical notes.

Used for recall-floor tests and for ``benchmarks/pii.py``. Every value is synthetic
(invented names, checksum-valid but random SSNs/cards/IBANs/VINs, fictitious e-mail
domains), and every identifier carries its gold span, so detectors can be scored per
label. Clinical-only sentences (codes, doses, vitals, labs, times) are mixed in, and
:func:`clinical_only_notes` produces notes with no identifiers at all.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from tutela.anonymize.recognizers import luhn_valid
from tutela.anonymize.spans import PiiLabel, Span


@dataclass(frozen=True)
class LabelledNote:
    """A note and the gold spans of every identifier in it."""

    text: str
    spans: tuple[Span, ...]


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

CLINICAL_SENTENCES = (
    "Assessment: type 2 diabetes mellitus (E11.9) and essential hypertension (I10).",
    "Medications: metformin 500 mg PO BID, lisinopril 10 mg daily, atorvastatin 40 mg qhs.",
    "Vitals: BP 132/84 mmHg, HR 78 bpm, RR 16, SpO2 97% on room air, temp 37.1 C.",
    "Labs: HbA1c 7.8%, creatinine 1.2 mg/dL, potassium 4.1 mmol/L, WBC 8.4, Hgb 12.9.",
    "Reports pain 6/10, worse at 14:30 after ambulation.",
    "CT chest without contrast showed no acute cardiopulmonary process.",
    "Insulin glargine 20 units qhs; hold if glucose < 70 mg/dL.",
    "Weight 82 kg, height 175 cm, BMI 26.8.",
    "GCS 15, alert and oriented x3, no focal deficits.",
    "Echo: ejection fraction 45% with mild mitral regurgitation.",
    "COPD with acute exacerbation (J44.1); started prednisone 40 mg x 5 days.",
    "Plan: repeat BMP in 1 week, titrate furosemide 20 mg as needed.",
    "Troponin 0.02 ng/mL at 08:15 and 0.03 ng/mL at 11:15.",
    "Patient denies chest pain, dyspnea, or palpitations.",
    "Continue apixaban 5 mg BID for atrial fibrillation (I48.91).",
    "UA negative for nitrites; started nitrofurantoin 100 mg BID x 5 days.",
    "INR 2.4 on warfarin 5 mg daily; goal 2-3.",
    "Received ceftriaxone 1 g IV q24h for community-acquired pneumonia (J18.9).",
    "Follow up in 3 months with repeat HbA1c and lipid panel.",
    "Sodium 138 mmol/L, chloride 101, CO2 24, BUN 18, glucose 142.",
    "The 67-year-old was counselled on diet and exercise.",
    "MRI brain: no acute infarct; chronic small vessel ischemic changes.",
    "Albuterol 2 puffs q4h PRN wheeze; tiotropium 18 mcg daily.",
    "Fracture of left femoral neck (S72.002A), NWB, PT/OT consulted.",
    "Oxycodone 5 mg PO q6h PRN severe pain, acetaminophen 1 g q8h.",
)


def _phone(rng: random.Random) -> str:
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


def _date(rng: random.Random) -> str:
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


def _ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always completes a Luhn number")


def _card(rng: random.Random) -> str:
    digits = _luhn_complete(rng.choice(["4", "51", "55"]), 16, rng)
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


def _iban(rng: random.Random) -> str:
    bban = "".join(str(rng.randint(0, 9)) for _ in range(18))
    numeric = "".join(str(int(c, 36)) for c in bban + "DE00")
    check = 98 - int(numeric) % 97
    raw = f"DE{check:02d}{bban}"
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def _vin(rng: random.Random) -> str:
    from tutela.anonymize.recognizers import vin_valid

    while True:
        chars = [rng.choice(_VIN_CHARS) for _ in range(17)]
        for check in "0123456789X":
            chars[8] = check
            vin = "".join(chars)
            if vin_valid(vin):
                return vin


def _upper(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(n))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return "2001:db8:" + ":".join(f"{rng.randint(0, 65535):x}" for _ in range(6))
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


@dataclass
class _Person:
    first: str
    last: str


Filler = Callable[[random.Random, _Person], tuple[str, PiiLabel | None]]


def _fillers() -> dict[str, Filler]:
    L = PiiLabel
    return {
        "FULL": lambda r, p: (f"{p.first} {p.last}", L.PERSON),
        "FIRST": lambda r, p: (p.first, L.PERSON),
        "LAST": lambda r, p: (p.last, L.PERSON),
        "OTHER": lambda r, p: (f"{r.choice(FIRST_NAMES)} {r.choice(LAST_NAMES)}", L.PERSON),
        "DOCTOR": lambda r, p: (r.choice(LAST_NAMES), L.PERSON),
        "DATE": lambda r, p: (_date(r), L.DATE),
        "AGE": lambda r, p: (str(r.randint(90, 104)), L.AGE),
        "PHONE": lambda r, p: (_phone(r), L.PHONE),
        "EMAIL": lambda r, p: (
            f"{p.first.lower()}.{p.last.lower().replace(chr(39), '')}"
            f"{r.randint(1, 99)}@{r.choice(['example.com', 'mail.example.org', 'example.net'])}",
            L.EMAIL,
        ),
        "SSN": lambda r, p: (_ssn(r), L.SSN),
        "MRN": lambda r, p: (r.choice(["", "", "A", "MR"]) + _digits(r, r.randint(6, 9)), L.MRN),
        "PLAN": lambda r, p: (_upper(r, 3) + _digits(r, 9), L.HEALTH_PLAN),
        "ACCOUNT": lambda r, p: (_digits(r, r.randint(8, 12)), L.ACCOUNT),
        "LICENSE": lambda r, p: (_upper(r, 1) + _digits(r, 8), L.LICENSE),
        "VIN": lambda r, p: (_vin(r), L.VEHICLE),
        "PLATE": lambda r, p: (f"{_digits(r, 1)}{_upper(r, 3)}-{_digits(r, 3)}", L.VEHICLE),
        "DEVICE": lambda r, p: (f"{_upper(r, 2)}{_digits(r, 6)}{_upper(r, 1)}", L.DEVICE),
        "URL": lambda r, p: (
            r.choice(
                [
                    f"https://portal.example.org/patients/{_digits(r, 6)}",
                    f"www.{p.last.lower().replace(chr(39), '')}-family.example.com",
                    f"http://mychart.example.net/u/{p.first.lower()}{_digits(r, 3)}",
                ]
            ),
            L.URL,
        ),
        "IP": lambda r, p: (_ip(r), L.IP_ADDRESS),
        "CARD": lambda r, p: (_card(r), L.CREDIT_CARD),
        "IBAN": lambda r, p: (_iban(r), L.IBAN),
        "STREET": lambda r, p: (
            f"{r.randint(1, 9999)} {r.choice(STREETS)} {r.choice(SUFFIXES)}"
            + (f", Apt {r.randint(1, 40)}{r.choice('ABCD')}" if r.random() < 0.3 else ""),
            L.ADDRESS,
        ),
        "HOSPITAL": lambda r, p: (
            f"{r.choice(HOSPITAL_PARTS)} {r.choice(HOSPITAL_KINDS)}",
            L.ORGANIZATION,
        ),
    }


TEMPLATES = (
    "Patient: {FULL}    DOB: {DATE}    MRN: {MRN}",
    "Name: {FULL}\nDate of service: {DATE}",
    "{FULL} is a {AGE}-year-old woman admitted from home.",
    "{FULL} presented to the emergency department with shortness of breath.",
    "Seen at {HOSPITAL} on {DATE} by Dr. {DOCTOR}.",
    "Transferred from {HOSPITAL} for further management.",
    "Home address: {STREET}, {CITY}",
    "Lives at {STREET} in {CITY} with her husband {OTHER}.",
    "Contact phone: {PHONE}. Fax: {PHONE}.",
    "Please call the patient at {PHONE} or e-mail {EMAIL}.",
    "SSN: {SSN}",
    "Social security number {SSN} verified at registration.",
    "Insurance: member ID {PLAN}; Medicare MBI on file.",
    "Billing account number {ACCOUNT}.",
    "Driver's license number {LICENSE} was copied for the chart.",
    "Vehicle involved in the collision: VIN {VIN}, license plate {PLATE}.",
    "Pacemaker serial number {DEVICE} interrogated today.",
    "Patient portal: {URL}",
    "Portal login recorded from IP {IP} on {DATE}.",
    "Card on file {CARD}; refund to IBAN {IBAN}.",
    "Emergency contact: daughter {OTHER}, {PHONE}.",
    "Mrs. {LAST} reports improved appetite since {DATE}.",
    "Discussed the plan with {FIRST} and her son {OTHER} at the bedside.",
    "Follow-up with Dr. {DOCTOR} at {HOSPITAL} on {DATE}.",
    "Pt is {AGE} yo, lives alone; neighbour {OTHER} checks in daily.",
    "Records requested from {HOSPITAL}, {CITY}, MRN {MRN}.",
)

HELDOUT_TEMPLATES = (
    "Pt {FULL} (DOB {DATE}) arrived by ambulance.",
    "Spoke with {OTHER}, the patient's niece, who can be reached on {PHONE}.",
    "Chart number {MRN}; prior encounter {DATE}.",
    "She was born on {DATE} and moved here from {CITY} last year.",
    "Correspondence to {STREET}, {CITY}.",
    "Guardian {OTHER} signed consent on {DATE}.",
    "Her email address is {EMAIL} and her mobile is {PHONE}.",
    "Subscriber ID {PLAN}, group number {ACCOUNT}.",
    "{FIRST} {LAST} declined the influenza vaccine.",
    "Implant serial {DEVICE} recorded in the registry.",
    "Admitted via {HOSPITAL} after a fall at home.",
    "Mr. {LAST} was discharged on {DATE} in stable condition.",
    "Accessed results at {URL} from {IP}.",
    "SS# {SSN}; DL# {LICENSE}.",
    "At {AGE} years old she still walks daily.",
)
"""Phrasings not used while writing the recognisers, for an out-of-template check."""

_SLOT = re.compile(r"\{([A-Z]+)\}")


def _render(template: str, rng: random.Random, person: _Person) -> tuple[str, list[Span]]:
    fillers = _fillers()
    parts: list[str] = []
    spans: list[Span] = []
    pos = 0
    length = 0
    for m in _SLOT.finditer(template):
        literal = template[pos : m.start()]
        parts.append(literal)
        length += len(literal)
        key = m.group(1)
        if key == "CITY":
            city, state, zipcode = rng.choice(CITIES)
            pieces: list[tuple[str, PiiLabel | None]] = [
                (city, PiiLabel.LOCATION),
                (", ", None),
                (state, None),
                (" ", None),
                (zipcode, PiiLabel.ZIP),
            ]
        else:
            pieces = [fillers[key](rng, person)]
        for value, label in pieces:
            if label is not None:
                spans.append(Span(length, length + len(value), label, 1.0, "gold"))
            parts.append(value)
            length += len(value)
        pos = m.end()
    parts.append(template[pos:])
    return "".join(parts), spans


def generate_note(
    rng: random.Random,
    *,
    pii_sentences: int = 4,
    clinical: int = 3,
    templates: tuple[str, ...] = TEMPLATES,
) -> LabelledNote:
    """One note mixing ``pii_sentences`` identifier-bearing lines and clinical lines."""
    person = _Person(rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
    lines: list[tuple[str, list[Span]]] = []
    for template in rng.sample(templates, pii_sentences):
        lines.append(_render(template, rng, person))
    for sentence in rng.sample(CLINICAL_SENTENCES, clinical):
        lines.append((sentence, []))
    rng.shuffle(lines)
    text_parts: list[str] = []
    spans: list[Span] = []
    offset = 0
    for text, line_spans in lines:
        spans.extend(s.shifted(offset) for s in line_spans)
        text_parts.append(text)
        offset += len(text) + 1
    return LabelledNote("\n".join(text_parts), tuple(spans))


def generate_corpus(n: int, seed: int = 0, *, heldout: bool = False) -> list[LabelledNote]:
    """``n`` labelled notes, identical for the same ``seed``.

    Args:
        n: number of notes.
        seed: RNG seed.
        heldout: use :data:`HELDOUT_TEMPLATES` (phrasings the recognisers were not written
            against) instead of :data:`TEMPLATES`.
    """
    if n < 0:
        raise ValueError("n must be non-negative")
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    templates = HELDOUT_TEMPLATES if heldout else TEMPLATES
    return [generate_note(rng, templates=templates) for _ in range(n)]


def clinical_only_notes(n: int, seed: int = 0) -> list[str]:
    """``n`` notes made only of clinical sentences (no identifiers at all)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    return ["\n".join(rng.sample(CLINICAL_SENTENCES, 6)) for _ in range(n)]


@dataclass(frozen=True)
class DetectionScores:
    """Identifier-level precision, recall and F2 of a detector on labelled notes.

    A gold span counts as found when at least ``min_coverage`` of its characters are
    covered by predictions of any label (what matters for de-identification is that the
    characters are removed); a prediction counts as correct when at least ``min_coverage``
    of its characters fall inside gold spans.
    """

    precision: float
    recall: float
    f2: float
    per_label_recall: dict[PiiLabel, float]
    gold: int
    predicted: int


def _covered(ranges: list[tuple[int, int]], length: int) -> list[bool]:
    mask = [False] * length
    for a, b in ranges:
        for i in range(max(0, a), min(length, b)):
            mask[i] = True
    return mask


def score_detections(
    notes: list[LabelledNote],
    predictions: list[list[tuple[int, int]]],
    min_coverage: float = 0.5,
) -> DetectionScores:
    """Score predicted character ranges against the notes' gold spans (see the class)."""
    if len(notes) != len(predictions):
        raise ValueError("one prediction list per note is required")
    found: dict[PiiLabel, list[int]] = {}
    correct = n_pred = 0
    for note, pred in zip(notes, predictions, strict=True):
        pred_mask = _covered(pred, len(note.text))
        gold_mask = _covered([(s.start, s.end) for s in note.spans], len(note.text))
        for span in note.spans:
            hit = sum(pred_mask[span.start : span.end]) >= min_coverage * len(span)
            found.setdefault(span.label, [0, 0])
            found[span.label][0] += int(hit)
            found[span.label][1] += 1
        for a, b in pred:
            n_pred += 1
            correct += int(sum(gold_mask[a:b]) >= min_coverage * (b - a))
    n_gold = sum(v[1] for v in found.values())
    recall = sum(v[0] for v in found.values()) / n_gold if n_gold else 1.0
    precision = correct / n_pred if n_pred else 1.0
    f2 = 5 * precision * recall / (4 * precision + recall) if precision + recall else 0.0
    return DetectionScores(
        precision=precision,
        recall=recall,
        f2=f2,
        per_label_recall={k: v[0] / v[1] for k, v in sorted(found.items())},
        gold=n_gold,
        predicted=n_pred,
    )


DIAGNOSES = (
    "E11.9 type 2 diabetes",
    "I10 hypertension",
    "J45.909 asthma",
    "I48.91 atrial fibrillation",
    "N18.3 chronic kidney disease",
    "J44.1 COPD exacerbation",
    "F32.9 depression",
    "C50.919 breast cancer",
)
RACES = ("White", "Black", "Asian", "Hispanic", "Other")


def generate_patients(n: int, seed: int = 0) -> pd.DataFrame:
    """A synthetic hospital table with direct identifiers, quasi-identifiers, a sensitive
    diagnosis and a free-text note column (identical for the same ``seed``)."""

    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    rows: list[dict[str, object]] = []
    for i in range(n):
        person = _Person(rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
        city, state, zipcode = rng.choice(CITIES)
        if rng.random() < 0.03:
            zipcode = rng.choice(["03601", "05901", "69201", "89012"])  # restricted ZIP3 areas
        age = min(104, max(18, int(rng.gauss(55, 20))))
        birth = 2025 - age
        rows.append(
            {
                "patient_id": f"P{100000 + i}",
                "name": f"{person.first} {person.last}",
                "ssn": _ssn(rng),
                "mrn": _digits(rng, 8),
                "phone": _phone(rng),
                "email": f"{person.first.lower()}{i}@example.org",
                "address": f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}",
                "city": city,
                "state": state,
                "zip": zipcode,
                "dob": f"{birth}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "age": age,
                "sex": rng.choice(["F", "M"]),
                "race": rng.choice(RACES),
                "admit_date": _date(rng)
                if rng.random() < 0.5
                else f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                "diagnosis": rng.choice(DIAGNOSES),
                "notes": _render(rng.choice(TEMPLATES), rng, person)[0]
                + " "
                + rng.choice(CLINICAL_SENTENCES),
            }
        )
    return pd.DataFrame(rows)
