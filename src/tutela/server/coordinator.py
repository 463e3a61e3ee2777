"""The coordinator's logic, independent of HTTP: one object that the app and the CLI hold.

:class:`Coordinator` only composes the parts and delegates to them; each part is one
concept over the shared :class:`~tutela.server.core.Core` (store, clock, lock, audit):

=====================================  ==================================================
:mod:`~tutela.server.identity`         tokens, principals, site registration and enrolment
:mod:`~tutela.server.studies`          create, start, pause, cancel; status, ledger, models
:mod:`~tutela.server.participation`    a site's invitations, answers and tasks
:mod:`~tutela.server.inbox`            every submission, accepted exactly once
:mod:`~tutela.server.driver`           recruiting, rounds and completion (``tick``)
:mod:`~tutela.server.protocols`        SecAgg+ or CKKS inside a round
:mod:`~tutela.server.runtime`          each running study's strategy, persisted
=====================================  ==================================================

The vocabulary the parts share (errors, statuses, settings, receipts) is importable from here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from tutela.fl.client import FeatureMoments
from tutela.fl.config import StudyConfig
from tutela.server.authz import Principal, Role
from tutela.server.core import (
    AuditHook,
    Clock,
    ConflictError,
    Core,
    DeploymentSettings,
    NotFoundError,
    PayloadTooLargeError,
    Receipt,
    StudyStatus,
)
from tutela.server.driver import RoundDriver
from tutela.server.identity import Identity, Signer
from tutela.server.inbox import Inbox
from tutela.server.participation import Participation
from tutela.server.protocols import RoundProtocols
from tutela.server.queries import Queries
from tutela.server.runtime import Runtimes
from tutela.server.smpc_sessions import SmpcSessions
from tutela.server.store import ParticipationRow, Store
from tutela.server.studies import Studies

_log = logging.getLogger(__name__)

__all__ = [
    "AuditHook",
    "ConflictError",
    "Coordinator",
    "DeploymentSettings",
    "NotFoundError",
    "PayloadTooLargeError",
    "Receipt",
    "StudyStatus",
]


class Coordinator:
    """Studies, sites and rounds over a :class:`Store`.

    Args:
        store: the persistent state.
        clock: seconds since the epoch (injectable for deadline tests).
        signer: signs enrolment CSRs (``(csr_pem, site) -> cert_pem``); None disables
            token enrolment (certificates are then issued offline with ``tutela pki``).
        audit_hook: extra sink called for every audit event (e.g. the governance Merkle log).
        advance_on_submit: the submission that completes a round stage moves the study on
            in its own call (the service does this, so a stage opens as soon as the last
            site replied); off, only :meth:`tick` moves studies (callers that drive the
            ticker themselves, as tests do).
    """

    def __init__(
        self,
        store: Store,
        clock: Clock = time.time,
        signer: Signer | None = None,
        audit_hook: AuditHook | None = None,
        *,
        advance_on_submit: bool = False,
    ) -> None:
        self.core = Core(store, clock, audit_hook)
        runtimes = Runtimes(self.core)
        protocol = RoundProtocols.of(self.core)
        self.identity = Identity(self.core, signer)
        self.studies = Studies(self.core, runtimes)
        self.participants = Participation(self.core)
        self.inbox = Inbox(self.core, protocol, self.participants)
        self.driver = RoundDriver(self.core, runtimes, protocol)
        if advance_on_submit:
            self.inbox.advance = self._advance_now
        self.queries = Queries(self.core)
        self.smpc = SmpcSessions(self.core)

    @property
    def store(self) -> Store:
        """The persistent state."""
        return self.core.store

    # audit -----------------------------------------------------------------------------

    def audit(
        self,
        actor: str,
        action: str,
        resource: str,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record one audit event."""
        self.core.audit(actor, action, resource, outcome, detail)

    def audit_events(self, *, limit: int = 1000, after_id: int = 0) -> list[dict[str, Any]]:
        """Audit events in order."""
        return self.core.audit_events(limit=limit, after_id=after_id)

    # identity ---------------------------------------------------------------------------

    def create_token(
        self, role: Role, subject: str, *, actor: str = "system", ttl_s: float | None = None
    ) -> str:
        """See :meth:`Identity.create_token`."""
        return self.identity.create_token(role, subject, actor=actor, ttl_s=ttl_s)

    def principal_for_token(self, token: str) -> Principal | None:
        """See :meth:`Identity.principal_for_token`."""
        return self.identity.principal_for_token(token)

    def recognised_site(self, common_name: str, fingerprint: str) -> Principal | None:
        """See :meth:`Identity.recognised_site`."""
        return self.identity.recognised_site(common_name, fingerprint)

    def principal_for_site(self, common_name: str, fingerprint: str) -> Principal | None:
        """See :meth:`Identity.principal_for_site`."""
        return self.identity.principal_for_site(common_name, fingerprint)

    def register_site(self, actor: Principal, name: str, *, ttl_s: float = 24 * 3600) -> str:
        """See :meth:`Identity.register_site`."""
        return self.identity.register_site(actor, name, ttl_s=ttl_s)

    def activate_site(self, actor: Principal, name: str) -> None:
        """See :meth:`Identity.activate_site`."""
        self.identity.activate_site(actor, name)

    def enrol(self, token: str, csr_pem: bytes) -> bytes:
        """See :meth:`Identity.enrol`."""
        return self.identity.enrol(token, csr_pem)

    def list_sites(self) -> list[dict[str, Any]]:
        """See :meth:`Identity.list_sites`."""
        return self.identity.list_sites()

    # studies ----------------------------------------------------------------------------

    def create_study(
        self, actor: Principal, config: StudyConfig, settings: DeploymentSettings | None = None
    ) -> str:
        """See :meth:`Studies.create_study`."""
        return self.studies.create_study(actor, config, settings)

    def set_initial_model(self, actor: Principal, study_id: str, body: bytes) -> None:
        """See :meth:`Studies.set_initial_model`."""
        self.studies.set_initial_model(actor, study_id, body)

    def start(self, actor: Principal, study_id: str) -> str:
        """See :meth:`Studies.start`."""
        return self.studies.start(actor, study_id)

    def pause(self, actor: Principal, study_id: str) -> str:
        """See :meth:`Studies.pause`."""
        return self.studies.pause(actor, study_id)

    def cancel(self, actor: Principal, study_id: str) -> str:
        """See :meth:`Studies.cancel`."""
        return self.studies.cancel(actor, study_id)

    def study_status(self, study_id: str) -> dict[str, Any]:
        """See :meth:`Studies.study_status`."""
        return self.studies.study_status(study_id)

    def study_brief(self, study_id: str) -> dict[str, Any]:
        """See :meth:`Studies.study_brief`."""
        return self.studies.study_brief(study_id)

    def list_studies(self) -> list[dict[str, Any]]:
        """See :meth:`Studies.list_studies`."""
        return self.studies.list_studies()

    def privacy_ledger(self, study_id: str) -> dict[str, Any]:
        """See :meth:`Studies.privacy_ledger`."""
        return self.studies.privacy_ledger(study_id)

    def site_reports(self, study_id: str) -> dict[str, Any]:
        """See :meth:`Studies.site_reports`."""
        return self.studies.site_reports(study_id)

    def round_model(self, study_id: str, round_no: int) -> bytes:
        """See :meth:`Studies.round_model`."""
        return self.studies.round_model(study_id, round_no)

    def final_model(self, study_id: str) -> bytes:
        """See :meth:`Studies.final_model`."""
        return self.studies.final_model(study_id)

    # sites' side of studies ---------------------------------------------------------------

    def tasks_for(self, site: str) -> dict[str, Any]:
        """See :meth:`Participation.tasks_for`."""
        tasks = self.participants.tasks_for(site)
        return {**tasks, "tasks": [*tasks["tasks"], *self.queries.tasks_for(site)]}

    def participation(self, site: str, study_id: str) -> ParticipationRow:
        """See :meth:`Participation.participation`."""
        return self.participants.participation(site, study_id)

    def model_for_site(self, site: str, study_id: str) -> bytes:
        """See :meth:`Participation.model_for_site`."""
        return self.participants.model_for_site(site, study_id)

    def answer_invitation(
        self,
        site: str,
        study_id: str,
        *,
        accept: bool,
        reason: str = "",
        num_examples: int = 0,
        moments: FeatureMoments | None = None,
        identity: str | None = None,
        certificate: str | None = None,
        binding: str | None = None,
        noised: list[float] | None = None,
    ) -> str:
        """See :meth:`Participation.answer_invitation`."""
        return self.participants.answer_invitation(
            site,
            study_id,
            accept=accept,
            reason=reason,
            num_examples=num_examples,
            moments=moments,
            identity=identity,
            certificate=certificate,
            binding=binding,
            noised=noised,
        )

    # inbox ------------------------------------------------------------------------------

    def submit(
        self, site: str, study_id: str, round_no: int, stage: str, idempotency_key: str, body: bytes
    ) -> Receipt:
        """See :meth:`Inbox.submit`."""
        return self.inbox.submit(site, study_id, round_no, stage, idempotency_key, body)

    def report_metrics(
        self, site: str, study_id: str, round_no: int, metrics: dict[str, float]
    ) -> None:
        """See :meth:`Inbox.report_metrics`."""
        self.inbox.report_metrics(site, study_id, round_no, metrics)

    def report_site(self, site: str, study_id: str, body: bytes) -> Receipt:
        """See :meth:`Inbox.report_site`."""
        return self.inbox.report_site(site, study_id, body)

    def relay_post(
        self,
        sender: str,
        study_id: str,
        round_no: int,
        stage: str,
        recipient: str,
        idempotency_key: str,
        body: bytes,
    ) -> Receipt:
        """See :meth:`Inbox.relay_post`."""
        return self.inbox.relay_post(
            sender, study_id, round_no, stage, recipient, idempotency_key, body
        )

    def relay_fetch(
        self, recipient: str, study_id: str, round_no: int, stage: str
    ) -> dict[str, bytes]:
        """See :meth:`Inbox.relay_fetch`."""
        return self.inbox.relay_fetch(recipient, study_id, round_no, stage)

    # driver -----------------------------------------------------------------------------

    def resume(self) -> int:
        """See :meth:`RoundDriver.resume`."""
        return self.driver.resume()

    def _advance_now(self, study_id: str) -> bool:
        """Move ``study_id`` on (:meth:`RoundDriver.advance_study`) after submissions
        completed its stage. False if that failed: the submissions stand, the failure is
        logged, and the ticker tries again."""
        try:
            self.driver.advance_study(study_id)
        except Exception:  # the ticker retries what failed here
            _log.exception("advancing study %s after a completed stage failed", study_id)
            return False
        return True

    def tick(self) -> bool:
        """See :meth:`RoundDriver.tick` (and :meth:`Queries.tick`)."""
        if self.queries.tick():  # queries live in memory: the store does not ring for them
            self.core.bell.ring()
            return self.driver.tick() or True
        return self.driver.tick()
