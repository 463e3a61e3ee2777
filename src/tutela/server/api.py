"""What every route of the coordinator's HTTP API shares: authentication, authorisation,
declared permissions, bounded bodies, and the way a route reaches the coordinator.

Every route declares exactly one :class:`~tutela.server.authz.Permission` (visible as
``x-permission`` in the OpenAPI schema) with :func:`declared`, and takes a :data:`Caller`
parameter, which authenticates the caller and checks that declaration; every denial is
audited.

Anonymous failures are rate limited per client address (:class:`FailureLimiter`): requests
that fail without an authenticated caller (no or bad credentials, a refused enrolment) are
audited up to a limit per window; beyond it the address is answered 429 without an audit
record until the window ends, and one summary record per window counts what was refused.
So nobody without credentials can grow the audit log without bound.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
from cryptography import x509
from fastapi import Depends, Header, HTTPException, Request

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
class _Window:
    start: float
    failures: int = 0
    refused: int = 0


@dataclass
class FailureLimiter:
    """At most ``limit`` audited anonymous failures per client address and ``window_s``.

    Beyond the limit the address is refused (429) and not audited until its window ends;
    the window then yields one summary (how many requests were refused). Past
    ``max_addresses`` tracked at once, new addresses share one window, so many addresses
    cannot multiply the bound without limit.

    Security: bounds audit-log growth and lookup work caused by callers without
    credentials; callers with valid credentials are never refused by it. It does not stop
    a flood at the network level (that is the proxy's or the firewall's job).
    """

    limit: int = 100
    window_s: float = 60.0
    max_addresses: int = 4096
    _windows: dict[str, _Window] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _key(self, address: str) -> str:
        if address in self._windows or len(self._windows) < self.max_addresses:
            return address
        return "*"

    def _window(self, address: str, now: float) -> _Window:
        key = self._key(address)
        window = self._windows.get(key)
        if window is None or now - window.start >= self.window_s:
            window = self._windows[key] = _Window(now)
        return window

    def refuse(self, address: str, now: float) -> bool:
        """Whether the address is over its limit now (the refusal is counted)."""
        with self._lock:
            window = self._windows.get(self._key(address))
            if window is None or now - window.start >= self.window_s:
                return False
            if window.failures < self.limit:
                return False
            window.refused += 1
            return True

    def failed(self, address: str, now: float) -> None:
        """Count one audited failure from ``address``."""
        with self._lock:
            self._window(address, now).failures += 1

    def ended(self, now: float) -> list[tuple[str, int]]:
        """Windows that ended with refusals, as ``(address, refused)``; forgets ended ones."""
        with self._lock:
            done = [k for k, w in self._windows.items() if now - w.start >= self.window_s]
            out = [(k, self._windows[k].refused) for k in done if self._windows[k].refused]
            for k in done:
                del self._windows[k]
            return out


@dataclass
class AppState:
    """What the routes share."""

    coordinator: Coordinator
    ca_pem: bytes | None
    policy: RbacPolicy
    wake: asyncio.Event | None = None
    limiter: FailureLimiter = field(default_factory=FailureLimiter)


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
        name, print_ = _certificate_identity(pem)
        principal = state.coordinator.principal_for_site(name, print_)
        if principal is None:
            raise PermissionDenied(
                f"the client certificate for {name!r} does not belong to an enrolled site"
            )
        return principal
    return None


@functools.lru_cache(maxsize=4096)
def _certificate_identity(pem: str) -> tuple[str, str]:
    """(common name, SHA-256 fingerprint) of a verified client certificate, parsed once per
    certificate (a site's requests all present the one the handshake verified)."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    return common_name(cert), fingerprint(cert)


def _recognised(request: Request, state: AppState) -> Principal | None:
    """The site principal of a client certificate the coordinator recognised recently
    (:meth:`~tutela.server.identity.Identity.recognised_site`), without touching the store;
    None when it must be looked up (:func:`_authenticate`)."""
    if request.headers.get("authorization") is not None:
        return None
    pem = peer_certificate_pem(request.scope)
    if pem is None:
        return None
    return state.coordinator.recognised_site(*_certificate_identity(pem))


def _declaration(request: Request) -> tuple[Audience, Permission]:
    route = request.scope.get("route")
    extra = getattr(route, "openapi_extra", None) or {}
    if "x-permission" not in extra:  # pragma: no cover - every route is declared (tested)
        raise PermissionDenied("this endpoint declares no permission")
    return Audience(extra["x-audience"]), Permission(extra["x-permission"])


def _address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def _limit_anonymous(state: AppState, address: str) -> None:
    """Write the summaries of ended windows; refuse an address over its limit (429)."""
    limiter = state.limiter
    now = state.coordinator.core.clock()
    for who, refused in limiter.ended(now):
        summary = {"refused": refused, "window_s": limiter.window_s, "audited": limiter.limit}
        await anyio.to_thread.run_sync(
            functools.partial(
                state.coordinator.audit,
                ANONYMOUS_LABEL,
                "access.rate_limited",
                f"address/{who}",
                "denied",
                summary,
            )
        )
    if limiter.refuse(address, now):
        raise HTTPException(
            429,
            "too many failed requests from this address; try again later",
            headers={"Retry-After": str(int(limiter.window_s))},
        )


async def _deny(
    state: AppState,
    address: str,
    principal: Principal | None,
    resource: str,
    permission: Permission,
    reason: str,
) -> None:
    """Audit a denial; an anonymous one first counts against its address's rate limit
    (past the limit it is answered 429 and not audited)."""
    if principal is None:
        await _limit_anonymous(state, address)
        state.limiter.failed(address, state.coordinator.core.clock())
    actor = principal.label if principal is not None else ANONYMOUS_LABEL
    await anyio.to_thread.run_sync(
        functools.partial(
            state.coordinator.audit,
            actor,
            "access.denied",
            resource,
            "denied",
            {"permission": permission.value, "reason": reason},
        )
    )


async def authorize(request: Request) -> AsyncIterator[Principal]:
    """Authenticate the caller and check the route's declared audience and permission.

    Denials (no, wrong or insufficient credentials) are audited, then answered 401/403;
    anonymous failures past the rate limit are answered 429 and not audited.
    """
    audience, permission = _declaration(request)
    state = app_state(request)
    address = _address(request)
    if audience is Audience.ANYONE:
        await _limit_anonymous(state, address)
        try:
            yield Principal(ANONYMOUS_LABEL, Role.AUDITOR)
        except (UnauthenticatedError, PermissionDenied):
            state.limiter.failed(address, state.coordinator.core.clock())  # e.g. bad enrolment
            raise
        return
    resource = request.url.path
    try:
        principal = _recognised(request, state) or await anyio.to_thread.run_sync(
            _authenticate, request, state
        )
    except (UnauthenticatedError, PermissionDenied) as exc:
        await _deny(state, address, None, resource, permission, str(exc))
        raise
    reason = decide(principal, audience, permission, resource, state.policy)
    if reason is None:
        assert principal is not None
        yield principal
        return
    await _deny(state, address, principal, resource, permission, reason)
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
                    "schema": {
                        "type": "string",
                        "format": "binary",
                        "title": binary_body,
                        "maxLength": MAX_BINARY_BYTES,
                    }
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
