"""Scoring a detector against labelled notes: identifier-level precision, recall and F2,
per label, and how many identifier-free notes it flags."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from tutela.anonymize.spans import PiiLabel, Span

_UNITS = {w: i for i, w in enumerate(re.findall(r"\w+", "zero one two three four five six"))}
_UNITS |= {w: i + 7 for i, w in enumerate(re.findall(r"\w+", "seven eight nine ten eleven"))}
_UNITS |= {w: i + 12 for i, w in enumerate(re.findall(r"\w+", "twelve thirteen fourteen"))}
_UNITS |= {w: i + 15 for i, w in enumerate(re.findall(r"\w+", "fifteen sixteen seventeen"))}
_UNITS |= {"eighteen": 18, "nineteen": 19}
_TENS = {w: 10 * (i + 2) for i, w in enumerate(re.findall(r"\w+", "twenty thirty forty fifty"))}
_TENS |= {"sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}


def age_value(text: str) -> int | None:
    """The age a gold AGE span states, in digits or words ("93", "F/97", "ninety-one",
    "a hundred and two"); None when it states none."""
    digits = re.search(r"\d+", text)
    if digits:
        return int(digits.group())
    total, seen = 0, False
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in ("a", "one") and not seen:
            total, seen = 1, True
        elif word == "hundred":
            total, seen = max(total, 1) * 100, True
        elif word in _TENS:
            total, seen = total + _TENS[word], True
        elif word in _UNITS:
            total, seen = total + _UNITS[word], True
    return total if seen else None


@dataclass(frozen=True)
class LabelledNote:
    """A note and the gold spans of every identifier in it."""

    text: str
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class DetectionScores:
    """Identifier-level precision, recall and F2 of a detector on labelled notes.

    A gold span counts as found when at least ``min_coverage`` of its characters are
    covered by predictions of any label (what matters for de-identification is that the
    characters are removed); a prediction counts as correct when at least ``min_coverage``
    of its characters fall inside gold spans of any label.

    Attributes:
        per_label_recall: recall per gold label.
        per_label_precision: precision per predicted label (only when the predictions
            are :class:`Span` objects, which carry a label).
        clean_notes: notes without any gold span.
        clean_notes_flagged: how many of those got at least one prediction.
    """

    precision: float
    recall: float
    f2: float
    per_label_recall: dict[PiiLabel, float]
    gold: int
    predicted: int
    per_label_precision: dict[PiiLabel, float] = field(default_factory=dict)
    clean_notes: int = 0
    clean_notes_flagged: int = 0

    @property
    def clean_flag_rate(self) -> float:
        """Share of identifier-free notes with at least one prediction (0 when none)."""
        return self.clean_notes_flagged / self.clean_notes if self.clean_notes else 0.0


def _covered(ranges: list[tuple[int, int]], length: int) -> list[bool]:
    mask = [False] * length
    for a, b in ranges:
        for i in range(max(0, a), min(length, b)):
            mask[i] = True
    return mask


def _f2(precision: float, recall: float) -> float:
    return 5 * precision * recall / (4 * precision + recall) if precision + recall else 0.0


def score_detections(
    notes: Sequence[LabelledNote],
    predictions: Sequence[Sequence[tuple[int, int] | Span]],
    min_coverage: float = 0.5,
) -> DetectionScores:
    """Score predicted character ranges (or :class:`Span` objects) against the notes'
    gold spans (see :class:`DetectionScores`)."""
    if len(notes) != len(predictions):
        raise ValueError("one prediction list per note is required")
    found: dict[PiiLabel, list[int]] = {}
    right: dict[PiiLabel, list[int]] = {}
    correct = n_pred = clean = flagged = 0
    for note, pred in zip(notes, predictions, strict=True):
        ranges = [(p.start, p.end) if isinstance(p, Span) else p for p in pred]
        pred_mask = _covered(ranges, len(note.text))
        gold_mask = _covered([(s.start, s.end) for s in note.spans], len(note.text))
        if not note.spans:
            clean += 1
            flagged += int(bool(pred))
        for span in note.spans:
            hit = sum(pred_mask[span.start : span.end]) >= min_coverage * len(span)
            tally = found.setdefault(span.label, [0, 0])
            tally[0] += int(hit)
            tally[1] += 1
        for p, (a, b) in zip(pred, ranges, strict=True):
            n_pred += 1
            ok = sum(gold_mask[a:b]) >= min_coverage * (b - a)
            correct += int(ok)
            if isinstance(p, Span):
                tally = right.setdefault(p.label, [0, 0])
                tally[0] += int(ok)
                tally[1] += 1
    n_gold = sum(v[1] for v in found.values())
    recall = sum(v[0] for v in found.values()) / n_gold if n_gold else 1.0
    precision = correct / n_pred if n_pred else 1.0
    return DetectionScores(
        precision=precision,
        recall=recall,
        f2=_f2(precision, recall),
        per_label_recall={k: v[0] / v[1] for k, v in sorted(found.items())},
        gold=n_gold,
        predicted=n_pred,
        per_label_precision={k: v[0] / v[1] for k, v in sorted(right.items())},
        clean_notes=clean,
        clean_notes_flagged=flagged,
    )
