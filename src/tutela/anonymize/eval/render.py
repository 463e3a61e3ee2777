"""Rendering labelled notes from templates: the machinery the evaluation sets share.

A template is text with ``{SLOT}`` fields. Each evaluation set supplies its own fillers
(one per slot name), its own templates per :class:`NoteKind` and its own PII-free lines;
only this rendering step, which records the gold span of every filled value, is shared.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tutela.anonymize.scoring import LabelledNote
from tutela.anonymize.spans import PiiLabel, Span
from tutela.anonymize.validators import vin_valid


class NoteKind(StrEnum):
    """The eleven kinds of clinical note every evaluation set covers."""

    DISCHARGE = "discharge summary"
    REFERRAL = "referral letter"
    PORTAL = "portal message"
    LAB = "lab report"
    RADIOLOGY = "radiology report"
    PHARMACY = "pharmacy note"
    NURSING = "nursing note"
    SOCIAL_WORK = "social work note"
    TELEHEALTH = "telehealth note"
    DEVICE_CLINIC = "device clinic note"
    ED = "emergency department note"


Piece = tuple[str, PiiLabel | None]
"""A piece of filled text and its gold label (``None``: not an identifier)."""


@dataclass
class Patient:
    """The person a note is about, so that repeated slots name the same patient."""

    first: str
    last: str
    female: bool
    extra: dict[str, str] = field(default_factory=dict)


Filler = Callable[[random.Random, Patient], Sequence[Piece]]
_SLOT = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")


def render(
    template: str, rng: random.Random, patient: Patient, fillers: Mapping[str, Filler]
) -> tuple[str, list[Span]]:
    """Fill ``template``'s slots; return the text and the gold spans of labelled pieces."""
    parts: list[str] = []
    spans: list[Span] = []
    length = 0
    pos = 0
    for m in _SLOT.finditer(template):
        literal = template[pos : m.start()]
        parts.append(literal)
        length += len(literal)
        filler = fillers.get(m.group(1))
        if filler is None:
            raise KeyError(f"template slot {m.group(1)!r} has no filler: {template!r}")
        for value, label in filler(rng, patient):
            if label is not None and value.strip():
                lead = len(value) - len(value.lstrip())
                core = value.strip()
                spans.append(Span(length + lead, length + lead + len(core), label, 1.0, "gold"))
            parts.append(value)
            length += len(value)
        pos = m.end()
    parts.append(template[pos:])
    return "".join(parts), spans


def join_lines(lines: Sequence[tuple[str, list[Span]]], sep: str = "\n") -> LabelledNote:
    """One note from rendered lines, shifting each line's spans to note offsets."""
    text_parts: list[str] = []
    spans: list[Span] = []
    offset = 0
    for text, line_spans in lines:
        spans.extend(s.shifted(offset) for s in line_spans)
        text_parts.append(text)
        offset += len(text) + len(sep)
    return LabelledNote(sep.join(text_parts), tuple(spans))


@dataclass(frozen=True)
class NoteStyle:
    """One evaluation set's way of writing notes.

    Attributes:
        headers: per note kind, the header templates (one is drawn per note).
        bodies: per note kind, identifier-bearing lines (several are drawn per note).
        clinical: per note kind, lines with no identifiers (drawn into every note, and
            the only content of PII-free notes).
        fillers: slot name to value generator.
        new_patient: draws the patient of one note.
        pii_free_every: every this many notes, one holds clinical lines only.
    """

    headers: Mapping[NoteKind, Sequence[str]]
    bodies: Mapping[NoteKind, Sequence[str]]
    clinical: Mapping[NoteKind, Sequence[str]]
    fillers: Mapping[str, Filler]
    new_patient: Callable[[random.Random], Patient]
    pii_free_every: int = 10


def generate_notes(
    style: NoteStyle, n: int, seed: int, *, pii_free_every: int | None = None
) -> list[LabelledNote]:
    """``n`` notes in ``style``, cycling through the note kinds; every
    ``pii_free_every``-th note (default: the style's) holds clinical lines only (no
    gold spans)."""
    if pii_free_every is None:
        pii_free_every = style.pii_free_every
    if n < 0:
        raise ValueError("n must be non-negative")
    if pii_free_every < 2:
        raise ValueError("pii_free_every must be at least 2")
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    kinds = list(NoteKind)
    notes: list[LabelledNote] = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        patient = style.new_patient(rng)
        pool = style.clinical[kind]
        if i % pii_free_every == pii_free_every - 1:
            lines: list[tuple[str, list[Span]]] = [
                (line, []) for line in rng.sample(list(pool), min(len(pool), 5))
            ]
            notes.append(join_lines(lines))
            continue
        header = render(rng.choice(list(style.headers[kind])), rng, patient, style.fillers)
        bodies = list(style.bodies[kind])
        chosen = rng.sample(bodies, min(len(bodies), rng.randint(3, 5)))
        body = [render(t, rng, patient, style.fillers) for t in chosen]
        body += [(line, []) for line in rng.sample(list(pool), min(len(pool), 3))]
        rng.shuffle(body)
        notes.append(join_lines([header, *body]))
    return notes


def random_vin(rng: random.Random) -> str:
    """A vehicle identification number with a valid check digit (position 9), the one
    format both evaluation sets share: the check-digit rule leaves no room for style."""
    chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    while True:
        v = [rng.choice(chars) for _ in range(17)]
        for c in "0123456789X":
            v[8] = c
            if vin_valid("".join(v)):
                return "".join(v)
