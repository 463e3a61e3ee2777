"""Helpers shared by the pattern recognisers: matches to spans, context words."""

from __future__ import annotations

import re
from collections.abc import Callable

from tutela.anonymize.spans import PiiLabel, Span


def spans_of(
    pattern: re.Pattern[str],
    text: str,
    label: PiiLabel,
    score: float,
    source: str,
    group: int | str = 0,
    validate: Callable[[re.Match[str]], bool] | None = None,
) -> list[Span]:
    out: list[Span] = []
    for m in pattern.finditer(text):
        if validate is not None and not validate(m):
            continue
        start, end = m.span(group)
        if end > start:
            out.append(Span(start, end, label, score, source))
    return out


CONTEXT_WINDOW = 40


def has_context(text: str, start: int, words: re.Pattern[str]) -> bool:
    return words.search(text, max(0, start - CONTEXT_WINDOW), start) is not None


def contextual(keywords: str, value: str, flags: int = 0) -> re.Pattern[str]:
    """``keywords`` then separators (``:``, ``#``, ``no.``, ``number``, ``is``...) then the
    value, captured as group ``v``, all on one line."""
    return re.compile(
        rf"(?:{keywords})(?:[ \t]*(?:[:#=]|\bno\.|\bno\b|\bnumber\b|\bis\b|\bwas\b|\bof\b))*[ \t]*"
        rf"(?P<v>{value})",
        flags,
    )
