"""Anonymisation: PII in text and tables, k-anonymity, l-diversity, t-closeness, Safe Harbor.

Text::

    detector = PiiDetector()                      # rules + spaCy NER when installed
    spans = detector.detect(note)
    clean = apply_operator(note, spans, Redact())  # or Pseudonymize(key), Encrypt(key), ...

Tables::

    result = anonymize_table(df, profile=Profile.HIPAA_SAFE_HARBOR, k=5, l=2)
    result.table, result.report.k_achieved

Every release is re-checked by :func:`check_privacy`, which recomputes k, l and t from the
released table alone.
"""

from tutela.anonymize.classify import (
    ColumnInfo,
    ColumnRole,
    IdentifierKind,
    classify_column,
    classify_columns,
)
from tutela.anonymize.corpus import (
    DetectionScores,
    LabelledNote,
    clinical_only_notes,
    generate_corpus,
    generate_patients,
    score_detections,
)
from tutela.anonymize.detector import NerMode, PiiDetector
from tutela.anonymize.hierarchy import Hierarchy
from tutela.anonymize.mondrian import LDiversity, MondrianResult, PrivacyModel, mondrian
from tutela.anonymize.ner import NerStatus
from tutela.anonymize.operators import (
    DateShift,
    Encrypt,
    Generalize,
    Mask,
    Operator,
    Pseudonymize,
    Redact,
    Suppress,
    apply_operator,
    date_shift_days,
    decrypt_value,
    encrypt_value,
    generalize_value,
    pseudonym,
    reveal_text,
    transform,
)
from tutela.anonymize.pipeline import (
    AnonymizationReport,
    AnonymizationResult,
    Profile,
    anonymize_table,
)
from tutela.anonymize.privacy import (
    PrivacyCheck,
    RiskReport,
    UtilityMetrics,
    check_privacy,
    reidentification_risk,
    utility_metrics,
)
from tutela.anonymize.safe_harbor import SafeHarborOutput, apply_safe_harbor
from tutela.anonymize.spans import PiiLabel, Span, resolve_overlaps

__all__ = [
    "AnonymizationReport",
    "AnonymizationResult",
    "ColumnInfo",
    "ColumnRole",
    "DateShift",
    "DetectionScores",
    "Encrypt",
    "Generalize",
    "Hierarchy",
    "IdentifierKind",
    "LDiversity",
    "LabelledNote",
    "Mask",
    "MondrianResult",
    "NerMode",
    "NerStatus",
    "Operator",
    "PiiDetector",
    "PiiLabel",
    "PrivacyCheck",
    "PrivacyModel",
    "Profile",
    "Pseudonymize",
    "Redact",
    "RiskReport",
    "SafeHarborOutput",
    "Span",
    "Suppress",
    "UtilityMetrics",
    "anonymize_table",
    "apply_operator",
    "apply_safe_harbor",
    "check_privacy",
    "classify_column",
    "classify_columns",
    "clinical_only_notes",
    "date_shift_days",
    "decrypt_value",
    "encrypt_value",
    "generalize_value",
    "generate_corpus",
    "generate_patients",
    "mondrian",
    "pseudonym",
    "reidentification_risk",
    "resolve_overlaps",
    "reveal_text",
    "score_detections",
    "transform",
    "utility_metrics",
]
