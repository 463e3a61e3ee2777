"""Shared fixtures: detectors are loaded once per worker (spaCy takes ~2 s to load)."""

from __future__ import annotations

import pytest

from tutela.anonymize import PiiDetector


@pytest.fixture(scope="session")
def rules_detector() -> PiiDetector:
    return PiiDetector(ner="off")


@pytest.fixture(scope="session")
def ner_detector() -> PiiDetector:
    detector = PiiDetector(ner="auto")
    if not detector.ner_available:
        pytest.skip(f"spaCy NER unavailable: {detector.status.note}")
    return detector
