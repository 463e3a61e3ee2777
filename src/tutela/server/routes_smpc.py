"""The sites' SMPC session routes (``/v1/site/smpc/...``, mutual TLS).

A party joins a session with its certificate-bound session key, reads the session (the
other parties' keys, the status), posts end-to-end encrypted messages to another party for
a step, fetches those addressed to it, aborts naming a missing party, and finishes with
what it released. The logic is :class:`~tutela.server.smpc_sessions.SmpcSessions`.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from safetensors.numpy import save as st_save

from tutela.server.api import (
    MAX_BINARY_BYTES,
    SAFETENSORS,
    Caller,
    coordinator_of,
    declared,
    read_body,
    run,
)
from tutela.server.authz import Audience, Permission
from tutela.server.schemas import SiteName, SiteNameField
from tutela.server.smpc_sessions import MAX_PARTIES, MAX_SESSION_S, SmpcSessions

SessionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
StepName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
_Short = Annotated[str, Field(max_length=200)]
_Number = Annotated[float, Field(ge=-1e300, le=1e300)]
_Count = Annotated[int, Field(ge=-(2**62), le=2**62)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionKeyIn(_Model):
    """A party's session key bound to its certificate."""

    public_key: str = Field(min_length=64, max_length=64, description="X25519 key, hex.")
    certificate: str = Field(min_length=1, max_length=8192, description="Site certificate, PEM.")
    binding: str = Field(min_length=1, max_length=512, description="ECDSA binding, hex.")


class SmpcJoinIn(_Model):
    """Open or join a session."""

    function: str = Field(min_length=1, max_length=64)
    parties: list[SiteNameField] = Field(min_length=2, max_length=MAX_PARTIES)
    timeout_s: float = Field(default=600.0, gt=0, le=MAX_SESSION_S)
    key: SessionKeyIn


class SmpcAbortIn(_Model):
    """Give up on a session, naming the parties waited for in vain."""

    missing: list[SiteNameField] = Field(default_factory=list, max_length=MAX_PARTIES)
    reason: str = Field(min_length=1, max_length=500)


class SmpcFinishIn(_Model):
    """What a party released at the end of the session (for the audit record)."""

    released: dict[Annotated[str, Field(max_length=64)], _Short | _Number | _Count | None] = Field(
        max_length=64
    )


def _sessions(request: Request) -> SmpcSessions:
    sessions: SmpcSessions = coordinator_of(request).smpc
    return sessions


def add_smpc_routes(app: FastAPI) -> None:
    """Add the SMPC session routes to ``app``."""

    @app.post(
        "/v1/site/smpc/{session_id}/join", **declared(Audience.SITES, Permission.ROUND_SUBMIT)
    )
    async def smpc_join(
        session_id: SessionId, body: SmpcJoinIn, request: Request, p: Caller
    ) -> dict[str, Any]:
        """Open the session or join it with this site's certificate-bound session key."""
        view: dict[str, Any] = await run(
            lambda: _sessions(request).join(
                p.name,
                session_id,
                function=body.function,
                parties=list(body.parties),
                timeout_s=body.timeout_s,
                key=body.key.model_dump(),
            )
        )
        return view

    @app.get("/v1/site/smpc/{session_id}", **declared(Audience.SITES, Permission.ROUND_SUBMIT))
    async def smpc_view(session_id: SessionId, request: Request, p: Caller) -> dict[str, Any]:
        """The session: status, parties, their registered keys, who finished."""
        view: dict[str, Any] = await run(_sessions(request).view, p.name, session_id)
        return view

    @app.post(
        "/v1/site/smpc/{session_id}/messages/{step}/{recipient}",
        **declared(Audience.SITES, Permission.ROUND_SUBMIT, binary_body="message"),
    )
    async def smpc_post(
        session_id: SessionId, step: StepName, recipient: SiteName, request: Request, p: Caller
    ) -> dict[str, str]:
        """Relay one end-to-end encrypted message to another party."""
        body = await read_body(request, MAX_BINARY_BYTES)
        digest: str = await run(_sessions(request).post, p.name, session_id, step, recipient, body)
        return {"digest": digest}

    @app.get(
        "/v1/site/smpc/{session_id}/messages/{step}",
        **declared(Audience.SITES, Permission.ROUND_SUBMIT, binary_response=True),
    )
    async def smpc_fetch(
        session_id: SessionId, step: StepName, request: Request, p: Caller
    ) -> Response:
        """Messages addressed to this site in ``step``, as safetensors (one uint8 tensor per
        sender)."""
        messages: dict[str, bytes] = await run(_sessions(request).fetch, p.name, session_id, step)
        arrays = {sender: np.frombuffer(blob, np.uint8).copy() for sender, blob in messages.items()}
        return Response(st_save(arrays, metadata={"session": session_id}), media_type=SAFETENSORS)

    @app.post(
        "/v1/site/smpc/{session_id}/abort",
        status_code=204,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT),
    )
    async def smpc_abort(
        session_id: SessionId, body: SmpcAbortIn, request: Request, p: Caller
    ) -> Response:
        """Abort the session, naming the parties that went missing."""
        await run(
            lambda: _sessions(request).abort(
                p.name, session_id, missing=list(body.missing), reason=body.reason
            )
        )
        return Response(status_code=204)

    @app.post(
        "/v1/site/smpc/{session_id}/finish", **declared(Audience.SITES, Permission.ROUND_SUBMIT)
    )
    async def smpc_finish(
        session_id: SessionId, body: SmpcFinishIn, request: Request, p: Caller
    ) -> dict[str, str]:
        """Record what this party released; the session completes when every party has."""
        status: str = await run(_sessions(request).finish, p.name, session_id, dict(body.released))
        return {"status": status}
