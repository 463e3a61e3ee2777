"""Slot fillers of the blind evaluation set (see :mod:`.blind` for the labelling rules).

A filler returns pieces: labelled identifier characters and the unlabelled words around
them (titles, credentials, relation words, masks), so that a gold span never takes in a
label word or a trailing period. What a patient's note repeats (name, birth date, record
number, town, social security number) is drawn once and kept on the :class:`Patient`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from tutela.anonymize.eval import blind_ids as ids
from tutela.anonymize.eval.blind_values import (
    CLINICIAN_FIRST,
    CLINICIAN_LAST,
    COMMUNITIES,
    CREDENTIALS,
    ORIGINS,
    STATES,
    Community,
    age_words,
)
from tutela.anonymize.eval.render import Filler, Patient, Piece, random_vin
from tutela.anonymize.spans import PiiLabel

L = PiiLabel
NICKNAMES = ("Sonny", "Bubba", "Junior", "Tita", "Nene", "Dee Dee", "Pancho", "Boo", "Cha")
FEMALE_RELATIONS = ("dtr", "wife", "granddaughter", "niece", "sister", "mother", "hija")
MALE_RELATIONS = ("son", "husband", "grandson", "nephew", "brother-in-law", "caregiver", "hijo")


def new_patient(rng: random.Random) -> Patient:
    """A patient from one of the communities, with the values a note repeats."""
    key = rng.choice(sorted(COMMUNITIES))
    c = COMMUNITIES[key]
    female = rng.random() < 0.5
    first = rng.choice(c.female if female else c.male)
    last = rng.choice(c.last)
    city, state, zip_code = rng.choice(c.cities)
    dob = ids.random_date(rng, 1926, 2012)
    area, group, serial = ids.ssn_parts(rng)
    extra = {
        "c": key,
        "mi": rng.choice("ABCDEFGHJKLMNPRSTW"),
        "dob": dob.isoformat(),
        "mrn": ids.mrn(rng),
        "ssn": f"{area}-{group}-{serial}",
        "city": city,
        "state": state,
        "zip": zip_code,
        "area": rng.choice(c.area_codes),
        "job": rng.choice(c.jobs),
    }
    street = rng.choice(c.streets)
    if c.spanish or street.endswith(("Box", "Lot")):
        extra["street"] = f"{street} {rng.randint(1, 240)}"
    else:
        extra["street"] = f"{rng.randint(2, 4890)} {street}"
    return Patient(first, last, female, extra)


def _c(p: Patient) -> Community:
    return COMMUNITIES[p.extra["c"]]


def _one(label: PiiLabel | None, value: str) -> list[Piece]:
    return [(value, label)]


def pt_name(rng: random.Random, p: Patient) -> list[Piece]:
    """The patient's name in the forms the network writes it."""
    mi = p.extra["mi"]
    title = "Ms. " if p.female else "Mr. "
    forms: list[list[Piece]] = [
        [(f"{p.first} {p.last}", L.PERSON)],
        [(f"{p.last.upper()},{p.first.upper()} {mi}", L.PERSON)],
        [(f"{p.first} {mi}. {p.last}", L.PERSON)],
        [(title, None), (p.last, L.PERSON)],
        [(f"{p.last}, {p.first}", L.PERSON)],
        [(f"{p.first[0]}. {p.last}", L.PERSON)],
        [(p.first, L.PERSON)],
    ]
    return rng.choice(forms)


def pt_cprs(rng: random.Random, p: Patient) -> list[Piece]:
    """``LAST,FIRST M`` with the CPRS last-name initial and last four of the SSN."""
    name = f"{p.last.upper()},{p.first.upper()} {p.extra['mi']}"
    last4 = p.extra["ssn"][-4:]
    if rng.random() < 0.5:
        return [(name, L.PERSON), (f" ({p.last[0].upper()}", None), (last4, L.SSN), (")", None)]
    return [(name, L.PERSON)]


def pt_initials(rng: random.Random, p: Patient) -> list[Piece]:
    """Initials; a trailing period stays outside the span."""
    if rng.random() < 0.5:
        return [(f"{p.first[0]}.{p.last[0]}", L.PERSON), (".", None)]
    return [(f"{p.first[0]}{p.extra['mi']}{p.last[0]}", L.PERSON)]


def relative(rng: random.Random, p: Patient) -> list[Piece]:
    """A relation word (unlabelled) and the relative's name."""
    c = _c(p)
    if rng.random() < 0.5:
        rel, first = rng.choice(FEMALE_RELATIONS), rng.choice(c.female)
    else:
        rel, first = rng.choice(MALE_RELATIONS), rng.choice(c.male)
    name = rng.choice((first, f"{first} {p.last}", f"{first} {rng.choice(c.last)}"))
    if rng.random() < 0.15:
        name = rng.choice(NICKNAMES)
    return [(f"{rel} ", None), (name, L.PERSON)]


def relative_name(rng: random.Random, p: Patient) -> list[Piece]:
    """A relative's name only."""
    c = _c(p)
    first = rng.choice((*c.female, *c.male))
    return _one(L.PERSON, rng.choice((first, f"{first} {rng.choice(c.last)}")))


def clinician(rng: random.Random, _p: Patient) -> list[Piece]:
    """A clinician with a title or credentials (both unlabelled)."""
    first, last = rng.choice(CLINICIAN_FIRST), rng.choice(CLINICIAN_LAST)
    cred = rng.choice(CREDENTIALS)
    forms: list[list[Piece]] = [
        [("Dr. ", None), (f"{first} {last}", L.PERSON)],
        [(f"{first} {last}", L.PERSON), (f", {cred}", None)],
        [(f"{last.upper()},{first.upper()}", L.PERSON)],
        [(f"{first[0]}. {last}", L.PERSON), (f" {cred}", None)],
        [("Dr ", None), (last, L.PERSON)],
        [(f"{first} {rng.choice('ABCDEJKLMRT')} {last}", L.PERSON), (f" {cred}", None)],
    ]
    return rng.choice(forms)


def clinician_sig(rng: random.Random, _p: Patient) -> list[Piece]:
    """A CPRS electronic signature name (``REUBEN T BEGAYE``)."""
    first, last = rng.choice(CLINICIAN_FIRST), rng.choice(CLINICIAN_LAST)
    return _one(L.PERSON, f"{first.upper()} {rng.choice('ABCDEJKLMRT')} {last.upper()}")


def _recent(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(L.DATE, ids.date_text(rng, ids.random_date(rng, 2019, 2026), spanish=_c(p).spanish))


def _dob(rng: random.Random, p: Patient) -> list[Piece]:
    from datetime import date

    return _one(L.DATE, ids.date_text(rng, date.fromisoformat(p.extra["dob"]), spanish=False))


def _age(rng: random.Random, _p: Patient) -> list[Piece]:
    age = rng.randint(90, 104)
    forms: list[list[Piece]] = [
        [(str(age), L.AGE), (" y/o", None)],
        [(str(age), L.AGE), ("yo", None)],
        [(str(age), L.AGE), ("-year-old", None)],
        [("age ", None), (str(age), L.AGE)],
        [(age_words(age), L.AGE), ("-year-old", None)],
        [(str(age), L.AGE), (" yrs", None)],
        [(str(age), L.AGE), (" YO", None)],
    ]
    return rng.choice(forms)


def _young_age(rng: random.Random, _p: Patient) -> list[Piece]:
    return _one(None, str(rng.randint(18, 88)))


def _city(_rng: random.Random, p: Patient) -> list[Piece]:
    return _one(L.LOCATION, p.extra["city"])


def _state(rng: random.Random, p: Patient) -> list[Piece]:
    st = p.extra["state"]
    return _one(L.LOCATION, st if rng.random() < 0.6 else STATES[st])


def _city_state(rng: random.Random, p: Patient) -> list[Piece]:
    st = p.extra["state"]
    return [(p.extra["city"], L.LOCATION), (", ", None), (st, L.LOCATION)]


def _full_address(rng: random.Random, p: Patient) -> list[Piece]:
    street = p.extra["street"]
    zip_code = p.extra["zip"]
    if rng.random() < 0.3:
        zip_code += f"-{ids.digits(rng, 4)}"
    if rng.random() < 0.2:
        street = f"PO Box {rng.randint(10, 9999)}"
    sep = rng.choice((", ", " "))
    return [
        (street, L.ADDRESS),
        (sep, None),
        (p.extra["city"], L.LOCATION),
        (", ", None),
        (p.extra["state"], L.LOCATION),
        ("  " if rng.random() < 0.3 else " ", None),
        (zip_code, L.ZIP),
    ]


def _phone(rng: random.Random, p: Patient) -> list[Piece]:
    number = ids.phone(rng, p.extra["area"])
    if rng.random() < 0.1:
        return [(number, L.PHONE), (f" x{rng.randint(100, 4999)}", None)]
    return _one(L.PHONE, number)


def _ssn(rng: random.Random, p: Patient) -> list[Piece]:
    """Full SSNs labelled whole; masked ones on the digits shown only."""
    area, group, serial = p.extra["ssn"].split("-")
    forms: list[list[Piece]] = [
        [(f"{area}-{group}-{serial}", L.SSN)],
        [(f"{area} {group} {serial}", L.SSN)],
        [(f"{area}{group}{serial}", L.SSN)],
        [("***-**-", None), (serial, L.SSN)],
        [("XXX-XX-", None), (serial, L.SSN)],
        [("last four ", None), (serial, L.SSN)],
        [("xxx-xx-", None), (serial, L.SSN)],
    ]
    return rng.choice(forms)


def _dl(rng: random.Random, p: Patient) -> list[Piece]:
    st = p.extra["state"]
    number = ids.drivers_license(rng, st)
    return [
        (st, L.LOCATION),
        (rng.choice((" DL ", " driver's lic ", " OL# ")), None),
        (number, L.LICENSE),
    ]


def _job(_rng: random.Random, p: Patient) -> list[Piece]:
    return _one(L.PROFESSION, p.extra["job"])


def _origin(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(L.LOCATION, rng.choice(ORIGINS[p.extra["c"]]))


def _email(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(L.EMAIL, ids.email(rng, p.first, p.last))


def _doc_email(rng: random.Random, _p: Patient) -> list[Piece]:
    return _one(L.EMAIL, ids.email(rng, rng.choice(CLINICIAN_FIRST), rng.choice(CLINICIAN_LAST)))


def _url(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(L.URL, ids.url(rng, p.first, p.last))


def _pick(attr: str, label: PiiLabel) -> Filler:
    def fill(rng: random.Random, p: Patient) -> Sequence[Piece]:
        return _one(label, rng.choice(getattr(_c(p), attr)))

    return fill


def _gen(make: Callable[[random.Random], str], label: PiiLabel) -> Filler:
    def fill(rng: random.Random, _p: Patient) -> Sequence[Piece]:
        return _one(label, make(rng))

    return fill


def _lower(filler: Filler) -> Filler:
    """The same pieces in lower case (patients' texts)."""

    def fill(rng: random.Random, p: Patient) -> Sequence[Piece]:
        return [(v.lower(), label) for v, label in filler(rng, p)]

    return fill


def _id_block(rng: random.Random, p: Patient) -> list[Piece]:
    """A patient identification block in the community's language of record."""
    name = f"{p.first} {p.last}"
    dob = _dob(rng, p)[0][0]
    if p.extra["c"] == "boricua":
        lead = ("Nombre del paciente: ", "Fecha de nacimiento: ", "Num. de record: ")
    elif p.extra["c"] == "guam":
        lead = ("Na'an pasiente: ", "Fecha ni mafanagu: ", "Numerun rekot: ")
    else:
        lead = ("Patient: ", "DOB: ", "Chart: ")
    return [
        (lead[0], None),
        (name, L.PERSON),
        ("   " + lead[1], None),
        (dob, L.DATE),
        ("   " + lead[2], None),
        (p.extra["mrn"], L.MRN),
    ]


def _greeting(rng: random.Random, p: Patient) -> list[Piece]:
    words = {"guam": "hafa adai", "boricua": "saludos", "haitian": "bonjou", "somali": "salaan"}
    return _one(None, words.get(p.extra["c"], rng.choice(("hi", "hey", "hello"))))


_JAILS = {
    "guam": "Department of Corrections Hagatna",
    "boricua": "Complejo Correccional de Ponce",
}


def _jail(rng: random.Random, p: Patient) -> list[Piece]:
    county = rng.choice(_c(p).counties)
    if county.endswith(("County", "Parish")):
        return _one(L.ORGANIZATION, f"{county} {rng.choice(('Detention Center', 'Jail'))}")
    return _one(L.ORGANIZATION, _JAILS.get(p.extra["c"], "Territorial Correctional Facility"))


def _portal_from(rng: random.Random, p: Patient) -> list[Piece]:
    """A portal message's first line, in Spanish for Puerto Rican patients."""
    when = _recent(rng, p)[0][0]
    if p.extra["c"] == "boricua":
        return [("Mensaje del portal, ", None), (when, L.DATE), (". De: ", None), *pt_name(rng, p)]
    return [("Portal message, ", None), (when, L.DATE), (". From: ", None), *pt_name(rng, p)]


def _appointment(rng: random.Random, p: Patient) -> list[Piece]:
    """An appointment reminder, in Spanish for Puerto Rican patients."""
    when = _recent(rng, p)[0][0]
    place = rng.choice(_c(p).clinics)
    number = ids.phone(rng, p.extra["area"])
    if p.extra["c"] == "boricua":
        words = ("Paciente ", ", su cita es el ", " en ", ". Llame al ", ".")
    else:
        words = ("Dear ", ", your appointment is on ", " at ", ". Call ", ".")
    return [
        (words[0], None),
        (p.last, L.PERSON),
        (words[1], None),
        (when, L.DATE),
        (words[2], None),
        (place, L.ORGANIZATION),
        (words[3], None),
        (number, L.PHONE),
        (words[4], None),
    ]


FILLERS: dict[str, Filler] = {
    "PT": pt_name,
    "PT_CPRS": pt_cprs,
    "PT_FIRST": lambda _r, p: _one(L.PERSON, p.first),
    "PT_LAST": lambda _r, p: _one(L.PERSON, p.last),
    "PT_FIRST_LC": lambda _r, p: _one(L.PERSON, p.first.lower()),
    "PT_SPELLED": lambda _r, p: _one(L.PERSON, "-".join(c for c in p.last.upper() if c.isalpha())),
    "PT_NICK": lambda r, _p: _one(L.PERSON, r.choice(NICKNAMES)),
    "PT_INITIALS": pt_initials,
    "PT_HL7": lambda _r, p: _one(L.PERSON, f"{p.last.upper()}^{p.first.upper()}^{p.extra['mi']}"),
    "REL": relative,
    "REL_NAME": relative_name,
    "DOC": clinician,
    "DOC_SIG": clinician_sig,
    "DOC_NAME": lambda r, _p: _one(
        L.PERSON, f"{r.choice(CLINICIAN_FIRST)} {r.choice(CLINICIAN_LAST)}"
    ),
    "DATE": _recent,
    "DOB": _dob,
    "DATE_CPRS": lambda r, _p: _one(L.DATE, ids.cprs_stamp(r, ids.random_date(r, 2020, 2026))),
    "DATE_HL7": lambda r, _p: _one(L.DATE, ids.hl7_stamp(r, ids.random_date(r, 2020, 2026))),
    "DOB_HL7": lambda _r, p: _one(L.DATE, p.extra["dob"].replace("-", "")),
    "YEAR": lambda r, _p: _one(L.DATE, str(r.randint(1968, 2025))),
    "AGE": _age,
    "YOUNG_AGE": _young_age,
    "CHILD_AGE": lambda r, _p: _one(None, str(r.randint(5, 17))),
    "CITY": _city,
    "CITY_LC": _lower(_city),
    "STATE": _state,
    "CITY_ST": _city_state,
    "ZIP": lambda _r, p: _one(L.ZIP, p.extra["zip"]),
    "ADDR": lambda _r, p: _one(L.ADDRESS, p.extra["street"]),
    "FULL_ADDR": _full_address,
    "COUNTY": _pick("counties", L.LOCATION),
    "HOOD": _pick("hoods", L.LOCATION),
    "ORIGIN": _origin,
    "HOSP": _pick("hospitals", L.ORGANIZATION),
    "CLINIC": _pick("clinics", L.ORGANIZATION),
    "EMPLOYER": _pick("employers", L.ORGANIZATION),
    "SCHOOL": _pick("schools", L.ORGANIZATION),
    "JOB": _job,
    "REL_JOB": _pick("jobs", L.PROFESSION),
    "PHONE": _phone,
    "EMAIL": _email,
    "DOC_EMAIL": _doc_email,
    "URL": _url,
    "URL_SESSION": lambda r, p: _one(L.URL, ids.url(r, p.first, p.last, session=True)),
    "GREETING": _greeting,
    "IP": _gen(ids.ip_address, L.IP_ADDRESS),
    "SSN": _ssn,
    "SSN_FULL": lambda r, p: _one(L.SSN, p.extra["ssn"].replace("-", r.choice(("-", "")))),
    "SSN_L4": lambda _r, p: _one(L.SSN, p.extra["ssn"][-4:]),
    "MRN": lambda _r, p: _one(L.MRN, p.extra["mrn"]),
    "ACC": _gen(ids.accession, L.MRN),
    "PLAN": _gen(ids.health_plan, L.HEALTH_PLAN),
    "MBI": _gen(ids.mbi, L.HEALTH_PLAN),
    "ACCT": _gen(ids.account, L.ACCOUNT),
    "DL": _dl,
    "NPI": _gen(ids.npi, L.LICENSE),
    "DEA": lambda r, _p: _one(L.LICENSE, ids.dea(r, r.choice(CLINICIAN_LAST))),
    "LIC": _gen(ids.professional_license, L.LICENSE),
    "PLATE": _gen(ids.plate, L.VEHICLE),
    "VIN": _gen(random_vin, L.VEHICLE),
    "VEH": _gen(ids.vehicle, L.VEHICLE),
    "DEVSER": _gen(ids.device_serial, L.DEVICE),
    "PACER": _gen(lambda r: ids.device_serial(r, "cardiac"), L.DEVICE),
    "PUMP": _gen(lambda r: ids.device_serial(r, "pump"), L.DEVICE),
    "CGM": _gen(lambda r: ids.device_serial(r, "cgm"), L.DEVICE),
    "EAR": _gen(lambda r: ids.device_serial(r, "ear"), L.DEVICE),
    "IMPLANT": _gen(lambda r: ids.device_serial(r, "implant"), L.DEVICE),
    "UDI": _gen(ids.udi, L.DEVICE),
    "IMEI": _gen(ids.imei, L.DEVICE),
    "BIO": _gen(ids.biometric, L.BIOMETRIC),
    "BIO_FINGER": _gen(lambda r: ids.biometric(r, "finger"), L.BIOMETRIC),
    "BIO_VOICE": _gen(lambda r: ids.biometric(r, "voice"), L.BIOMETRIC),
    "BIO_EYE": _gen(lambda r: ids.biometric(r, "eye"), L.BIOMETRIC),
    "BIO_PALM": _gen(lambda r: ids.biometric(r, "palm"), L.BIOMETRIC),
    "JAIL": _jail,
    "PORTAL_FROM": _portal_from,
    "APPT": _appointment,
    "ID_BLOCK": _id_block,
}
"""Slot name to filler, for :data:`tutela.anonymize.eval.blind.STYLE`."""
