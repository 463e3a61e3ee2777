"""``tutela doctor``: diagnose a connection to the coordinator in plain words.

The usual TLS failures surface as cryptic handshake errors (``WRONG_VERSION_NUMBER``,
``CERTIFICATE_VERIFY_FAILED``). The doctor connects step by step, inspects what the server
presents *without* trusting it, and names the cause: nothing listening, plain HTTP on one
side and TLS on the other, a certificate from another CA, an expired or not-yet-valid
certificate, a host name the certificate does not cover, or a clock that disagrees with the
server's.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from tutela.server.pki import Clock, common_name, load_cert, san_names, utcnow

MAX_CLOCK_SKEW = dt.timedelta(seconds=60)


class Problem(StrEnum):
    """What the doctor can find wrong."""

    UNREACHABLE = "unreachable"
    PLAIN_HTTP_SERVER = "plain-http-server"
    TLS_SERVER_PLAIN_URL = "tls-server-plain-url"
    WRONG_CA = "wrong-ca"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    HOSTNAME_MISMATCH = "hostname-mismatch"
    CLOCK_SKEW = "clock-skew"
    CLIENT_CERT_REJECTED = "client-cert-rejected"
    HANDSHAKE_FAILED = "handshake-failed"
    BAD_URL = "bad-url"


@dataclass(frozen=True)
class Finding:
    """One diagnosed problem with a plain-words explanation and a fix."""

    problem: Problem
    message: str


@dataclass(frozen=True)
class Diagnosis:
    """The doctor's result: ok when nothing was found."""

    url: str
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the connection works as configured."""
        return not self.findings

    def problems(self) -> set[Problem]:
        """The set of problems found."""
        return {f.problem for f in self.findings}


def _parse(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


def _looks_like_tls(host: str, port: int, timeout: float) -> bool:
    """Whether the port completes a TLS handshake when nothing is verified."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with _connect(host, port, timeout) as raw, ctx.wrap_socket(raw, server_hostname=host):
            return True
    except (ssl.SSLError, OSError):
        return False


def _fetch_unverified(host: str, port: int, timeout: float) -> tuple[x509.Certificate, str | None]:
    """The server's leaf certificate and its HTTP ``Date`` header, trusting nothing."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with _connect(host, port, timeout) as raw, ctx.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
        if der is None:  # pragma: no cover - TLS servers always send a certificate
            raise ssl.SSLError("the server sent no certificate")
        date = _http_date(tls, host)
    return x509.load_der_x509_certificate(der), date


def _http_date(sock: socket.socket, host: str) -> str | None:
    try:
        sock.sendall(f"HEAD /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    for line in data.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"date":
            return value.strip().decode("latin1")
    return None


def _host_matches(host: str, names: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for name in names:
        if ip is not None:
            try:
                if ipaddress.ip_address(name) == ip:
                    return True
            except ValueError:
                continue
        else:
            lowered = host.lower()
            pattern = name.lower()
            if pattern == lowered:
                return True
            if pattern.startswith("*.") and lowered.split(".", 1)[-1] == pattern[2:]:
                return True
    return False


def _fmt(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def diagnose(
    url: str,
    *,
    ca_file: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    timeout: float = 5.0,
    now: Clock = utcnow,
) -> Diagnosis:
    """Diagnose the connection to ``url``; never raises for a network problem.

    Args:
        url: the coordinator URL a site or admin would use.
        ca_file: the CA bundle the client trusts (None: the system store).
        client_cert: optional site certificate to test mutual TLS with.
        client_key: its key.
        timeout: per-connection timeout in seconds.
        now: the local clock (injectable to check skew handling).
    """
    try:
        scheme, host, port = _parse(url)
    except ValueError as exc:
        return Diagnosis(url, (Finding(Problem.BAD_URL, str(exc)),))
    where = f"{host}:{port}"
    try:
        _connect(host, port, timeout).close()
    except OSError as exc:
        return Diagnosis(
            url,
            (
                Finding(
                    Problem.UNREACHABLE,
                    f"nothing accepts connections at {where} ({exc.strerror or exc}); "
                    "check that the coordinator is running and the host and port are right",
                ),
            ),
        )
    is_tls = _looks_like_tls(host, port, timeout)
    if scheme == "http":
        if is_tls:
            return Diagnosis(
                url,
                (
                    Finding(
                        Problem.TLS_SERVER_PLAIN_URL,
                        f"{where} speaks TLS but the URL says plain http://; use https://{where}",
                    ),
                ),
            )
        return Diagnosis(url, notes=("plain HTTP without TLS: traffic is not encrypted",))
    if not is_tls:
        return Diagnosis(
            url,
            (
                Finding(
                    Problem.PLAIN_HTTP_SERVER,
                    f"{where} answers in plain HTTP, not TLS (the handshake error would read "
                    "WRONG_VERSION_NUMBER); start the coordinator with its certificate "
                    "(tutela server start --pki DIR) or use http:// for a test server",
                ),
            ),
        )

    findings: list[Finding] = []
    notes: list[str] = []
    cert, date_header = _fetch_unverified(host, port, timeout)
    local_now = now()
    skew: dt.timedelta | None = None
    if date_header:
        try:
            server_now = email.utils.parsedate_to_datetime(date_header)
            skew = local_now - server_now
        except (TypeError, ValueError):
            skew = None
    if skew is not None and abs(skew) > MAX_CLOCK_SKEW:
        direction = "ahead of" if skew > dt.timedelta(0) else "behind"
        findings.append(
            Finding(
                Problem.CLOCK_SKEW,
                f"this machine's clock is {abs(int(skew.total_seconds()))} s {direction} the "
                "server's; certificates look expired or not yet valid when clocks disagree. "
                "Synchronise the clock (NTP)",
            )
        )
    if cert.not_valid_after_utc < local_now:
        findings.append(
            Finding(
                Problem.EXPIRED,
                f"the server certificate expired on {_fmt(cert.not_valid_after_utc)}; issue a new "
                "one with `tutela pki issue --server` (the server picks it up without a restart)",
            )
        )
    if cert.not_valid_before_utc > local_now:
        findings.append(
            Finding(
                Problem.NOT_YET_VALID,
                f"the server certificate is not valid before {_fmt(cert.not_valid_before_utc)}; "
                "either this machine's clock is behind or the certificate was issued with a "
                "future start date",
            )
        )
    names = san_names(cert)
    if not _host_matches(host, names):
        findings.append(
            Finding(
                Problem.HOSTNAME_MISMATCH,
                f"the server certificate is for {', '.join(names) or common_name(cert)!s} but you "
                f"connected to {host}; use one of those names or reissue the certificate with "
                f"`tutela pki issue --server --san {host}`",
            )
        )
    if ca_file is not None:
        ca = load_cert(ca_file)
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            findings.append(
                Finding(
                    Problem.WRONG_CA,
                    "the server certificate was issued by "
                    f"'{cert.issuer.rfc4514_string()}', not by "
                    f"the CA in {ca_file} ('{ca.subject.rfc4514_string()}'); use the deployment's "
                    "ca.pem",
                )
            )
    if client_cert is not None and ca_file is not None:
        findings += _check_client_cert(client_cert, load_cert(ca_file), ca_file, local_now)
    if findings:
        return Diagnosis(url, tuple(findings))

    # Everything inspected looks right: confirm with a fully verifying handshake.
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    if client_cert is not None:
        ctx.load_cert_chain(client_cert, client_key)
    try:
        with (
            _connect(host, port, timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            status = _http_status(tls, host)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if client_cert is not None and ("ALERT" in reason or "CERTIFICATE" in reason):
            return Diagnosis(
                url,
                (
                    Finding(
                        Problem.CLIENT_CERT_REJECTED,
                        f"the server rejected the client certificate {client_cert} ({reason}); "
                        "it must be issued by the deployment's CA and still be valid",
                    ),
                ),
            )
        return Diagnosis(
            url, (Finding(Problem.HANDSHAKE_FAILED, f"TLS handshake failed: {reason}"),)
        )
    except OSError as exc:
        if client_cert is not None:
            return Diagnosis(
                url,
                (
                    Finding(
                        Problem.CLIENT_CERT_REJECTED,
                        f"the server closed the connection after seeing the client certificate "
                        f"{client_cert} ({exc}); it must be issued by the deployment's CA",
                    ),
                ),
            )
        return Diagnosis(url, (Finding(Problem.HANDSHAKE_FAILED, f"connection failed: {exc}"),))
    notes.append(
        f"TLS OK: certificate for {', '.join(names)}, valid until {_fmt(cert.not_valid_after_utc)}"
    )
    if status is not None:
        notes.append(f"GET /health answered HTTP {status}")
    days_left = (cert.not_valid_after_utc - local_now).days
    if days_left < 14:
        notes.append(f"the server certificate expires in {days_left} days: rotate it soon")
    return Diagnosis(url, (), tuple(notes))


def _check_client_cert(
    path: Path, ca: x509.Certificate, ca_file: Path, now: dt.datetime
) -> list[Finding]:
    cert = load_cert(path)
    found: list[Finding] = []
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        found.append(
            Finding(
                Problem.CLIENT_CERT_REJECTED,
                f"the client certificate {path} was issued by '{cert.issuer.rfc4514_string()}', "
                f"not by the CA in {ca_file}; the coordinator will refuse it. Enrol the site "
                "again (tutela site enrol) or issue it from the deployment's CA",
            )
        )
    if cert.not_valid_after_utc < now:
        found.append(
            Finding(
                Problem.CLIENT_CERT_REJECTED,
                f"the client certificate {path} expired on {_fmt(cert.not_valid_after_utc)}",
            )
        )
    return found


def _http_status(sock: ssl.SSLSocket, host: str) -> int | None:
    try:
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        line = b""
        while b"\r\n" not in line and len(line) < 4096:
            chunk = sock.recv(1024)
            if not chunk:
                break
            line += chunk
        parts = line.split(b" ", 2)
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
    except ssl.SSLError:
        raise  # a rejected client certificate surfaces here under TLS 1.3
    except OSError:
        return None
