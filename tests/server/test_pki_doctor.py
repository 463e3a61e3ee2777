"""PKI issuance, certificate rotation and every ``tutela doctor`` diagnosis, on real sockets."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509

from tests.server.helpers import serve_https
from tutela.errors import ConfigError
from tutela.server import pki
from tutela.server.doctor import Problem, diagnose
from tutela.server.tls import RotatingServerContext, client_context


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    root = tmp_path / "pki"
    pki.init_ca(root)
    pki.issue_to_files(root, kind="server", name="localhost", sans=["127.0.0.1", "::1"])
    return root


def test_server_certificate_has_dns_and_ip_sans(ca_dir: Path) -> None:
    cert = pki.load_cert(pki.PkiLayout(ca_dir).server.cert)
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ext.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    ca = pki.load_cert(pki.PkiLayout(ca_dir).ca.cert)
    cert.verify_directly_issued_by(ca)


def test_site_certificate_binds_site_name_and_client_auth(ca_dir: Path) -> None:
    paths = pki.issue_to_files(ca_dir, kind="site", name="hospital-a")
    cert = pki.load_cert(paths.cert)
    assert pki.common_name(cert) == "hospital-a"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert (paths.key.stat().st_mode & 0o777) == 0o600


def test_csr_subject_is_ignored_in_favour_of_enrolled_site(ca_dir: Path) -> None:
    key = pki.new_private_key()
    csr = pki.make_csr(key, "hospital-b")
    ca_cert, ca_key = pki.load_ca(ca_dir)
    cert = pki.sign_csr(ca_cert, ca_key, csr, site="hospital-c")
    assert pki.common_name(cert) == "hospital-c"
    with pytest.raises(ValueError, match="not a PEM"):
        pki.sign_csr(ca_cert, ca_key, b"garbage", site="hospital-c")


def test_csr_with_a_broken_signature_is_refused(ca_dir: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    csr = x509.load_pem_x509_csr(pki.make_csr(pki.new_private_key(), "hospital-b"))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # inside the signature
    import base64

    pem = (
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(bytes(der))
        + b"-----END CERTIFICATE REQUEST-----\n"
    )
    ca_cert, ca_key = pki.load_ca(ca_dir)
    with pytest.raises(ValueError, match="does not verify"):
        pki.sign_csr(ca_cert, ca_key, pem, site="hospital-b")


def test_init_refuses_to_overwrite_and_bad_site_names(ca_dir: Path) -> None:
    with pytest.raises(ConfigError, match="already exists"):
        pki.init_ca(ca_dir)
    with pytest.raises(ValueError, match="invalid site name"):
        pki.issue_to_files(ca_dir, kind="site", name="../evil")
    with pytest.raises(ConfigError, match="no CA"):
        pki.load_ca(ca_dir / "nowhere")


def test_doctor_ok(ca_dir: Path) -> None:
    lay = pki.PkiLayout(ca_dir)
    with serve_https(lay.server.cert, lay.server.key) as port:
        result = diagnose(f"https://127.0.0.1:{port}", ca_file=lay.ca.cert)
    assert result.ok, result.findings
    assert any("GET /health answered HTTP 200" in n for n in result.notes)


def test_doctor_plain_http_server(ca_dir: Path) -> None:
    with serve_https(None, None) as port:
        result = diagnose(f"https://127.0.0.1:{port}", ca_file=pki.PkiLayout(ca_dir).ca.cert)
    assert result.problems() == {Problem.PLAIN_HTTP_SERVER}
    assert "plain HTTP, not TLS" in result.findings[0].message


def test_doctor_plain_url_to_tls_port(ca_dir: Path) -> None:
    lay = pki.PkiLayout(ca_dir)
    with serve_https(lay.server.cert, lay.server.key) as port:
        result = diagnose(f"http://127.0.0.1:{port}")
    assert result.problems() == {Problem.TLS_SERVER_PLAIN_URL}
    assert f"https://127.0.0.1:{port}" in result.findings[0].message


def test_doctor_wrong_ca(ca_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    pki.init_ca(other, common_name="Some Other CA")
    lay = pki.PkiLayout(ca_dir)
    with serve_https(lay.server.cert, lay.server.key) as port:
        result = diagnose(f"https://127.0.0.1:{port}", ca_file=pki.PkiLayout(other).ca.cert)
    assert result.problems() == {Problem.WRONG_CA}
    assert "Some Other CA" in result.findings[0].message


def test_doctor_expired_certificate(ca_dir: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    pki.issue_to_files(
        ca_dir, kind="server", name="localhost", sans=["127.0.0.1"], valid_days=2, not_before=past
    )
    lay = pki.PkiLayout(ca_dir)
    with serve_https(lay.server.cert, lay.server.key) as port:
        result = diagnose(f"https://127.0.0.1:{port}", ca_file=lay.ca.cert)
    assert result.problems() == {Problem.EXPIRED}
    assert "expired on" in result.findings[0].message


def test_doctor_not_yet_valid_certificate(ca_dir: Path) -> None:
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    pki.issue_to_files(
        ca_dir, kind="server", name="localhost", sans=["127.0.0.1"], not_before=future
    )
    lay = pki.PkiLayout(ca_dir)
    with serve_https(lay.server.cert, lay.server.key) as port:
        result = diagnose(f"https://127.0.0.1:{port}", ca_file=lay.ca.cert)
    assert result.problems() == {Problem.NOT_YET_VALID}


def test_doctor_hostname_mismatch(ca_dir: Path) -> None:
    pki.issue_to_files(ca_dir, kind="server", name="coordinator.example.org")
    lay = pki.PkiLayout(ca_dir)
    with serve_https(lay.server.cert, lay.server.key) as port:
        result = diagnose(f"https://127.0.0.1:{port}", ca_file=lay.ca.cert)
    assert result.problems() == {Problem.HOSTNAME_MISMATCH}
    assert "coordinator.example.org" in result.findings[0].message
    assert "--san 127.0.0.1" in result.findings[0].message


def test_doctor_clock_skew(ca_dir: Path) -> None:
    lay = pki.PkiLayout(ca_dir)
    with serve_https(lay.server.cert, lay.server.key, date_offset=dt.timedelta(hours=-2)) as port:
        result = diagnose(f"https://127.0.0.1:{port}", ca_file=lay.ca.cert)
    assert result.problems() == {Problem.CLOCK_SKEW}
    assert "ahead of the server" in result.findings[0].message


def test_doctor_local_clock_far_behind_sees_not_yet_valid_and_skew(ca_dir: Path) -> None:
    lay = pki.PkiLayout(ca_dir)
    behind = lambda: dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    with serve_https(lay.server.cert, lay.server.key) as port:
        result = diagnose(f"https://127.0.0.1:{port}", ca_file=lay.ca.cert, now=behind)
    assert result.problems() == {Problem.CLOCK_SKEW, Problem.NOT_YET_VALID}


def test_doctor_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = diagnose(f"https://127.0.0.1:{port}")
    assert result.problems() == {Problem.UNREACHABLE}


def test_doctor_client_certificate_from_other_ca(ca_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    pki.init_ca(other)
    bad = pki.issue_to_files(other, kind="site", name="hospital-x")
    lay = pki.PkiLayout(ca_dir)
    with serve_https(lay.server.cert, lay.server.key, client_ca=lay.ca.cert) as port:
        result = diagnose(
            f"https://127.0.0.1:{port}",
            ca_file=lay.ca.cert,
            client_cert=bad.cert,
            client_key=bad.key,
        )
    assert result.problems() == {Problem.CLIENT_CERT_REJECTED}


def _serve_rotating(ctx: RotatingServerContext, stop: threading.Event) -> int:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with ctx.context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"x")
            except (ssl.SSLError, OSError):
                pass
        listener.close()

    threading.Thread(target=loop, daemon=True).start()
    return int(listener.getsockname()[1])


def _served_serial(port: int, ca: Path) -> int:
    ctx = client_context(ca)
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        tls.recv(1)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_server_certificate_rotates_without_restart(ca_dir: Path) -> None:
    lay = pki.PkiLayout(ca_dir)
    ctx = RotatingServerContext(lay.server.cert, lay.server.key, lay.ca.cert)
    stop = threading.Event()
    port = _serve_rotating(ctx, stop)
    try:
        first = _served_serial(port, lay.ca.cert)
        assert first == pki.load_cert(lay.server.cert).serial_number
        pki.issue_to_files(ca_dir, kind="server", name="localhost", sans=["127.0.0.1"])
        second = _served_serial(port, lay.ca.cert)
        assert second == pki.load_cert(lay.server.cert).serial_number
        assert second != first
        assert ctx.reloads == 1
        # A half-written certificate never takes the server down: the last good pair serves.
        good = lay.server.cert.read_bytes()
        lay.server.cert.write_bytes(good[: len(good) // 2])
        assert _served_serial(port, lay.ca.cert) == second
        assert ctx.reloads == 1
    finally:
        stop.set()
