"""Identifier formats of the reserve set: national and provincial numbers, record, account,
licence, vehicle, device and biometric references, each with its check digit where the
real scheme has one.

Every generator returns the identifier alone; the fillers at the end (:data:`FILLERS`,
merged into :mod:`.reserve_values`' fillers) add unlabelled context words around it.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from tutela.anonymize.eval.render import Filler, Patient, Piece, random_vin
from tutela.anonymize.spans import PiiLabel
from tutela.anonymize.validators import luhn_valid, ssn_valid

L = PiiLabel

_UPPER = string.ascii_uppercase
_DIGITS = string.digits


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_DIGITS) for _ in range(n))


def _letters(rng: random.Random, n: int, alphabet: str = _UPPER) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def luhn_complete(partial: str) -> str:
    """``partial`` with the Luhn check digit appended."""
    for c in _DIGITS:
        if luhn_valid(partial + c):
            return partial + c
    raise AssertionError("unreachable: one digit always completes a Luhn number")


# -- national identity numbers (labelled SSN) -------------------------------------------


def sin(rng: random.Random) -> str:
    """Canadian social insurance number, nine digits with a Luhn check, spaced 3-3-3."""
    raw = luhn_complete(rng.choice("1234567") + _digits(rng, 7))
    return f"{raw[:3]} {raw[3:6]} {raw[6:]}"


def us_ssn(rng: random.Random) -> str:
    """A US social security number that keeps the allocation rules."""
    while True:
        area, group, serial = _digits(rng, 3), _digits(rng, 2), _digits(rng, 4)
        if ssn_valid(area, group, serial):
            return f"{area}-{group}-{serial}"


def emirates_id(rng: random.Random) -> str:
    """784-YYYY-NNNNNNN-C: country code, birth year, serial, Luhn check over all 15."""
    raw = luhn_complete("784" + str(rng.randint(1930, 1995)) + _digits(rng, 7))
    return f"{raw[:3]}-{raw[3:7]}-{raw[7:14]}-{raw[14]}"


def hkid(rng: random.Random) -> str:
    """Hong Kong identity card number, A123456(7), with its mod-11 check character."""
    letter = rng.choice("ACDEGHKMPRVZ")
    body = _digits(rng, 6)
    return f"{letter}{body}({hkid_check(letter, body)})"


def hkid_check(letter: str, body: str) -> str:
    """The check character of a one-letter HKID (a space counts 36, A-Z count 10-35)."""
    values = [36, ord(letter) - 55, *(int(c) for c in body)]
    total = sum(v * w for v, w in zip(values, range(9, 1, -1), strict=True))
    r = (11 - total % 11) % 11
    return "A" if r == 10 else str(r)


def mykad(rng: random.Random, female: bool) -> str:
    """Malaysian MyKad number YYMMDD-PB-###G (G odd for men, even for women)."""
    yy = rng.randint(25, 34)
    mm, dd = rng.randint(1, 12), rng.randint(1, 28)
    pb = rng.choice(("05", "06", "03", "13", "10"))
    last = rng.choice("02468" if female else "13579")
    return f"{yy:02d}{mm:02d}{dd:02d}-{pb}-{_digits(rng, 3)}{last}"


def cnic(rng: random.Random, female: bool) -> str:
    """Pakistani CNIC 5-7-1, the last digit even for women and odd for men."""
    last = rng.choice("02468" if female else "13579")
    return f"{rng.choice('34')}{_digits(rng, 4)}-{_digits(rng, 7)}-{last}"


def bd_nid(rng: random.Random) -> str:
    """Bangladeshi national ID, the older 17-digit form or the smart-card 10-digit form."""
    if rng.random() < 0.5:
        return (
            rng.choice(("1931", "1928", "1933")) + rng.choice(("91", "30", "47")) + _digits(rng, 11)
        )
    return rng.choice("123456789") + _digits(rng, 9)


def nin(rng: random.Random) -> str:
    """Nigerian national identification number, eleven digits."""
    return rng.choice("123456789") + _digits(rng, 10)


def ghana_card(rng: random.Random) -> str:
    """Ghana Card personal ID number, GHA-#########-#."""
    return f"GHA-{_digits(rng, 9)}-{rng.choice(_DIGITS)}"


def qatar_id(rng: random.Random) -> str:
    """Qatari ID: century digit, birth year, nationality code, serial (11 digits)."""
    return f"2{rng.randint(25, 34)}{rng.choice(('634', '586', '050', '356'))}{_digits(rng, 5)}"


def malta_id(rng: random.Random) -> str:
    """Maltese identity card number, digits and a letter (M, G, A, P, L, H, B or Z)."""
    return f"{rng.randint(1, 99999):d}{rng.choice('MGAPLHBZ')}{rng.choice(('', '', '29', '30'))}"


# -- health cards and plans (HEALTH_PLAN) -------------------------------------------------


def ohip(rng: random.Random) -> str:
    """Ontario health number: ten digits with a Luhn check, then a two-letter version."""
    raw = luhn_complete(_digits(rng, 9))
    version = _letters(rng, 2)
    sep = rng.choice(("-", " ", ""))
    return f"{raw[:4]}{sep}{raw[4:7]}{sep}{raw[7:]}{rng.choice((' ', '-', ' '))}{version}"


def bc_phn(rng: random.Random) -> str:
    """British Columbia personal health number: 9 + eight digits + a mod-11 check."""
    while True:
        body = "9" + _digits(rng, 8)
        check = phn_check(body)
        if check is not None:
            raw = body + str(check)
            return f"{raw[:4]} {raw[4:7]} {raw[7:]}"


def phn_check(body: str) -> int | None:
    """The BC PHN check digit of a nine-digit ``body`` (None: no valid digit exists)."""
    weights = (2, 4, 8, 5, 10, 9, 7, 3)
    total = sum((int(c) * w) % 11 for c, w in zip(body[1:], weights, strict=True))
    check = 11 - total % 11
    return None if check >= 10 else check


def ramq(rng: random.Random, last: str, first: str, female: bool) -> str:
    """Quebec health insurance number: surname and first-name letters, birth digits."""
    letters = "".join(c for c in last.upper() if c in _UPPER)[:3].ljust(3, "X")
    letters += first[:1].upper() if first[:1].upper() in _UPPER else "X"
    month = rng.randint(1, 12) + (50 if female else 0)
    return (
        f"{letters} {rng.randint(25, 34):02d}{month:02d} {rng.randint(1, 28):02d}{_digits(rng, 2)}"
    )


def nhis_ng(rng: random.Random) -> str:
    """A Nigerian NHIS enrolee number in the HMO style ``NHIS/OS/2016/014822``."""
    state = rng.choice(("OS", "IM", "OG", "KW"))
    return f"NHIS/{state}/{rng.randint(2008, 2022)}/{_digits(rng, 6)}"


def nhis_gh(rng: random.Random) -> str:
    """A Ghana NHIS membership number, eight digits."""
    return _digits(rng, 8)


def thiqa(rng: random.Random) -> str:
    """An Abu Dhabi insurance card number, 1-####-#######-##."""
    return f"{rng.choice('13')}-{_digits(rng, 4)}-{_digits(rng, 7)}-{_digits(rng, 2)}"


def mbi(rng: random.Random) -> str:
    """A US Medicare beneficiary identifier (11 characters, no S L O I B Z)."""
    letters = "ACDEFGHJKMNPQRTUVWXY"
    both = letters + _DIGITS
    shape = "CAXNAXNAANN"
    out = []
    for s in shape:
        if s == "C":
            out.append(rng.choice("123456789"))
        elif s == "A":
            out.append(rng.choice(letters))
        elif s == "N":
            out.append(rng.choice(_DIGITS))
        else:
            out.append(rng.choice(both))
    return "".join(out)


def takaful(rng: random.Random) -> str:
    """A Malaysian takaful (insurance) member number."""
    return f"TK{_digits(rng, 2)}/{_letters(rng, 1)}{_digits(rng, 7)}"


# -- record numbers (MRN) -----------------------------------------------------------------


def mrn(rng: random.Random) -> str:
    """A hospital record number in one of the network's local formats."""
    kind = rng.randrange(7)
    if kind == 0:
        return f"HN{_digits(rng, 8)}{rng.choice(_UPPER)}"
    if kind == 1:
        return f"{_digits(rng, 4)}-{_digits(rng, 4)}"
    if kind == 2:
        return f"RN/{rng.randint(2015, 2024)}/{_digits(rng, 5)}"
    if kind == 3:
        return f"K{_digits(rng, 7)}"
    if kind == 4:
        return f"UR{_digits(rng, 6)}"
    if kind == 5:
        return f"{_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 2)}"
    return f"M-{_digits(rng, 2)}-{_digits(rng, 5)}"


def ocr_mangle(value: str, rng: random.Random) -> str:
    """``value`` as a poor scan reads it: some 0s as O, 1s as l, 5s as S."""
    swaps = {"0": "O", "1": "l", "5": "S", "8": "B"}
    out = [swaps[c] if c in swaps and rng.random() < 0.45 else c for c in value]
    return "".join(out)


def accession(rng: random.Random) -> str:
    """A pathology or cytogenetics accession number (counted as a record number)."""
    prefix = rng.choice(("SP", "CY", "GX", "BM", "FS"))
    return f"{prefix}{rng.randint(19, 24)}-{_digits(rng, 6)}"


def subject_id(rng: random.Random) -> str:
    """A trial subject number that names site and enrolment order."""
    return f"{rng.choice(('KDX', 'RNL', 'HTX'))}-{_digits(rng, 3)}-{_digits(rng, 4)}"


# -- accounts and claims (ACCOUNT) --------------------------------------------------------


def account(rng: random.Random) -> str:
    """A billing, encounter or visit number."""
    kind = rng.randrange(5)
    if kind == 0:
        return f"ENC{_digits(rng, 9)}"
    if kind == 1:
        return f"{_digits(rng, 2)}-{_digits(rng, 6)}-{_digits(rng, 2)}"
    if kind == 2:
        return f"V{_digits(rng, 3)} {_digits(rng, 4)} {_digits(rng, 3)}"
    if kind == 3:
        return f"INV/{rng.randint(2019, 2024)}/{_digits(rng, 5)}"
    return _digits(rng, 10)


def wc_claim(rng: random.Random) -> str:
    """A workers' compensation claim number."""
    return rng.choice(
        (
            f"{_digits(rng, 8)}",
            f"WC-{rng.randint(2018, 2024)}-{_digits(rng, 6)}",
            f"{_digits(rng, 2)}{_letters(rng, 2)}{_digits(rng, 6)}",
        )
    )


def bank_account(rng: random.Random) -> str:
    """A local bank account number (no IBAN)."""
    return rng.choice((f"{_digits(rng, 5)}-{_digits(rng, 3)}-{_digits(rng, 7)}", _digits(rng, 12)))


# -- licences and registrations (LICENSE) -------------------------------------------------


def driver_licence(rng: random.Random, last: str) -> str:
    """A driver's licence in a provincial or national style."""
    initial = next((c for c in last.upper() if c in _UPPER), "X")
    kind = rng.randrange(4)
    if kind == 0:
        return f"{initial}{_digits(rng, 4)}-{_digits(rng, 5)}-{_digits(rng, 5)}"
    if kind == 1:
        return f"{initial}{_digits(rng, 4)}-{_digits(rng, 6)}-{_digits(rng, 2)}"
    if kind == 2:
        return f"{_letters(rng, 3)}{_digits(rng, 5)}{_letters(rng, 2)}{_digits(rng, 2)}"
    return _digits(rng, 7)


def registration(rng: random.Random) -> tuple[str, str]:
    """A professional registration (medical councils, nursing colleges): the context word
    the register is written with (unlabelled, may be empty) and the number."""
    kind = rng.randrange(5)
    if kind == 0:
        return "PMDC ", f"{_digits(rng, 5)}-P"
    if kind == 1:
        return "", f"MDCN/R/{_digits(rng, 5)}"
    if kind == 2:
        return "MMC ", _digits(rng, 5)
    if kind == 3:
        return "CPSO #", _digits(rng, 6)
    return "", f"RN{_digits(rng, 7)}"


def dea(rng: random.Random, last: str) -> str:
    """A DEA registration number with a valid check digit."""
    second = next((c for c in last.upper() if c in _UPPER), "X")
    d = [int(c) for c in _digits(rng, 6)]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    return f"{rng.choice('ABFM')}{second}{''.join(map(str, d))}{check}"


def npi(rng: random.Random) -> str:
    """A US National Provider Identifier (Luhn over the 80840 prefix)."""
    body = rng.choice("12") + _digits(rng, 8)
    full = luhn_complete("80840" + body)
    return full[5:]


def death_certificate(rng: random.Random) -> str:
    """A death-registration (certificate) number."""
    return rng.choice(
        (
            f"{rng.randint(2019, 2024)}-{_digits(rng, 6)}",
            f"DR {_digits(rng, 3)} {_digits(rng, 4)}",
            f"{_digits(rng, 3)}-{rng.randint(2019, 2024)}-{_digits(rng, 5)}",
        )
    )


# -- vehicles (VEHICLE) --------------------------------------------------------------------


def plate(rng: random.Random) -> str:
    """A licence plate in one of the network's countries."""
    kind = rng.randrange(6)
    if kind == 0:
        return f"{_letters(rng, 4)} {_digits(rng, 3)}"
    if kind == 1:
        return f"{rng.choice(('W', 'N', 'C', 'D', 'Q'))}{_letters(rng, 2)} {rng.randint(1, 9999)}"
    if kind == 2:
        return f"{_letters(rng, 3)} {_digits(rng, 3)} {_letters(rng, 2)}"
    if kind == 3:
        return f"{_letters(rng, 3)}-{rng.randint(10, 24)}-{_digits(rng, 4)}"
    if kind == 4:
        return f"{_letters(rng, 2)} {rng.randint(100, 9999)}"
    return f"{_digits(rng, 3)} {_letters(rng, 3)}"


def vin(rng: random.Random) -> str:
    """A vehicle identification number with a valid check digit."""
    return random_vin(rng)


# -- devices (DEVICE) ---------------------------------------------------------------------


def device_serial(rng: random.Random) -> str:
    """An implant or home-device serial number."""
    kind = rng.randrange(5)
    if kind == 0:
        return f"{_letters(rng, 3)}{_digits(rng, 6)}{rng.choice(('H', 'S', 'R'))}"
    if kind == 1:
        return f"{_digits(rng, 2)}{_letters(rng, 1)}{_digits(rng, 5)}-{_digits(rng, 2)}"
    if kind == 2:
        return f"PMP-{_digits(rng, 4)}-{_letters(rng, 2)}"
    if kind == 3:
        return _letters(rng, 1) + "".join(rng.choice(_UPPER + _DIGITS) for _ in range(5))
    return f"SN{_digits(rng, 10)}"


def udi(rng: random.Random) -> str:
    """A GS1 unique device identifier with GTIN, expiry and serial."""
    return (
        f"(01){_digits(rng, 14)}(17){rng.randint(25, 30)}{rng.randint(1, 12):02d}28"
        f"(21){_letters(rng, 1)}{_digits(rng, 5)}"
    )


def imei(rng: random.Random) -> str:
    """An IMEI (fifteen digits, Luhn-checked) of a home monitor's cellular modem."""
    return luhn_complete("35" + _digits(rng, 12))


def mac(rng: random.Random) -> str:
    """A MAC address of a home hub."""
    sep = rng.choice((":", "-"))
    return sep.join(f"{rng.randrange(256):02X}" for _ in range(6))


# -- biometric references (BIOMETRIC) -----------------------------------------------------


def biometric(rng: random.Random) -> str:
    """The identifier of an enrolled fingerprint, iris, palm-vein, voice or face template."""
    kind = rng.randrange(5)
    if kind == 0:
        return f"FP-{_digits(rng, 4)}-{_digits(rng, 4)}"
    if kind == 1:
        return f"IRS{_digits(rng, 8)}"
    if kind == 2:
        return "".join(rng.choice("0123456789abcdef") for _ in range(16))
    if kind == 3:
        return f"VP/{_letters(rng, 2)}/{_digits(rng, 6)}"
    return f"PV{_digits(rng, 3)}-{_letters(rng, 3)}{_digits(rng, 2)}"


# -- fillers: each identifier with its context words ----------------------------------


def _one(value: str, label: PiiLabel | None) -> list[Piece]:
    return [(value, label)]


def _national_id(rng: random.Random, p: Patient) -> list[Piece]:
    origin = p.extra.get("origin", "")
    table: dict[str, tuple[str, Callable[[], str]]] = {
        "quebec": ("NAS ", lambda: sin(rng)),
        "anishinaabe": ("SIN ", lambda: sin(rng)),
        "american": ("SSN ", lambda: us_ssn(rng)),
        "gulf": ("Emirates ID ", lambda: emirates_id(rng)),
        "cantonese": ("HKID ", lambda: hkid(rng)),
        "malay": ("No. K/P ", lambda: mykad(rng, p.female)),
        "punjabi": ("CNIC ", lambda: cnic(rng, p.female)),
        "bengali": ("NID ", lambda: bd_nid(rng)),
        "yoruba": ("NIN ", lambda: nin(rng)),
        "igbo": ("NIN: ", lambda: nin(rng)),
        "akan": ("Ghana Card ", lambda: ghana_card(rng)),
        "maltese": ("ID card ", lambda: malta_id(rng)),
    }
    context, make = table.get(origin, ("QID ", lambda: qatar_id(rng)))
    if origin == "gulf" and rng.random() < 0.3:
        context, make = "QID ", lambda: qatar_id(rng)
    return [(context, None), (make(), L.SSN)]


def _bare_national_id(rng: random.Random, p: Patient) -> list[Piece]:
    make = rng.choice((sin, us_ssn, emirates_id, hkid, nin, ghana_card))
    return _one(make(rng), L.SSN)


def _health_card(rng: random.Random, p: Patient) -> list[Piece]:
    kind = rng.randrange(8)
    if kind == 0:
        return [("OHIP ", None), (ohip(rng), L.HEALTH_PLAN)]
    if kind == 1:
        return [("PHN ", None), (bc_phn(rng), L.HEALTH_PLAN)]
    if kind == 2:
        return [("RAMQ ", None), (ramq(rng, p.last, p.first, p.female), L.HEALTH_PLAN)]
    if kind == 3:
        return [("NHIS enrolee no. ", None), (nhis_ng(rng), L.HEALTH_PLAN)]
    if kind == 4:
        return [("NHIS membership ", None), (nhis_gh(rng), L.HEALTH_PLAN)]
    if kind == 5:
        return [("Thiqa card ", None), (thiqa(rng), L.HEALTH_PLAN)]
    if kind == 6:
        return [("MBI ", None), (mbi(rng), L.HEALTH_PLAN)]
    return [("takaful member ", None), (takaful(rng), L.HEALTH_PLAN)]


def _bare_health_card(rng: random.Random, p: Patient) -> list[Piece]:
    make = rng.choice((ohip, bc_phn, nhis_ng, thiqa, mbi, takaful))
    return _one(make(rng), L.HEALTH_PLAN)


def _ohip(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(ohip(rng), L.HEALTH_PLAN)


def _mrn(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(mrn(rng), L.MRN)


def _mrn_ocr(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(ocr_mangle(mrn(rng), rng), L.MRN)


def _mrn_split(rng: random.Random, p: Patient) -> list[Piece]:
    value = mrn(rng)
    cut = len(value) // 2
    return _one(f"{value[:cut]}\n{value[cut:]}", L.MRN)


def _accession(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(accession(rng), L.MRN)


def _subject(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(subject_id(rng), L.MRN)


def _account(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(account(rng), L.ACCOUNT)


def _claim(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(wc_claim(rng), L.ACCOUNT)


def _bank(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(bank_account(rng), L.ACCOUNT)


def _licence(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(driver_licence(rng, p.last), L.LICENSE)


def _registration(rng: random.Random, p: Patient) -> list[Piece]:
    context, number = registration(rng)
    return [(context, None), (number, L.LICENSE)]


def _dea(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(dea(rng, rng.choice(("Xuereb", "Meekis", "Gondal", "Kwok"))), L.LICENSE)


def _npi(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(npi(rng), L.LICENSE)


def _certificate(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(death_certificate(rng), L.LICENSE)


def _plate(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(plate(rng), L.VEHICLE)


def _vin(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(vin(rng), L.VEHICLE)


def _device(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(device_serial(rng), L.DEVICE)


def _udi(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(udi(rng), L.DEVICE)


def _imei(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(imei(rng), L.DEVICE)


def _mac(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(mac(rng), L.DEVICE)


def _biometric(rng: random.Random, p: Patient) -> list[Piece]:
    return _one(biometric(rng), L.BIOMETRIC)


FILLERS: dict[str, Filler] = {
    "NATID": _national_id,
    "NATID_BARE": _bare_national_id,
    "HCN": _health_card,
    "HCN_BARE": _bare_health_card,
    "OHIP": _ohip,
    "MRN": _mrn,
    "MRN_OCR": _mrn_ocr,
    "MRN_SPLIT": _mrn_split,
    "ACCESSION": _accession,
    "SUBJECT": _subject,
    "ACCT": _account,
    "CLAIM": _claim,
    "BANK": _bank,
    "DL": _licence,
    "REG": _registration,
    "DEA": _dea,
    "NPI": _npi,
    "CERT": _certificate,
    "PLATE": _plate,
    "VIN": _vin,
    "SERIAL": _device,
    "UDI": _udi,
    "IMEI": _imei,
    "MAC": _mac,
    "BIO": _biometric,
}
"""Identifier slots: name to filler (merged into :data:`.reserve_values.fillers`)."""
