"""The coordinator's side of federated standardisation, between recruiting and round 1.

When recruiting closes, the study's standardisation mode (:mod:`tutela.fl.standardisation`)
decides what the coordinator does with the sites' join answers:

- ``plain``: pool the exact moments the sites sent;
- ``noised``: sum the noisy moment vectors the sites sent (each site noised its own and
  charged its own ledger first);
- ``secure``: open the standardisation round (round 0): one SecAgg+ round through the same
  :class:`~tutela.server.protocol.SecAggProtocol` as the training rounds, over each site's
  moment vector; the coordinator learns only the sum (with distributed noise in a private
  study, whose plan every site checks and charges to its own ledger before sending).

The pooled mean and std go into the study's preparation, which every fit task carries.
A secure round lost with a restarted coordinator starts again as a new attempt; one that
ends without a sum fails the study.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete
from sqlalchemy.orm import Session

from tutela.errors import DataError
from tutela.fl.client import FeatureMoments, global_standardisation
from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.rounds import RoundPlan, RoundStatus
from tutela.fl.standardisation import (
    STANDARDISATION_ROUND,
    StandardisationMode,
    StandardisationPlan,
    sum_vectors,
)
from tutela.server.core import COORDINATOR, Core, DeploymentSettings, StudyStatus, dumps
from tutela.server.protocol import Closing, SecAggProtocol, Step
from tutela.server.store import ParticipationRow, RelayRow, RoundRow, StudyRow

STANDARDISATION_CONFIG = "standardisation"
"""Key of the round config that marks the standardisation round (sites read it too)."""


def plan_of(config: StudyConfig) -> StandardisationPlan:
    """The study's standardisation plan (its declared columns; a study under secure
    aggregation or DP must declare them, so every party agrees on the vector length)."""
    columns = config.data.model_columns()
    if columns is None:
        raise DataError("standardisation under SecAgg+ or DP needs data.columns in the study")
    return StandardisationPlan.of(config, list(columns))


@dataclass
class StandardisationStage:
    """Recruiting's close and the standardisation round of every study."""

    core: Core
    secagg: SecAggProtocol

    def close_recruiting(
        self, s: Session, row: StudyRow, accepted: list[ParticipationRow], now: float
    ) -> None:
        """Pool the join answers' statistics, or open the secure standardisation round.

        Raises:
            DataError: the answers cannot be pooled (the caller fails the study).
        """
        config = parse_study(json.loads(row.config_json))
        plan = StandardisationPlan.of(config, list(config.data.model_columns() or []))
        answers = [json.loads(p.join_json) for p in sorted(accepted, key=lambda q: q.site)]
        if plan.mode is StandardisationMode.PLAIN:
            moments = [
                FeatureMoments(
                    int(m["count"]),
                    np.asarray(m["total"], np.float64),
                    np.asarray(m["total_sq"], np.float64),
                )
                for m in answers
            ]
            self._store(row, *global_standardisation(moments))
            return
        plan = plan_of(config)
        if plan.mode is StandardisationMode.NOISED:
            total = sum_vectors([np.asarray(m["noised"], np.float64) for m in answers])
            self._store(row, *plan.pooled(total, sum(p.num_examples for p in accepted)))
            return
        settings = DeploymentSettings.of(row)
        round_plan = RoundPlan(
            server_round=STANDARDISATION_ROUND,
            attempt=1,
            participants=tuple(p.site for p in accepted),
            config={STANDARDISATION_CONFIG: True},
            quorum=1,  # the protocol's own min_survivors guards the sum
            opened_at=now,
            deadline=now + settings.stage_timeout_s,
        )
        from tutela.server.driver import round_row

        rr = round_row(row.id, round_plan)
        s.add(rr)
        s.flush()
        self._start(s, row, rr, plan, now)

    def advance(self, s: Session, row: StudyRow, rr: RoundRow, now: float) -> bool:
        """Take the open standardisation round one step; True if anything moved."""
        step = self.secagg.advance(s, row, rr)
        if step is Step.LOST:  # its secrets died with a restarted coordinator: start again
            from tutela.server.driver import restart_attempt

            retry = restart_attempt(self.core, s, rr, now, f"study/{row.id}/standardisation")
            self._start(s, row, retry, plan_of(parse_study(json.loads(row.config_json))), now)
            return True
        if isinstance(step, Closing):
            self._finish(s, row, rr, step, now)
            return True
        return step is Step.MOVED

    def _start(
        self, s: Session, row: StudyRow, rr: RoundRow, plan: StandardisationPlan, now: float
    ) -> None:
        vector = {STANDARDISATION_CONFIG: np.zeros(plan.dim, np.float32)}
        settings = DeploymentSettings.of(row)
        closing = self.secagg.start(s, row, rr, vector, settings, standardisation=plan)
        if closing is not None:
            self._finish(s, row, rr, closing, now)

    def _finish(
        self, s: Session, row: StudyRow, rr: RoundRow, closing: Closing, now: float
    ) -> None:
        rr.closed_at = now
        s.execute(
            delete(RelayRow).where(RelayRow.study_id == row.id, RelayRow.round_no == rr.round_no)
        )
        error = closing.extra.get("error")
        if closing.total is not None and closing.aggregate is not None:
            plan = plan_of(parse_study(json.loads(row.config_json)))
            count = closing.aggregate.num_examples  # the weight total: public
            try:
                self._store(row, *plan.pooled(closing.total, count))
            except DataError as exc:
                error = str(exc)
        else:
            error = error or "the secure round revealed no sum"
        rr.status = "failed" if error else RoundStatus.AGGREGATED
        rr.outcome_json = dumps(
            {"outcome": "failed" if error else "standardised", "sites": closing.responded,
             **closing.extra}
        )  # fmt: skip
        if error:
            row.status = StudyStatus.FAILED
            row.error = f"standardisation failed: {error}"
        row.updated_at = now
        self.core.audit(
            COORDINATOR,
            "study.fail" if error else "study.standardised",
            f"study/{row.id}",
            "failed" if error else "ok",
            {"error": row.error} if error else {"sites": closing.responded},
            session=s,
        )

    @staticmethod
    def _store(row: StudyRow, mean: npt.NDArray[np.float64], std: npt.NDArray[np.float64]) -> None:
        prep = json.loads(row.prep_json)
        prep.update({"mean": mean.tolist(), "std": std.tolist()})
        row.prep_json = dumps(prep)
