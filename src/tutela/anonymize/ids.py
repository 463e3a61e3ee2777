"""Record, plan, account, licence, vehicle, device and biometric identifiers.

Numbers like these are everywhere in clinical notes (doses, lab values, lot numbers), so
each recogniser needs either a context word just before the value (``MRN``, ``acct``,
``lic``, ``serial``, ``plate``, ``fingerprint ID``...) or a format with a checksum (VIN
check digit, DEA checksum, NPI Luhn, GS1 UDI, Medicare beneficiary identifier), a fixed
shape (hardware MAC addresses) or a fixed place in a message (HL7 ``PID`` identifiers).
A drug's lot number and expiry name a batch, not a person, and are left alone.
"""

from __future__ import annotations

import re

from tutela.anonymize.matching import contextual, spans_of
from tutela.anonymize.spans import PiiLabel, Span
from tutela.anonymize.validators import dea_valid, npi_valid, vin_valid

# An identifier value: an optional short letter prefix ("PA-", "L "), a token holding a
# digit, then more groups joined by "-", ".", "/" or by single spaces when the next group
# holds a digit too ("26 209 163", "S123-456-78-901-0", "1EG4-TE5-MK73").
_VALUE = (
    # lower-case hexadecimal tokens ("3fa9c07e21bd"), as template and hash references are
    r"(?=[0-9a-f]*[a-f])[0-9a-f]*\d[0-9a-f]*(?![\w-])"
    # a short lower-case prefix joined by ":" or "_" ("fp:4471-2093", "tpl_558120")
    r"|[a-z]{1,4}[:_](?=[A-Za-z0-9]*\d)[A-Za-z0-9]+(?:[-./][A-Za-z0-9]+)*"
    # one or two letter-only groups before the first group with a digit ("PA-", "L ",
    # "ENC/2021/", "INV-QX-"), a word that introduces the value ("ID") not among them
    r"|(?:(?!(?:ID|NO|NR|REF|NUM)\b)[A-Z]{1,4}[-./ ]|[A-Z]{1,4}[-./][A-Z]{1,4}[-./])?"
    r"[A-Z0-9]*\d[A-Z0-9]*"
    r"(?:[-./:][A-Z0-9]+|[ ](?=[A-Z0-9]*\d)[A-Z0-9]+)*"
)
ID_VALUE = _VALUE
"""An identifier value as the contextual recognisers read it (see :mod:`.contexts`)."""
_UDI = r"\(01\)\d{14}(?:\(\d{2,4}\)[A-Z0-9]+)*"

_NUMBER = r"(?:\s*(?:number|num\b|no\b\.?|nr\b\.?|#|id\b|identifier))?"
_MRN_WORDS = (
    r"(?i:\bMRN|\bMR\s?#|\bMR\s?No\b\.?|\bmed(?:ical)?\.?\s+rec(?:ord)?\b\.?"
    r"(?:\s+(?:number|no\.?|#))?|\bchart\b(?:\s+(?:number|no\.?|#))?"
    r"|\bhospital\s+(?:number|no\.?|id|#)|\bUR\s*(?:number|no\b\.?|#)|\bU/R\b"
    r"|\bunit\s+(?:record\s+)?(?:number|no\.?|#)|\b(?:patient|pt\.?)\s+(?:id|number|no\.?)\b"
    r"|\bE[MH]R\s+(?:id|#|number)|\brecord\s+(?:number|no\.?|#)|\brecord\b"
    r"|\b(?:NHS|CHI|NHI|health\s+card)\s*(?:number|no\b\.?|#|id\b)"
    # "hosp. no.", "hosp #"; "UR" and "URN" (unit record number) and the national record
    # numbers standing alone before the value ("UR 0041182", "NHS 401 023 2211")
    r"|\bhosp\b\.?\s*(?:number|no\b\.?|#|id\b)|\bURN?\b|\b(?:NHS|CHI|NHI)\b"
    r"|\b(?:client|resident|service\s+user)\s+(?:id\b|number|no\b\.?|#))"
)
_PLAN_WORDS = (
    r"(?i:\b(?:member|subscriber|insured|beneficiary|enrollee)\s*(?:id\b|#|number|no\b\.?"
    r"|identifier)|\bsubscriber"
    r"|\b(?:health\s+plan|policy|insurance|insurer|payer|payor|medicaid|medicare|coverage)"
    r"(?:\s+(?:plan|card|policy|member|subscriber|beneficiary))?" + _NUMBER + r"\b\.?"
    r"|\bplan\s*(?:id\b|number|no\b\.?|#)|\bMBI|\bgroup\s+(?:number|no\.?|#)"
    # "member" alone before a value ("claim to the fund, member 55120-331"), and the
    # public plans' own numbers (Canadian provinces, Australia, Ireland)
    r"|\bmember\b|\b(?:OHIP|RAMQ|AHCIP|MSP|PHN|IHI|DVA|PPSN|GMS|medical\s+card|health\s+card)\b"
    r"(?:(?:\s+(?:gold|white|orange))?\s+card)?(?:\s+(?:number|no\b\.?|#))?)"
)
# "account (HAR) 1234567": a parenthesised acronym may name the kind of account.
_ACCOUNT_WORDS = (
    r"(?i:\b(?:bank\s+|billing\s+|guarantor\s+|patient\s+|hospital\s+|client\s+|pharmacy\s+)?"
    r"(?:account|acct|acc't|a/c)\b\.?(?:\s+(?:number|no\.?|#))?(?:\s*\([A-Z]{2,5}\))?"
    r"|\b(?:case|claim|invoice|billing|financial|encounter|visit|routing)"
    r"\s+(?:number|no\b\.?|#|id\b|ref(?:erence)?\b\.?)|\b(?:FIN|CSN|HAR)\b"
    r"|\bbilling\s+ref(?:erence)?\b\.?)"
)
# An episode, encounter or spell number is the hospital's key to one admission: the word
# alone before a long value ("Episode 00410032", "ED encounter ENC/2024/11093").
_EPISODE_WORDS = r"(?i:\b(?:episode|encounter|spell|admission)\b)"
_LICENSE_WORDS = (
    r"(?i:\bdriver'?s?\s+licen[cs]e|\b(?:state\s+|medical\s+|nursing\s+|RN\s+|professional\s+)?"
    r"licen[cs]e\b(?!\s+plate)(?:\s+(?:number|no\.?|#))?|\blic\b\.?(?:\s*#)?|\bDL\b\s*#?"
    r"|\bDEA\b(?:\s+(?:number|#))?|\bNPI\b|\bcertificate\s+(?:number|no\.?|#)"
    r"|\bpassport(?:\s+(?:number|no\.?|#))?"
    # a clinician's registration with a regulator ("prescriber no.", "pharmacist
    # registration", "GMC 4471203", "AHPRA MED0001234567")
    r"|\b(?:prescriber|pharmacist|practitioner|provider|clinician|doctor|nurse|midwife"
    r"|dentist|physician|professional)\s+(?:registration|reg\b\.?|number|no\b\.?|#|id\b)"
    r"(?:\s+(?:number|no\b\.?|#))?"
    r"|\b(?:GMC|NMC|HCPC|AHPRA|CPSO|IMC|MCNZ|NMBI|GPhC|PSI)\b(?:\s+(?:number|no\b\.?|#))?)"
)
_PLATE_WORDS = (
    r"(?i:\blicen[cs]e\s+plate(?:\s+(?:number|no\.?|#))?|\bplate(?:\s+(?:number|no\.?|#))?"
    r"|\btag(?:\s+(?:number|no\.?|#))?|\bregistration\s+(?:plate|number|no\.?))"
)
_DEVICE_KINDS = (
    r"(?:pump|monitor|transmitter|receiver|sensor|generator|lead|pacemaker|defibrillator|ICD"
    r"|CRT-?D|CGM|stimulator|neurostimulator|catheter|port|implant|device|hearing\s+aids?"
    r"|valve|prosthesis|battery)"
)
_DEVICE_WORDS = (
    r"(?i:\bserial(?:\s+(?:number|no\.?|#))?|\bdevice\s+(?:id|identifier|serial)|\bUDI|\bIMEI"
    r"|\bMEID|\b" + _DEVICE_KINDS + r"(?:\s+(?:id\b|identifier|serial|s/?n\b|#"
    # a lot number only for an implanted device: a drug's lot names a batch, not a person
    r"|lot(?:\s+(?:number|no\.?|#))?)"
    # "atrial lead K86753809", "generator X1234567": the part named, then its number
    r"|(?<=lead|ator)\b)"
    r"|\b(?:network|MAC|hardware|bluetooth)\s+(?:address|id\b))"
    r"|\bS/?N\b"
)
# A biometric word, then (within a clause on the same line) the word that introduces the
# value: "fingerprint badge scan for the narcotics cabinet, template ID", "palm-vein
# enrolment", "voice biometric reference", "retinal scan record".
_BIOMETRIC_WORDS = (
    r"(?i:\b(?:finger|thumb|voice|iris|retina|palm|vein|facial|face|biometric|hand\s+geometry)"
    r"\w*[^\n\d;]{0,60}?\b(?:ID|identifier|ref(?:erence)?|template|enrol\w*|record|hash"
    # what the record is for may come between ("fingerprint ID for the drug safe: ...")
    r"|code)(?:[ \t]+for[^\n:;\d]{1,40}:)?)"
)

# A biometric word naming the record itself, then (after a few words, an opening bracket)
# a value: "voiceprint VPR-2213-09", "fingerprint checked (FT7731Q)", "voice biometric
# BIO/2031/118". The value needs four digits here, as no word introduces it.
_BIOMETRIC_DIRECT = re.compile(
    r"(?i:\b(?:finger|thumb|voice|iris|retina|retinal|palm|face|facial)[- ]?(?:print|scan"
    r"|template|biometric|recognition|geometry|code|vein)\w*(?:[ \t]+(?:scan|match))?"
    r"|\bbiometric\w*)"
    # a few words, or a clause ending in a bracket ("palm-vein scan on file from prior visit
    # (VP-48B3)")
    r"(?:(?:[ \t]+[a-z]+){0,2}?[ \t]*(?:[:#=(]|\bno\.|\bnumber\b|\bis\b|\bof\b)?"
    r"|[^\n().;:]{0,40}\()[ \t]*"
    rf"(?P<v>{_VALUE})"
)


# A licence plate: digits and letters in two groups ("181 HLX", "KJX-4471", "7ABC123").
_PLATE = r"[A-Z0-9]{1,8}(?:-[A-Z0-9]{1,8}){0,3}(?:[ ][A-Z0-9]{2,4}(?![\w-]))?"
# A vehicle named, then its plate ("the car, registration 4GHK 220", "courier van
# BX-7781", "rego 1QT 4M2"): only a value shaped like a plate, holding letters and digits.
_VEHICLE_WORDS = (
    r"(?i:\b(?:car|vehicle|van|truck|lorry|ute|motorbike|motorcycle|scooter|taxi|cab"
    r"|motorhome|caravan|trailer)\b(?:[ \t]*,?[ \t]+(?:registration|reg\b\.?|rego|plate))?"
    r"|\brego\b|\bvehicle\s+registration)"
)
_VEHICLE = re.compile(
    rf"{_VEHICLE_WORDS}(?:[ \t]*(?:[:#=]|\bno\.|\bnumber\b|\bis\b|\bwas\b))*[ \t]*"
    rf"(?P<v>{_PLATE})(?![\w-])"
)


def _min_digits(n: int) -> re.Pattern[str]:
    return re.compile(rf"(?:\D*\d){{{n}}}")


def _value(pattern: str) -> re.Pattern[str]:
    # Separators on the same line only: a label at the end of one line and a number at the
    # start of the next are usually unrelated.
    return contextual(pattern, rf"{_UDI}|{_VALUE}")


_RULES: tuple[tuple[re.Pattern[str], PiiLabel, float, str, re.Pattern[str]], ...] = (
    (_value(_MRN_WORDS), PiiLabel.MRN, 0.9, "mrn", _min_digits(5)),
    (_value(_PLAN_WORDS), PiiLabel.HEALTH_PLAN, 0.85, "health_plan", _min_digits(4)),
    (_value(_ACCOUNT_WORDS), PiiLabel.ACCOUNT, 0.85, "account", _min_digits(4)),
    (_value(_EPISODE_WORDS), PiiLabel.ACCOUNT, 0.8, "account", _min_digits(6)),
    (_value(_LICENSE_WORDS), PiiLabel.LICENSE, 0.85, "license", _min_digits(4)),
    (
        contextual(_PLATE_WORDS, rf"(?=[A-Z-]*\d){_PLATE}(?![\w-])|{_VALUE}"),
        PiiLabel.VEHICLE,
        0.8,
        "plate",
        _min_digits(2),
    ),
    (_value(_DEVICE_WORDS), PiiLabel.DEVICE, 0.85, "device", _min_digits(4)),
    # above MRN: "retinal scan record 55213" names the kind of record
    (_value(_BIOMETRIC_WORDS), PiiLabel.BIOMETRIC, 0.92, "biometric", _min_digits(2)),
)
# A device named, then its serial with no word between ("Transmitter HX-4471-2093-K
# paired"): only a value with four digits and a letter.
# A pacing mode and its rates ("DDDR 60-130", "VVI 50") name settings, not a device.
_DEVICE_DIRECT = re.compile(rf"(?i:\b{_DEVICE_KINDS})[ \t]+(?![AVDO]{{3}}R?\b)(?P<v>{_VALUE})")
# a serial with a letter and four digits, or eight digits ("sensor 24143605330")
_SERIAL_SHAPE = re.compile(r"(?=.*[A-Za-z])(?:\D*\d){4}|(?:\D*\d){8}")
_FOUR_DIGITS = _min_digits(4)
_TWO_DIGITS = _min_digits(2)
_PLATE_SHAPE = re.compile(r"(?=.*[A-Z])(?:\D*\d){2}")

_MR_PREFIXED = re.compile(r"\bMR\d{6,10}\b")
_MBI = re.compile(
    r"\b[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?"
    r"[AC-HJKMNP-RT-Y]{2}\d{2}\b"
)
_DEA = re.compile(r"\b[ABFGMPRX][A-Z9]\d{7}\b")
_NPI = re.compile(r"(?i:\bNPI\b)[ \t]*(?:[:#]|no\.?|number)?[ \t]*(?P<v>\d{10})\b")
_VIN = re.compile(r"\b[A-HJ-NPR-Z0-9]{17}\b")
_UDI_ALONE = re.compile(_UDI)
# A hardware (MAC) address: six pairs of hex digits joined by colons or hyphens.
_MAC = re.compile(
    r"(?<![\w:-])(?:[0-9A-Fa-f]{2}([:-]))(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![\w:-])"
)
# HL7 v2 PID segment: PID-2 and PID-3 hold the patient's identifiers.
_HL7_PID = re.compile(r"^PID\|[^|\n]*\|(?P<a>[^|\n^]*)[^|\n]*\|(?P<v>[^|\n^~]+)", re.MULTILINE)


def recognize_ids(text: str) -> list[Span]:
    """Record, plan, account, licence, vehicle, device and biometric numbers.

    Context words are required, except for values whose format carries a check: VINs
    (check digit), DEA numbers (checksum), GS1 UDIs, Medicare beneficiary identifiers and
    ``MR``-prefixed record numbers, and for MAC addresses and HL7 ``PID`` identifiers. A
    contextual value needs at least four digits (five for record numbers, two for plates
    and biometric references, which may be hexadecimal).
    """
    out: list[Span] = []
    for pattern, label, score, source, digits in _RULES:
        for m in pattern.finditer(text):
            if digits.match(m.group("v")):
                out.append(Span(m.start("v"), m.end("v"), label, score, source))
    for m in _BIOMETRIC_DIRECT.finditer(text):
        # four digits, or two in a prefixed reference ("ft:dedcdaa46b")
        if _FOUR_DIGITS.match(m["v"]) or (_TWO_DIGITS.match(m["v"]) and ":" in m["v"]):
            out.append(Span(m.start("v"), m.end("v"), PiiLabel.BIOMETRIC, 0.92, "biometric"))
    for m in _DEVICE_DIRECT.finditer(text):
        if _SERIAL_SHAPE.match(m["v"]):
            out.append(Span(m.start("v"), m.end("v"), PiiLabel.DEVICE, 0.8, "device"))
    for m in _VEHICLE.finditer(text):
        if _PLATE_SHAPE.match(m["v"]) and len(m["v"]) >= 4:
            out.append(Span(m.start("v"), m.end("v"), PiiLabel.VEHICLE, 0.8, "plate"))
    out += spans_of(_MR_PREFIXED, text, PiiLabel.MRN, 0.8, "mrn")
    out += spans_of(_MBI, text, PiiLabel.HEALTH_PLAN, 0.7, "mbi")
    out += spans_of(_DEA, text, PiiLabel.LICENSE, 0.7, "dea", validate=lambda m: dea_valid(m[0]))
    out += spans_of(
        _NPI, text, PiiLabel.LICENSE, 0.9, "npi", group="v", validate=lambda m: npi_valid(m["v"])
    )
    out += spans_of(
        _VIN,
        text,
        PiiLabel.VEHICLE,
        0.9,
        "vin",
        validate=lambda m: vin_valid(m[0]) and not m[0].isdigit(),
    )
    out += spans_of(_UDI_ALONE, text, PiiLabel.DEVICE, 0.85, "udi")
    out += spans_of(_MAC, text, PiiLabel.DEVICE, 0.8, "mac")
    for m in _HL7_PID.finditer(text) if "PID|" in text else ():
        for group in ("a", "v"):
            start, end = m.span(group)
            if end > start and any(c.isdigit() for c in m[group]):
                out.append(Span(start, end, PiiLabel.MRN, 0.9, "mrn"))
    return out
