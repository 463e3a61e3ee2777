"""The data owner's HTTPS client for an HE service (verifying TLS, client certificate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tutela.errors import ServiceError, TransportError
from tutela.he.card import ModelCard
from tutela.server.tls import client_context

__all__ = ["HeClient"]


class HeClient:
    """Calls an HE service as one certified principal.

    Args:
        url: the service's base URL (``https://host:port``).
        ca: the deployment's CA certificate (the server certificate must chain to it).
        cert: this caller's client certificate (PEM), issued by that CA.
        key: its private key.
        timeout: seconds per request.
    """

    def __init__(
        self,
        url: str,
        *,
        ca: Path,
        cert: Path | None = None,
        key: Path | None = None,
        timeout: float = 600.0,
    ) -> None:
        if not url.startswith("https://"):
            raise ValueError("the service URL must start with https://")
        for path in (ca, cert, key):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"no such file: {path}")
        ctx = client_context(ca, certfile=cert, keyfile=key)
        self._http = httpx.Client(base_url=url.rstrip("/"), verify=ctx, timeout=timeout)
        self.url = url

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> HeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TransportError(f"cannot reach the HE service at {self.url}: {exc}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ServiceError(
                f"the HE service refused the request ({response.status_code}): {detail}"
            )
        return response

    def model_card(self) -> ModelCard:
        """The service's model card."""
        return ModelCard.from_json(self._call("GET", "/v1/he/model").json())

    def upload_key(self, bundle: bytes) -> str:
        """Upload a public bundle; returns its fingerprint (hex)."""
        return str(self._binary("/v1/he/keys", bundle).json()["fingerprint"])

    def predict(self, query: bytes) -> bytes:
        """Send an encrypted table; returns the encrypted result."""
        return self._binary("/v1/he/predict", query).content

    def upload_table(self, payload: bytes) -> dict[str, Any]:
        """Store an encrypted table for analytics; returns its id, rows and columns."""
        doc: dict[str, Any] = self._binary("/v1/he/tables", payload).json()
        return doc

    def query_table(self, table_id: str, query: dict[str, Any]) -> bytes:
        """Run an analytics query over a stored table; returns the encrypted result."""
        return self._call("POST", f"/v1/he/tables/{table_id}/query", json=query).content

    def _binary(self, path: str, body: bytes) -> httpx.Response:
        return self._call(
            "POST", path, content=body, headers={"content-type": "application/octet-stream"}
        )
