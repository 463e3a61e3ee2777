"""Evaluation sets for the PII detector, written independently of the recognisers.

Each set has its own templates for eleven kinds of clinical note, its own value lists and
identifier formats, and PII-free notes (every tenth) to measure false positives. The
held-out set (:mod:`.heldout`) is kept out of development; only final reports score it.
"""
