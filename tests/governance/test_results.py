"""The typed results model and its published JSON Schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.governance.test_comply import GOOD
from tutela.errors import DataError
from tutela.governance.results import (
    SCHEMA_FILE,
    RunResults,
    committed_schema,
    load_results,
    parse_results,
    schema_text,
    write_schema,
)

REGENERATE = 'python -c "from tutela.governance.results import write_schema; write_schema()"'


def test_committed_schema_is_the_models_schema() -> None:
    """Drift between the model and the published schema fails here: regenerate the file."""
    assert committed_schema() == RunResults.model_json_schema(), f"run {REGENERATE}"
    path = Path(__file__).parents[2] / "src" / "tutela" / "governance" / SCHEMA_FILE
    assert path.read_text(encoding="utf-8") == schema_text(), f"run {REGENERATE}"


def test_write_schema_regenerates_the_file(tmp_path: Path) -> None:
    target = write_schema(tmp_path / "schema.json")
    assert json.loads(target.read_text(encoding="utf-8")) == RunResults.model_json_schema()


def test_schema_is_strict_where_the_model_is() -> None:
    schema = RunResults.model_json_schema()
    assert schema["additionalProperties"] is False
    defs = schema["$defs"]
    for stable in ("GovernanceReport", "SampleLevelPrivacy", "SecAggPlusReport", "RoundEntry"):
        assert defs[stable]["additionalProperties"] is False, stable
    assert defs["ResolvedConfig"]["additionalProperties"] is True
    assert defs["RoundOutcome"]["enum"] == ["aggregated", "quorum-not-met"]
    assert set(schema["properties"]) == set(RunResults.model_fields)


def test_a_valid_document_validates_against_the_published_schema() -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    validator = jsonschema_rs.validator_for(committed_schema())
    validator.validate(GOOD)
    bad = copy.deepcopy(GOOD)
    bad["secure_aggregation"]["dropped_total_per_stage"] = {}
    assert not validator.is_valid(bad)


def test_round_trip_is_exact() -> None:
    results = parse_results(json.dumps(GOOD))
    again = parse_results(results.model_dump_json())
    assert again == results
    assert results.model_dump(mode="json")["privacy"]["per_site"]["a"]["epsilon"] == 1.9


def test_undefined_metrics_are_null() -> None:
    doc = copy.deepcopy(GOOD)
    doc["federated"]["auc"] = float("nan")
    results = RunResults.model_validate(doc, strict=False)
    assert results.federated.auc is None
    assert json.loads(results.model_dump_json())["federated"]["auc"] is None


def test_load_results_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no results\.json in"):
        load_results(tmp_path / "results.json")
    path = tmp_path / "results.json"
    doc = copy.deepcopy(GOOD)
    del doc["governance"]["policy"]
    doc["extra"] = 1
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError) as info:
        load_results(path)
    assert str(info.value) == (
        f"{path} is not a valid results document: governance.policy: Field required (and 1 more)"
    )
