"""DP SQL: a restricted SQL parsed and checked before it touches data, evaluated by DuckDB,
released with Gaussian noise on its sufficient statistics (at one site, or summed across
sites under SecAgg+ with distributed noise), answered as a table with confidence intervals.

- :mod:`tutela.dp.sql.parse`: the grammar and its parser (:func:`parse_sql`).
- :mod:`tutela.dp.sql.engine`: the site's limits (:class:`SqlPolicy`), the statistics
  vector of a query (:class:`QueryShape`) and its evaluation over a file by DuckDB.
- :mod:`tutela.dp.sql.release`: noise, answers and intervals; :class:`SqlTable` for one
  site behind a ledger.
"""

from tutela.dp.sql.engine import QueryShape, SiteStatistics, SqlPolicy, TableSource
from tutela.dp.sql.parse import SelectQuery, SqlError, parse_sql
from tutela.dp.sql.release import SqlAnswer, SqlTable, answer_frame

__all__ = [
    "QueryShape",
    "SelectQuery",
    "SiteStatistics",
    "SqlAnswer",
    "SqlError",
    "SqlPolicy",
    "SqlTable",
    "TableSource",
    "answer_frame",
    "parse_sql",
]
