"""A site agent's connection to the coordinator: outbound HTTPS over mutual TLS.

Every request is retried with backoff while the coordinator is unreachable (for example
while it restarts) or answers 502/503/504, until the stage deadline (a minute when the
caller names none).
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import httpx

from tutela.errors import ProtocolAbort, TransportError
from tutela.server.agent.settings import AgentSettings
from tutela.server.tls import client_context
from tutela.server.wire import parse_tensors

MAX_HOLD_S = 300.0
"""The longest hold a submission asks for (the coordinator refuses a larger ``wait``)."""

COORDINATOR = "coordinator"
"""The relay sender name of the coordinator's own messages."""


def detail(response: httpx.Response) -> str:
    """The coordinator's reason for a refusal (its ``detail``, else the body's start)."""
    try:
        return str(response.json().get("detail"))
    except (ValueError, AttributeError):
        return response.text[:200]


def _carried(task: dict[str, Any], key: str, what: str) -> bytes | None:
    """The payload the task carries under ``key`` (base64), or None when it carries none.

    Raises:
        ProtocolAbort: the payload is not base64 (``what`` names it).
    """
    value = task.get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolAbort(f"{what} in the task is not base64") from None


class SiteTransport:
    """One site's HTTP client to the coordinator, with retries until a deadline.

    Attributes:
        site: the site's name (the certificate's subject; for logs and tests).
        client: the underlying client (mutual TLS against the deployment's CA).
    """

    def __init__(self, settings: AgentSettings, *, site: str) -> None:
        self.site = site
        self.long_poll_s = min(settings.long_poll_s, MAX_HOLD_S)
        self.follow: str | None = None
        """Set by the agent's loop: the version of the tasks answer whose task is being
        done; the next submission asks the coordinator to hold its receipt until the
        answer after this one (and is the only one to ask: it is reset on use)."""
        self.followed: dict[str, Any] | None = None
        """The tasks answer that came back with a submission (taken by the agent's loop)."""
        ctx = client_context(
            settings.ca_file, certfile=settings.cert_file, keyfile=settings.key_file
        )
        self.client = httpx.Client(base_url=settings.coordinator, verify=ctx, timeout=30.0)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def request(
        self, method: str, path: str, *, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send one request, retrying while the coordinator is unreachable.

        Raises:
            TransportError: still unreachable at ``deadline``.
        """
        give_up = deadline if deadline is not None else time.time() + 60.0
        delay = 0.1
        while True:
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if time.time() + delay > give_up:
                    raise TransportError(f"coordinator unreachable: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if response.status_code in (502, 503, 504) and time.time() + delay <= give_up:
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            return response

    def submit(self, task: dict[str, Any], stage: str, body: bytes) -> None:
        """Upload this site's answer to a round's stage, exactly once (idempotency key).

        When the agent's loop set :attr:`follow`, the coordinator holds the receipt until the
        site's next tasks answer is news (long polling) and the answer is kept in
        :attr:`followed`.

        Raises:
            ProtocolAbort: the coordinator refused it.
        """
        study_id, round_no = task["study_id"], int(task["round"])
        key = f"{study_id}-r{round_no}-a{task.get('attempt', 1)}-{stage}"
        follow, self.follow = self.follow, None
        hold: dict[str, Any] = {}
        if follow is not None and self.long_poll_s > 0:
            hold = {
                "params": {"wait": self.long_poll_s, "seen": follow},
                "timeout": self.long_poll_s + 30.0,
            }
        response = self.request(
            "POST",
            f"/v1/site/studies/{study_id}/rounds/{round_no}/stages/{stage}",
            content=body,
            headers={"Idempotency-Key": key, "Content-Type": "application/octet-stream"},
            deadline=float(task["deadline"]),
            **hold,
        )
        if response.status_code != 200:
            raise ProtocolAbort(
                f"submission refused: HTTP {response.status_code}: {detail(response)}"
            )
        if hold:
            answer = response.json().get("next_tasks")
            if isinstance(answer, dict) and isinstance(answer.get("tasks"), list):
                self.followed = answer

    def global_model(self, task: dict[str, Any]) -> bytes:
        """The global model a round's task starts from (safetensors): carried in the task
        (``model``), else fetched.

        Raises:
            ProtocolAbort: the model in the task is not base64, or it could not be fetched.
        """
        carried = _carried(task, "model", "the model")
        if carried is not None:
            return carried
        response = self.request(
            "GET", f"/v1/site/studies/{task['study_id']}/model", deadline=float(task["deadline"])
        )
        if response.status_code != 200:
            raise ProtocolAbort(f"cannot fetch the model: {detail(response)}")
        return response.content

    def coordinator_message(self, task: dict[str, Any]) -> bytes | None:
        """The coordinator's request to this site for the task's stage: carried in the task
        (``message``), else read from the relay (``None`` while there is none, e.g. a site
        dropped in an earlier stage).

        Raises:
            ProtocolAbort: the message in the task is not base64, or the relay could not be
                read.
        """
        carried = _carried(task, "message", "the coordinator's message")
        if carried is not None:
            return carried
        study_id, round_no, stage = task["study_id"], int(task["round"]), task["stage"]
        response = self.request(
            "GET",
            f"/v1/site/studies/{study_id}/rounds/{round_no}/relay/{stage}",
            deadline=float(task["deadline"]),
        )
        if response.status_code != 200:
            raise ProtocolAbort(f"cannot fetch the {stage} message: {detail(response)}")
        messages, _ = parse_tensors(response.content)
        if COORDINATOR not in messages:
            return None
        return bytes(messages[COORDINATOR].tobytes())
