"""A party's end-to-end encrypted channel to the other parties of an SMPC session.

The party joins the session (:mod:`tutela.server.smpc_sessions`) with a fresh X25519 session
key, bound to its site certificate by an ECDSA signature of its TLS key over the session id,
its name and the key (the binding of :mod:`tutela.server.agent.peers`, under the study id
``smpc-session/<session>``, which no study id can take: the coordinator makes those). Once
every party joined, it checks each peer's certificate and binding against the CA file it
holds itself, never a list the coordinator hands it; any failure refuses the session before
anything is sent.

Each pair of parties shares an AES-256-GCM key, HKDF of their X25519 agreement with the
session id as salt and both names as context. A message from ``i`` to ``j`` in step ``s`` is
sealed under that key with ``session || s || i || j`` as associated data: the coordinator
relays ciphertext it cannot read, and a message it replays into another session, step or
pair fails to open (one opaque :class:`~tutela.errors.IntegrityError`, and the session is
aborted).

Waiting for a peer has a deadline: a party still missing then is named in the abort the
waiting party records at the coordinator, and in the :class:`~tutela.errors.ProtocolAbort`
every party raises.

Security: confidentiality and integrity of party-to-party traffic against the coordinator
and anyone on the network; authenticity of each message's sender among the parties (only
the two holders of a pair key can seal under it). A party's session key lives in memory
for one session only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
from cryptography import x509
from cryptography.x509.oid import NameOID

from tutela.errors import CryptoError, IntegrityError, ProtocolAbort, TransportError
from tutela.hazmat.kex import (
    generate_x25519,
    hkdf_sha256,
    open_sealed,
    seal,
    x25519_agree,
    x25519_public_bytes,
)
from tutela.hazmat.rng import SecureRandom
from tutela.server.agent.peers import bind_identity, verify_peer
from tutela.server.agent.transport import detail
from tutela.server.tls import client_context
from tutela.server.wire import parse_tensors

__all__ = ["SmpcChannel", "SmpcEndpoint", "site_name"]


def site_name(cert_file: Path) -> str:
    """The site name a certificate carries (its common name)."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else ""
    return value if isinstance(value, str) else value.decode()


def _binding_scope(session: str) -> str:
    return f"smpc-session/{session}"


def _parts(*items: str) -> bytes:
    return b"".join(len(p.encode()).to_bytes(4, "big") + p.encode() for p in items)


@dataclass(frozen=True)
class SmpcEndpoint:
    """Where a party connects and with what.

    Attributes:
        coordinator: the coordinator's base URL.
        ca_file: the deployment CA (verifies the coordinator and every peer).
        cert_file: this site's certificate.
        key_file: its private key.
    """

    coordinator: str
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass
class SmpcChannel:
    """One party's channel in one session (see the module docstring).

    Args:
        endpoint: the coordinator and this site's credentials.
        session: the session id the parties agreed on.
        function: what the session computes (every party must name the same).
        parties: every party, in the same order at every party.
        timeout_s: the session's deadline (from its opening) and the longest this party
            waits for any peer.
        poll_interval: seconds between relay polls.
    """

    endpoint: SmpcEndpoint
    session: str
    function: str
    parties: Sequence[str]
    timeout_s: float = 600.0
    poll_interval: float = 0.05
    rng: SecureRandom | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    _pair_keys: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.site = site_name(self.endpoint.cert_file)
        if self.site not in self.parties:
            raise ValueError(f"this site ({self.site}) is not one of the parties")
        ctx = client_context(
            self.endpoint.ca_file, certfile=self.endpoint.cert_file, keyfile=self.endpoint.key_file
        )
        self._client = httpx.Client(base_url=self.endpoint.coordinator, verify=ctx, timeout=60.0)
        self._key = generate_x25519(self.rng)
        self._base = f"/v1/site/smpc/{self.session}"

    @property
    def index(self) -> int:
        """This party's position in :attr:`parties`."""
        return list(self.parties).index(self.site)

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

    def __enter__(self) -> SmpcChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        give_up = time.time() + min(self.timeout_s, 60.0)
        delay = 0.1
        while True:
            try:
                response = self._client.request(method, self._base + path, **kwargs)
            except httpx.TransportError as exc:
                if time.time() + delay > give_up:
                    raise TransportError(f"coordinator unreachable: {exc}") from None
                time.sleep(delay)
                delay = min(2 * delay, 2.0)
                continue
            if response.status_code == 409:
                raise ProtocolAbort(detail(response))
            if response.status_code >= 400:
                raise TransportError(
                    f"coordinator refused {method} {path or '/'}: "
                    f"HTTP {response.status_code}: {detail(response)}"
                )
            return response

    # -- the session -----------------------------------------------------------------------

    def open(self) -> None:
        """Join, wait for every party (aborting, naming those missing, at the deadline), then
        verify every peer's key against this site's own CA and derive the pair keys.

        Raises:
            ProtocolAbort: a party did not join in time, a peer's key failed verification,
                or the session ended.
        """
        public = x25519_public_bytes(self._key)
        bound = bind_identity(
            self.endpoint.cert_file,
            self.endpoint.key_file,
            _binding_scope(self.session),
            self.site,
            public,
        )
        body = {
            "function": self.function,
            "parties": list(self.parties),
            "timeout_s": self.timeout_s,
            "key": {"public_key": public.hex(), **bound},
        }
        view = self._request("POST", "/join", json=body).json()
        deadline = time.time() + self.timeout_s
        while set(view["members"]) != set(self.parties):
            if time.time() > deadline:
                missing = [p for p in self.parties if p not in view["members"]]
                self.abort(missing, "did not join before the deadline")
            time.sleep(self.poll_interval)
            view = self._request("GET", "").json()
            if view["status"] == "aborted":
                raise ProtocolAbort(self._aborted(view))
        ca = x509.load_pem_x509_certificate(self.endpoint.ca_file.read_bytes())
        for peer in self.parties:
            if peer == self.site:
                continue
            entry = view["members"][peer]
            try:
                key = bytes.fromhex(entry["public_key"])
                verify_peer(
                    ca,
                    _binding_scope(self.session),
                    peer,
                    key,
                    entry["certificate"],
                    bytes.fromhex(entry["binding"]),
                )
            except (ValueError, KeyError, TypeError):
                self.abort([peer], "its session key is malformed")
            except ProtocolAbort as exc:
                why = str(exc).split(": ", 1)[-1]
                self.abort([peer], f"its session key was refused: {why}")
            try:
                shared = x25519_agree(self._key, key)
            except CryptoError:
                self.abort([peer], "its session key is invalid")
            low, high = sorted((self.site, peer))
            self._pair_keys[peer] = hkdf_sha256(
                shared,
                salt=self.session.encode(),
                info=b"tutela/smpc/pair-key/v1" + _parts(self.function, low, high),
            )

    @staticmethod
    def _aborted(view: dict[str, Any]) -> str:
        outcome = view.get("outcome") or {}
        missing = ", ".join(outcome.get("missing") or []) or "nobody named"
        return f"SMPC session {view['id']} aborted: {outcome.get('reason')} (missing: {missing})"

    def abort(self, missing: Sequence[str], reason: str) -> NoReturn:
        """Record the abort at the coordinator and raise it.

        Raises:
            ProtocolAbort: always, naming ``missing``.
        """
        text = f"{', '.join(missing)}: {reason}" if missing else reason
        # the session may already be aborted, or the coordinator gone
        with contextlib.suppress(TransportError, ProtocolAbort):
            self._request("POST", "/abort", json={"missing": list(missing), "reason": text})
        raise ProtocolAbort(
            f"SMPC session {self.session} aborted: {text} (missing: {', '.join(missing) or '-'})"
        )

    def finish(self, released: dict[str, Any]) -> str:
        """Tell the coordinator what this party released (for the session's audit record)."""
        status: str = self._request("POST", "/finish", json={"released": released}).json()["status"]
        return status

    # -- messages ----------------------------------------------------------------------------

    def _aad(self, step: str, sender: str, recipient: str) -> bytes:
        return b"tutela/smpc/message/v1" + _parts(self.session, step, sender, recipient)

    def send(self, step: str, recipient: str, payload: bytes) -> None:
        """Seal ``payload`` for ``recipient`` and post it for ``step``."""
        if recipient not in self._pair_keys:
            raise ValueError(f"{recipient!r} is not a verified peer (call open() first)")
        blob = seal(self._pair_keys[recipient], payload, aad=self._aad(step, self.site, recipient))
        self._request(
            "POST",
            f"/messages/{step}/{recipient}",
            content=blob,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.bytes_sent += len(blob)

    def receive(self, step: str, sender: str) -> bytes:
        """Wait for ``sender``'s message of ``step`` and open it.

        Raises:
            ProtocolAbort: nothing came before the deadline (the abort names ``sender``),
                the session was aborted, or the message does not open.
        """
        return self.receive_all(step, [sender])[sender]

    def receive_all(self, step: str, senders: Sequence[str]) -> dict[str, bytes]:
        """Wait for one message of ``step`` from each of ``senders`` (see :meth:`receive`)."""
        deadline = time.time() + self.timeout_s
        while True:
            response = self._request("GET", f"/messages/{step}")
            arrays, _ = parse_tensors(response.content)
            if all(s in arrays for s in senders):
                break
            if time.time() > deadline:
                missing = [s for s in senders if s not in arrays]
                self.abort(missing, f"sent nothing for step {step} before the deadline")
            time.sleep(self.poll_interval)
        out = {}
        for sender in senders:
            blob = bytes(arrays[sender].tobytes())
            try:
                out[sender] = open_sealed(
                    self._pair_keys[sender], blob, aad=self._aad(step, sender, self.site)
                )
            except IntegrityError:
                self.abort([sender], f"its message for step {step} does not authenticate")
            self.bytes_received += len(blob)
        return out
