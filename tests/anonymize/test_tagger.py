"""The learned token tagger: shipped weights, span alignment, damaged files, training."""

from __future__ import annotations

from pathlib import Path

import pytest

from tutela.anonymize import PiiDetector, PiiLabel, Span
from tutela.anonymize.corpus import generate_corpus
from tutela.anonymize.recognizers import run_patterns
from tutela.anonymize.tagger import (
    WEIGHTS,
    TaggerConfig,
    TokenTagger,
    adopt_labels,
    decode,
    load_tagger,
    token_targets,
    tokenize,
)
from tutela.anonymize.tagger_train import examples, safe_harbor_gold, train
from tutela.errors import ConfigError

# Written for this test, in phrasings of its own: (note, identifiers the tagger must cover).
NOTES = [
    (
        "Handover 0700: bed 12 is Rosalind Achterberg, 93, transferred from Quillfield "
        "Cottage Hospital overnight.\nHer daughter Perpetua rang from 07723 418 902 asking "
        "for an update.",
        ["Rosalind Achterberg", "93", "Quillfield Cottage Hospital", "07723 418 902"],
    ),
    (
        "Clinic letter\nPatient: Obadiah Featherstonehaugh\nHospital no: QX-5581904\n"
        "Seen on 14 March 2024 with his carer. He worked as a stonemason until retiring.",
        ["Obadiah Featherstonehaugh", "QX-5581904", "14 March 2024", "stonemason"],
    ),
    (
        "Telephone follow-up with Mrs Ingeborg Vallancey-Hythe regarding her wound.\n"
        "Reply to i.vallancey@mailbox-example.net or write to 27 Larchmere Crescent.",
        [
            "Ingeborg Vallancey-Hythe",
            "i.vallancey@mailbox-example.net",
            "27 Larchmere Crescent",
        ],
    ),
]

CLINICAL = (
    "Plan: continue bisoprolol 2.5 mg once daily, recheck potassium in two weeks.\n"
    "Chest clear, heart sounds dual with no added sounds, abdomen soft and non-tender."
)


@pytest.fixture(scope="module")
def tagger() -> TokenTagger:
    return load_tagger()


def _covered(spans: list[Span], text: str, value: str) -> bool:
    start = text.index(value)
    end = start + len(value)
    hit = sum(max(0, min(end, s.end) - max(start, s.start)) for s in spans)
    return hit >= 0.5 * len(value)


def test_the_shipped_weights_are_in_the_package() -> None:
    assert WEIGHTS.is_file()
    assert WEIGHTS.stat().st_size < 5_000_000


@pytest.mark.parametrize(("text", "values"), NOTES)
def test_the_shipped_tagger_finds_identifiers_in_handwritten_notes(
    tagger: TokenTagger, text: str, values: list[str]
) -> None:
    spans = tagger.detect(text, list(run_patterns(text)))
    missed = [v for v in values if not _covered(spans, text, v)]
    assert not missed, (missed, [text[s.start : s.end] for s in spans])


def test_the_tagger_alone_finds_names_and_record_numbers(tagger: TokenTagger) -> None:
    # no rule hits given: what it finds here comes from the model
    text, values = NOTES[1]
    spans = tagger.detect(text)
    assert _covered(spans, text, "Obadiah Featherstonehaugh")
    assert _covered(spans, text, "QX-5581904")
    labels = {s.label for s in spans}
    assert PiiLabel.PERSON in labels


def test_the_detector_with_the_tagger_keeps_clinical_text_clean() -> None:
    detector = PiiDetector(ner="off", tagger=True)
    assert detector.tagger_enabled
    assert detector.detect(CLINICAL) == []
    found = detector.detect(NOTES[0][0])
    assert _covered(found, NOTES[0][0], "Rosalind Achterberg")


@pytest.mark.parametrize("text", [n[0] for n in NOTES] + [CLINICAL])
def test_spans_align_to_the_text(tagger: TokenTagger, text: str) -> None:
    for span in tagger.detect(text, list(run_patterns(text))):
        piece = text[span.start : span.end]
        assert 0 <= span.start < span.end <= len(text)
        assert piece == piece.strip()
        assert "\n" not in piece
        assert piece[0].isalnum()
        assert piece[-1].isalnum()
        assert 0.0 <= span.score <= 1.0
        assert span.source == "tagger"


def test_inference_is_deterministic_and_batch_independent(tagger: TokenTagger) -> None:
    texts = [n[0] for n in NOTES] + [CLINICAL]
    rules = [list(run_patterns(t)) for t in texts]
    alone = [tagger.detect(t, r) for t, r in zip(texts, rules, strict=True)]
    batched = tagger.detect_many(texts, rules)
    assert tagger.detect_many(texts, rules) == batched
    assert load_tagger().detect_many(texts, rules) == batched
    # padding a note into a batch changes float rounding only, not the spans
    assert len(alone) == len(batched)
    for one, many in zip(alone, batched, strict=True):
        assert [(s.start, s.end, s.label) for s in one] == [(s.start, s.end, s.label) for s in many]
        assert all(abs(a.score - b.score) < 1e-5 for a, b in zip(one, many, strict=True))


def test_a_missing_weights_file_is_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ConfigError, match="not found") as info:
        PiiDetector(ner="off", tagger=True, tagger_weights=missing)
    assert "\n" not in str(info.value)


def test_a_garbage_weights_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01 this is not a weights file" * 10)
    with pytest.raises(ConfigError, match="unreadable") as info:
        load_tagger(bad)
    assert "\n" not in str(info.value)


def test_a_damaged_weight_is_caught_by_its_hash(tmp_path: Path) -> None:
    data = bytearray(WEIGHTS.read_bytes())
    data[-100] ^= 0x40  # inside the tensor payload, after the header
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="SHA-256") as info:
        load_tagger(bad)
    assert "\n" not in str(info.value)


def test_a_truncated_weights_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "short.safetensors"
    bad.write_bytes(WEIGHTS.read_bytes()[:5000])
    with pytest.raises(ConfigError) as info:
        load_tagger(bad)
    assert "\n" not in str(info.value)


def test_training_a_tiny_model_lowers_its_loss() -> None:
    config = TaggerConfig(buckets=1 << 10, dim=8, hidden=16, dilations=(1,), dropout=0.0)
    data = examples(generate_corpus(16, seed=3), config.buckets)
    _, losses = train(data, config, epochs=20, batch_size=8, lr=1e-2, max_steps=30)
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:3]) / 3


def test_training_is_deterministic() -> None:
    config = TaggerConfig(buckets=1 << 10, dim=8, hidden=16, dilations=(1,))
    data = examples(generate_corpus(8, seed=4), config.buckets)
    first = train(data, config, epochs=2, batch_size=4, seed=1)[1]
    second = train(data, config, epochs=2, batch_size=4, seed=1)[1]
    assert first == second


def test_targets_follow_gold_spans_and_skip_line_breaks() -> None:
    text = "Name: Ada Quist\nMRN 123"
    gold = [Span(6, 15, PiiLabel.PERSON), Span(20, 23, PiiLabel.MRN)]
    tokens = tokenize(text)
    targets = token_targets(tokens, gold)
    by_text = {t.text: c for t, c in zip(tokens, targets, strict=True)}
    person = 1 + list(PiiLabel).index(PiiLabel.PERSON)
    assert by_text["Ada"] == by_text["Quist"] == person
    assert by_text["Name"] == by_text[":"] == by_text["\n"] == by_text["MRN"] == 0
    assert by_text["123"] == 1 + list(PiiLabel).index(PiiLabel.MRN)


def test_decoding_trims_punctuation_and_stops_at_line_breaks() -> None:
    text = "(Ada Quist,\nBo)"
    tokens = tokenize(text)
    person = 1 + list(PiiLabel).index(PiiLabel.PERSON)
    spans = decode(tokens, [person] * len(tokens), [0.9] * len(tokens))
    assert [text[s.start : s.end] for s in spans] == ["Ada Quist", "Bo"]


def test_lone_tagger_spans_need_the_higher_threshold() -> None:
    text = "A1234567 x Bo Lee x Ann-Roe x Cy Poe at 2000 h"

    def at(value: str, label: PiiLabel, score: float) -> Span:
        start = text.index(value)
        return Span(start, start + len(value), label, score, "tagger")

    rule = Span(0, 5, PiiLabel.MRN, 0.9, "mrn")
    overlapping = at("4567 x", PiiLabel.ACCOUNT, 0.6)
    lone_high = at("Bo Lee", PiiLabel.PERSON, 0.85)
    lone_low = at("Cy Poe", PiiLabel.PERSON, 0.7)
    bare_number = at("2000", PiiLabel.DATE, 0.99)
    glued = at("Roe", PiiLabel.PERSON, 0.95)
    tagged = [overlapping, lone_high, lone_low, bare_number, glued]
    kept = adopt_labels(text, tagged, [rule], alone_threshold=0.8)
    relabelled = Span(overlapping.start, overlapping.end, PiiLabel.MRN, 0.6, "tagger")
    assert kept == [relabelled, lone_high]


def test_safe_harbor_gold_drops_young_ages_only() -> None:
    from tutela.anonymize.scoring import LabelledNote

    text = "aged 45, mother ninety-two, PID 7"
    note = LabelledNote(
        text,
        (
            Span(5, 7, PiiLabel.AGE),
            Span(16, 26, PiiLabel.AGE),
            Span(32, 33, PiiLabel.MRN),
        ),
    )
    assert [text[s.start : s.end] for s in safe_harbor_gold(note).spans] == ["ninety-two", "7"]
