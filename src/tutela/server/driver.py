"""The round driver: moves every active study forward, one transition per tick.

The coordinator drives the same :mod:`tutela.fl` strategy objects as the in-process engine:
``configure_fit`` picks the round's sites, site updates (local minus global parameters)
are combined into a :class:`~tutela.fl.strategy.FitAggregate`, and ``aggregate_fit``
produces the next global model. What differs is time: sites are remote, so every stage
has a deadline and a quorum, and all state lives in the :class:`~tutela.server.store.Store`.

Recruiting closes when every invited site answered or the join deadline passed; too few
acceptances fail the study. Rounds then follow the in-process engine: a round whose replies
fall below ``training.min_quorum`` by its deadline is recorded as ``quorum-not-met`` and the
global model is unchanged; a dropped site is never waited for beyond the deadline. Under
secure aggregation the round's stages are the protocol's the study names: SecAgg+
(:mod:`tutela.server.protocol`) or CKKS (:mod:`tutela.server.ckks`).

Under client-level DP the study's :class:`~tutela.fl.privacy.ClientLevelDP` (kept with the
strategy, :mod:`tutela.server.runtime`) is the round's aggregator, as in process: each round's
fit config carries its clip norm and noise multiplier, which every site checks against its
own calibration and clips to; with central noise the coordinator noises the sum of the
clipped updates, under SecAgg+ the sites add the noise inside the masked sum.

Crash safety: every transition is one database transaction. A restarted coordinator
reloads the strategy (:mod:`tutela.server.runtime`) and continues the open round with the
updates already accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np
from safetensors.numpy import save as st_save
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tutela.errors import DataError, QuorumNotMet
from tutela.fl.config import parse_study
from tutela.fl.engine import PlainAggregator, UpdateAggregator
from tutela.fl.privacy import WITHIN_CLIP
from tutela.fl.records import Parameters
from tutela.fl.rounds import RoundPlan, RoundState, RoundStatus, close_round, open_round
from tutela.fl.standardisation import STANDARDISATION_ROUND
from tutela.server.core import (
    COORDINATOR,
    FIT_STAGE,
    Core,
    DeploymentSettings,
    StudyStatus,
    declared_rows,
    dumps,
    open_round_row,
)
from tutela.server.protocol import Closing, Step
from tutela.server.protocols import RoundProtocols
from tutela.server.runtime import Runtimes
from tutela.server.standardisation import StandardisationStage
from tutela.server.store import ParticipationRow, RelayRow, RoundRow, StudyRow, UpdateRow
from tutela.server.wire import parse_tensors


@dataclass
class RoundDriver:
    """Recruiting, rounds and completion of every active study."""

    core: Core
    runtimes: Runtimes
    protocol: RoundProtocols
    standardisation: StandardisationStage = field(init=False)
    _waits_for_sites: bool = field(default=False, init=False, repr=False)
    """Set (under the lock) by a transition that opened a stage for the sites."""

    def __post_init__(self) -> None:
        self.standardisation = StandardisationStage(self.core, self.protocol.secagg)

    def resume(self) -> int:
        """After a restart: give every open plain round's stage a fresh deadline.

        Sites could not reach a stopped coordinator, so the time it was down does not count
        against them. Accepted updates are kept; the round continues where it stopped.
        Returns the number of rounds resumed.
        """
        now = self.core.clock()
        resumed = 0
        with self.core.lock, self.core.store.session() as s:
            for rr in s.scalars(select(RoundRow).where(RoundRow.status == RoundStatus.OPEN)):
                study = self.core.study(s, rr.study_id, lock=True)
                settings = DeploymentSettings.of(study)
                plan = round_plan(rr).extended(now, settings.stage_timeout_s)
                rr.stage_deadline = plan.deadline
                self.core.audit(
                    COORDINATOR,
                    "round.resume",
                    f"study/{rr.study_id}/round/{rr.round_no}",
                    session=s,
                )
                resumed += 1
        return resumed

    def tick(self) -> bool:
        """Advance every active study by at most one transition each; True if anything moved."""
        with self.core.store.read() as s:
            ids = list(
                s.scalars(select(StudyRow.id).where(StudyRow.status.in_(StudyStatus.ACTIVE)))
            )
        moved = False
        for study_id in ids:
            with self.core.lock:
                moved |= self._advance(study_id)
        return moved

    def advance_study(self, study_id: str, most: int = 8) -> int:
        """Move one study forward now, up to ``most`` transitions (a closed stage, the round
        it closes, the next round it opens), as the ticker would on its next ticks; returns
        how many it made. Called by the thread whose submission completed a stage, so the
        next stage opens without waiting for the ticker."""
        moves = 0
        while moves < most:
            with self.core.lock:
                self._waits_for_sites = False
                moved = self._advance(study_id)
                settled = self._waits_for_sites  # a stage opened: nothing more until replies
            if not moved:
                break
            moves += 1
            if settled:
                break
        return moves

    def _advance(self, study_id: str) -> bool:
        now = self.core.clock()
        with self.core.store.session() as s:
            row = self.core.study(s, study_id, lock=True)
            if row.status == StudyStatus.RECRUITING:
                return self._close_recruiting(s, row, now)
            if row.status not in (StudyStatus.RUNNING, StudyStatus.PAUSED):
                return False
            rr = open_round_row(s, study_id)
            if rr is None:
                if row.current_round > row.total_rounds:
                    row.status = StudyStatus.COMPLETED
                    row.updated_at = now
                    self.core.audit(COORDINATOR, "study.complete", f"study/{study_id}", session=s)
                    self.runtimes.drop(study_id)
                    return True
                if row.status == StudyStatus.PAUSED:
                    return False
                self._open_round(s, row, now)
                return True
            if rr.round_no == STANDARDISATION_ROUND:
                return self.standardisation.advance(s, row, rr, now)
            if rr.stage == FIT_STAGE:
                return self._advance_fit(s, row, rr, now)
            return self._advance_protocol(s, row, rr, now)

    # recruiting -------------------------------------------------------------------------

    def _close_recruiting(self, s: Session, row: StudyRow, now: float) -> bool:
        parts = s.scalars(select(ParticipationRow).where(ParticipationRow.study_id == row.id)).all()
        prep = json.loads(row.prep_json)
        pending = [p for p in parts if p.status == "invited"]
        if pending and now <= float(prep["join_deadline"]):
            return False
        for p in pending:
            p.status = "timed-out"
            p.updated_at = now
        accepted = sorted((p for p in parts if p.status == "accepted"), key=lambda q: q.site)
        config = parse_study(json.loads(row.config_json))
        need = config.training.min_quorum
        if config.secure_aggregation.protocol != "none":
            need = max(need, 3)
        if len(accepted) < need:
            refusals = "; ".join(f"{p.site}: {p.reason}" for p in parts if p.status == "refused")
            row.status = StudyStatus.FAILED
            row.error = f"quorum not met: {len(accepted)} site(s) accepted, {need} required" + (
                f" (refused: {refusals})" if refusals else ""
            )
            row.updated_at = now
            self.core.audit(
                COORDINATOR,
                "study.fail",
                f"study/{row.id}",
                "failed",
                {"error": row.error},
                session=s,
            )
            return True
        row.prep_json = dumps(prep)
        row.status = StudyStatus.RUNNING
        row.updated_at = now
        self.core.audit(
            COORDINATOR,
            "study.running",
            f"study/{row.id}",
            detail={"sites": [p.site for p in accepted]},
            session=s,
        )
        try:  # pooled now, or the secure standardisation round opens (before round 1)
            self.standardisation.close_recruiting(s, row, accepted, now)
        except (DataError, ValueError) as exc:
            row.status = StudyStatus.FAILED
            row.error = f"standardisation failed: {exc}"
            self.core.audit(
                COORDINATOR, "study.fail", f"study/{row.id}", "failed", {"error": row.error},
                session=s,
            )  # fmt: skip
        return True

    # rounds -----------------------------------------------------------------------------

    def _open_round(self, s: Session, row: StudyRow, now: float) -> None:
        rt = self.runtimes.get(row)
        params = self.core.global_model(row)
        sites = sorted(
            s.scalars(
                select(ParticipationRow.site).where(
                    ParticipationRow.study_id == row.id, ParticipationRow.status == "accepted"
                )
            )
        )
        settings = DeploymentSettings.of(row)
        config = parse_study(json.loads(row.config_json))
        plan = open_round(
            rt.strategy, row.current_round, params, sites, rt.rng,
            quorum=config.training.min_quorum, now=now, timeout=settings.stage_timeout_s,
        )  # fmt: skip
        if rt.privacy is not None:  # every site clips to this round's norm, checks its noise
            plan = replace(plan, config={**plan.config, **rt.privacy.round_config()})
        chosen = list(plan.participants)
        rr = round_row(row.id, plan)
        s.add(rr)
        self.runtimes.persist(row)  # the sampling RNG moved
        row.updated_at = now
        self.core.audit(
            COORDINATOR,
            "round.open",
            f"study/{row.id}/round/{row.current_round}",
            detail={"sites": chosen},
            session=s,
        )
        self._waits_for_sites = True  # unless the protocol closes the round at once
        if config.secure_aggregation.protocol != "none":
            s.flush()
            self._start_protocol(s, row, rr, params, now)

    def _advance_fit(self, s: Session, row: StudyRow, rr: RoundRow, now: float) -> bool:
        this_stage = (
            UpdateRow.study_id == row.id,
            UpdateRow.round_no == rr.round_no,
            UpdateRow.attempt == rr.attempt,
            UpdateRow.stage == rr.stage,
        )
        # Every tick asks whether the round is due; only a due round's updates are opened.
        if not round_plan(rr).is_due(
            now, set(s.scalars(select(UpdateRow.site).where(*this_stage)))
        ):
            return False
        params = self.core.global_model(row)
        state = self._state(s, row, rr, params)
        for u in s.scalars(select(UpdateRow).where(*this_stage)).all():
            body = self.core.store.unseal(
                u.blob, f"update/{row.id}/{rr.round_no}/{rr.stage}/{u.site}"
            )
            arrays, meta = parse_tensors(body)
            metrics = {WITHIN_CLIP: float(meta[WITHIN_CLIP] == "1")} if WITHIN_CLIP in meta else {}
            state.accept(u.site, arrays, u.num_examples, metrics, is_update=True)
        aggregate = None
        if state.has_quorum():
            privacy = self.runtimes.get(row).privacy
            aggregator: UpdateAggregator = privacy if privacy is not None else PlainAggregator()
            try:
                aggregate = aggregator.aggregate(rr.round_no, state.updates(), params)
            except QuorumNotMet:  # fewer replies than the DP calibration assumed
                aggregate = None
        self._finish_round(s, row, rr, params, Closing(aggregate, list(state.responded)), now)
        return True

    def _state(self, s: Session, row: StudyRow, rr: RoundRow, params: Parameters) -> RoundState:
        """The round's state machine over what the store holds (declared row counts cap
        every site's weight)."""
        return RoundState(round_plan(rr), params, declared_rows(s, row.id))

    # secure aggregation -------------------------------------------------------------------

    def _start_protocol(
        self, s: Session, row: StudyRow, rr: RoundRow, params: Parameters, now: float
    ) -> None:
        privacy = self.runtimes.get(row).privacy
        protocol = self.protocol.for_study(row)
        closing = protocol.start(s, row, rr, params, DeploymentSettings.of(row), privacy)
        if closing is not None:
            self._finish_round(s, row, rr, params, closing, now)

    def _advance_protocol(self, s: Session, row: StudyRow, rr: RoundRow, now: float) -> bool:
        step = self.protocol.for_study(row).advance(s, row, rr, self.runtimes.get(row).privacy)
        if step is Step.LOST:
            self._restart_round(s, row, rr, now)
            return True
        if isinstance(step, Closing):
            self._finish_round(s, row, rr, self.core.global_model(row), step, now)
            return True
        self._waits_for_sites = step is Step.MOVED
        return step is Step.MOVED

    def _restart_round(self, s: Session, row: StudyRow, rr: RoundRow, now: float) -> None:
        """The protocol's secrets were lost with the process that held them: start the round
        again as a new attempt with the same sites and settings."""
        retry = restart_attempt(self.core, s, rr, now, f"study/{row.id}/round/{rr.round_no}")
        self._start_protocol(s, row, retry, self.core.global_model(row), now)

    # closing ----------------------------------------------------------------------------

    def _finish_round(
        self,
        s: Session,
        row: StudyRow,
        rr: RoundRow,
        params: Parameters,
        closing: Closing,
        now: float,
    ) -> None:
        self._waits_for_sites = False  # the next round (or the end) follows at once
        strategy = self.runtimes.get(row).strategy
        closure = close_round(
            strategy,
            self._state(s, row, rr, params),
            params,
            closing.aggregate,
            survivors=closing.responded,
            detail=closing.extra,
        )
        record, new = closure.record, closure.parameters
        status, responded, failed = record.status, list(record.sites), list(record.failed)
        num_examples = record.num_examples
        version = row.model_version + 1
        rr.status = status.value
        rr.closed_at = now
        rr.outcome_json = dumps(
            {
                "sites": responded,
                "failed": failed,
                "num_examples": num_examples,
                "outcome": status.value,
                **closing.extra,
            }
        )
        rr.model_blob = self.core.store.seal(
            st_save({k: np.ascontiguousarray(v, np.float32) for k, v in new.items()}),
            f"round-model/{row.id}/{rr.round_no}",
        )
        row.model_blob = self.core.seal_model(row.id, new, version)
        row.model_version = version
        row.current_round = rr.round_no + 1
        self.runtimes.persist(row)  # the strategy moved
        row.updated_at = now
        # Individual updates are no longer needed once aggregated: keep only the receipts.
        s.execute(
            update(UpdateRow)
            .where(UpdateRow.study_id == row.id, UpdateRow.round_no == rr.round_no)
            .values(blob=b"")
        )
        s.execute(
            delete(RelayRow).where(RelayRow.study_id == row.id, RelayRow.round_no == rr.round_no)
        )
        self.core.audit(
            COORDINATOR,
            "round.close",
            f"study/{row.id}/round/{rr.round_no}",
            "ok" if status is RoundStatus.AGGREGATED else status.value,
            {
                "sites": responded,
                "failed": failed,
                **({"error": closing.extra["error"]} if "error" in closing.extra else {}),
            },
            session=s,
        )
        self.core.checkpoint_audit(session=s)  # every closed round: a signed checkpoint


def round_plan(rr: RoundRow) -> RoundPlan:
    """The state machine's plan of a stored round."""
    return RoundPlan(
        server_round=rr.round_no,
        attempt=rr.attempt,
        participants=tuple(json.loads(rr.participants_json)),
        config=json.loads(rr.fit_config_json),
        quorum=rr.quorum,
        opened_at=rr.opened_at,
        deadline=rr.stage_deadline,
    )


def round_row(study_id: str, plan: RoundPlan) -> RoundRow:
    """A new open round row for ``plan`` (its fit stage)."""
    return RoundRow(
        study_id=study_id,
        round_no=plan.server_round,
        attempt=plan.attempt,
        stage=FIT_STAGE,
        status=RoundStatus.OPEN,
        participants_json=dumps(list(plan.participants)),
        survivors_json="[]",
        quorum=plan.quorum,
        fit_config_json=dumps(dict(plan.config)),
        opened_at=plan.opened_at,
        stage_deadline=plan.deadline,
        outcome_json="{}",
    )


def restart_attempt(core: Core, s: Session, rr: RoundRow, now: float, resource: str) -> RoundRow:
    """Close ``rr`` as restarted (its protocol secrets died with a restarted coordinator) and
    open the same round, same sites and settings, as the next attempt; audited."""
    rr.status = "restarted"  # a stored attempt, not a round outcome
    rr.closed_at = now
    rr.outcome_json = dumps(
        {"outcome": "restarted", "reason": "coordinator restarted mid-protocol"}
    )
    retry = round_row(rr.study_id, round_plan(rr).restarted(now, 0.0))
    s.add(retry)
    s.flush()
    core.audit(COORDINATOR, "round.restart", resource, session=s)
    return retry
