"""The sites' evaluations of each global model, as the coordinator keeps and combines them.

In round ``r`` a site evaluates the global model it was sent (the model after round
``r - 1``; round 0 is the initial model) on its own held-out rows and reports it for round
``r - 1``; after the last round it evaluates the final model (the ``evaluate`` task,
:mod:`tutela.server.participation`). Each report is a few numbers (:data:`EVAL_KEYS`):
``eval_loss``, ``eval_accuracy``, ``eval_auc`` (absent when the site's held-out rows hold
one class) and ``eval_rows``.

Privacy: these are per-site evaluation metrics of a model every participant already holds;
they reveal how well the model fits each site's held-out rows (and how many it holds out),
which says something about that site's population. A site keeps them home with
``report_metrics = false`` in its policy (:class:`~tutela.governance.minimisation.
SitePolicy`); its signed report then says so.

Security: a site may lie about its numbers. Each number is range-checked at the edge
(:func:`check_evaluation`: finite, accuracy and AUC in [0, 1], a loss in [0, 10^6], a whole
positive row count), and in the rows-weighted aggregate a site weighs at most the rows it
declared when it joined, so one site cannot drown the others by claiming 10^9 rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutela.server.core import declared_rows
from tutela.server.store import MetricRow

__all__ = [
    "EVALUATE_TASK",
    "EVAL_KEYS",
    "MAX_EVAL_LOSS",
    "MAX_EVAL_ROWS",
    "check_evaluation",
    "combine",
    "evaluated_rounds",
    "evaluations",
]

EVALUATE_TASK = "evaluate"
"""A completed study's last task for a site that reports metrics: evaluate the final model."""
EVAL_KEYS = ("eval_loss", "eval_accuracy", "eval_auc", "eval_rows")
"""What a site's evaluation report holds (floats on the wire; ``eval_rows`` whole)."""
MAX_EVAL_LOSS = 1e6
MAX_EVAL_ROWS = 10**9


def check_evaluation(metrics: Mapping[str, float]) -> None:
    """Check the evaluation keys of a metrics report (other keys are not looked at).

    Raises:
        ValueError: a value that is not finite or out of its range, or an evaluation
            without its row count, naming the key.
    """
    present = [k for k in EVAL_KEYS if k in metrics]
    if not present:
        return
    for key in present:
        value = metrics[key]
        if not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number")
    if "eval_rows" not in metrics:
        raise ValueError("an evaluation must say how many rows it used (eval_rows)")
    rows = metrics["eval_rows"]
    if rows != int(rows) or not 1 <= rows <= MAX_EVAL_ROWS:
        raise ValueError(f"eval_rows must be a whole number in [1, {MAX_EVAL_ROWS}]")
    for key in ("eval_accuracy", "eval_auc"):
        if key in metrics and not 0.0 <= metrics[key] <= 1.0:
            raise ValueError(f"{key} must be in [0, 1]")
    if "eval_loss" in metrics and not 0.0 <= metrics["eval_loss"] <= MAX_EVAL_LOSS:
        raise ValueError(f"eval_loss must be in [0, {MAX_EVAL_LOSS:g}]")


def combine(
    sites: Mapping[str, Mapping[str, float]], declared: Mapping[str, int]
) -> dict[str, Any]:
    """The rows-weighted mean of each metric over ``sites`` (site -> its evaluation), each
    site weighing ``min(eval_rows, rows it declared at join)``; ``rows`` is the total weight.

    A metric some sites left out (an undefined AUC) is averaged over the sites that gave it.
    """
    out: dict[str, Any] = {}
    weights = {s: float(min(m["eval_rows"], declared.get(s, 0))) for s, m in sites.items()}
    out["rows"] = int(sum(weights.values()))
    out["sites"] = len(sites)
    for key in ("eval_loss", "eval_accuracy", "eval_auc"):
        given = [(weights[s], m[key]) for s, m in sites.items() if key in m and weights[s] > 0]
        total = sum(w for w, _ in given)
        name = key.removeprefix("eval_")
        out[name] = sum(w * v for w, v in given) / total if total > 0 else None
    return out


def _latest_per_site(rows: Iterable[MetricRow]) -> dict[int, dict[str, dict[str, float]]]:
    by_round: dict[int, dict[str, dict[str, float]]] = {}
    for m in rows:
        values = json.loads(m.metrics_json)
        if "eval_rows" not in values:
            continue
        evaluation = {k: float(values[k]) for k in EVAL_KEYS if k in values}
        by_round.setdefault(m.round_no, {})[m.site] = evaluation  # the latest one counts
    return by_round


def evaluations(s: Session, study_id: str) -> dict[int, dict[str, Any]]:
    """Round -> ``{"sites": {site: evaluation}, "aggregate": combine(...)}`` for every round
    whose global model some site evaluated (round 0: the initial model)."""
    rows = s.scalars(
        select(MetricRow).where(MetricRow.study_id == study_id).order_by(MetricRow.id)
    ).all()
    if not rows:
        return {}
    declared = declared_rows(s, study_id)
    return {
        r: {"sites": sites, "aggregate": combine(sites, declared)}
        for r, sites in sorted(_latest_per_site(rows).items())
    }


def evaluated_rounds(s: Session, study_id: str, site: str) -> set[int]:
    """The rounds whose global model ``site`` evaluated and reported in ``study_id``."""
    rows = s.scalars(
        select(MetricRow).where(MetricRow.study_id == study_id, MetricRow.site == site)
    ).all()
    return {m.round_no for m in rows if "eval_rows" in json.loads(m.metrics_json)}
