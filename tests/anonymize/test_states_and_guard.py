"""US states as a policy choice, the clinical guard on department names, eponyms and drug
doses, one-line addresses, biometric contexts, and NER through numpy's BLAS."""

from __future__ import annotations

import pytest

from tutela.anonymize import PiiDetector, PiiLabel
from tutela.anonymize.eval import EvalSet, evaluation_notes
from tutela.anonymize.places import is_us_state

ADDRESS = "Home: 12 Oak St, Roanoke, VA 24011. She grew up in Ohio before moving to Peru."


def _found(detector: PiiDetector, text: str) -> list[tuple[str, PiiLabel]]:
    return [(text[s.start : s.end], s.label) for s in detector.detect(text)]


@pytest.mark.parametrize("ner", ["off", "auto"])
def test_states_stay_by_default_whoever_finds_them(ner):
    found = _found(PiiDetector(ner=ner), ADDRESS)  # type: ignore[arg-type]
    assert ("Roanoke", PiiLabel.LOCATION) in found
    assert ("24011", PiiLabel.ZIP) in found
    assert ("Peru", PiiLabel.LOCATION) in found
    # Safe Harbor keeps states: neither the rules nor the NER model report one.
    assert not [v for v, _ in found if is_us_state(v)]


@pytest.mark.parametrize("ner", ["off", "auto"])
def test_redact_states_reports_them_as_locations(ner):
    found = _found(PiiDetector(ner=ner, redact_states=True), ADDRESS)  # type: ignore[arg-type]
    assert ("VA", PiiLabel.LOCATION) in found
    assert ("Ohio", PiiLabel.LOCATION) in found
    assert ("Roanoke", PiiLabel.LOCATION) in found
    # an abbreviation that is also a word is a state only next to a city or a ZIP
    assert _found(PiiDetector(ner="off", redact_states=True), "Pain in AM, OR at 0800.") == []


def test_state_names_and_abbreviations():
    assert is_us_state("New Hampshire") and is_us_state("MA") and is_us_state(" VT. ")
    assert not is_us_state("Boston") and not is_us_state("MAS") and not is_us_state("Ohioan")


@pytest.mark.parametrize(
    "line",
    [
        "Seen in Cardiology clinic; plan reviewed with Heart Failure team.",
        "Chvostek and Trousseau signs negative.",
        "Started Keppra 500 mg BID and Vimpat 100 mg BID.",
        "Cleared by Physical Therapy for discharge home.",
        "Alert and oriented x3. Speech fluent.",
        "Case discussed at Tumor Board.",
        "Hospice eligibility reviewed; Palliative Care following.",
        "Transferred to the Medical ICU.",
        "Medtronic Azure XT DR MRI SureScan device interrogated.",
    ],
)
def test_guard_drops_services_eponyms_and_drugs(ner_detector, line):
    assert _found(ner_detector, line) == []


def test_guard_keeps_names_next_to_clinical_words(ner_detector):
    text = "Seen by Dr. Halvorsen in Cardiology clinic. Wife Marisol Quintero gave 5 mg at 0800."
    found = [v for v, _ in _found(ner_detector, text)]
    assert "Halvorsen" in found and "Marisol Quintero" in found
    # without the guard the model's department and drug spans are there to drop
    raw = PiiDetector(ner="auto", clinical_guard=False)
    assert [v for v, _ in _found(raw, "Started Vimpat 100 mg BID.")] != []


def test_address_stays_on_one_line(rules_detector):
    text = "Room 1\nPrescriber Dr. Okafor signed the order."
    assert [lab for _, lab in _found(rules_detector, text)] == [PiiLabel.PERSON]
    assert _found(rules_detector, "Lives at 14 Birch Dr. with family.") == [
        ("14 Birch Dr.", PiiLabel.ADDRESS)
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (
            "Fingerprint badge scan for the narcotics cabinet, template ID FPT-12345-A.",
            "FPT-12345-A",
        ),
        ("Palm-vein enrollment PV1234567 completed.", "PV1234567"),
        ("Voice biometric reference 1234-AB-567 used.", "1234-AB-567"),
        ("Hand geometry record 55213-B on file.", "55213-B"),
    ],
)
def test_biometric_values_after_their_context(rules_detector, text, value):
    assert (value, PiiLabel.BIOMETRIC) in _found(rules_detector, text)


def test_biometric_context_does_not_reach_across_clauses(rules_detector):
    text = "Fingerprint scanner broken; lot 44512 restocked."
    assert _found(rules_detector, text) == []


def test_ner_runs_on_numpy_blas_with_the_same_entities(ner_detector):
    import spacy
    from thinc.api import NumpyOps

    from tutela.anonymize.ner import _EXCLUDE, SpacyNer, _model_dir

    ner = ner_detector._ner
    ops = {type(n.ops) for n in ner._nlp.get_pipe("ner").model.walk()}
    assert ops == {NumpyOps}
    assert all(
        not n.ops.use_blis  # type: ignore[attr-defined]
        for n in ner._nlp.get_pipe("ner").model.walk()
    )
    model_dir = _model_dir(ner.model)
    assert model_dir is not None
    blis = SpacyNer(spacy.load(model_dir, exclude=_EXCLUDE), ner.model)
    texts = [n.text for n in evaluation_notes(EvalSet.DEVELOPMENT, 66, seed=5)]
    assert list(ner.detect_many(texts)) == list(blis.detect_many(texts))
