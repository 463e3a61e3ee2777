"""Studies as people manage them: create, start, pause, cancel, and read their state.

Life of a study::

    created --start--> recruiting --(quorum accepted)--> running --(last round)--> completed
        |                  |  (too few sites accept: failed)    |  <--pause/start-->  paused
        +------------------+----------------cancel-------------+--> cancelled

The transitions out of ``recruiting`` and ``running`` are the round driver's
(:mod:`tutela.server.driver`); this module holds the ones people ask for, and the read
side: status, privacy ledger and models.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tutela.errors import ConfigError, DataError
from tutela.fl.config import StudyConfig
from tutela.fl.models import parameter_spec
from tutela.fl.rounds import RoundStatus
from tutela.fl.standardisation import STANDARDISATION_ROUND
from tutela.fl.study import build_strategy
from tutela.server.authz import Principal
from tutela.server.core import (
    ConflictError,
    Core,
    DeploymentSettings,
    NotFoundError,
    StudyStatus,
    dumps,
)
from tutela.server.round_metrics import evaluations
from tutela.server.runtime import Runtimes
from tutela.server.store import (
    MetricRow,
    ParticipationRow,
    RoundRow,
    SiteReportRow,
    SiteRow,
    StudyRow,
)
from tutela.server.wire import parse_tensors


@dataclass
class Studies:
    """Study administration and reporting over the shared :class:`Core`."""

    core: Core
    runtimes: Runtimes

    # changes ----------------------------------------------------------------------------

    def create_study(
        self, actor: Principal, config: StudyConfig, settings: DeploymentSettings | None = None
    ) -> str:
        """Create a study (status ``created``); upload its initial model, then start it."""
        settings = settings or DeploymentSettings()
        if (
            build_strategy(config).needs_individual_updates
            and config.secure_aggregation.protocol != "none"
        ):
            raise ConfigError("this strategy cannot run under secure aggregation")
        if config.secure_aggregation.protocol == "ckks" and config.privacy.mode == "client":
            raise ConfigError(
                "client-level DP does not run under CKKS aggregation; use secure_aggregation "
                "protocol 'secagg+' (distributed noise) or 'none' (noise at the coordinator)"
            )
        study_id = uuid.uuid4().hex[:16]
        now = self.core.clock()
        with self.core.store.session() as s:
            s.add(
                StudyRow(
                    id=study_id,
                    name=config.study.name,
                    config_json=dumps(config.resolved()),
                    settings_json=dumps(settings.as_dict()),
                    status=StudyStatus.CREATED,
                    seed=config.study.seed,
                    current_round=1,
                    total_rounds=config.training.rounds,
                    attempt=1,
                    model_version=0,
                    prep_json="{}",
                    privacy_json="[]",
                    created_by=actor.label,
                    created_at=now,
                    updated_at=now,
                )
            )
            self.core.audit(
                actor.label,
                "study.create",
                f"study/{study_id}",
                detail={"name": config.study.name},
                session=s,
            )
        return study_id

    def set_initial_model(self, actor: Principal, study_id: str, body: bytes) -> None:
        """Upload the initial global model (safetensors, float32) before the study starts."""
        arrays, _ = parse_tensors(body)
        if not arrays:
            raise DataError("the model has no tensors")
        for name, value in arrays.items():
            if value.dtype != np.float32:
                raise DataError(f"tensor {name!r} has dtype {value.dtype}; expected float32")
            if not np.isfinite(value).all():
                raise DataError(f"tensor {name!r} contains NaN or infinite values")
        with self.core.store.session() as s:
            row = self.core.study(s, study_id, lock=True)
            if row.status != StudyStatus.CREATED:
                raise ConflictError(
                    f"study {study_id} is {row.status}; "
                    "the initial model can only be set before start"
                )
            row.model_blob = self.core.seal_model(study_id, arrays, 0)
            row.updated_at = self.core.clock()
            self.core.audit(actor.label, "study.model.set", f"study/{study_id}", session=s)

    def start(self, actor: Principal, study_id: str) -> str:
        """Start (or resume) a study; returns its new status."""
        now = self.core.clock()
        with self.core.store.session() as s:
            row = self.core.study(s, study_id, lock=True)
            if row.status == StudyStatus.PAUSED:
                row.status = StudyStatus.RUNNING
            elif row.status == StudyStatus.CREATED:
                if row.model_blob is None:
                    raise ConflictError(f"study {study_id} has no initial model; upload one first")
                settings = DeploymentSettings.of(row)
                invited = self._invited(s, settings)
                if not invited:
                    raise ConflictError("no enrolled site to invite")
                for site in invited:
                    s.add(
                        ParticipationRow(
                            study_id=study_id, site=site, status="invited", updated_at=now
                        )
                    )
                row.status = StudyStatus.RECRUITING
                # the model's parameter names and shapes go with the invitation: a site
                # whose model differs refuses before training (the coordinator never
                # builds or imports a model; it only reads the uploaded tensors)
                row.prep_json = dumps(
                    {
                        "join_deadline": now + settings.join_timeout_s,
                        "parameters": parameter_spec(self.core.global_model(row)),
                    }
                )
            else:
                raise ConflictError(
                    f"study {study_id} is {row.status}; only created or paused studies start"
                )
            row.updated_at = now
            self.core.audit(
                actor.label,
                "study.start",
                f"study/{study_id}",
                detail={"status": row.status},
                session=s,
            )
            return row.status

    @staticmethod
    def _invited(s: Session, settings: DeploymentSettings) -> list[str]:
        if settings.sites is None:
            return sorted(s.scalars(select(SiteRow.name).where(SiteRow.status == "active")))
        # Explicitly invited sites may still be enrolling (registered, token not used yet).
        known = set(
            s.scalars(select(SiteRow.name).where(SiteRow.status.in_(("active", "pending"))))
        )
        missing = sorted(set(settings.sites) - known)
        if missing:
            raise ConflictError(f"sites not registered: {', '.join(missing)}")
        return sorted(settings.sites)

    def pause(self, actor: Principal, study_id: str) -> str:
        """Pause a running study: the open round finishes, no new round opens."""
        with self.core.store.session() as s:
            row = self.core.study(s, study_id, lock=True)
            if row.status != StudyStatus.RUNNING:
                raise ConflictError(
                    f"study {study_id} is {row.status}; only a running study pauses"
                )
            row.status = StudyStatus.PAUSED
            row.updated_at = self.core.clock()
            self.core.audit(actor.label, "study.pause", f"study/{study_id}", session=s)
            return row.status

    def cancel(self, actor: Principal, study_id: str) -> str:
        """Cancel a study for good; an open round is closed without aggregation."""
        now = self.core.clock()
        with self.core.store.session() as s:
            row = self.core.study(s, study_id, lock=True)
            if row.status in StudyStatus.TERMINAL:
                raise ConflictError(f"study {study_id} is already {row.status}")
            row.status = StudyStatus.CANCELLED
            row.updated_at = now
            s.execute(
                update(RoundRow)
                .where(RoundRow.study_id == study_id, RoundRow.status == RoundStatus.OPEN)
                .values(status="cancelled", closed_at=now)
            )
            self.core.audit(actor.label, "study.cancel", f"study/{study_id}", session=s)
            self.runtimes.drop(study_id)
            return row.status

    # reading ----------------------------------------------------------------------------

    def study_brief(self, study_id: str) -> dict[str, Any]:
        """A study's status and progress only (one row's columns: for frequent polling)."""
        with self.core.store.read() as s:
            row = s.execute(
                select(
                    StudyRow.id,
                    StudyRow.status,
                    StudyRow.current_round,
                    StudyRow.total_rounds,
                    StudyRow.error,
                ).where(StudyRow.id == study_id)
            ).one_or_none()
        if row is None:
            raise NotFoundError(f"unknown study {study_id!r}")
        return {
            "id": row.id,
            "status": row.status,
            "current_round": row.current_round,
            "total_rounds": row.total_rounds,
            "error": row.error,
        }

    def study_status(self, study_id: str) -> dict[str, Any]:
        """Status, progress, participation and per-round outcomes of a study."""
        with self.core.store.read() as s:
            row = self.core.study(s, study_id)
            parts = s.execute(  # columns, not rows: a study may have a thousand sites
                select(
                    ParticipationRow.site,
                    ParticipationRow.status,
                    ParticipationRow.reason,
                    ParticipationRow.num_examples,
                ).where(ParticipationRow.study_id == study_id)
            ).all()
            rounds = s.scalars(
                select(RoundRow)
                .where(RoundRow.study_id == study_id)
                .order_by(RoundRow.round_no, RoundRow.attempt)
            ).all()
            evaluated = evaluations(s, study_id)  # the sites' evaluations of each model
            return {
                "id": row.id,
                "name": row.name,
                "status": row.status,
                "current_round": row.current_round,
                "total_rounds": row.total_rounds,
                "model_version": row.model_version,
                "error": row.error,
                "created_by": row.created_by,
                "config": json.loads(row.config_json),
                "deployment": json.loads(row.settings_json),
                "participation": {
                    p.site: {"status": p.status, "reason": p.reason, "num_examples": p.num_examples}
                    for p in parts
                },
                "rounds": [
                    {
                        "round": r.round_no,
                        "stage": r.stage,
                        "status": r.status,
                        "participants": json.loads(r.participants_json),
                        **json.loads(r.outcome_json),
                        "evaluation": evaluated.get(r.round_no),
                    }
                    for r in rounds
                    if r.round_no != STANDARDISATION_ROUND
                ],
                "initial_evaluation": evaluated.get(0),
                "standardisation": {  # the pooled statistics every fit task carries
                    "mean": json.loads(row.prep_json).get("mean"),
                    "std": json.loads(row.prep_json).get("std"),
                    "rounds": [  # the secure standardisation round's attempts, if any
                        {
                            "stage": r.stage,
                            "status": r.status,
                            "participants": json.loads(r.participants_json),
                            **json.loads(r.outcome_json),
                        }
                        for r in rounds
                        if r.round_no == STANDARDISATION_ROUND
                    ],
                },
            }

    def list_studies(self) -> list[dict[str, Any]]:
        """Every study with its status."""
        with self.core.store.read() as s:
            return [
                {
                    "id": r.id,
                    "name": r.name,
                    "status": r.status,
                    "current_round": r.current_round,
                    "total_rounds": r.total_rounds,
                }
                for r in s.scalars(select(StudyRow).order_by(StudyRow.created_at))
            ]

    def privacy_ledger(self, study_id: str) -> dict[str, Any]:
        """The privacy events of a study: configured guarantee and what each round spent."""
        with self.core.store.read() as s:
            row = self.core.study(s, study_id)
            config = json.loads(row.config_json)
            reports: dict[str, Any] = {}
            for m in s.scalars(
                select(MetricRow).where(MetricRow.study_id == study_id).order_by(MetricRow.id)
            ):
                values = json.loads(m.metrics_json)
                if "epsilon" in values:
                    reports[m.site] = {"round": m.round_no, **values}
            return {
                "study_id": study_id,
                "privacy": config.get("privacy"),
                "secure_aggregation": config.get("secure_aggregation"),
                "events": json.loads(row.privacy_json),
                "site_reports": reports,
            }

    def site_reports(self, study_id: str) -> dict[str, Any]:
        """Each site's latest signed report, verbatim, and the keys the sites registered.

        ``site_keys`` maps every site that joined with an identity key to that key (hex), as
        recorded from its join answer: what a reader pins to verify the reports, instead of
        the key each report carries.
        """
        with self.core.store.read() as s:
            self.core.study(s, study_id)
            latest: dict[str, str] = {}
            for r in s.scalars(
                select(SiteReportRow)
                .where(SiteReportRow.study_id == study_id)
                .order_by(SiteReportRow.id)
            ):
                latest[r.site] = r.report_json
            keys: dict[str, str] = {}
            for p in s.scalars(
                select(ParticipationRow)
                .where(ParticipationRow.study_id == study_id, ParticipationRow.status == "accepted")
                .order_by(ParticipationRow.site)
            ):
                key = p.identity_key()
                if key is not None:
                    keys[p.site] = key.hex()
            return {
                "study_id": study_id,
                "reports": [json.loads(latest[site]) for site in sorted(latest)],
                "site_keys": keys,
            }

    def round_model(self, study_id: str, round_no: int) -> bytes:
        """The global model after ``round_no`` (safetensors)."""
        with self.core.store.read() as s:
            self.core.study(s, study_id)
            rr = s.scalar(
                select(RoundRow).where(
                    RoundRow.study_id == study_id,
                    RoundRow.round_no == round_no,
                    RoundRow.status.in_((RoundStatus.AGGREGATED, RoundStatus.QUORUM_NOT_MET)),
                )
            )
            if rr is None or rr.model_blob is None:
                raise NotFoundError(f"no model for round {round_no} of study {study_id}")
            return self.core.store.unseal(rr.model_blob, f"round-model/{study_id}/{round_no}")

    def final_model(self, study_id: str) -> bytes:
        """The current global model as safetensors."""
        with self.core.store.read() as s:
            row = self.core.study(s, study_id)
            if row.model_blob is None:
                raise NotFoundError(f"study {study_id} has no model")
            return self.core.unseal_model(study_id, row.model_blob)
