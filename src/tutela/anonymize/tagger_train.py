"""Training the token tagger (:mod:`tutela.anonymize.tagger`) on labelled notes.

The training notes are the evaluation sets of :mod:`tutela.anonymize.eval` (each drawn
with a few seeds: more notes from the same writer) and the project's corpus generator
(:func:`~tutela.anonymize.corpus.generate_corpus`, both phrasing sets). Training is
deterministic: seeded, one thread, a fixed order of batches.

Reproduce the shipped weights::

    OMP_NUM_THREADS=1 python -m tutela.anonymize.tagger_train \\
        --out src/tutela/anonymize/tagger_weights.safetensors
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tutela.anonymize.corpus import generate_corpus
from tutela.anonymize.recognizers import run_patterns
from tutela.anonymize.scoring import LabelledNote, age_value
from tutela.anonymize.spans import PiiLabel
from tutela.anonymize.tagger import (
    Encoded,
    TaggerConfig,
    batch_inputs,
    build_model,
    encode,
    save_weights,
    token_targets,
)

if TYPE_CHECKING:
    import torch

SEEDS = (None, 101, 202)
"""Seeds each evaluation set is drawn with (``None``: the set's own seed)."""

EPOCHS = 4
NOTES_PER_SEED = 600
CORPUS_NOTES = 600
"""Notes from each of the corpus generator's two phrasing sets."""


@dataclass(frozen=True)
class Example:
    """An encoded note and the class of each of its tokens."""

    note: Encoded
    targets: tuple[int, ...]


def safe_harbor_gold(note: LabelledNote) -> LabelledNote:
    """The note with gold ages under 90 removed: the detector reports ages of 90 and over
    (Safe Harbor), and some sets label every age."""
    kept = tuple(
        span
        for span in note.spans
        if span.label is not PiiLabel.AGE
        or (age_value(note.text[span.start : span.end]) or 90) >= 90
    )
    return LabelledNote(note.text, kept)


def set_notes(which: str, seeds: Sequence[int | None] = SEEDS) -> list[LabelledNote]:
    """Notes of one evaluation set, drawn with each of ``seeds``."""
    from tutela.anonymize.eval import EvalSet, evaluation_notes

    notes: list[LabelledNote] = []
    for seed in seeds:
        notes += evaluation_notes(EvalSet(which), NOTES_PER_SEED, seed=seed)
    return notes


def corpus_notes(n: int = CORPUS_NOTES, seed: int = 7) -> list[LabelledNote]:
    """Notes of the corpus generator, both phrasing sets."""
    return generate_corpus(n, seed=seed) + generate_corpus(n, seed=seed + 1, heldout=True)


def examples(notes: Sequence[LabelledNote], buckets: int) -> list[Example]:
    """Encode notes with their pattern-recogniser hits (as the detector will see them)."""
    out = []
    for raw in notes:
        note = safe_harbor_gold(raw)
        encoded = encode(note.text, run_patterns(note.text), buckets)
        out.append(Example(encoded, tuple(token_targets(encoded.tokens, note.spans))))
    return out


def train(
    data: Sequence[Example],
    config: TaggerConfig,
    *,
    epochs: int = EPOCHS,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    max_steps: int | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[torch.nn.Module, list[float]]:
    """Train a tagger; returns the model and the mean loss of each epoch (or of each step
    when ``max_steps`` is given)."""
    import torch

    if not data:
        raise ValueError("no training examples")
    torch.manual_seed(seed)
    rng = random.Random(seed)  # noqa: S311 - batch order, not a secret
    model = build_model(config)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    order = list(range(len(data)))
    total = epochs * ((len(data) + batch_size - 1) // batch_size)
    if max_steps is not None:
        total = min(total, max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: max(0.05, 1.0 - step / max(1, total))
    )
    losses: list[float] = []
    step = 0
    model.train()
    for epoch in range(epochs):
        rng.shuffle(order)
        running, count = 0.0, 0
        for i in range(0, len(order), batch_size):
            batch = [data[j] for j in order[i : i + batch_size]]
            inputs = batch_inputs([b.note for b in batch])
            targets = torch.zeros(inputs["mask"].shape, dtype=torch.long)
            for b, example in enumerate(batch):
                targets[b, : len(example.targets)] = torch.tensor(example.targets)
            logits = model(**inputs)
            mask = inputs["mask"].bool()
            loss = torch.nn.functional.cross_entropy(logits[mask], targets[mask])
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it untyped
            optimiser.step()
            scheduler.step()
            step += 1
            if max_steps is not None:
                losses.append(float(loss.detach()))
                if step >= max_steps:
                    return model.eval(), losses
            running += float(loss.detach())
            count += 1
        if max_steps is None:
            losses.append(running / max(1, count))
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}: loss {running / max(1, count):.4f}")
    return model.eval(), losses


def training_examples(
    sets: Sequence[str], config: TaggerConfig, seeds: Sequence[int | None] = SEEDS
) -> list[Example]:
    """Examples from the given evaluation sets and the corpus generator."""
    notes: list[LabelledNote] = corpus_notes()
    for which in sets:
        notes += set_notes(which, seeds)
    return examples(notes, config.buckets)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train on the evaluation sets and the corpus, write the weights."""
    from tutela.anonymize.eval import EvalSet

    parser = argparse.ArgumentParser(prog="python -m tutela.anonymize.tagger_train")
    parser.add_argument("--out", type=Path, required=True, help="weights file to write")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sets",
        nargs="+",
        default=[s.value for s in EvalSet if s.value in _SHIPPED_SETS],
        choices=sorted(_SHIPPED_SETS),
        help="evaluation sets to train on (default: all six)",
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    config = TaggerConfig()
    t0 = time.perf_counter()
    data = training_examples(args.sets, config)
    print(f"{len(data)} notes encoded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    model, _ = train(data, config, epochs=args.epochs, seed=args.seed, log=print)
    save_weights(model, config, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


_SHIPPED_SETS = frozenset({"development", "heldout", "fresh", "unseen", "sealed", "reserve"})
"""The sets the shipped weights are trained on (a set written later for a final score is
never among them)."""


if __name__ == "__main__":
    raise SystemExit(main())
