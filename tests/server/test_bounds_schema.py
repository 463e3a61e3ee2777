"""Every input the coordinator takes is bounded in its published schema.

Walks the OpenAPI schema (every operation's path, query and header parameters and request
bodies, following references) and the study config's JSON Schema: every integer must have
a minimum and a maximum, every string a maximum length, every list a maximum number of
items and every open mapping a maximum number of entries. A new unbounded field fails here.
Numbers inside lists and mappings (moment vectors, metric values) are checked finite by the
routes instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tutela.fl.config import StudyConfig
from tutela.server.app import create_app
from tutela.server.coordinator import Coordinator
from tutela.server.sealing import open_sealer
from tutela.server.store import Store, sqlite_url

Schema = dict[str, Any]


def _resolve(root: Schema, node: Schema) -> Schema:
    while "$ref" in node:
        path = node["$ref"].removeprefix("#/").split("/")
        target: Any = root
        for part in path:
            target = target[part]
        node = target
    return node


def _problems(root: Schema, node: Schema, where: str, seen: set[str]) -> Iterator[str]:
    """Every unbounded integer, scalar number, string, list or open mapping under ``node``."""
    ref = node.get("$ref")
    if ref is not None:
        if ref in seen:
            return
        seen = {*seen, ref}
    node = _resolve(root, node)
    for key in ("anyOf", "oneOf", "allOf"):
        for i, option in enumerate(node.get(key, [])):
            yield from _problems(root, option, f"{where}|{i}", seen)
    kind = node.get("type")
    has_min = "minimum" in node or "exclusiveMinimum" in node
    has_max = "maximum" in node or "exclusiveMaximum" in node
    if kind == "integer" and not (has_min and has_max):
        yield f"{where}: integer without minimum and maximum"
    if kind == "number" and not where.endswith(("]", "{}")) and not (has_min and has_max):
        yield f"{where}: number without minimum and maximum"
    bounded_pattern = "{" in node.get("pattern", "")  # e.g. ^[0-9a-f]{64}$
    if kind == "string" and not ("maxLength" in node or "enum" in node or bounded_pattern):
        yield f"{where}: string without maxLength"
    if kind == "array":
        if "maxItems" not in node and "prefixItems" not in node:
            yield f"{where}: list without maxItems"
        if "items" in node:
            yield from _problems(root, node["items"], f"{where}[]", seen)
        for i, item in enumerate(node.get("prefixItems", [])):
            yield from _problems(root, item, f"{where}[{i}]", seen)
    if kind == "object" or "properties" in node:
        for name, prop in node.get("properties", {}).items():
            yield from _problems(root, prop, f"{where}.{name}", seen)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            if "maxProperties" not in node:
                yield f"{where}: mapping without maxProperties"
            if extra:
                yield from _problems(root, extra, f"{where}{{}}", seen)


def _inputs(openapi: Schema) -> Iterator[tuple[str, Schema]]:
    for path, methods in openapi["paths"].items():
        for method, op in methods.items():
            for p in op.get("parameters", []):
                yield f"{method.upper()} {path} {p['in']}:{p['name']}", p["schema"]
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                yield f"{method.upper()} {path} body({media})", content.get("schema", {})


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> Schema:
    root: Path = tmp_path_factory.mktemp("bounds")
    co = Coordinator(Store(sqlite_url(root / "c.db"), open_sealer(root / "keyring")))
    schema: Schema = create_app(co).openapi()
    return schema


def test_every_input_of_every_operation_is_bounded(openapi: Schema) -> None:
    problems = [p for where, s in _inputs(openapi) for p in _problems(openapi, s, where, set())]
    assert not problems, "\n".join(problems)


def test_every_field_of_the_study_config_is_bounded() -> None:
    schema = StudyConfig.model_json_schema()
    problems = list(_problems(schema, schema, "study", set()))
    assert not problems, "\n".join(problems)


def test_the_walker_finds_an_unbounded_field() -> None:
    """The check itself can fail: one unbounded field of each kind is reported."""
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 0},
            "x": {"type": "number"},
            "s": {"type": "string"},
            "l": {"type": "array", "maxItems": 3, "items": {"$ref": "#/$defs/Item"}},
            "m": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
        "$defs": {"Item": {"type": "object", "properties": {"k": {"type": "integer"}}}},
    }
    found = list(_problems(schema, schema, "t", set()))
    assert found == [
        "t.n: integer without minimum and maximum",
        "t.x: number without minimum and maximum",
        "t.s: string without maxLength",
        "t.l[].k: integer without minimum and maximum",
        "t.m: mapping without maxProperties",
        "t.m{}: integer without minimum and maximum",
    ]
