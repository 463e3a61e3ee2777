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

The routes live in :mod:`~tutela.server.routes_admin` and :mod:`~tutela.server.routes_site`,
what they share (authentication, declared permissions, bounded bodies) in
:mod:`~tutela.server.api`, their bodies in :mod:`~tutela.server.schemas`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI

from tutela.errors import ConfigError, DataError, PermissionDenied, ProtocolAbort
from tutela.server.api import AppState, Caller, UnauthenticatedError, declared
from tutela.server.authz import Audience, Permission, RbacPolicy
from tutela.server.coordinator import Coordinator
from tutela.server.core import ConflictError, NotFoundError, PayloadTooLargeError
from tutela.server.dashboard import add_dashboard_routes
from tutela.server.limits import BodyLimit, register_errors
from tutela.server.routes_admin import add_admin_routes
from tutela.server.routes_query import add_query_routes
from tutela.server.routes_site import add_site_routes
from tutela.server.routes_smpc import add_smpc_routes

_log = logging.getLogger("tutela.server")


def _register_errors(app: FastAPI) -> None:
    register_errors(
        app,
        [
            (UnauthenticatedError, 401),
            (PermissionDenied, 403),
            (NotFoundError, 404),
            (ConflictError, 409),
            (PayloadTooLargeError, 413),
            (DataError, 422),
            (ConfigError, 422),
            (ProtocolAbort, 409),
        ],
        bearer=True,
    )


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
    app.add_middleware(BodyLimit)

    @app.get("/health", **declared(Audience.ANYONE, Permission.STUDY_READ))
    async def health(_p: Caller) -> dict[str, str]:
        """Liveness probe."""
        return {"status": "ok"}

    add_admin_routes(app)
    add_site_routes(app)
    add_query_routes(app)
    add_smpc_routes(app)
    add_dashboard_routes(app)
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
