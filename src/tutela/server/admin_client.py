"""A person's client of the coordinator's admin API: refusals as one clear error, and
waiting for a study to end with held requests (``GET /v1/admin/studies/{id}?wait=&seen=``)
instead of polling."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tutela.errors import ServiceError


def admin_get(
    client: httpx.Client, path: str, *, retry_busy: bool = False, **kwargs: Any
) -> httpx.Response:
    """GET ``path``; a refusal raises with the coordinator's reason. With ``retry_busy``
    a 503 is returned for the caller to retry."""
    try:
        response = client.get(path, **kwargs)
    except httpx.HTTPError as exc:
        raise ServiceError(f"cannot reach the coordinator at {client.base_url}: {exc}") from None
    if response.status_code >= 400 and not (retry_busy and response.status_code == 503):
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:200]
        raise ServiceError(f"coordinator answered {response.status_code} for {path}: {detail}")
    return response


ENDED = ("completed", "failed", "cancelled")
"""The statuses a study ends in."""

HOLD_S = 30.0
"""How long one status request may be held (the coordinator's own limit on a hold)."""


def wait_for_end(client: httpx.Client, study_id: str, timeout_s: float) -> dict[str, Any]:
    """The study's brief status (``id``, ``status``, ``current_round``, ``total_rounds``,
    ``error``) once it ended, or as it stands when ``timeout_s`` ran out.

    Each request is held by the coordinator until the study's status changes (at most
    :data:`HOLD_S`), so waiting costs a request per status change, not a poll per interval.

    Raises:
        ServiceError: the coordinator refused (unknown study, wrong token...), could not
            be reached, or stayed busy past ``timeout_s``.
    """
    deadline = time.monotonic() + max(0.0, timeout_s)
    path = f"/v1/admin/studies/{study_id}"
    params: dict[str, Any] = {"brief": True}
    while True:
        response = admin_get(client, path, retry_busy=True, params=params, timeout=HOLD_S + 30.0)
        if response.status_code == 503:  # the coordinator holds too many waits: read plainly
            if time.monotonic() > deadline:
                raise ServiceError(f"the coordinator stayed busy (503) for {path}")
            time.sleep(0.5)
            params = {"brief": True}
            continue
        brief: dict[str, Any] = response.json()
        left = deadline - time.monotonic()
        if brief["status"] in ENDED or left <= 0:
            return brief
        hold = round(max(0.05, min(HOLD_S, left)), 3)
        params = {"brief": True, "wait": hold, "seen": brief["status"]}
