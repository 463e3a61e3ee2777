"""SecAgg+ rounds through the coordinator: the in-memory server and its relayed messages.

The round driver (:mod:`tutela.server.driver`) opens and closes rounds; when a study runs
under secure aggregation, it hands the round to :class:`SecAggProtocol`, which runs a
:class:`~tutela.secagg.SecAggServer` stage by stage: the server's messages to each site are
posted to the relay, the sites' replies arrive through the inbox, and at the end only the
masked sum is revealed, which the driver turns into the round's aggregate. The stages are the
server's own (:class:`~tutela.secagg.Stage`), the consistency check included: the sites sign
the survivor set and refuse to unmask a set they did not sign, whatever this driver relays.

Under client-level DP (:class:`~tutela.fl.privacy.ClientLevelDP`) the round is planned by
the study's DP-FedAvg as in process (weight 1 per site, the clip norm as the coordinate
range, each site's distributed-noise share sized for every invited site, none allowed to
drop; the study's ledger charged first), and the revealed sum becomes the noisy mean with the
clip count of adaptive clipping in its last coordinate.

The standardisation round before round 1 (:mod:`tutela.fl.standardisation`) runs here too:
the same server over each site's moment vector instead of its update, planned by the
study's :class:`~tutela.fl.standardisation.StandardisationPlan` (unit coordinate range,
weights bounded by the declared row counts, distributed noise in a private study); the
revealed sum is the round's :attr:`Closing.total`.

Security: the SecAgg+ server's secrets live only in memory and are never persisted; after
a restart the driver starts the round again as a new attempt (:attr:`Step.LOST`).
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from tutela.errors import BudgetExceeded, DataError, QuorumNotMet
from tutela.fl.config import parse_study
from tutela.fl.privacy import ClientLevelDP
from tutela.fl.records import Parameters, ParameterSpec
from tutela.fl.standardisation import StandardisationPlan, count_bound
from tutela.fl.strategy import FitAggregate
from tutela.server.core import ConflictError, Core, DeploymentSettings, dumps
from tutela.server.store import ParticipationRow, RoundRow, StudyRow
from tutela.server.wire import parse_tensors


@dataclass(frozen=True)
class Closing:
    """How a round ends.

    Attributes:
        aggregate: what the strategy aggregates (None: quorum not met, model unchanged).
        responded: the sites whose contribution counted.
        extra: protocol-specific fields recorded in the round's outcome.
        total: the revealed sum (see below).
    """

    aggregate: FitAggregate | None
    responded: list[str]
    extra: dict[str, Any] = field(default_factory=dict)
    total: np.ndarray[Any, Any] | None = None
    """The revealed (weighted) sum of a plain secure round (None otherwise)."""


class Step(Enum):
    """What one :meth:`SecAggProtocol.advance` did, when it did not close the round."""

    WAITING = "waiting"  # nothing to do before more replies or the deadline
    MOVED = "moved"  # the protocol went to its next stage
    LOST = "lost"  # this process holds no server for the round (it restarted)


@dataclass
class _SecAggRound:
    """The in-memory SecAgg+ server of a study's open round (never persisted: its secrets
    must not outlive the process)."""

    server: Any
    round_no: int
    attempt: int
    ids: dict[str, int]
    spec: ParameterSpec
    examples: dict[str, int]

    def site_of(self) -> dict[int, str]:
        return {cid: site for site, cid in self.ids.items()}


@dataclass
class SecAggProtocol:
    """The SecAgg+ servers of the studies' open rounds."""

    core: Core
    _rounds: dict[str, _SecAggRound] = field(default_factory=dict)

    def start(
        self,
        s: Session,
        row: StudyRow,
        rr: RoundRow,
        params: Parameters,
        settings: DeploymentSettings,
        privacy: ClientLevelDP | None = None,
        standardisation: StandardisationPlan | None = None,
    ) -> Closing | None:
        """Plan and start SecAgg+ for an open round; a Closing if it cannot run at all
        (under client-level DP also when the quorum or the study's budget cannot pay).

        With ``standardisation`` the round sums the sites' moment vectors (``params``
        gives only the vector's length)."""
        from tutela.secagg import SecAggConfig, SecAggServer

        config = parse_study(json.loads(row.config_json))
        participants: list[str] = json.loads(rr.participants_json)
        parts = {
            p.site: p
            for p in s.scalars(select(ParticipationRow).where(ParticipationRow.study_id == row.id))
        }
        ids = {site: i for i, site in enumerate(sorted(participants))}
        registry = {
            ids[site]: bytes.fromhex(json.loads(parts[site].join_json)["identity"]) for site in ids
        }
        biggest = max((parts[site].num_examples for site in ids), default=1)
        sa = config.secure_aggregation
        spec = ParameterSpec.of(params)
        try:
            if standardisation is not None:
                bound = count_bound([parts[site].num_examples for site in ids])
                plan = standardisation.secagg_config(
                    len(ids), bound, stage_timeout_s=settings.stage_timeout_s
                ).plan(
                    tuple(ids.values()),
                    spec.size,
                    max_weight=bound,
                    round_id=secrets.token_bytes(32),
                )
            elif privacy is not None:
                plan = privacy.plan_secure(
                    rr.round_no,
                    tuple(ids.values()),
                    spec.size,
                    secrets.token_bytes(32),
                    stage_timeout_s=settings.stage_timeout_s,
                )
            else:
                plan = SecAggConfig(
                    neighbors=sa.neighbors,
                    threshold=sa.threshold,
                    modulus_bits=sa.modulus_bits,
                    clip=sa.clip_range,
                    stage_timeout_s=settings.stage_timeout_s,
                ).plan(
                    tuple(ids.values()),
                    spec.size,
                    max_weight=float(2 ** math.ceil(math.log2(max(biggest, 1)))),
                    round_id=secrets.token_bytes(32),
                )
        except (ValueError, QuorumNotMet, BudgetExceeded) as exc:
            return Closing(None, [], {"error": str(exc)})
        server = SecAggServer(plan, registry, clock=self.core.clock)
        outbox = server.start()
        examples = {site: int(parts[site].num_examples) for site in ids}
        self._rounds[row.id] = _SecAggRound(server, rr.round_no, rr.attempt, ids, spec, examples)
        rr.stage = server.stage.value if server.stage is not None else "aborted"
        rr.stage_deadline = server.deadline
        joined = {site: json.loads(parts[site].join_json) for site in ids}
        peers = {  # what each site checks against the deployment CA before the round
            str(ids[site]): {
                "site": site,
                "identity": registry[ids[site]].hex(),
                "certificate": joined[site].get("certificate"),
                "binding": joined[site].get("binding"),
            }
            for site in ids
        }
        rr.protocol_state = dumps({"client_ids": ids, "registry": peers}).encode()
        self._post_outbox(s, row.id, rr, outbox)
        return None

    def advance(
        self, s: Session, row: StudyRow, rr: RoundRow, privacy: ClientLevelDP | None = None
    ) -> Step | Closing:
        """Take the round's protocol one step (or close it) after replies or a deadline."""
        from tutela.errors import ProtocolAbort, QuorumNotMet

        state = self._rounds.get(row.id)
        if state is None or state.round_no != rr.round_no or state.attempt != rr.attempt:
            return Step.LOST
        server = state.server
        try:
            outbox = server.step()
        except (QuorumNotMet, ProtocolAbort) as exc:
            self._rounds.pop(row.id, None)
            report = self._report(state, server.dropped(), None)
            return Closing(None, [], {"error": str(exc), "secure_aggregation": report})
        if outbox is None:
            return Step.WAITING
        if outbox:
            rr.stage = server.stage.value if server.stage is not None else "aborted"
            rr.stage_deadline = server.deadline
            self._post_outbox(s, row.id, rr, outbox)
            return Step.MOVED
        result = server.result()
        self._rounds.pop(row.id, None)
        site_of = state.site_of()
        survivors = [site_of[c] for c in result.survivors]
        weight = float(result.weight_total)
        aggregate = None
        if privacy is not None:
            try:
                aggregate = privacy.release_secure(
                    rr.round_no,
                    np.asarray(result.total, np.float64),
                    state.spec,
                    server.params,
                    sum(state.examples[site] for site in survivors),
                    len(survivors),
                )
            except QuorumNotMet:
                aggregate = None
        elif weight > 0 and len(survivors) >= rr.quorum:
            mean = state.spec.unflatten(np.asarray(result.total, np.float64) / weight)
            aggregate = FitAggregate(mean, round(weight), len(survivors), None)
        report = self._report(state, dict(result.dropped), len(result.survivors))
        total = None if privacy is not None else np.asarray(result.total, np.float64)
        return Closing(aggregate, survivors, {"secure_aggregation": report}, total)

    def receive(
        self, study_id: str, round_no: int, attempt: int, stage: str, site: str, body: bytes
    ) -> bool:
        """Hand a site's SecAgg+ message (safetensors: one uint8 ``message``) to the server;
        True once every client the stage expects has replied."""
        from tutela.secagg import MalformedMessage, decode_message

        state = self._rounds.get(study_id)
        if state is None or state.round_no != round_no or state.attempt != attempt:
            raise ConflictError(
                f"no secure-aggregation round {round_no} is running for study {study_id}"
            )
        arrays, _ = parse_tensors(body)
        raw = arrays.get("message")
        if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
            raise DataError(
                "a secure-aggregation submission carries one uint8 tensor named 'message'"
            )
        try:
            message = decode_message(raw.tobytes())
        except MalformedMessage as exc:
            raise DataError(f"malformed secure-aggregation message: {exc}") from None
        if state.server.stage is None or state.server.stage.value != stage:
            raise ConflictError(f"the secure-aggregation round is not in stage {stage!r}")
        if not state.server.receive(state.ids[site], message):
            raise ConflictError(
                f"secure aggregation rejected the message: {state.server.rejected[-1][1]}"
            )
        return bool(state.server.complete)

    def _post_outbox(self, s: Session, study_id: str, rr: RoundRow, outbox: dict[int, Any]) -> None:
        from tutela.secagg import encode_message

        site_of = self._rounds[study_id].site_of()
        for cid, message in outbox.items():
            site = site_of[cid]
            self.core.post_to_site(s, study_id, rr, site, encode_message(message))

    @staticmethod
    def _report(
        state: _SecAggRound, dropped: dict[str, tuple[int, ...]], survivors: int | None
    ) -> dict[str, Any]:
        p = state.server.params
        site_of = state.site_of()
        return {
            "protocol": "secagg+",
            "n": p.n,
            "k": p.neighbors,
            "threshold": p.threshold,
            "min_survivors": p.min_survivors,
            "modulus_bits": p.modulus_bits,
            "dropped": {stage: [site_of[c] for c in ids] for stage, ids in dropped.items()},
            "quantization_error_bound": p.quantization_error_bound(survivors)
            if survivors
            else None,
        }
