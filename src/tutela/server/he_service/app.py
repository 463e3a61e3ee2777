"""The HE service's HTTP API: the coordinator's authentication, RBAC, audit and body limits.

Routes (every one declares its audience and permission, as the coordinator's do)::

    GET  /health                      anyone
    GET  /v1/he/model                 model:read    the model card (never the weights)
    POST /v1/he/keys                  query:run     upload a public bundle -> its fingerprint
    POST /v1/he/predict               query:run     an encrypted table -> encrypted logits
    POST /v1/he/tables                query:run     store an encrypted table -> its id
    POST /v1/he/tables/{id}/query     query:run     encrypted analytics over a stored table

Callers authenticate with a client certificate from the deployment's CA (mutual TLS); the
certificate's common name is the principal. Its role comes from the service's RBAC policy
(``[principals.NAME] roles = [...]``); a certified name the policy does not list gets
:attr:`HeAuthority.default_role` (``data-scientist``, which holds ``query:run`` and
``model:read``), or nothing when that is None. Authentication, the permission check and
the audit of every denial are :func:`tutela.server.api.authorize`, unchanged: this module
gives it an :class:`HeAuthority` in the place of the coordinator.

Security: the service holds public bundles and ciphertexts only (see
:mod:`~tutela.server.he_service.state`); every request that reaches a route is audited
(who, what, rows, which key) in a Merkle log whose checkpoints the service signs.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tutela.errors import (
    BudgetExceeded,
    ConfigError,
    CryptoError,
    DataError,
    IntegrityError,
    PermissionDenied,
    TutelaError,
)
from tutela.he import messages
from tutela.he.analytics import AnalyticsQuery, Operation, analyse
from tutela.he.card import ModelCard
from tutela.he.evaluation import MAX_BUNDLE_BYTES, parse_table, predict
from tutela.he.network import PolyNetwork
from tutela.server.api import AppState, Caller, UnauthenticatedError, declared, read_body
from tutela.server.authz import Audience, Permission, Principal, RbacPolicy, Role
from tutela.server.coordinator import Coordinator
from tutela.server.core import PayloadTooLargeError
from tutela.server.he_service.state import ServiceState
from tutela.server.limits import BodyLimit, register_errors
from tutela.server.serve import MerkleAuditHook

__all__ = ["HeAuthority", "HeService", "create_he_app"]

BINARY = "application/octet-stream"
DEFAULT_MAX_REQUEST_BYTES = 64 << 20


@dataclass
class _Clock:
    clock: Any = time.monotonic


@dataclass
class HeAuthority:
    """Who may call the HE service, and where its audit records go.

    It answers what :func:`tutela.server.api.authorize` asks of the coordinator: the
    principal of a bearer token (none: this service takes client certificates only), the
    principal of a verified client certificate, and the audit sink.
    """

    policy: RbacPolicy
    audit_hook: MerkleAuditHook
    default_role: Role | None = Role.DATA_SCIENTIST
    core: _Clock = field(default_factory=_Clock)

    def principal_for_token(self, _token: str) -> Principal | None:
        """Bearer tokens are not accepted here."""
        return None

    def recognised_site(self, _common_name: str, _fingerprint: str) -> Principal | None:
        """No certificate is recognised ahead of :meth:`principal_for_site` here."""
        return None

    def principal_for_site(self, common_name: str, _fingerprint: str) -> Principal | None:
        """The principal of a CA-verified client certificate (None: not allowed)."""
        declared_principal = self.policy.principals.get(common_name)
        if declared_principal is None:
            return Principal(common_name, self.default_role) if self.default_role else None
        for role in sorted(declared_principal.roles):
            if role in Role._value2member_map_:
                return Principal(common_name, Role(role))
        return None

    def audit(
        self, actor: str, action: str, resource: str, outcome: str, detail: dict[str, Any]
    ) -> None:
        """Append one record to the service's audit log."""
        self.audit_hook(actor, action, resource, outcome, detail)


@dataclass
class HeService:
    """The model, its card and the service's stored state."""

    network: PolyNetwork
    card: ModelCard
    state: ServiceState
    authority: HeAuthority
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES


class AnalyticsBody(BaseModel):
    """An analytics query over a stored table."""

    model_config = ConfigDict(extra="forbid")

    op: Operation
    column: str | None = Field(default=None, max_length=256)
    weights: dict[str, float] | None = None
    bias: float = 0.0


def _register_errors(app: FastAPI) -> None:
    register_errors(
        app,
        [
            (UnauthenticatedError, 401),
            (PermissionDenied, 403),
            (PayloadTooLargeError, 413),
            (BudgetExceeded, 429),
            (IntegrityError, 400),
            (CryptoError, 400),
            (DataError, 422),
            (ConfigError, 422),
        ],
    )


def _service(request: Request) -> HeService:
    service: HeService = request.app.state.he
    return service


async def _audit(
    request: Request, who: Principal, action: str, outcome: str, **detail: Any
) -> None:
    service = _service(request)
    await anyio.to_thread.run_sync(
        functools.partial(
            service.authority.audit, who.label, action, request.url.path, outcome, detail
        )
    )


def create_he_app(service: HeService, *, ca_pem: bytes | None = None) -> FastAPI:
    """Build the HE service's FastAPI app."""
    app = FastAPI(title="Tutela HE service", version="1", description=__doc__)
    # authorize() reads app.state.tutela; the authority stands in for the coordinator.
    app.state.tutela = AppState(
        cast(Coordinator, service.authority), ca_pem, service.authority.policy
    )
    app.state.he = service
    _register_errors(app)
    app.add_middleware(BodyLimit, json_limit=1 << 20, binary_limit=service.max_request_bytes)

    @app.get("/health", **declared(Audience.ANYONE, Permission.STUDY_READ))
    async def health(_p: Caller) -> dict[str, str]:
        """Liveness probe."""
        return {"status": "ok"}

    @app.get("/v1/he/model", **declared(Audience.PEOPLE, Permission.MODEL_READ))
    async def model_card(request: Request, _p: Caller) -> dict[str, Any]:
        """The model card: features, ranges, CKKS parameters, error bound."""
        return _service(request).card.to_json()

    @app.post(
        "/v1/he/keys",
        **declared(Audience.PEOPLE, Permission.QUERY_RUN, binary_body="public bundle"),
    )
    async def upload_key(request: Request, who: Caller) -> dict[str, Any]:
        """Store an owner's public bundle (refused if it holds a secret key)."""
        service = _service(request)
        body = await read_body(request, min(service.max_request_bytes, MAX_BUNDLE_BYTES))
        try:
            key = await anyio.to_thread.run_sync(service.state.add_key, body)
        except TutelaError as exc:
            await _audit(request, who, "he.key.refused", "denied", reason=str(exc))
            raise
        await _audit(request, who, "he.key.stored", "success", key=key.fingerprint.hex())
        return {"fingerprint": key.fingerprint.hex(), "bytes": len(body)}

    @app.post(
        "/v1/he/predict",
        **declared(
            Audience.PEOPLE,
            Permission.QUERY_RUN,
            binary_body="encrypted table",
            binary_response=True,
        ),
    )
    async def predict_route(request: Request, who: Caller) -> Response:
        """Score an encrypted table; the answer is encrypted logits under the owner's key."""
        service = _service(request)
        body = await read_body(request, service.max_request_bytes)

        def work() -> tuple[bytes, int, str]:
            env = messages.unpack(
                body, kind=messages.TABLE, max_bytes=service.max_request_bytes, max_blobs=1 << 24
            )
            key = service.state.key(env.fingerprint)
            table = parse_table(body, key)
            service.state.charge(key.fingerprint, table.rows)
            return (
                predict(service.network, service.card, key, table),
                table.rows,
                key.fingerprint.hex(),
            )

        try:
            result, rows, key_hex = await anyio.to_thread.run_sync(work)
        except TutelaError as exc:
            await _audit(request, who, "he.predict", "denied", reason=str(exc))
            raise
        await _audit(
            request, who, "he.predict", "success", rows=rows, key=key_hex, model=service.card.digest
        )
        return Response(result, media_type=BINARY)

    @app.post(
        "/v1/he/tables",
        **declared(Audience.PEOPLE, Permission.QUERY_RUN, binary_body="encrypted table"),
    )
    async def upload_table(request: Request, who: Caller) -> dict[str, Any]:
        """Store an encrypted table for analytics; returns its id."""
        service = _service(request)
        body = await read_body(request, service.max_request_bytes)

        def work() -> tuple[str, int, list[str], str]:
            env = messages.unpack(
                body, kind=messages.TABLE, max_bytes=service.max_request_bytes, max_blobs=1 << 24
            )
            key = service.state.key(env.fingerprint)
            table = parse_table(body, key)
            return (
                service.state.add_table(body),
                table.rows,
                list(table.columns),
                key.fingerprint.hex(),
            )

        try:
            table_id, rows, columns, key_hex = await anyio.to_thread.run_sync(work)
        except TutelaError as exc:
            await _audit(request, who, "he.table.refused", "denied", reason=str(exc))
            raise
        await _audit(
            request, who, "he.table.stored", "success", table=table_id, rows=rows, key=key_hex
        )
        return {"table": table_id, "rows": rows, "columns": columns}

    @app.post(
        "/v1/he/tables/{table_id}/query",
        **declared(Audience.PEOPLE, Permission.QUERY_RUN, binary_response=True),
    )
    async def query_table(
        request: Request, table_id: str, body: AnalyticsBody, who: Caller
    ) -> Response:
        """Encrypted analytics over a stored table (sum, mean, variance, histogram, linear)."""
        service = _service(request)

        def work() -> tuple[bytes, int]:
            payload = service.state.table(table_id)
            env = messages.unpack(
                payload, kind=messages.TABLE, max_bytes=len(payload) + 1, max_blobs=1 << 24
            )
            key = service.state.key(env.fingerprint)
            table = parse_table(payload, key)
            query = AnalyticsQuery(body.op, body.column, body.weights, body.bias)
            if query.op is Operation.LINEAR:
                service.state.charge(key.fingerprint, table.rows)
            return analyse(key, table, query), table.rows

        try:
            result, rows = await anyio.to_thread.run_sync(work)
        except TutelaError as exc:
            await _audit(request, who, "he.analytics", "denied", reason=str(exc), op=body.op.value)
            raise
        await _audit(
            request, who, "he.analytics", "success", table=table_id, op=body.op.value,
            column=body.column, rows=rows,
        )  # fmt: skip
        return Response(result, media_type=BINARY)

    return app
