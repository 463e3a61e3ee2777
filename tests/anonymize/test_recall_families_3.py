"""Third round of phrasing families: identifiers known by how they are labelled (any word
before "No." or "#", key words, key=value pairs, table headers, HL7 field positions),
masked Social Security numbers, clinicians' registration numbers; and the PII-free
phrases the new rules must leave alone. Examples are written for these tests, not taken
from any evaluation set."""

from __future__ import annotations

import pytest

from tutela.anonymize import PiiDetector, PiiLabel
from tutela.anonymize.clinical import guard_clinical
from tutela.anonymize.spans import Span


@pytest.fixture(scope="module")
def rules() -> PiiDetector:
    return PiiDetector(ner="off")


def _covered(detector: PiiDetector, text: str, value: str) -> bool:
    """Whether at least half of ``value``'s characters are detected (as the scoring counts)."""
    start = text.index(value)
    end = start + len(value)
    hit = sum(max(0, min(s.end, end) - max(s.start, start)) for s in detector.detect(text))
    return hit >= len(value) / 2


def _label_of(detector: PiiDetector, text: str, value: str) -> PiiLabel | None:
    start = text.index(value)
    for s in detector.detect(text):
        if s.start <= start < s.end:
            return s.label
    return None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # any word before "No." or "#" introduces a number
        ("Folder No.: TQ-55120   Ward 4", "TQ-55120"),
        ("Admitting register no. 2231-771 signed", "2231-771"),
        ("Prisoner Okoro #MX2210/0493 declined breakfast", "MX2210/0493"),
        ("Tracking Nr. 88412309 on the parcel", "88412309"),
        ("Sample ID (LAB): QX-884120", "QX-884120"),
        ("ID# 661-20-09 confirmed at triage", "661-20-09"),
        # key words that stand alone before the value
        ("Welcome pack, UHID QK7712093, printed", "QK7712093"),
        ("HRN: TB-4410-88 on the label", "TB-4410-88"),
        ("wristband ZX-771234 checked twice", "ZX-771234"),
        ("chart........: 4471 2209 pulled", "4471 2209"),
        ("MRN at the other site 55-90-112 noted", "55-90-112"),
        ("denial reference QP/22/80341 appealed", "QP/22/80341"),
        ("please settle bill 5512-0098-3 by Friday", "5512-0098-3"),
        ("Group: TT5521 on the card", "TT5521"),
    ],
)
def test_labelled_numbers(rules: PiiDetector, text: str, value: str) -> None:
    assert _covered(rules, text, value), rules.detect(text)


@pytest.mark.parametrize(
    ("text", "value", "label"),
    [
        ("Interpreter cert. WQ88120 present", "WQ88120", PiiLabel.LICENSE),
        ("Driver ID (CDL): HK-2209-8812", "HK-2209-8812", PiiLabel.LICENSE),
        ("Scheme card no. AB-7731-22019 expired", "AB-7731-22019", PiiLabel.HEALTH_PLAN),
        ("visit claim 77-310045 submitted", "77-310045", PiiLabel.ACCOUNT),
        ("Locker No. 4471-9920 assigned", "4471-9920", PiiLabel.MRN),
    ],
)
def test_label_follows_the_word(rules: PiiDetector, text: str, value: str, label: PiiLabel) -> None:
    assert _label_of(rules, text, value) is label


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("mrn=QX44120;dob=1950-02-03;", "QX44120"),
        ("lab_order_id=LB-8812-0034 status=final", "LB-8812-0034"),
        ('{"member_id": "HZ-77120-3", "plan": "gold"}', "HZ-77120-3"),
        ("referring_npi=1234567893; site=main", "1234567893"),
        ("visit=3 | town=Kilcummin | zip=00000", "Kilcummin"),
        ("pt=Ines Okafor sex=F", "Ines Okafor"),
        ("matched_pt=OKAFOR, INES (QT551209)", "QT551209"),
    ],
)
def test_key_values(rules: PiiDetector, text: str, value: str) -> None:
    assert _covered(rules, text, value), rules.detect(text)


def test_fixed_width_table_under_its_header(rules: PiiDetector) -> None:
    text = "SURNAME, GIVEN       CHART NO       SEEN\nOKAFOR, TENDAI    QZ4471209    yesterday\n"
    assert _label_of(rules, text, "QZ4471209") is PiiLabel.MRN
    assert _covered(rules, text, "OKAFOR, TENDAI")


def test_row_with_a_name_then_a_number(rules: PiiDetector) -> None:
    text = (
        "Okafor, Tendai   QZ/4471/09   today   K   4.1\nROUND | Ada B. Mensah | 771-20-33 | Bay 3"
    )
    assert _covered(rules, text, "QZ/4471/09")
    assert _covered(rules, text, "771-20-33")


def test_hl7_fields_by_position(rules: PiiDetector) -> None:
    text = (
        "PID|1|ALT551|QX55120^^^MR||OKAFOR^TENDAI||19500101|F|||||||||ACC7712093|123456789\n"
        "ORC|NW|PL-4410|FL-99120\n"
        "OBR|1|PL-4410|FL-99120|CBC^Blood count|||20240101||||||||1234567893^Obi^Ada\n"
        "OBX|1|NM|2345-7^Glucose^LN||5.5|mmol/L|3.9-5.5|N|||F\n"
    )
    for value in ("QX55120", "ACC7712093", "PL-4410", "FL-99120", "1234567893"):
        assert _covered(rules, text, value), value
    assert not _covered(rules, text, "2345-7")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("SSN ***-**-4410 on the application", "4410"),
        ("Social security XXX-XX-0912 verified", "0912"),
        ("ssn=xxx-xx-7731|dob=", "7731"),
        ("Donor SSN (last 4) 5520; seal intact", "5520"),
        ("last four of SSN: 8812 given by phone", "8812"),
    ],
)
def test_masked_ssn_keeps_its_last_four(rules: PiiDetector, text: str, value: str) -> None:
    spans = [s for s in rules.detect(text) if s.label is PiiLabel.SSN]
    assert [text[s.start : s.end] for s in spans] == [value]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Ordering: Dr. Ada Obi  1234567893", "1234567893"),
        ("requesting doctor Dr Tendai Moyo, QW55120X.", "QW55120X"),
        ("Signed by R. Okafor, MBChB (7731209).", "7731209"),
    ],
)
def test_clinician_numbers(rules: PiiDetector, text: str, value: str) -> None:
    assert _covered(rules, text, value), rules.detect(text)


@pytest.mark.parametrize(
    "text",
    [
        "Lot No. 55120A, exp 09/2027; batch no. 44120 dispensed.",
        "Room No. 12, bed #3; tooth #19 extracted.",
        "Dispense #60 tablets; ref range 3.5-5.1 mmol/L.",
        "Tel No. 0000; page no. 12 of the protocol.",
        "Group: 4 participants; Step No. 3 of 5 completed.",
        "OBX|2|NM|2160-0^Creatinine^LN||88|umol/L|45-90|N|||F",
        "Na   K   Cl\n140   4.1   102",
        "ratio=0.75; threshold=12.5 mmHg",
        "Protocol No. 2021-113 approved; Model No. 44120 pump from stock.",
        "Trial No. 2020-0045 enrolment; Version No. 3.2 of the form.",
    ],
)
def test_pii_free_phrases_stay_clean(rules: PiiDetector, text: str) -> None:
    assert rules.detect(text) == []


def _model_span(text: str, fragment: str, label: PiiLabel) -> Span:
    start = text.index(fragment)
    return Span(start, start + len(fragment), label, 0.8, "ner")


@pytest.mark.parametrize(
    ("text", "fragment", "label"),
    [
        ("Braden Pressure Scale 14 on admission.", "Braden Pressure Scale", PiiLabel.ORGANIZATION),
        ("Hamilton Anxiety Rating Index done.", "Hamilton Anxiety Rating Index", PiiLabel.PERSON),
        ("Benzodiazepines POS | Heroin metabolite NEG", "Heroin", PiiLabel.ORGANIZATION),
        ("Ketamine NEG on the screen", "Ketamine NEG", PiiLabel.PERSON),
        ("No Kirschner wire seen.", "No Kirschner", PiiLabel.ORGANIZATION),
        ("Wound closed, Dermabond in place.", "Dermabond", PiiLabel.PERSON),
        ("Near vision N8 (Jaeger), both eyes.", "Jaeger", PiiLabel.PERSON),
        ("Repeat H/H/Plt tomorrow.", "H/H/Plt", PiiLabel.ORGANIZATION),
        ("Tab. Cetirizine 10 mg nocte", "Tab", PiiLabel.PERSON),
        ("Revenue 0450 coded for the visit.", "Revenue", PiiLabel.PERSON),
    ],
)
def test_model_spans_that_name_things_are_dropped(
    text: str, fragment: str, label: PiiLabel
) -> None:
    assert guard_clinical(text, [_model_span(text, fragment, label)]) == []


@pytest.mark.parametrize(
    ("text", "fragment", "label"),
    [
        ("Seen with her daughter (Tendai) today.", "Tendai", PiiLabel.PERSON),
        ("Mensah Okoro in the waiting room, reviewed.", "Mensah Okoro", PiiLabel.PERSON),
        ("Transferred from Kilcummin Bay by road.", "Kilcummin Bay", PiiLabel.LOCATION),
        (
            "Referred by Ridgeway Family Practice for review.",
            "Ridgeway Family Practice",
            PiiLabel.ORGANIZATION,
        ),
    ],
)
def test_model_spans_that_name_people_and_places_stay(
    text: str, fragment: str, label: PiiLabel
) -> None:
    span = _model_span(text, fragment, label)
    assert guard_clinical(text, [span]) == [span]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("staying with her auntie Mei-Ling (93) over winter", "93"),
        ("his nan Bridget, 97, who cannot drive", "97"),
        ("can my grandad Tomasz, 101 come in with me", "101"),
        ("Age: 92Y  Sex: F", "92"),
        ("AGE/SEX: 95/female", "95"),
        ("Referral of Mr Ito, 99Y/man, for review", "99"),
        ("OKORO TENDAI   96 male   Bay 4", "96"),
    ],
)
def test_ages_over_89_beside_names_and_sex(rules: PiiDetector, text: str, value: str) -> None:
    assert (value, PiiLabel.AGE) in [(text[s.start : s.end], s.label) for s in rules.detect(text)]


@pytest.mark.parametrize(
    "text",
    [
        "Glucose, 104, creatinine 88 today",
        "Potassium (95) was a typo for 4.5",
        "admitted to Ward Nine, 110 beds in total",
        "Heart rate, 96 and regular",
    ],
)
def test_numbers_beside_capitalised_words_are_no_ages(rules: PiiDetector, text: str) -> None:
    assert [s for s in rules.detect(text) if s.label is PiiLabel.AGE] == []


@pytest.mark.parametrize(
    ("text", "value", "label"),
    [
        ("mail goes to Rt 4 Box 212, Oakdale.", "Rt 4 Box 212", PiiLabel.ADDRESS),
        ("Delivery to HC 61 Box 18 Oakdale, MN 55120", "HC 61 Box 18", PiiLabel.ADDRESS),
        ("Delivery to HC 61 Box 18 Oakdale, MN 55120", "Oakdale", PiiLabel.LOCATION),
        ("parked behind Purok 3, Brgy. Santa Cruz.", "Purok 3, Brgy. Santa Cruz", PiiLabel.ADDRESS),
        (
            "visit at No. 12, 3rd Cross, Ramesh Nagar: dressing",
            "No. 12, 3rd Cross, Ramesh Nagar",
            PiiLabel.ADDRESS,
        ),
        ("shipped to 77 Aspen Loop Trlr 9, Oakdale", "77 Aspen Loop Trlr 9", PiiLabel.ADDRESS),
        ("new address 5 Elm Rd Apt 2B Port Huron 48060 thanks", "Port Huron", PiiLabel.LOCATION),
        ("staying at 9 Elm Rd Kayenta, AZ 55120", "Kayenta", PiiLabel.LOCATION),
        ("10 Old Mission Trl\n   Piñon Wells, NM 55120", "Piñon Wells", PiiLabel.LOCATION),
        ("Blk 45 Jurong West St 4 #03-112", "Blk 45 Jurong West St 4 #03-112", PiiLabel.ADDRESS),
        ("patient location: Kisumu, Kenya", "Kisumu", PiiLabel.LOCATION),
        ("a farmer from Kisumu, Kenya, seen today", "Kenya", PiiLabel.LOCATION),
        ("moved to 12 Calle Sol Apt 3C Las Cruces 88001 last", "Las Cruces", PiiLabel.LOCATION),
        ("write to P.O. Box 4471-00200 Nakuru 20100", "Nakuru", PiiLabel.LOCATION),
    ],
)
def test_addresses_in_more_forms(
    rules: PiiDetector, text: str, value: str, label: PiiLabel
) -> None:
    assert (value, label) in [(text[s.start : s.end], s.label) for s in rules.detect(text)]


@pytest.mark.parametrize(
    "text",
    [
        "Dose 2 given, 3 Times Daily Loop diuretic review",
        "Seen at 3rd Cross clinic? no, reviewed in Theatre, Ireland team",
        "Nerve block, Heart Failure Service, 12 Main OR list",
    ],
)
def test_clinical_phrases_are_no_addresses(rules: PiiDetector, text: str) -> None:
    assert [s for s in rules.detect(text) if s.label is PiiLabel.ADDRESS] == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Clinical history: 44 yr old scaffold rigger fell from height.", "scaffold rigger"),
        ("52yo kiln stoker injured at the brickworks", "kiln stoker"),
        ("a 70 year old male, a ferry deckhand from Oban, admitted", "ferry deckhand"),
        ("Pt (a glassblower) asks about eye protection", "glassblower"),
        ("cant come in today (im a night porter now)", "night porter"),
        ("38-year-old school cook injured at work", "school cook"),
    ],
)
def test_jobs_after_ages_and_in_asides(rules: PiiDetector, text: str, value: str) -> None:
    assert (value, PiiLabel.PROFESSION) in [
        (text[s.start : s.end], s.label) for s in rules.detect(text)
    ]


@pytest.mark.parametrize(
    "text",
    [
        "67 yo M restrained driver in a rear-end collision",
        "Pt is a 94-yr-old gentleman; lives alone",
        "a 45-year-old carrier of the variant (a known carrier)",
        "72 yo never-smoker with a cough",
        "(thirty-year-old F) joined by video",
    ],
)
def test_roles_and_people_after_ages_are_no_jobs(rules: PiiDetector, text: str) -> None:
    assert [s for s in rules.detect(text) if s.label is PiiLabel.PROFESSION] == []


@pytest.mark.parametrize(
    ("text", "value", "label"),
    [
        (
            "palm vein scan on file from the last visit (VX-22Q8-41)",
            "VX-22Q8-41",
            PiiLabel.BIOMETRIC,
        ),
        (
            "checked by iris code (QI-5521-0093-ZZ) at the door",
            "QI-5521-0093-ZZ",
            PiiLabel.BIOMETRIC,
        ),
        ("clocked in by thumbprint (tp:ab41cd9e2f)", "tp:ab41cd9e2f", PiiLabel.BIOMETRIC),
        ("voiceprint in the app (enrolment vp:ce7a10b33d)", "vp:ce7a10b33d", PiiLabel.BIOMETRIC),
        ("hearing aids serials QW5512-88 / 77120943301", "77120943301", PiiLabel.DEVICE),
        ("the insulin meter sn ZK-55120 reads high", "ZK-55120", PiiLabel.DEVICE),
        ("device_id=PX-44120-B; battery=ok", "PX-44120-B", PiiLabel.DEVICE),
        ("CGM sensor 55120934471 paired", "55120934471", PiiLabel.DEVICE),
        (
            "UDI at implant: 0104412093771205172711302155120Q",
            "0104412093771205172711302155120Q",
            PiiLabel.DEVICE,
        ),
    ],
)
def test_biometric_and_device_references(
    rules: PiiDetector, text: str, value: str, label: PiiLabel
) -> None:
    assert (value, label) in [(text[s.start : s.end], s.label) for s in rules.detect(text)]


@pytest.mark.parametrize(
    "text",
    [
        "Voice recognition software accuracy 95% (12 errors).",
        "Fingerprint reader (model 4) unavailable today.",
        "Pump rate 12 mL/h; sensor glucose 8.4 mmol/L.",
    ],
)
def test_biometric_and_device_words_without_identifiers(rules: PiiDetector, text: str) -> None:
    assert [s for s in rules.detect(text) if s.label in (PiiLabel.BIOMETRIC, PiiLabel.DEVICE)] == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Donor: OKORO Tendai   Donor ID (CDL): QX-5512", "OKORO Tendai"),
        ("Inmate: Mensah, Ama  Booking #Q-4410", "Mensah, Ama"),
        ("Inmate Mensah #Q-4410 declined the dose", "Mensah"),
        ("Inmate Abdul Karim #Q-4410 declined", "Abdul Karim"),
        ("1a INSURED ID 5512 | 2 PATIENT ADJEI Kofi | 3 DOB 1950", "ADJEI Kofi"),
        ("report called to LVN Ama Boateng at 14:00", "Ama Boateng"),
        ("Ordering: Kwame T. Asante, DDS, NPI 1234567893", "Kwame T. Asante"),
        ("Boateng, Ama   QX44120931   today   K   4.1", "Boateng, Ama"),
    ],
)
def test_people_named_by_form_roles(rules: PiiDetector, text: str, value: str) -> None:
    assert _covered(rules, text, value), rules.detect(text)


@pytest.mark.parametrize(
    "text",
    [
        "Patient: Alert and oriented, no distress.",
        "Name: None given at triage.",
        "Pt  Stable overnight.",
    ],
)
def test_form_roles_without_names(rules: PiiDetector, text: str) -> None:
    assert [s for s in rules.detect(text) if s.label is PiiLabel.PERSON] == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Patient: Ama Obi   Docket No. 4471209", "Docket No"),
        ("Dr. Obi   Reg. No.: 5512093", "Reg"),
        ("Dear Colleague, thank you for seeing her.", "Colleague"),
        ("Mother says he eats well; Dad (45) smokes.", "Dad"),
        ("Renal reviewed, no change.", "Renal"),
        ("Hb      Plt      WBC", "Hb"),
    ],
)
def test_model_found_field_labels_and_salutations_are_dropped(text: str, fragment: str) -> None:
    assert guard_clinical(text, [_model_span(text, fragment, PiiLabel.ORGANIZATION)]) == []
