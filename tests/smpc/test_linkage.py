"""Blocking keys: the normalisation that lets two hospitals' conventions meet."""

from __future__ import annotations

import pytest

from tutela.smpc.linkage import (
    BlockingKey,
    blocking_keys,
    normalise_date,
    normalise_identifier,
    normalise_name,
    soundex,
)


@pytest.mark.parametrize(
    ("text", "day_first"),
    [
        ("1980-03-12", True),
        ("1980/3/12", True),
        ("1980-03-12T08:30:00", True),
        ("19800312", True),
        ("12/03/1980", True),
        ("12.3.1980", True),
        ("03/12/1980", False),
        ("12 March 1980", True),
        ("12th mar. 1980", True),
        ("March 12, 1980", True),
        (" 12   MARCH 1980 ", True),
    ],
)
def test_dates_of_birth_in_any_common_format(text: str, day_first: bool) -> None:
    assert normalise_date(text, day_first=day_first) == "1980-03-12"


def test_an_unambiguous_day_is_read_as_a_day() -> None:
    assert normalise_date("03/25/1980", day_first=True) == "1980-03-25"
    assert normalise_date("25/03/1980", day_first=False) == "1980-03-25"


@pytest.mark.parametrize("text", ["31/02/1980", "1980-13-01", "yesterday", "12 Marchember 1980"])
def test_impossible_or_unreadable_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        normalise_date(text)


def test_names_fold_accents_case_spacing_punctuation_and_order() -> None:
    assert normalise_name("Zoë  O'Brien-Müller") == normalise_name("MULLER, zoe obrien")
    assert normalise_name("Straße") == normalise_name("STRASSE")
    assert normalise_name("Ann") != normalise_name("Anna")


def test_soundex_known_answers() -> None:
    """Values from the US National Archives' description of American Soundex."""
    assert soundex("Robert") == soundex("Rupert") == "R163"
    assert soundex("Ashcraft") == "A261"  # h does not separate s and c
    assert soundex("Tymczak") == "T522"
    assert soundex("Pfister") == "P236"  # the first letter's code absorbs the f
    assert soundex("Lee") == "L000"
    assert soundex("") == ""


def test_identifiers_keep_letters_and_digits() -> None:
    assert normalise_identifier("943 476-5919") == normalise_identifier("9434765919")
    assert normalise_identifier("ab12ff") == "AB12FF"


def test_keys_per_record_with_missing_fields() -> None:
    rows = [
        {"given_name": "Jon", "family_name": "Smyth", "date_of_birth": "1/2/1980", "id": "7"},
        {"given_name": "John", "family_name": "Smith", "date_of_birth": "not a date"},
        {"given_name": "John", "family_name": "Smith", "date_of_birth": float("nan")},
    ]
    kinds = (BlockingKey.IDENTIFIER, BlockingKey.NAME_DOB, BlockingKey.PHONETIC_DOB)
    keys = blocking_keys(rows, kinds, identifier="id")
    assert keys[0] == (
        b"identifier\x007",
        b"name+dob\x00jon smyth|1980-02-01",
        b"phonetic+dob\x00J500 S530|1980-02-01",
    )
    assert keys[1] == keys[2] == (None, None, None)
    with pytest.raises(ValueError, match="identifier column"):
        blocking_keys(rows, (BlockingKey.IDENTIFIER,))
    with pytest.raises(ValueError, match="distinct"):
        blocking_keys(rows, (BlockingKey.NAME_DOB, BlockingKey.NAME_DOB))
