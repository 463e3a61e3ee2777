"""Run the coordinator: uvicorn over TLS with rotating certificates and mutual TLS for sites.

A coordinator's data directory holds::

    coordinator.db        SQLite store (unless --db-url points at PostgreSQL)
    keyring, keyring.key  encryption at rest for models, updates and messages
    audit.jsonl           the tamper-evident (Merkle) audit log: `tutela audit verify`
    audit.jsonl.checkpoints  its C2SP checkpoints: one when each round closes, one at shutdown
    audit.jsonl.cosigned/    checkpoints with the sites' cosignatures (sites are witnesses)
    audit-signing.key     the Ed25519 key that signs them (mode 0600); its verifier key is
                          printed at start, for auditors to pin (`tutela audit trust add`)
    audit-signing.pem     that key certified by the deployment CA (when the CA key is at
                          hand), for sites that pin it at their first run
    admin.token           the first admin's bearer token (mode 0600, written once)
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from tutela.errors import AuditError, ConfigError, DataError, ServiceError
from tutela.governance._files import atomic_write, private_dir
from tutela.governance.audit import (
    AuditLog,
    Checkpoint,
    VerifierKey,
    generate_signing_key,
    load_signing_key,
)
from tutela.governance.witness import (
    Cosignature,
    cosigned_path,
    load_cosigned,
    with_cosignature,
    witness_name,
)
from tutela.server.app import create_app
from tutela.server.audit_key import AUDIT_KEY_CERT, ensure_audit_certificate
from tutela.server.authz import Role
from tutela.server.coordinator import Coordinator
from tutela.server.core import AuditEvent, NotFoundError
from tutela.server.pki import PkiLayout, load_ca, load_cert, sign_csr
from tutela.server.sealing import open_sealer
from tutela.server.store import Store, TokenRow, sqlite_url
from tutela.server.tls import PeerCertH11Protocol, RotatingServerContext


@dataclass(frozen=True)
class ServerSettings:
    """How to run one coordinator.

    Attributes:
        data_dir: store, keyring and bootstrap token.
        pki_dir: CA and server certificate (None: plain HTTP, for tests behind a proxy only).
        host: bind address (loopback by default).
        port: TCP port (0: any free port).
        db_url: SQLAlchemy URL (default: SQLite in ``data_dir``).
        sign_enrolments: sign site CSRs with the CA key in ``pki_dir`` (token enrolment).
        tick_interval: seconds between checks of deadlines.
    """

    data_dir: Path
    pki_dir: Path | None
    host: str = "127.0.0.1"
    port: int = 8443
    db_url: str | None = None
    sign_enrolments: bool = True
    tick_interval: float = 0.25


def build_coordinator(settings: ServerSettings) -> tuple[Coordinator, bytes | None]:
    """Open the store and build the coordinator (and the CA PEM sites should trust)."""
    private_dir(settings.data_dir)
    url = settings.db_url or sqlite_url(settings.data_dir / "coordinator.db")
    store = Store(url, open_sealer(settings.data_dir / "keyring"))
    signer = None
    ca_pem = None
    if settings.pki_dir is not None:
        layout = PkiLayout(settings.pki_dir)
        ca_pem = layout.ca.cert.read_bytes()
        if settings.sign_enrolments and layout.ca.key.exists():
            pki_dir = settings.pki_dir

            def signer(csr: bytes, site: str) -> bytes:
                from tutela.server.pki import cert_to_pem

                ca_cert, ca_key = load_ca(pki_dir)
                return cert_to_pem(sign_csr(ca_cert, ca_key, csr, site=site))

    hook = MerkleAuditHook(
        settings.data_dir / AUDIT_LOG, coordinator_signing_key(settings.data_dir)
    )
    if signer is not None and settings.pki_dir is not None:
        hook.certificate = ensure_audit_certificate(
            settings.data_dir / AUDIT_KEY_CERT,
            coordinator_signing_key(settings.data_dir),
            *load_ca(settings.pki_dir),
        )
    return Coordinator(store, signer=signer, audit_hook=hook, advance_on_submit=True), ca_pem


AUDIT_LOG = "audit.jsonl"
AUDIT_SIGNING_KEY = "audit-signing.key"
COSIGNED_DIR = AUDIT_LOG + ".cosigned"
"""Beside the audit log: each checkpoint the sites cosigned, with their cosignatures."""


def coordinator_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """The coordinator's checkpoint-signing key in ``data_dir``, created (0600) on first use."""
    path = data_dir / AUDIT_SIGNING_KEY
    if path.exists():
        return load_signing_key(path)
    return generate_signing_key(path)


def coordinator_verifier_key(data_dir: Path) -> VerifierKey:
    """The verifier key (fingerprint) auditors pin for the coordinator's audit log."""
    return VerifierKey.of(coordinator_signing_key(data_dir))


class MerkleAuditHook:
    """Appends every coordinator audit event to the governance Merkle log at ``path`` and
    signs its tree head on request (each closed round, shutdown, a witness asking).

    Sites are its witnesses: :meth:`witness_view` hands one the latest checkpoint and a
    consistency proof from the last one it saw, and :meth:`add_cosignature` keeps its
    cosignature beside the checkpoint (``audit.jsonl.cosigned/``).

    Security: the checkpoints are only as good as the pinning of the key; a coordinator that
    cuts its log back to an earlier checkpoint is caught by whoever holds a later one, and
    the sites hold every checkpoint they cosigned. Cosignatures are kept as sent (each site
    under its own witness name only); auditors verify them under the witness keys they pinned.
    """

    def __init__(self, path: Path, signing_key: Ed25519PrivateKey) -> None:
        self.path = path
        self._log = AuditLog.open(path)
        self._key = signing_key
        self._lock = threading.Lock()
        stored = self._log.checkpoints()
        self._signed_size = stored[-1].size if stored else -1
        self._issued: dict[str, Checkpoint] = {cp.body(): cp for cp in stored}
        self._latest = stored[-1] if stored else None
        self.cosigned_dir = path.with_name(path.name + ".cosigned")
        self.certificate: bytes | None = None
        """The signing key's certificate by the deployment CA (PEM), if there is one."""

    def __call__(
        self, actor: str, action: str, resource: str, outcome: str, detail: dict[str, Any]
    ) -> None:
        with self._lock:
            self._log.append(actor, action, resource, outcome, detail)

    def append_many(self, events: list[AuditEvent]) -> None:
        """Append several events in order, in one write of the log."""
        with self._lock, self._log.batch():
            for actor, action, resource, outcome, detail in events:
                self._log.append(actor, action, resource, outcome, detail)

    def checkpoint(self) -> Checkpoint | None:
        """Sign and store a checkpoint of the log; None if nothing was added since the last."""
        with self._lock:
            return self._sign()

    def _sign(self) -> Checkpoint | None:
        if self._log.size == self._signed_size:
            return None
        cp = self._log.checkpoint(self._key)
        self._signed_size = cp.size
        self._issued[cp.body()] = self._latest = cp
        return cp

    def witness_view(self, from_size: int) -> tuple[Checkpoint, list[bytes]]:
        """The latest checkpoint (signed now if the log grew since the last) and the RFC 9162
        consistency proof from size ``from_size`` to it (empty when there is none to give:
        ``from_size`` 0, the same size, or larger than the log)."""
        with self._lock:
            self._sign()
            latest = self._latest
            assert latest is not None  # _sign() signs a log that was never checkpointed
            proof: list[bytes] = []
            if 0 < from_size < latest.size:
                proof = list(self._log.prove_consistency(from_size, latest.size).path)
            return latest, proof

    def export(self) -> dict[str, Any]:
        """The whole log as stored, for an auditor to keep: ``log`` (the JSON-lines file,
        exactly the records the ``checkpoint`` covers, which is signed now if the log grew),
        ``checkpoints`` (every checkpoint issued, signed notes), ``cosigned`` (file name ->
        the cosigned checkpoint note) and ``audit_key`` (the verifier key, which an auditor
        compares with the one pinned out of band, never trusts from here)."""
        with self._lock:
            self._sign()
            latest = self._latest
            assert latest is not None  # _sign() signs a log that was never checkpointed
            with self.path.open("r", encoding="utf-8") as handle:
                lines = [handle.readline() for _ in range(latest.size + 1)]
            checkpoints = [cp.encode() for cp in self._log.checkpoints()]
            cosigned = (
                {
                    cosigned_path(self.cosigned_dir, cp).name: cp.encode()
                    for cp in load_cosigned(self.cosigned_dir)
                }
                if self.cosigned_dir.is_dir()
                else {}
            )
        return {
            "log": "".join(lines),
            "size": latest.size,
            "checkpoint": latest.encode(),
            "checkpoints": checkpoints,
            "cosigned": cosigned,
            "audit_key": VerifierKey.of(self._key).encode(),
        }

    def inclusion_proofs(self, start: int | None, limit: int) -> dict[str, Any]:
        """Records ``start`` to ``start + limit`` of the log as stored (``None``: the newest
        ``limit``), each with its leaf
        (the canonical bytes its hash covers, rebuilt from the stored fields) and its RFC 9162
        inclusion proof against the latest checkpoint the sites cosigned (else the latest
        signed one), so a reader checks each record on its own: a record edited in the store
        no longer hashes into the signed root. Records the checkpoint does not cover yet come
        without a proof (``pending``).

        Security: the proofs are built from the stored leaf hashes, the leaf from the stored
        fields; neither is trusted: the check is the reader's, against the signed root.
        """
        with self._lock:
            cosigned = load_cosigned(self.cosigned_dir) if self.cosigned_dir.is_dir() else []
            anchor = cosigned[-1] if cosigned else self._latest
            if start is None:
                start = max(0, self._log.size - limit)
            records = list(self._log.records(start, start + limit))
            size = anchor.size if anchor is not None else 0
        out = []
        for record in records:
            entry: dict[str, Any] = {**record.to_json(), "leaf": record.leaf().decode("utf-8")}
            if record.index < size:
                proof = self._log.prove_inclusion(record.index, size).path
                entry["proof"] = [p.hex() for p in proof]
            out.append(entry)
        return {
            "checkpoint": None
            if anchor is None
            else {
                "size": anchor.size,
                "root": anchor.root.hex(),
                "origin": anchor.origin,
                "cosigned": bool(cosigned),
                "signed_by": list(anchor.signer_names),
            },
            "log_size": self._log.size,
            "records": out,
        }

    def add_cosignature(self, site: str, body: str, line: str) -> Checkpoint:
        """Keep ``site``'s cosignature line of the issued checkpoint whose note body is
        ``body`` (replacing that site's earlier one); returns the cosigned checkpoint.

        Raises:
            DataError: a malformed line, or one under another name than the site's own.
            NotFoundError: this coordinator issued no checkpoint with that body.
        """
        try:
            cosignature = Cosignature.parse_line(line)
        except ValueError as exc:
            raise DataError(f"malformed cosignature: {exc}") from None
        if cosignature.name != witness_name(site):
            raise DataError(f"site {site} cosigns under the name {witness_name(site)} only")
        with self._lock:
            issued = self._issued.get(body)
            if issued is None:
                raise NotFoundError("no checkpoint this coordinator issued has that body")
            path = cosigned_path(self.cosigned_dir, issued)
            current = Checkpoint.load(path) if path.exists() else issued
            try:
                updated = with_cosignature(current, cosignature)
            except AuditError as exc:
                raise DataError(str(exc)) from None
            private_dir(self.cosigned_dir)
            updated.save(path)
            return updated


def bootstrap_admin(coordinator: Coordinator, data_dir: Path) -> str | None:
    """Create the first admin token if the store has none; write it to ``admin.token``."""
    from sqlalchemy import select

    with coordinator.store.read() as s:
        exists = s.scalar(select(TokenRow.id).where(TokenRow.role == Role.ADMIN.value).limit(1))
    if exists is not None:
        return None
    token = coordinator.create_token(Role.ADMIN, "admin", actor="bootstrap")
    atomic_write(data_dir / "admin.token", (token + "\n").encode("utf-8"))  # mode 0600
    return token


def uvicorn_config(
    app: FastAPI, settings: ServerSettings, sock_port: int | None = None
) -> uvicorn.Config:
    """A uvicorn config with TLS (rotating certificate, optional client certificates)."""
    kwargs: dict[str, object] = {}
    if settings.pki_dir is not None:
        layout = PkiLayout(settings.pki_dir)
        if not layout.server.cert.exists():
            raise ConfigError(
                f"no server certificate in {settings.pki_dir}: "
                "run `tutela pki issue --server` first"
            )
        load_cert(layout.server.cert)
        rotating = RotatingServerContext(layout.server.cert, layout.server.key, layout.ca.cert)
        kwargs["ssl_context_factory"] = lambda _config, _default: rotating.context
    return uvicorn.Config(
        app,
        host=settings.host,
        port=sock_port if sock_port is not None else settings.port,
        http=PeerCertH11Protocol,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        limit_concurrency=2048,
        backlog=2048,
        **kwargs,  # type: ignore[arg-type]
    )


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (like ``MALLOC_ARENA_MAX``) before worker threads start.

    Request handlers run on a thread pool and allocate model-sized buffers; with one arena
    per thread, freed memory fragments across arenas and RSS creeps up round after round.
    Returns False where glibc is not available (the call is then a no-op).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(-8, arenas))  # M_ARENA_MAX
    except (OSError, AttributeError):
        return False


def serve(settings: ServerSettings) -> None:
    """Run the coordinator in the foreground until interrupted."""
    limit_malloc_arenas()
    coordinator, ca_pem = build_coordinator(settings)
    bootstrap_admin(coordinator, settings.data_dir)
    coordinator.resume()
    app = create_app(coordinator, ca_pem=ca_pem, tick_interval=settings.tick_interval)
    server = uvicorn.Server(uvicorn_config(app, settings))
    try:
        server.run()
    finally:
        coordinator.core.checkpoint_audit()  # the log at shutdown, signed


@dataclass
class BackgroundServer:
    """A coordinator on a background thread (tests, benchmarks, the loopback demo)."""

    settings: ServerSettings
    coordinator: Coordinator | None = None
    port: int = 0
    admin_token: str | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _sock: socket.socket | None = field(default=None, repr=False)

    def start(self, timeout: float = 20.0) -> BackgroundServer:
        """Start and wait until it accepts connections."""
        coordinator, ca_pem = build_coordinator(self.settings)
        self.coordinator = coordinator
        self.admin_token = bootstrap_admin(coordinator, self.settings.data_dir)
        coordinator.resume()
        app = create_app(coordinator, ca_pem=ca_pem, tick_interval=self.settings.tick_interval)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host, self.settings.port))
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        config = uvicorn_config(app, self.settings, self.port)
        self._server = uvicorn.Server(config)

        def run() -> None:
            assert self._server is not None
            asyncio.run(self._server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=run, name="coordinator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServiceError("the coordinator did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        """Base URL."""
        scheme = "https" if self.settings.pki_dir is not None else "http"
        return f"{scheme}://{self.settings.host}:{self.port}"

    def stop(self) -> None:
        """Stop serving and release the store."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.coordinator is not None:
            self.coordinator.core.checkpoint_audit()  # the log at shutdown, signed
            self.coordinator.store.close()
        if self._sock is not None:
            self._sock.close()
