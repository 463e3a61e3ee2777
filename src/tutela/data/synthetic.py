"""A seeded, vectorised synthetic EHR generator for scale tests and anonymisation work.

Risk model (documented so results can be checked): the outcome is a 5-year cardiovascular
event drawn as ``Bernoulli(sigmoid(logit))`` with::

    logit = -3.4 + 0.055*(age-50) + 0.45*male + 0.045*(bmi-27) + 0.018*(systolic_bp-130)
            + 0.009*(glucose-100) + 0.65*smoker + 0.55*diabetes + 0.35*hypertension
            + 0.60*ckd + hospital_effect

``hospital_effect`` is a small per-hospital offset (unmeasured case-mix), so sites differ
in base rate as well as in the distribution of their patients (age, smoking, obesity
shift per hospital) and in size (a Zipf-like split). Direct identifiers (name, SSN, MRN,
phone, email) are random and carry no signal; they exist to exercise anonymisation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MODEL_FEATURES: tuple[str, ...] = (
    "age",
    "male",
    "bmi",
    "systolic_bp",
    "glucose",
    "smoker",
    "diabetes",
    "hypertension",
    "ckd",
)

_FIRST = np.array(
    [
        "James",
        "Mary",
        "John",
        "Patricia",
        "Robert",
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
        "Carlos",
        "Maria",
        "Wei",
        "Fatima",
        "Arjun",
        "Aisha",
        "Kenji",
        "Yuki",
        "Olga",
        "Ivan",
        "Amara",
        "Kwame",
        "Sofia",
        "Luca",
        "Noah",
        "Emma",
        "Liam",
        "Olivia",
        "Mateo",
        "Chloe",
        "Omar",
        "Leila",
    ]
)
_LAST = np.array(
    [
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
        "Chen",
        "Wang",
        "Kim",
        "Patel",
        "Singh",
        "Nguyen",
        "Okafor",
        "Mensah",
        "Rossi",
        "Muller",
        "Dubois",
        "Ivanova",
        "Tanaka",
        "Sato",
        "Cohen",
        "Murphy",
        "Kowalski",
    ]
)
_ZIP3 = np.array(
    [
        "021",
        "100",
        "112",
        "191",
        "303",
        "331",
        "441",
        "481",
        "606",
        "752",
        "770",
        "802",
        "850",
        "891",
        "900",
        "941",
        "972",
        "981",
        "036",
        "059",
        "102",
        "203",
        "556",
        "692",
        "790",
        "821",
    ]
)


def _hospital_sizes(n: int, hospitals: int, rng: np.random.Generator) -> np.ndarray:
    weights = 1.0 / np.arange(1, hospitals + 1) ** 0.8
    rng.shuffle(weights)
    return rng.choice(hospitals, size=n, p=weights / weights.sum())


def _digits(values: np.ndarray, width: int) -> pd.Series:
    return pd.Series(values).astype(str).str.zfill(width)


def generate_ehr(n: int, *, hospitals: int = 8, seed: int = 0) -> pd.DataFrame:
    """Generate ``n`` synthetic patients spread over ``hospitals`` hospitals.

    Args:
        n: number of patients (vectorised; millions are fine).
        hospitals: number of hospitals (sites), each with its own case mix and size.
        seed: seed of the (non-cryptographic) generator; same seed, same table.

    Returns:
        A DataFrame with identifiers (``name``, ``ssn``, ``mrn``, ``phone``, ``email``),
        quasi-identifiers (``age``, ``sex``, ``zip``, ``admission_date``), clinical columns,
        ``hospital`` (0-based site id) and the 0/1 ``outcome``.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    if hospitals <= 0:
        raise ValueError("hospitals must be positive")
    rng = np.random.default_rng(seed)
    site = _hospital_sizes(n, hospitals, rng)
    # Per-hospital case mix.
    age_shift = rng.normal(0.0, 6.0, hospitals)[site]
    smoke_rate = rng.uniform(0.08, 0.35, hospitals)[site]
    bmi_shift = rng.normal(0.0, 1.8, hospitals)[site]
    hospital_effect = rng.normal(0.0, 0.25, hospitals)[site]

    age = np.clip(rng.normal(55.0, 15.0, n) + age_shift, 18, 100).round().astype(np.int64)
    male = (rng.random(n) < 0.48).astype(np.int64)
    bmi = np.clip(rng.normal(27.5, 5.0, n) + bmi_shift, 15, 60).round(1)
    smoker = (rng.random(n) < smoke_rate).astype(np.int64)
    diabetes = (rng.random(n) < 0.05 + 0.004 * np.maximum(age - 30, 0) + 0.01 * (bmi > 30)).astype(
        np.int64
    )
    hypertension = (rng.random(n) < 0.1 + 0.006 * np.maximum(age - 30, 0)).astype(np.int64)
    ckd = (rng.random(n) < 0.02 + 0.002 * np.maximum(age - 40, 0) + 0.05 * diabetes).astype(
        np.int64
    )
    systolic = np.clip(
        rng.normal(122 + 0.35 * (age - 50) + 12 * hypertension, 14, n), 80, 230
    ).round()
    glucose = np.clip(rng.normal(95 + 45 * diabetes + 0.2 * (bmi - 27), 15, n), 50, 400).round()

    logit = (
        -3.4
        + 0.055 * (age - 50)
        + 0.45 * male
        + 0.045 * (bmi - 27)
        + 0.018 * (systolic - 130)
        + 0.009 * (glucose - 100)
        + 0.65 * smoker
        + 0.55 * diabetes
        + 0.35 * hypertension
        + 0.60 * ckd
        + hospital_effect
    )
    outcome = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    first = _FIRST[rng.integers(0, len(_FIRST), n)]
    last = _LAST[rng.integers(0, len(_LAST), n)]
    name = pd.Series(first) + " " + pd.Series(last)
    area = rng.integers(1, 900, n)
    area = np.where(area == 666, 667, area)
    ssn = _digits(area, 3) + "-" + _digits(rng.integers(1, 100, n), 2) + "-"
    ssn = ssn + _digits(rng.integers(1, 10000, n), 4)
    # Unique MRNs: an affine map of a permutation, invertible mod 10^8 (7919 is prime).
    mrn_numbers = (rng.permutation(n).astype(np.int64) * 7919 + int(rng.integers(0, 10**8))) % 10**8
    mrn = "MRN" + _digits(mrn_numbers, 8)
    phone = "(" + _digits(rng.integers(201, 990, n), 3) + ") 555-"
    phone = phone + _digits(rng.integers(0, 10000, n), 4)
    email = (
        pd.Series(first).str.lower()
        + "."
        + pd.Series(last).str.lower()
        + _digits(rng.integers(0, 1000, n), 3)
        + "@example.org"
    )
    zip_code = pd.Series(
        _ZIP3[(rng.integers(0, len(_ZIP3), hospitals)[site] + rng.integers(0, 3, n)) % len(_ZIP3)]
    )
    zip_code = zip_code + _digits(rng.integers(0, 100, n), 2)
    admission = np.datetime64("2018-01-01") + rng.integers(0, 6 * 365, n).astype("timedelta64[D]")

    return pd.DataFrame(
        {
            "name": name,
            "ssn": ssn,
            "mrn": mrn,
            "phone": phone,
            "email": email,
            "age": age,
            "sex": np.where(male == 1, "M", "F"),
            "male": male,
            "zip": zip_code,
            "admission_date": pd.to_datetime(admission),
            "bmi": bmi,
            "systolic_bp": systolic,
            "glucose": glucose,
            "smoker": smoker,
            "diabetes": diabetes,
            "hypertension": hypertension,
            "ckd": ckd,
            "hospital": site.astype(np.int64),
            "outcome": outcome,
        }
    )
