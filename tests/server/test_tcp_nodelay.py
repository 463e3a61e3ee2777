"""Every coordinator connection has Nagle's algorithm off (``TCP_NODELAY``).

A response leaves uvicorn as two writes (head, then body); with Nagle on, the body waits for
the client's delayed ACK of the head (about 40 ms on Linux) on every request, which made a
round of the loopback demo's hundred requests take seconds. asyncio turns the option on only
for sockets whose ``proto`` is TCP, and the listening socket the background server hands to
uvicorn is made with ``socket.socket()`` (``proto`` 0), so the protocol has to do it.
The tests read the option from the server's own accepted sockets, not from timings.
"""

from __future__ import annotations

import socket

from tests.server.conftest import Live
from tutela.server.tls import set_nodelay


def _nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_socket_made_without_a_protocol_number_gets_nodelay() -> None:
    with socket.socket() as listener:  # proto 0, as BackgroundServer makes it
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as _client:
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.proto == 0
                assert _nodelay(accepted) == 0  # what asyncio would leave it at
                set_nodelay(accepted)
                assert _nodelay(accepted) != 0


def test_set_nodelay_ignores_what_is_not_tcp() -> None:
    set_nodelay(None)
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        set_nodelay(left)  # no TCP options on a Unix socket: no error, nothing set


def test_every_connection_the_coordinator_accepts_has_nodelay(live: Live) -> None:
    server = live.server._server  # the uvicorn server behind the background coordinator
    assert server is not None
    with live.admin() as admin:  # TLS, keep-alive: the connection stays open
        assert admin.get("/health").status_code == 200
        assert admin.get("/v1/admin/sites").status_code == 200
        connections = list(server.server_state.connections)
        assert connections
        for protocol in connections:
            sock = protocol.transport.get_extra_info("socket")
            assert sock.proto == 0  # asyncio's own nodelay skipped this socket
            assert _nodelay(sock) != 0
