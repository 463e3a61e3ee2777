"""The site as a witness of the coordinator's audit log (:mod:`tutela.governance.witness`).

As rounds go by (at most every ``witness_interval_s``), when its studies end and before it
stops, the agent fetches the coordinator's latest checkpoint and a consistency proof from
the last checkpoint it cosigned, checks the coordinator's signature under the audit key it
pinned, checks the proof, cosigns (C2SP tlog-cosignature) and posts the cosignature back.
Its state lives in ``STATE_DIR/witness`` (see
:class:`~tutela.governance.witness.Witness`): the pinned audit key, every checkpoint it
cosigned, and the evidence of any refusal. Its cosigning key is ``STATE_DIR/witness.key``
(mode 0600); the public key auditors pin is written to ``STATE_DIR/witness/witness.vkey``.

The audit key is pinned once, at the site's first run: from the operator (``tutela site run
--audit-key``, the key ``tutela server start`` prints, compared out of band) or, when the
operator gave none, from the certificate the deployment CA issued for it
(:mod:`tutela.server.audit_key`), checked against the CA file the site holds. It is never
taken from the coordinator's word alone, and never replaced: a coordinator that later signs
with another key is refused.

Security:
    A coordinator that rewrites, truncates or forks its log, or signs with another key,
    gets no cosignature from this site: the site records the evidence and stops taking part
    (:class:`~tutela.governance.witness.WitnessRefusal`). The site vouches only for the
    checkpoints it was shown; it cannot tell whether records were made up before it first
    looked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.errors import AuditError, ConfigError, TransportError
from tutela.governance._files import atomic_write
from tutela.governance.audit import generate_signing_key, load_signing_key
from tutela.governance.checkpoint import COSIGNATURE_V1, Checkpoint, VerifierKey
from tutela.governance.witness import Cosignature, Witness, decode_proof, witness_name
from tutela.server.agent.transport import detail
from tutela.server.audit_key import verify_audit_certificate
from tutela.server.tls import client_context

WITNESS_DIR = "witness"
WITNESS_KEY = "witness.key"


def witness_key(state_dir: Path) -> Ed25519PrivateKey:
    """The site's cosigning key in ``state_dir`` (created once, mode 0600)."""
    path = state_dir / WITNESS_KEY
    if path.exists():
        return load_signing_key(path)
    return generate_signing_key(path)


def parse_audit_key(value: str | VerifierKey | None) -> VerifierKey | None:
    """The operator's audit key (``<name>+<key ID>+<key>``, as the coordinator printed it).

    Raises:
        ConfigError: not a checkpoint-signing verifier key.
    """
    if value is None or isinstance(value, VerifierKey):
        return value
    try:
        key = VerifierKey.parse(value)
    except ValueError as exc:
        raise ConfigError(f"--audit-key: {exc}") from None
    if key.is_cosigner:
        raise ConfigError("--audit-key is a witness key; give the coordinator's audit key")
    return key


class SiteWitness:
    """One site's witness of the coordinator it talks to.

    Args:
        client: the HTTP client to the coordinator (authenticated by the site's certificate)
            as the agent holds it now.
        site: the site's name (its cosigner name is ``tutela.witness/<site>``).
        state_dir: the agent's state directory.
        audit_key: the coordinator's audit key from the operator; pinned on first use.
        ca: the deployment CA the site holds: without an audit key and none pinned, the
            site pins the key the CA certified (``GET /v1/site/audit/key``) at its first
            witnessing; without that either, it does not witness (:attr:`enabled`).
        clock: seconds since the epoch (cosignature timestamps).

    Raises:
        ConfigError: an audit key that differs from the one pinned earlier.
    """

    def __init__(
        self,
        client: Callable[[], httpx.Client],
        *,
        site: str,
        state_dir: Path,
        audit_key: VerifierKey | None,
        ca: x509.Certificate | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.site = site
        self.state_dir = state_dir
        self.ca = ca
        self.clock = clock
        self.witness: Witness | None = None
        if audit_key is not None or (state_dir / WITNESS_DIR / "log.vkey").exists():
            self._start(audit_key)

    def _start(self, audit_key: VerifierKey | None) -> Witness:
        key = witness_key(self.state_dir)
        directory = self.state_dir / WITNESS_DIR
        self.witness = Witness(directory, witness_name(self.site), key, audit_key, self.clock)
        public = VerifierKey.of(key, witness_name(self.site), COSIGNATURE_V1).encode() + "\n"
        atomic_write(directory / "witness.vkey", public.encode("utf-8"), mode=0o644)
        return self.witness

    @property
    def enabled(self) -> bool:
        """Whether this site witnesses (an audit key is pinned, or the CA can vouch for one)."""
        return self.witness is not None or self.ca is not None

    @property
    def verifier_key(self) -> VerifierKey | None:
        """The site's witness key (what auditors pin), if it witnesses."""
        return self.witness.verifier_key if self.witness is not None else None

    def witness_once(self) -> Cosignature | None:
        """Fetch, check and cosign the coordinator's latest checkpoint; post the cosignature.

        Returns:
            The cosignature, or ``None`` when this site does not witness (no key pinned,
            and the coordinator has no key the site's CA certified).

        Raises:
            WitnessRefusal: the checkpoint does not extend what this site saw (the evidence
                is recorded; the site must stop taking part).
            TransportError: the coordinator could not be reached or refused a request, or
                sent something that is not a checkpoint (retried next time).
        """
        witness = self.witness or self._pin_certified()
        if witness is None:
            return None
        latest = witness.latest
        data = (
            self._call(
                "GET",
                "/v1/site/audit/checkpoint",
                params={"from_size": latest.size if latest else 0},
            )
            or {}
        )
        try:
            note, items = data["checkpoint"], data["proof"]
            if not isinstance(note, str) or not isinstance(items, list):
                raise AuditError("the coordinator's answer is not a checkpoint and a proof")
            proof = decode_proof(str(item) for item in items)
            checkpoint = Checkpoint.parse(note)
        except (KeyError, TypeError, AuditError) as exc:
            raise TransportError(f"the coordinator sent no usable checkpoint: {exc}") from None
        cosignature = witness.observe(note, proof)
        body = {"checkpoint": checkpoint.body(), "cosignature": cosignature.line().rstrip("\n")}
        self._call("POST", "/v1/site/audit/cosignature", json=body)
        return cosignature

    def _pin_certified(self) -> Witness | None:
        """Pin the audit key the deployment CA certified (first run, no key from the operator)."""
        if self.ca is None:
            return None
        data = self._call("GET", "/v1/site/audit/key", missing_ok=True)
        if data is None:
            return None  # no certified key: this site cannot witness
        pem = data.get("certificate_pem")
        if not isinstance(pem, str):
            raise TransportError("the coordinator sent no audit key certificate")
        try:
            key = verify_audit_certificate(pem.encode("ascii", "replace"), self.ca)
        except ConfigError as exc:
            raise TransportError(f"audit key not pinned: {exc}") from None
        return self._start(key)

    def _call(
        self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> dict[str, Any] | None:
        try:
            response = self.client().request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise TransportError(f"coordinator unreachable: {exc}") from None
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code not in (200, 204):
            raise TransportError(
                f"{method} {path} refused: HTTP {response.status_code}: {detail(response)}"
            )
        if response.status_code == 204:
            return {}
        try:
            data = response.json()
        except ValueError:
            raise TransportError(f"{method} {path}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise TransportError(f"{method} {path}: the answer is not a JSON object")
        return data


def witness_now(
    *,
    coordinator: str,
    name: str,
    ca_file: Path,
    cert_file: Path,
    key_file: Path,
    state_dir: Path,
    audit_key: str | VerifierKey | None = None,
) -> Cosignature | None:
    """Witness the coordinator's log once, as site ``name`` with its own files (what an agent
    does as rounds go by; a deployment calls it when a study has ended).

    Raises:
        WitnessRefusal: the checkpoint does not extend what this site saw.
        TransportError: the coordinator could not be reached or refused.
    """
    ctx = client_context(ca_file, certfile=cert_file, keyfile=key_file)
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    with httpx.Client(base_url=coordinator, verify=ctx, timeout=30.0) as client:
        witness = SiteWitness(
            lambda: client,
            site=name,
            state_dir=state_dir,
            audit_key=parse_audit_key(audit_key),
            ca=ca,
        )
        return witness.witness_once()
