"""Bounded inputs: oversize bodies are refused while reading, before parsing; errors never
echo what was sent. Played by an anonymous caller against the real TLS coordinator."""

from __future__ import annotations

import ssl
import tracemalloc

import httpx

from tests.server.conftest import Live
from tutela.server import pki

MARKER = "tutela-marker-" + "x" * 64


def _anonymous(live: Live) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(pki.PkiLayout(live.pki_dir).ca.cert))
    return httpx.Client(base_url=live.url, verify=ctx, timeout=30.0)


def test_an_oversize_json_body_is_refused_before_it_is_read(live: Live) -> None:
    with _anonymous(live) as c:
        r = c.post(
            "/v1/admin/studies",
            content=b"{" + b" " * (64 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 413 and "exceeds" in r.json()["detail"]
    assert len(r.content) < 200


def test_a_streamed_body_without_length_is_cut_off_at_the_limit(live: Live) -> None:
    """64 MiB streamed without a Content-Length: refused at the limit, never buffered.

    The coordinator runs in this process, so Python's allocation tracer sees its buffers: the
    peak stays far below the body's size (the body would be held in full if it were parsed).
    """

    def chunks():
        for _ in range(64):
            yield b" " * (1024 * 1024)

    tracemalloc.start()
    try:
        with _anonymous(live) as c:
            try:
                r = c.post(
                    "/v1/admin/studies",
                    content=chunks(),
                    headers={"Content-Type": "application/json"},
                )
                status = r.status_code
            except httpx.TransportError:  # the server closed the connection mid-upload
                status = 413
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 413
    assert peak < 16 * 1024 * 1024, peak


def test_validation_errors_name_the_field_not_the_value(live: Live) -> None:
    with live.admin() as admin:
        r = admin.post("/v1/admin/studies", json={"config": MARKER, "deployment": {"x": MARKER}})
        assert r.status_code == 422
        assert MARKER not in r.text
        assert "config" in r.text
    with _anonymous(live) as c:
        r = c.post(
            "/v1/enrol",
            content=('{"token": 1, "csr": "' + MARKER + '"').encode(),
            headers={"Content-Type": "application/json"},
        )
        assert 400 <= r.status_code < 500 and MARKER not in r.text
