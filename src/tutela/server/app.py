"""The coordinator's HTTP API (FastAPI).

Two audiences:

- **Sites** (``/v1/site/...``) authenticate with a client certificate from the
  deployment's CA (mutual TLS); the certificate's common name is the site's identity.
  They poll for tasks, fetch the global model, submit updates and protocol messages as
  binary safetensors bodies, relay opaque messages to each other, and report metrics.
  Enrolment (``/v1/enrol``) exchanges a one-time token and a CSR for a certificate.
- **People** (``/v1/admin/...``) authenticate with bearer tokens and act by role: admin,
  data-scientist, auditor.

Every route declares exactly one :class:`~tutela.server.authz.Permission` (visible as
``x-permission`` in the OpenAPI schema); every denial is audited. Errors are JSON
``{"detail": "..."}`` with a 4xx status that names the problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import numpy as np
from cryptography import x509
from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from safetensors.numpy import save as st_save

from tutela.errors import (
    ConfigError,
    DataError,
    PermissionDenied,
    ProtocolAbort,
    ServiceError,
    TutelaError,
)
from tutela.fl.client import FeatureMoments
from tutela.fl.config import parse_study
from tutela.server.authz import (
    ANONYMOUS_LABEL,
    Audience,
    Permission,
    Principal,
    RbacPolicy,
    Role,
    decide,
)
from tutela.server.coordinator import (
    ConflictError,
    Coordinator,
    DeploymentSettings,
    NotFoundError,
    PayloadTooLargeError,
)
from tutela.server.pki import common_name, fingerprint
from tutela.server.tls import peer_certificate_pem

_log = logging.getLogger("tutela.server")
SAFETENSORS = "application/octet-stream"
MAX_JSON_BYTES = 1024 * 1024
MAX_BINARY_BYTES = 256 * 1024 * 1024


class UnauthenticatedError(ServiceError):
    """No or invalid credentials (HTTP 401)."""


@dataclass
class AppState:
    """What the routes share."""

    coordinator: Coordinator
    ca_pem: bytes | None
    policy: RbacPolicy
    wake: asyncio.Event | None = None


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.tutela
    return state


def _authenticate(request: Request, state: AppState) -> Principal | None:
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError("the Authorization header must be 'Bearer <token>'")
        principal = state.coordinator.principal_for_token(token.strip())
        if principal is None:
            raise UnauthenticatedError("unknown or expired bearer token")
        return principal
    pem = peer_certificate_pem(request.scope)
    if pem is not None:
        cert = x509.load_pem_x509_certificate(pem.encode())
        principal = state.coordinator.principal_for_site(common_name(cert), fingerprint(cert))
        if principal is None:
            raise PermissionDenied(
                f"the client certificate for {common_name(cert)!r} "
                "does not belong to an enrolled site"
            )
        return principal
    return None


def _declaration(request: Request) -> tuple[Audience, Permission]:
    route = request.scope.get("route")
    extra = getattr(route, "openapi_extra", None) or {}
    if "x-permission" not in extra:  # pragma: no cover - every route is declared (tested)
        raise PermissionDenied("this endpoint declares no permission")
    return Audience(extra["x-audience"]), Permission(extra["x-permission"])


async def authorize(request: Request) -> Principal:
    """Authenticate the caller and check the route's declared audience and permission.

    Denials (no, wrong or insufficient credentials) are audited, then answered 401/403.
    """
    audience, permission = _declaration(request)
    if audience is Audience.ANYONE:
        return Principal(ANONYMOUS_LABEL, Role.AUDITOR)
    state = _state(request)
    resource = request.url.path
    try:
        principal = await anyio.to_thread.run_sync(_authenticate, request, state)
    except (UnauthenticatedError, PermissionDenied) as exc:
        why = str(exc)
        await anyio.to_thread.run_sync(
            lambda: state.coordinator.audit(
                ANONYMOUS_LABEL,
                "access.denied",
                resource,
                "denied",
                {"permission": permission.value, "reason": why},
            )
        )
        raise
    reason = decide(principal, audience, permission, resource, state.policy)
    if reason is None:
        assert principal is not None
        return principal
    actor = principal.label if principal is not None else ANONYMOUS_LABEL
    await anyio.to_thread.run_sync(
        lambda: state.coordinator.audit(
            actor,
            "access.denied",
            resource,
            "denied",
            {"permission": permission.value, "reason": reason},
        )
    )
    if principal is None:
        raise UnauthenticatedError(
            "credentials required: a bearer token for people, a site client certificate for sites"
        )
    raise PermissionDenied(reason)


def declared(
    audience: Audience,
    permission: Permission,
    *,
    binary_body: str | None = None,
    binary_response: bool = False,
) -> dict[str, Any]:
    """Route keyword arguments that attach (and document) the audience and permission."""
    extra: dict[str, Any] = {"x-permission": permission.value, "x-audience": audience.value}
    if binary_body is not None:
        extra["requestBody"] = {
            "required": True,
            "content": {
                SAFETENSORS: {
                    "schema": {"type": "string", "format": "binary", "title": binary_body}
                }
            },
        }
    kwargs: dict[str, Any] = {"openapi_extra": extra}
    if binary_response:
        kwargs["responses"] = {
            200: {"description": "safetensors payload", "content": {SAFETENSORS: {}}}
        }
    return kwargs


async def read_body(request: Request, limit: int) -> bytes:
    """Read a request body, refusing more than ``limit`` bytes (413) without buffering it all."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared_length = int(length)
        except ValueError:
            raise DataError("invalid Content-Length header") from None
        if declared_length > limit:
            raise PayloadTooLargeError(
                f"body of {declared_length} bytes exceeds the {limit} byte limit"
            )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"body exceeds the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


Caller = Annotated[Principal, Depends(authorize)]
IdemKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=128)]


# ---- request and response models (pydantic at the edge only) ---------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeploymentIn(_Model):
    join_timeout_s: float = Field(default=120.0, gt=0, le=86400)
    stage_timeout_s: float = Field(default=120.0, gt=0, le=86400)
    max_update_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=MAX_BINARY_BYTES)
    max_relay_bytes: int = Field(default=1024 * 1024, ge=64, le=64 * 1024 * 1024)
    sites: list[str] | None = None


class StudyIn(_Model):
    config: dict[str, Any]
    deployment: DeploymentIn = Field(default_factory=DeploymentIn)


class StudyCreated(_Model):
    id: str


class StatusOut(_Model):
    id: str
    status: str


class SiteIn(_Model):
    name: str = Field(min_length=1, max_length=63)


class EnrolmentTokenOut(_Model):
    site: str
    enrolment_token: str


class TokenIn(_Model):
    role: Role
    name: str = Field(min_length=1, max_length=200)


class TokenOut(_Model):
    token: str
    role: Role
    name: str


class EnrolIn(_Model):
    token: str = Field(min_length=1, max_length=200)
    csr_pem: str = Field(min_length=1, max_length=16384)


class EnrolOut(_Model):
    certificate_pem: str
    ca_pem: str | None


class MomentsIn(_Model):
    count: int = Field(ge=0)
    total: list[float]
    total_sq: list[float]


class ParticipationIn(_Model):
    accept: bool
    reason: str = Field(default="", max_length=2000)
    num_examples: int = Field(default=0, ge=0)
    moments: MomentsIn | None = None
    identity: str | None = Field(default=None, min_length=64, max_length=64)


class ParticipationOut(_Model):
    study_id: str
    site: str
    status: str


class ReceiptOut(_Model):
    study_id: str
    round: int
    stage: str
    site: str
    digest: str
    duplicate: bool


class MetricsIn(_Model):
    metrics: dict[str, float]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def _register_errors(app: FastAPI) -> None:
    mapping: list[tuple[type[Exception], int]] = [
        (UnauthenticatedError, 401),
        (PermissionDenied, 403),
        (NotFoundError, 404),
        (ConflictError, 409),
        (PayloadTooLargeError, 413),
        (DataError, 422),
        (ConfigError, 422),
        (ProtocolAbort, 409),
    ]
    for exc_type, status in mapping:

        def handler(_request: Request, exc: Exception, status: int = status) -> JSONResponse:
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            response = _error(status, str(exc) or type(exc).__name__)
            if headers:
                response.headers.update(headers)
            return response

        app.add_exception_handler(exc_type, handler)

    def fallback(_request: Request, exc: Exception) -> JSONResponse:
        return _error(400, str(exc) or type(exc).__name__)

    app.add_exception_handler(TutelaError, fallback)
    app.add_exception_handler(ValueError, fallback)


# ---- the application --------------------------------------------------------------------


def create_app(
    coordinator: Coordinator,
    *,
    ca_pem: bytes | None = None,
    tick_interval: float = 0.25,
    policy: RbacPolicy | None = None,
) -> FastAPI:
    """Build the coordinator app; a background task advances studies every ``tick_interval`` s."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: AppState = app.state.tutela
        state.wake = asyncio.Event()
        task = asyncio.create_task(_ticker(state, tick_interval))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="Tutela coordinator",
        version="1",
        lifespan=lifespan,
        description=__doc__,
    )
    app.state.tutela = AppState(coordinator, ca_pem, policy or RbacPolicy.default())
    _register_errors(app)

    def co(request: Request) -> Coordinator:
        return _state(request).coordinator

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    def wake(request: Request) -> None:
        event = _state(request).wake
        if event is not None:
            event.set()

    @app.get("/health", **declared(Audience.ANYONE, Permission.STUDY_READ))
    async def health(_p: Caller) -> dict[str, str]:
        """Liveness probe."""
        return {"status": "ok"}

    # admin: studies
    @app.post(
        "/v1/admin/studies",
        status_code=201,
        response_model=StudyCreated,
        **declared(Audience.PEOPLE, Permission.STUDY_CREATE),
    )
    async def create_study(body: StudyIn, request: Request, p: Caller) -> StudyCreated:
        """Create a study from a study config and deployment settings."""
        config = parse_study(body.config)
        d = body.deployment
        settings = DeploymentSettings(
            d.join_timeout_s,
            d.stage_timeout_s,
            d.max_update_bytes,
            d.max_relay_bytes,
            tuple(d.sites) if d.sites is not None else None,
        )
        study_id = await run(co(request).create_study, p, config, settings)
        return StudyCreated(id=study_id)

    @app.put(
        "/v1/admin/studies/{study_id}/model",
        status_code=204,
        **declared(Audience.PEOPLE, Permission.STUDY_CREATE, binary_body="model"),
    )
    async def set_model(study_id: str, request: Request, p: Caller) -> Response:
        """Upload the initial global model (safetensors, float32)."""
        body = await read_body(request, MAX_BINARY_BYTES)
        await run(co(request).set_initial_model, p, study_id, body)
        return Response(status_code=204)

    @app.post(
        "/v1/admin/studies/{study_id}/start",
        response_model=StatusOut,
        **declared(Audience.PEOPLE, Permission.STUDY_CONTROL),
    )
    async def start(study_id: str, request: Request, p: Caller) -> StatusOut:
        """Start a created study (invites the sites) or resume a paused one."""
        status = await run(co(request).start, p, study_id)
        wake(request)
        return StatusOut(id=study_id, status=status)

    @app.post(
        "/v1/admin/studies/{study_id}/pause",
        response_model=StatusOut,
        **declared(Audience.PEOPLE, Permission.STUDY_CONTROL),
    )
    async def pause(study_id: str, request: Request, p: Caller) -> StatusOut:
        """Pause a running study after its open round."""
        return StatusOut(id=study_id, status=await run(co(request).pause, p, study_id))

    @app.post(
        "/v1/admin/studies/{study_id}/cancel",
        response_model=StatusOut,
        **declared(Audience.PEOPLE, Permission.STUDY_CONTROL),
    )
    async def cancel(study_id: str, request: Request, p: Caller) -> StatusOut:
        """Cancel a study for good."""
        return StatusOut(id=study_id, status=await run(co(request).cancel, p, study_id))

    @app.get("/v1/admin/studies", **declared(Audience.PEOPLE, Permission.STUDY_READ))
    async def list_studies(request: Request, _p: Caller) -> list[dict[str, Any]]:
        """Every study with its status."""
        result: list[dict[str, Any]] = await run(co(request).list_studies)
        return result

    @app.get("/v1/admin/studies/{study_id}", **declared(Audience.PEOPLE, Permission.STUDY_READ))
    async def study_status(study_id: str, request: Request, _p: Caller) -> dict[str, Any]:
        """Status, participation and rounds of a study."""
        result: dict[str, Any] = await run(co(request).study_status, study_id)
        return result

    @app.get(
        "/v1/admin/studies/{study_id}/privacy", **declared(Audience.PEOPLE, Permission.LEDGER_READ)
    )
    async def privacy(study_id: str, request: Request, _p: Caller) -> dict[str, Any]:
        """The study's privacy ledger."""
        result: dict[str, Any] = await run(co(request).privacy_ledger, study_id)
        return result

    @app.get(
        "/v1/admin/studies/{study_id}/model",
        **declared(Audience.PEOPLE, Permission.MODEL_READ, binary_response=True),
    )
    async def study_model(study_id: str, request: Request, _p: Caller) -> Response:
        """The current global model (safetensors)."""
        return Response(await run(co(request).final_model, study_id), media_type=SAFETENSORS)

    @app.get(
        "/v1/admin/studies/{study_id}/rounds/{round_no}/model",
        **declared(Audience.PEOPLE, Permission.MODEL_READ, binary_response=True),
    )
    async def round_model(study_id: str, round_no: int, request: Request, _p: Caller) -> Response:
        """The global model after one round (safetensors)."""
        return Response(
            await run(co(request).round_model, study_id, round_no), media_type=SAFETENSORS
        )

    @app.get("/v1/admin/audit", **declared(Audience.PEOPLE, Permission.AUDIT_READ))
    async def audit(
        request: Request, _p: Caller, after_id: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Audit events in order (page with ``after_id``)."""
        limit = max(1, min(limit, 10_000))
        result: list[dict[str, Any]] = await run(
            lambda: co(request).audit_events(limit=limit, after_id=max(after_id, 0))
        )
        return result

    # admin: sites and tokens
    @app.post(
        "/v1/admin/sites",
        status_code=201,
        response_model=EnrolmentTokenOut,
        **declared(Audience.PEOPLE, Permission.SITE_MANAGE),
    )
    async def register_site(body: SiteIn, request: Request, p: Caller) -> EnrolmentTokenOut:
        """Register a site; returns its one-time enrolment token."""
        token = await run(co(request).register_site, p, body.name)
        return EnrolmentTokenOut(site=body.name, enrolment_token=token)

    @app.post(
        "/v1/admin/sites/{name}/activate",
        status_code=204,
        **declared(Audience.PEOPLE, Permission.SITE_MANAGE),
    )
    async def activate_site(name: str, request: Request, p: Caller) -> Response:
        """Accept a site whose certificate was issued offline."""
        await run(co(request).activate_site, p, name)
        return Response(status_code=204)

    @app.get("/v1/admin/sites", **declared(Audience.PEOPLE, Permission.SITE_MANAGE))
    async def list_sites(request: Request, _p: Caller) -> list[dict[str, Any]]:
        """Every known site."""
        result: list[dict[str, Any]] = await run(co(request).list_sites)
        return result

    @app.post(
        "/v1/admin/tokens",
        status_code=201,
        response_model=TokenOut,
        **declared(Audience.PEOPLE, Permission.USERS_MANAGE),
    )
    async def create_token(body: TokenIn, request: Request, p: Caller) -> TokenOut:
        """Mint a bearer token for a person (not for sites)."""
        if body.role is Role.SITE:
            raise DataError(
                "sites authenticate with certificates; register them with POST /v1/admin/sites"
            )
        token = await run(lambda: co(request).create_token(body.role, body.name, actor=p.label))
        return TokenOut(token=token, role=body.role, name=body.name)

    # enrolment
    @app.post(
        "/v1/enrol", response_model=EnrolOut, **declared(Audience.ANYONE, Permission.SITE_ENROLL)
    )
    async def enrol(body: EnrolIn, request: Request, _p: Caller) -> EnrolOut:
        """Exchange a one-time enrolment token and a CSR for a site certificate."""
        cert = await run(co(request).enrol, body.token, body.csr_pem.encode())
        ca = _state(request).ca_pem
        return EnrolOut(certificate_pem=cert.decode(), ca_pem=ca.decode() if ca else None)

    # site API
    @app.get("/v1/site/tasks", **declared(Audience.SITES, Permission.ROUND_SUBMIT))
    async def tasks(request: Request, p: Caller) -> dict[str, Any]:
        """What this site should do now, and the status of its studies."""
        result: dict[str, Any] = await run(co(request).tasks_for, p.name)
        return result

    @app.get(
        "/v1/site/studies/{study_id}/model",
        **declared(Audience.SITES, Permission.ROUND_SUBMIT, binary_response=True),
    )
    async def site_model(study_id: str, request: Request, p: Caller) -> Response:
        """The current global model (safetensors)."""
        return Response(
            await run(co(request).model_for_site, p.name, study_id), media_type=SAFETENSORS
        )

    @app.post(
        "/v1/site/studies/{study_id}/participation",
        response_model=ParticipationOut,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT),
    )
    async def participate(
        study_id: str, body: ParticipationIn, request: Request, p: Caller
    ) -> ParticipationOut:
        """Accept (with feature moments) or refuse (with the reason) a study invitation."""
        moments = None
        if body.moments is not None:
            m = body.moments
            if len(m.total) != len(m.total_sq):
                raise DataError("moments.total and moments.total_sq differ in length")
            if not all(np.isfinite(m.total)) or not all(np.isfinite(m.total_sq)):
                raise DataError("moments must be finite")
            moments = FeatureMoments(
                m.count, np.asarray(m.total, np.float64), np.asarray(m.total_sq, np.float64)
            )
        status = await run(
            lambda: co(request).answer_invitation(
                p.name,
                study_id,
                accept=body.accept,
                reason=body.reason,
                num_examples=body.num_examples,
                moments=moments,
                identity=body.identity,
            )
        )
        wake(request)
        return ParticipationOut(study_id=study_id, site=p.name, status=status)

    @app.post(
        "/v1/site/studies/{study_id}/rounds/{round_no}/stages/{stage}",
        response_model=ReceiptOut,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT, binary_body="submission"),
    )
    async def submit(
        study_id: str, round_no: int, stage: str, request: Request, p: Caller, key: IdemKey
    ) -> ReceiptOut:
        """Submit this site's message for a round stage (safetensors; exactly once per key)."""
        body = await read_body(request, MAX_BINARY_BYTES)
        receipt = await run(co(request).submit, p.name, study_id, round_no, stage, key, body)
        wake(request)
        return ReceiptOut(**receipt.as_dict())

    @app.post(
        "/v1/site/studies/{study_id}/rounds/{round_no}/relay/{stage}/{recipient}",
        response_model=ReceiptOut,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT, binary_body="message"),
    )
    async def relay_post(
        study_id: str,
        round_no: int,
        stage: str,
        recipient: str,
        request: Request,
        p: Caller,
        key: IdemKey,
    ) -> ReceiptOut:
        """Send an opaque message to another participant of the round."""
        body = await read_body(request, MAX_BINARY_BYTES)
        receipt = await run(
            co(request).relay_post, p.name, study_id, round_no, stage, recipient, key, body
        )
        return ReceiptOut(**receipt.as_dict())

    @app.get(
        "/v1/site/studies/{study_id}/rounds/{round_no}/relay/{stage}",
        **declared(Audience.SITES, Permission.ROUND_SUBMIT, binary_response=True),
    )
    async def relay_get(
        study_id: str, round_no: int, stage: str, request: Request, p: Caller
    ) -> Response:
        """Messages addressed to this site, as safetensors (one uint8 tensor per sender)."""
        messages: dict[str, bytes] = await run(
            co(request).relay_fetch, p.name, study_id, round_no, stage
        )
        arrays = {sender: np.frombuffer(blob, np.uint8).copy() for sender, blob in messages.items()}
        body = st_save(arrays, metadata={"study": study_id, "round": str(round_no), "stage": stage})
        return Response(body, media_type=SAFETENSORS)

    @app.post(
        "/v1/site/studies/{study_id}/rounds/{round_no}/metrics",
        status_code=204,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT),
    )
    async def metrics(
        study_id: str, round_no: int, body: MetricsIn, request: Request, p: Caller
    ) -> Response:
        """Report this site's metrics for a round."""
        await run(co(request).report_metrics, p.name, study_id, round_no, body.metrics)
        return Response(status_code=204)

    return app


async def _ticker(state: AppState, interval: float) -> None:
    assert state.wake is not None
    while True:
        try:
            moved = await anyio.to_thread.run_sync(state.coordinator.tick)
        except Exception:  # a failing tick must not stop the service; it is retried
            _log.exception("coordinator tick failed")
            moved = False
        if moved:
            continue
        state.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.wake.wait(), timeout=interval)


def route_permissions(app: FastAPI) -> dict[tuple[str, str], tuple[Audience, Permission]]:
    """Every (method, path) of the app with the audience and permission it declares."""
    from fastapi.routing import APIRoute

    out: dict[tuple[str, str], tuple[Audience, Permission]] = {}
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        extra = route.openapi_extra or {}
        declared_pair = (Audience(extra["x-audience"]), Permission(extra["x-permission"]))
        for method in route.methods or ():
            out[(method, route.path)] = declared_pair
    return out
