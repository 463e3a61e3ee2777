"""PII in text in one call: :func:`scan` finds it, :func:`redact` removes it.

::

    from tutela import redact, scan

    scan("Seen by Dr Alice Moreau, phone 617-555-0199")  # a PERSON span, a PHONE span
    redact("Seen by Dr Alice Moreau, phone 617-555-0199")  # "Seen by Dr [PERSON], phone [PHONE]"

Both use one shared :class:`~tutela.anonymize.PiiDetector` (rules plus spaCy NER when it
is installed) unless you pass your own; :func:`redact` takes any operator (``Redact``,
``Mask``, ``Pseudonymize(key)``, ``Encrypt(key)``, ...).
"""

from __future__ import annotations

from functools import lru_cache

from tutela.anonymize.detector import PiiDetector
from tutela.anonymize.operators import Operator, Redact, apply_operator
from tutela.anonymize.spans import Span

__all__ = ["redact", "scan"]


@lru_cache(maxsize=1)
def _default_detector() -> PiiDetector:
    return PiiDetector()


def scan(text: str, *, detector: PiiDetector | None = None) -> list[Span]:
    """The PII spans in ``text`` (disjoint, in order)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, not {type(text).__name__}")
    return (detector or _default_detector()).detect(text)


def redact(
    text: str, operator: Operator | None = None, *, detector: PiiDetector | None = None
) -> str:
    """``text`` with every PII span replaced by ``operator``'s output (default:
    ``[LABEL]``)."""
    spans = scan(text, detector=detector)
    return apply_operator(text, spans, operator if operator is not None else Redact())
