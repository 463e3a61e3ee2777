"""The coordinator's audit-signing key, certified by the deployment's CA.

A site pins the coordinator's audit key once, when it first runs (the run that enrols it),
and witnesses the audit log under that key ever after (:mod:`tutela.server.agent.witness`).
It takes the key from its operator (``tutela site run --audit-key``) or, failing that, from
an X.509 certificate the deployment CA issued for it, checked against the CA file the site
holds itself. The certificate (``DATA_DIR/audit-signing.pem``) is issued when the
coordinator starts with the CA key at hand, and served at ``GET /v1/site/audit/key``.

What makes it an audit-key certificate: issued (signed) by the deployment CA, valid now, not
a CA, an Ed25519 public key (site and server certificates carry ECDSA keys), and a common
name equal to the key's note name (``tutela.audit/<16 hex of SHA-256(key)>``, which no site
name can be: site names hold no ``/``).

Security:
    The CA vouches for the key the first time only: a coordinator that later presents
    another key, even one the CA certified, is refused by every site that pinned the first
    (see the witness). A coordinator that holds the CA key at a site's first run can certify
    a key of its choosing then; an operator who distrusts that passes ``--audit-key``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from tutela.errors import ConfigError
from tutela.governance._files import atomic_write
from tutela.governance.checkpoint import VerifierKey, default_key_name

AUDIT_KEY_CERT = "audit-signing.pem"
VALID_DAYS = 825


def certify_audit_key(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: Ed25519PrivateKey | Ed25519PublicKey,
    *,
    valid_days: int = VALID_DAYS,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """The CA's certificate for an audit-signing key (common name: the key's note name)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    name = VerifierKey.of(public).name
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def ensure_audit_certificate(
    path: Path,
    key: Ed25519PrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
) -> bytes:
    """The PEM certificate of ``key`` by this CA at ``path``: kept if it is one, else issued
    and written (readable by others: it holds no secret)."""
    if path.exists():
        pem = path.read_bytes()
        try:
            if verify_audit_certificate(pem, ca_cert) == VerifierKey.of(key):
                return pem
        except ConfigError:
            pass  # another key or CA, or expired: certify again
    pem = certify_audit_key(ca_cert, ca_key, key).public_bytes(serialization.Encoding.PEM)
    atomic_write(path, pem, mode=0o644)
    return pem


def verify_audit_certificate(
    pem: bytes, ca: x509.Certificate, *, now: dt.datetime | None = None
) -> VerifierKey:
    """The audit key a certificate vouches for, if the deployment CA ``ca`` issued it.

    Raises:
        ConfigError: not a PEM certificate, not issued by ``ca``, not valid now, a CA
            certificate, not an Ed25519 key, or a common name that is not the key's name.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ConfigError("the audit key certificate is not a PEM certificate") from None
    issuer_key = ca.public_key()
    if cert.issuer != ca.subject or not isinstance(issuer_key, ec.EllipticCurvePublicKey):
        raise ConfigError("the audit key certificate was not issued by the deployment CA")
    hash_algorithm = cert.signature_hash_algorithm
    if hash_algorithm is None:
        raise ConfigError("the audit key certificate was not issued by the deployment CA")
    try:
        issuer_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hash_algorithm))
    except InvalidSignature:
        raise ConfigError("the audit key certificate was not issued by the deployment CA") from None
    moment = now or dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        raise ConfigError("the audit key certificate is not valid now")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or constraints.ca:
        raise ConfigError("the audit key certificate must be an end-entity certificate")
    public = cert.public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise ConfigError("the audit key certificate does not carry an Ed25519 key")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or names[0].value != default_key_name(public):
        raise ConfigError("the audit key certificate's name is not its key's audit name")
    return VerifierKey.of(public)
