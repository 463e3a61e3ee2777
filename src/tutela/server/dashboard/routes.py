"""The dashboard's routes: the page and its assets (no credentials: they hold no data),
the JSON views (bearer token; one declared permission each) and the live event stream.

The page signs people in with their bearer token (kept in the tab's session storage, sent
as an ``Authorization`` header, never in a URL or a cookie, so no other site can make the
browser use it). The event stream (``text/event-stream``) pushes a ``round`` event when a
study closes a round and a ``study`` event when a study changes state; it stays open while a
study is recruiting or running and otherwise ends after its first snapshot (the page
reconnects after the ``retry`` it is given).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from tutela.server.api import Caller, app_state, coordinator_of, declared, run
from tutela.server.authz import Audience, Permission
from tutela.server.core import NotFoundError
from tutela.server.dashboard.views import (
    VIEWS,
    audit_view,
    compliance_view,
    is_live,
    live_state,
    me_view,
    privacy_view,
    sites_view,
    studies_view,
)
from tutela.server.schemas import StudyId

__all__ = ["ASSETS", "CSP", "add_dashboard_routes"]

ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The page loads its own script and style only, and talks to its own origin only."""
POLL_S = 0.25
MAX_STREAM_S = 300.0
RETRY_MS = 2000


def _asset(name: str) -> bytes:
    return resources.files("tutela.server.dashboard").joinpath("static", name).read_bytes()


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


AssetName = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-z0-9_.-]+$")]


def add_dashboard_routes(app: FastAPI) -> None:
    """Mount the dashboard on the coordinator app (``/dashboard``, ``/v1/dashboard/...``)."""

    @app.get("/dashboard", **declared(Audience.ANYONE, Permission.STUDY_READ))
    async def page(_p: Caller) -> Response:
        """The dashboard page (it holds no data; the views need a bearer token)."""
        return Response(_asset("index.html"), media_type="text/html", headers=_headers())

    @app.get("/dashboard/static/{name}", **declared(Audience.ANYONE, Permission.STUDY_READ))
    async def asset(name: AssetName, _p: Caller) -> Response:
        """The page's script and style, shipped inside the package."""
        if name not in ASSETS:
            raise NotFoundError("no such dashboard asset")  # never echo the input
        return Response(_asset(name), media_type=ASSETS[name], headers=_headers())

    @app.get("/v1/dashboard/me", **declared(Audience.PEOPLE, Permission.STUDY_READ))
    async def me(request: Request, p: Caller) -> dict[str, Any]:
        """Who is signed in, and which views their role may open."""
        return me_view(p, app_state(request).policy)

    @app.get("/v1/dashboard/studies", **declared(Audience.PEOPLE, VIEWS["studies"]))
    async def studies(request: Request, _p: Caller) -> list[dict[str, Any]]:
        """Studies: state, progress, participation and per-round outcomes."""
        result: list[dict[str, Any]] = await run(studies_view, coordinator_of(request))
        return result

    @app.get("/v1/dashboard/sites", **declared(Audience.PEOPLE, VIEWS["sites"]))
    async def sites(request: Request, _p: Caller) -> list[dict[str, Any]]:
        """Sites: enrolment, and each study's answer from them (refusals with reasons)."""
        result: list[dict[str, Any]] = await run(sites_view, coordinator_of(request))
        return result

    @app.get(
        "/v1/dashboard/studies/{study_id}/privacy",
        **declared(Audience.PEOPLE, VIEWS["privacy"]),
    )
    async def privacy(study_id: StudyId, request: Request, _p: Caller) -> dict[str, Any]:
        """The study's privacy guarantee and each site's ledger against its budget."""
        result: dict[str, Any] = await run(privacy_view, coordinator_of(request), study_id)
        return result

    @app.get(
        "/v1/dashboard/studies/{study_id}/compliance",
        **declared(Audience.PEOPLE, VIEWS["compliance"]),
    )
    async def compliance(study_id: StudyId, request: Request, _p: Caller) -> dict[str, Any]:
        """A completed study's GDPR, HIPAA and CCPA checks, with the provisions they map to."""
        result: dict[str, Any] = await run(compliance_view, coordinator_of(request), study_id)
        return result

    @app.get("/v1/dashboard/audit", **declared(Audience.PEOPLE, VIEWS["audit"]))
    async def audit(
        request: Request,
        _p: Caller,
        q: Annotated[str, Query(max_length=200)] = "",
        limit: Annotated[int, Query(ge=1, le=500)] = 200,
    ) -> dict[str, Any]:
        """Audit events matching ``q``, with the witnessed checkpoint of the log."""
        result: dict[str, Any] = await run(audit_view, coordinator_of(request), q, limit)
        return result

    @app.get("/v1/dashboard/events", **declared(Audience.PEOPLE, Permission.STUDY_READ))
    async def events(request: Request, _p: Caller) -> StreamingResponse:
        """Server-sent events: ``round`` when a study closes a round, ``study`` when its
        state changes (open while a study is live; see the module docstring)."""
        coordinator = coordinator_of(request)
        clock = coordinator.core.clock

        async def stream() -> AsyncIterator[bytes]:
            state = await run(live_state, coordinator)
            yield f"retry: {RETRY_MS}\n\n".encode()
            yield _event("snapshot", {k: list(v) for k, v in state.items()})
            opened = clock()
            while is_live(state) and clock() - opened < MAX_STREAM_S:
                if await request.is_disconnected():
                    return
                await asyncio.sleep(POLL_S)
                now = await run(live_state, coordinator)
                for study, (status, closed) in now.items():
                    before = state.get(study, ("", 0))
                    for round_no in range(before[1] + 1, closed + 1):
                        yield _event("round", {"study": study, "round": round_no})
                    if status != before[0]:
                        yield _event("study", {"study": study, "status": status})
                state = now

        return StreamingResponse(stream(), media_type="text/event-stream", headers=_headers())
