"""The analyst's Python API for federated DP queries: submit through the coordinator, get a
DataFrame back.

::

    from tutela.server.query_client import run_query

    result = run_query(
        "https://coordinator:8443",
        "SELECT count(*), avg(clamp(bmi, 10, 60)) FROM patients WHERE age > 60 GROUP BY sex",
        epsilon=0.5, purpose="cohort-discovery", token=token, ca_file="ca.pem",
    )
    result.frame     # one row per group: values and 95% intervals (noise only)

The analyst needs a bearer token with ``query:run`` (the ``analyst`` role). Each site
charges its own budgets for the analyst and for the purpose; a site that refuses says why,
and the answer carries only the sites that took part.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from tutela.errors import ProtocolAbort, ServiceError

__all__ = ["QueryResult", "run_query"]


@dataclass(frozen=True)
class QueryResult:
    """A federated query's answer.

    Attributes:
        frame: one row per group, each answer with ``_ci_low`` and ``_ci_high`` columns.
        query_id: the coordinator's id of the query (its audit resource is
            ``query/<id>``).
        epsilon: what each site that took part charged (at ``delta``).
        delta: the delta of the noise's calibration.
        sigma: the noise's standard deviation on each summed statistic.
        sites: the sites whose statistics are in the answer.
        refused: the sites that refused, with their reasons.
    """

    frame: pd.DataFrame
    query_id: str
    epsilon: float
    delta: float
    sigma: float
    sites: list[str]
    refused: dict[str, str]


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))
    except (ValueError, AttributeError):
        return response.text[:200]


def run_query(
    coordinator: str,
    sql: str,
    *,
    epsilon: float,
    purpose: str,
    token: str,
    ca_file: str | Path,
    delta: float = 1e-6,
    sites: list[str] | None = None,
    invite_timeout_s: float = 60.0,
    timeout_s: float = 300.0,
    poll_s: float = 0.2,
) -> QueryResult:
    """Submit a query and wait for its answer.

    Raises:
        ServiceError: the coordinator refused the request (the message says why) or cannot
            be reached.
        ProtocolAbort: the query failed (too few sites accepted, each refusal's reason
            listed; or the secure round stopped).
    """
    from tutela.server.tls import client_context

    headers = {"Authorization": f"Bearer {token}"}
    body: dict[str, Any] = {
        "sql": sql, "epsilon": epsilon, "delta": delta, "purpose": purpose,
        "timeout_s": invite_timeout_s, "sites": sites,
    }  # fmt: skip
    verify = client_context(Path(ca_file))
    try:
        with httpx.Client(base_url=coordinator, verify=verify, timeout=30.0) as client:
            r = client.post("/v1/admin/queries", json=body, headers=headers)
            if r.status_code != 201:
                raise ServiceError(f"query refused by the coordinator: {_detail(r)}")
            query_id = str(r.json()["id"])
            give_up = time.monotonic() + timeout_s
            while True:
                r = client.get("/v1/admin/queries", params={"id": query_id}, headers=headers)
                if r.status_code != 200:
                    raise ServiceError(f"cannot read query {query_id}: {_detail(r)}")
                status = r.json()
                if status["status"] in ("done", "failed"):
                    break
                if time.monotonic() > give_up:
                    raise ServiceError(f"query {query_id} did not finish in {timeout_s:g} s")
                time.sleep(poll_s)
    except httpx.TransportError as exc:
        raise ServiceError(f"cannot reach the coordinator at {coordinator}: {exc}") from None
    refused = {str(k): str(v) for k, v in status.get("refused", {}).items()}
    if status["status"] == "failed":
        reasons = "; ".join(f"{site}: {why}" for site, why in sorted(refused.items()))
        raise ProtocolAbort(
            f"query failed: {status['error']}" + (f" ({reasons})" if reasons else "")
        )
    result = status["result"]
    frame = pd.DataFrame.from_records(result["rows"], columns=result["columns"])
    return QueryResult(
        frame, query_id, float(result["epsilon"]), float(result["delta"]),
        float(result["sigma"]), list(result["sites"]), refused,
    )  # fmt: skip
