"""The reserve evaluation set: seeded, every i2b2 label often enough to be scored, written
apart from the other five sets, and its check-digit identifiers valid."""

from __future__ import annotations

import random
from collections import Counter

from tests.anonymize.test_eval_sets import I2B2_LABELS, _assert_written_apart
from tutela.anonymize import PiiLabel
from tutela.anonymize.eval import (
    EvalSet,
    NoteKind,
    development,
    development_values,
    evaluation_notes,
    fresh,
    fresh_values,
    heldout,
    heldout_values,
    reserve,
    reserve_ids,
    reserve_values,
    sealed,
    sealed_values,
    unseen,
    unseen_values,
)
from tutela.anonymize.validators import dea_valid, luhn_valid, npi_valid, ssn_valid, vin_valid


def test_reserve_set_is_seeded():
    a = evaluation_notes(EvalSet.RESERVE, 66)
    assert a == evaluation_notes(EvalSet.RESERVE, 66)
    assert a == evaluation_notes(EvalSet.RESERVE, 66, seed=reserve.SEED)
    assert a != evaluation_notes(EvalSet.RESERVE, 66, seed=reserve.SEED + 1)


def test_reserve_set_covers_every_label_and_kind():
    notes = evaluation_notes(EvalSet.RESERVE, 600)
    counts = Counter(s.label for n in notes for s in n.spans)
    assert set(counts) == I2B2_LABELS
    assert PiiLabel.CREDIT_CARD not in counts and PiiLabel.IBAN not in counts
    assert min(counts.values()) >= 50, counts
    assert sum(1 for n in notes if not n.spans) == 600 // 8 >= 60
    for note in notes:
        for s in note.spans:
            value = note.text[s.start : s.end]
            assert value == value.strip() and value
    style = reserve.STYLE
    assert set(style.headers) == set(style.bodies) == set(style.clinical) == set(NoteKind)
    for kind in NoteKind:
        assert len(style.headers[kind]) >= 8
        assert len(style.bodies[kind]) >= 12
        assert len(style.clinical[kind]) >= 25


def test_reserve_set_is_written_apart_from_the_others():
    _assert_written_apart(
        reserve,
        reserve_values,
        (
            (development, development_values),
            (heldout, heldout_values),
            (fresh, fresh_values),
            (unseen, unseen_values),
            (sealed, sealed_values),
        ),
    )


def test_reserve_ages_are_ninety_and_over_only():
    rng = random.Random(11)
    patient = reserve_values.new_patient(rng)
    for _ in range(200):
        for value, label in reserve_values.fillers["AGE"](rng, patient):
            if label is PiiLabel.AGE:
                n = int(value) if value.isdigit() else None
                assert n is None or n >= 90
        assert all(label is None for _, label in reserve_values.fillers["AGE_YOUNG"](rng, patient))


def test_reserve_number_words():
    assert reserve_values.words(94) == "ninety-four"
    assert reserve_values.words(90) == "ninety"
    assert reserve_values.words(103) == "one hundred and three"
    assert reserve_values.ordinal(1) == "first"
    assert reserve_values.ordinal(22) == "twenty-second"
    assert reserve_values.ordinal(30) == "thirtieth"
    assert reserve_values.ordinal(12) == "twelfth"
    assert reserve_values.year_words(1941) == "nineteen forty-one"
    assert reserve_values.year_words(1905) == "nineteen oh five"
    assert reserve_values.year_words(2003) == "two thousand and three"
    assert reserve_values.year_words(2000) == "two thousand"
    assert [reserve_values.suffix(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
    ]


def _hkid_ok(value: str) -> bool:
    letter, body, check = value[0], value[1:7], value[8]
    values = [36, ord(letter) - 55, *(int(c) for c in body)]
    total = sum(v * w for v, w in zip(values, range(9, 1, -1), strict=True))
    return (total + (10 if check == "A" else int(check))) % 11 == 0


def _phn_ok(value: str) -> bool:
    digits = value.replace(" ", "")
    weights = (2, 4, 8, 5, 10, 9, 7, 3)
    total = sum((int(c) * w) % 11 for c, w in zip(digits[1:9], weights, strict=True))
    return len(digits) == 10 and digits[0] == "9" and 11 - total % 11 == int(digits[9])


def test_reserve_check_digits():
    rng = random.Random(7)
    for _ in range(100):
        assert luhn_valid(reserve_ids.sin(rng).replace(" ", ""))
        eid = reserve_ids.emirates_id(rng)
        assert eid.startswith("784-") and luhn_valid(eid.replace("-", ""))
        assert _hkid_ok(reserve_ids.hkid(rng))
        assert _phn_ok(reserve_ids.bc_phn(rng))
        ohip = reserve_ids.ohip(rng)
        digits = "".join(c for c in ohip if c.isdigit())
        assert len(digits) == 10 and luhn_valid(digits) and ohip[-2:].isalpha()
        assert luhn_valid(reserve_ids.imei(rng)) and len(reserve_ids.imei(rng)) == 15
        assert dea_valid(reserve_ids.dea(rng, "Xuereb"))
        assert reserve_ids.dea(rng, "Xuereb")[1] == "X"
        assert npi_valid(reserve_ids.npi(rng))
        assert vin_valid(reserve_ids.vin(rng))
        area, group, serial = reserve_ids.us_ssn(rng).split("-")
        assert ssn_valid(area, group, serial)
        m = reserve_ids.mbi(rng)
        assert len(m) == 11 and m[0] in "123456789" and not set(m) & set("BILOSZ")
        cnic = reserve_ids.cnic(rng, female=True)
        assert int(cnic[-1]) % 2 == 0 and len(cnic.replace("-", "")) == 13
        mykad = reserve_ids.mykad(rng, female=False)
        assert int(mykad[-1]) % 2 == 1 and len(mykad.replace("-", "")) == 12
    assert reserve_ids.hkid_check("A", "123456") == "3"


def test_reserve_has_no_financial_identifiers():
    rng = random.Random(3)
    patient = reserve_values.new_patient(rng)
    for filler in reserve_values.fillers.values():
        for _ in range(20):
            for _, label in filler(rng, patient):
                assert label not in {PiiLabel.CREDIT_CARD, PiiLabel.IBAN}
