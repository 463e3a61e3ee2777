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
