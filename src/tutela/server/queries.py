"""Federated DP queries at the coordinator: invite the sites, run one SecAgg+ round over the
statistics of those that accept, release only the noisy sum, audit everything.

A query (:class:`~tutela.fl.queries.QueryRequest`) goes through two phases:

1. **Invitation.** Every invited site gets a ``query`` task with the SQL, the epsilon, the
   delta and the purpose. Each checks it against its own policy and budgets, evaluates it
   locally (nothing leaves) and answers: a refusal with its reason (audited; nothing was
   charged but a site's noisy cohort test), or an acceptance with the declared categories of
   the query's grouped columns (public keys every site must share) and its SecAgg+ identity
   key bound to its certificate.
2. **Secure sum.** With at least 3 acceptances that agree on the categories, the coordinator
   plans a SecAgg+ round (:func:`~tutela.fl.queries.secure_config`: distributed noise sized
   for the round's minimum of survivors) and relays the server's messages in the sites'
   tasks. Each site checks the plan, charges its own ledgers, and sends only masked input.
   The coordinator learns the noisy sum, reads the answer table and its intervals from it
   (:func:`~tutela.dp.sql.release.answer_frame`) and audits the cost.

A query's lasting state (request, the sites' public answers, status, answer, error) is in
the coordinator's store (:mod:`tutela.server.query_store`); the SecAgg+ server's secrets
live in memory only and must not outlive the process, so a restarted coordinator closes the
queries the previous process left running, with the reason, and tells every site that
accepted one (a ``closed`` task) so it drops what it held (sites that charged keep their
charge; the analyst submits again). Every failed query is closed that way.

What the coordinator keeps of a query, its request, the sites'
answers, every message it relayed or received and the answer, is :meth:`Queries.record`:
none of it holds a site's exact statistics, only masked vectors and the noisy sum. The
audit log records what each query reads (its columns and grouped columns) and the
categories each accepting site declared, so an auditor can hold every site's answers against
the analytics policy it signs (:mod:`tutela.governance.query_evidence`).

Security: the coordinator may be curious and may deviate. It cannot lower the noise (each
site checks the plan's guaranteed multiplier against the query's epsilon before charging),
substitute a peer's key (sites check every peer against the deployment CA), or unmask a
survivor set the sites did not sign (SecAgg+ consistency check). It can drop sites or stop
the round: the sum is then never released, and sites that already charged stay charged.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from sqlalchemy import select

from tutela.dp.sql.engine import QueryShape
from tutela.dp.sql.parse import SelectQuery, parse_sql
from tutela.errors import DataError, PermissionDenied, ProtocolAbort, QuorumNotMet
from tutela.fl.queries import QueryRequest, released_sigma, secure_config, shape_for
from tutela.server.authz import Principal, Role
from tutela.server.core import COORDINATOR, ConflictError, Core, NotFoundError
from tutela.server.query_store import RESTART_ERROR, StoredQuery, load_queries, save_query
from tutela.server.store import SiteRow

__all__ = ["INVITE_STAGE", "QUERY_TASK", "Queries", "QueryStatus"]

QUERY_TASK = "query"
"""The task kind of every query task a site gets."""
INVITE_STAGE = "invite"
"""The stage of a query's invitation."""
CLOSED_STAGE = "closed"
"""The stage telling an accepting site that a failed query is closed (drop its state)."""
MIN_SITES = 3
"""SecAgg+ needs at least 3 sites."""
MAX_KEPT = 1000
"""Finished queries kept in memory (their answers readable); older ones are forgotten (the
audit log keeps every query and its cost)."""
MAX_ROWS = 2**24
"""The coordinate range of a query round: the most rows one site's counts may reach (each
site checks it against its own ``analytics.max_rows``)."""


class QueryStatus(StrEnum):
    """Where a query is."""

    INVITING = "inviting"
    AGGREGATING = "aggregating"
    DONE = "done"
    FAILED = "failed"


_FINISHED = (QueryStatus.DONE, QueryStatus.FAILED)


@dataclass
class _Query:
    id: str
    request: QueryRequest
    sites: tuple[str, ...]
    created_by: str
    deadline: float
    stage_timeout_s: float
    status: QueryStatus = QueryStatus.INVITING
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    server: Any = None
    ids: dict[str, int] = field(default_factory=dict)
    peers: dict[str, Any] = field(default_factory=dict)
    shape: QueryShape | None = None
    pending: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    replied: set[tuple[str, str]] = field(default_factory=set)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    closing: set[str] = field(default_factory=set)
    """Accepting sites not yet told that this failed query is closed."""

    @property
    def refused(self) -> dict[str, str]:
        return {s: str(a.get("reason", "")) for s, a in self.answers.items() if not a["accept"]}

    @property
    def accepted(self) -> list[str]:
        return sorted(s for s, a in self.answers.items() if a["accept"])


class Queries:
    """The coordinator's federated queries (see the module docstring)."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._queries: dict[str, _Query] = {}
        self._restore()

    # the store ----------------------------------------------------------------------------

    def _store(self, q: _Query) -> None:
        """Write ``q``'s lasting state (never the SecAgg+ server's) to the store."""
        stored = StoredQuery(
            q.id, q.request.as_dict(), q.sites, q.created_by, q.status.value, q.deadline,
            q.stage_timeout_s, q.answers, q.result, q.error, tuple(sorted(q.closing)),
        )  # fmt: skip
        with self.core.store.session() as s:
            save_query(s, stored, self.core.clock())

    def _restore(self) -> None:
        """Load the stored queries; close those a previous process left running."""
        with self.core.store.read() as s:
            stored = load_queries(s, limit=MAX_KEPT)
        for row in stored:
            q = _Query(
                row.id, QueryRequest.from_dict(row.request), row.sites, row.created_by,
                row.deadline, row.stage_timeout_s, QueryStatus(row.status), dict(row.answers),
                result=row.result, error=row.error, closing=set(row.closing),
            )  # fmt: skip
            self._queries[q.id] = q
            if q.status not in _FINISHED:
                self._fail(q, RESTART_ERROR)

    # analysts ----------------------------------------------------------------------------

    def submit(
        self,
        principal: Principal,
        sql: str,
        epsilon: float,
        *,
        delta: float = 1e-6,
        purpose: str,
        sites: list[str] | None = None,
        timeout_s: float = 60.0,
    ) -> str:
        """Start a query; its id. The analyst is the caller (never a name in the body).

        Raises:
            DataError: malformed SQL or parameters, or fewer than 3 enrolled sites invited.
        """
        try:
            request = QueryRequest(sql, epsilon, delta, purpose, principal.name)
            parsed = parse_sql(sql)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        with self.core.store.read() as s:
            active = set(s.scalars(select(SiteRow.name).where(SiteRow.status == "active")))
        invited = tuple(sorted(active if sites is None else set(sites)))
        unknown = sorted(set(invited) - active)
        if unknown:
            raise DataError(f"not enrolled: {', '.join(unknown)}")
        if len(invited) < MIN_SITES:
            raise DataError(f"a query needs at least {MIN_SITES} enrolled sites")
        now = self.core.clock()
        query_id = uuid.uuid4().hex
        with self.core.lock:
            self._queries[query_id] = _Query(
                query_id, request, invited, principal.name, now + timeout_s, timeout_s
            )
            self._store(self._queries[query_id])
            finished = [k for k, v in self._queries.items() if v.status in _FINISHED]
            for old in finished[: max(0, len(finished) - MAX_KEPT)]:
                del self._queries[old]
        self.core.bell.ring(invited)  # their waiting task requests see the invitation now
        self.core.audit(
            principal.label,
            "query.submit",
            f"query/{query_id}",
            "ok",
            {**request.as_dict(), "sites": list(invited), "reads": _reads(parsed)},
        )
        return query_id

    def status(self, principal: Principal, query_id: str) -> dict[str, Any]:
        """A query's state and, once done, its answer (its own analyst or an admin)."""
        q = self._get(query_id)
        if principal.role is not Role.ADMIN and principal.name != q.created_by:
            raise PermissionDenied(f"query {query_id} belongs to another analyst")
        return {
            "id": q.id,
            "status": q.status.value,
            "request": q.request.as_dict(),
            "sites": list(q.sites),
            "accepted": q.accepted,
            "refused": q.refused,
            "result": q.result,
            "error": q.error,
        }

    def record(self, query_id: str) -> dict[str, Any]:
        """Everything the coordinator keeps of a query: request, answers, the messages it
        relayed and received (base64), the result."""
        q = self._get(query_id)
        return {
            "request": q.request.as_dict(),
            "answers": q.answers,
            "transcript": list(q.transcript),
            "result": q.result,
        }

    def _get(self, query_id: str) -> _Query:
        q = self._queries.get(query_id)
        if q is None:
            raise NotFoundError(f"unknown query {query_id!r}")
        return q

    # sites --------------------------------------------------------------------------------

    def tasks_for(self, site: str) -> list[dict[str, Any]]:
        """The query tasks ``site`` has now: invitations to answer, SecAgg+ stages."""
        out: list[dict[str, Any]] = []
        if not self._queries:  # no query at all: no need to wait for the coordinator lock
            return out  # (a query created later rings the bell, and this is asked again)
        with self.core.lock:
            for q in self._queries.values():
                if site not in q.sites:
                    continue
                base = {"kind": QUERY_TASK, "query_id": q.id, "request": q.request.as_dict()}
                if q.status is QueryStatus.FAILED and site in q.closing:
                    out.append({**base, "stage": CLOSED_STAGE, "reason": q.error or "failed",
                                "deadline": self.core.clock() + q.stage_timeout_s})  # fmt: skip
                elif q.status is QueryStatus.INVITING and site not in q.answers:
                    out.append({**base, "stage": INVITE_STAGE, "deadline": q.deadline})
                elif q.status is QueryStatus.AGGREGATING and site in q.pending:
                    stage, body = q.pending[site]
                    if (site, stage) in q.replied:
                        continue
                    out.append(
                        {
                            **base,
                            "stage": stage,
                            "deadline": float(q.server.deadline),
                            "client_id": q.ids[site],
                            "registry": q.peers,
                            "message": base64.b64encode(body).decode(),
                        }
                    )
        return out

    def answer(self, site: str, query_id: str, body: dict[str, Any]) -> None:
        """A site's acceptance or refusal of an invitation (refusals audited with reason).

        Raises:
            PermissionDenied: the site is not invited.
            ConflictError: the invitation is closed or already answered otherwise.
        """
        q = self._get(query_id)
        if site not in q.sites:
            raise PermissionDenied(f"site {site} is not invited to query {query_id}")
        accept = bool(body.get("accept"))
        with self.core.lock:
            if q.status is not QueryStatus.INVITING:
                raise ConflictError(f"query {query_id} no longer takes answers")
            if site in q.answers:
                if q.answers[site]["accept"] == accept:
                    return
                raise ConflictError(f"site {site} already answered query {query_id}")
            entry: dict[str, Any] = {"accept": accept}
            if accept:
                for key in ("identity", "certificate", "binding"):
                    if not isinstance(body.get(key), str):
                        raise DataError(f"an acceptance carries the site's {key}")
                    entry[key] = body[key]
                entry["categories"] = body.get("categories") or {}
            else:
                entry["reason"] = str(body.get("reason") or "refused")[:2000]
            q.answers[site] = entry
            q.transcript.append({"from": site, "stage": INVITE_STAGE, "json": dict(entry)})
            self._store(q)
        self.core.audit(
            f"site:{site}",
            "query.accept" if accept else "query.refuse",
            f"query/{query_id}",
            "ok" if accept else "refused",
            {"categories": entry["categories"]} if accept else {"reason": entry["reason"]},
        )

    def closed(self, site: str, query_id: str) -> None:
        """``site`` took note that the failed query is closed (it dropped its state)."""
        q = self._get(query_id)
        with self.core.lock:
            if site in q.closing:
                q.closing.discard(site)
                self._store(q)

    def receive(self, site: str, query_id: str, stage: str, body: bytes) -> None:
        """A site's SecAgg+ message for the query's current stage.

        Raises:
            ConflictError: no round in that stage, or the protocol rejected the message.
            DataError: a malformed message.
        """
        from tutela.secagg import MalformedMessage, decode_message

        q = self._get(query_id)
        with self.core.lock:
            if q.status is not QueryStatus.AGGREGATING or site not in q.ids:
                raise ConflictError(f"query {query_id} runs no secure round with {site}")
            if q.server.stage is None or q.server.stage.value != stage:
                raise ConflictError(f"query {query_id} is not in stage {stage!r}")
            try:
                message = decode_message(body)
            except MalformedMessage as exc:
                raise DataError(f"malformed secure-aggregation message: {exc}") from None
            if not q.server.receive(q.ids[site], message):
                raise ConflictError(
                    f"secure aggregation rejected the message: {q.server.rejected[-1][1]}"
                )
            q.replied.add((site, stage))
            q.transcript.append(
                {"from": site, "stage": stage, "bytes": base64.b64encode(body).decode()}
            )

    # driving ------------------------------------------------------------------------------

    def tick(self) -> bool:
        """Advance every open query by one step; True if anything moved."""
        moved = False
        with self.core.lock:
            for q in list(self._queries.values()):
                if q.status is QueryStatus.INVITING:
                    moved |= self._close_invitation(q)
                elif q.status is QueryStatus.AGGREGATING:
                    moved |= self._advance(q)
        return moved

    def _close_invitation(self, q: _Query) -> bool:
        if len(q.answers) < len(q.sites) and self.core.clock() < q.deadline:
            return False
        accepted = q.accepted
        if len(accepted) < MIN_SITES:
            self._fail(q, f"{len(accepted)} site(s) accepted; a query needs {MIN_SITES}")
            return True
        cats = [q.answers[s]["categories"] for s in accepted]
        if any(c != cats[0] for c in cats):
            self._fail(q, "the sites declare different categories for the query's columns")
            return True
        from tutela.secagg import SecAggServer

        try:
            shape = shape_for(q.request, cats[0])
            config = secure_config(
                shape, q.request.noise_multiplier, len(accepted), MAX_ROWS,
                stage_timeout_s=q.stage_timeout_s,
            )  # fmt: skip
            q.ids = {site: i for i, site in enumerate(accepted)}
            params = config.plan(
                tuple(q.ids.values()), shape.dim, max_weight=1.0, round_id=secrets.token_bytes(32)
            )
        except ValueError as exc:
            self._fail(q, f"the query round cannot be planned: {exc}")
            return True
        registry = {q.ids[s]: bytes.fromhex(q.answers[s]["identity"]) for s in accepted}
        q.peers = {
            str(q.ids[s]): {
                "site": s,
                "identity": q.answers[s]["identity"],
                "certificate": q.answers[s]["certificate"],
                "binding": q.answers[s]["binding"],
            }
            for s in accepted
        }
        q.shape = shape
        q.server = SecAggServer(params, registry, clock=self.core.clock)
        q.status = QueryStatus.AGGREGATING
        self._store(q)
        self._post(q, q.server.start())
        return True

    def _advance(self, q: _Query) -> bool:
        try:
            outbox = q.server.step()
        except (QuorumNotMet, ProtocolAbort) as exc:
            self._fail(q, f"the secure round stopped: {exc}")
            return True
        if outbox is None:
            return False
        if outbox:
            self._post(q, outbox)
            return True
        self._finish(q)
        return True

    def _post(self, q: _Query, outbox: dict[int, Any]) -> None:
        from tutela.secagg import encode_message

        site_of = {cid: site for site, cid in q.ids.items()}
        q.pending = {}
        stage = q.server.stage.value
        for cid, message in outbox.items():
            body = encode_message(message)
            q.pending[site_of[cid]] = (stage, body)
            q.transcript.append(
                {"to": site_of[cid], "stage": stage, "bytes": base64.b64encode(body).decode()}
            )

    def _finish(self, q: _Query) -> None:
        from tutela.dp.sql.release import answer_frame

        result = q.server.result()
        site_of = {cid: site for site, cid in q.ids.items()}
        survivors = sorted(site_of[c] for c in result.survivors)
        sigma = released_sigma(q.server.params, len(survivors))
        assert q.shape is not None
        frame = answer_frame(q.shape, np.asarray(result.total, np.float64), sigma)
        q.result = {
            "rows": json.loads(frame.to_json(orient="records")),
            "columns": [str(c) for c in frame.columns],
            "statistics": [float(v) for v in result.total],
            "sigma": sigma,
            "sites": survivors,
            "epsilon": q.request.epsilon,
            "delta": q.request.delta,
        }
        q.status = QueryStatus.DONE
        q.pending = {}
        q.server = None
        self._store(q)
        self.core.audit(
            COORDINATOR,
            "query.answer",
            f"query/{q.id}",
            "ok",
            {
                "epsilon": q.request.epsilon,
                "delta": q.request.delta,
                "charged_at": survivors,
                "refused": q.refused,
                "noise_std": sigma,
                "analyst": q.request.analyst,
                "purpose": q.request.purpose,
            },
        )

    def _fail(self, q: _Query, error: str) -> None:
        q.status = QueryStatus.FAILED
        q.error = error
        q.pending = {}
        q.server = None
        q.closing = set(q.accepted)  # they hold state for it: each gets a "closed" task
        self._store(q)
        self.core.audit(
            COORDINATOR, "query.fail", f"query/{q.id}", "failed",
            {"error": error, "refused": q.refused},
        )  # fmt: skip


def _reads(query: SelectQuery) -> dict[str, list[str]]:
    """What a query reads, for the audit log: its columns and the columns it groups by (or
    takes a categorical histogram of)."""
    grouped = list(query.group_by)
    for a in query.aggregates:
        categorical = a.kind.value == "histogram" and a.bounds is None
        if categorical and a.column is not None and a.column not in grouped:
            grouped.append(a.column)
    return {"columns": list(query.columns), "grouped": grouped}
