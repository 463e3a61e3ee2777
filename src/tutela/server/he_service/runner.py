"""Running an HE service: uvicorn over TLS (rotating certificate, client certificates), as
the coordinator runs (:func:`tutela.server.serve.uvicorn_config`).

A service's state directory holds what :mod:`~tutela.server.he_service.state` lists, plus
``service.port`` (the port it listens on, written once it is bound) and the audit log.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from tutela.errors import ConfigError, ServiceError
from tutela.governance._files import atomic_write, private_dir
from tutela.governance.rbac import RbacPolicy
from tutela.he.card import ModelCard
from tutela.server.authz import Role
from tutela.server.he_service.app import (
    DEFAULT_MAX_REQUEST_BYTES,
    HeAuthority,
    HeService,
    create_he_app,
)
from tutela.server.he_service.models import load_network
from tutela.server.he_service.state import ServiceState
from tutela.server.pki import PkiLayout
from tutela.server.serve import (
    AUDIT_LOG,
    MerkleAuditHook,
    ServerSettings,
    coordinator_signing_key,
    uvicorn_config,
)

__all__ = ["DEFAULT_ROW_BUDGET", "HeServeSettings", "HeServer", "build_service"]

DEFAULT_ROW_BUDGET = 1_000_000
PORT_FILE = "service.port"


@dataclass(frozen=True)
class HeServeSettings:
    """How to run one HE service.

    Attributes:
        model: a run directory or a model file.
        state_dir: stored bundles, tables, budgets and the audit log.
        pki_dir: the deployment's CA and the server certificate (``tutela pki``).
        host: bind address (loopback by default).
        port: TCP port (0: any free port, written to ``STATE/service.port``).
        policy: an RBAC policy TOML naming principals and their roles (optional).
        default_role: the role of a CA-certified caller the policy does not name (None:
            only named principals may call).
        row_budget: rows one key may have scored in all.
        max_request_bytes: the largest request body accepted.
        keyring: the governance keyring that decrypts a run's model (default: Tutela's).
    """

    model: Path
    state_dir: Path
    pki_dir: Path
    host: str = "127.0.0.1"
    port: int = 8443
    policy: Path | None = None
    default_role: Role | None = Role.DATA_SCIENTIST
    row_budget: int = DEFAULT_ROW_BUDGET
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    keyring: Path | None = None


def build_service(settings: HeServeSettings) -> tuple[HeService, bytes]:
    """Load the model, open the state and audit log; return the service and the CA PEM."""
    if settings.row_budget < 1 or settings.max_request_bytes < 1024:
        raise ValueError("the row budget must be positive and the request limit at least 1 KiB")
    network, name = load_network(settings.model, keyring=settings.keyring)
    try:
        card = ModelCard.of(network, name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    layout = PkiLayout(settings.pki_dir)
    if not layout.ca.cert.is_file():
        raise ConfigError(f"no CA certificate in {settings.pki_dir}: run `tutela pki init` first")
    private_dir(settings.state_dir)
    policy = RbacPolicy.from_toml(settings.policy) if settings.policy else RbacPolicy.default()
    hook = MerkleAuditHook(
        settings.state_dir / AUDIT_LOG, coordinator_signing_key(settings.state_dir)
    )
    authority = HeAuthority(policy, hook, settings.default_role)
    state = ServiceState(settings.state_dir, card.params, settings.row_budget)
    service = HeService(network, card, state, authority, settings.max_request_bytes)
    return service, layout.ca.cert.read_bytes()


@dataclass
class HeServer:
    """An HE service bound to a socket; :meth:`run` serves in the foreground,
    :meth:`start` on a background thread."""

    settings: HeServeSettings
    port: int = 0
    service: HeService | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _sock: socket.socket | None = field(default=None, repr=False)

    def bind(self) -> HeServer:
        """Load everything and bind the port (written to ``STATE/service.port``)."""
        service, ca_pem = build_service(self.settings)
        self.service = service
        app = create_he_app(service, ca_pem=ca_pem)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host, self.settings.port))
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        server_settings = ServerSettings(
            data_dir=self.settings.state_dir,
            pki_dir=self.settings.pki_dir,
            host=self.settings.host,
            port=self.port,
        )
        self._server = uvicorn.Server(uvicorn_config(app, server_settings, self.port))
        return self

    @property
    def url(self) -> str:
        """Base URL."""
        return f"https://{self.settings.host}:{self.port}"

    def run(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve until interrupted; ``on_ready(url)`` once listening."""
        if self._server is None or self._sock is None:
            self.bind()
        assert self._server is not None
        assert self._sock is not None
        server, sock = self._server, self._sock

        async def main() -> None:
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.02)
            if server.started:
                atomic_write(self.settings.state_dir / PORT_FILE, f"{self.port}\n".encode())
                if on_ready is not None:
                    on_ready(self.url)
            await task

        try:
            asyncio.run(main())
        finally:
            self.close()

    def start(self, timeout: float = 30.0) -> HeServer:
        """Serve on a background thread; wait until it accepts connections."""
        if self._server is None:
            self.bind()
        assert self._server is not None
        self._thread = threading.Thread(target=self.run, name="he-service", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServiceError("the HE service did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def close(self) -> None:
        """Sign the audit log's head and release the socket."""
        if self.service is not None:
            self.service.authority.audit_hook.checkpoint()
        if self._sock is not None:
            self._sock.close()
