"""A site's side of a study: its invitations, its answer, its tasks and the model it trains.

Recruiting: every invited site checks the study against its local policy and answers
(accept with the row count it declares and, as the study's standardisation mode says, its
exact feature moments, its noised moment vector, or nothing more when the statistics are
summed by a secure round later (:mod:`tutela.fl.standardisation`); or refuse with a reason,
which is audited). While a study runs, a site polls :meth:`Participation.tasks_for` for the
round stages it has to work on.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutela.errors import DataError, IntegrityError, PermissionDenied
from tutela.fl.client import FeatureMoments
from tutela.fl.config import parse_study
from tutela.fl.standardisation import StandardisationMode, standardisation_mode
from tutela.secagg.config import Stage
from tutela.server.batching import Batcher, Slot
from tutela.server.ckks import ENCRYPT_STAGE as CKKS_ENCRYPT_STAGE
from tutela.server.core import (
    COORDINATOR,
    FIT_STAGE,
    ConflictError,
    Core,
    DeploymentSettings,
    StudyStatus,
    dumps,
    open_round_row,
    relay_name,
    stage_submitters,
)
from tutela.server.round_metrics import EVALUATE_TASK, evaluated_rounds
from tutela.server.store import ParticipationRow, RelayRow, RoundRow, SiteRow, StudyRow

INLINE_MESSAGE_BYTES = 256 * 1024
"""The coordinator's message for a round stage travels inside the task (``message``,
base64) up to this size; a larger one is fetched from the relay (the task says
``message_relayed``)."""

INLINE_MODEL_BYTES = 256 * 1024
"""The global model travels inside the task of a round's first stage (``model``, base64) up
to this size; a larger one is fetched from ``/v1/site/studies/{id}/model``."""

MODEL_STAGES = frozenset({FIT_STAGE, Stage.ADVERTISE_KEYS.value, CKKS_ENCRYPT_STAGE})
"""The stages in which a site trains on the global model (a round's first stage)."""

MAX_SITE_ROWS = 10**9
"""The most rows one site may declare (a site's weight in every round is capped at its
declaration)."""


@dataclass
class Participation:
    """What sites read and answer about the studies they were invited to."""

    core: Core
    _tasks: Batcher[str, dict[str, Any]] = field(init=False, repr=False)
    _models: dict[str, tuple[bytes, str | None]] = field(default_factory=dict, repr=False)
    """Per study, the SHA-256 of its sealed model and the model in base64 (None: too large
    to travel in a task); used under the task batcher's lock."""

    def __post_init__(self) -> None:
        self._tasks = Batcher(self._serve_tasks)

    def _inline_model(self, study: StudyRow) -> str | None:
        """``study``'s current global model in base64 for a task, or None when it is larger
        than :data:`INLINE_MODEL_BYTES` (or not set)."""
        if study.model_blob is None:  # pragma: no cover - required before start
            return None
        digest = hashlib.sha256(study.model_blob).digest()
        cached = self._models.get(study.id)
        if cached is not None and cached[0] == digest:
            return cached[1]
        try:
            model = self.core.unseal_model(study.id, study.model_blob)
        except IntegrityError:  # the site's own fetch reports it; other sites' tasks go on
            return None
        encoded = None
        if len(model) <= INLINE_MODEL_BYTES:
            encoded = base64.b64encode(model).decode("ascii")
        if len(self._models) > 64:  # studies come and go: keep the cache small
            self._models.clear()
        self._models[study.id] = (digest, encoded)
        return encoded

    def participation(self, site: str, study_id: str) -> ParticipationRow:
        """A site's participation row in a study (NotFoundError/PermissionDenied otherwise)."""
        with self.core.store.read() as s:
            return self._invited(s, site, study_id)[1]

    def _invited(self, s: Session, site: str, study_id: str) -> tuple[StudyRow, ParticipationRow]:
        """The study and ``site``'s participation in it (NotFoundError/PermissionDenied)."""
        study = self.core.study(s, study_id)
        p = s.get(ParticipationRow, (study_id, site))
        if p is None:
            raise PermissionDenied(f"site {site} is not invited to study {study_id}")
        return study, p

    def model_for_site(self, site: str, study_id: str) -> bytes:
        """The current global model for a participating site (safetensors)."""
        with self.core.store.read() as s:
            row, p = self._invited(s, site, study_id)
            if p.status != "accepted":
                raise PermissionDenied(f"site {site} has not joined study {study_id}")
            if row.status not in StudyStatus.ACTIVE and row.status != StudyStatus.COMPLETED:
                raise ConflictError(f"study {study_id} is {row.status}")
            if row.model_blob is None:  # pragma: no cover - required before start
                raise ConflictError(f"study {study_id} has no model")
            return self.core.unseal_model(study_id, row.model_blob)

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
        """Record a site's accept/refuse answer (refusals are audited with their reason).

        An acceptance carries what the study's standardisation mode asks for and nothing
        else: exact ``moments`` (plain), a ``noised`` moment vector (DP without secure
        aggregation), or neither (secure: the sums travel through SecAgg+ before round 1).

        Under secure aggregation it also carries the site's ``identity`` key and, so that
        peers can check that key against the deployment CA rather than trust this
        coordinator, its client ``certificate`` and the ``binding`` its TLS key made over the
        study, the site name and the key; the coordinator keeps both and relays them with
        the key (:mod:`tutela.server.agent.peers`).
        """
        with self.core.store.session() as s:
            study = self.core.study(s, study_id, lock=True)
            p = s.get(ParticipationRow, (study_id, site))
            if p is None:
                raise PermissionDenied(f"site {site} is not invited to study {study_id}")
            if p.status != "invited":
                if (p.status == "accepted") == accept:
                    return p.status
                raise ConflictError(f"site {site} already answered {p.status}")
            if study.status != StudyStatus.RECRUITING:
                raise ConflictError(f"study {study_id} is {study.status}; it no longer recruits")
            if accept:
                if not 0 < num_examples <= MAX_SITE_ROWS:
                    raise DataError(f"accepting needs 0 < num_examples <= {MAX_SITE_ROWS}")
                cfg = json.loads(study.config_json)
                statistics = _join_statistics(cfg, num_examples, moments, noised)
                if cfg["secure_aggregation"]["protocol"] != "none":
                    _check_identity(identity)
                p.status = "accepted"
                p.num_examples = num_examples
                bound = {"certificate": certificate, "binding": binding} if binding else {}
                p.join_json = dumps({**statistics, "identity": identity, **bound})
            else:
                p.status = "refused"
                p.reason = reason[:2000] or "refused by site policy"
            p.updated_at = self.core.clock()
            self.core.audit(
                f"site:{site}",
                "study.join" if accept else "study.refuse",
                f"study/{study_id}",
                "ok" if accept else "refused",
                {"reason": p.reason} if not accept else {"num_examples": num_examples},
                session=s,
            )
            return p.status

    def tasks_for(self, site: str) -> dict[str, Any]:
        """What a site should do now (answer invitations, work on open round stages), and
        the status of every study it was invited to.

        Calls made at once share one read (held requests woken together by one change ask
        together): the answer reflects every change committed before the call.
        """
        return self._tasks(site)

    def read_ahead(self, sites: set[str]) -> None:
        """Read the answers of ``sites`` in one transaction and leave them with the bell for
        their woken requests (:meth:`~tutela.server.push.TaskBell.remember`), between two
        batches of :meth:`tasks_for`, so the requests queued meanwhile take them."""
        if not sites:
            return
        bell = self.core.bell
        with self._tasks.exclusive():
            wanted = sorted(sites)
            generations = {site: bell.generation(site) for site in wanted}  # before the read
            for site, answer in self._tasks_for_sites(wanted).items():
                bell.remember(site, generations[site], answer)

    def _serve_tasks(self, slots: list[Slot[str, dict[str, Any]]]) -> None:
        answers: dict[str, dict[str, Any]] = {}
        for site in {slot.item for slot in slots}:
            ahead = self.core.bell.recall(site)
            if ahead is not None:
                answers[site] = ahead
        missing = sorted({slot.item for slot in slots} - set(answers))
        if missing:
            answers.update(self._tasks_for_sites(missing))
        for slot in slots:
            slot.resolve(answers[slot.item])

    def _tasks_for_sites(self, sites: list[str]) -> dict[str, dict[str, Any]]:
        """:meth:`tasks_for` of several sites in one read transaction."""
        now = self.core.clock()
        out: dict[str, dict[str, Any]] = {site: {"tasks": [], "studies": {}} for site in sites}
        with self.core.store.read() as s:
            active = set(  # a site suspended while its request was held gets no task
                s.scalars(
                    select(SiteRow.name).where(SiteRow.name.in_(sites), SiteRow.status == "active")
                )
            )
            parts = s.scalars(
                select(ParticipationRow)
                .where(ParticipationRow.site.in_(sorted(active)))
                .order_by(ParticipationRow.study_id)
            ).all()
            study_ids = sorted({p.study_id for p in parts})
            studies = {
                row.id: row for row in s.scalars(select(StudyRow).where(StudyRow.id.in_(study_ids)))
            }
            rounds: dict[str, _OpenStage | None] = {}
            models: dict[str, str | None] = {}
            for p in parts:
                study = studies.get(p.study_id)
                if study is None:  # pragma: no cover - foreign key
                    continue
                site = p.site
                tasks: list[dict[str, Any]] = out[site]["tasks"]
                out[site]["studies"][study.id] = study.status
                if study.status == StudyStatus.COMPLETED and p.status == "accepted":
                    final = _final_evaluation(s, study, site, now)
                    if final is not None:
                        tasks.append(final)
                if study.status in StudyStatus.TERMINAL:
                    continue
                if p.status == "invited" and study.status == StudyStatus.RECRUITING:
                    tasks.append(
                        {
                            "kind": "join",
                            "study_id": study.id,
                            "config": json.loads(study.config_json),
                            "deadline": json.loads(study.prep_json).get("join_deadline"),
                            "parameters": json.loads(study.prep_json).get("parameters"),
                        }
                    )
                    continue
                if p.status != "accepted":
                    continue
                if study.id not in rounds:
                    rounds[study.id] = _OpenStage.read(s, study, sites, self.core.store.unseal)
                stage = rounds[study.id]
                if stage is not None:
                    task = stage.task_for(site, now)
                    if task is not None:
                        # the study row and the round were read apart (PostgreSQL reads
                        # committed data per statement): its model is this round's only if
                        # the study is at this round
                        if (
                            task["stage"] in MODEL_STAGES
                            and task["round"] > 0
                            and study.current_round == task["round"]
                        ):
                            if study.id not in models:  # once per study and read
                                models[study.id] = self._inline_model(study)
                            model = models[study.id]
                            if model is not None:
                                task["model"] = model
                        tasks.append(task)
        return out


def _final_evaluation(s: Session, study: StudyRow, site: str, now: float) -> dict[str, Any] | None:
    """The ``evaluate`` task of a completed study for ``site``: evaluate the final model, for
    a site that reported evaluations during the study and not yet this one, until one stage
    timeout after the study completed (a site whose policy keeps its metrics home is never
    asked)."""
    done = evaluated_rounds(s, study.id, site)
    if not done or study.total_rounds in done:
        return None
    deadline = study.updated_at + DeploymentSettings.of(study).stage_timeout_s
    if now > deadline:
        return None
    prep = json.loads(study.prep_json)
    return {
        "kind": EVALUATE_TASK,
        "study_id": study.id,
        "round": study.total_rounds,
        "deadline": deadline,
        "model_version": study.model_version,
        "standardisation": {"mean": prep.get("mean"), "std": prep.get("std")},
    }


def _join_statistics(
    cfg: dict[str, Any],
    num_examples: int,
    moments: FeatureMoments | None,
    noised: list[float] | None,
) -> dict[str, Any]:
    """What an acceptance of the study ``cfg`` keeps for standardisation, checked against
    the study's standardisation mode (a statistic the mode does not ask for is refused)."""
    study = parse_study(cfg)
    mode = standardisation_mode(study)
    columns = study.data.model_columns()
    if mode is StandardisationMode.SECURE:
        if moments is not None or noised is not None:
            raise DataError(
                "this study sums the standardisation statistics securely: the join answer "
                "carries none"
            )
        return {}
    if mode is StandardisationMode.NOISED:
        if moments is not None or noised is None:
            raise DataError("this study takes a noised moment vector, not exact moments")
        if columns is not None and len(noised) != 2 * len(columns):
            raise DataError(
                f"the noised moment vector has {len(noised)} values; "
                f"the study uses {2 * len(columns)}"
            )
        return {"noised": [float(v) for v in noised]}
    if moments is None or noised is not None:
        raise DataError("accepting this study needs the feature moments")
    if moments.count != num_examples:
        raise DataError("the feature moments must count the declared rows")
    if columns is not None and len(moments.total) != len(columns):
        raise DataError(
            f"feature moments have {len(moments.total)} columns; the study uses {len(columns)}"
        )
    return {
        "count": moments.count,
        "total": moments.total.tolist(),
        "total_sq": moments.total_sq.tolist(),
    }


def _check_identity(identity: str | None) -> None:
    if identity is None or len(identity) != 64:
        raise DataError("secure aggregation needs the site's 32-byte Ed25519 identity (hex)")
    try:
        bytes.fromhex(identity)
    except ValueError:
        raise DataError("the identity must be hex") from None


@dataclass
class _OpenStage:
    """A study's open round stage, as the sites asking about it need it (read once)."""

    study: StudyRow
    round: RoundRow
    participants: set[str]
    done: set[str]
    messages: dict[str, bytes]
    unseal: Callable[[bytes, str], bytes]

    @classmethod
    def read(
        cls,
        s: Session,
        study: StudyRow,
        sites: list[str],
        unseal: Callable[[bytes, str], bytes],
    ) -> _OpenStage | None:
        """The open stage of ``study``, which of ``sites`` finished it, and the
        coordinator's (sealed) message for it to each of the others (None when no round is
        open)."""
        rr = open_round_row(s, study.id)
        if rr is None:
            return None
        done = stage_submitters(s, rr, sites)
        messages: dict[str, bytes] = {}
        if rr.stage != FIT_STAGE:
            pending = [site for site in sites if site not in done]
            rows = s.execute(
                select(RelayRow.recipient, RelayRow.blob).where(
                    RelayRow.study_id == study.id,
                    RelayRow.round_no == rr.round_no,
                    RelayRow.attempt == rr.attempt,
                    RelayRow.stage == rr.stage,
                    RelayRow.sender == COORDINATOR,
                    RelayRow.recipient.in_(pending),
                )
            ).all()
            messages = {row.recipient: row.blob for row in rows}
        participants = set(json.loads(rr.participants_json))
        return cls(study, rr, participants, done, messages, unseal)

    @functools.cached_property
    def _common(self) -> dict[str, Any]:
        """What every site's task in this stage shares (parsed once for all of them)."""
        prep = json.loads(self.study.prep_json)
        return {
            "config": json.loads(self.round.fit_config_json),
            "model_version": self.study.model_version,
            "standardisation": {"mean": prep.get("mean"), "std": prep.get("std")},
        }

    @functools.cached_property
    def _protocol(self) -> dict[str, Any] | None:
        """The round's protocol state (client ids, the key registry), parsed once."""
        state = self.round.protocol_state
        return None if state is None else dict(json.loads(state))

    def task_for(self, site: str, now: float) -> dict[str, Any] | None:
        """``site``'s task in this stage, if it has one. A protocol stage's task carries the
        coordinator's message to ``site`` (see :data:`INLINE_MESSAGE_BYTES`), so the site
        needs no second request to start on it."""
        rr, study = self.round, self.study
        if site not in self.participants or rr.stage_deadline < now or site in self.done:
            return None
        task: dict[str, Any] = {
            "kind": rr.stage,
            "study_id": study.id,
            "round": rr.round_no,
            "attempt": rr.attempt,
            "stage": rr.stage,
            "deadline": rr.stage_deadline,
            **self._common,
        }
        if rr.stage != FIT_STAGE:
            sealed = self.messages.get(site)
            proto = self._protocol
            if sealed is None or proto is None:
                return None  # dropped in an earlier stage: nothing more to do
            task["client_id"] = proto["client_ids"][site]
            if rr.stage == Stage.ADVERTISE_KEYS.value:  # the peers' keys, checked once
                task["registry"] = proto["registry"]
            aad = relay_name(study.id, rr.round_no, rr.attempt, rr.stage, COORDINATOR, site)
            try:
                message: bytes | None = self.unseal(sealed, aad)
            except IntegrityError:  # the site's fetch from the relay reports it
                message = None
            if message is not None and len(message) <= INLINE_MESSAGE_BYTES:
                task["message"] = base64.b64encode(message).decode("ascii")
            else:
                task["message_relayed"] = True
        return task
