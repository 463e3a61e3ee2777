"""Where DP SQL meets the site policy and secure aggregation: what a site and the
coordinator both compute for a federated query.

- :func:`sql_policy`: the site policy's verdict on which of a table's columns a query for a
  purpose may read, and what it may group by (``[purposes]``, never-share and direct
  identifiers as for studies, ``[analytics]`` for categories, cohort minimum and epsilon cap).
"""

from __future__ import annotations

from collections.abc import Iterable

from tutela.dp.sql.engine import SqlPolicy
from tutela.governance.minimisation import SitePolicy, normalise_column

__all__ = ["sql_policy"]


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
        max_query_epsilon=analytics.max_query_epsilon,
        refusals=refusals,
    )
