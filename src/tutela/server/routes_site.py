"""The sites' side of the coordinator's HTTP API (``/v1/site/...``, mutual TLS), and
enrolment (``/v1/enrol``), which exchanges a one-time token and a CSR for a certificate.

Sites ask for their tasks (long polling, :mod:`~tutela.server.push`), fetch the global
model, submit updates and protocol messages as binary safetensors bodies, relay opaque
messages to each other, report metrics, and send their signed site reports (the policy
they enforced and their own ledger summary).

Sites also witness the coordinator's audit log (:mod:`tutela.governance.witness`): they fetch
its latest checkpoint with a consistency proof (``GET /v1/site/audit/checkpoint``) and post
their cosignature back (``POST /v1/site/audit/cosignature``), each under its own name only.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, runtime_checkable

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.numpy import save as st_save

from tutela.errors import DataError
from tutela.fl.client import FeatureMoments
from tutela.governance.checkpoint import Checkpoint
from tutela.server.api import (
    MAX_BINARY_BYTES,
    SAFETENSORS,
    Caller,
    IdemKey,
    app_state,
    coordinator_of,
    declared,
    read_body,
    run,
    wake,
)
from tutela.server.authz import Audience, Permission
from tutela.server.core import NotFoundError, Receipt
from tutela.server.inbox import MAX_SITE_REPORT_BYTES
from tutela.server.push import TooManyWaiting, disconnect_of
from tutela.server.schemas import (
    EnrolIn,
    EnrolOut,
    MetricsIn,
    ParticipationIn,
    ParticipationOut,
    ReceiptOut,
    RoundNo,
    SiteName,
    SiteReportIn,
    StageName,
    StageReceiptOut,
    StudyId,
)

_log = logging.getLogger(__name__)

MAX_WAIT_S = 300.0
"""Largest ``wait`` a site may ask for (the coordinator holds at most its own limit)."""

MAX_COSIGNATURE_BYTES = 16 * 1024
"""Largest cosignature body (a checkpoint body and one signature line)."""


@runtime_checkable
class WitnessedLog(Protocol):
    """An audit hook whose checkpoints sites can witness (see ``serve.MerkleAuditHook``)."""

    certificate: bytes | None
    """The audit key's certificate by the deployment CA (PEM), if there is one."""

    def witness_view(self, from_size: int) -> tuple[Checkpoint, list[bytes]]:
        """The latest checkpoint and a consistency proof from ``from_size``."""

    def add_cosignature(self, site: str, body: str, line: str) -> Checkpoint:
        """Keep ``site``'s cosignature of the checkpoint with note body ``body``."""


class WitnessViewOut(BaseModel):
    """The coordinator's latest audit checkpoint and the consistency proof a witness asked for."""

    checkpoint: str = Field(description="C2SP signed checkpoint note.")
    proof: list[str] = Field(description="RFC 9162 consistency proof, base64 hashes.")


class AuditKeyOut(BaseModel):
    """The coordinator's audit-signing key as the deployment CA certified it."""

    certificate_pem: str = Field(description="X.509 certificate of the Ed25519 audit key.")


class CosignatureIn(BaseModel):
    """A site's cosignature of one checkpoint the coordinator issued."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str = Field(max_length=4096, description="The cosigned checkpoint's note body.")
    cosignature: str = Field(max_length=1024, description="The cosignature/v1 line.")


def _witnessed(request: Request) -> WitnessedLog:
    hook = coordinator_of(request).core.audit_hook
    if not isinstance(hook, WitnessedLog):
        raise NotFoundError("this coordinator keeps no witnessed audit log")
    return hook


Wait = Annotated[float, Query(ge=0, le=MAX_WAIT_S)]
"""How long the coordinator may hold the request for news (seconds; 0: answer at once)."""

Seen = Annotated[str | None, Query(pattern="^[0-9a-f]{32}$")]
"""The ``version`` of the tasks answer the site last acted on."""


async def _site_tasks(
    request: Request,
    site: str,
    seen: str | None,
    wait: float,
    opening: Callable[[Callable[[], None]], Awaitable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """``site``'s tasks answer, held (long polling) until it is news to ``seen`` or ``wait``
    runs out (:meth:`~tutela.server.push.TaskBell.long_poll`, with its ``opening``).

    Raises:
        TooManyWaiting: over a bound on held requests (nothing was held).
    """
    coordinator = coordinator_of(request)

    async def compute() -> dict[str, Any]:
        result: dict[str, Any] = await run(coordinator.tasks_for, site)
        return result

    return await coordinator.core.bell.long_poll(
        site,
        compute,
        seen=seen,
        wait=wait,
        disconnected=lambda: disconnect_of(request.receive),
        opening=opening,
    )


def _json_body(kwargs: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """Document a JSON body that the route reads itself (bounded, kept byte for byte)."""
    kwargs["openapi_extra"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": model.model_json_schema()}},
    }
    return kwargs


def add_site_routes(app: FastAPI) -> None:
    """Add the sites' routes and enrolment to ``app``."""

    # enrolment
    @app.post(
        "/v1/enrol", response_model=EnrolOut, **declared(Audience.ANYONE, Permission.SITE_ENROLL)
    )
    async def enrol(body: EnrolIn, request: Request, _p: Caller) -> EnrolOut:
        """Exchange a one-time enrolment token and a CSR for a site certificate."""
        cert = await run(coordinator_of(request).enrol, body.token, body.csr_pem.encode())
        ca = app_state(request).ca_pem
        return EnrolOut(certificate_pem=cert.decode(), ca_pem=ca.decode() if ca else None)

    # site API
    @app.get("/v1/site/tasks", **declared(Audience.SITES, Permission.ROUND_SUBMIT))
    async def tasks(
        request: Request, p: Caller, wait: Wait = 0.0, seen: Seen = None
    ) -> dict[str, Any]:
        """What this site should do now, the status of its studies, and the answer's
        ``version``.

        Long polling: with ``wait`` (seconds) and ``seen`` (the version last acted on), the
        request is held until the answer differs from ``seen`` or the wait (at most the
        coordinator's limit) runs out. Over the bound on held requests it is refused at
        once: 429 when this site holds too many, 503 when the coordinator does.
        """
        try:
            return await _site_tasks(request, p.name, seen, wait)
        except TooManyWaiting as exc:
            raise HTTPException(exc.status, str(exc), headers={"Retry-After": "1"}) from None

    @app.get(
        "/v1/site/studies/{study_id}/model",
        **declared(Audience.SITES, Permission.ROUND_SUBMIT, binary_response=True),
    )
    async def site_model(study_id: StudyId, request: Request, p: Caller) -> Response:
        """The current global model (safetensors)."""
        return Response(
            await run(coordinator_of(request).model_for_site, p.name, study_id),
            media_type=SAFETENSORS,
        )

    @app.post(
        "/v1/site/studies/{study_id}/participation",
        response_model=ParticipationOut,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT),
    )
    async def participate(
        study_id: StudyId, body: ParticipationIn, request: Request, p: Caller
    ) -> ParticipationOut:
        """Accept (with what the study's standardisation takes: exact feature moments, a
        noised moment vector, or none) or refuse (with the reason) a study invitation."""
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
        if body.noised is not None and not all(np.isfinite(body.noised)):
            raise DataError("noised must be finite")
        status = await run(
            lambda: coordinator_of(request).answer_invitation(
                p.name,
                study_id,
                accept=body.accept,
                reason=body.reason,
                num_examples=body.num_examples,
                moments=moments,
                identity=body.identity,
                certificate=body.certificate,
                binding=body.binding,
                noised=body.noised,
            )
        )
        wake(request)
        return ParticipationOut(study_id=study_id, site=p.name, status=status)

    @app.post(
        "/v1/site/studies/{study_id}/rounds/{round_no}/stages/{stage}",
        response_model=StageReceiptOut,
        response_model_exclude_none=True,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT, binary_body="submission"),
    )
    async def submit(
        study_id: StudyId,
        round_no: RoundNo,
        stage: StageName,
        request: Request,
        p: Caller,
        key: IdemKey,
        wait: Wait = 0.0,
        seen: Seen = None,
    ) -> StageReceiptOut:
        """Submit this site's message for a round stage (safetensors; exactly once per key).

        With ``wait`` and ``seen`` (the version of the tasks answer the submission answers),
        the receipt also carries the site's next tasks answer (``next_tasks``), held as
        ``GET /v1/site/tasks`` holds it: the site needs no separate request to learn of the
        next stage. The submission is accepted before anything is held; over the bound on
        held requests the receipt comes back at once without ``next_tasks``.
        """
        body = await read_body(request, MAX_BINARY_BYTES)
        coordinator = coordinator_of(request)
        if seen is not None and wait > 0:
            accepted: list[Receipt] = []
            pending = [body]  # given up once submitted: a held request keeps no body
            del body
            loop = asyncio.get_running_loop()

            def submit_then_read(clear: Callable[[], None]) -> dict[str, Any]:
                data = pending.pop()
                receipt = coordinator.submit(p.name, study_id, round_no, stage, key, data)
                accepted.append(receipt)
                del data
                if receipt.driver_due:  # not advanced with the submission (see Inbox)
                    loop.call_soon_threadsafe(wake, request)
                clear()  # the rings of this submission are no news to this site
                answer: dict[str, Any] = coordinator.tasks_for(p.name)
                return answer

            async def opening(clear: Callable[[], None]) -> dict[str, Any]:
                answer: dict[str, Any] = await run(submit_then_read, clear)
                return answer

            try:  # held first, so that no ring after the submission is lost
                answer = await _site_tasks(request, p.name, seen, wait, opening=opening)
            except TooManyWaiting:  # over the bound: nothing was held or submitted yet
                body = pending.pop()
            except Exception:
                if not accepted:
                    raise  # the submission itself was refused
                # accepted: the receipt stands; the site asks for its tasks itself
                _log.warning("the next tasks of %s were not read", p.name, exc_info=True)
                return StageReceiptOut(**accepted[0].as_dict())
            else:
                return StageReceiptOut(**accepted[0].as_dict(), next_tasks=answer)
        receipt = await run(coordinator.submit, p.name, study_id, round_no, stage, key, body)
        if receipt.driver_due:
            wake(request)
        return StageReceiptOut(**receipt.as_dict())

    @app.post(
        "/v1/site/studies/{study_id}/rounds/{round_no}/relay/{stage}/{recipient}",
        response_model=ReceiptOut,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT, binary_body="message"),
    )
    async def relay_post(
        study_id: StudyId,
        round_no: RoundNo,
        stage: StageName,
        recipient: SiteName,
        request: Request,
        p: Caller,
        key: IdemKey,
    ) -> ReceiptOut:
        """Send an opaque message to another participant of the round."""
        body = await read_body(request, MAX_BINARY_BYTES)
        receipt = await run(
            coordinator_of(request).relay_post,
            p.name,
            study_id,
            round_no,
            stage,
            recipient,
            key,
            body,
        )
        return ReceiptOut(**receipt.as_dict())

    @app.get(
        "/v1/site/studies/{study_id}/rounds/{round_no}/relay/{stage}",
        **declared(Audience.SITES, Permission.ROUND_SUBMIT, binary_response=True),
    )
    async def relay_get(
        study_id: StudyId, round_no: RoundNo, stage: StageName, request: Request, p: Caller
    ) -> Response:
        """Messages addressed to this site, as safetensors (one uint8 tensor per sender)."""
        messages: dict[str, bytes] = await run(
            coordinator_of(request).relay_fetch, p.name, study_id, round_no, stage
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
        study_id: StudyId, round_no: RoundNo, body: MetricsIn, request: Request, p: Caller
    ) -> Response:
        """Report this site's metrics for a round."""
        await run(coordinator_of(request).report_metrics, p.name, study_id, round_no, body.metrics)
        return Response(status_code=204)

    @app.post(
        "/v1/site/studies/{study_id}/site-report",
        response_model=ReceiptOut,
        **_json_body(declared(Audience.SITES, Permission.ROUND_SUBMIT), SiteReportIn),
    )
    async def site_report(study_id: StudyId, request: Request, p: Caller) -> ReceiptOut:
        """Send this site's signed report (JSON, stored verbatim; a resend is kept once).

        It must name this site and verify under the identity key the site registered when
        it joined the study.
        """
        body = await read_body(request, MAX_SITE_REPORT_BYTES)
        try:
            SiteReportIn.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise DataError(f"malformed site report: {where}: {first['msg']}") from None
        receipt = await run(coordinator_of(request).report_site, p.name, study_id, body)
        return ReceiptOut(**receipt.as_dict())

    # witnesses of the audit log
    @app.get(
        "/v1/site/audit/key",
        response_model=AuditKeyOut,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT),
    )
    async def audit_key(request: Request, _p: Caller) -> AuditKeyOut:
        """The audit-signing key's certificate by the deployment CA (a site that was given
        no key pins this one, after checking it against the CA it holds)."""
        pem = _witnessed(request).certificate
        if pem is None:
            raise NotFoundError("this coordinator has no CA-certified audit key")
        return AuditKeyOut(certificate_pem=pem.decode("ascii"))

    @app.get(
        "/v1/site/audit/checkpoint",
        response_model=WitnessViewOut,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT),
    )
    async def audit_checkpoint(
        request: Request,
        _p: Caller,
        from_size: Annotated[int, Query(ge=0, le=2**62)] = 0,
    ) -> WitnessViewOut:
        """The audit log's latest checkpoint (signed now if the log grew) and a consistency
        proof from the size the site last cosigned."""
        checkpoint, proof = await run(_witnessed(request).witness_view, from_size)
        return WitnessViewOut(
            checkpoint=checkpoint.encode(),
            proof=[base64.b64encode(h).decode("ascii") for h in proof],
        )

    @app.post(
        "/v1/site/audit/cosignature",
        status_code=204,
        **_json_body(declared(Audience.SITES, Permission.ROUND_SUBMIT), CosignatureIn),
    )
    async def audit_cosignature(request: Request, p: Caller) -> Response:
        """Keep this site's cosignature beside the checkpoint it cosigned (its own name only)."""
        body = await read_body(request, MAX_COSIGNATURE_BYTES)
        try:
            cosigned = CosignatureIn.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise DataError(f"malformed cosignature: {where}: {first['msg']}") from None
        witnessed = _witnessed(request)
        await run(witnessed.add_cosignature, p.name, cosigned.checkpoint, cosigned.cosignature)
        return Response(status_code=204)
