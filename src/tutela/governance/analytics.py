"""The ``[analytics]`` table of a site policy: what DP queries this site answers.

::

    [analytics]
    min_cohort = 10              # fewest rows a query's cohort (and each group) may hold (10)
    cohort_share = 0.1           # share of a query's epsilon its cohort test spends (0.1)
    max_query_epsilon = 1.0      # largest epsilon one query may spend here (1.0)
    analyst_epsilon = 3.0        # total epsilon per analyst, over all studies (3.0)
    study_epsilon = 5.0          # total epsilon per study, over all analysts (5.0)
    delta = 1e-6                 # delta of those budgets (1e-6)
    max_rows = 16777216          # most rows the site answers over (2**24)

    [analytics.categories]       # the columns queries may GROUP BY, with their categories
    sex = ["F", "M"]
    diabetic = ["true", "false"]

Queries read only the columns the query's purpose allows (``[purposes]``, never-share and
direct identifiers refused as for studies); a column without declared categories cannot be
grouped by (the categories are the public keys every site sums over). Every default is the
protective one; an ``[analytics]`` table that is absent gives exactly these defaults and no
grouping.

The minimum cohort is decided on noisy counts, never the exact ones: a query at epsilon
``e`` first spends ``cohort_share * e`` (pure DP, discrete Laplace) on the test, charged to
the analyst's and the study's budgets before the decision and kept when the query is
refused; an answered query then spends ``e`` on its release (see
:mod:`tutela.dp.sql.cohort` for the test's accuracy). ``min_cohort = 1`` runs no test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tutela.errors import ConfigError

__all__ = ["AnalyticsPolicy"]

_NUMBERS = ("max_query_epsilon", "analyst_epsilon", "study_epsilon", "delta", "cohort_share")
_INTS = ("min_cohort", "max_rows")


@dataclass(frozen=True)
class AnalyticsPolicy:
    """A site's limits on DP queries (see the module docstring)."""

    min_cohort: int = 10
    cohort_share: float = 0.1
    max_query_epsilon: float = 1.0
    analyst_epsilon: float = 3.0
    study_epsilon: float = 5.0
    delta: float = 1e-6
    max_rows: int = 2**24
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("min_cohort", "max_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer")
        for name in ("max_query_epsilon", "analyst_epsilon", "study_epsilon"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive and finite")
        if not 0 < self.delta < 1:
            raise ValueError("delta must be in (0, 1)")
        if not 0 < self.cohort_share <= 1:
            raise ValueError("cohort_share must be in (0, 1]")
        cats: dict[str, tuple[str, ...]] = {}
        for name, values in self.categories.items():
            items = tuple(str(v) for v in values)
            if not items or len(set(items)) != len(items):
                raise ValueError(f"categories.{name} must be a non-empty list of distinct values")
            cats[str(name)] = items
        object.__setattr__(self, "categories", cats)

    @classmethod
    def from_mapping(cls, raw: Any, *, source: str = "site policy") -> AnalyticsPolicy:
        """Build from the parsed ``[analytics]`` table; unknown keys are errors.

        Raises:
            ConfigError: naming the key.
        """
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: [analytics] must be a table")
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key in _NUMBERS:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"{source}: analytics.{key} must be a number")
                kwargs[key] = float(value)
            elif key in _INTS:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"{source}: analytics.{key} must be an integer")
                kwargs[key] = value
            elif key == "categories":
                if not isinstance(value, Mapping) or not all(
                    isinstance(v, list) and all(isinstance(x, str | int | bool) for x in v)
                    for v in value.values()
                ):
                    raise ConfigError(
                        f"{source}: analytics.categories must map columns to lists of values"
                    )
                kwargs[key] = {
                    k: [str(x).lower() if isinstance(x, bool) else str(x) for x in v]
                    for k, v in value.items()
                }
            else:
                raise ConfigError(f"{source}: unknown key analytics.{key}")
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise ConfigError(f"{source}: analytics: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (the shape of the table)."""
        return {
            "min_cohort": self.min_cohort,
            "cohort_share": self.cohort_share,
            "max_query_epsilon": self.max_query_epsilon,
            "analyst_epsilon": self.analyst_epsilon,
            "study_epsilon": self.study_epsilon,
            "delta": self.delta,
            "max_rows": self.max_rows,
            "categories": {k: list(v) for k, v in sorted(self.categories.items())},
        }
