"""Property-based fuzzing of every operation in the OpenAPI schema: never a 5xx.

Runs in process (ASGI) with an admin token, so admin endpoints are exercised past
authentication; site endpoints answer 401 without a client certificate, which is also
checked to be a clean 4xx. Bounded: a few examples per operation.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from tutela.governance.rbac import Role
from tutela.server.app import create_app
from tutela.server.coordinator import Coordinator
from tutela.server.sealing import open_sealer
from tutela.server.store import Store, sqlite_url

_root = Path(tempfile.mkdtemp(prefix="tutela-fuzz-"))
_coordinator = Coordinator(Store(sqlite_url(_root / "fuzz.db"), open_sealer(_root / "keyring")))
_token = _coordinator.create_token(Role.ADMIN, "fuzzer")
app = create_app(_coordinator)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {_token}"})
    assert response.status_code < 500, (
        case.method,
        case.path,
        response.status_code,
        response.text[:300],
    )
    if response.status_code >= 400:
        assert "detail" in response.json(), response.text[:300]
