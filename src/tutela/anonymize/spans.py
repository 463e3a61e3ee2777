"""Labelled character spans and the rules that merge overlapping detections."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class PiiLabel(StrEnum):
    """Kinds of personal identifiers the text detector reports.

    The set follows the 18 HIPAA Safe Harbor identifiers that can occur in free text
    (names, geography below state level, dates, ages over 89, contact details, record and
    account numbers, licences, vehicle and device identifiers, URLs, IPs) plus financial
    identifiers. ``PROFESSION`` and ``BIOMETRIC`` follow the i2b2 2014 de-identification
    categories (a job, a fingerprint or voiceprint reference).
    """

    PERSON = "PERSON"
    LOCATION = "LOCATION"
    ORGANIZATION = "ORGANIZATION"
    ADDRESS = "ADDRESS"
    ZIP = "ZIP"
    DATE = "DATE"
    AGE = "AGE"
    PHONE = "PHONE"
    EMAIL = "EMAIL"
    URL = "URL"
    IP_ADDRESS = "IP_ADDRESS"
    SSN = "SSN"
    MRN = "MRN"
    HEALTH_PLAN = "HEALTH_PLAN"
    ACCOUNT = "ACCOUNT"
    LICENSE = "LICENSE"
    VEHICLE = "VEHICLE"
    DEVICE = "DEVICE"
    CREDIT_CARD = "CREDIT_CARD"
    IBAN = "IBAN"
    PROFESSION = "PROFESSION"
    BIOMETRIC = "BIOMETRIC"


@dataclass(frozen=True, order=True)
class Span:
    """A detected identifier: ``text[start:end]`` carries ``label``.

    Attributes:
        start: first character offset (inclusive).
        end: last character offset (exclusive).
        label: what kind of identifier it is.
        score: confidence in [0, 1].
        source: which recogniser produced it (for error analysis).
    """

    start: int
    end: int
    label: PiiLabel
    score: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        if self.start < 0 or self.end <= self.start:
            raise ValueError(f"invalid span [{self.start}, {self.end})")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"span score must be in [0, 1], got {self.score}")

    def __len__(self) -> int:
        return self.end - self.start

    def overlaps(self, other: Span) -> bool:
        """Whether the two spans share at least one character."""
        return self.start < other.end and other.start < self.end

    def shifted(self, offset: int) -> Span:
        """The same span moved by ``offset`` characters."""
        return Span(self.start + offset, self.end + offset, self.label, self.score, self.source)

    def to_json(self) -> dict[str, object]:
        """The span as the CLI prints it (character offsets)."""
        return {
            "start": self.start,
            "end": self.end,
            "label": self.label.value,
            "score": round(self.score, 4),
        }


def _priority(span: Span) -> tuple[float, int, int]:
    # Higher score first, then the longer span, then the earlier one.
    return (-span.score, -(span.end - span.start), span.start)


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Merge and de-overlap detections into sorted, disjoint spans.

    Rules, applied in this order:

    1. Spans with the same label that overlap or touch are fused into one span with the
       higher score (one identifier found twice, or in two pieces).
    2. Among spans with different labels that overlap, the higher score wins, then the
       longer span; the loser is dropped entirely (a partial span would leak the rest).

    Args:
        spans: detections in any order.

    Returns:
        Disjoint spans sorted by start offset.
    """
    by_label: dict[PiiLabel, list[Span]] = {}
    for span in spans:
        by_label.setdefault(span.label, []).append(span)
    fused: list[Span] = []
    for label, group in by_label.items():
        group.sort(key=lambda s: (s.start, s.end))
        current = group[0]
        for nxt in group[1:]:
            if nxt.start <= current.end:
                current = Span(
                    current.start,
                    max(current.end, nxt.end),
                    label,
                    max(current.score, nxt.score),
                    current.source if current.score >= nxt.score else nxt.source,
                )
            else:
                fused.append(current)
                current = nxt
        fused.append(current)
    # Greedy by priority; kept spans are disjoint, so sorted starts and ends let each
    # overlap test be two bisections instead of a scan.
    starts: list[int] = []
    ends: list[int] = []
    kept: list[Span] = []
    for span in sorted(fused, key=_priority):
        i = bisect.bisect_right(starts, span.start)
        if i > 0 and ends[i - 1] > span.start:
            continue
        if i < len(starts) and starts[i] < span.end:
            continue
        starts.insert(i, span.start)
        ends.insert(i, span.end)
        kept.insert(i, span)
    return kept
