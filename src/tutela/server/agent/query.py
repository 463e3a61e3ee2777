"""A site's federated DP queries: judge the invitation, then take part in the secure sum.

On a ``query`` task's invitation the site checks everything before it answers
(:func:`~tutela.fl.queries.site_verdict`): the SQL, the columns its policy allows for the
query's purpose, its per-query epsilon cap, its budgets for the analyst and for the study
(both in ``queries.sqlite`` in its state directory) and its row bound, charging nothing;
then its minimum cohort by a noisy test, which it charges to both budgets before deciding
(:mod:`tutela.dp.sql.cohort`). It answers with the reason when it refuses; when it
accepts, with the declared categories of the query's grouped columns and its SecAgg+
identity key bound to its certificate for this query. Its exact statistics stay in memory here.

On the round's first SecAgg+ message the site checks the plan against its own floor
(threshold), every peer's key against the deployment CA it holds, and the plan's noise
against the query's epsilon (:func:`~tutela.fl.queries.check_secure`); only then does it
charge both budgets and set its statistics as the masked input (weight 1). A refusal at any
point sends nothing more and charges nothing more. A ``closed`` task (the coordinator failed
the query, or restarted while it ran) drops the exact statistics and the SecAgg+ client the
site held for it; what it charged stays charged.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from tutela.dp.ledger import PrivacyLedger
from tutela.dp.sql.engine import SiteStatistics
from tutela.errors import BudgetExceeded, PolicyViolation, ProtocolAbort, TransportError
from tutela.fl.queries import QueryRequest, charge_query, check_secure, site_verdict
from tutela.secagg import SecAggClient, decode_message, encode_message
from tutela.secagg.client import ClientPolicy
from tutela.secagg.messages import AdvertiseKeysRequest
from tutela.server.agent.peers import bind_identity, verified_registry
from tutela.server.agent.transport import detail

if TYPE_CHECKING:
    from tutela.server.agent.site import SiteAgent

QUERY_TASK = "query"
INVITE_STAGE = "invite"
CLOSED_STAGE = "closed"
LEDGER_FILE = "queries.sqlite"


class SiteQueries:
    """The query tasks of one :class:`~tutela.server.agent.SiteAgent`.

    Attributes:
        refused: the queries this site refused or gave up, with the reason.
        answered: the queries whose secure round this site completed its part of.
    """

    def __init__(self, agent: SiteAgent) -> None:
        self.agent = agent
        self.refused: dict[str, str] = {}
        self.answered: set[str] = set()
        self._pending: dict[str, tuple[QueryRequest, SiteStatistics]] = {}
        self._clients: dict[str, SecAggClient] = {}

    @property
    def ledger(self) -> PrivacyLedger:
        """This site's ledger for queries (a scope per analyst and per study)."""
        self.agent.state_dir.mkdir(parents=True, exist_ok=True)
        return PrivacyLedger(self.agent.state_dir / LEDGER_FILE)

    def handle(self, task: dict[str, Any]) -> bool:
        """Do one query task; True if anything was sent."""
        query_id = str(task["query_id"])
        if task["stage"] == CLOSED_STAGE:
            return self._closed(query_id, task)
        if query_id in self.refused:
            return False
        try:
            if task["stage"] == INVITE_STAGE:
                return self._invite(query_id, task)
            return self._secagg(query_id, task)
        except (PolicyViolation, BudgetExceeded, ProtocolAbort, TransportError) as exc:
            self.refused[query_id] = str(exc)
            self._pending.pop(query_id, None)
            self._clients.pop(query_id, None)
            self.agent.log(f"{self.agent.name}: query {query_id} refused: {exc}")
            return False

    def _closed(self, query_id: str, task: dict[str, Any]) -> bool:
        """The coordinator closed a query this site accepted: drop what it held (the exact
        statistics, the SecAgg+ client), keep what it charged, and say so."""
        self._pending.pop(query_id, None)
        self._clients.pop(query_id, None)
        reason = str(task.get("reason") or "closed by the coordinator")
        if query_id not in self.answered:
            self.refused.setdefault(query_id, f"closed by the coordinator: {reason}")
        self.agent.log(f"{self.agent.name}: query {query_id} closed: {reason}")
        response = self.agent.transport.request(
            "POST", f"/v1/site/queries/{query_id}/closed", deadline=float(task["deadline"])
        )
        if response.status_code >= 300:
            raise ProtocolAbort(f"the close was not taken: {detail(response)}")
        return True

    def _invite(self, query_id: str, task: dict[str, Any]) -> bool:
        agent = self.agent
        try:
            request = QueryRequest.from_dict(task["request"])
        except ValueError as exc:
            verdict_reason: str | None = str(exc)
            body: dict[str, Any] = {"accept": False, "reason": verdict_reason}
        else:
            policy = agent.settings.policy
            verdict = site_verdict(
                agent.settings.data, policy, request, self.ledger, key=f"query/{query_id}"
            )
            if verdict.stats is None:
                body = {"accept": False, "reason": verdict.reason or "refused"}
            else:
                self._pending[query_id] = (request, verdict.stats)
                settings = agent.settings
                body = {
                    "accept": True,
                    "categories": verdict.categories,
                    "identity": agent.identity_public.hex(),
                    **bind_identity(
                        settings.cert_file, settings.key_file, query_id, agent.name,
                        agent.identity_public,
                    ),
                }  # fmt: skip
        if not body["accept"]:
            self.refused[query_id] = str(body["reason"])
            agent.log(f"{agent.name}: refusing query {query_id}: {body['reason']}")
        response = agent.transport.request(
            "POST", f"/v1/site/queries/{query_id}/answer", json=body,
            deadline=float(task["deadline"]),
        )  # fmt: skip
        if response.status_code >= 300:
            raise ProtocolAbort(f"the answer was not taken: {detail(response)}")
        return True

    def _start(self, query_id: str, task: dict[str, Any], message: object) -> SecAggClient:
        agent = self.agent
        if not isinstance(message, AdvertiseKeysRequest):
            raise ProtocolAbort(f"query {query_id}: no SecAgg+ state for stage {task['stage']!r}")
        pending = self._pending.get(query_id)
        if pending is None:
            raise ProtocolAbort(f"query {query_id}: this site did not accept it")
        request, stats = pending
        policy = agent.settings.policy
        floor = ClientPolicy(min_threshold=policy.min_secagg_threshold)
        try:
            floor.check(message.params)
        except ProtocolAbort as exc:
            raise PolicyViolation(f"query round refused: {exc}") from None
        registry = verified_registry(agent.ca, query_id, task["registry"])
        if registry.get(int(task["client_id"])) != agent.identity_public:
            raise ProtocolAbort("the coordinator lists another identity key for this site")
        check_secure(message.params, stats, request, policy.analytics.max_rows)
        charge_query(self.ledger, request, policy.analytics, key=f"query/{query_id}")
        client = SecAggClient(int(task["client_id"]), agent.identity, registry, policy=floor)
        client.set_input(stats.vector, weight=1.0)
        return client

    def _secagg(self, query_id: str, task: dict[str, Any]) -> bool:
        agent = self.agent
        message = decode_message(base64.b64decode(task["message"]))
        client = self._clients.get(query_id)
        if client is None:
            client = self._start(query_id, task, message)
            self._clients[query_id] = client
            self._pending.pop(query_id, None)  # the exact statistics are in the client now
        reply = client.handle(message)  # type: ignore[arg-type]
        response = agent.transport.request(
            "POST",
            f"/v1/site/queries/{query_id}/stages/{task['stage']}",
            content=encode_message(reply),
            headers={"Content-Type": "application/octet-stream"},
            deadline=float(task["deadline"]),
        )
        if response.status_code >= 300:
            raise ProtocolAbort(f"the {task['stage']} message was not taken: {detail(response)}")
        if task["stage"] == "unmask":
            self.answered.add(query_id)
            self._clients.pop(query_id, None)
        return True
