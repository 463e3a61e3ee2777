"""Pattern recognisers and their validators."""

from __future__ import annotations

import pytest

from tutela.anonymize import PiiLabel
from tutela.anonymize.recognizers import (
    dea_valid,
    iban_valid,
    luhn_valid,
    recognize_age_over_89,
    recognize_credit_card,
    recognize_date,
    recognize_email,
    recognize_iban,
    recognize_ids,
    recognize_ip,
    recognize_location,
    recognize_person_rules,
    recognize_phone,
    recognize_ssn,
    recognize_url,
    ssn_valid,
    vin_valid,
)


def texts(spans, text):
    return [(s.label, text[s.start : s.end]) for s in spans]


def test_luhn_known_answers():
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("79927398710")


@pytest.mark.parametrize(
    ("area", "group", "serial", "ok"),
    [
        ("536", "22", "1234", True),
        ("000", "22", "1234", False),
        ("666", "22", "1234", False),
        ("900", "22", "1234", False),
        ("999", "22", "1234", False),
        ("536", "00", "1234", False),
        ("536", "22", "0000", False),
    ],
)
def test_ssn_allocation_rules(area, group, serial, ok):
    assert ssn_valid(area, group, serial) is ok


def test_ssn_recogniser_needs_dashes_or_context():
    assert texts(recognize_ssn("SSN 536-22-1234."), "SSN 536-22-1234.") == [
        (PiiLabel.SSN, "536-22-1234")
    ]
    assert recognize_ssn("order 666-22-1234") == []
    assert recognize_ssn("accession 536221234") == []  # nine bare digits, no context
    assert len(recognize_ssn("social security number 536221234")) == 1


def test_iban_mod97():
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("GB82 WEST 1234 5698 7654 33")
    t = "refund to GB82 WEST 1234 5698 7654 32 today"
    assert texts(recognize_iban(t), t) == [(PiiLabel.IBAN, "GB82 WEST 1234 5698 7654 32")]


def test_credit_card_luhn_and_prefix():
    t = "card 4111 1111 1111 1111 and 4111 1111 1111 1112 and 1234567890123452"
    assert texts(recognize_credit_card(t), t) == [(PiiLabel.CREDIT_CARD, "4111 1111 1111 1111")]


def test_vin_and_dea_checksums():
    assert vin_valid("1M8GDM9AXKP042788")
    assert not vin_valid("1M8GDM9AYKP042788")
    assert dea_valid("AB1234563")
    assert not dea_valid("AB1234564")


def test_email_url_ip():
    t = "mail jo.doe@mail.example.org or see https://portal.example.org/p/1, from 10.0.0.255."
    found = texts(recognize_email(t) + recognize_url(t) + recognize_ip(t), t)
    assert (PiiLabel.EMAIL, "jo.doe@mail.example.org") in found
    assert (PiiLabel.URL, "https://portal.example.org/p/1") in found
    assert (PiiLabel.IP_ADDRESS, "10.0.0.255") in found
    assert not any(lab is PiiLabel.URL and v == "mail.example.org" for lab, v in found)


def test_ip_validation_rejects_impossible_addresses():
    assert recognize_ip("version 999.1.1.1") == []
    t = "from 2001:db8::8a2e:370:7334 at 14:30:00"
    assert texts(recognize_ip(t), t) == [(PiiLabel.IP_ADDRESS, "2001:db8::8a2e:370:7334")]


def test_phone_numbers_validated_by_libphonenumber():
    t = "call (617) 432-1234 or +1 212 867 5309; BP 120/80, SSN 536-22-1234"
    assert [v for _, v in texts(recognize_phone(t), t)] == ["(617) 432-1234", "+1 212 867 5309"]


@pytest.mark.parametrize(
    "date",
    [
        "03/14/2021",
        "3/14/21",
        "2021-03-14",
        "14.03.2021",
        "March 14, 2021",
        "14 March 2021",
        "Mar 14, 2021",
        "14-Mar-2021",
        "March 2021",
        "Sept. 3rd, 2020",
    ],
)
def test_dates_in_many_formats(date):
    t = f"seen on {date}."
    assert (PiiLabel.DATE, date) in texts(recognize_date(t), t)


def test_date_recogniser_skips_vitals_and_versions():
    assert recognize_date("BP 120/80, pain 7/10, v1.5.10") == []
    assert recognize_date("13/45/2020") == []


def test_age_only_over_89():
    t = "a 92-year-old and a 67-year-old; aged 101; 95 yo"
    assert [v for _, v in texts(recognize_age_over_89(t), t)] == ["92", "101", "95"]


def test_context_identifiers():
    t = (
        "MRN: 00123456. Member ID XZH123456789. Account number 1234-5678-90. "
        "Driver's license number S12345678. VIN 1M8GDM9AXKP042788. Serial number PM123456X."
    )
    found = texts(recognize_ids(t), t)
    assert (PiiLabel.MRN, "00123456") in found
    assert (PiiLabel.HEALTH_PLAN, "XZH123456789") in found
    assert (PiiLabel.ACCOUNT, "1234-5678-90") in found
    assert (PiiLabel.LICENSE, "S12345678") in found
    assert (PiiLabel.VEHICLE, "1M8GDM9AXKP042788") in found
    assert (PiiLabel.DEVICE, "PM123456X") in found


def test_context_identifiers_need_context():
    assert recognize_ids("glucose 00123456 and E11.9 and code XZH123456789") == []


def test_address_city_zip():
    t = "Lives at 12 Elm Street, Apt 4B, Springfield, IL 62701."
    found = texts(recognize_location(t), t)
    assert (PiiLabel.ADDRESS, "12 Elm Street, Apt 4B") in found
    assert (PiiLabel.LOCATION, "Springfield") in found
    assert (PiiLabel.ZIP, "62701") in found


def test_person_rules():
    t = "Seen by Dr. Okafor; Patient: Maria Lopez; daughter Ana Silva visited."
    names = [v for _, v in texts(recognize_person_rules(t), t)]
    assert {"Okafor", "Maria Lopez", "Ana Silva"} <= set(names)


def test_numbers_inside_decimals_are_not_identifiers():
    t = '"ncp": 0.4111111111111111, "x": 2.5'
    assert recognize_credit_card(t) == []
    assert recognize_ssn("ratio 0.536-22-1234") == []


# Regression cases from the development evaluation set (issue 17): identifiers in formats
# and phrasings the first recognisers missed, and clinical text they flagged.


@pytest.mark.parametrize(
    ("text", "label", "value"),
    [
        ("MRN: 000-577-49 Pacemaker", PiiLabel.MRN, "000-577-49"),
        ("Medical record number A00917723", PiiLabel.MRN, "A00917723"),
        ("Record MR796966 reviewed", PiiLabel.MRN, "MR796966"),
        ("Unit No.: 7731902", PiiLabel.MRN, "7731902"),
        ("billing account 269 519 725.", PiiLabel.ACCOUNT, "269 519 725"),
        ("Account #: PA-995514", PiiLabel.ACCOUNT, "PA-995514"),
        ("Guarantor acct 4402-118-93;", PiiLabel.ACCOUNT, "4402-118-93"),
        ("driver's license L 007 928 434 174.", PiiLabel.LICENSE, "L 007 928 434 174"),
        ("his license is 26 209 163.", PiiLabel.LICENSE, "26 209 163"),
        ("Sincerely, Dr. Oyelowo, NPI 1234567893", PiiLabel.LICENSE, "1234567893"),
        ("Medicaid number M68 921 591 confirmed", PiiLabel.HEALTH_PLAN, "M68 921 591"),
        ("car keys (plate KR 30497).", PiiLabel.VEHICLE, "KR 30497"),
        ("tag no. HGF 2231", PiiLabel.VEHICLE, "HGF 2231"),
        ("Atrial lead SN 2532RS, ok", PiiLabel.DEVICE, "2532RS"),
        (
            "serial # (01)01137626785729(11)123708(21)M6177 kept",
            PiiLabel.DEVICE,
            "(01)01137626785729(11)123708(21)M6177",
        ),
        ("Fingerprint ID BIO989109 enrolled", PiiLabel.BIOMETRIC, "BIO989109"),
        ("verified by voice ID IR-10-83646 and", PiiLabel.BIOMETRIC, "IR-10-83646"),
        ("Pt is a 98 y.o. carpenter", PiiLabel.AGE, "98"),
        ("aged 93, independent", PiiLabel.AGE, "93"),
        ("Emergency: 93 yo male", PiiLabel.AGE, "93"),
        ("Patient age: 101 years.", PiiLabel.AGE, "101"),
        ("Pt is a 98 y.o. carpenter", PiiLabel.PROFESSION, "carpenter"),
        ("She works as a dental hygienist.", PiiLabel.PROFESSION, "dental hygienist"),
        ("Occupation: truck driver (retired)", PiiLabel.PROFESSION, "truck driver"),
        ("Employer: Brightwater Staffing Inc.", PiiLabel.ORGANIZATION, "Brightwater Staffing Inc."),
        ("moved here from Ukraine in", PiiLabel.LOCATION, "Ukraine"),
        ("Received 14th of October", PiiLabel.DATE, "14th of October"),
        ("Patient message (7/27) from", PiiLabel.DATE, "7/27"),
        ("cell 517/787-2533.", PiiLabel.PHONE, "517/787-2533"),
    ],
)
def test_regressions_found(text, label, value):
    from tutela.anonymize.recognizers import run_patterns

    assert (label, value) in texts(list(run_patterns(text)), text)


@pytest.mark.parametrize(
    "text",
    [
        "Known Wolff-Parkinson-White pattern on prior ECG.",
        "She has a history of Graves disease and Hashimoto encephalopathy was considered.",
        "Neutrophils 2 x 10^9/L, lymphocytes 0.9 x 10^9/L.",
        "Grade 2/6 murmur; strength 4/5 in the left leg.",
        "Model W1DR01 generator functioning normally.",
        "Lot 4471B exp 09/2026 dispensed.",
        "BIBA after MVC; restrained driver, GCS 15.",
        "CrCl 38 mL/min by Cockcroft-Gault; CAM-ICU negative.",
        "Holter showed 3 pauses, longest 3.4 s.",
        "Dear Colleague,\nPlease see the enclosed report.",
    ],
)
def test_regressions_clinical_text_stays_unflagged(text, ner_detector, rules_detector):
    assert rules_detector.detect(text) == []
    assert ner_detector.detect(text) == []


def test_npi_known_answers():
    from tutela.anonymize.recognizers import npi_valid

    assert npi_valid("1234567893")
    assert not npi_valid("1234567890")
    assert not npi_valid("123456789")


def test_ner_names_lose_field_labels_and_never_cross_lines(ner_detector):
    text = "Prescriber Ogunbanjo reviewed.\nHoratio\nDisposition: home."
    spans = ner_detector.detect(text)
    found = [text[s.start : s.end] for s in spans]
    assert all("\n" not in f for f in found)
    assert "Prescriber" not in " ".join(found)


def test_rule_name_outranks_a_shorter_model_span(ner_detector):
    # the model tags only the given name (as an organisation); the rule span must win so
    # the surname does not leak
    text = "Pt: Hawthorne, Isidore"
    assert [text[s.start : s.end] for s in ner_detector.detect(text)] == ["Hawthorne, Isidore"]
