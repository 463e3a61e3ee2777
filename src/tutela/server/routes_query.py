"""Federated DP queries over HTTP: analysts submit and read them, sites answer them.

- ``POST /v1/admin/queries`` (``query:run``: the analyst role, or a data scientist): start a
  query; the analyst is the caller's credential. ``GET /v1/admin/queries?id=...``: its state
  and, once done, the answer (its own analyst or an admin).
- ``POST /v1/site/queries/{id}/answer``: a site accepts (categories, certificate-bound
  identity key) or refuses (reason); ``POST /v1/site/queries/{id}/stages/{stage}``: its
  SecAgg+ message; ``POST /v1/site/queries/{id}/closed``: it dropped its state for a
  failed query (after a ``closed`` task). The tasks themselves come with the site's other tasks
  (``GET /v1/site/tasks``).

The logic is :class:`~tutela.server.queries.Queries`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi import Query as QueryParam
from pydantic import BaseModel, ConfigDict, Field

from tutela.server.api import (
    Caller,
    coordinator_of,
    declared,
    read_body,
    run,
    wake,
)
from tutela.server.authz import Audience, Permission
from tutela.server.queries import Queries
from tutela.server.schemas import SiteNameField, StageName

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest SecAgg+ message a site sends for a query."""

QueryId = Annotated[str, PathParam(min_length=32, max_length=32, pattern="^[0-9a-f]{32}$")]
Category = Annotated[str, Field(max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueryIn(_Model):
    sql: str = Field(min_length=1, max_length=4000, description="Restricted DP SQL.")
    epsilon: float = Field(gt=0, le=10, description="The query's epsilon (each site's cost).")
    delta: float = Field(default=1e-6, gt=0, le=1e-3)
    purpose: str = Field(min_length=1, max_length=200, description="The study it serves.")
    sites: list[SiteNameField] | None = Field(default=None, max_length=1000)
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="Invitation deadline.")


class QueryCreated(_Model):
    id: str


class QueryAnswerIn(_Model):
    accept: bool
    reason: str = Field(default="", max_length=2000)
    categories: dict[str, Annotated[list[Category], Field(max_length=1000)]] | None = Field(
        default=None, max_length=64
    )
    identity: str | None = Field(default=None, min_length=64, max_length=64)
    certificate: str | None = Field(default=None, max_length=16384)
    binding: str | None = Field(default=None, max_length=1024)


def _queries(request: Request) -> Queries:
    queries: Queries = coordinator_of(request).queries
    return queries


def add_query_routes(app: FastAPI) -> None:
    """Add the analysts' and the sites' query routes to ``app``."""

    @app.post(
        "/v1/admin/queries",
        status_code=201,
        response_model=QueryCreated,
        **declared(Audience.PEOPLE, Permission.QUERY_RUN),
    )
    async def submit_query(body: QueryIn, request: Request, p: Caller) -> QueryCreated:
        """Start a federated DP query across the sites."""
        query_id = await run(
            lambda: _queries(request).submit(
                p, body.sql, body.epsilon, delta=body.delta, purpose=body.purpose,
                sites=body.sites, timeout_s=body.timeout_s,
            )
        )  # fmt: skip
        wake(request)
        return QueryCreated(id=query_id)

    # the id is a query parameter: a denial names the path, and the path holds no input
    @app.get("/v1/admin/queries", **declared(Audience.PEOPLE, Permission.QUERY_RUN))
    async def query_status(
        request: Request,
        p: Caller,
        query_id: Annotated[
            str, QueryParam(alias="id", min_length=32, max_length=32, pattern="^[0-9a-f]{32}$")
        ],
    ) -> dict[str, Any]:
        """A query's state and, once done, its answer with confidence intervals."""
        status: dict[str, Any] = await run(_queries(request).status, p, query_id)
        return status

    @app.post(
        "/v1/site/queries/{query_id}/answer",
        status_code=204,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT),
    )
    async def answer_query(
        query_id: QueryId, body: QueryAnswerIn, request: Request, p: Caller
    ) -> None:
        """Accept (categories, certificate-bound identity key) or refuse (reason) a query."""
        await run(_queries(request).answer, p.name, query_id, body.model_dump())
        wake(request)

    @app.post(
        "/v1/site/queries/{query_id}/closed",
        status_code=204,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT),
    )
    async def query_closed(query_id: QueryId, request: Request, p: Caller) -> None:
        """This site dropped its state for a failed query (its ``closed`` task is done)."""
        await run(_queries(request).closed, p.name, query_id)

    @app.post(
        "/v1/site/queries/{query_id}/stages/{stage}",
        status_code=204,
        **declared(Audience.SITES, Permission.ROUND_SUBMIT, binary_body="message"),
    )
    async def query_stage(query_id: QueryId, stage: StageName, request: Request, p: Caller) -> None:
        """This site's SecAgg+ message for the query's current stage."""
        body = await read_body(request, MAX_MESSAGE_BYTES)
        await run(_queries(request).receive, p.name, query_id, stage, body)
        wake(request)
