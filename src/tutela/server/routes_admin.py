"""The people's side of the coordinator's HTTP API (``/v1/admin/...``, bearer tokens).

Admins, data scientists and auditors manage studies, sites and tokens and read the audit
trail, each route allowed by the permission it declares.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import Response

from tutela.errors import DataError
from tutela.fl.config import parse_study
from tutela.server.api import (
    MAX_BINARY_BYTES,
    SAFETENSORS,
    Caller,
    coordinator_of,
    declared,
    read_body,
    run,
    wake,
)
from tutela.server.authz import Audience, Permission, Role
from tutela.server.core import DeploymentSettings, NotFoundError
from tutela.server.push import TooManyWaiting, disconnect_of
from tutela.server.schemas import (
    EnrolmentTokenOut,
    RoundNo,
    SiteIn,
    SiteName,
    StatusOut,
    StudyCreated,
    StudyId,
    StudyIn,
    TokenIn,
    TokenOut,
)

MAX_STUDY_WAIT_S = 300.0
"""Largest ``wait`` on a study's status a caller may ask for (the coordinator holds at most
its own limit)."""


def _merkle_log(request: Request) -> Any:
    """The coordinator's tamper-evident log (:class:`tutela.server.serve.MerkleAuditHook`);
    NotFoundError for a coordinator built without one (tests of the bare core)."""
    hook = coordinator_of(request).core.audit_hook
    if not hasattr(hook, "export"):
        raise NotFoundError("this coordinator keeps no tamper-evident audit log")
    return hook


def add_admin_routes(app: FastAPI) -> None:
    """Add the people's routes to ``app``: studies, the audit trail, sites and tokens."""

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
        study_id = await run(coordinator_of(request).create_study, p, config, settings)
        return StudyCreated(id=study_id)

    @app.put(
        "/v1/admin/studies/{study_id}/model",
        status_code=204,
        **declared(Audience.PEOPLE, Permission.STUDY_CREATE, binary_body="model"),
    )
    async def set_model(study_id: StudyId, request: Request, p: Caller) -> Response:
        """Upload the initial global model (safetensors, float32)."""
        body = await read_body(request, MAX_BINARY_BYTES)
        await run(coordinator_of(request).set_initial_model, p, study_id, body)
        return Response(status_code=204)

    @app.post(
        "/v1/admin/studies/{study_id}/start",
        response_model=StatusOut,
        **declared(Audience.PEOPLE, Permission.STUDY_CONTROL),
    )
    async def start(study_id: StudyId, request: Request, p: Caller) -> StatusOut:
        """Start a created study (invites the sites) or resume a paused one."""
        status = await run(coordinator_of(request).start, p, study_id)
        wake(request)
        return StatusOut(id=study_id, status=status)

    @app.post(
        "/v1/admin/studies/{study_id}/pause",
        response_model=StatusOut,
        **declared(Audience.PEOPLE, Permission.STUDY_CONTROL),
    )
    async def pause(study_id: StudyId, request: Request, p: Caller) -> StatusOut:
        """Pause a running study after its open round."""
        return StatusOut(id=study_id, status=await run(coordinator_of(request).pause, p, study_id))

    @app.post(
        "/v1/admin/studies/{study_id}/cancel",
        response_model=StatusOut,
        **declared(Audience.PEOPLE, Permission.STUDY_CONTROL),
    )
    async def cancel(study_id: StudyId, request: Request, p: Caller) -> StatusOut:
        """Cancel a study for good."""
        return StatusOut(id=study_id, status=await run(coordinator_of(request).cancel, p, study_id))

    @app.get("/v1/admin/studies", **declared(Audience.PEOPLE, Permission.STUDY_READ))
    async def list_studies(request: Request, _p: Caller) -> list[dict[str, Any]]:
        """Every study with its status."""
        result: list[dict[str, Any]] = await run(coordinator_of(request).list_studies)
        return result

    @app.get("/v1/admin/studies/{study_id}", **declared(Audience.PEOPLE, Permission.STUDY_READ))
    async def study_status(
        study_id: StudyId,
        request: Request,
        p: Caller,
        brief: bool = False,
        wait: Annotated[float, Query(ge=0, le=MAX_STUDY_WAIT_S)] = 0.0,
        seen: Annotated[str | None, Query(pattern="^[a-z]{1,16}$")] = None,
    ) -> dict[str, Any]:
        """Status, participation and rounds of a study; with ``brief``, its status and
        progress only (``id``, ``status``, ``current_round``, ``total_rounds``, ``error``).

        With ``wait`` (seconds) and ``seen`` (the status last seen), the request is held
        until the study's status is no longer ``seen`` or the wait (at most the
        coordinator's limit) runs out: waiting for a study to end costs one request, not a
        poll every fraction of a second. Over the bounds on held requests it is refused at
        once: 429 when the caller holds too many, 503 when the coordinator does.
        """
        co = coordinator_of(request)

        async def read_brief() -> dict[str, Any]:
            answer: dict[str, Any] = await run(co.study_brief, study_id)
            return answer

        if seen is not None and wait > 0:
            try:
                held = await co.core.studies.wait(
                    study_id,
                    read_brief,
                    caller=p.label,
                    seen=seen,
                    wait=wait,
                    disconnected=lambda: disconnect_of(request.receive),
                )
            except TooManyWaiting as exc:
                raise HTTPException(exc.status, str(exc), headers={"Retry-After": "1"}) from None
            if brief:  # the wait's last read is the answer
                return held
        if brief:
            return await read_brief()
        result: dict[str, Any] = await run(co.study_status, study_id)
        return result

    @app.get(
        "/v1/admin/studies/{study_id}/privacy", **declared(Audience.PEOPLE, Permission.LEDGER_READ)
    )
    async def privacy(study_id: StudyId, request: Request, _p: Caller) -> dict[str, Any]:
        """The study's privacy ledger."""
        result: dict[str, Any] = await run(coordinator_of(request).privacy_ledger, study_id)
        return result

    @app.get(
        "/v1/admin/studies/{study_id}/site-reports",
        **declared(Audience.PEOPLE, Permission.LEDGER_READ),
    )
    async def site_reports(study_id: StudyId, request: Request, _p: Caller) -> dict[str, Any]:
        """Each site's latest signed report, verbatim, and the identity keys the sites
        registered when they joined (``site_keys``: what to verify the reports against)."""
        result: dict[str, Any] = await run(coordinator_of(request).site_reports, study_id)
        return result

    @app.get(
        "/v1/admin/studies/{study_id}/model",
        **declared(Audience.PEOPLE, Permission.MODEL_READ, binary_response=True),
    )
    async def study_model(study_id: StudyId, request: Request, _p: Caller) -> Response:
        """The current global model (safetensors)."""
        return Response(
            await run(coordinator_of(request).final_model, study_id), media_type=SAFETENSORS
        )

    @app.get(
        "/v1/admin/studies/{study_id}/rounds/{round_no}/model",
        **declared(Audience.PEOPLE, Permission.MODEL_READ, binary_response=True),
    )
    async def round_model(
        study_id: StudyId, round_no: RoundNo, request: Request, _p: Caller
    ) -> Response:
        """The global model after one round (safetensors)."""
        return Response(
            await run(coordinator_of(request).round_model, study_id, round_no),
            media_type=SAFETENSORS,
        )

    @app.get("/v1/admin/audit", **declared(Audience.PEOPLE, Permission.AUDIT_READ))
    async def audit(
        request: Request,
        _p: Caller,
        after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        """Audit events in order (page with ``after_id``)."""
        result: list[dict[str, Any]] = await run(
            lambda: coordinator_of(request).audit_events(limit=limit, after_id=max(after_id, 0))
        )
        return result

    @app.get("/v1/admin/audit/export", **declared(Audience.PEOPLE, Permission.AUDIT_READ))
    async def audit_export(request: Request, _p: Caller) -> dict[str, Any]:
        """The tamper-evident audit log as stored, with its checkpoints and the sites'
        cosignatures (``tutela server results`` keeps them beside the results)."""
        result: dict[str, Any] = await run(_merkle_log(request).export)
        return result

    @app.get("/v1/admin/audit/proofs", **declared(Audience.PEOPLE, Permission.AUDIT_READ))
    async def audit_proofs(
        request: Request,
        _p: Caller,
        start: Annotated[int | None, Query(ge=0, le=2**62)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """Records of the tamper-evident log (default: the newest), each with its leaf and
        its inclusion proof against the latest cosigned checkpoint, for the reader to check."""
        result: dict[str, Any] = await run(_merkle_log(request).inclusion_proofs, start, limit)
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
        token = await run(coordinator_of(request).register_site, p, body.name)
        return EnrolmentTokenOut(site=body.name, enrolment_token=token)

    @app.post(
        "/v1/admin/sites/{name}/activate",
        status_code=204,
        **declared(Audience.PEOPLE, Permission.SITE_MANAGE),
    )
    async def activate_site(name: SiteName, request: Request, p: Caller) -> Response:
        """Accept a site whose certificate was issued offline."""
        await run(coordinator_of(request).activate_site, p, name)
        return Response(status_code=204)

    @app.get("/v1/admin/sites", **declared(Audience.PEOPLE, Permission.SITE_MANAGE))
    async def list_sites(request: Request, _p: Caller) -> list[dict[str, Any]]:
        """Every known site."""
        result: list[dict[str, Any]] = await run(coordinator_of(request).list_sites)
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
        token = await run(
            lambda: coordinator_of(request).create_token(body.role, body.name, actor=p.label)
        )
        return TokenOut(token=token, role=body.role, name=body.name)
