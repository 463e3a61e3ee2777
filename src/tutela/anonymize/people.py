"""People, organisations and professions found by rules (NER adds to these when installed)."""

from __future__ import annotations

import re

from tutela.anonymize.matching import spans_of
from tutela.anonymize.spans import PiiLabel, Span


def _words(text: str) -> list[str]:
    return text.split()


_NAME = r"(?:Mc|Mac|O'|Al-|D')?[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?"
_CAPS_NAME = r"(?:Mc|Mac|O'|AL-)?[A-Z]{2,}(?:[-'][A-Z]{2,})?"
_TITLED = re.compile(
    r"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Nurse|Officer|Trooper)\.?[ \t]+"
    rf"(?P<v>{_NAME}(?:[ \t]+[A-Z]\.)?(?:[ \t]+{_NAME})?)"
)
_NAME_CONTEXT = re.compile(
    r"(?:\b(?:[Pp]atient|[Pp]t|[Nn]ame|[Ss]on|[Dd]aughter|[Ww]ife|[Hh]usband|[Mm]other|[Ff]ather"
    r"|[Ss]pouse|[Ss]ister|[Bb]rother|[Nn]iece|[Nn]ephew|[Cc]ontact|[Ss]igned|[Gg]uardian"
    r"|[Cc]aregiver|[Pp]roxy|[Kk]in|[Cc]lient|[Ff]rom|[Ss]ender|[Pp]rovider|[Pp]rescriber"
    r"|[Rr]ep|[Bb]y)"
    r"(?:[ \t]+name)?[ \t]*[:,-]?[ \t]*(?:is[ \t]+)?)"
    rf"(?P<v>{_NAME}(?:[ \t]+[A-Z]\.)?[ \t]+{_NAME}|{_NAME},[ \t]+{_NAME}"
    rf"|{_CAPS_NAME},[ \t]+{_CAPS_NAME})(?![a-z])"
)
# "J. Whitlock, MD", "Ana Ruiz, NP", "Lindholm, Esme MD": a name before a credential.
_CREDENTIALED = re.compile(
    rf"(?P<v>(?:[A-Z]\.[ \t]+|{_NAME}[ \t]+)?{_NAME}(?:,[ \t]+{_NAME})?)"
    r",?[ \t]+(?:MD|DO|NP|PA-C|RN|PharmD|LCSW|MSW|CNP|APRN|DNP|PhD)\b"
)
# A name standing alone between field separators of a header ("-- Oduya, Dagny --",
# "| Noor McTavish |") or after "for" and before a separator.
_FIELD_NAME = re.compile(
    rf"(?:--|\||\bfor)[ \t]+(?P<v>{_NAME}(?:[ \t]+{_NAME})?,?[ \t]+{_NAME}"
    rf"|{_CAPS_NAME},[ \t]+{_CAPS_NAME})(?=[ \t]*(?:--|\||\(|,|;|$|MRN\b))",
    re.MULTILINE,
)
_GREETING = re.compile(rf"\b(?:Hi|Hello|Dear)[ \t]+(?P<v>{_NAME})(?=[ \t]*,)")
_NOT_NAMES = frozenset(
    _words(
        "The This That Patient Pt Name Mr Mrs Ms Dr Report Signed Reviewed Verified "
        "Ordering Attending Resident Nurse Sincerely Regards Copy Prescriber Provider "
        "Physician Please Discharging Referring Dictated Findings Results Plan Impression "
        "Comparison Seen Colleague Colleagues Sir Madam Doctor Team All Everyone "
    )
)


def recognize_person_rules(text: str) -> list[Span]:
    """Names after titles (``Dr.``, ``Mrs.``), relationship or field words (``Patient:``,
    ``Next of kin:``) or before a credential (``, MD``)."""
    out = spans_of(_TITLED, text, PiiLabel.PERSON, 0.85, "title", group="v")
    # Rule names outrank the model's 0.8, so a name the model cuts short or mislabels
    # ("Hawthorne, [Isidore]" as an organisation) is kept whole.
    out += spans_of(_NAME_CONTEXT, text, PiiLabel.PERSON, 0.82, "name_context", group="v")
    out += spans_of(_FIELD_NAME, text, PiiLabel.PERSON, 0.82, "name_field", group="v")
    out += spans_of(
        _GREETING,
        text,
        PiiLabel.PERSON,
        0.82,
        "greeting",
        group="v",
        validate=lambda m: m["v"] not in _NOT_NAMES,
    )
    for m in _CREDENTIALED.finditer(text):
        start, end = m.span("v")
        for word in m.group("v").split():
            if word.strip(",.") not in _NOT_NAMES:
                break
            start = text.index(word, start) + len(word)
        while start < end and text[start] in " \t,":
            start += 1
        if start < end:
            out.append(Span(start, end, PiiLabel.PERSON, 0.82, "credential"))
    return out


_ORG_HEAD = (
    r"(?:(?:St\.|Saint|Mount|Mt\.)\s+)?(?:[A-Z][\w'&.-]*[ \t]+(?:(?:of|and|&|the)[ \t]+)?){1,5}"
)
_ORG = re.compile(
    _ORG_HEAD
    + r"(?:Hospital|Medical Center|Medical Centre|Clinic|Health System|Healthcare|Infirmary"
    r"|Medical Group|Pharmacy|Health Center|Rehabilitation Center|Nursing Home|University"
    r"|Inc\.?|LLC|LLP|L\.L\.C\.|Corp\.?|Corporation|Co\.|Company|Associates|Group|Partners"
    r"|Services|Agency|Foundation|Authority|District|Institute|Hospice|Practice|Living"
    r"|Center|Centre|Schools?|College|Academy|Bank|Church|Union|Society|Trust|Council"
    r"|Department|Ministries|Logistics|Manufacturing|Courier|Freight|Staffing)(?![\w])"
)
_ORG_LEAD_WORDS = frozenset(
    _words(
        "The Discharged Transferred Seen Admitted Referred Filled Dispensed Performed "
        "Employer At In From To Via Records Prior Follow Follow-up Please Contact Pt "
        "Patient Retired Works Worked Employed Results Copy Sent Faxed Called Emergency "
        "Radiology Department Laboratory Pharmacy "
    )
)


def recognize_organization_rules(text: str) -> list[Span]:
    """Names of hospitals, clinics, companies and agencies, by their last word (``Clinic``,
    ``Inc.``, ``LLC``, ``Associates``, ``Foundation``...)."""
    out: list[Span] = []
    for m in _ORG.finditer(text):
        start, end = m.span()
        words = m.group(0).split()
        while len(words) > 1 and words[0] in _ORG_LEAD_WORDS:
            start = text.index(words[1], start + len(words[0]))
            words.pop(0)
        if len(words) > 1:
            out.append(Span(start, end, PiiLabel.ORGANIZATION, 0.8, "org_rule"))
    return out


_OCCUPATIONS = (
    "accountant|actor|actress|architect|artist|attorney|baker|banker|barber|bartender|"
    "bookkeeper|bricklayer|butcher|carpenter|cashier|chef|chemist|clerk|coach|cook|"
    "counsell?or|courier|custodian|dancer|dental hygienist|dentist|designer|developer|"
    "dishwasher|dockworker|delivery driver|economist|editor|electrician|engineer|farmer|"
    "firefighter|"
    "fisherman|florist|foreman|gardener|hairdresser|handyman|housekeeper|janitor|jeweler|"
    "journalist|judge|laborer|labourer|landscaper|lawyer|librarian|lifeguard|lineman|"
    "locksmith|longshoreman|machinist|maid|mail carrier|manager|mason|mechanic|miner|"
    "musician|nanny|painter|paralegal|pastor|photographer|pilot|plumber|police officer|"
    "postal worker|professor|programmer|rancher|realtor|receptionist|roofer|sailor|"
    "salesman|saleswoman|scientist|secretary|security guard|seamstress|soldier|steelworker|"
    "student|surveyor|tailor|teacher|schoolteacher|technician|trucker|truck driver|typist|"
    "veterinarian|waiter|waitress|welder|writer|attendant|aide|hygienist|stylist|"
    "construction worker|factory worker|farm worker|warehouse worker|social worker|"
    "flight attendant|bus driver|cab driver|taxi driver|line cook|graphic designer|"
    "software engineer|dairy farmer|mail carrier|pharmacy technician|registered nurse|nurse|"
    "pharmacist|physician|therapist|paramedic|caregiver|teacher's aide|minister|priest|rabbi|"
    "imam|contractor|inspector|analyst|consultant|administrator|auditor|cashier"
)
_OCCUPATION = rf"(?:[a-z]+[ \t])?(?:{_OCCUPATIONS})s?"
# A job only counts with a phrase that says it is the person's job ("works as", "retired",
# "Occupation:"), so "nurse" and "pharmacist" in a care team stay unflagged.
_PROFESSION = re.compile(
    r"(?i:\b(?:works?|worked|working|employed|job|career)\s+(?:as|is)\s+(?:an?|the)\s+"
    r"|\b(?:occupation|profession|job(?:\s+title)?|employment)\s*[:-]?\s*(?:is\s+)?(?:an?\s+)?"
    r"|\b(?:retired|former|ex-|unemployed|part-time|full-time|self-employed)\s*"
    r"|\b(?:is|was|as)\s+an?\s+"
    r"|\b(?:y/?o|yo|y\.o\.|year-old|years? old)\s+(?:\w+\s+)?)"
    rf"(?P<v>{_OCCUPATION})\b"
)


_NOT_JOB_WORDS = frozenset(
    _words(
        "a an the retired former widowed divorced married single female male woman man old "
        "who with and is was "
    )
)


def recognize_profession(text: str) -> list[Span]:
    """Occupations introduced as someone's job (``works as a welder``, ``retired
    longshoreman``, ``Occupation: plumber``); i2b2's PROFESSION category."""
    out: list[Span] = []
    for m in _PROFESSION.finditer(text):
        start, end = m.span("v")
        head = m.group("v").split()[0].lower()
        if head in _NOT_JOB_WORDS and not re.fullmatch(_OCCUPATIONS, head):
            start = text.index(" ", start) + 1
        out.append(Span(start, end, PiiLabel.PROFESSION, 0.7, "profession"))
    return out
