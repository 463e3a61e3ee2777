"""Evaluation sets for the PII detector, written independently of the recognisers.

Each set has its own templates for eleven kinds of clinical note, its own value lists and
identifier formats, and PII-free notes (every tenth, every eighth in the fresh set) to
measure false positives. The held-out sets (:mod:`.heldout`, and :mod:`.fresh`, written
after the first one's misses were read) are kept out of development; only final reports
score them. A fourth set, :mod:`.unseen`, was written independently of the recognisers and
of the other sets' templates, and is likewise kept out of development. A fifth set,
:mod:`.sealed`, was written independently of the recognisers and of the other four sets,
and is scored only for final reports. A sixth set, :mod:`.reserve`, was written
independently of the recognisers and of the other five sets, and is scored only for final
reports. A seventh set, :mod:`.blind`, was written without sight of the recognisers or of
the other six sets, and is scored only for final reports.
"""

from __future__ import annotations

from enum import StrEnum

from tutela.anonymize.eval import (
    blind,
    development,
    fresh,
    heldout,
    reserve,
    sealed,
    unseen,
)
from tutela.anonymize.eval.render import NoteKind, NoteStyle, generate_notes
from tutela.anonymize.scoring import LabelledNote

__all__ = ["EvalSet", "NoteKind", "evaluation_notes"]


class EvalSet(StrEnum):
    """Which evaluation set to draw notes from."""

    DEVELOPMENT = "development"
    HELDOUT = "heldout"
    FRESH = "fresh"
    UNSEEN = "unseen"
    SEALED = "sealed"
    RESERVE = "reserve"
    BLIND = "blind"


_STYLES: dict[EvalSet, tuple[NoteStyle, int]] = {
    EvalSet.DEVELOPMENT: (development.STYLE, development.SEED),
    EvalSet.HELDOUT: (heldout.STYLE, heldout.SEED),
    EvalSet.FRESH: (fresh.STYLE, fresh.SEED),
    EvalSet.UNSEEN: (unseen.STYLE, unseen.SEED),
    EvalSet.SEALED: (sealed.STYLE, sealed.SEED),
    EvalSet.RESERVE: (reserve.STYLE, reserve.SEED),
    EvalSet.BLIND: (blind.STYLE, blind.SEED),
}


def evaluation_notes(which: EvalSet, n: int, seed: int | None = None) -> list[LabelledNote]:
    """``n`` labelled notes from one evaluation set (a share of them PII-free).

    Args:
        which: the set.
        n: number of notes (cycling through the eleven note kinds).
        seed: RNG seed; default the set's own seed.
    """
    style, default_seed = _STYLES[EvalSet(which)]
    return generate_notes(style, n, default_seed if seed is None else seed)
