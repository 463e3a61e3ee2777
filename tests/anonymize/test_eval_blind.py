"""The blind evaluation set: seeded, labelled on exactly the identifier characters, every
scored label frequent enough, one note in eight PII-free, every note kind present."""

from __future__ import annotations

import itertools
import random
import string
from collections import Counter

import pytest

from tutela.anonymize import PiiLabel
from tutela.anonymize.eval import (
    EvalSet,
    NoteKind,
    blind,
    blind_ids,
    blind_values,
    evaluation_notes,
)
from tutela.anonymize.eval.blind_fillers import FILLERS, new_patient
from tutela.anonymize.validators import dea_valid, npi_valid, ssn_valid, vin_valid

REQUIRED = set(PiiLabel) - {PiiLabel.CREDIT_CARD, PiiLabel.IBAN}
# an area code's bracket, a GS1 application identifier's bracket, a HIBCC or +1 plus
ALLOWED_LEAD = "(+"


@pytest.fixture(scope="module")
def notes():
    return evaluation_notes(EvalSet.BLIND, 600)


def test_deterministic_for_a_seed():
    a = evaluation_notes(EvalSet.BLIND, 60)
    assert a == evaluation_notes(EvalSet.BLIND, 60)
    assert a == evaluation_notes(EvalSet.BLIND, 60, seed=blind.SEED)
    assert a != evaluation_notes(EvalSet.BLIND, 60, seed=1)


def test_spans_cover_exactly_the_identifier(notes):
    for note in notes:
        for s in note.spans:
            value = note.text[s.start : s.end]
            assert value, s
            assert value == value.strip(), value
            assert value[0].isalnum() or value[0] in ALLOWED_LEAD, value
            assert value[-1] not in string.punctuation, value
            if value[0] == "(":
                assert ")" in value, value
            # a span never ends in the middle of a word or number
            assert s.end == len(note.text) or not note.text[s.end].isalnum() or value.isdigit()


def test_spans_do_not_overlap(notes):
    for note in notes:
        ordered = sorted(note.spans)
        for a, b in itertools.pairwise(ordered):
            assert a.end <= b.start, (note.text[a.start : a.end], note.text[b.start : b.end])


def test_every_required_label_is_frequent(notes):
    counts = Counter(s.label for n in notes for s in n.spans)
    assert set(counts) == REQUIRED
    assert min(counts.values()) >= 50, counts


def test_one_note_in_eight_is_pii_free(notes):
    free = [n for n in notes if not n.spans]
    assert len(free) == 600 // 8 == 75
    assert blind.STYLE.pii_free_every == 8
    # PII-free notes hold only the identifier-free lines of their kind
    lines = {line for pool in blind.STYLE.clinical.values() for line in pool}
    for note in free:
        assert set(note.text.split("\n")) <= lines


def test_all_kinds_and_no_duplicate_notes(notes):
    assert set(blind.STYLE.headers) == set(blind.STYLE.bodies) == set(NoteKind)
    assert set(blind.STYLE.clinical) == set(NoteKind)
    assert len({n.text for n in notes}) == len(notes)
    # notes cycle through the kinds: each kind's header starts its notes
    assert len(NoteKind) == 11


def test_every_slot_has_a_filler():
    import re

    slot = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
    templates = [
        t
        for group in (blind.STYLE.headers, blind.STYLE.bodies)
        for ts in group.values()
        for t in ts
    ]
    used = {m for t in templates for m in slot.findall(t)}
    assert used <= set(FILLERS)
    assert not {m for line in blind.STYLE.clinical.values() for t in line for m in slot.findall(t)}


def test_identifier_formats_pass_their_checks():
    rng = random.Random(7)
    for _ in range(100):
        assert npi_valid(blind_ids.npi(rng))
        number = blind_ids.dea(rng, "Yazzie")
        assert dea_valid(number) and number[1] == "Y"
        assert ssn_valid(*blind_ids.ssn_parts(rng))
        m = blind_ids.mbi(rng)
        assert len(m) == 11 and m[0] in "123456789" and not set(m) & set("BILOSZ")
        v = blind_ids.vehicle(rng)
        assert len(v) != 17 or vin_valid(v)


def test_masked_ssns_are_labelled_on_the_digits_shown():
    rng = random.Random(8)
    patient = new_patient(rng)
    seen = set()
    for _ in range(80):
        pieces = FILLERS["SSN"](rng, patient)
        labelled = [v for v, label in pieces if label is PiiLabel.SSN]
        assert len(labelled) == 1
        digits = labelled[0].replace("-", "").replace(" ", "")
        assert digits.isdigit() and len(digits) in {4, 9}
        seen.add(len(digits))
    assert seen == {4, 9}


def test_number_words():
    assert blind_values.age_words(90) == "ninety"
    assert blind_values.age_words(94) == "ninety-four"
    assert blind_values.age_words(102) == "one hundred and two"
    assert blind_values.day_ordinal_words(21) == "twenty-first"
    assert blind_values.day_ordinal_words(12) == "twelfth"
    assert blind_ids.ordinal_suffix(22) == "nd"
    assert blind_ids.ordinal_suffix(13) == "th"
    with pytest.raises(ValueError, match="90-109"):
        blind_values.age_words(89)


def test_ages_under_ninety_are_never_labelled(notes):
    for note in notes:
        for s in note.spans:
            if s.label is PiiLabel.AGE:
                value = note.text[s.start : s.end]
                assert not value.isdigit() or int(value) >= 90
