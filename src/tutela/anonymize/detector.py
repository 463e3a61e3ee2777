"""The PII detector: pattern recognisers, optional NER, clinical guard, overlap resolution."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from tutela.anonymize.clinical import guard_clinical
from tutela.anonymize.ner import DEFAULT_MODEL, NerStatus, SpacyNer, load_ner
from tutela.anonymize.places import is_us_state, recognize_states
from tutela.anonymize.recognizers import run_patterns
from tutela.anonymize.spans import PiiLabel, Span, resolve_overlaps
from tutela.anonymize.tagger import ALONE_THRESHOLD, TokenTagger, adopt_labels, load_tagger
from tutela.errors import ConfigError, DataError

NerMode = Literal["auto", "required", "off"]
"""``auto``: use spaCy NER if installed; ``required``: fail without it; ``off``: rules only."""

_NER_CHUNK = 100_000  # characters per NER call (spaCy's own limit is 1,000,000)
_TAGGER_CHUNK = 20_000  # characters per tagger call (bounds its padded batch)
STREAM_CHUNK = 1 << 20
"""Characters per block when scanning a file (blocks end at a line break)."""


def _line_chunks(text: str, size: int) -> Iterator[tuple[int, str]]:
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind("\n", start, end)
            if cut > start:
                end = cut + 1
        yield start, text[start:end]
        start = end


class PiiDetector:
    """Find identifiers in free text.

    Detection runs the pattern recognisers (validated by checksums or context words), then,
    when available, spaCy NER for people, places and organisations; the clinical guard then
    drops codes, doses, vitals and lab values mistaken for identifiers, and overlapping
    detections are merged (:func:`~tutela.anonymize.spans.resolve_overlaps`).

    Args:
        ner: ``"auto"`` (default) uses NER when spaCy and the pinned model are installed,
            ``"required"`` raises :class:`~tutela.errors.ConfigError` without them,
            ``"off"`` uses rules only.
        labels: report only these labels (default: all).
        threshold: minimum score of a reported span.
        clinical_guard: apply the clinical false-positive guard.
        model: spaCy model package to load.
        redact_states: also report US states (full names anywhere, postal abbreviations
            after a city or before a ZIP) as LOCATION, as i2b2 2014 labels them. Off by
            default: Safe Harbor lets states stay, and then no state is reported, whether
            a rule or the NER model found it.
        tagger: also run the learned token tagger (:mod:`tutela.anonymize.tagger`), which
            reads the pattern recognisers' hits and finds identifiers in phrasings no rule
            covers; its spans are merged with the others. Loads PyTorch and the weights
            (a few MB) when the detector is built.
        tagger_weights: a weights file for the tagger (default: the shipped one).
        tagger_threshold: minimum score of a tagger span that no rule or NER span
            overlaps (one that does needs only ``threshold``).

    Privacy: detection is best-effort; recall is measured per label on generated notes,
    including held-out sets written apart from the recognisers (``tutela.anonymize.eval``,
    ``benchmarks/pii.py``), and is below 1, so redacted text is pseudonymised, not
    anonymous, unless combined with review. US states are kept unless ``redact_states``.
    """

    def __init__(
        self,
        *,
        ner: NerMode = "auto",
        labels: Iterable[PiiLabel] | None = None,
        threshold: float = 0.5,
        clinical_guard: bool = True,
        model: str = DEFAULT_MODEL,
        redact_states: bool = False,
        tagger: bool = False,
        tagger_weights: str | Path | None = None,
        tagger_threshold: float = ALONE_THRESHOLD,
    ) -> None:
        if ner not in ("auto", "required", "off"):
            raise ValueError(f"ner must be 'auto', 'required' or 'off', got {ner!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if not 0.0 <= tagger_threshold <= 1.0:
            raise ValueError(f"tagger_threshold must be in [0, 1], got {tagger_threshold}")
        self.tagger_threshold = tagger_threshold
        self.labels: frozenset[PiiLabel] = frozenset(labels) if labels else frozenset(PiiLabel)
        self.threshold = threshold
        self.clinical_guard = clinical_guard
        self.redact_states = redact_states
        self._ner: SpacyNer | None = None
        self._tagger: TokenTagger | None = load_tagger(tagger_weights) if tagger else None
        if ner == "off":
            self.status = NerStatus(False, "NER off: names, places and organisations by rules only")
        else:
            self._ner, self.status = load_ner(model)
            if ner == "required" and self._ner is None:
                raise ConfigError(self.status.note)

    @property
    def ner_available(self) -> bool:
        """Whether spaCy NER is in use."""
        return self._ner is not None

    @property
    def tagger_enabled(self) -> bool:
        """Whether the learned token tagger is in use."""
        return self._tagger is not None

    def _tag(self, texts: list[str], rule_spans: list[list[Span]]) -> list[list[Span]]:
        if self._tagger is None:
            return [[] for _ in texts]
        if all(len(t) <= _TAGGER_CHUNK for t in texts):
            return self._tagger.detect_many(texts, rule_spans)
        out = []
        for text, rules in zip(texts, rule_spans, strict=True):
            found: list[Span] = []
            for offset, chunk in _line_chunks(text, _TAGGER_CHUNK):
                end = offset + len(chunk)
                local = [s.shifted(-offset) for s in rules if offset <= s.start and s.end <= end]
                found += [s.shifted(offset) for s in self._tagger.detect(chunk, local)]
            out.append(found)
        return out

    def _finish(self, text: str, candidates: list[Span]) -> list[Span]:
        if self.redact_states:
            candidates += recognize_states(text)
        else:
            candidates = [
                s
                for s in candidates
                if s.label is not PiiLabel.LOCATION or not is_us_state(text[s.start : s.end])
            ]
        if self.clinical_guard:
            candidates = guard_clinical(text, candidates)
        kept = [s for s in candidates if s.score >= self.threshold and s.label in self.labels]
        return resolve_overlaps(kept)

    def detect(self, text: str) -> list[Span]:
        """Disjoint identifier spans in ``text``, sorted by offset."""
        candidates = list(run_patterns(text))
        tagged = self._tag([text], [candidates])[0]
        if self._ner is not None:
            for offset, chunk in _line_chunks(text, _NER_CHUNK):
                candidates.extend(s.shifted(offset) for s in self._ner.detect(chunk))
        return self._finish(
            text, candidates + adopt_labels(text, tagged, candidates, self.tagger_threshold)
        )

    def detect_many(self, texts: Iterable[str], batch_size: int = 64) -> Iterator[list[Span]]:
        """:meth:`detect` over many short texts, batching the NER model.

        Texts longer than the NER chunk size go through :meth:`detect` one by one.
        """
        batch: list[str] = []

        def flush() -> Iterator[list[Span]]:
            ner_results: Iterable[list[Span]]
            if self._ner is not None:
                ner_results = self._ner.detect_many(batch, batch_size=batch_size)
            else:
                ner_results = ([] for _ in batch)
            rules = [list(run_patterns(text)) for text in batch]
            tagged = self._tag(batch, rules)
            for text, rule_spans, tag_spans, ner_spans in zip(
                batch, rules, tagged, ner_results, strict=True
            ):
                others = rule_spans + ner_spans
                yield self._finish(
                    text, others + adopt_labels(text, tag_spans, others, self.tagger_threshold)
                )

        for text in texts:
            if len(text) > _NER_CHUNK:
                yield from flush()
                batch = []
                yield self.detect(text)
                continue
            batch.append(text)
            if len(batch) >= batch_size:
                yield from flush()
                batch = []
        yield from flush()

    def scan_file(self, path: str | Path, chunk_chars: int = STREAM_CHUNK) -> Iterator[Span]:
        """Stream a UTF-8 text file in line-aligned blocks and yield spans with file offsets.

        Offsets count characters of the file's text exactly as stored (line endings are
        not translated). Memory stays bounded by ``chunk_chars`` whatever the file size.

        Raises:
            DataError: the path is missing, unreadable, or not UTF-8 text (one line).
        """
        for offset, block in read_text_blocks(path, chunk_chars):
            yield from (s.shifted(offset) for s in self.detect(block))


def read_text_blocks(
    path: str | Path, chunk_chars: int = STREAM_CHUNK
) -> Iterator[tuple[int, str]]:
    """``(character offset, block)`` pairs covering a UTF-8 text file.

    Blocks hold about ``chunk_chars`` characters and end at a line break, or at a space
    when a line is longer than a block, so memory stays bounded even for a file that is
    one enormous line.

    Raises:
        DataError: the path is missing, unreadable, binary or not UTF-8 (one line).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    if chunk_chars < 1:
        raise ValueError("chunk_chars must be positive")
    offset = 0
    carry = ""
    try:
        with p.open(encoding="utf-8", newline="") as handle:
            while True:
                data = handle.read(chunk_chars)
                if "\x00" in data:
                    raise DataError(f"{p}: binary file, not text")
                buffer = carry + data
                if not data:
                    break
                cut = buffer.rfind("\n") + 1
                if cut == 0:
                    cut = max(buffer.rfind(" "), buffer.rfind("\t")) + 1
                if cut == 0 or len(buffer) - cut > chunk_chars:
                    cut = len(buffer) if len(buffer) > chunk_chars else 0
                if cut == 0:
                    carry = buffer
                    continue
                yield offset, buffer[:cut]
                offset += cut
                carry = buffer[cut:]
    except UnicodeDecodeError:
        raise DataError(f"{p}: not UTF-8 text") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if carry:
        yield offset, carry
