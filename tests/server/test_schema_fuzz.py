"""Fuzzing every operation in the OpenAPI schema: never a 5xx, never the input echoed.

Runs in process (ASGI). People's endpoints are called with an admin token; the sites'
endpoints are called past authentication too, as an enrolled site: the app is wrapped so
every request carries that site's client certificate where the TLS server puts it
(``scope["extensions"]["tls"]``, read by :func:`tutela.server.tls.peer_certificate_pem`),
which is how the coordinator derives a site principal.

Three sources of requests, on every operation:

- Hypothesis examples from the schema (a few per operation);
- schemathesis' coverage cases: each declared bound, one past it, wrong types, missing
  fields;
- boundary values beyond any declared bound: integers 2**63, 2**70, -2**70 and -1, and
  100,000-character strings, in every integer and string parameter and top-level body field
  (with the study's real id where the path names one, so the site routes reach the
  coordinator). Error bodies must not contain them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.config import GenerationConfig

from tests.server.conftest import model_params, small_config
from tutela.fl.records import parameters_to_bytes
from tutela.governance.rbac import Role
from tutela.server import pki
from tutela.server.app import create_app
from tutela.server.authz import Principal
from tutela.server.coordinator import Coordinator, DeploymentSettings
from tutela.server.sealing import open_sealer
from tutela.server.store import Store, sqlite_url

SITE = "hospital-1"
_root = Path(tempfile.mkdtemp(prefix="tutela-fuzz-"))
_coordinator = Coordinator(Store(sqlite_url(_root / "fuzz.db"), open_sealer(_root / "keyring")))
_token = _coordinator.create_token(Role.ADMIN, "fuzzer")
_admin = Principal("fuzzer", Role.ADMIN)
pki.init_ca(_root / "pki")
pki.issue_to_files(_root / "pki", kind="site", name=SITE)
_site_pem = pki.PkiLayout(_root / "pki").site(SITE).cert.read_text()
_coordinator.activate_site(_admin, SITE)
_study = _coordinator.create_study(
    _admin, small_config(), DeploymentSettings(join_timeout_s=3600, sites=(SITE,))
)
_coordinator.set_initial_model(_admin, _study, parameters_to_bytes(model_params()))
_coordinator.start(_admin, _study)
_inner = create_app(_coordinator)


async def app(scope: Any, receive: Any, send: Any) -> None:
    """The coordinator's app, every request presenting the enrolled site's certificate."""
    if scope["type"] == "http":
        extensions = {**(scope.get("extensions") or {}), "tls": {"client_cert_chain": [_site_pem]}}
        scope = {**scope, "extensions": extensions}
    await _inner(scope, receive, send)


app.state = _inner.state  # type: ignore[attr-defined]
schema = schemathesis.openapi.from_asgi("/openapi.json", app)

HUGE_INTS = (2**63, 2**70, -(2**70), -1)
LONG = "L0ngInput" + "x" * 100_000
MARKERS = (LONG[:200], *(str(v) for v in HUGE_INTS if abs(v) > 2**32))


def _headers(path: str) -> dict[str, str]:
    """An admin token for people's routes; none for sites' (the certificate speaks)."""
    return {"Authorization": f"Bearer {_token}"} if path.startswith("/v1/admin") else {}


def _check(case: schemathesis.Case, markers: tuple[str, ...] = ()) -> None:
    headers = {**_headers(case.path), **(case.headers or {})}
    response = case.call(headers=headers)
    where = (case.method, case.path, case.path_parameters, response.status_code)
    assert response.status_code < 500, (*where, response.text[:300])
    if response.status_code >= 400 and "json" in str(response.headers.get("content-type")):
        assert "detail" in response.json(), (*where, response.text[:300])
    for marker in markers:
        assert marker not in response.text, (*where, "the input was echoed")


@schema.parametrize()
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: schemathesis.Case) -> None:
    _check(case)


def _operations() -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _ids(op: Any) -> str:
    return f"{op.method.upper()} {op.path}"


def _coverage(op: Any, modes: list[GenerationMode]) -> Iterator[schemathesis.Case]:
    return schema.iter_coverage_cases(
        op, generation_modes=modes, generation_config=GenerationConfig()
    )


@pytest.mark.parametrize("op", _operations(), ids=_ids)
def test_declared_bounds_and_one_past_them(op: Any) -> None:
    for i, case in enumerate(_coverage(op, list(GenerationMode))):
        if i >= 60:
            break
        _check(case)


def _base(op: Any) -> schemathesis.Case:
    """A valid request for ``op`` (schemathesis' first positive coverage case), aimed at the
    real study where the path names one."""
    case = next(iter(_coverage(op, [GenerationMode.POSITIVE])))
    if "study_id" in (case.path_parameters or {}):
        case.path_parameters = {**case.path_parameters, "study_id": _study}
    return case


def _variants(op: Any) -> Iterator[tuple[str, schemathesis.Case]]:
    """``op``'s valid request with one integer or string replaced by a boundary value."""
    for param in op.iter_parameters():
        kind = param.definition.get("schema", {}).get("type")
        location = {"path": "path_parameters", "query": "query"}.get(param.location)
        if location is None or kind not in ("integer", "string"):
            continue
        values: tuple[Any, ...] = HUGE_INTS if kind == "integer" else (LONG,)
        for value in values:
            case = _base(op)
            setattr(case, location, {**(getattr(case, location) or {}), param.name: value})
            yield f"{param.location}:{param.name}={str(value)[:12]}", case
    body = _base(op).body
    if isinstance(body, dict):
        for field, current in body.items():
            if isinstance(current, bool):
                continue
            if isinstance(current, int):
                values = HUGE_INTS
            elif isinstance(current, str):
                values = (LONG,)
            elif isinstance(current, float):
                values = (1e308, -1e308, *HUGE_INTS)
            else:
                continue
            for value in values:
                case = _base(op)
                case.body = {**case.body, field: value}
                yield f"body.{field}={str(value)[:12]}", case


@pytest.mark.parametrize("op", _operations(), ids=_ids)
def test_boundary_integers_and_long_strings_are_refused_cleanly(op: Any) -> None:
    for _, case in _variants(op):
        _check(case, MARKERS)


def test_the_site_routes_are_reached_past_authentication() -> None:
    """The fuzzed site requests do reach the coordinator as the enrolled site."""
    study = _coordinator.create_study(
        _admin, small_config(), DeploymentSettings(join_timeout_s=3600, sites=(SITE,))
    )
    _coordinator.set_initial_model(_admin, study, parameters_to_bytes(model_params()))
    _coordinator.start(_admin, study)
    response = schema["/v1/site/tasks"]["GET"].Case().call()
    assert response.status_code == 200, response.text
    assert study in {t["study_id"] for t in response.json()["tasks"]}
    join = schema["/v1/site/studies/{study_id}/participation"]["POST"].Case(
        path_parameters={"study_id": study}, body={"accept": True, "num_examples": 2**70}
    )
    refused = join.call()
    assert refused.status_code == 422 and str(2**70) not in refused.text
    moments = {"count": 50, "total": [1.0] * 7, "total_sq": [9.0] * 7}
    join.body = {"accept": True, "num_examples": 50, "moments": moments}
    accepted = join.call()
    assert accepted.status_code == 200 and accepted.json()["site"] == SITE


STUDY_FIELDS = [
    ("study", "seed"),
    ("study", "name"),
    ("data", "sites"),
    ("data", "rows"),
    ("training", "rounds"),
    ("training", "batch_size"),
    ("training", "max_update_norm"),
    ("privacy", "epsilon"),
    ("secure_aggregation", "neighbors"),
]


@pytest.mark.parametrize(("section", "field"), STUDY_FIELDS)
def test_boundary_values_in_a_study_config_are_refused_cleanly(section: str, field: str) -> None:
    create = schema["/v1/admin/studies"]["POST"]
    for value in (*HUGE_INTS, LONG, 1e308):
        case = create.Case(body={"config": {section: {field: value}}})
        _check(case, MARKERS)
