"""Identifier formats of the blind evaluation set (see :mod:`.blind`).

Each function draws one identifier as written in the network's records, with the format
variants a reader meets there: VA integration control numbers and IHS health record numbers,
Medicare beneficiary identifiers, Puerto Rico's Plan Vital, TRICARE benefit numbers, GS1 and
HIBCC device identifiers, state plates and boat registrations. Values only: the label words
around them belong to the templates and fillers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta

from tutela.anonymize.eval.blind_values import MESES, MONTHS, day_ordinal_words
from tutela.anonymize.eval.render import random_vin
from tutela.anonymize.validators import dea_valid, luhn_valid, npi_valid, ssn_valid

_UPPER = "ABCDEFGHJKLMNPRTUVWXY"
_MBI_LETTERS = "ACDEFGHJKMNPQRTUVWXY"


def digits(rng: random.Random, n: int) -> str:
    """``n`` random decimal digits (may start with 0)."""
    return "".join(rng.choice("0123456789") for _ in range(n))


def letters(rng: random.Random, n: int) -> str:
    """``n`` random capitals without I, O, Q, S, Z."""
    return "".join(rng.choice(_UPPER) for _ in range(n))


def ssn_parts(rng: random.Random) -> tuple[str, str, str]:
    """Area, group and serial of a social security number that SSA could issue."""
    while True:
        area, group, serial = digits(rng, 3), digits(rng, 2), digits(rng, 4)
        if ssn_valid(area, group, serial):
            return area, group, serial


def mbi(rng: random.Random) -> str:
    """A Medicare beneficiary identifier (11 characters, CMS position rules)."""
    alnum = _MBI_LETTERS + "0123456789"
    pattern = "CAN" + "N" + "A" + "N" + "N" + "AA" + "NN"
    out = [rng.choice("123456789")]
    for kind in pattern[1:]:
        if kind == "A":
            out.append(rng.choice(_MBI_LETTERS))
        elif kind == "N":
            out.append(rng.choice("0123456789"))
        else:
            out.append(rng.choice(alnum))
    # positions 3 and 6 may be letter or digit
    out[2] = rng.choice(alnum)
    out[5] = rng.choice(alnum)
    return "".join(out)


def npi(rng: random.Random) -> str:
    """A National Provider Identifier with a valid check digit."""
    while True:
        n = rng.choice("12") + digits(rng, 9)
        if npi_valid(n):
            return n


def dea(rng: random.Random, last: str) -> str:
    """A DEA registration number for a prescriber whose family name is ``last``."""
    initial = next((c for c in last.upper() if c.isalpha()), "X")
    while True:
        number = rng.choice("ABFGM") + initial + digits(rng, 7)
        if dea_valid(number):
            return number


def imei(rng: random.Random) -> str:
    """A 15-digit IMEI with a valid Luhn digit."""
    while True:
        n = "35" + digits(rng, 13)
        if luhn_valid(n):
            return n


def mrn(rng: random.Random) -> str:
    """A record number in one of the network's systems (chart, ICN, HRN, accession)."""
    forms = (
        lambda: f"10{digits(rng, 8)}V{digits(rng, 6)}",
        lambda: f"{digits(rng, 3)}-{digits(rng, 3)}",
        lambda: f"{rng.choice(('SHR', 'CHN', 'GIMC'))}{digits(rng, 6)}",
        lambda: digits(rng, 8),
        lambda: f"HRN{digits(rng, 6)}",
        lambda: f"GMH-{digits(rng, 7)}",
        lambda: f"20{rng.randint(19, 26)}-{digits(rng, 6)}",
        lambda: f"{digits(rng, 2)} {digits(rng, 2)} {digits(rng, 3)}",
    )
    return rng.choice(forms)()


def accession(rng: random.Random) -> str:
    """A lab, radiology or pharmacy record number (labelled MRN)."""
    forms = (
        lambda: f"CH {rng.randint(19, 26)} {digits(rng, 4)}",
        lambda: f"MI-{rng.randint(19, 26)}-{digits(rng, 5)}",
        lambda: f"RAD{digits(rng, 9)}",
        lambda: f"{letters(rng, 2)}{digits(rng, 7)}",
        lambda: f"Rx{digits(rng, 7)}",
    )
    return rng.choice(forms)()


def health_plan(rng: random.Random) -> str:
    """A member, beneficiary or Medicaid number (Medicare MBIs through :func:`mbi`)."""
    forms = (
        lambda: mbi(rng),
        lambda: f"{mbi(rng)[:4]}-{mbi(rng)[4:7]}-{mbi(rng)[7:]}",
        lambda: digits(rng, 9),
        lambda: f"{letters(rng, 3)}{digits(rng, 9)}",
        lambda: f"{digits(rng, 11)}",
        lambda: f"{digits(rng, 4)} {digits(rng, 4)} {digits(rng, 3)}",
        lambda: f"W{digits(rng, 9)}-0{rng.randint(1, 4)}",
        lambda: f"MCD{digits(rng, 8)}",
        lambda: f"{letters(rng, 1)}{digits(rng, 8)}{letters(rng, 1)}",
    )
    return rng.choice(forms)()


def account(rng: random.Random) -> str:
    """A billing account, encounter, claim or authorisation number."""
    forms = (
        lambda: digits(rng, 10),
        lambda: f"{rng.randint(19, 26)}-{digits(rng, 3)}-{digits(rng, 5)}",
        lambda: f"20{rng.randint(19, 26)}{digits(rng, 9)}",
        lambda: f"V{digits(rng, 7)}",
        lambda: f"PA-{rng.randint(19, 26)}-{digits(rng, 6)}",
        lambda: f"FIN {digits(rng, 9)}",
        lambda: f"{digits(rng, 4)} {digits(rng, 4)} {digits(rng, 2)}",
        lambda: f"E{digits(rng, 3)}.{digits(rng, 5)}",
    )
    return rng.choice(forms)()


def drivers_license(rng: random.Random, state: str) -> str:
    """A driver's licence number shaped like ``state``'s."""
    shapes: dict[str, Callable[[], str]] = {
        "KY": lambda: f"{letters(rng, 1)}{digits(rng, 2)}-{digits(rng, 3)}-{digits(rng, 3)}",
        "FL": lambda: (
            f"{letters(rng, 1)}{digits(rng, 3)}-{digits(rng, 3)}-{digits(rng, 2)}-"
            f"{digits(rng, 3)}-0"
        ),
        "WV": lambda: f"{letters(rng, 1)}{digits(rng, 6)}",
        "MN": lambda: f"{letters(rng, 1)}{digits(rng, 12)}",
        "AZ": lambda: f"D{digits(rng, 8)}",
        "PR": lambda: digits(rng, 7),
        "GU": lambda: f"{digits(rng, 2)}-{digits(rng, 6)}",
    }
    if state in shapes:
        return shapes[state]()
    return digits(rng, 9)


def professional_license(rng: random.Random) -> str:
    """A state medical, nursing, pharmacy or EMS licence or certification number."""
    forms = (
        lambda: f"{rng.randint(10000, 49999)}",
        lambda: f"MD{digits(rng, 6)}",
        lambda: f"RN{digits(rng, 7)}",
        lambda: f"P{digits(rng, 7)}",
        lambda: f"{letters(rng, 2)}-{digits(rng, 5)}",
        lambda: f"E{digits(rng, 6)}",
    )
    return rng.choice(forms)()


def plate(rng: random.Random) -> str:
    """A licence plate, tribal tag or boat registration number."""
    forms = (
        lambda: f"{digits(rng, 1)}{letters(rng, 2)} {digits(rng, 3)}",
        lambda: f"{letters(rng, 3)}-{digits(rng, 3)}",
        lambda: f"{letters(rng, 3)}{digits(rng, 4)}",
        lambda: f"{digits(rng, 3)} {letters(rng, 3)}",
        lambda: f"NN{digits(rng, 5)}",
        lambda: f"{letters(rng, 2)} {digits(rng, 4)} {letters(rng, 2)}",
        lambda: f"{letters(rng, 1)}{digits(rng, 2)}-{digits(rng, 3)}",
    )
    return rng.choice(forms)()


def vehicle(rng: random.Random) -> str:
    """A plate or a VIN."""
    return random_vin(rng) if rng.random() < 0.4 else plate(rng)


def device_serial(rng: random.Random, kind: str = "any") -> str:
    """A serial of a ``kind`` of device: ``cardiac`` (pacemaker, defibrillator, lead,
    monitor), ``pump``, ``cgm``, ``ear`` (hearing aid, cochlear implant), ``implant``
    (dental, orthopaedic) or ``any``."""
    forms: dict[str, tuple[Callable[[], str], ...]] = {
        "cardiac": (
            lambda: f"{letters(rng, 3)}{digits(rng, 6)}{letters(rng, 1)}",
            lambda: f"PJN{digits(rng, 6)}H",
            lambda: f"{digits(rng, 6)}",
        ),
        "pump": (
            lambda: f"PMP-{digits(rng, 6)}-{letters(rng, 1)}",
            lambda: f"SN {digits(rng, 8)}",
            lambda: f"NG{digits(rng, 7)}{letters(rng, 1)}",
        ),
        "cgm": (
            lambda: f"{digits(rng, 1)}{letters(rng, 2)}{digits(rng, 1)}{letters(rng, 2)}",
            lambda: f"SM{digits(rng, 8)}",
        ),
        "ear": (
            lambda: f"{digits(rng, 2)}H{digits(rng, 5)}",
            lambda: f"{letters(rng, 2)}{digits(rng, 4)}-{digits(rng, 4)}",
        ),
        "implant": (
            lambda: f"{letters(rng, 2)}{digits(rng, 6)}",
            lambda: f"{digits(rng, 8)}-{digits(rng, 2)}",
        ),
    }
    pool = forms.get(kind) or tuple(f for group in forms.values() for f in group)
    return rng.choice(pool)()


def udi(rng: random.Random) -> str:
    """A unique device identifier in GS1 (with application identifiers) or HIBCC form."""
    expiry = f"{rng.randint(26, 31)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    if rng.random() < 0.7:
        lot = f"{letters(rng, 1)}{digits(rng, 4)}"
        return f"(01)0{digits(rng, 13)}(17){expiry}(10){lot}(21){digits(rng, 7)}"
    return f"+H{digits(rng, 3)}{letters(rng, 3)}{digits(rng, 4)}1/$${expiry}{letters(rng, 2)}"


def biometric(rng: random.Random, kind: str = "any") -> str:
    """A template reference of a ``kind`` of biometric: ``finger``, ``voice``, ``eye``
    (retina, iris), ``palm`` or ``any``."""
    forms: dict[str, tuple[Callable[[], str], ...]] = {
        "finger": (
            lambda: f"FP-{digits(rng, 5)}-{letters(rng, 1)}",
            lambda: f"AFIS {digits(rng, 7)}",
        ),
        "voice": (lambda: f"VPR{digits(rng, 6)}", lambda: f"VX-{letters(rng, 2)}{digits(rng, 5)}"),
        "eye": (lambda: f"RT-{digits(rng, 7)}", lambda: f"IRIS{letters(rng, 2)}{digits(rng, 5)}"),
        "palm": (lambda: f"PV-{digits(rng, 2)}-{digits(rng, 4)}",),
        "any": (lambda: f"{letters(rng, 1)}{digits(rng, 3)}-{letters(rng, 2)}{digits(rng, 3)}",),
    }
    pool = forms[kind] if kind != "any" else tuple(f for group in forms.values() for f in group)
    return rng.choice(pool)()


def phone(rng: random.Random, area: str) -> str:
    """A telephone number in one of the forms the network's staff write."""
    exchange = str(rng.randint(200, 989))
    line = digits(rng, 4)
    forms = (
        f"({area}) {exchange}-{line}",
        f"{area}-{exchange}-{line}",
        f"{area}.{exchange}.{line}",
        f"{area}{exchange}{line}",
        f"({area}){exchange}-{line}",
        f"+1 {area} {exchange} {line}",
        f"1-{area}-{exchange}-{line}",
        f"{area} {exchange} {line}",
    )
    return rng.choice(forms)


def email(rng: random.Random, first: str, last: str) -> str:
    """A personal or work email address for ``first last``."""
    f = "".join(c for c in first.lower() if c.isalpha())
    la = "".join(c for c in last.lower() if c.isalpha())
    user = rng.choice(
        (
            f"{f}.{la}",
            f"{f[0]}{la}{rng.randint(1, 99)}",
            f"{la}{f[0]}",
            f"{f}{rng.randint(1950, 2009)}",
            f"{f}_{la}",
            f"mz{la}{digits(rng, 2)}",
        )
    )
    domain = rng.choice(
        (
            "gmail.com",
            "yahoo.com",
            "hotmail.com",
            "icloud.com",
            "att.net",
            "naa.gov",
            "gpfhn.org",
            "ihs.gov",
            "prtc.net",
            "guam.net",
        )
    )
    return f"{user}@{domain}"


def url(rng: random.Random, first: str, last: str, *, session: bool = False) -> str:
    """A web address tied to one person: a fundraiser or profile page, or (``session``) a
    video-visit room or a shared chart link."""
    f = "".join(c for c in first.lower() if c.isalpha())
    la = "".join(c for c in last.lower() if c.isalpha())
    if session:
        return rng.choice(
            (
                f"https://myhealth.gpfhn.org/share/{letters(rng, 4)}{digits(rng, 4)}",
                f"https://vvc.gpfhn.org/join?room={digits(rng, 9)}",
                f"portal.gpfhn.org/msg/{digits(rng, 7)}",
                f"https://pacs.gpfhn.org/viewer?study={digits(rng, 8)}",
            )
        )
    forms = (
        f"https://www.gofundme.com/f/help-{f}-{la}-{rng.choice(('recover', 'get-home', 'heal'))}",
        f"facebook.com/{f}.{la}.{rng.randint(1, 9)}",
        f"www.caringbridge.org/visit/{f}{la}",
        f"instagram.com/{f}_{la}{digits(rng, 2)}",
        f"http://{la}{f[0]}.wixsite.com/memorial",
        f"https://tiktok.com/@{f}{la}{digits(rng, 2)}",
    )
    return rng.choice(forms)


def ip_address(rng: random.Random) -> str:
    """A public or private IPv4 address, or an IPv6 address."""
    forms = (
        lambda: (
            f"{rng.randint(24, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
            f"{rng.randint(1, 254)}"
        ),
        lambda: f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        lambda: f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        lambda: (
            f"2600:{rng.randint(1000, 9999)}:{letters(rng, 1).lower()}{digits(rng, 2)}0::"
            f"{rng.randint(10, 99)}"
        ),
    )
    return rng.choice(forms)()


def ordinal_suffix(n: int) -> str:
    """The English ordinal suffix of ``n`` ("st", "nd", "rd", "th")."""
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def random_date(rng: random.Random, first_year: int, last_year: int) -> date:
    """A day between 1 January ``first_year`` and 31 December ``last_year``."""
    start = date(first_year, 1, 1)
    span = (date(last_year, 12, 31) - start).days
    return start + timedelta(days=rng.randint(0, span))


def date_text(rng: random.Random, d: date, *, spanish: bool = False) -> str:
    """``d`` written in one of the network's forms (numeric, CPRS, HL7, prose, partial)."""
    mon = MONTHS[d.month - 1]
    forms = [
        f"{d.month:02d}/{d.day:02d}/{d.year}",
        f"{d.month}/{d.day}/{d.year % 100:02d}",
        f"{d.year}-{d.month:02d}-{d.day:02d}",
        f"{d.day:02d}-{mon[:3]}-{d.year}",
        f"{mon[:3].upper()} {d.day:02d}, {d.year}",
        f"{mon} {d.day}, {d.year}",
        f"{d.day} {mon} {d.year}",
        f"{mon[:3]} {d.year}",
        f"{d.month:02d}/{d.year}",
        f"{d.month}/{d.day}",
        f"{mon} {d.day}",
        f"{d.year}{d.month:02d}{d.day:02d}",
        f"{day_ordinal_words(d.day)} of {mon}, {d.year}",
        f"{mon[:3]} {d.day}{ordinal_suffix(d.day)}",
        f"{d.month}-{d.day}-{d.year}",
    ]
    if spanish:
        forms += [f"{d.day} de {MESES[d.month - 1]} de {d.year}", f"{d.day}/{d.month}/{d.year}"]
    return rng.choice(forms)


def cprs_stamp(rng: random.Random, d: date) -> str:
    """A CPRS date-time stamp (``MAR 14, 2025@08:15``), labelled whole as a DATE."""
    clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    return f"{MONTHS[d.month - 1][:3].upper()} {d.day:02d}, {d.year}@{clock}"


def hl7_stamp(rng: random.Random, d: date) -> str:
    """An HL7 timestamp (``YYYYMMDDHHMM``), labelled whole as a DATE."""
    return f"{d.year}{d.month:02d}{d.day:02d}{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}"
