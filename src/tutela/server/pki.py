"""A small private PKI for the coordinator and the sites.

A deployment has one certificate authority (CA). The coordinator gets a *server*
certificate whose subject alternative names (SANs) list every DNS name and IP address
sites use to reach it; each site gets a *client* certificate whose common name is the site
name, which the coordinator binds to the site's identity (mutual TLS).

Layout of a PKI directory::

    ca.pem  ca.key              the authority (key mode 0600)
    server.pem  server.key      the coordinator's certificate
    sites/NAME.pem  NAME.key    one pair per site

Security: keys are ECDSA P-256 and written with mode 0600, unencrypted (protect the
directory). The CA key signs every certificate; whoever holds it can mint a site identity,
so it belongs on the coordinator's machine only. Certificates are short-lived by default
(90 days) and rotate without a restart (see :mod:`tutela.server.tls`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tutela.errors import ConfigError
from tutela.governance._files import atomic_write

Clock = Callable[[], dt.datetime]
CertKind = Literal["server", "site"]

SITE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_SERVER_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
DEFAULT_VALID_DAYS = 90
CA_VALID_DAYS = 3650


def utcnow() -> dt.datetime:
    """The wall clock, timezone-aware UTC (the default clock of this module)."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class CertificatePaths:
    """Where one certificate and its private key live."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class PkiLayout:
    """The file layout of a PKI directory."""

    root: Path

    @property
    def ca(self) -> CertificatePaths:
        """The authority's certificate and key."""
        return CertificatePaths(self.root / "ca.pem", self.root / "ca.key")

    @property
    def server(self) -> CertificatePaths:
        """The coordinator's certificate and key."""
        return CertificatePaths(self.root / "server.pem", self.root / "server.key")

    def site(self, name: str) -> CertificatePaths:
        """One site's certificate and key."""
        validate_site_name(name)
        return CertificatePaths(
            self.root / "sites" / f"{name}.pem", self.root / "sites" / f"{name}.key"
        )


def validate_site_name(name: str) -> str:
    """Return ``name`` if it is a valid site name, else raise ``ValueError``."""
    if not SITE_NAME_RE.match(name):
        raise ValueError(
            f"invalid site name {name!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 private key from the OS CSPRNG."""
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Serialise a private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_to_pem(cert: x509.Certificate) -> bytes:
    """Serialise a certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_cert(path: Path) -> x509.Certificate:
    """Load a PEM certificate, naming the file on failure."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM certificate") from exc


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load an unencrypted PEM EC private key."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, expected an EC key")
    return key


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of a certificate's DER encoding, lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def _san_entries(names: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def create_ca(
    common_name: str = "Tutela CA",
    *,
    valid_days: int = CA_VALID_DAYS,
    now: Clock = utcnow,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Create a self-signed certificate authority (path length 0)."""
    key = new_private_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = now() - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    *,
    kind: CertKind,
    name: str,
    sans: Sequence[str] = (),
    valid_days: int = DEFAULT_VALID_DAYS,
    not_before: dt.datetime | None = None,
    now: Clock = utcnow,
) -> x509.Certificate:
    """Sign a server or site certificate for ``public_key``.

    Args:
        ca_cert: the authority's certificate.
        ca_key: the authority's private key.
        public_key: the subject's public key (from its own key pair or a CSR).
        kind: ``"server"`` (serverAuth, SANs = every name sites dial) or ``"site"``
            (clientAuth, common name = the site's identity).
        name: common name: the server's primary host name or the site name.
        sans: extra subject alternative names (DNS names or IP literals). For a server, the
            SANs are ``name`` plus these; for a site, the site name.
        valid_days: lifetime in days.
        not_before: start of validity (default: ``now()`` minus five minutes of slack).
        now: clock.

    Raises:
        ValueError: bad site name, no SAN, or a non-positive lifetime.
    """
    if valid_days <= 0:
        raise ValueError("valid_days must be positive")
    if kind == "site":
        validate_site_name(name)
        san_names: list[str] = [name]
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
    else:
        san_names = list(dict.fromkeys([name, *sans]))
        usage = ExtendedKeyUsageOID.SERVER_AUTH
    start = not_before if not_before is not None else now() - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_san_entries(san_names)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    return builder.sign(ca_key, hashes.SHA256())


def init_ca(
    root: Path, *, common_name: str = "Tutela CA", force: bool = False, now: Clock = utcnow
) -> PkiLayout:
    """Create a CA in ``root`` (``tutela pki init``).

    Raises:
        ConfigError: a CA already exists there and ``force`` is false.
    """
    layout = PkiLayout(root)
    if layout.ca.cert.exists() and not force:
        raise ConfigError(f"a CA already exists in {root} (pass --force to replace it)")
    cert, key = create_ca(common_name, now=now)
    atomic_write(layout.ca.key, key_to_pem(key))  # 0600; new folders 0700
    atomic_write(layout.ca.cert, cert_to_pem(cert), mode=0o644)
    return layout


def load_ca(root: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Load the CA certificate and key from ``root``.

    Raises:
        ConfigError: there is no CA in ``root``.
    """
    layout = PkiLayout(root)
    if not layout.ca.cert.exists() or not layout.ca.key.exists():
        raise ConfigError(f"no CA in {root}: run `tutela pki init --dir {root}` first")
    return load_cert(layout.ca.cert), load_key(layout.ca.key)


def issue_to_files(
    root: Path,
    *,
    kind: CertKind,
    name: str,
    sans: Sequence[str] = (),
    valid_days: int = DEFAULT_VALID_DAYS,
    not_before: dt.datetime | None = None,
    now: Clock = utcnow,
) -> CertificatePaths:
    """Issue a new key pair and certificate and write them into the PKI directory.

    Writing over an existing pair is how certificates rotate: the coordinator reloads its
    files on the next handshake, sites on their next connection.
    """
    ca_cert, ca_key = load_ca(root)
    layout = PkiLayout(root)
    paths = layout.server if kind == "server" else layout.site(name)
    key = new_private_key()
    cert = issue_certificate(
        ca_cert,
        ca_key,
        key.public_key(),
        kind=kind,
        name=name,
        sans=sans,
        valid_days=valid_days,
        not_before=not_before,
        now=now,
    )
    # Key first, then certificate: a reader that sees the new certificate also sees its key.
    atomic_write(paths.key, key_to_pem(key))
    atomic_write(paths.cert, cert_to_pem(cert), mode=0o644)
    return paths


def make_csr(key: ec.EllipticCurvePrivateKey, site: str) -> bytes:
    """A PEM certificate signing request for a site (used at enrolment)."""
    validate_site_name(site)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, site)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def sign_csr(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    csr_pem: bytes,
    *,
    site: str,
    valid_days: int = DEFAULT_VALID_DAYS,
    now: Clock = utcnow,
) -> x509.Certificate:
    """Sign a site's CSR, binding the certificate to ``site`` whatever the CSR names.

    Security: the subject comes from the enrolment record (the one-time token's site),
    never from the CSR, so a site cannot enrol as another site. The CSR's own signature is
    checked (proof of possession of the key).

    Raises:
        ValueError: the CSR is malformed, unsigned, or not an EC P-256 key.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise ValueError("the CSR is not a PEM certificate signing request") from exc
    if not csr.is_signature_valid:
        raise ValueError("the CSR signature does not verify")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise ValueError("the CSR must carry an EC P-256 public key")
    return issue_certificate(
        ca_cert, ca_key, public_key, kind="site", name=site, valid_days=valid_days, now=now
    )


def common_name(cert: x509.Certificate) -> str:
    """The subject common name of a certificate ('' when absent)."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return ""
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode()


def san_names(cert: x509.Certificate) -> list[str]:
    """Every DNS name and IP address in a certificate's SAN extension."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = [str(n) for n in ext.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return names
