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

from tutela.anonymize import corpus_values as v
from tutela.anonymize.corpus_values import (
    CITIES,
    FIRST_NAMES,
    HOSPITAL_KINDS,
    HOSPITAL_PARTS,
    LAST_NAMES,
    STREETS,
    SUFFIXES,
)
from tutela.anonymize.scoring import DetectionScores, LabelledNote, score_detections
from tutela.anonymize.spans import PiiLabel, Span

__all__ = [
    "CLINICAL_SENTENCES",
    "HELDOUT_TEMPLATES",
    "TEMPLATES",
    "DetectionScores",
    "LabelledNote",
    "clinical_only_notes",
    "generate_corpus",
    "generate_note",
    "generate_patients",
    "score_detections",
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
        "DATE": lambda r, p: (v.date(r), L.DATE),
        "AGE": lambda r, p: (str(r.randint(90, 104)), L.AGE),
        "PHONE": lambda r, p: (v.phone(r), L.PHONE),
        "EMAIL": lambda r, p: (
            f"{p.first.lower()}.{p.last.lower().replace(chr(39), '')}"
            f"{r.randint(1, 99)}@{r.choice(['example.com', 'mail.example.org', 'example.net'])}",
            L.EMAIL,
        ),
        "SSN": lambda r, p: (v.ssn(r), L.SSN),
        "MRN": lambda r, p: (r.choice(["", "", "A", "MR"]) + v.digits(r, r.randint(6, 9)), L.MRN),
        "PLAN": lambda r, p: (v.upper(r, 3) + v.digits(r, 9), L.HEALTH_PLAN),
        "ACCOUNT": lambda r, p: (v.digits(r, r.randint(8, 12)), L.ACCOUNT),
        "LICENSE": lambda r, p: (v.upper(r, 1) + v.digits(r, 8), L.LICENSE),
        "VIN": lambda r, p: (v.vin(r), L.VEHICLE),
        "PLATE": lambda r, p: (f"{v.digits(r, 1)}{v.upper(r, 3)}-{v.digits(r, 3)}", L.VEHICLE),
        "DEVICE": lambda r, p: (f"{v.upper(r, 2)}{v.digits(r, 6)}{v.upper(r, 1)}", L.DEVICE),
        "URL": lambda r, p: (
            r.choice(
                [
                    f"https://portal.example.org/patients/{v.digits(r, 6)}",
                    f"www.{p.last.lower().replace(chr(39), '')}-family.example.com",
                    f"http://mychart.example.net/u/{p.first.lower()}{v.digits(r, 3)}",
                ]
            ),
            L.URL,
        ),
        "IP": lambda r, p: (v.ip(r), L.IP_ADDRESS),
        "CARD": lambda r, p: (v.card(r), L.CREDIT_CARD),
        "IBAN": lambda r, p: (v.iban(r), L.IBAN),
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
                "ssn": v.ssn(rng),
                "mrn": v.digits(rng, 8),
                "phone": v.phone(rng),
                "email": f"{person.first.lower()}{i}@example.org",
                "address": f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}",
                "city": city,
                "state": state,
                "zip": zipcode,
                "dob": f"{birth}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "age": age,
                "sex": rng.choice(["F", "M"]),
                "race": rng.choice(RACES),
                "admit_date": v.date(rng)
                if rng.random() < 0.5
                else f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                "diagnosis": rng.choice(DIAGNOSES),
                "notes": _render(rng.choice(TEMPLATES), rng, person)[0]
                + " "
                + rng.choice(CLINICAL_SENTENCES),
            }
        )
    return pd.DataFrame(rows)
