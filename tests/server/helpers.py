"""Shared helpers for the server tests: tiny real HTTP(S) servers on 127.0.0.1:0."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(BaseHTTPRequestHandler):
    date_offset = dt.timedelta(0)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        when = dt.datetime.now(dt.UTC) + self.date_offset
        return email.utils.format_datetime(when, usegmt=True)

    def do_GET(self) -> None:
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@contextlib.contextmanager
def serve_https(
    cert: Path | None,
    key: Path | None,
    *,
    client_ca: Path | None = None,
    date_offset: dt.timedelta = dt.timedelta(0),
) -> Iterator[int]:
    """Serve a trivial HTTP(S) endpoint on 127.0.0.1; yield its port. No cert: plain HTTP."""
    handler = type("H", (_Handler,), {"date_offset": date_offset})
    server = _QuietServer(("127.0.0.1", 0), handler)
    if cert is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if client_ca is not None:
            ctx.load_verify_locations(cafile=client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
