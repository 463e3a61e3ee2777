"""False-positive guard for clinical content.

Generic PII detectors flag clinical codes as licences, doses as phone fragments and drug
names as people. This guard finds clinical expressions (ICD-10 codes, doses, vitals, lab
values, times, scores) and a lexicon of drugs and clinical abbreviations, and vetoes any
weakly-supported detection that lies inside one of them or consists only of lexicon words.
Names, places and organisations from the NER model also give up the characters that a
rule-found span of another label claims, and a lone model-found word that opens a line as
a field label or a sentence's first word ("Payer:", "Renal dosing") is dropped.
"""

from __future__ import annotations

import bisect
import itertools
import re

from tutela.anonymize.clinical_lexicon import CLINICAL_LEXICON
from tutela.anonymize.spans import PiiLabel, Span

_UNITS = (
    r"(?:mg|mcg|µg|ug|g|kg|ml|mL|L|dL|units?|U|IU|mEq|mmol|meq|mmHg|bpm|%|cm|mm|in|lbs?|"
    r"breaths/min|°[CF]|C|F)"
)
_CLINICAL_PATTERNS = (
    # ICD-10-CM codes (optionally after "ICD-10"), e.g. E11.9, I10, J45.909, S72.001A.
    re.compile(r"\b[A-TV-Z]\d{2}(?:\.[0-9A-Z]{1,4})?\b"),
    # CPT / LOINC-like codes after their name.
    re.compile(r"(?i)\b(?:CPT|LOINC|SNOMED|RxNorm|NDC)\s*(?:code)?\s*[:#]?\s*[\d-]{4,12}\b"),
    # Doses and amounts with units, including rates ("5 mg/kg/day").
    re.compile(rf"\b\d+(?:\.\d+)?\s?{_UNITS}(?:/(?:kg|day|d|hr|h|min|dL|L|m2|dose))*(?!\w)"),
    # Blood pressure and other slash vitals.
    re.compile(r"(?i)\b(?:BP|blood pressure)\s*(?:of|was|is|:)?\s*\d{2,3}/\d{2,3}(?:\s?mmHg)?"),
    re.compile(r"\b\d{2,3}/\d{2,3}\s?mmHg\b"),
    # Vitals and lab values by name.
    re.compile(
        r"(?i)\b(?:HR|pulse|RR|SpO2|O2\s?sat|sat|temp|temperature|weight|height|BMI|HbA1c|A1c"
        r"|WBC|Hgb|Hb|Hct|PLT|platelets|Na|K|Cl|CO2|BUN|Cr|creatinine|glucose|INR|PTT|PT|ALT"
        r"|AST|ALP|TSH|LDL|HDL|eGFR|GFR|troponin|BNP|CRP|ESR|lactate|potassium|sodium|"
        r"calcium|magnesium|albumin|bilirubin|ferritin|PSA|EF|ejection fraction)"
        r"\s*(?:of|was|is|:|=|at)?\s*[<>]?\d+(?:\.\d+)?(?:\s?(?:x\s?10\^?\d+/?L?|%|\w+/\w+))?"
    ),
    # Clock times.
    re.compile(r"\b(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:\s?[AaPp]\.?[Mm]\.?)?\b"),
    # Pain and severity scores, e.g. "7/10", "GCS 15", "NYHA class III".
    re.compile(r"\b\d{1,2}/10\b"),
    re.compile(
        r"(?i)\b(?:GCS|APGAR|NIHSS|ASA|NYHA|ECOG|Mallampati)\s*(?:class|score)?\s*\w{1,4}\b"
    ),
    # Dosing schedules and durations.
    re.compile(r"(?i)\b(?:x|for)\s?\d+\s?(?:days?|weeks?|months?|hours?|doses?)\b"),
    re.compile(r"(?i)\bq\d{1,2}h\b"),
    # Eponyms before the disease, sign, test or device they name ("Graves disease",
    # "Wolff-Parkinson-White pattern", "Bell's palsy", "Foley catheter").
    # Several eponyms may share the word ("Kernig and Brudzinski signs").
    re.compile(
        r"\b(?:Mc|Mac|O')?[A-Z][a-z]+(?:[-'][A-Z][a-z]+)*(?:'s)?"
        r"(?:(?:,|[ \t]+(?:and|or))[ \t]+(?:Mc|Mac|O')?[A-Z][a-z]+(?:[-'][A-Z][a-z]+)*(?:'s)?)*"
        # a grade or class may come between ("Forrest IIa ulcer", "Killip II class")
        r"(?:[ \t]+[IV]{1,4}[a-c]?)?"
        r"[ \t]+(?:disease|syndrome|pattern|phenomenon|signs?|tests?|maneuvers?"
        # not "type", "direct" or "speaking", which follow names too ("Mrs. Diaz type 2
        # diabetes", "Dr. Okafor direct line")
        r"|grade|screen|screening|protocol|questionnaire|inventory|interpreter"
        r"|score|criteria|scale|classification|formula|equation|catheter|procedure"
        r"|operation|maneuver|manoeuvre|palsy|lymphoma|sarcoma|tumou?r|encephalopathy|thyroiditis"
        r"|esophagus|oesophagus|ulcer|fracture|disorder|anomaly|reflex|node|stage|class|monitor"
        r"|block|repair|fundoplication|tube|sheath|position|cycle|equation|law|line"
        # deformities, lesions and conditions named after who described them
        # ("Dupuytren's contracture", "Baker's cyst", "Heberden's nodes")
        r"|contractures?|deformity|cysts?|nodes?|nodules?|hernia|diverticulum|aneurysm|triad"
        r"|arthropathy|neuralgia|neuroma|ulcers?|fasciitis|thyroiditis|anaemia|anemia|angina"
        r"|granuloma|sclerosis|dystrophy|myopathy|lesions?|spots?|bodies|cells|area|splint"
        r"|manoeuvres?|incision|technique|method|approach|view|point|space"
        # fixation hardware ("Kirschner wire", "Herbert screw")
        r"|wires?|nails?|screws?|plates?"
        # anatomy named after anatomists ("Morison's pouch", "Hunter's canal")
        r"|pouch|triangle|canal|duct|gland|glands|membrane|ligament|tendon|fascia|artery|vein"
        r"|nerve|capsule|corpuscles?|plexus|crest|layer|zone|lines?|tubercle|foramen|sinus"
        r"|valve|loop|fold|ampulla|cartilage|organ|ring)\b"
    ),
    # Lab values in SI units ("2 x 10^9/L") and ranges ("4.0-5.6").
    re.compile(r"\b\d+(?:\.\d+)?\s?x\s?10\^?\d+(?:/[a-zA-Z]+)?"),
)

# Labels that only context, NER or weak patterns support; validated identifiers (Luhn,
# mod-97, SSA rules, e-mail syntax) are never vetoed by the guard.
_GUARDED: frozenset[PiiLabel] = frozenset(
    {
        PiiLabel.PERSON,
        PiiLabel.LOCATION,
        PiiLabel.ORGANIZATION,
        PiiLabel.DATE,
        PiiLabel.LICENSE,
        PiiLabel.DEVICE,
        PiiLabel.HEALTH_PLAN,
        PiiLabel.VEHICLE,
        PiiLabel.PHONE,
        PiiLabel.ZIP,
        PiiLabel.URL,
    }
)
_CONTEXT_SOURCES = frozenset(
    {"mrn", "health_plan", "account", "license", "plate", "device", "zip", "title"}
    | {"npi", "udi", "biometric", "state", "email_name", "hl7_name", "mac", "street", "name_given"}
    | {"numbered", "keyed", "plan_line", "key_value", "table", "hl7", "ssn_masked"}
)
_WORD = re.compile(r"[A-Za-z0-9&][A-Za-z0-9&\-]*")


def clinical_regions(text: str) -> list[tuple[int, int]]:
    """Character ranges of clinical expressions (codes, doses, vitals, labs, times)."""
    regions: list[tuple[int, int]] = []
    for pattern in _CLINICAL_PATTERNS:
        regions.extend(m.span() for m in pattern.finditer(text))
    return regions


def _lexicon_only(fragment: str) -> bool:
    words = [w.lower() for w in _WORD.findall(fragment)]
    return bool(words) and all(w in CLINICAL_LEXICON for w in words)


_PARTICLES = frozenset(
    {"van", "von", "de", "der", "den", "da", "del", "della", "la", "le", "bin", "ibn"}
    | {"al", "el", "di", "du", "dos", "das", "y", "of", "and", "the", "for", "on", "&"}
)
_MODEL_SOURCES = frozenset({"ner"})
_TRIMMED = frozenset({PiiLabel.PERSON, PiiLabel.LOCATION, PiiLabel.ORGANIZATION})
_TOKEN = re.compile(r"\S+")


def _model_noise(span: Span, fragment: str) -> bool:
    """NER spans that cannot be a name or place: digits, short all-caps abbreviations,
    lower-case words (other than particles such as ``van`` or ``of``)."""
    if span.label not in _TRIMMED:
        return False
    if any(c.isdigit() for c in fragment):
        return True
    stripped = fragment.strip(" .,'")
    if stripped.isupper() and len(stripped) <= 5:
        return True
    genus = _GENUS_INITIAL.fullmatch(stripped)
    if genus is not None and genus["species"].lower() in CLINICAL_LEXICON:
        return True  # "E. Coli": a microbe, its genus abbreviated
    if stripped.isupper() and "-" in stripped and all(len(p) <= 4 for p in stripped.split("-")):
        return True
    words = stripped.split()
    if span.source in _MODEL_SOURCES and any(
        w[0].islower() and w.lower() not in _PARTICLES for w in words
    ):
        return True
    return not any(c.isupper() for c in stripped)


# Words a model-found name never starts or ends with: negations ("No Salter-Harris"),
# results ("THC NEG"), dose forms written short ("Tab.", "Cap.").
_NOT_NAME_WORDS = frozenset(
    _TOKEN.findall(
        "no non neg pos negative positive nil tab tabs cap caps inj syr susp sol neb "
        "colleague colleagues sir madam "  # "Dear Colleague": a salutation
        # kin named by their relation ("Dad (45) smokes"), services by their short names
        # ("Renal reviewed", "Physio team"), lab heads of a table ("Hb  Plt  WBC")
        "mum mom mam dad mother father husband wife son daughter brother sister gran granny "
        "grandma grandpa nan nana uncle aunt auntie cousin renal physio ortho neuro cardio "
        "gastro resp derm psych onc haem heme endo rheum uro hb hgb plt wbc"
    )
)
# What a model-found span names when one of these follows it: an instrument or scale
# ("Morse Fall Scale"), a test or analyte ("Cocaine metabolite NEG"), an object left on a
# patient ("Steri-Strips in place").
_THING_HEADS = re.compile(
    r"(?i:.*\b(?:scale|score|index|criteria|classification|questionnaire|inventory|rule|rules"
    r"|staging|grade|chart|test|assay|panel|screen"
    # equipment on or in a patient ("Urinary Catheter", "Zimmer Frame", "Holter Monitor")
    r"|catheter|cannula|drain|tube|stent|dressing|frame|monitor|pump|splint|brace|sling)$)"
)
# A field label before its number ("Docket No. 4471", "Reg. No.: 5512", "Bill No:").
_LABEL_BEFORE_NUMBER = re.compile(r"\.?[ \t]*(?:No|NO|Nr|#)\b\.?[ \t]*[:#]?[ \t]*\w*\d")
_THING_AFTER = re.compile(
    r"[ \t]+(?:metabolites?|NEG|POS|negative|positive|detected|not[ \t]+detected|level"
    r"|in[ \t]+(?:place|situ)|applied|intact|applanation|tonometry|perimetry|staging)\b"
)
# A method in brackets after a measurement ("OS 6/9 (Snellen)").
_MEASURE_BEFORE = re.compile(r"\d[^\s(]*[ \t]*\($")
# A line-opening word before a number ("Modifier 95 appended") labels the number.
_LINE_OPEN_NUMBER = re.compile(r"[ \t]+\d")


# Medical word-building: a span whose last word ends like a disease, procedure, finding
# or organism ("Mitral Regurgitation", "Laparoscopic Cholecystectomy", "Staphylococcus"),
# or with a word built on a clinical prefix and a hyphen ("Non-Tender", "Post-Op") or a
# single letter and a hyphen ("X-Ray", "T-Cell"), names a thing, not a person or a place.
_CLINICAL_HEAD = re.compile(
    r"(?i:.*[a-z]{2}(?:itis|ectomy|otomy|ostomy|plasty|scopy|aemia|[^h]emia|osis|pathy|algia|tension"
    r"|uria|coccus|cocci|bacter|(?<!st)ation|ectasis|megaly|plegia|paresis|trophy|(?<!dia)lysis"
    r"|ocytes?|ectomies|otomies))"
)
_CLINICAL_WORD_BUILT = re.compile(
    r"(?i:\b(?:non|anti|post|pre|intra|inter|hyper|hypo|sub|peri|extra|semi|multi|ex)-[a-z]+"
    r"|(?<![\w-])[A-Z]-[A-Za-z]+"
    r"|\b[a-z]{3,}(?:scopic|genic|ectomy|otomy|aemic|[^h]emic|ular|ateral|coccal)\b)"
)
# A field label opening a line or sentence, read around a model-found span that is only
# part of it ("Blood Cultures: ...", "Neuro Obs: ..."): up to three words either side.
_LABEL_BEFORE = re.compile(
    r"(?:^|\n|[.;|][ \t]+|[ \t]{2,})[ \t]*(?P<w>(?:[A-Z][\w&/-]*[ \t]+){0,3})$"
)
_LABEL_REST = re.compile(r"(?P<w>(?:[ \t]+[A-Za-z][\w&/-]*){0,3})[ \t]*:(?!//)")
_ITEM_SPLIT = re.compile(r"[,;]")
_ANNOTATION = re.compile(r"[ \t]*\([^()]*\)[ \t]*$")


def _label_part(text: str, span: Span) -> bool:
    """A model-found span that is only part of a field label opening a line or sentence
    ("Blood" of "Blood Cultures:", "Obs" of "Neuro Obs:"); a whole label ("Ana Ruiz: hi")
    may be a speaker's name."""
    rest = _LABEL_REST.match(text, span.end)
    if rest is None:
        return False
    lead = _LABEL_BEFORE.search(text, max(0, span.start - 60), span.start)
    return lead is not None and bool(lead["w"].strip() or rest["w"].strip())


def _clinical_item(item: str) -> bool:
    words = item.split()
    return bool(words) and (
        all(w.lower().strip(".") in CLINICAL_LEXICON for w in words)
        or _DRUG_STEM.fullmatch(words[0]) is not None
        or _CLINICAL_HEAD.fullmatch(item) is not None
        or (len(words) == 1 and _CLINICAL_WORD_BUILT.search(item) is not None)
    )


def _list_item(text: str, span: Span) -> bool:
    """A single model-found word that is a whole item of a comma-separated list after a
    label, another item of which is a clinical term or a drug ("Allergies: Penicillin
    (rash), Codeine (nausea)"); a longer item may be an organisation's name listed
    beside a clinical one."""
    fragment = text[span.start : span.end]
    if any(c in fragment for c in " \t"):
        return False
    line_start = text.rfind("\n", 0, span.start) + 1
    line_end = text.find("\n", span.end)
    line_end = len(text) if line_end < 0 else line_end
    colon = text.rfind(":", line_start, span.start)
    if colon < 0:
        return False  # a list after a label only ("Regards, Ana Ruiz" is a sign-off)
    start = colon + 1
    stop = text.find(". ", span.end, line_end)
    segment = text[start : line_end if stop < 0 else stop].rstrip(" .")
    items = [_ANNOTATION.sub("", i).strip() for i in _ITEM_SPLIT.split(segment)]
    if len(items) < 2 or fragment not in items:
        return False
    return any(_clinical_item(i) for i in items if i != fragment)


def _not_a_name(text: str, span: Span) -> bool:
    """A model-found span that names a thing, not a person, place or organisation: an
    instrument or scale, a test result, a method in brackets after a measurement, an
    abbreviation with slashes ("U/E/Cr"), a word built the way clinical terms are, or a
    single word opening a line before a number."""
    fragment = text[span.start : span.end]
    if "/" in fragment or _THING_HEADS.match(fragment) or _THING_AFTER.match(text, span.end):
        return True
    single = not any(c in fragment for c in " \t")
    # a prefixed word may open an organisation's name ("Post-Acute Care Center"), so only
    # a span of one word is judged by its build
    if _CLINICAL_HEAD.fullmatch(fragment) or (single and _CLINICAL_WORD_BUILT.search(fragment)):
        return True
    if fragment.endswith((" No", " NO")) or _LABEL_BEFORE_NUMBER.match(text, span.end):
        return True
    if (
        single
        and text[span.end : span.end + 1] == ")"
        and _MEASURE_BEFORE.search(text, max(0, span.start - 16), span.start)
    ):
        return True
    return (
        single
        and _LINE_OPEN_NUMBER.match(text, span.end) is not None
        and _LINE_LEAD.search(text, max(0, span.start - 80), span.start) is not None
    )


_GENUS_INITIAL = re.compile(r"[A-Z]\.\s*(?P<species>[A-Za-z]+)")
_ARTICLES = frozenset({"the", "a", "an"})
# A dose right after a model-found "name" makes it a drug ("Vimpat 100 mg").
_DOSE_AFTER = re.compile(rf"[ \t]+\d+(?:\.\d+)?[ \t]?(?:{_UNITS})(?![A-Za-z])")
# So does a dose form after it ("Clexane injection", "Movicol two sachets", "Ventolin
# inhaler"), or a verb of taking before it ("taking the Endone", "started on Tegretol").
_FORM_AFTER = re.compile(
    r"[ \t]+(?:(?:one|two|three|four|half|a|\d+(?:\.\d+)?)[ \t]+)?(?:injections?|tablets?|tabs?"
    r"|capsules?|caps|sachets?|inhalers?|puffs?|patch(?:es)?|cream|ointment|gel|drops|syrup"
    r"|suspension|elixir|liquid|spray|pessar(?:y|ies)|suppositor(?:y|ies)|infusion|lozenges?"
    r"|nebules?|pens?|vials?|ampoules?|dose|doses|mane|nocte|prn|bd|tds|qds|od)\b"
)
_TAKING_BEFORE = re.compile(
    r"(?i:\b(?:(?:taking|takes|took|taken|prescribed|dispensed|withheld|withhold|continue"
    r"|continued|increase|increased|reduce|reduced|wean|weaned)(?:[ \t]+(?:the|her|his"
    r"|their|my|some|regular|on))*"
    r"|(?:started|starting|commenced|restarted|switched|changed)[ \t]+(?:on|to)"
    # a plan's imperative ("Stop Nurofen", "Cease Celebrex", "Add Entresto")
    r"|stop|stopped|cease|ceased|add|added|start|trial|withdraw|hold|resume|resumed"
    # a test ordered ("Check Quantiferon", "Repeat Troponin")
    r"|check|repeat|order|ordered|send|sent)[ \t]+)$"
)
_TAKING_LEAD = re.compile(_TAKING_BEFORE.pattern.removesuffix("$") + r"\S+$")
# ... unless a person's errand follows ("taking Amir to the shops")
_ERRAND_AFTER = re.compile(r"[ \t]+(?:to|home|out|for|with|and|back|along)\b|'s\b")
# A model-found word joined to a lower-case word by a hyphen is part of a compound
# ("Webster-pak", "Holter-monitored"), not a name.
_COMPOUND_AFTER = re.compile(r"-[a-z]")


# Stems of international non-proprietary drug names ("Midazolam", "Tenecteplase",
# "Propofol", "Rivaroxaban"): a single model-found word ending so is a drug.
_DRUG_STEM = re.compile(
    r"(?i:[a-z]{3,}(?:pril|sartan|olol|statin|azole|mycin|cillin|floxacin|cycline|prazole"
    r"|tidine|dipine|parin|xaban|gatran|teplase|kinase|mab|tinib|ciclovir|cyclovir|navir"
    r"|azepam|zolam|triptan|afil|gliptin|gliflozin|glutide|formin|olone|asone|profen|fenac"
    r"|amol|ofol|terol|anyl|idone|apine|oxetine|traline|pramine|setron|lukast|dronate|fibrate"
    r"|thiazide|semide|tretin|ximab|zumab|cept|platin|rubicin|taxel|vudine|conazole"
    r"|fungin|penem|bactam|lactam|mide|dopa|codone|morphone|caine|curium|ronium|vax))"
)


def _drug_or_compound(text: str, span: Span) -> bool:
    """A single model-found word used as a drug (a dose or dose form after it, a verb of
    taking before it, or inside the span: "Started on Ozempic") or as the first part of
    a hyphenated compound."""
    fragment = text[span.start : span.end]
    lead = _TAKING_LEAD.match(fragment)
    if lead is not None:
        return _ERRAND_AFTER.match(text, span.end) is None
    if any(c in fragment for c in " \t"):
        return False
    if _DRUG_STEM.fullmatch(fragment) is not None:
        return True
    return (
        _FORM_AFTER.match(text, span.end) is not None
        or _COMPOUND_AFTER.match(text, span.end) is not None
        or (
            _TAKING_BEFORE.search(text, max(0, span.start - 40), span.start) is not None
            and _ERRAND_AFTER.match(text, span.end) is None
        )
    )


def _is_lexical(token: str) -> bool:
    word = token.strip(".,:;()'\"-|").lower()
    return (
        not word
        or not any(c.isalnum() for c in token)  # "--", "|": separators, not words
        or word in CLINICAL_LEXICON
        or word in _ARTICLES
        or word in _NOT_NAME_WORDS
        or token.endswith(":")
    )


def _trim(text: str, span: Span) -> Span | None:
    """A model-found name, place or organisation without the field labels, headers and
    clinical words at its ends ("Impression: Acute", "Prescriber Ogunbanjo")."""
    tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(text, span.start, span.end)]
    lead = 0
    while lead < len(tokens) and _is_lexical(text[tokens[lead][0] : tokens[lead][1]]):
        lead += 1
    tail = len(tokens)
    if span.label is not PiiLabel.ORGANIZATION:
        while tail > lead and _is_lexical(text[tokens[tail - 1][0] : tokens[tail - 1][1]]):
            tail -= 1
    else:
        while tail > lead and not any(
            c.isalnum() for c in text[tokens[tail - 1][0] : tokens[tail - 1][1]]
        ):
            tail -= 1
    if lead >= tail:
        return None
    start, end = tokens[lead][0], tokens[tail - 1][1]
    while end > start and text[end - 1] in ".,:;":
        end -= 1
    if (start, end) == (span.start, span.end):
        return span
    return Span(start, end, span.label, span.score, span.source) if end > start else None


def _clip(span: Span, claimed: list[tuple[int, int]]) -> list[Span]:
    """The pieces of a model-found span outside the characters rule-found spans claim
    (``claimed`` sorted by start)."""
    pieces: list[Span] = []
    pos = span.start
    for a, b in claimed:
        if a >= span.end:
            break
        if b <= pos:
            continue
        if a > pos:
            pieces.append(Span(pos, a, span.label, span.score, span.source))
        pos = b
        if pos >= span.end:
            break
    if pos == span.start:
        return [span]
    if pos < span.end:
        pieces.append(Span(pos, span.end, span.label, span.score, span.source))
    return pieces


_LINE_LEAD = re.compile(r"(?:^|\n|[ \t]{2,}|\t)[ \t]*$")
_SENTENCE_LEAD = re.compile(r"(?:^|\n|[ \t]{2,}|\t|[.;|]\s+)[ \t]*$")
_LABEL_AFTER = re.compile(r"[ \t]*[:#]")
_LOWER_AFTER = re.compile(r"[ \t]+[a-z]")


def _heading_word(text: str, span: Span, names: frozenset[str]) -> bool:
    """A single capitalised word opening a line or sentence before a colon ("Payer:",
    "ACTIVITY:"), or opening a line before a lower-case word ("Renal dosing", "Courier
    dropped"), is a field label or a sentence's first word, unless the same word is part
    of a longer name elsewhere in the note."""
    fragment = text[span.start : span.end]
    if any(c in fragment for c in " \t"):
        return False
    window = max(0, span.start - 80)
    if _LABEL_AFTER.match(text, span.end):
        return _SENTENCE_LEAD.search(text, window, span.start) is not None
    return (
        _LOWER_AFTER.match(text, span.end) is not None
        and _LINE_LEAD.search(text, window, span.start) is not None
        and fragment not in names
    )


def guard_clinical(text: str, spans: list[Span]) -> list[Span]:
    """Drop detections that are clinical content rather than identifiers.

    A span is dropped when its label is one of the weakly-supported kinds and either it lies
    entirely inside a clinical expression, consists only of drug/abbreviation lexicon words,
    or (for model-based names, places and organisations) contains digits, lower-case words
    or is a short all-capitals abbreviation. Model-found names first lose the characters
    that rule-found spans claim ("Luis DOB [Oct 1970]"), then the field labels and clinical
    words at their ends; a single model-found word opening a line as a field label or
    before a lower-case word is dropped, and so is a model-found span built the way
    clinical terms are ("Aortic Stenosis", "Non-Tender", "X-Ray"), one that is only part
    of a field label ("Blood" of "Blood Cultures:"), or a single word that is a whole item
    of a list whose other items are drugs or clinical terms. Context-anchored detections
    (``MRN: ...``) are kept.

    Args:
        text: the analysed text.
        spans: detections over ``text``.

    Returns:
        The detections that survive.
    """
    regions = sorted(clinical_regions(text))
    region_starts = [a for a, _ in regions]
    reach = list(itertools.accumulate((b for _, b in regions), max))  # furthest end so far
    rule_found = [s for s in spans if s.source not in _MODEL_SOURCES]
    names = frozenset(
        word
        for s in spans
        if s.label is PiiLabel.PERSON
        for word in text[s.start : s.end].split()[1:] + text[s.start : s.end].split()[:-1]
    )
    # what rule-found spans of other labels claim, sorted once per label of a model span
    claimed_by: dict[PiiLabel, list[tuple[int, int]]] = {}
    kept: list[Span] = []
    for original in spans:
        if original.label not in _GUARDED or original.source in _CONTEXT_SOURCES:
            kept.append(original)
            continue
        pieces = [original]
        if original.source in _MODEL_SOURCES and original.label in _TRIMMED:
            if _DOSE_AFTER.match(text, original.end) or _drug_or_compound(text, original):
                continue
            # same-label spans fuse later; only other labels claim characters
            claimed = claimed_by.get(original.label)
            if claimed is None:
                claimed = claimed_by[original.label] = sorted(
                    (s.start, s.end) for s in rule_found if s.label is not original.label
                )
            pieces = _clip(original, claimed)
        for piece in pieces:
            span: Span | None = piece
            if piece.source in _MODEL_SOURCES and piece.label in _TRIMMED:
                span = _trim(text, piece)
                if span is not None and (
                    _heading_word(text, span, names)
                    or _drug_or_compound(text, span)
                    or _not_a_name(text, span)
                    or _label_part(text, span)
                    or _list_item(text, span)
                ):
                    continue
            if span is None:
                continue
            fragment = text[span.start : span.end]
            i = bisect.bisect_right(region_starts, span.start)
            inside = i > 0 and reach[i - 1] >= span.end
            if inside or _lexicon_only(fragment) or _model_noise(span, fragment):
                continue
            kept.append(span)
    return kept
