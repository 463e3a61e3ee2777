"""TLS for the coordinator: rotating server certificates and the client's identity.

The coordinator listens with TLS. Sites present a client certificate issued by the
deployment's CA (mutual TLS); admins need none (they use bearer tokens). The server
certificate rotates without a restart: every handshake checks (one ``stat``) whether the
certificate or key file changed and, if so, serves the new pair from then on.

Security: ``CERT_OPTIONAL`` means a client certificate is *verified against the CA when
presented* (a certificate from another CA fails the handshake) and otherwise absent; the
coordinator's endpoints then decide, per permission, whether a site identity is required.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

MIN_TLS = ssl.TLSVersion.TLSv1_2

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RotatingServerContext:
    """A server ``SSLContext`` whose certificate follows the files on disk.

    Args:
        certfile: PEM certificate (chain) of the server.
        keyfile: PEM private key.
        ca_file: CA bundle that client certificates must chain to (None: no client certs).
    """

    def __init__(self, certfile: Path, keyfile: Path, ca_file: Path | None) -> None:
        self.certfile = Path(certfile)
        self.keyfile = Path(keyfile)
        self.ca_file = Path(ca_file) if ca_file is not None else None
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._current = self._build()
        self.context = self._build()
        self.context.sni_callback = self._on_client_hello
        self.reloads = 0

    def _file_stamp(self) -> tuple[int, int, int, int]:
        c = self.certfile.stat()
        k = self.keyfile.stat()
        return (c.st_mtime_ns, c.st_size, k.st_mtime_ns, k.st_size)

    def _build(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = MIN_TLS
        ctx.load_cert_chain(self.certfile, self.keyfile)
        if self.ca_file is not None:
            ctx.load_verify_locations(cafile=self.ca_file)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def reload_if_changed(self) -> bool:
        """Rebuild the serving context when the files changed; return whether it did.

        A half-written pair (new certificate, old key) fails to load; the old context then
        keeps serving and the next handshake tries again.
        """
        try:
            stamp = self._file_stamp()
        except OSError:
            return False
        if stamp == self._stamp:
            return False
        with self._lock:
            if stamp == self._stamp:
                return False
            try:
                fresh = self._build()
            except (ssl.SSLError, OSError, ValueError):
                return False
            self._current = fresh
            self._stamp = stamp
            self.reloads += 1
            return True

    def _on_client_hello(
        self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext
    ) -> None:
        self.reload_if_changed()
        sslobj.context = self._current


def client_context(
    ca_file: Path | None,
    *,
    certfile: Path | None = None,
    keyfile: Path | None = None,
) -> ssl.SSLContext:
    """A verifying client ``SSLContext`` (hostname checked), optionally with a client cert."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    ctx.minimum_version = MIN_TLS
    if certfile is not None:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


class _PeerCertApp:
    """ASGI wrapper that puts the verified client certificate into the request scope."""

    def __init__(self, app: ASGIApp, chain: list[str]) -> None:
        self.app = app
        self.chain = chain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") in ("http", "websocket"):
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_chain": list(self.chain)}
            scope["extensions"] = extensions
        await self.app(scope, receive, send)


def set_nodelay(sock: Any) -> None:
    """Turn Nagle's algorithm off on a TCP socket (a no-op for any other kind, or ``None``)."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):  # a socket already closed by the peer
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PeerCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the ASGI TLS extension's ``client_cert_chain``.

    The certificate was already verified against the CA by the TLS layer; the chain is
    exposed as PEM strings, per the ASGI TLS extension.

    Every connection gets ``TCP_NODELAY``: a response goes out as two writes (head, then
    body), and with Nagle's algorithm on the body waits for the client's delayed ACK of
    the head, about 40 ms on Linux, on every request. asyncio sets the option only on
    sockets whose ``proto`` is TCP, which a listening socket made with ``socket.socket()``
    (``proto`` 0, as handed to uvicorn by :class:`~tutela.server.serve.BackgroundServer`
    and by socket activation) is not.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport.get_extra_info("socket"))
        super().connection_made(transport)
        sslobj = transport.get_extra_info("ssl_object")
        chain: list[str] = []
        if sslobj is not None:
            der = sslobj.getpeercert(binary_form=True)
            if der:
                chain = [ssl.DER_cert_to_PEM_cert(der)]
        self.app = _PeerCertApp(self.app, chain)


def peer_certificate_pem(scope: Scope) -> str | None:
    """The verified client certificate (PEM) of this request, if any."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return str(chain[0]) if chain else None
