"""Phrasing families the recognisers cover (context words, ages, dates, jobs, places, HL7)
and PII-free clinical phrases they must leave alone. Examples are written for these tests,
not taken from any evaluation set."""

from __future__ import annotations

import pytest

from tutela.anonymize import PiiDetector, PiiLabel
from tutela.anonymize.clinical import guard_clinical
from tutela.anonymize.spans import Span


def _found(detector: PiiDetector, text: str) -> list[str]:
    return [text[s.start : s.end] for s in detector.detect(text)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Member ID: QXK 448 201 93 on file.", "QXK 448 201 93"),
        ("Policy no. 77120-4419 expired.", "77120-4419"),
        ("Medicaid plan 31177-20485 renewed.", "31177-20485"),
        ("insurance card W0A7719203 copied", "W0A7719203"),
        ("acct 5523 8810 closed", "5523 8810"),
        ("account # 00419-3382 billed", "00419-3382"),
        ("Guarantor account (HAR) 6620019 on hold", "6620019"),
        ("claim number 55-102-7731 filed", "55-102-7731"),
        ("serial 7734-AZ-0912 logged", "7734-AZ-0912"),
        ("S/N 4471209983 recorded", "4471209983"),
        ("UDI (01)00812345678905(17)261231(10)A77B", "(01)00812345678905(17)261231(10)A77B"),
        ("pacemaker lot 99821-B from the maker", "99821-B"),
        ("ventricular lead QR77120034 tested", "QR77120034"),
        ("pump network address 0A:1B:2C:3D:4E:5F paired", "0A:1B:2C:3D:4E:5F"),
        ("MRN 00449182", "00449182"),
        ("UR no. 5581923", "5581923"),
        ("hospital number 4432-119", "4432-119"),
        ("chart # 77231004", "77231004"),
        ("Records requested (chart 88120455).", "88120455"),
        ("State license QT.771204 on file", "QT.771204"),
        ("Iris scan template 9c4be01f7a2d stored", "9c4be01f7a2d"),
        ("FIN 88120455 opened", "88120455"),
        ("NHS number 943 476 5919 confirmed", "943 476 5919"),
        ("passport number K1288301 copied", "K1288301"),
        ("vehicle tag 417 KWD in the lot", "417 KWD"),
    ],
)
def test_identifiers_after_context_words(rules_detector, text, value):
    assert value in _found(rules_detector, text)


def test_hl7_segments_carry_the_record_number_the_name_and_the_date(rules_detector):
    text = "PID|1||55501293^^^HOSP||OKAFOR^NNEKA||19400212|F"
    found = _found(rules_detector, text)
    assert {"55501293", "OKAFOR^NNEKA", "19400212"} <= set(found)


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("Mrs. Olsen, aged 93, seen.", "93"),
        ("a 93-year-old woman", "93"),
        ("93 y/o male", "93"),
        ("93yo F", "93"),
        ("F/93 with cough", "93"),
        ("patient is 93 yr old", "93"),
        ("a ninety-three-year-old man", "ninety-three"),
        ("she is one hundred and one years old", "one hundred and one"),
        ("Mr. Abara (97) reports no falls.", "97"),
        ("Pt, 95, confused overnight.", "95"),
        ("i am 91 and live alone", "91"),
        ("Triage -- Ruiz, Ana -- 102 y -- stable", "102"),
        ("a 93-yo woman", "93"),
        ("Ms. Park, 99, walks with a cane.", "99"),
        ("Pt is 104, on warfarin.", "104"),
    ],
)
def test_ages_over_89_in_their_usual_forms(rules_detector, text, age):
    spans = rules_detector.detect(text)
    assert (age, PiiLabel.AGE) in [(text[s.start : s.end], s.label) for s in spans]


@pytest.mark.parametrize(
    "text",
    [
        "Reference ranges for ages 90+ applied.",
        "in her nineties and independent",
        "I am 95% sure of the dose",
        "HR 92, SpO2 94%, T 98.6",
        "a 45-year-old man",
    ],
)
def test_things_that_are_not_ages_over_89(rules_detector, text):
    assert not [s for s in rules_detector.detect(text) if s.label is PiiLabel.AGE]


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("seen on 3rd March 2024", "3rd March 2024"),
        ("seen March 3rd, 2024", "March 3rd, 2024"),
        ("drawn 03-Mar-2024", "03-Mar-2024"),
        ("drawn Mar-03-2024", "Mar-03-2024"),
        ("drawn 2024-03-03", "2024-03-03"),
        ("HL7 date 20240303", "20240303"),
        ("visit 3/3/24", "3/3/24"),
        ("seen on Mar 3 for pain", "Mar 3"),
        ("DOB 7/1948", "7/1948"),
        ("next visit Thursday, June 4", "Thursday, June 4"),
        ("seen on 3 March for review", "3 March"),
        ("drawn 03MAR2024 at clinic", "03MAR2024"),
        ("since 01-JAN-1961", "01-JAN-1961"),
        ("Seen Mon 3/4 in clinic", "3/4"),
    ],
)
def test_dates_in_us_uk_iso_hl7_and_written_forms(rules_detector, text, date):
    assert date in _found(rules_detector, text)


def test_expiry_dates_and_drug_lots_are_not_identifiers(rules_detector):
    assert _found(rules_detector, "Lot 4471B exp 09/2026 dispensed.") == []


@pytest.mark.parametrize(
    ("text", "job"),
    [
        ("He works as a sheet metal fabricator.", "sheet metal fabricator"),
        ("Retired schoolteacher, lives alone.", "schoolteacher"),
        ("She is employed as a line cook.", "line cook"),
        ("Occupation: stevedore", "stevedore"),
        ("He is a joiner by trade.", "joiner"),
        ("Job: bus mechanic", "bus mechanic"),
        ("works nights as a parking attendant at the airport", "parking attendant"),
        ("recently retired as a claims adjuster with a bank", "claims adjuster"),
        ("is a former crane operator on disability", "crane operator"),
        ("The patient is a 92-yr-old glazier who fell", "glazier"),
        ("Occupation - electrician", "electrician"),
        ("a carpenter by profession", "carpenter"),
    ],
)
def test_professions_after_job_phrases(rules_detector, text, job):
    spans = rules_detector.detect(text)
    assert (job, PiiLabel.PROFESSION) in [(text[s.start : s.end], s.label) for s in spans]


@pytest.mark.parametrize(
    "text",
    [
        "He is a former smoker.",
        "Patient is a poor historian.",
        "Restrained driver in a low-speed MVC.",
        "Seen by a nurse this morning.",
        "Staff work as a team on the ward.",
        "She is a carrier of the variant.",
        "Occupational therapy consulted.",
    ],
)
def test_phrases_that_name_no_job(rules_detector, text):
    assert not [s for s in rules_detector.detect(text) if s.label is PiiLabel.PROFESSION]


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("Lives at 4120 County Road 12, Dayton OH 45402.", {"4120 County Road 12", "Dayton"}),
        ("Moved to Tacoma WA last year.", {"Tacoma"}),
        (
            "Admitted from Our Lady of the Valley Hospital today.",
            {"Our Lady of the Valley Hospital"},
        ),
        ("Claim for member ID 10837-56004 sent.", {"10837-56004"}),
    ],
)
def test_places_without_commas_and_numbered_roads(rules_detector, text, values):
    assert values <= set(_found(rules_detector, text))


def test_a_two_letter_word_is_no_state_without_a_zip(rules_detector):
    assert _found(rules_detector, "Taken to Main OR for washout.") == []


def test_names_before_an_email_that_spells_them(rules_detector):
    text = "New message from tomas kerr (kerr.t@example.org)"
    assert "tomas kerr" in _found(rules_detector, text)
    assert _found(rules_detector, "write to the team (team.lead@example.org)") == [
        "team.lead@example.org"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Positive Murphy sign; Rovsing sign negative.",
        "Started Eliquis 5 mg BID and Lasix 40 mg daily.",
        "HISTORY OF PRESENT ILLNESS: chest pain.",
        "GCS 15, NIHSS 0, Wells score 2.",
        "Glucose 110 mg/dL; Hgb 12.1 g/dL.",
        "Fazekas grade 1 white matter change.",
        "Forrest IIb ulcer treated endoscopically.",
        "Direct Coombs negative.",
        "Child-Pugh class B cirrhosis.",
        "Mode switch episodes: 2.",
        "Renal dosing applied.",
        "DISPOSITION: home. ACTIVITY: as tolerated.",
        "Tetanus up to date.",
        "Spanish interpreter used.",
        "Discussed at Tumor Board.",
        "Bell's palsy improving.",
        "PAST MEDICAL HISTORY: asthma.",
        "Transferred to Ward 4B, bed 12.",
        "APACHE II 18 on admission.",
        "Warfarin 5 mg Mon/Thu, 2.5 mg other days.",
        "Started Xarelto 20 mg daily.",
    ],
)
def test_pii_free_clinical_phrases_stay_unflagged(ner_detector, text):
    assert ner_detector.detect(text) == []


def test_rule_found_spans_keep_their_characters_from_the_model():
    text = "Rx intake: Lopez, Ana  DOB Oct 1970  Ph 555"
    model = Span(text.index("Ana"), text.index("1970") - 1, PiiLabel.PERSON, 0.8, "ner")
    date = Span(text.index("Oct"), text.index("1970") + 4, PiiLabel.DATE, 0.7, "date")
    kept = guard_clinical(text, [model, date])
    assert sorted(text[s.start : s.end] for s in kept) == ["Ana", "Oct 1970"]


def test_a_word_opening_a_line_before_a_colon_is_a_label_not_a_name():
    text = "Seen today.\nPayer: plan pending\nCourier dropped the sample."
    spans = [
        Span(text.index("Payer"), text.index("Payer") + 5, PiiLabel.PERSON, 0.8, "ner"),
        Span(text.index("Courier"), text.index("Courier") + 7, PiiLabel.ORGANIZATION, 0.8, "ner"),
    ]
    assert guard_clinical(text, spans) == []
    # the same word is kept when the note names the person in full elsewhere
    named = "Patient: Tomas Kerr\nTomas reports less pain."
    tomas = Span(named.index("Tomas r"), named.index("Tomas r") + 5, PiiLabel.PERSON, 0.8, "ner")
    full = Span(
        named.index("Tomas"), named.index("Kerr") + 4, PiiLabel.PERSON, 0.82, "name_context"
    )
    assert tomas in guard_clinical(named, [full, tomas])


def test_relatives_named_by_a_given_name(rules_detector):
    text = "hi its Rosa again. my grandson Mateo set up this account"
    assert {"Rosa", "Mateo"} <= set(_found(rules_detector, text))
    assert _found(rules_detector, "Daughter Emergency contact updated.") == []


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Mrs. Diaz type 2 diabetes on metformin.", "Diaz"),
        ("Call Dr. Okafor direct line 617-555-0199.", "Okafor"),
    ],
)
def test_eponym_words_do_not_swallow_a_titled_name(ner_detector, text, name):
    assert name in _found(ner_detector, text)
