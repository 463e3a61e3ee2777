"""Everything sites send the coordinator, accepted exactly once.

Round stage submissions (fit updates and SecAgg+ messages), relayed messages, metric
(including privacy) reports and the sites' signed reports all pass through one primitive,
:meth:`Inbox.accept`: a
submission carries an idempotency key; the same key again with the same content and the
same destination is *accepted again* (the original receipt, ``duplicate=True``, nothing
stored twice), and the same key with anything else is a conflict. Sites retry after a lost
reply with the same key and bytes, so a retry can never count twice.

The metrics and site-report endpoints carry no key of their own: a report's key is its
content, so a retried report is recognised and a different one is stored beside it.

A site report (:mod:`tutela.governance.site_report`) is accepted only from the site it
names and only under the identity key that site registered when it joined the study; it is
stored verbatim.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutela.errors import DataError, PermissionDenied, TutelaError
from tutela.fl.bounds import UpdateNormExceeded, check_update_norm, round_norm_bound
from tutela.fl.records import Parameters
from tutela.governance.site_report import verify_site_report
from tutela.server.batching import Batcher, Slot
from tutela.server.core import (
    COORDINATOR,
    FIT_STAGE,
    ConflictError,
    Core,
    DeploymentSettings,
    PayloadTooLargeError,
    Receipt,
    StudyStatus,
    check_update,
    dumps,
    open_round_row,
    relay_name,
    stage_submitters,
)
from tutela.server.participation import Participation
from tutela.server.protocols import RoundProtocols
from tutela.server.round_metrics import check_evaluation
from tutela.server.store import (
    MetricRow,
    ParticipationRow,
    RelayRow,
    RoundRow,
    SiteReportRow,
    StudyRow,
    UpdateRow,
    digest,
)
from tutela.server.wire import parse_tensors

_log = logging.getLogger(__name__)

METRICS_STAGE = "metrics"
SITE_REPORT_STAGE = "site-report"
MAX_SITE_REPORT_BYTES = 1024 * 1024
"""The largest site report accepted (its ledger lists every spend: ~300 bytes a round)."""


class Kind(Enum):
    """What a submission is (the value names it in error messages)."""

    STAGE = "submission"  # a round stage: a fit update or a SecAgg+ message
    RELAY = "message"  # an opaque message for another participant
    REPORT = "report"  # metrics, privacy spend included
    SITE_REPORT = "site report"  # a site's signed policy and ledger summary


@dataclass(frozen=True)
class Envelope:
    """Who sent a submission, where it goes, and the key it is sent under."""

    kind: Kind
    study_id: str
    site: str
    round_no: int
    stage: str
    key: str
    recipient: str = COORDINATOR


def check_key(key: str) -> None:
    """Refuse a missing or oversized idempotency key."""
    if not key or len(key) > 128:
        raise DataError("an Idempotency-Key header of 1-128 characters is required")


@dataclass
class Inbox:
    """Site submissions: round stages, relayed messages, metric reports."""

    core: Core
    protocol: RoundProtocols
    participation: Participation
    advance: Callable[[str], bool] | None = None
    """Moves a study on at once (True when it did) after a group of submissions completed
    its stage, under the coordinator lock; None leaves it to the round driver's ticker."""
    _submissions: Batcher[_Submission, Receipt] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Lock order: the coordinator lock, then the database (as in the driver's tick).
        self._submissions = Batcher(self._accept_queued, self.core.lock)

    def accept(
        self, s: Session, envelope: Envelope, body: bytes, store: Callable[[str], None]
    ) -> Receipt:
        """Accept ``body`` once under ``envelope``'s key, inside the transaction ``s``.

        ``store(digest)`` validates and writes a first submission; a retry (same key, same
        body and destination) is answered with ``duplicate=True`` without calling it.

        Raises:
            ConflictError: the key was already used for a different submission.
        """
        check_key(envelope.key)
        body_digest = digest(body)
        replayed = _replayed(envelope, body_digest, self._previous(s, envelope))
        if replayed is not None:
            return replayed
        store(body_digest)
        e = envelope
        return Receipt(e.study_id, e.round_no, e.stage, e.site, body_digest, False)

    @staticmethod
    def _previous(s: Session, e: Envelope) -> tuple[str, int, str, str] | None:
        """(digest, round, stage, recipient) of what was accepted under the key, if any
        (round stages read theirs for a whole group, see :class:`_StageGroup`)."""
        if e.kind is Kind.RELAY:
            r = s.scalar(
                select(RelayRow).where(
                    RelayRow.study_id == e.study_id,
                    RelayRow.sender == e.site,
                    RelayRow.idempotency_key == e.key,
                )
            )
            return None if r is None else (r.digest, r.round_no, r.stage, r.recipient)
        if e.kind is Kind.SITE_REPORT:
            seen = s.scalar(
                select(SiteReportRow.digest).where(
                    SiteReportRow.study_id == e.study_id,
                    SiteReportRow.site == e.site,
                    SiteReportRow.digest == e.key,
                )
            )
            return None if seen is None else (seen, e.round_no, SITE_REPORT_STAGE, COORDINATOR)
        for m in s.scalars(
            select(MetricRow).where(
                MetricRow.study_id == e.study_id,
                MetricRow.site == e.site,
                MetricRow.round_no == e.round_no,
            )
        ):
            seen = digest(m.metrics_json.encode())
            if seen == e.key:
                return (seen, m.round_no, METRICS_STAGE, COORDINATOR)
        return None

    # round stages -----------------------------------------------------------------------

    def submit(
        self, site: str, study_id: str, round_no: int, stage: str, idempotency_key: str, body: bytes
    ) -> Receipt:
        """Accept a site's submission for an open round stage, exactly once.

        A retry with the same idempotency key and body gets the original receipt
        (``duplicate=True``); the same key with another body, a second submission for the
        same stage, a closed or future round, or a stale ``round`` in the body's metadata
        are refused. A fit update longer (L2) than the round's ``max_update_norm`` is refused
        (:class:`~tutela.fl.bounds.UpdateNormExceeded`) and the refusal, with its reason, is
        audited in its own transaction: the site counts as not having replied.

        Submissions are committed in groups: whichever caller holds the coordinator lock
        accepts every submission queued while it waited, one study at a time, in one
        transaction (one row lock on the study, one read of the open round, of the
        participants and of earlier receipts, one commit). Each submission is checked on
        its own, exactly as alone, and a refused one writes nothing; its caller gets its
        own receipt or its own refusal.
        """
        check_key(idempotency_key)
        envelope = Envelope(Kind.STAGE, study_id, site, round_no, stage, idempotency_key)
        return self._submissions(_Submission(envelope, body))

    def _accept_queued(self, batch: list[Slot[_Submission, Receipt]]) -> None:
        """Accept ``batch`` (under the coordinator lock): one transaction per study."""
        by_study: dict[str, list[Slot[_Submission, Receipt]]] = {}
        for slot in batch:
            by_study.setdefault(slot.item.envelope.study_id, []).append(slot)
        for study_id, slots in by_study.items():
            denials: list[tuple[Envelope, UpdateNormExceeded]] = []
            accepted: list[tuple[Slot[_Submission, Receipt], Receipt]] = []
            try:
                with self.core.store.session() as s:
                    group = _StageGroup(self.core, s, self.core.study(s, study_id, lock=True))
                    group.prefetch([slot.item for slot in slots])
                    for slot in slots:
                        try:
                            accepted.append((slot, self._accept_stage(group, slot.item)))
                        except UpdateNormExceeded as refused:
                            slot.fail(refused)
                            denials.append((slot.item.envelope, refused))
                        except TutelaError as refusal:  # raised before the item wrote anything
                            slot.fail(refusal)
            except Exception as failure:  # the transaction rolled back: nothing was accepted
                for slot in slots:
                    if not slot.served:
                        slot.fail(failure)
            else:  # a receipt is given only once its submission is committed
                for slot, receipt in self._after_group(study_id, accepted):
                    slot.resolve(receipt)
            for e, reason in denials:
                self.core.audit_denial(
                    f"site:{e.site}",
                    "round.submit",
                    f"study/{e.study_id}/round/{e.round_no}/{e.stage}",
                    {"reason": str(reason)},
                )

    def _after_group(
        self, study_id: str, accepted: list[tuple[Slot[_Submission, Receipt], Receipt]]
    ) -> list[tuple[Slot[_Submission, Receipt], Receipt]]:
        """After a group committed: advance the study if the group completed its stage
        (:attr:`advance`), then read the answers of its waiting submitters, and of the
        waiting sites the advance rang, in one transaction for their requests to take
        (:meth:`Participation.read_ahead`); the woken requests are let go once it is done.
        Neither step can take back a receipt: a failure is logged and left to the ticker or
        to the requests' own reads."""
        bell = self.core.bell
        with bell.deferred() as rung:
            due = any(r.driver_due for _, r in accepted)
            if due and self.advance is not None and self.advance(study_id):
                accepted = [(slot, replace(r, driver_due=False)) for slot, r in accepted]
            held = bell.held_sites()
            sites = {slot.item.envelope.site for slot, _ in accepted} & held
            for ring in rung:
                sites |= held if ring is None else ring & held
            try:
                self.participation.read_ahead(sites)
            except Exception:  # the requests read their answers themselves
                _log.exception("reading the answers of study %s ahead failed", study_id)
        return accepted

    def _accept_stage(self, g: _StageGroup, item: _Submission) -> Receipt:
        """Check and write one queued submission inside its group's transaction.

        Every check comes before any write, so a refusal leaves nothing behind.
        """
        e, body = item.envelope, item.body
        site, study_id, round_no, stage = e.site, e.study_id, e.round_no, e.stage
        body_digest = digest(body)
        replayed = _replayed(e, body_digest, g.previous.get((site, e.key)))
        if replayed is not None:
            return replayed
        study = g.study
        if len(body) > g.settings.max_update_bytes:
            raise PayloadTooLargeError(
                f"body of {len(body)} bytes exceeds the {g.settings.max_update_bytes} limit"
            )
        p = g.participations.get(site)
        if p is None or p.status != "accepted":
            raise PermissionDenied(f"site {site} does not participate in study {study_id}")
        if study.status not in (StudyStatus.RUNNING, StudyStatus.PAUSED):
            raise ConflictError(f"study {study_id} is {study.status}; it accepts no submissions")
        rr = _open_stage(g.round, study_id, study.current_round, round_no, stage)
        if site not in g.participants:
            raise PermissionDenied(f"site {site} was not selected for round {round_no}")
        if self.core.clock() > rr.stage_deadline:
            raise ConflictError(f"the deadline of round {round_no} stage {stage!r} has passed")
        if site in g.submitted:
            raise ConflictError(
                f"site {site} already submitted for round {round_no} stage {stage!r}"
            )
        arrays, meta = parse_tensors(body)
        if meta.get("study") != study_id or meta.get("round") != str(round_no):
            raise ConflictError(
                f"the body is bound to study {meta.get('study')!r} "
                f"round {meta.get('round')!r}, "
                f"not study {study_id!r} round {round_no}: replayed or misdirected"
            )
        if stage == FIT_STAGE:
            num_examples = _positive_int(meta.get("num_examples"), "num_examples")
            if num_examples > p.num_examples:
                raise DataError(
                    f"num_examples {num_examples} exceeds the {p.num_examples} rows "
                    f"site {site} declared when it joined"
                )
            update = check_update(arrays, g.global_model())
            check_update_norm(update, g.norm_bound, site)
            sealed = self.core.store.seal(body, f"update/{study_id}/{round_no}/{stage}/{site}")
        else:
            complete = self.protocol.receive(study_id, round_no, rr.attempt, stage, site, body)
            num_examples = 0
            sealed = b""  # SecAgg+ messages live in the in-memory protocol state only
        g.session.add(
            UpdateRow(
                study_id=study_id,
                round_no=round_no,
                attempt=rr.attempt,
                stage=stage,
                site=site,
                idempotency_key=e.key,
                digest=body_digest,
                num_examples=num_examples,
                blob=sealed,
                created_at=self.core.clock(),
            )
        )
        self.core.audit(
            f"site:{site}",
            "round.submit",
            f"study/{study_id}/round/{round_no}/{stage}",
            session=g.session,
        )
        g.previous[(site, e.key)] = (body_digest, round_no, stage, COORDINATOR)
        g.submitted.add(site)
        if stage == FIT_STAGE:
            complete = g.participants <= g.submitted
        return Receipt(study_id, round_no, stage, site, body_digest, False, complete)

    # reports ----------------------------------------------------------------------------

    def report_metrics(
        self, site: str, study_id: str, round_no: int, metrics: dict[str, float]
    ) -> Receipt:
        """Store a site's metrics for a round (finite numbers only); a retry is kept once."""
        self.participation.participation(site, study_id)
        clean: dict[str, float] = {}
        for key, value in metrics.items():
            if not isinstance(value, int | float) or not math.isfinite(float(value)):
                raise DataError(f"metric {key!r} must be a finite number")
            clean[str(key)[:64]] = float(value)
        try:
            check_evaluation(clean)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        text = dumps(clean)
        body = text.encode()
        envelope = Envelope(Kind.REPORT, study_id, site, round_no, METRICS_STAGE, digest(body))
        with self.core.store.session() as s:

            def store(_digest: str) -> None:
                s.add(
                    MetricRow(
                        study_id=study_id,
                        round_no=round_no,
                        site=site,
                        metrics_json=text,
                        created_at=self.core.clock(),
                    )
                )

            return self.accept(s, envelope, body, store)

    def report_site(self, site: str, study_id: str, body: bytes) -> Receipt:
        """Store a site's signed report (JSON) verbatim; a resend of the same one is kept once.

        Security: the coordinator checks who signed, not only that the signature holds: the
        report must name the calling site (authenticated by mutual TLS) and verify under the
        Ed25519 identity key that site registered when it joined the study, never under the
        key the report carries. A site may report until the study's records are gone (its
        last round's report may arrive after the study completed).

        Raises:
            PayloadTooLargeError: over :data:`MAX_SITE_REPORT_BYTES`.
            DataError: not a JSON object, or it does not verify under the registered key.
            PermissionDenied: the caller has not joined the study, registered no identity
                key, or reports for another site.
        """
        if len(body) > MAX_SITE_REPORT_BYTES:
            raise PayloadTooLargeError(
                f"site report of {len(body)} bytes exceeds the {MAX_SITE_REPORT_BYTES} limit"
            )
        body_digest = digest(body)
        envelope = Envelope(Kind.SITE_REPORT, study_id, site, 0, SITE_REPORT_STAGE, body_digest)
        with self.core.store.session() as s:
            self.core.study(s, study_id, lock=True)  # one report at a time per study

            def store(_digest: str) -> None:
                report = _json_object(body, "the site report")
                p = s.get(ParticipationRow, (study_id, site))
                if p is None or p.status != "accepted":
                    raise PermissionDenied(f"site {site} has not joined study {study_id}")
                if report.get("site") != site:
                    raise PermissionDenied(
                        f"site {site} may only report for itself, not for {report.get('site')!r}"
                    )
                key = p.identity_key()
                if key is None:
                    raise PermissionDenied(
                        f"site {site} registered no identity key when it joined study "
                        f"{study_id}; its reports cannot be verified"
                    )
                if not verify_site_report(report, trusted_keys=[key]):
                    raise DataError(
                        f"the site report does not verify under the identity key site {site} "
                        "registered when it joined"
                    )
                s.add(
                    SiteReportRow(
                        study_id=study_id,
                        site=site,
                        digest=body_digest,
                        report_json=body.decode("utf-8"),
                        created_at=self.core.clock(),
                    )
                )
                self.core.audit(
                    f"site:{site}",
                    "site.report",
                    f"study/{study_id}/site-report",
                    detail={"digest": body_digest},
                    session=s,
                )

            return self.accept(s, envelope, body, store)

    # relay ------------------------------------------------------------------------------

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
        """Store an opaque message from one round participant to another.

        Security: the coordinator authenticates the sender (mutual TLS) and the recipient
        learns the sender's identity from the coordinator; the payload is opaque (sites
        encrypt it end to end) and sealed at rest.
        """
        check_key(idempotency_key)
        envelope = Envelope(
            Kind.RELAY, study_id, sender, round_no, stage, idempotency_key, recipient
        )
        with self.core.store.session() as s:
            study = self.core.study(s, study_id, lock=True)

            def store(body_digest: str) -> None:
                settings = DeploymentSettings.of(study)
                if len(body) > settings.max_relay_bytes:
                    raise PayloadTooLargeError(
                        f"message of {len(body)} bytes exceeds the {settings.max_relay_bytes} limit"
                    )
                rr = open_round_row(s, study_id)
                if rr is None or rr.round_no != round_no:
                    raise ConflictError(f"round {round_no} of study {study_id} is not open")
                if self.core.clock() > rr.stage_deadline:
                    raise ConflictError(
                        f"the deadline of round {round_no} stage {rr.stage!r} has passed"
                    )
                members = json.loads(rr.participants_json)
                if sender not in members:
                    raise PermissionDenied(f"site {sender} is not in round {round_no}")
                if recipient not in members or recipient == sender:
                    raise DataError(
                        f"recipient {recipient!r} is not another participant of round {round_no}"
                    )
                self.core.relay(s, study_id, rr, stage, sender, recipient, idempotency_key, body)

            return self.accept(s, envelope, body, store)

    def relay_fetch(
        self, recipient: str, study_id: str, round_no: int, stage: str
    ) -> dict[str, bytes]:
        """Messages addressed to ``recipient`` for one stage of the round's latest attempt
        (a round that was retried keeps its earlier attempts' messages), keyed by
        authenticated sender."""
        with self.core.store.read() as s:
            self.core.study(s, study_id)
            rows = s.scalars(
                select(RelayRow).where(
                    RelayRow.study_id == study_id,
                    RelayRow.round_no == round_no,
                    RelayRow.stage == stage,
                    RelayRow.recipient == recipient,
                )
            ).all()
            latest = max((r.attempt for r in rows), default=0)
            rows = [r for r in rows if r.attempt == latest]
            return {
                r.sender: self.core.store.unseal(
                    r.blob, relay_name(study_id, round_no, r.attempt, stage, r.sender, recipient)
                )
                for r in rows
            }


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    """``body`` as a JSON object (no NaN or infinity), or a DataError naming ``what``."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError):
        raise DataError(f"{what} must be UTF-8 JSON without NaN or infinity") from None
    if not isinstance(value, dict):
        raise DataError(f"{what} must be a JSON object")
    return value


MAX_METADATA_INT = 2**53


def _positive_int(value: str | None, name: str) -> int:
    try:
        number = int(value) if value is not None and len(value) <= 20 else 0
    except ValueError:
        number = 0
    if not 0 < number <= MAX_METADATA_INT:
        raise DataError(
            f"the body's metadata must carry a positive integer {name} of at most 2**53"
        )
    return number


def _replayed(
    e: Envelope, body_digest: str, previous: tuple[str, int, str, str] | None
) -> Receipt | None:
    """The original receipt when ``e``'s key was already accepted for this same submission
    (``previous``: digest, round, stage, recipient), None when the key is new.

    Raises:
        ConflictError: the key was already used for a different submission.
    """
    if previous is None:
        return None
    if previous != (body_digest, e.round_no, e.stage, e.recipient):
        raise ConflictError(f"this Idempotency-Key was already used for a different {e.kind.value}")
    return Receipt(e.study_id, e.round_no, e.stage, e.site, body_digest, True)


@dataclass(frozen=True)
class _Submission:
    """A round stage submission waiting for the coordinator lock."""

    envelope: Envelope
    body: bytes


class _StageGroup:
    """What one transaction reads once for a group of one study's submissions."""

    def __init__(self, core: Core, session: Session, study: StudyRow) -> None:
        self.core = core
        self.session = session
        self.study = study
        self.settings = DeploymentSettings.of(study)
        self.round = open_round_row(session, study.id)
        self.participants: set[str] = (
            set(json.loads(self.round.participants_json)) if self.round is not None else set()
        )
        self.participations: dict[str, ParticipationRow] = {}
        self.previous: dict[tuple[str, str], tuple[str, int, str, str]] = {}
        self.submitted: set[str] = set()
        self._model: Parameters | None = None

    def prefetch(self, items: list[_Submission]) -> None:
        """Participations, earlier receipts and this stage's submitters, one query each."""
        s, study_id = self.session, self.study.id
        sites = sorted({i.envelope.site for i in items})
        for p in s.scalars(
            select(ParticipationRow).where(
                ParticipationRow.study_id == study_id, ParticipationRow.site.in_(sites)
            )
        ):
            self.participations[p.site] = p
        wanted = {(i.envelope.site, i.envelope.key) for i in items}
        for site, key, body_digest, round_no, stage in s.execute(
            select(
                UpdateRow.site,
                UpdateRow.idempotency_key,
                UpdateRow.digest,
                UpdateRow.round_no,
                UpdateRow.stage,
            ).where(
                UpdateRow.study_id == study_id,
                UpdateRow.site.in_(sites),
                UpdateRow.idempotency_key.in_(sorted({i.envelope.key for i in items})),
            )
        ):
            if (site, key) in wanted:
                self.previous[(site, key)] = (body_digest, round_no, stage, COORDINATOR)
        if self.round is not None:  # every participant's: whether the stage is complete
            self.submitted = stage_submitters(s, self.round, sorted(self.participants))

    def global_model(self) -> Parameters:
        """The study's global model, unsealed once per group."""
        if self._model is None:
            self._model = self.core.global_model(self.study)
        return self._model

    @functools.cached_property
    def norm_bound(self) -> float | None:
        """The open round's bound on an update's L2 norm (read once per group)."""
        assert self.round is not None
        return round_norm_bound(json.loads(self.round.fit_config_json))


def _open_stage(
    rr: RoundRow | None, study_id: str, current_round: int, round_no: int, stage: str
) -> RoundRow:
    """``rr`` (the study's open round) if it is round ``round_no`` in ``stage``, or a
    ConflictError saying why not."""
    if rr is None or rr.round_no != round_no:
        current = rr.round_no if rr is not None else current_round
        if round_no < current or (rr is None and round_no <= current_round - 1):
            raise ConflictError(
                f"round {round_no} of study {study_id} is closed "
                f"(current round {current}); "
                "a submission for an earlier round is never accepted"
            )
        raise ConflictError(f"round {round_no} of study {study_id} is not open")
    if rr.stage != stage:
        raise ConflictError(f"round {round_no} is in stage {rr.stage!r}, not {stage!r}")
    return rr
