"""A learned token tagger for identifiers: hashed character features, a small CNN, one
label per token.

The pattern recognisers find what has a shape or a label word the recognisers know; the
tagger learns from labelled notes how identifiers look and where they sit (after which
words, on which lines), so it carries over to phrasings no rule was written for. Each
token (a run of word characters, one punctuation character, or a line break) is embedded
as the sum of hashed features (the lower-cased word, its shape, prefixes, suffixes and
character trigrams) together with the labels the pattern recognisers gave it; three
dilated convolutions read about 14 tokens either side, across line breaks, so a label
word at the end of one line reaches a value on the next. Each token gets a
:class:`~tutela.anonymize.spans.PiiLabel` or none, and runs of tokens with one label on
one line become :class:`~tutela.anonymize.spans.Span` objects.

The shipped weights (``tagger_weights.safetensors``, trained by
:mod:`tutela.anonymize.tagger_train`) are loaded lazily, from the package only, and checked
against the SHA-256 stored with them. PyTorch is imported only when a tagger is loaded.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tutela.anonymize.spans import PiiLabel, Span
from tutela.errors import ConfigError

if TYPE_CHECKING:
    import torch

WEIGHTS = Path(__file__).with_name("tagger_weights.safetensors")
"""The shipped weights, installed with the package."""

LABELS: tuple[PiiLabel, ...] = tuple(PiiLabel)
"""Output classes after class 0 ("no identifier"), in :class:`PiiLabel` order."""

FORMAT = "tutela-tagger-1"
_TOKEN = re.compile(r"\n|\w+|[^\w\s]")
_SOURCE = "tagger"
_NEWLINE = "\n"


@dataclass(frozen=True)
class TaggerConfig:
    """Sizes of a tagger model (stored with its weights).

    Attributes:
        buckets: rows of the hashed feature table.
        dim: width of a feature embedding.
        hidden: channels of the convolutions.
        kernel: convolution width.
        dilations: one convolution per dilation.
        dropout: dropout while training.
    """

    buckets: int = 1 << 15
    dim: int = 48
    hidden: int = 96
    kernel: int = 5
    dilations: tuple[int, ...] = (1, 2, 4)
    dropout: float = 0.2

    def to_json(self) -> str:
        """The configuration as a JSON string."""
        return json.dumps({**self.__dict__, "dilations": list(self.dilations)}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> TaggerConfig:
        """Parse :meth:`to_json`'s output."""
        data = json.loads(raw)
        return cls(**{**data, "dilations": tuple(data["dilations"])})


@dataclass(frozen=True)
class Token:
    """A token of a note: ``text[start:end]``; line breaks are tokens too."""

    start: int
    end: int
    text: str

    @property
    def is_newline(self) -> bool:
        """Whether this token is a line break."""
        return self.text == _NEWLINE


def tokenize(text: str) -> list[Token]:
    """Word runs, single punctuation characters and line breaks, with offsets."""
    return [Token(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]


def _shape(token: str) -> str:
    shape = re.sub(r"[A-Z]", "X", token)
    shape = re.sub(r"[a-z]", "x", shape)
    shape = re.sub(r"\d", "d", shape)
    return re.sub(r"(.)\1{3,}", r"\1\1\1+", shape)


@lru_cache(maxsize=1 << 16)
def _hashed(token: str, buckets: int) -> tuple[int, ...]:
    low = token.lower()
    feats = ["w" + low, "s" + _shape(token), "n" + re.sub(r"\d", "0", low), f"l{min(len(low), 12)}"]
    if token[:1].isupper():
        feats.append("T")
    if len(low) > 1:
        feats += ["p" + low[:2], "p" + low[:3], "x" + low[-2:], "x" + low[-3:]]
    padded = f"<{low}>"
    feats += ["g" + padded[i : i + 3] for i in range(min(len(padded) - 2, 16))]
    return tuple(zlib.crc32(f.encode()) % buckets for f in feats)


@dataclass(frozen=True)
class Encoded:
    """A note turned into model inputs.

    Attributes:
        tokens: the note's tokens.
        ids: hashed feature ids of every token, concatenated.
        offsets: where each token's ids start in ``ids``.
        rules: per token, the indices (into :data:`LABELS`) of pattern-recogniser labels
            that cover it.
    """

    tokens: tuple[Token, ...]
    ids: tuple[int, ...]
    offsets: tuple[int, ...]
    rules: tuple[tuple[int, ...], ...]


_LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}


def encode(text: str, rule_spans: Iterable[Span], buckets: int) -> Encoded:
    """Tokens, hashed features and rule labels of one note."""
    tokens = tokenize(text)
    ids: list[int] = []
    offsets: list[int] = []
    for token in tokens:
        offsets.append(len(ids))
        ids.extend(_hashed(token.text, buckets))
    rules = _covering(tokens, [s for s in rule_spans if s.score >= 0.5])
    return Encoded(tuple(tokens), tuple(ids), tuple(offsets), rules)


def _covering(tokens: Sequence[Token], spans: Sequence[Span]) -> tuple[tuple[int, ...], ...]:
    """Per token, the label indices of the spans that overlap it (line breaks get none)."""
    cover: list[set[int]] = [set() for _ in tokens]
    if spans:
        starts = [t.start for t in tokens]
        for span in spans:
            i = max(0, bisect.bisect_right(starts, span.start) - 1)
            while i < len(tokens) and tokens[i].start < span.end:
                if tokens[i].end > span.start and not tokens[i].is_newline:
                    cover[i].add(_LABEL_INDEX[span.label])
                i += 1
    return tuple(tuple(sorted(c)) for c in cover)


def token_targets(tokens: Sequence[Token], gold: Sequence[Span]) -> list[int]:
    """Class per token for training: 0 for none, else 1 + the index of the gold label of
    the span covering the token (line breaks are always 0)."""
    return [0 if not labels else 1 + labels[0] for labels in _covering(tokens, gold)]


def decode(tokens: Sequence[Token], labels: Sequence[int], scores: Sequence[float]) -> list[Span]:
    """Runs of tokens with one label on one line as spans; each span's score is the mean of
    its tokens' identifier probabilities."""
    spans: list[Span] = []
    run: list[int] = []

    def close() -> None:
        kept = _trimmed(tokens, run)
        if kept:
            first, last = tokens[kept[0]], tokens[kept[-1]]
            score = min(1.0, max(0.0, sum(scores[i] for i in kept) / len(kept)))
            spans.append(Span(first.start, last.end, LABELS[labels[kept[0]] - 1], score, _SOURCE))
        run.clear()

    for i, token in enumerate(tokens):
        if labels[i] == 0 or token.is_newline:
            close()
            continue
        if run and labels[run[-1]] != labels[i]:
            close()
        if run or token.text[0].isalnum():  # a span never opens on punctuation
            run.append(i)
    close()
    return spans


def _trimmed(tokens: Sequence[Token], run: list[int]) -> list[int]:
    """``run`` without the punctuation tokens at its end ("Smith," -> "Smith")."""
    while run and not tokens[run[-1]].text[0].isalnum():
        run = run[:-1]
    return run


ALONE_THRESHOLD = 0.8
"""Default minimum score of a tagger span that no other detection overlaps. Below it,
such spans were mostly wrong when the unseen set was held out of training (268 of 371 in
an early leave-one-set-out fold); spans that extend a rule or NER hit need only the
detector's threshold."""

_BARE_NUMBER = re.compile(r"\d{1,4}")
_GLUED = re.compile(r"\w[-&]$|^[-&]\w")


def _glued(text: str, span: Span) -> bool:
    """Whether ``span`` is one part of a hyphenated or ampersand compound ("two-storey",
    "U&Es") without the rest of it."""
    before = text[max(0, span.start - 2) : span.start]
    after = text[span.end : span.end + 2]
    return bool(_GLUED.search(before) or _GLUED.search(after))


def adopt_labels(
    text: str,
    tagged: Iterable[Span],
    others: Sequence[Span],
    alone_threshold: float = ALONE_THRESHOLD,
) -> list[Span]:
    """Merge tagger spans with the other detections' evidence.

    A tagger span that overlaps another detection takes its label (the highest-scoring
    one's), so that overlap resolution fuses the two into one span covering both rather
    than dropping one of them. A tagger span that overlaps none is kept only when its score
    is at least ``alone_threshold``, it is more than a bare number of up to four digits
    (times, years in a citation, codes and counts) and it is not one part of a hyphenated or
    ampersand compound ("two-storey", "U&Es"): in held-out folds most lone spans that were
    wrong were one of these.
    """
    ranked = sorted(others, key=lambda s: -s.score)
    out = []
    for span in tagged:
        match = next((o for o in ranked if o.start < span.end and span.start < o.end), None)
        if match is None:
            bare = _BARE_NUMBER.fullmatch(text, span.start, span.end) is not None
            if span.score >= alone_threshold and not bare and not _glued(text, span):
                out.append(span)
            continue
        same = match.label is span.label
        out.append(span if same else Span(span.start, span.end, match.label, span.score, _SOURCE))
    return out


def build_model(config: TaggerConfig) -> torch.nn.Module:
    """An untrained network of the given size."""
    import torch
    from torch import nn

    class TaggerNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.EmbeddingBag(config.buckets, config.dim, mode="sum")
            self.inp = nn.Linear(config.dim + len(LABELS), config.hidden)
            self.convs = nn.ModuleList(
                nn.Conv1d(
                    config.hidden,
                    config.hidden,
                    config.kernel,
                    padding=d * (config.kernel // 2),
                    dilation=d,
                )
                for d in config.dilations
            )
            self.out = nn.Linear(config.hidden, 1 + len(LABELS))
            self.drop = nn.Dropout(config.dropout)

        def forward(
            self,
            ids: torch.Tensor,
            offsets: torch.Tensor,
            rules: torch.Tensor,
            index: torch.Tensor,
            mask: torch.Tensor,
        ) -> torch.Tensor:
            """Logits ``(batch, length, classes)``; ``index`` places each flat token in
            the padded ``(batch * length)`` grid, ``mask`` is 1 on real tokens."""
            flat = torch.cat([self.drop(self.embed(ids, offsets)), rules], dim=1)
            batch, length = mask.shape
            grid = flat.new_zeros(batch * length, flat.shape[1])
            grid[index] = flat
            h = torch.relu(self.inp(grid)).view(batch, length, -1).transpose(1, 2)
            m = mask.unsqueeze(1)
            h = h * m
            for conv in self.convs:
                h = (h + torch.relu(conv(self.drop(h)))) * m
            logits: torch.Tensor = self.out(self.drop(h.transpose(1, 2)))
            return logits

    return TaggerNet()


def batch_inputs(notes: Sequence[Encoded]) -> dict[str, torch.Tensor]:
    """Model inputs for a batch of encoded notes (see ``TaggerNet.forward``)."""
    import torch

    length = max(1, *(len(n.tokens) for n in notes))
    ids: list[int] = []
    offsets: list[int] = []
    index: list[int] = []
    rule_rows: list[int] = []
    rule_cols: list[int] = []
    mask = torch.zeros(len(notes), length)
    row = 0
    for b, note in enumerate(notes):
        base = len(ids)
        ids.extend(note.ids)
        offsets.extend(base + o for o in note.offsets)
        index.extend(b * length + t for t in range(len(note.tokens)))
        for t, labels in enumerate(note.rules):
            rule_rows.extend([row + t] * len(labels))
            rule_cols.extend(labels)
        mask[b, : len(note.tokens)] = 1.0
        row += len(note.tokens)
    rules = torch.zeros(row, len(LABELS))
    if rule_rows:
        rules[rule_rows, rule_cols] = 1.0
    return {
        "ids": torch.tensor(ids, dtype=torch.long),
        "offsets": torch.tensor(offsets, dtype=torch.long),
        "rules": rules,
        "index": torch.tensor(index, dtype=torch.long),
        "mask": mask,
    }


def _payload_digest(tensors: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().view(-1).view(dtype=_u8()).numpy().tobytes())
    return digest.hexdigest()


def _u8() -> Any:
    import torch

    return torch.uint8


def save_weights(model: torch.nn.Module, config: TaggerConfig, path: str | Path) -> None:
    """Write ``model``'s weights (half precision), its configuration and a SHA-256 of the
    weights to a safetensors file."""
    import torch
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "config": config.to_json(),
        "labels": json.dumps([label.value for label in LABELS]),
        "sha256": _payload_digest(tensors),
    }
    save_file(tensors, str(path), metadata=metadata)


class TokenTagger:
    """A trained tagger: :meth:`detect` finds identifier spans in a note.

    Use :func:`load_tagger`.
    """

    def __init__(self, model: torch.nn.Module, config: TaggerConfig) -> None:
        self.model = model.eval()
        self.config = config

    def predict(self, notes: Sequence[Encoded]) -> list[tuple[list[int], list[float]]]:
        """Per note, the class and the identifier probability of each token."""
        import torch

        if not notes:
            return []
        with torch.inference_mode():
            logits = self.model(**batch_inputs(notes))
            probs = torch.softmax(logits, dim=-1)
            nonzero = 1.0 - probs[..., 0]
            best = probs[..., 1:].argmax(dim=-1) + 1
            labels = torch.where(nonzero >= 0.5, best, torch.zeros_like(best))
        out = []
        for b, note in enumerate(notes):
            n = len(note.tokens)
            out.append((labels[b, :n].tolist(), nonzero[b, :n].tolist()))
        return out

    def detect(self, text: str, rule_spans: Iterable[Span] = ()) -> list[Span]:
        """Identifier spans in ``text`` (overlaps unresolved), given the spans the pattern
        recognisers found in it (:func:`~tutela.anonymize.recognizers.run_patterns`)."""
        return self.detect_many([text], [list(rule_spans)])[0]

    def detect_many(
        self, texts: Sequence[str], rule_spans: Sequence[Iterable[Span]], batch_size: int = 16
    ) -> list[list[Span]]:
        """:meth:`detect` over several texts, batched."""
        encoded = [
            encode(t, r, self.config.buckets) for t, r in zip(texts, rule_spans, strict=True)
        ]
        out: list[list[Span]] = []
        for i in range(0, len(encoded), batch_size):
            chunk = encoded[i : i + batch_size]
            for note, (labels, scores) in zip(chunk, self.predict(chunk), strict=True):
                out.append(decode(note.tokens, labels, scores))
        return out


def load_tagger(path: str | Path | None = None) -> TokenTagger:
    """Load tagger weights (default: the shipped :data:`WEIGHTS`).

    Raises:
        ConfigError: the file is missing, unreadable, not a tagger weights file, or its
            weights do not match the SHA-256 stored with them (one line).
    """
    p = Path(path) if path is not None else WEIGHTS
    if not p.is_file():
        raise ConfigError(f"tagger weights not found: {p}")
    try:
        import torch
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(p), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(p))
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        raise ConfigError(f"tagger weights unreadable: {p} ({type(exc).__name__})") from None
    if metadata.get("format") != FORMAT:
        raise ConfigError(f"not a tagger weights file ({FORMAT}): {p}")
    if metadata.get("labels") != json.dumps([label.value for label in LABELS]):
        raise ConfigError(f"tagger weights were trained for other labels: {p}")
    if metadata.get("sha256") != _payload_digest(tensors):
        raise ConfigError(f"tagger weights are corrupt (SHA-256 mismatch): {p}")
    try:
        config = TaggerConfig.from_json(metadata["config"])
        model = build_model(config)
        model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"tagger weights do not fit the model: {p} ({exc})") from None
    return TokenTagger(model, config)
