"""Where DP SQL meets the site policy and secure aggregation: what a site and the
coordinator both compute for a federated query.

- :func:`sql_policy`: the site policy's verdict on which of a table's columns a query for a
  purpose may read, and what it may group by (``[purposes]``, never-share and direct
  identifiers as for studies, ``[analytics]`` for categories, cohort minimum and epsilon cap).
- :class:`QueryRequest`: what an analyst asks (the SQL, epsilon, delta, purpose) and who.
- :func:`secure_config`: the SecAgg+ round that sums the sites' statistics vectors, with
  distributed discrete-Gaussian noise sized so that the round's *minimum* of survivors
  alone carries the query's noise (:func:`guaranteed_multiplier`); :func:`check_secure` is
  a site's check of that plan before it charges or sends anything.
- :func:`preview_charge` and :func:`charge_query`: a site's two budgets for queries, one per
  analyst and one per study (the purpose), in its own ledger.
- :func:`federated_query`: the same protocol in process (one SecAgg+ round over the sites'
  tables), for tests, simulations and benchmarks.

Privacy: each site's statistics vector has L2 sensitivity ``sqrt(slots a row touches)``
(:mod:`tutela.dp.sql.engine`) and enters the sum clipped to the round's coordinate range,
which the site checks covers its rows, with weight 1. The noise on the released sum is at
least ``sqrt(min_survivors)`` shares of per-site std, so the release is ``GaussianEvent(z)``
under adding or removing one row at one site (the rounding step counted in the sensitivity
as for training rounds), whoever drops. Every site charges ``GaussianEvent(z)`` for the
requested epsilon to both of its scopes before it sends its masked input. Before that, at
the invitation, a site with a minimum cohort charges its noisy cohort test
(``analytics.cohort_share`` of the epsilon, :mod:`tutela.dp.sql.cohort`) and keeps it
charged when the test refuses; a site that refuses for any other reason (policy, budget)
charges nothing and takes no part.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tutela.dp.events import ComposedEvent, Event, GaussianEvent
from tutela.dp.ledger import PrivacyLedger, SpendRecord
from tutela.dp.sql.cohort import CohortTest, cohort_test
from tutela.dp.sql.engine import (
    QueryShape,
    SiteStatistics,
    SqlPolicy,
    TableSource,
    check,
    evaluate,
    shape_of,
)
from tutela.dp.sql.parse import MAX_SQL_CHARS, parse_sql
from tutela.dp.sql.release import (
    answer_frame,
    check_query_epsilon,
    noise_multiplier,
    query_epsilon,
)
from tutela.errors import BudgetExceeded, PolicyViolation, QuorumNotMet
from tutela.fl.privacy.fedavg import guaranteed_sigma
from tutela.governance.analytics import AnalyticsPolicy
from tutela.governance.minimisation import SitePolicy, normalise_column
from tutela.hazmat.rng import SecureRandom
from tutela.secagg import DropoutPlan, RoundParams, SecAggConfig, secure_sum

__all__ = [
    "FederatedAnswer",
    "QueryRequest",
    "SiteVerdict",
    "charge_query",
    "check_secure",
    "cohort_test_of",
    "federated_query",
    "guaranteed_multiplier",
    "preview_charge",
    "query_scopes",
    "released_sigma",
    "secure_config",
    "site_verdict",
    "sql_policy",
]

MODULUS_BITS = 64
"""SecAgg+ word size of a query round (counts up to the row bound need the room)."""
MAX_QUERY_EPSILON = 10.0
"""The largest epsilon one federated query may ask for (each site caps it lower)."""
MAX_QUERY_DELTA = 1e-3
"""The largest delta one federated query may ask for."""


def sql_policy(policy: SitePolicy, purpose: str, header: Iterable[str]) -> SqlPolicy:
    """What queries for ``purpose`` may touch in a table with columns ``header``.

    Raises:
        PolicyViolation: the site does not accept the purpose.
    """
    allowed = policy.allowed_columns(purpose)
    analytics = policy.analytics
    declared = {normalise_column(k): v for k, v in analytics.categories.items()}
    columns: set[str] = set()
    refusals: dict[str, str] = {}
    categories: dict[str, tuple[str, ...]] = {}
    for column in header:
        why = policy.never_leaves(column)
        if why is not None:
            refusals[column] = why
            continue
        norm = normalise_column(column)
        if norm not in allowed:
            refusals[column] = f"not allowed for purpose {purpose!r}"
            continue
        columns.add(column)
        if norm in declared:
            categories[column] = declared[norm]
    return SqlPolicy(
        columns=frozenset(columns),
        categories=categories,
        min_cohort=analytics.min_cohort,
        cohort_share=analytics.cohort_share,
        max_query_epsilon=analytics.max_query_epsilon,
        refusals=refusals,
    )


# -- the request ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryRequest:
    """What an analyst asks of the sites.

    Attributes:
        sql: the query (restricted SQL, :mod:`tutela.dp.sql.parse`).
        epsilon: the query's epsilon at ``delta`` (every site charges it).
        delta: the delta the noise is calibrated at.
        purpose: the study the query serves (the site policy's purpose, and the budget
            scope per study).
        analyst: who asks (the budget scope per analyst; the coordinator sets it from the
            caller's credential, never from the request body).
    """

    sql: str
    epsilon: float
    delta: float
    purpose: str
    analyst: str

    def __post_init__(self) -> None:
        if not isinstance(self.sql, str) or not 0 < len(self.sql) <= MAX_SQL_CHARS:
            raise ValueError(f"sql must be a string of 1 to {MAX_SQL_CHARS} characters")
        eps = float(self.epsilon)
        if not (math.isfinite(eps) and 0 < eps <= MAX_QUERY_EPSILON):
            raise ValueError(f"epsilon must be in (0, {MAX_QUERY_EPSILON:g}], got {self.epsilon!r}")
        if not 0 < float(self.delta) <= MAX_QUERY_DELTA:
            raise ValueError(f"delta must be in (0, {MAX_QUERY_DELTA:g}], got {self.delta!r}")
        for name in ("purpose", "analyst"):
            value = getattr(self, name)
            if not isinstance(value, str) or not 0 < len(value) <= 200:
                raise ValueError(f"{name} must be a string of 1 to 200 characters")
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(self, "delta", float(self.delta))

    @property
    def noise_multiplier(self) -> float:
        """z of the release at (epsilon, delta)."""
        return noise_multiplier(self.epsilon, self.delta)

    @property
    def event(self) -> Event:
        """What every site charges: ``GaussianEvent(z)``."""
        return GaussianEvent(self.noise_multiplier)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "sql": self.sql,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "purpose": self.purpose,
            "analyst": self.analyst,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueryRequest:
        """Inverse of :meth:`as_dict` (validated)."""
        try:
            return cls(
                str(data["sql"]),
                float(data["epsilon"]),
                float(data["delta"]),
                str(data["purpose"]),
                str(data["analyst"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed query request: {exc}") from None


def query_scopes(request: QueryRequest) -> tuple[str, str]:
    """A site's two ledger scopes a query is charged to: its analyst's and its study's."""
    return f"query-analyst:{request.analyst}", f"query-study:{request.purpose}"


def _scopes(ledger: PrivacyLedger, request: QueryRequest, analytics: AnalyticsPolicy) -> list[str]:
    analyst, study = query_scopes(request)
    known = {b.scope for b in ledger.scopes()}
    for scope, budget in ((analyst, analytics.analyst_epsilon), (study, analytics.study_epsilon)):
        if scope not in known:
            ledger.create_scope(scope, budget, analytics.delta, exist_ok=True)
    return [analyst, study]


def cohort_test_of(request: QueryRequest, analytics: AnalyticsPolicy) -> CohortTest | None:
    """A site's minimum-cohort test for ``request`` (``None`` when its minimum is 1)."""
    return cohort_test(analytics.min_cohort, analytics.cohort_share, request.epsilon)


def preview_charge(
    ledger: PrivacyLedger,
    request: QueryRequest,
    analytics: AnalyticsPolicy,
    *,
    extra: Event | None = None,
) -> None:
    """Refuse a query that either budget cannot afford (nothing is charged either way);
    ``extra`` is charged with the release (the cohort test, before it is run).

    Raises:
        BudgetExceeded: naming the scope.
    """
    event = request.event if extra is None else ComposedEvent([extra, request.event])
    for scope in _scopes(ledger, request, analytics):
        after = ledger.preview(scope, event)
        budget = ledger.budget(scope).epsilon
        if after > budget * (1 + 1e-9):
            raise BudgetExceeded(
                f"query refused: {scope} would reach epsilon {after:.4g} past its budget of "
                f"{budget:g} at this site; nothing was charged"
            )


def charge_query(
    ledger: PrivacyLedger, request: QueryRequest, analytics: AnalyticsPolicy, key: str
) -> list[SpendRecord]:
    """Charge both scopes (previewed first, so a refusal charges neither); ``key`` makes a
    retry charge nothing more.

    Raises:
        BudgetExceeded: either scope cannot afford it (nothing charged).
    """
    preview_charge(ledger, request, analytics)
    label = f"query {key} by {request.analyst} for {request.purpose}: {request.sql}"[:500]
    return [
        ledger.charge(scope, request.event, label=label, idempotency_key=key)
        for scope in _scopes(ledger, request, analytics)
    ]


# -- a site's verdict ----------------------------------------------------------------------


@dataclass(frozen=True)
class SiteVerdict:
    """A site's answer to an invitation: its statistics (kept at the site) or why not.

    Attributes:
        stats: the exact statistics (``None`` when refused); they never leave the site.
        categories: the declared categories of the query's grouped and categorical columns
            (public: every site must sum over the same keys).
        reason: why the site refuses (``None`` when it accepts).
        charged: the ledger records of the minimum-cohort test (empty when no test ran).
    """

    stats: SiteStatistics | None
    categories: dict[str, list[str]] = field(default_factory=dict)
    reason: str | None = None
    charged: tuple[SpendRecord, ...] = ()


def site_verdict(
    data: str | Path | pd.DataFrame,
    policy: SitePolicy,
    request: QueryRequest,
    ledger: PrivacyLedger,
    *,
    key: str,
    rng: SecureRandom | None = None,
) -> SiteVerdict:
    """Everything a site checks before it accepts a query: the SQL, the purpose's columns,
    the epsilon cap, both budgets (for the cohort test and the release together), the row
    bound, then the noisy minimum-cohort test (:mod:`tutela.dp.sql.cohort`).

    Only the cohort test is charged here, to both scopes (idempotency key ``key +
    "/cohort"``), before it is decided; it stays charged when it refuses. Every other
    refusal charges nothing. Malformed queries and refusals come back as a reason, not an
    exception.
    """
    analytics = policy.analytics
    charged: tuple[SpendRecord, ...] = ()
    try:
        source = TableSource.of(data)
        limits = sql_policy(policy, request.purpose, source.header())
        shape = check(parse_sql(request.sql), limits, source.header())
        check_query_epsilon(query_epsilon(request.noise_multiplier, analytics.delta), limits)
        test = cohort_test_of(request, analytics)
        preview_charge(ledger, request, analytics, extra=None if test is None else test.event)
        stats = evaluate(shape, source)
        if stats.rows > analytics.max_rows or _rows(source) > analytics.max_rows:
            raise PolicyViolation(
                f"query refused: this site answers over at most {analytics.max_rows} rows"
            )
        if test is not None:
            label = f"minimum-cohort test of query {key} by {request.analyst}: {request.sql}"
            charged = tuple(
                ledger.charge(scope, test.event, label=label[:500], idempotency_key=f"{key}/cohort")
                for scope in _scopes(ledger, request, analytics)
            )
            refused = test.decide(stats, rng=rng)
            if refused is not None:
                raise PolicyViolation(refused)
    except (PolicyViolation, BudgetExceeded, ValueError) as exc:
        return SiteVerdict(None, reason=str(exc), charged=charged)
    used = _categorical(shape)
    return SiteVerdict(stats, {c: list(limits.categories[c]) for c in used}, charged=charged)


def _rows(source: TableSource) -> int:
    if source.frame is not None:
        return len(source.frame)
    con = source.connect()
    try:
        sql, params = source._from()
        row = con.execute(f"SELECT count(*) FROM {sql}", params).fetchone()  # noqa: S608 - constant
    finally:
        con.close()
    return int(row[0]) if row else 0


def _categorical(shape: QueryShape) -> list[str]:
    q = shape.query
    out = list(q.group_by)
    out += [a.column for a in q.aggregates if a.column is not None and a.bounds is None
            and a.kind.value == "histogram" and a.column not in out]  # fmt: skip
    return out


def shape_for(request: QueryRequest, categories: Mapping[str, list[str]]) -> QueryShape:
    """The query's shape from the categories the sites declared (what the coordinator
    computes to read the answer)."""
    return shape_of(
        parse_sql(request.sql),
        SqlPolicy(categories={k: tuple(v) for k, v in categories.items()}),
    )


# -- the secure round ----------------------------------------------------------------------


def guaranteed_multiplier(params: RoundParams, sensitivity: float) -> float:
    """The noise multiplier a query round guarantees: the noise on the sum at the round's
    ``min_survivors`` over the sensitivity plus one rounding step per coordinate."""
    step = params.max_weight / params.scale
    return guaranteed_sigma(params) / (sensitivity + step * math.sqrt(params.dim))


def released_sigma(params: RoundParams, survivors: int) -> float:
    """The noise's standard deviation on each released statistic with ``survivors`` sites
    (each added its discrete-Gaussian share)."""
    step = params.max_weight / params.scale
    return math.sqrt(params.noise_variance * survivors) * step


def secure_config(
    shape: QueryShape, z: float, n_sites: int, max_rows: int, *, stage_timeout_s: float = 30.0
) -> SecAggConfig:
    """The SecAgg+ settings of a query round among ``n_sites``: coordinates in
    ``[-max_rows, max_rows]``, weight 1, distributed noise for multiplier ``z`` at the
    round's minimum of survivors (rounding included)."""
    sens = shape.sensitivity
    sigma = z * sens
    ids = tuple(range(n_sites))
    for _ in range(50):  # the rounding step grows with the noise: settle it
        config = SecAggConfig(
            modulus_bits=MODULUS_BITS,
            clip=float(max_rows),
            max_weight=1.0,
            ddp_sigma=sigma,
            stage_timeout_s=stage_timeout_s,
        )
        params = config.plan(ids, shape.dim, max_weight=1.0, round_id=bytes(32))
        if guaranteed_multiplier(params, sens) >= z:
            return config
        sigma *= 1.01
    raise ValueError("cannot plan the query round's noise")  # pragma: no cover


def check_secure(
    params: RoundParams, stats: SiteStatistics, request: QueryRequest, max_rows: int
) -> None:
    """A site's check of the round's plan before it charges or sends anything.

    Raises:
        PolicyViolation: the plan is not this query's round (vector length, weight), its
            coordinate range does not hold the site's counts or exceeds the site's row
            bound, or its noise is below what the query's epsilon needs.
    """
    reasons = []
    if params.dim != stats.shape.dim:
        reasons.append(f"vector length {params.dim}, the site sends {stats.shape.dim}")
    if params.max_weight != 1.0:
        reasons.append(f"weight bound {params.max_weight}, the site sends weight 1")
    if not stats.rows <= params.clip <= max_rows:
        reasons.append(f"coordinate range {params.clip:g} does not fit the site's row bound")
    z = request.noise_multiplier
    got = guaranteed_multiplier(params, stats.shape.sensitivity)
    if not got >= z * (1 - 1e-9):
        reasons.append(f"noise multiplier {got:.6g} below the {z:.6g} the query's epsilon needs")
    if reasons:
        raise PolicyViolation("query round refused: " + "; ".join(reasons))


# -- in process ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FederatedAnswer:
    """A federated query's answer and how it was made.

    Attributes:
        frame: the answer table (:func:`~tutela.dp.sql.release.answer_frame`).
        statistics: the noisy summed statistics.
        sigma: the noise's standard deviation on each statistic.
        sites: the sites whose statistics are in the sum.
        refused: the sites that refused, with their reasons.
        epsilon: the query's epsilon (each site charged it).
        delta: its delta.
    """

    frame: pd.DataFrame
    statistics: np.ndarray[Any, Any]
    sigma: float
    sites: list[str]
    refused: dict[str, str]
    epsilon: float
    delta: float


def federated_query(
    tables: Mapping[str, str | Path | pd.DataFrame],
    request: QueryRequest,
    policies: Mapping[str, SitePolicy],
    ledgers: Mapping[str, PrivacyLedger],
    *,
    dropouts: DropoutPlan | None = None,
) -> FederatedAnswer:
    """One federated query in process, as the coordinator and its site agents run it: each
    site's verdict (refusals charge nothing), then one SecAgg+ round over the accepting
    sites' statistics with the same plan, checks and charges.

    Raises:
        QuorumNotMet: fewer than 3 sites accept, or they declare different categories.
    """
    key = f"in-process/{secrets.token_hex(16)}"
    verdicts = {name: site_verdict(tables[name], policies[name], request, ledgers[name], key=key)
                for name in sorted(tables)}  # fmt: skip
    refused = {n: v.reason for n, v in verdicts.items() if v.reason is not None}
    accepted = [n for n, v in verdicts.items() if v.stats is not None]
    if len(accepted) < 3:
        raise QuorumNotMet(f"{len(accepted)} site(s) accepted the query; it needs 3: {refused}")
    cats = [verdicts[n].categories for n in accepted]
    if any(c != cats[0] for c in cats):
        raise QuorumNotMet("the sites declare different categories for the query's columns")
    shape = shape_for(request, cats[0])
    max_rows = min(policies[n].analytics.max_rows for n in accepted)
    config = secure_config(shape, request.noise_multiplier, len(accepted), max_rows)
    ids = tuple(range(len(accepted)))
    params = config.plan(ids, shape.dim, max_weight=1.0, round_id=secrets.token_bytes(32))
    inputs = {}
    for i, name in enumerate(accepted):
        stats = verdicts[name].stats
        assert stats is not None
        check_secure(params, stats, request, policies[name].analytics.max_rows)
        charge_query(ledgers[name], request, policies[name].analytics, key=key)
        inputs[i] = stats.vector
    result = secure_sum(inputs, None, config, dropouts=dropouts)
    sigma = released_sigma(result.params, len(result.survivors))
    return FederatedAnswer(
        answer_frame(shape, result.total, sigma),
        np.asarray(result.total, np.float64),
        sigma,
        [accepted[i] for i in result.survivors],
        refused,
        request.epsilon,
        request.delta,
    )
