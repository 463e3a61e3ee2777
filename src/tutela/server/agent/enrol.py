"""A site's enrolment: a one-time token exchanged for its certificate."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from tutela.errors import PolicyViolation, TransportError
from tutela.server.agent.transport import detail
from tutela.server.tls import client_context


def enrol(
    coordinator: str, ca_file: Path, name: str, token: str, cert_file: Path, key_file: Path
) -> None:
    """Exchange a one-time enrolment token for a site certificate (written with its key).

    Security: the key pair is generated here and never leaves the site; only a CSR is sent,
    over TLS verified against the deployment's CA. The coordinator binds the certificate to
    the site the token was issued for, whatever name the CSR carries.
    """
    from tutela.server.pki import cert_to_pem, key_to_pem, make_csr, new_private_key

    key = new_private_key()
    with httpx.Client(base_url=coordinator, verify=client_context(ca_file), timeout=30.0) as client:
        delay, give_up = 0.1, time.time() + 60
        while True:
            try:
                response = client.post(
                    "/v1/enrol", json={"token": token, "csr_pem": make_csr(key, name).decode()}
                )
                break
            except httpx.TransportError as exc:
                if time.time() > give_up:
                    raise TransportError(f"coordinator unreachable: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
    if response.status_code != 200:
        raise PolicyViolation(f"enrolment refused: {detail(response)}")
    cert_pem = response.json()["certificate_pem"].encode()
    from cryptography import x509

    cert_to_pem(x509.load_pem_x509_certificate(cert_pem))  # validates the PEM
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_to_pem(key))
    cert_file.write_bytes(cert_pem)
