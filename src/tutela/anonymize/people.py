"""People and organisations found by rules (NER adds to these when installed); jobs are in
:mod:`.professions`."""

from __future__ import annotations

import itertools
import re

from tutela.anonymize.clinical_lexicon import CLINICAL_LEXICON
from tutela.anonymize.matching import spans_of
from tutela.anonymize.spans import PiiLabel, Span


def _words(text: str) -> list[str]:
    return text.split()


# Letters of the Latin alphabets names are written in ("Róisín", "Bjørnstad", "Wróblewski",
# "Radosław"); Latin Extended-A counts as either case.
_UP = "A-ZÀ-ÖØ-Þ\u0100-\u017f"
_LO = "a-zß-öø-ÿ\u0100-\u017f"
_NAME = rf"(?:Mc|Mac|O'|Al-|D')?[{_UP}][{_LO}]+(?:[-'][{_UP}][{_LO}]+)?"
_CAPS_NAME = rf"(?:Mc|Mac|O'|D'|AL-)?[{_UP}]{{2,}}(?:[-'][{_UP}]{{2,}})?"
# Particles before a surname ("de Groot", "ter Horst", "Ní Bhriain", "Ó Súilleabháin",
# "St. Clair", "van der Berg"), in either case.
_PARTICLE = (
    r"(?:van|von|de|der|den|di|da|du|del|della|dos|das|ter|ten|le|la|Ní|Nic|Ó|Ua|Mac|bin|ibn"
    r"|al|el|St\.|San|Santa|VAN|VON|DE|DER|DEN|DI|DA|DU|DEL|TER|TEN|LE|LA|NÍ|Ó|ST\."
    r"|Van|Von|De|Der|Di|Da|Du|Del|Della|Ter|Ten|Le|La)"
)
_SURNAME = rf"(?:{_PARTICLE}[ \t]+){{0,2}}{_NAME}"
_CAPS_SURNAME = rf"(?:{_PARTICLE}[ \t]+){{0,2}}{_CAPS_NAME}"
_TITLED = re.compile(
    r"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Nurse|Officer|Trooper|Madam|Mdm)\.?[ \t]+"
    rf"(?P<v>(?:{_NAME}(?:[ \t]+[A-Z]\.)?[ \t]+)?{_SURNAME})"
)
_NAME_CONTEXT = re.compile(
    r"(?:\b(?:[Pp]atient|[Pp]t|[Nn]ame|[Ss]on|[Dd]aughter|[Ww]ife|[Hh]usband|[Mm]other|[Ff]ather"
    r"|[Ss]pouse|[Ss]ister|[Bb]rother|[Nn]iece|[Nn]ephew|[Cc]ontact|[Ss]igned|[Gg]uardian"
    r"|[Cc]aregiver|[Pp]roxy|[Kk]in|[Cc]lient|[Ff]rom|[Ss]ender|[Pp]rovider|[Pp]rescriber"
    r"|[Rr]ep|[Bb]y|[Pp]hysician|[Cc]linician|[Nn]urse|[Mm]idwife|[Cc]arer|[Ss]een[ \t]+with"
    r"|[Hh]anded[ \t]+over[ \t]+to|[Rr]eferred[ \t]+by|Kia[ \t]+ora|NOK|nok|d/w"
    # the rest of the family and household ("grandson", "great-aunt", "daughter-in-law")
    r"|(?:[Gg]reat-)?(?:[Gg]rand)?(?:[Ss]on|[Dd]aughter|[Mm]other|[Ff]ather|[Cc]hild|[Aa]unt"
    r"|[Uu]ncle|[Nn]iece|[Nn]ephew)|[Cc]ousin|[Pp]artner|[Nn]eighbou?r|[Ff]riend|[Ff]ianc[ée]e?)"
    r"(?:-in-law)?(?:[ \t]+name)?[ \t]*[:,-]?[ \t]*(?:is[ \t]+)?"
    # field labels that take a colon ("RE: Ruiz, Ana", "PATIENT: ...", "Rx intake: ...")
    r"|\b(?:RE|Re|To|PATIENT|NAME|CLIENT|[Ii]ntake|[Rr]egarding|[Mm]ember|[Pp]articipant"
    r"|[Ss]ubscriber|[Rr]esident):[ \t]*"
    # the clinician a form names by their role ("ED attending: Ana Ruiz", "Scribe: ...")
    r"|(?i:\b(?:attending|consultant|registrar|surgeon|physician|clinician|author|scribe"
    r"|witness|chaperone|(?:seen|dictated|ordered|reviewed)[ \t]+by)):[ \t]*"
    # a letter's sign-off, the name on the next line ("Yours sincerely,\nAna Ruiz")
    r"|(?i:\b(?:yours[ \t]+(?:sincerely|faithfully|truly)|kind[ \t]+regards|regards"
    r"|best[ \t]+wishes|many[ \t]+thanks),?)[ \t]*\n[ \t]*)"
    rf"(?P<v>(?:[A-Z]\.[ \t])?{_NAME}(?:[ \t][A-Z]\.)?[ \t]{_SURNAME}|{_SURNAME},[ \t]+{_NAME}"
    rf"|{_CAPS_SURNAME},[ \t]+{_CAPS_NAME})(?![{_LO}])"
)
CREDENTIALS = (
    r"(?:MD|DO|NP|NP-C|PA-C|RN|PharmD|LCSW|MSW|CNP|APRN|DNP|PhD|DDS|DMD|FNP|MBBS|MBChB|OD|LVN"
    r"|LPN|BSN|RPh|MA)\b(?![-/])"
)
"""Clinicians' credentials written after a name ("Ana Ruiz, NP", "T. Obi, MBChB")."""
# "J. Whitlock, MD", "Ana Ruiz, NP", "Lindholm, Esme MD": a name before a credential.
_CREDENTIALED = re.compile(
    rf"(?P<v>(?:[A-Z]\.[ \t]+|{_NAME}[ \t]+)?(?:[A-Z]\.[ \t]+)?{_SURNAME}(?:,[ \t]+{_NAME})?"
    rf"|{_CAPS_NAME},[ \t]+{_CAPS_NAME})"
    rf",?[ \t]+\(?{CREDENTIALS}"
)
# HL7 v2 person name (XPN): "FAMILY^GIVEN^MIDDLE" between field separators.
_HL7_NAME = re.compile(r"(?<=\|)(?P<v>[A-Z][A-Za-z'-]+\^[A-Z][A-Za-z'-]+(?:\^[A-Za-z.'-]*)*)(?=\|)")
# A name, in any case, just before an e-mail address that spells it ("from ana ruiz
# (ruiz.a@example.org)").
_NAME_BEFORE_EMAIL = re.compile(
    r"(?P<v>\b[A-Za-z][a-z'-]+(?:[ \t]+[A-Za-z][a-z'-]+){1,2})[ \t]*[(<][ \t]*"
    r"(?P<local>[A-Za-z0-9._%+-]+)@"
)
# A name standing alone between field separators of a header ("-- Oduya, Dagny --",
# "| Noor McTavish |") or after "for" and before a separator.
_FIELD_NAME = re.compile(
    rf"(?:--|\||>|\bfor)[ \t]+(?P<v>{_NAME}(?:[ \t]+{_NAME})?,?[ \t]+{_SURNAME}"
    rf"|{_SURNAME},[ \t]+{_NAME}|{_CAPS_SURNAME},[ \t]+{_CAPS_NAME})"
    r"(?=[ \t]*(?:--|\||>|\(|,|;|$|MRN\b))",
    re.MULTILINE,
)
# Hospital label style: the surname in capitals, a comma, the given name ("OKAFOR, Nneka",
# "DE GROOT, Mei-Lin", "Ó SÚILLEABHÁIN, Leilani"), before punctuation, a number or an
# identifier's label rather than more words.
_SURNAME_FIRST = re.compile(
    rf"(?<![\w.])(?P<v>(?P<s>{_CAPS_SURNAME}),[ \t]+(?P<g>{_NAME}(?:[ \t]+[A-Z]\.)?))"
    r"(?=[ \t]*(?:[,;|()\n\u2013-]|$|DOB\b|d\.o\.b|MRN\b|NHS\b|UR\b|hosp|rec'd|\d)|[ \t]{2,})"
)
_NAME_BEFORE = re.compile(rf"[{_UP}&][\w.&'-]*[ \t]+$")
# A full name in capitals after a field label or before the patient's sex and age
# ("Patient: NNEKA OKAFOR", "Re: KEMI ADEBAYO-COLE", "(NNEKA OKAFOR, F, 91").
_CAPS_FULL = re.compile(
    r"(?:(?:\b(?:Patient|Name|Participant|Member|Subscriber|Client|Resident|Re|RE|From|To"
    r"|Regards|Sincerely|for|on|Dear)\b[:,]?|\()[ \t]+|\()"
    rf"(?P<v>{_CAPS_NAME}(?:[ \t]+(?:[A-Z]\.[ \t]+)?{_CAPS_SURNAME}){{1,2}})(?![\w.'-])"
)
# ... or after any field label or spaced dash when the sex, age or a record number follows
# ("XR chest - NNEKA OKAFOR, 37M", "review: KEMI ADEBAYO (UR 55120)").
_CAPS_FIELD = re.compile(
    r"(?:\b[A-Za-z]+:|[ \t][-\u2013])[ \t]+"
    rf"(?P<v>{_CAPS_NAME}(?:[ \t]+(?:[A-Z]\.[ \t]+)?{_CAPS_SURNAME}){{1,2}})"
    r"(?=,[ \t]*(?:\d|[MF]\b|DOB\b|MRN\b|UR\b|NHS\b|hosp)|[ \t]*\((?:UR|MRN|NHS|\d|[MF]\b)"
    r"|[ \t]+[-\u2013][ \t]+(?:DOB\b|d\.o\.b|\d))"
)
# A given name opening a sentence before what people do ("Tendai reports...", "Ines is
# aged 40", "Kofi worked for..."), the name not a pronoun, role or clinical word.
_GIVEN_OPENING = re.compile(
    rf"(?:^|[.;:!?][ \t]+|\n[ \t]*(?:[-*\u2022][ \t]+)?)(?P<v>{_NAME}(?:[ \t]+{_SURNAME})?)"
    r"[ \t]+(?=(?:is|was)[ \t]+(?:aged\b|\d|in[ \t]+(?:his|her|their)\b|an?[ \t]"
    r"|(?:\w+-)+year)|(?:reports|reported|says|said|states|stated|denies|denied|describes"
    r"|worked|works|lives|lived|rang|phoned|visited|attended|declined|agreed|wants|wishes"
    r"|prefers|remains|became|continues|manages|uses|increasingly|to[ \t]+(?:recheck"
    r"|review|call|ring|phone|see))\b)",
    re.MULTILINE,
)
# A name in lower case where the writer gives it ("hi my name is ana ruiz and...").
_NAME_GIVEN = re.compile(
    r"(?i:\bmy[ \t]+name[ \t]+is|\bname'?s)[ \t]+"
    r"(?P<v>[^\W\d_][\w'-]*(?:[ \t]+[^\W\d_][\w'-]*){0,3}?)"
    r"(?=[ \t]+(?:and|but|from|i|im|i'm|my|here)\b|[ \t]*(?:[,.;!?\n]|$))",
    re.MULTILINE,
)
# Words in capitals that head sections, never surnames ("PLAN, Continue", "HISTORY, ...").
_CAPS_HEADINGS = frozenset(
    _words(
        "PLAN HISTORY NOTE NOTES ASSESSMENT IMPRESSION DIAGNOSIS REPORT SUMMARY ALLERGIES "
        "MEDICATIONS MEDS EXAM EXAMINATION FINDINGS RESULTS SUBJECTIVE OBJECTIVE PROBLEM "
        "LIST DISCHARGE ADMISSION REFERRAL TRIAGE HANDOVER SBAR LOG VISIT HOME RE FROM TO "
        "PATIENT NAME DATE DOB MRN NHS URGENT ROUTINE NB PS CC HPI PMH PSH ROS ED ICU GP OT "
        "SW RN MD PT DR MR MRS MS NOK AND OR THE OF FOR WITH NIL NONE YES NO CT MRI XR US "
        "ECG CXR BP HR RR FBC CRP UE LFT TFT LLP LLC INC LTD PLC CORP CO PTY PC PA"
    )
)
# A pronoun, role or relation opening a sentence is no given name.
_NOT_GIVEN = frozenset(
    _words(
        "She He They It This That There Here Patient Pt Mum Mom Dad Son Daughter Wife "
        "Husband Partner Sister Brother Mother Father Family Nurse Doctor Staff Team Everyone "
        "Nobody Someone Client Resident Carer Caregiver Neighbour Neighbor Friend Physio "
        "Who Which What Today Yesterday Tomorrow Pain Mood Appetite Sleep Mobility Wound "
        "Baby Infant Child Grandson Granddaughter Niece Nephew Aunt Uncle Cousin Landlord "
        "Interpreter Chaplain Surgeon Consultant Registrar Pharmacist Paramedic Police "
        "Ambulance School Work Home Hospital Ward Clinic Practice Surgery Service"
    )
)
# Lower-case words a writer uses after "my name is" that are not names.
_NOT_LOWER_NAMES = frozenset(
    _words("not on in at the a an spelt spelled written wrong still now also just really")
)
_GREETING = re.compile(rf"\b(?:Hi|Hello|Dear)[ \t]+(?P<v>{_NAME})(?=[ \t]*,)")
# A team member named in brackets after the role ("SW (Ana):", "OT (Kofi) visited").
_ROLE_NAME = re.compile(
    r"\b(?:SW|OT|PT|RN|EN|GP|SLP|SALT|HCA|AIN|Physio|Dietitian|Chaplain|Pharmacist|Nurse"
    rf"|Doctor|Interpreter)[ \t]*\((?P<v>{_NAME}(?:[ \t]+{_SURNAME})?)\)"
)
# A given name before the person's role in brackets ("Tevita (physio)", "Ana (CN)").
_NAME_ROLE = re.compile(
    rf"\b(?P<v>{_NAME}(?:[ \t]+{_SURNAME})?)[ \t]*\((?:CN|RN|EN|CNS|NP|NUM|physio|OT|SW|GP"
    r"|SLP|SALT|dietitian|pharmacist|chaplain|interpreter|carer|daughter|son|wife|husband"
    r"|partner|mother|father|sister|brother|niece|nephew|friend|neighbou?r|NOK|POA)\)"
)
# A person after a verb of care ("Counselled Ana on...", "Reassured Kofi Mensah."), after
# "for", "with" or "to" at the end of a clause ("data received for Ana Ruiz."), after any
# field label before the age, sex or record number ("Triage: Ana Ruiz, 97yo"), before an
# age in brackets ("Ana (93 yo)"), or introducing themselves ("Hi this is Ana, ...").
_CARED_FOR = re.compile(
    r"\b(?:[Cc]ounsell?ed|[Ee]ducated|[Rr]eassured|[Ee]xamined|[Ii]nformed|[Rr]eminded"
    r"|[Tt]hanked|[Ee]ncouraged|[Aa]sked|[Tt]old|[Uu]pdated|[Gg]reeted|[Ww]elcomed)[ \t]+"
    rf"(?P<v>{_NAME}(?:[ \t]{_SURNAME})?)(?=[ \t]+[a-z]|[ \t]*[,.;:]|[ \t]*$)",
    re.MULTILINE,
)
_CLAUSE_END_NAME = re.compile(
    rf"\b(?:for|with|to)[ \t]+(?P<v>{_NAME}[ \t]{_SURNAME})(?=[ \t]*(?:[.;,(\n]|$))"
)
_LABELLED_NAME = re.compile(
    rf"\b[A-Za-z]+:[ \t]+(?P<v>{_NAME}[ \t]{_SURNAME}|{_SURNAME},[ \t]{_NAME})"
    r"(?=,[ \t]*(?:\d|[MF]\b|MRN\b|DOB\b|aged?\b|UR\b|NHS\b))"
)
_NAME_AGED = re.compile(
    rf"\b(?P<v>{_NAME}(?:[ \t]{_SURNAME})?)[ \t]*\((?:\d{{1,3}}[ \t]*(?:yo|y/o|y\.o\.|years?"
    r"|yrs?)\b|\d{1,3}[ \t]?[MF]\b|[MF][,/][ \t]*\d)"
)
# A name cell opening a row, or after a time stamp or a bar, before the age and sex
# ("Said Iron Shell, 99 yr old male", "DORVIL Marilou   70 yrs female", "Xaba, Jenalyn |
# 32 yr old lady"): a roster or triage line.
_NAME_CELL = (
    rf"(?:{_NAME}|{_CAPS_NAME})(?:[ \t]+(?:[A-Z]\.[ \t]+)?(?:{_SURNAME}|{_CAPS_SURNAME})){{1,2}}"
    rf"|(?:{_SURNAME}|{_CAPS_SURNAME}),[ \t]+(?:{_NAME}|{_CAPS_NAME})"
)
_AGE_SEX = (
    r"\d{1,3}[ \t]*(?:(?:yo|y/o|y\.o\.|yrs?|years?)(?:[ \t-]old)?|-year-old|[ \t]year[ \t]old)?"
    r"[ \t]*(?:male|female|man|woman|lady|gentleman|boy|girl|M|F)\b"
)
_NAME_BEFORE_AGE_SEX = re.compile(
    rf"(?:^|[ \t]{{2,}}|\|[ \t]*)(?P<v>{_NAME_CELL})"
    rf"(?:,[ \t]*|[ \t]{{2,}}|[ \t]*\|[ \t]*){_AGE_SEX}",
    re.MULTILINE,
)
# A given name after a lower-case word and before an age of 90 or more, set off by a
# comma or a bracket ("lives with her gran Tomasina, 96", "the great-aunt Ola (91)"); not
# a reading with its unit or percentage ("sats Normal, 94%").
_NAME_BEFORE_OLD_AGE = re.compile(
    rf"(?<=[a-z\u00e0-\u017f][ \t])(?P<v>{_NAME})(?:,[ \t]*|[ \t]*\()(?:9\d|1[0-2]\d)"
    r"(?![\d.,%/])(?![ \t]*(?:%|mg|mcg|ml|kg|g\b|bpm|mm|cm|units?\b|/))"
)
# Someone to ring ("asked to ring Ana on 0161...", "call Kofi on Monday").
_TO_CALL = re.compile(
    r"\b(?:ring|call|phone|text|contact|rang|called|phoned)[ \t]+"
    rf"(?P<v>{_NAME}(?:[ \t]{_SURNAME})?)(?=[ \t]+on\b)"
)
_SELF_NAMED = re.compile(rf"(?i:\b(?:this[ \t]+is|it'?s)[ \t]+)(?P<v>{_NAME})(?=[ \t]*,)")
# Calendar words that take those places too ("this is Monday,", "with March.").
_CALENDAR = frozenset(
    _words(
        "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March "
        "April May June July August September October November December Christmas Easter"
    )
)
# An initial and a surname ("T. Okafor", "B. di Lorenzo", "G. Ó Súilleabháin"); a genus
# abbreviated before its species ("E. Coli", "H. Pylori": lexicon words) is no name, nor
# a field's value before the next label ("Sex: F. Race: declined").
_INITIAL_SURNAME = re.compile(
    rf"(?<![\w.])(?P<v>[{_UP}]\.(?:[ \t]*[{_UP}]\.)?[ \t]+{_SURNAME}"
    rf"|[{_UP}]\.(?:[ \t]*[{_UP}]\.)?[ \t]+{_CAPS_SURNAME})(?![\w'-])"
)
# A name standing alone between spaced dashes ("VISIT LOG - Ana Ruiz - 12 High Street").
_DASHED_NAME = re.compile(
    rf"[ \t][-\u2013][ \t]+(?P<v>(?:[{_UP}]\.[ \t]+)?{_NAME}(?:[ \t]+[A-Z]\.)?[ \t]+{_SURNAME}"
    rf"|{_SURNAME},[ \t]+{_NAME})(?=[ \t]+[-\u2013][ \t]|[ \t]*\()"
)
_MONTH_START = (
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG"
    r"|SEP|OCT|NOV|DEC)"
)
# A name in lower case after "for", "from" or "note" and before a date, an e-mail address
# or the patient's sex and age ("notes for ana ruiz 3/4/24", "from ana ruiz <...").
_LOWER_NAME = re.compile(
    r"\b(?:for|from|note|notes)[ \t]+"
    r"(?!(?:for|from|the|a|an|to|on|of|my|his|her|their)\b)"
    r"(?P<v>[a-zß-ÿ\u0100-\u017f][\w'-]+(?:[ \t]+[a-zß-ÿ\u0100-\u017f][\w'-]*){1,3}?)"
    r"(?=[ \t]+(?:on[ \t]+)?(?:\d{1,2}(?:[./-](?:\d{1,2}|[ivxIVX]+)[./-]\d\d"
    r"|(?:st|nd|rd|th)?[ \t]+"
    rf"(?:of[ \t]+)?{_MONTH_START})|the[ \t]+\w+[ \t]+of\b|{_MONTH_START}[a-z]*[ \t-]+\d)"
    r"|[ \t]*<|[ \t]+[MF](?:/|,[ \t]*)?\d|[ \t]+\d{1,3}[ \t]?[MF]\b)"
)
# A relative named by a given name only ("her grandson Mateo set up the account", "its
# Rosa again"); the next word must be lower case, so "son John Smith" is left to the rules
# that take the whole name.
_RELATIVE_NAME = re.compile(
    r"\b(?:(?:grand)?(?:son|daughter|child)|wife|husband|spouse|partner|mother|father|sister"
    r"|brother|niece|nephew|aunt|uncle|cousin|friend|neighbou?r|caregiver|it'?s"
    r"|[Ll]ives[ \t]+(?:with|w/))"
    rf"[ \t]+(?P<v>{_NAME})(?=[ \t]+[a-z]|[ \t]*[,.;]|[ \t]*$)",
    re.MULTILINE,
)
_NOT_NAMES = frozenset(
    _words(
        "The This That Patient Pt Name Mr Mrs Ms Dr Report Signed Reviewed Verified "
        "Ordering Attending Resident Nurse Sincerely Regards Copy Prescriber Provider "
        "Physician Please Discharging Referring Dictated Findings Results Plan Impression "
        "Comparison Seen Colleague Colleagues Sir Madam Doctor Team All Everyone "
    )
)


def _between_labels(text: str, m: re.Match[str]) -> bool:
    """A field's value right after one label and before the next ("Sex: F. Race: ...")."""
    return _LABEL_END.search(text, max(0, m.start() - 4), m.start()) is not None and (
        _LABEL_NEXT.match(text, m.end()) is not None
    )


_LABEL_END = re.compile(r":[ \t]*$")
_LABEL_NEXT = re.compile(r"[ \t]*:")


def _clinical_word(word: str) -> bool:
    """A word of the clinical lexicon or a section heading in capitals."""
    bare = word.strip(".,'")
    return bare.upper() in _CAPS_HEADINGS or bare.lower() in CLINICAL_LEXICON


# Everyday lower-case words that follow "for" or "from" before a date ("for review on
# 3/4", "from home on 2/5").
_COMMON_LOWER = frozenset(
    _words(
        "review follow up home work school bloods results surgery appointment visit admission "
        "discharge clinic ward today tomorrow yesterday week weeks month months day days year "
        "years all both each this that these those next last first second third further more "
        "repeat routine urgent booked planned scheduled starting started since due until "
        "period onwards onward night nights morning evening afternoon"
    )
)


_FUNCTION_WORDS = frozenset(
    _words("the a an my our your his her their to from for and or of at by with via team ")
)


def _everyday(word: str) -> bool:
    """A function word, an everyday lower-case word or a clinical word."""
    return word in _FUNCTION_WORDS or word in _COMMON_LOWER or _clinical_word(word)


def _spelled_in_email(m: re.Match[str]) -> tuple[int, int] | None:
    """The words before an e-mail address that its local part spells, from the first such
    word to the last word (which must be spelled too)."""
    local = m["local"].lower()
    words = list(re.finditer(r"\S+", m["v"]))
    while words and any(w[0].lower() in _FUNCTION_WORDS for w in words):
        words.pop(0)  # "message from ana ruiz": the name starts after the last such word
    spelled = [len(w[0]) > 2 and w[0].lower() in local for w in words]
    if words and not any(spelled):
        # the local part opens with the name's initials and then digits or a dot
        # ("ana ruiz (ar4471@...)")
        for n in (3, 2):
            tail = words[-n:]
            initials = "".join(w[0][0].lower() for w in tail)
            if (
                len(tail) == n
                and all(len(w[0]) > 1 and not _everyday(w[0]) for w in tail)
                and re.match(rf"{initials}[\d.]", local)
            ):
                start = m.start("v")
                return start + tail[0].start(), start + tail[-1].end()
        return None
    if not spelled or not spelled[-1]:
        return None
    first = spelled.index(True)
    if first == len(words) - 1 and len(words) > 1 and not spelled[-2]:
        first -= 1  # "ana ruiz (ruiz.a@...)": the given name is often an initial only
    start = m.start("v")
    return start + words[first].start(), start + words[-1].end()


def recognize_person_rules(text: str) -> list[Span]:
    """Names after titles (``Dr.``, ``Mrs.``), relationship or field words (``Patient:``,
    ``Next of kin:``) or before a credential (``, MD``)."""
    out = spans_of(_TITLED, text, PiiLabel.PERSON, 0.85, "title", group="v")
    # Rule names outrank the model's 0.8, so a name the model cuts short or mislabels
    # ("Hawthorne, [Isidore]" as an organisation) is kept whole.
    # ... unless the "name" begins an organisation's name ("from Our Lady of Lourdes Hospital")
    for m in _NAME_CONTEXT.finditer(text):
        start, end = m.span("v")
        org = _ORG.match(text, start)
        words = [w.strip(",") for w in m["v"].split()]
        if _clinical_word(words[0]) or any(
            w in _NOT_NAMES or w.lower() in _SPECIALTIES or w.lower() in _TREATED for w in words
        ):
            continue  # "Patient: Stable overnight", "Reviewed by: Vascular Surgery"
        if org is None or org.end() <= end:
            out.append(Span(start, end, PiiLabel.PERSON, 0.82, "name_context"))
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
    out += spans_of(
        _RELATIVE_NAME,
        text,
        PiiLabel.PERSON,
        0.75,
        "relative",
        group="v",
        validate=lambda m: m["v"] not in _NOT_NAMES,
    )
    out += spans_of(_ROLE_NAME, text, PiiLabel.PERSON, 0.8, "name_role", group="v")
    out += spans_of(
        _NAME_ROLE,
        text,
        PiiLabel.PERSON,
        0.8,
        "name_role",
        group="v",
        validate=lambda m: (
            m["v"].split()[0] not in _NOT_GIVEN | _NOT_NAMES
            and not _clinical_word(m["v"].split()[0])
        ),
    )
    for pattern in (_INITIAL_SURNAME, _DASHED_NAME):
        for m in pattern.finditer(text):
            words = m["v"].replace(",", " ").split()
            if any(_clinical_word(w) for w in words) or _between_labels(text, m):
                continue
            out.append(Span(m.start("v"), m.end("v"), PiiLabel.PERSON, 0.8, "name_field"))
    for m in _LOWER_NAME.finditer(text):
        words = m["v"].split()
        if not any(w in _FUNCTION_WORDS or _clinical_word(w) or w in _COMMON_LOWER for w in words):
            out.append(Span(m.start("v"), m.end("v"), PiiLabel.PERSON, 0.78, "name_given"))
    named = (
        _CARED_FOR,
        _CLAUSE_END_NAME,
        _LABELLED_NAME,
        _NAME_AGED,
        _SELF_NAMED,
        _TO_CALL,
        _NAME_BEFORE_AGE_SEX,
        _NAME_BEFORE_OLD_AGE,
    )
    for pattern in named:
        for m in pattern.finditer(text):
            words = m["v"].split()
            if not any(
                w in _NOT_GIVEN
                or w in _NOT_NAMES
                or w in _CALENDAR
                or _clinical_word(w)
                or w.lower() in _SPECIALTIES
                or w.lower() in _TREATED
                for w in words
            ):
                out.append(Span(m.start("v"), m.end("v"), PiiLabel.PERSON, 0.78, "name_context"))
    for m in _SURNAME_FIRST.finditer(text):
        surname = m["s"].split()[-1]
        if _NAME_BEFORE.search(text, max(0, m.start() - 40), m.start()):
            continue  # "Marsh & Tully LLP, Dayton": the end of a longer name, not a surname
        if not _clinical_word(surname) and not _clinical_word(m["g"].split()[0]):
            out.append(Span(m.start("v"), m.end("v"), PiiLabel.PERSON, 0.82, "name_caps"))
    caps = itertools.chain(_CAPS_FULL.finditer(text), _CAPS_FIELD.finditer(text))
    for m in caps:
        if not any(_clinical_word(w) for w in m["v"].split()):
            out.append(Span(m.start("v"), m.end("v"), PiiLabel.PERSON, 0.82, "name_caps"))
    for m in _GIVEN_OPENING.finditer(text):
        first = m["v"].split()[0]
        if (
            first not in _NOT_GIVEN
            and not _NOT_NAMES.intersection(m["v"].split())
            and not _clinical_word(first)
        ):
            out.append(Span(m.start("v"), m.end("v"), PiiLabel.PERSON, 0.78, "name_opening"))
    for m in _NAME_GIVEN.finditer(text):
        words = m["v"].lower().split()
        if words and not _NOT_LOWER_NAMES.intersection(words):
            out.append(Span(m.start("v"), m.end("v"), PiiLabel.PERSON, 0.82, "name_given"))
    if "^" in text:
        out += spans_of(_HL7_NAME, text, PiiLabel.PERSON, 0.85, "hl7_name", group="v")
    if "@" in text:
        for m in _NAME_BEFORE_EMAIL.finditer(text):
            found = _spelled_in_email(m)
            if found is not None:
                out.append(Span(found[0], found[1], PiiLabel.PERSON, 0.82, "email_name"))
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
    r"(?:(?:St\.|Saint|Mount|Mt\.)\s+)?"
    r"(?:[A-Z][\w'&.-]*[ \t]+(?:(?:of|and|&|the|for|of[ \t]+the)[ \t]+)?){1,5}"
)
_ORG = re.compile(
    _ORG_HEAD
    + r"(?:Hospital|Medical Center|Medical Centre|Clinic|Health System|Healthcare|Infirmary"
    r"|Medical Group|Pharmacy|Health Center|Rehabilitation Center|Nursing Home|University"
    r"|Inc\.?|LLC|LLP|L\.L\.C\.|Corp\.?|Corporation|Co\.|Company|Associates|Group|Partners"
    r"|Services?|Agency|Foundation|Authority|District|Institute|Hospice|Practice|Living"
    r"|Center|Centre|Schools?|College|Academy|Bank|Church|Union|Society|Trust|Council"
    r"|Department|Ministries|Logistics|Manufacturing|Courier|Freight|Staffing"
    # surgeries, dispensaries and insurers as British, Irish and Australasian notes name
    # them; firms by their trade
    r"|Surgery|Physiotherapy|Pathology|Dispensary|Apothecary|Chemist|Dialysis[ \t]+Unit"
    r"|Aged[ \t]+Care|Assurance|Insurance|Mutual(?:[ \t]+Health)?|Health[ \t]+Fund"
    r"|Benefit[ \t]+Plan|Friendly[ \t]+Society|Fisheries|Bakery|Steelworks|Laboratories"
    r"|Diagnostics|Ltd\.?|Limited|plc|Lodge|Manor|Rest[ \t]+Home|Care[ \t]+Home"
    r"|Retirement[ \t]+Village)(?![\w])"
)
# A specialty before one of those words names a department, not a firm ("Vascular
# Surgery", "Chemical Pathology", "Respiratory Physiotherapy").
_SPECIALTIES = frozenset(
    _words(
        "general vascular cardiac cardiothoracic thoracic orthopaedic orthopedic plastic "
        "colorectal oral maxillofacial paediatric pediatric neuro breast hand spinal bariatric "
        "emergency elective robotic endocrine hepatobiliary transplant trauma day minor upper "
        "lower gi ent eye chemical clinical anatomical cellular molecular respiratory "
        "musculoskeletal outpatient inpatient community hospital renal home neonatal "
        "cosmetic dental major keyhole laparoscopic open urgent acute private public health "
        "travel dialysis"
    )
)
_DEPARTMENT_HEADS = frozenset(
    _words(
        "Surgery Physiotherapy Pathology Dialysis Insurance Clinic Service Services Unit "
        "Department Centre Center Team"
    )
)
# Words that name what a department treats ("Memory Clinic", "Heart Failure Service").
_TREATED = frozenset(
    _words(
        "memory fracture falls pain wound diabetes heart failure sleep stroke continence "
        "anticoagulation warfarin antenatal fertility skin hearing speech occupational "
        "physiotherapy pathology radiology oncology haematology hematology cardiology "
        "neurology nephrology gastroenterology respiratory rheumatology dermatology "
        "geriatric geriatrics aged palliative mental sexual vaccination immunisation "
        "immunization asthma copd epilepsy headache spinal cord injury burns plastic "
        "orthopaedics orthopedics urology gynaecology gynecology obstetric obstetrics "
        "maternity midwifery eating disorders addiction alcohol drug smoking cessation "
        "weight management lipid hypertension renal liver kidney breast colorectal "
        "endoscopy infusion imaging xray x-ray ultrasound rehabilitation rehab recovery "
        "discharge lounge admissions assessment triage outpatient outpatients"
    )
)
_CONNECTIVES = frozenset(_words("and & of for the"))
_ORG_LEAD_WORDS = frozenset(
    _words(
        "The Discharged Transferred Seen Admitted Referred Filled Dispensed Performed "
        "Employer At In From To Via Records Prior Follow Follow-up Please Contact Pt "
        "Patient Retired Works Worked Employed Results Copy Sent Faxed Called Emergency "
        "Radiology Department Laboratory Pharmacy Completed Attended Started Commenced "
        "Contacted Discussed Phoned Emailed Booked Joined Visited Left Finished Rang Resident "
        "Client Member of the and for "
    )
)


# A field whose value is an organisation, then a run of two to six capitalised words on
# the same line ("Employer: Kestrel Bay Seafoods", "payer=Sagebrush Advantage HMO",
# "Employer Cane River Sugar Mill requests..."); the run ends at a lower-case word or a
# separator. A bare "Plan:" heads a care plan, so only a named plan counts.
_ORG_FIELD = re.compile(
    r"(?i:\b(?:employer|employed[ \t]+by|payer|payor|insurer|insurance|health[ \t]+plan"
    r"|medical[ \t]+aid|DME|school|agency|company|vendor|supplier))"
    r"(?:[ \t]*[:=][ \t]*|[ \t]+)"
    r"(?P<v>[A-Z][\w'&.-]*(?:[ \t](?:(?:of|and|&|the|on|for)[ \t])?[A-Z][\w'&.-]*){1,5})"
    r"(?![\w'&-])"
)

# What a field holds when it names no one ("Employer: Not applicable", "School: Attends").
_NO_VALUE = frozenset(
    _words(
        "not none nil unknown n/a na self retired unemployed student yes no attends attended "
        "private pending see per same as"
    )
)


def recognize_organization_rules(text: str) -> list[Span]:
    """Names of hospitals, clinics, companies and agencies, by their last word (``Clinic``,
    ``Inc.``, ``LLC``, ``Associates``, ``Foundation``...) or by the field they fill
    (``Employer:``, ``payer=``)."""
    out: list[Span] = []
    for m in _ORG_FIELD.finditer(text):
        words = m["v"].split()
        # the name's own words may be clinical ("Prairie Medicaid MCO"), not all of them,
        # nor its first ("Attends Grade", "Not Applicable")
        first = words[0].lower()
        if not (
            first in CLINICAL_LEXICON
            or first in _NO_VALUE
            or words[0] in _NOT_NAMES
            or all(w.lower() in CLINICAL_LEXICON or w in _CALENDAR for w in words)
        ):
            out.append(Span(m.start("v"), m.end("v"), PiiLabel.ORGANIZATION, 0.82, "org_field"))
    for m in _ORG.finditer(text):
        start, end = m.span()
        words = m.group(0).split()
        while len(words) > 1 and words[0] in _ORG_LEAD_WORDS:
            start = text.index(words[1], start + len(words[0]))
            words.pop(0)
        if len(words) > 1 and not (
            any(w in _DEPARTMENT_HEADS for w in words[-2:])
            and all(
                w.lower() in _SPECIALTIES or w.lower() in _TREATED or w.lower() in CLINICAL_LEXICON
                for w in words[:-1]
                if w not in _DEPARTMENT_HEADS and w.lower() not in _CONNECTIVES
            )
        ):
            out.append(Span(start, end, PiiLabel.ORGANIZATION, 0.8, "org_rule"))
    return out
