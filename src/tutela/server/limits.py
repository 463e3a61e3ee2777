"""Bounded request bodies, enforced while reading and before any parsing.

:class:`BodyLimit` is plain ASGI middleware in front of every route: a request whose declared
``Content-Length`` is over the limit is answered 413 without reading a byte of its body; a
body streamed without a length is counted as it arrives and refused (413) the moment it
passes the limit. JSON bodies get a small limit (they carry configs and answers, never
tensors); binary bodies (safetensors updates and models, sealed relay blobs) a larger one,
which routes narrow further with their own limits.

Error bodies never echo what the caller sent: a validation error names the field and the
problem, not the value (:func:`validation_error`).

Security: bounds memory per request for anonymous callers (authentication happens after the
body is read by FastAPI's dependency resolution for JSON routes).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tutela.errors import TutelaError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_BODY_LIMIT = 1 * 1024 * 1024
BINARY_BODY_LIMIT = 256 * 1024 * 1024
BINARY_TYPES = (b"application/octet-stream",)


class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its limit (an HTTPException, so
    the framework's body parsing passes it on as a 413 instead of a parse error)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body exceeds the {limit} byte limit")


class BodyLimit:
    """ASGI middleware refusing oversize request bodies before they are parsed.

    Args:
        app: the application.
        json_limit: bytes allowed for any body that is not a binary upload.
        binary_limit: bytes allowed for ``application/octet-stream`` bodies.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        json_limit: int = JSON_BODY_LIMIT,
        binary_limit: int = BINARY_BODY_LIMIT,
    ) -> None:
        self.app = app
        self.json_limit = json_limit
        self.binary_limit = binary_limit

    def limit_for(self, content_type: bytes) -> int:
        kind = content_type.split(b";", 1)[0].strip().lower()
        return self.binary_limit if kind in BINARY_TYPES else self.json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        limit = self.limit_for(headers.get(b"content-type", b""))
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or len(length) > 20:
                await _refuse(send, 400, "invalid Content-Length header")
                return
            if int(length) > limit:
                await _refuse(send, 413, f"body of {int(length)} bytes exceeds the {limit} limit")
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _refuse(send, 413, f"body exceeds the {limit} byte limit")


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 naming each invalid field and the problem, never the value that was sent."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", ""))[:200]}
        for e in errors[:20]
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def error_response(status: int, message: str) -> JSONResponse:
    """``{"detail": message}`` with ``status``."""
    return JSONResponse({"detail": message}, status_code=status)


def register_errors(
    app: FastAPI, statuses: Sequence[tuple[type[Exception], int]], *, bearer: bool = False
) -> None:
    """Answer each exception type with its status and its own message (one line, never the
    request); any other Tutela error or ``ValueError`` is a 400, and a validation error a
    422 naming the fields (:func:`validation_error`). With ``bearer``, a 401 tells the client
    to authenticate with a bearer token (``WWW-Authenticate``)."""
    for exc_type, status in statuses:

        def handler(_request: Request, exc: Exception, status: int = status) -> JSONResponse:
            response = error_response(status, str(exc) or type(exc).__name__)
            if bearer and status == 401:
                response.headers["WWW-Authenticate"] = "Bearer"
            return response

        app.add_exception_handler(exc_type, handler)

    def fallback(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(400, str(exc) or type(exc).__name__)

    app.add_exception_handler(TutelaError, fallback)
    app.add_exception_handler(ValueError, fallback)
    app.add_exception_handler(RequestValidationError, validation_error)
