"""SecAgg+ peer keys bound to the deployment's certificates.

A site's SecAgg+ identity key (Ed25519) is its own, but the coordinator relays it to the
other sites. So that a coordinator cannot substitute a key, each site binds its identity key
to the client certificate the deployment's CA issued it: at join it sends, with the key, its
certificate and a *binding*, an ECDSA signature made with its TLS private key over
``LABEL || study id || site name || identity key`` (each part length-prefixed).

Before a SecAgg+ round a site checks every peer the coordinator lists against the CA it
holds itself (never a list the coordinator hands it): the certificate was issued by the
deployment CA for client authentication and is valid now, its common name is the peer's site
name, and the binding verifies under the certificate's key for this study. Any failure
refuses the round before anything is sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tutela.errors import ConfigError, ProtocolAbort

LABEL = b"tutela/secagg-identity-binding/v1"
IDENTITY_BYTES = 32


def binding_message(study_id: str, site: str, identity: bytes) -> bytes:
    """The bytes a binding signs: the label, the study id, the site name and the key."""
    parts = (LABEL, study_id.encode(), site.encode(), identity)
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def sign_binding(
    key: ec.EllipticCurvePrivateKey, study_id: str, site: str, identity: bytes
) -> bytes:
    """The site's binding of its identity key for one study (its TLS key signs)."""
    return key.sign(binding_message(study_id, site, identity), ec.ECDSA(hashes.SHA256()))


def _common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return ""
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode()


def verify_peer(
    ca: x509.Certificate,
    study_id: str,
    site: str,
    identity: bytes,
    certificate_pem: str,
    binding: bytes,
    *,
    now: dt.datetime | None = None,
) -> None:
    """Check one peer's identity key against the deployment CA.

    Raises:
        ProtocolAbort: naming the peer, when its certificate was not issued by ``ca`` for a
            client, is not valid at ``now``, names another site, or the binding does not
            verify for ``study_id``, ``site`` and ``identity``.
    """
    when = now or dt.datetime.now(dt.UTC)

    def refuse(why: str) -> ProtocolAbort:
        return ProtocolAbort(f"SecAgg+ peer {site!r} refused: {why}")

    if len(identity) != IDENTITY_BYTES:
        raise refuse("its identity key is not a 32-byte Ed25519 key")
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError:
        raise refuse("its certificate cannot be read") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise refuse("its certificate was not issued by the deployment CA") from None
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise refuse("its certificate is not valid now")
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise refuse("its certificate is not a site certificate") from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        raise refuse("its certificate is not a site certificate")
    if _common_name(cert) != site:
        raise refuse(f"its certificate names {_common_name(cert)!r}")
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise refuse("its certificate key is not an ECDSA key")
    try:
        public.verify(binding, binding_message(study_id, site, identity), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise refuse("its identity key is not bound to its certificate for this study") from None


def verified_registry(
    ca: x509.Certificate,
    study_id: str,
    peers: Mapping[str, Any],
    *,
    now: dt.datetime | None = None,
) -> dict[int, bytes]:
    """The SecAgg+ registry (client id -> identity key) once every peer verified.

    ``peers`` is the task's ``registry``: client id -> ``{"site", "identity",
    "certificate", "binding"}`` (hex for the key and the binding, PEM for the certificate).

    Raises:
        ProtocolAbort: a peer entry is malformed, a site is listed twice, or a peer fails
            :func:`verify_peer` (the message names it).
    """
    registry: dict[int, bytes] = {}
    seen: set[str] = set()
    for cid, entry in peers.items():
        site = entry.get("site") if isinstance(entry, Mapping) else None
        if not isinstance(site, str) or not site:
            raise ProtocolAbort(f"SecAgg+ peer {cid} refused: the coordinator names no site")
        try:
            identity = bytes.fromhex(str(entry["identity"]))
            binding = bytes.fromhex(str(entry["binding"]))
            certificate = str(entry["certificate"])
        except (KeyError, TypeError, ValueError):
            raise ProtocolAbort(
                f"SecAgg+ peer {site!r} refused: no certificate-bound identity key"
            ) from None
        if site in seen:
            raise ProtocolAbort(f"SecAgg+ peer {site!r} refused: listed twice")
        seen.add(site)
        verify_peer(ca, study_id, site, identity, certificate, binding, now=now)
        registry[int(cid)] = identity
    return registry


def bind_identity(
    cert_file: Path, key_file: Path, study_id: str, site: str, identity: bytes
) -> dict[str, str]:
    """What a site adds to its join answer: its certificate (PEM) and its binding (hex).

    Raises:
        ConfigError: the TLS key is not an ECDSA key (the deployment's key type).
    """
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{key_file} is not an ECDSA key")
    return {
        "certificate": cert_file.read_text(),
        "binding": sign_binding(key, study_id, site, identity).hex(),
    }
