"""PII detection with the learned token tagger: leave-one-set-out over the six evaluation sets.

For each of the six sets of :mod:`tutela.anonymize.eval` (each written by its own writer,
with its own templates, values and identifier formats), a tagger is trained on the other
five (each drawn with the seeds of :data:`~tutela.anonymize.tagger_train.SEEDS`) plus the
corpus generator, and the held-out set's own 600 notes are scored with:

* (a) the current default, rules + spaCy NER,
* (b) rules + tagger (no spaCy),
* (c) rules + spaCy NER + tagger,

rules alone for reference, and (c) with lone tagger spans (ones no rule or NER span
overlaps) kept from score 0.5 instead of the default 0.8. Each held-out writer is unseen
by that fold's tagger, so this is the estimate of how the tagger carries over to notes
written by someone else. The rules and the NER were tuned on these sets over issue 17, so
(a)'s numbers on them are development numbers, not held-out ones, and the lone-span
threshold was chosen on an early fold (unseen held out).

Gold: as the sets label it, except gold ages under 90, which the detector does not report
by design (Safe Harbor), are dropped (``safe_harbor_gold``). US states stay in the gold and
the default detector keeps them (Safe Harbor), as in ``benchmarks/pii.py``'s headline.
Scoring as in ``benchmarks/pii.py`` (identifier-level, half-coverage, F2).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pii_tagger.py            # all six folds
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pii_tagger.py --folds unseen --epochs 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from tutela.anonymize import PiiDetector, PiiLabel, score_detections
from tutela.anonymize.eval import EvalSet, evaluation_notes
from tutela.anonymize.scoring import DetectionScores, LabelledNote
from tutela.anonymize.tagger import TaggerConfig, save_weights
from tutela.anonymize.tagger_train import (
    EPOCHS,
    SEEDS,
    corpus_notes,
    examples,
    safe_harbor_gold,
    set_notes,
    train,
)

SETS = ("development", "heldout", "fresh", "unseen", "sealed", "reserve")
"""The six sets (a set kept back for a final score is never listed here)."""

SYSTEMS = (
    "rules",
    "(a) rules+spaCy",
    "(b) rules+tagger",
    "(c) rules+spaCy+tagger",
    "(c') as (c), lone tagger spans from 0.5",
)


def score(detector: PiiDetector, notes: list[LabelledNote]) -> tuple[DetectionScores, float]:
    texts = [n.text for n in notes]
    t0 = time.perf_counter()
    spans = list(detector.detect_many(texts))
    rate = len(texts) / (time.perf_counter() - t0)
    return score_detections(notes, spans), rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="draws per training set")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = TaggerConfig()
    seeds = SEEDS[: args.seeds]
    t0 = time.perf_counter()
    encoded = {s: examples(set_notes(s, seeds), config.buckets) for s in SETS}
    base = examples(corpus_notes(), config.buckets)
    print(f"encoded training notes in {time.perf_counter() - t0:.0f} s")
    rules = PiiDetector(ner="off")
    spacy = PiiDetector(ner="auto")
    if not spacy.ner_available:
        raise SystemExit(f"spaCy NER unavailable: {spacy.status.note}")
    results: dict[str, dict[str, tuple[DetectionScores, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for held in args.folds:
            data = base + [e for s in SETS if s != held for e in encoded[s]]
            t0 = time.perf_counter()
            model, losses = train(data, config, epochs=args.epochs)
            took = time.perf_counter() - t0
            print(f"fold {held}: {len(data)} notes, {took:.0f} s, losses {losses[-1]:.4f}")
            path = Path(tmp) / f"{held}.safetensors"
            save_weights(model, config, path)
            notes = [safe_harbor_gold(n) for n in evaluation_notes(EvalSet(held), 600)]
            results[held] = {
                SYSTEMS[0]: score(rules, notes),
                SYSTEMS[1]: score(spacy, notes),
                SYSTEMS[2]: score(PiiDetector(ner="off", tagger=True, tagger_weights=path), notes),
                SYSTEMS[3]: score(PiiDetector(ner="auto", tagger=True, tagger_weights=path), notes),
                SYSTEMS[4]: score(
                    PiiDetector(ner="auto", tagger=True, tagger_weights=path, tagger_threshold=0.5),
                    notes,
                ),
            }
    report(results, args)


def report(results: dict[str, dict[str, tuple[DetectionScores, float]]], args: object) -> None:
    print(f"\n### Leave-one-set-out ({args})\n")
    print("| held-out set | system | precision | recall | F2 | PII-free flagged | notes/s |")
    print("|---|---|---|---|---|---|---|")
    for held, rows in results.items():
        for system, (s, rate) in rows.items():
            print(
                f"| {held} | {system} | {s.precision:.3f} | {s.recall:.3f} | {s.f2:.3f} "
                f"| {s.clean_notes_flagged}/{s.clean_notes} | {rate:.0f} |"
            )
    print("\n### Mean over the held-out sets\n")
    print("| system | precision | recall | F2 | PII-free flagged | labels under 0.80 (of sets) |")
    print("|---|---|---|---|---|---|")
    for system in SYSTEMS:
        scores = [rows[system][0] for rows in results.values()]
        n = len(scores)
        under = sum(sum(1 for v in s.per_label_recall.values() if v < 0.8) for s in scores)
        flagged = sum(s.clean_notes_flagged for s in scores)
        clean = sum(s.clean_notes for s in scores)
        print(
            f"| {system} | {sum(s.precision for s in scores) / n:.3f} "
            f"| {sum(s.recall for s in scores) / n:.3f} | {sum(s.f2 for s in scores) / n:.3f} "
            f"| {flagged}/{clean} | {under} |"
        )
    print("\n### Per-label recall on each held-out set: (a) / (b) / (c) / (c')\n")
    held_sets = list(results)
    print("| label | " + " | ".join(held_sets) + " |")
    print("|---|" + "---|" * len(held_sets))
    for label in PiiLabel:
        cells = []
        for held in held_sets:
            values = [results[held][s][0].per_label_recall.get(label) for s in SYSTEMS[1:]]
            cells.append("-" if values[0] is None else " / ".join(f"{v or 0:.2f}" for v in values))
        if any(c != "-" for c in cells):
            print(f"| {label.value} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
