"""What every route of the coordinator's HTTP API shares: authentication, authorisation,
declared permissions, bounded bodies, and the way a route reaches the coordinator.

Every route declares exactly one :class:`~tutela.server.authz.Permission` (visible as
``x-permission`` in the OpenAPI schema) with :func:`declared`, and takes a :data:`Caller`
parameter, which authenticates the caller and checks that declaration; every denial is
audited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from cryptography import x509
from fastapi import Depends, Header, Request

from tutela.errors import DataError, PermissionDenied, ServiceError
from tutela.server.authz import (
    ANONYMOUS_LABEL,
    Audience,
    Permission,
    Principal,
    RbacPolicy,
    Role,
    decide,
)
from tutela.server.coordinator import Coordinator
from tutela.server.core import PayloadTooLargeError
from tutela.server.pki import common_name, fingerprint
from tutela.server.tls import peer_certificate_pem

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


def app_state(request: Request) -> AppState:
    """The state of the app serving ``request``."""
    state: AppState = request.app.state.tutela
    return state


def coordinator_of(request: Request) -> Coordinator:
    """The coordinator behind the app serving ``request``."""
    return app_state(request).coordinator


async def run(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking coordinator work off the event loop."""
    return await anyio.to_thread.run_sync(fn, *args)


def wake(request: Request) -> None:
    """Let the round driver look at the studies now (something it waits for arrived)."""
    event = app_state(request).wake
    if event is not None:
        event.set()


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
    state = app_state(request)
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
