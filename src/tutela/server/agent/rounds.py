"""A site's training rounds: plain fit uploads and SecAgg+ stages.

- ``fit``: downloads the global model, trains locally with the same
  :class:`~tutela.fl.client.LocalSite` code the in-process engine uses, and uploads the
  update (local minus global parameters) as safetensors, exactly once (idempotency key);
- a SecAgg+ stage: answers the coordinator's protocol message with the
  :class:`~tutela.secagg.SecAggClient` state machine; the update only ever leaves masked.
  A round whose threshold is below the policy's ``min_secagg_threshold`` is refused before
  the site trains or spends anything. Round 0 of a study under SecAgg+ is its
  standardisation round (:meth:`~tutela.server.agent.join.StudyJoining.
  standardisation_input`). Before a SecAgg+ round the site checks every peer's identity key
  against the deployment CA it holds (:mod:`tutela.server.agent.peers`); a key the
  coordinator substituted refuses the round before anything is sent. After the masked
  inputs the site signs the survivor set the coordinator names (the consistency check) and
  reveals shares only for a set that enough of its neighbours signed too
  (:mod:`tutela.secagg.client`); the signatures verify under the CA-checked keys.

Before training, the site evaluates the model it received on its held-out rows and reports
it as the previous round's metrics; after the last round, the ``evaluate`` task does the
same for the final model (:mod:`tutela.server.agent.reports`).

Before each round's training the site checks the round against its policy's limits and
charges its own ledger (:mod:`tutela.server.agent.privacy`); a round beyond its limits or
its privacy plan is refused (logged, not trained, nothing sent). In each round, before its
update, it signs its report and sends it when it changed (:mod:`tutela.server.agent.reports`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.numpy import save as st_save

from tutela.errors import PolicyViolation, ProtocolAbort, TransportError
from tutela.fl.privacy import WITHIN_CLIP, clip_for_round, secure_input
from tutela.fl.records import FitIns, Parameters, ParameterSpec, parameters_to_bytes, subtract
from tutela.secagg import SecAggClient, decode_message, encode_message
from tutela.secagg.client import ClientPolicy
from tutela.secagg.messages import (
    AdvertiseKeysRequest,
    ConsistencyCheckRequest,
    MaskedInputRequest,
    ShareKeysRequest,
    UnmaskRequest,
)
from tutela.server.agent.peers import verified_registry
from tutela.server.agent.transport import detail
from tutela.server.round_metrics import EVALUATE_TASK
from tutela.server.standardisation import STANDARDISATION_CONFIG
from tutela.server.wire import parse_tensors

if TYPE_CHECKING:
    from tutela.server.agent.site import SiteAgent

FIT_STAGE = "fit"


class SiteRounds:
    """The fit and SecAgg+ stages of one :class:`~tutela.server.agent.SiteAgent`."""

    def __init__(self, agent: SiteAgent) -> None:
        self.agent = agent

    def train(self, task: dict[str, Any]) -> tuple[Parameters, Parameters, int]:
        """Train for a round once (cached), returning (global, update, num_examples)."""
        agent = self.agent
        state = agent.studies[task["study_id"]]
        round_no = int(task["round"])
        if round_no in state.updates:
            return state.updates[round_no]
        if not state.standardised:
            std = task["standardisation"]
            state.site.standardise(
                np.asarray(std["mean"], np.float64), np.asarray(std["std"], np.float64)
            )
            state.standardised = True
        arrays, _ = parse_tensors(agent.transport.global_model(task))
        global_params: Parameters = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
        # the model this round starts from is the global model after the round before
        agent.reporter.report_evaluation(task, global_params, round_no - 1)
        result = state.site.fit(FitIns(global_params, dict(task["config"])))
        update = subtract(result.parameters, global_params)
        state.updates = {round_no: (global_params, update, result.num_examples)}
        return global_params, update, result.num_examples

    def fit(self, task: dict[str, Any]) -> bool:
        """Answer a plain ``fit`` stage: train, clip under DP-FedAvg, upload, report."""
        agent = self.agent
        client_dp = agent.studies[task["study_id"]].client_dp
        clip = None
        if client_dp is not None:  # checked and charged before training, before sending
            clip = client_dp.charge_central(
                int(task["round"]), int(task.get("attempt", 1)), task["config"]
            )
        _, update, num_examples = self.train(task)
        metadata = {
            "study": task["study_id"],
            "round": str(task["round"]),
            "num_examples": str(num_examples),
        }
        if clip is not None:
            update, within = clip_for_round(update, clip)
            metadata[WITHIN_CLIP] = str(within)
        body = parameters_to_bytes(update, metadata=metadata)
        # what this round spent at this site, before the update that spent it (the
        # submission may then wait for the site's next task)
        agent.reporter.report_round(task)
        agent.transport.submit(task, FIT_STAGE, body)
        return True

    def evaluate(self, task: dict[str, Any]) -> bool:
        """Answer an ``evaluate`` task (the study completed): fetch the final global model
        and send its evaluation on the held-out rows as round ``task["round"]``'s metrics."""
        agent = self.agent
        state = agent.studies.get(task["study_id"])
        if state is None or int(task["round"]) in state.evaluated:
            return False
        state.evaluated.add(int(task["round"]))  # asked once, answered at most once
        try:
            response = agent.transport.request(
                "GET", f"/v1/site/studies/{task['study_id']}/model", deadline=task["deadline"]
            )
        except TransportError as exc:
            agent.log(f"{agent.name}: final model of {task['study_id']} not fetched: {exc}")
            return False
        if response.status_code != 200:
            agent.log(f"{agent.name}: final model not fetched: {detail(response)}")
            return False
        arrays, _ = parse_tensors(response.content)
        final: Parameters = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
        state.evaluated.discard(int(task["round"]))
        agent.reporter.report_evaluation(task, final, int(task["round"]))
        return True

    def _start_secagg(self, task: dict[str, Any], message: object) -> SecAggClient:
        """Check the round against the policy floor, then train (charging) and set the input.

        Raises:
            PolicyViolation: the round's parameters are below the site's floor (nothing was
                trained or spent).
            ProtocolAbort: the round does not start with the key advertisement request.
        """
        agent = self.agent
        if not isinstance(message, AdvertiseKeysRequest):
            raise ProtocolAbort(
                f"round {task['round']}: no SecAgg+ state for stage {task['stage']!r}"
            )
        floor = ClientPolicy(min_threshold=agent.settings.policy.min_secagg_threshold)
        try:
            floor.check(message.params)
        except ProtocolAbort as exc:
            raise PolicyViolation(f"SecAgg+ round refused: {exc}") from None
        try:  # every peer's key checked against the deployment CA, before anything is sent
            registry = verified_registry(agent.ca, task["study_id"], task["registry"])
            if registry.get(int(task["client_id"])) != agent.identity_public:
                raise ProtocolAbort("the coordinator lists another identity key for this site")
        except ProtocolAbort as exc:
            agent.refused_rounds[(str(task["study_id"]), int(task["round"]))] = str(exc)
            raise
        if task["config"].get(STANDARDISATION_CONFIG):  # round 0: the moment vector
            client = SecAggClient(int(task["client_id"]), agent.identity, registry, policy=floor)
            return agent.joining.standardisation_input(task, message.params, client)
        client_dp = agent.studies[task["study_id"]].client_dp
        if client_dp is not None:  # DP-FedAvg: check the plan's noise, charge, then train
            clip = client_dp.charge_secure(
                int(task["round"]), int(task.get("attempt", 1)), task["config"], message.params
            )
            floor = client_dp.secagg_policy(clip, floor)
        client = SecAggClient(int(task["client_id"]), agent.identity, registry, policy=floor)
        global_params, update, num_examples = self.train(task)
        spec = ParameterSpec.of(global_params)
        if client_dp is not None:
            clipped, within = clip_for_round(update, clip)
            client.set_input(
                secure_input(spec, clipped, within, client_dp.count_scale(clip)), weight=1.0
            )
        else:
            client.set_input(spec.flatten(update), weight=float(num_examples))
        agent.reporter.report_round(task)  # what this round's local DP-SGD spent at this site
        return client

    def secagg(self, task: dict[str, Any]) -> bool:
        """Answer a SecAgg+ stage's message from the coordinator; True if anything was sent
        (the agent hands every task that is not a join, a query, a fit or a CKKS stage here,
        so the ``evaluate`` task of a completed study goes to :meth:`evaluate`)."""
        if task["kind"] == EVALUATE_TASK:  # not a stage: the final model of a completed study
            return self.evaluate(task)
        agent = self.agent
        study_id, round_no, attempt = (
            task["study_id"],
            int(task["round"]),
            int(task.get("attempt", 1)),
        )
        stage = task["stage"]
        state = agent.studies[study_id]
        key = (round_no, attempt)
        client = state.secagg.get(key)
        raw = agent.transport.coordinator_message(task)
        if raw is None:
            return False
        message = decode_message(raw)
        if not isinstance(
            message,
            AdvertiseKeysRequest
            | ShareKeysRequest
            | MaskedInputRequest
            | ConsistencyCheckRequest
            | UnmaskRequest,
        ):
            raise ProtocolAbort(f"unexpected {type(message).__name__} from the coordinator")
        if client is None:
            client = self._start_secagg(task, message)
            state.secagg = {key: client}
        reply = client.handle(message)
        body_arrays = {"message": np.frombuffer(encode_message(reply), np.uint8).copy()}
        body = st_save(
            body_arrays, metadata={"study": study_id, "round": str(round_no), "stage": stage}
        )
        agent.transport.submit(task, stage, body)
        return True
