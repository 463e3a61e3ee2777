"""CKKS rounds through the coordinator: encrypted updates in, a decrypted mean back.

The round driver (:mod:`tutela.server.driver`) opens and closes rounds; when a study runs
under ``secure_aggregation.protocol = "ckks"`` it hands the round to :class:`CkksProtocol`:

1. ``ckks-encrypt``: each selected site gets a request (relayed, from the coordinator) and
   submits its flattened update encrypted under the study's keyring, bound to the round's
   aggregation id and to its name (:class:`~tutela.fl.ckks.CkksSite`), with its row count;
   the first time, with the keyring's public context. The coordinator keeps the public
   context (refusing one with a secret key, or one that differs from another site's) and
   checks each contribution (size, key, aggregation id, length) as it arrives.
2. ``ckks-decrypt``: with a quorum of contributions, the coordinator adds them weighted by
   the declared (capped) row counts (:class:`~tutela.fl.ckks.CkksCoordinator`) and sends the
   encrypted sum, with the contributors and their weights, to every contributor. Each
   checks it holds exactly those contributions and at least its minimum number of them,
   decrypts, and submits the mean. All answers must agree; the round then closes through
   the round state machine as under SecAgg+.

Security: the coordinator holds the public context only and can decrypt nothing (see
:mod:`tutela.fl.ckks` for who can decrypt what). The contributions and the study's public
context live in this process's memory only; after a restart the round starts again as a new
attempt (:attr:`~tutela.server.protocol.Step.LOST`) and the sites send the context again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import save as st_save
from sqlalchemy.orm import Session

from tutela.errors import CryptoError, DataError, IntegrityError, PermissionDenied
from tutela.fl.ckks import CkksCoordinator, ckks_round_id
from tutela.fl.privacy import ClientLevelDP
from tutela.fl.records import Parameters, ParameterSpec
from tutela.fl.strategy import FitAggregate
from tutela.he.aggregation import CONTRIBUTOR_TAGS
from tutela.server.core import ConflictError, Core, DeploymentSettings, declared_rows, dumps
from tutela.server.protocol import Closing, Step
from tutela.server.store import RoundRow, StudyRow
from tutela.server.wire import parse_tensors

ENCRYPT_STAGE = "ckks-encrypt"
DECRYPT_STAGE = "ckks-decrypt"
STAGES = (ENCRYPT_STAGE, DECRYPT_STAGE)
SEND_CONTEXT = "send"
"""The encrypt request's ``context`` when the coordinator holds no public context yet."""

FloatArray = npt.NDArray[np.float64]


# messages (safetensors: uint8 tensors for opaque bytes, metadata for the rest) -------------


def encrypt_request(fingerprint: bytes | None) -> bytes:
    """The coordinator's ``ckks-encrypt`` request: the key fingerprint it holds, or ``send``."""
    context = fingerprint.hex() if fingerprint is not None else SEND_CONTEXT
    return st_save({}, metadata={"protocol": "ckks", "kind": ENCRYPT_STAGE, "context": context})


def decrypt_request(aggregate: bytes, contributors: Mapping[str, float]) -> bytes:
    """The coordinator's ``ckks-decrypt`` request: the encrypted sum and who is inside it."""
    return st_save(
        {"aggregate": np.frombuffer(aggregate, np.uint8).copy()},
        metadata={
            "protocol": "ckks",
            "kind": DECRYPT_STAGE,
            "contributors": json.dumps(dict(sorted(contributors.items()))),
        },
    )


def contribution_body(
    study_id: str, round_no: int, num_examples: int, contribution: bytes, context: bytes | None
) -> bytes:
    """A site's ``ckks-encrypt`` submission (with its public context when asked)."""
    arrays = {"contribution": np.frombuffer(contribution, np.uint8).copy()}
    if context is not None:
        arrays["context"] = np.frombuffer(context, np.uint8).copy()
    meta = {"study": study_id, "round": str(round_no), "num_examples": str(num_examples)}
    return st_save(arrays, metadata=meta)


def mean_body(study_id: str, round_no: int, mean: FloatArray) -> bytes:
    """A site's ``ckks-decrypt`` submission: the decrypted mean."""
    return st_save(
        {"mean": np.ascontiguousarray(mean, np.float64)},
        metadata={"study": study_id, "round": str(round_no)},
    )


def parse_contributors(meta: Mapping[str, str]) -> dict[str, float]:
    """The ``contributors`` of a decrypt request (name -> finite positive weight)."""
    try:
        raw = json.loads(meta["contributors"])
        if not isinstance(raw, dict):
            raise TypeError
        named = {str(k): float(v) for k, v in raw.items()}
    except (KeyError, TypeError, ValueError):
        raise DataError("the decrypt request names no contributors") from None
    if not all(np.isfinite(w) and w > 0 for w in named.values()):
        raise DataError("the decrypt request carries a weight that is not a positive number")
    return named


def _bytes_of(arrays: Mapping[str, npt.NDArray[Any]], name: str) -> bytes | None:
    raw = arrays.get(name)
    if raw is None:
        return None
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise DataError(f"{name!r} must be one uint8 tensor")
    return raw.tobytes()


# the coordinator's side --------------------------------------------------------------------


@dataclass
class _CkksRound:
    """A study's open CKKS round, in memory."""

    round_no: int
    attempt: int
    participants: tuple[str, ...]
    declared: dict[str, int]
    spec: ParameterSpec
    aggregation_id: bytes
    stage_timeout_s: float
    contributions: dict[str, bytes] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    aggregate: bytes | None = None
    contributors: dict[str, float] = field(default_factory=dict)
    means: dict[str, FloatArray] = field(default_factory=dict)


@dataclass
class CkksProtocol:
    """The CKKS rounds of the studies this process drives (see the module docstring)."""

    core: Core
    _rounds: dict[str, _CkksRound] = field(default_factory=dict)
    _keys: dict[str, CkksCoordinator] = field(default_factory=dict)

    def public_key(self, study_id: str) -> CkksCoordinator | None:
        """The coordinator's CKKS object of a study (public context only), if it has one."""
        return self._keys.get(study_id)

    def start(
        self,
        s: Session,
        row: StudyRow,
        rr: RoundRow,
        params: Parameters,
        settings: DeploymentSettings,
        privacy: ClientLevelDP | None = None,
    ) -> Closing | None:
        """Ask the round's sites for their encrypted updates; a Closing if it cannot run."""
        if privacy is not None:
            return Closing(None, [], {"error": "client-level DP does not run under CKKS"})
        participants = tuple(json.loads(rr.participants_json))
        declared = {
            site: rows for site, rows in declared_rows(s, row.id).items() if site in participants
        }
        self._rounds[row.id] = _CkksRound(
            rr.round_no,
            rr.attempt,
            participants,
            declared,
            ParameterSpec.of(params),
            ckks_round_id(row.id, rr.round_no, rr.attempt),
            settings.stage_timeout_s,
        )
        rr.stage = ENCRYPT_STAGE
        rr.stage_deadline = self.core.clock() + settings.stage_timeout_s
        rr.protocol_state = dumps(
            {
                "protocol": "ckks",
                "client_ids": {site: i for i, site in enumerate(participants)},
                "registry": {},
            }
        ).encode()
        key = self._keys.get(row.id)
        body = encrypt_request(key.server.fingerprint if key is not None else None)
        for site in participants:
            self._post(s, row.id, rr, site, body)
        return None

    def advance(
        self, s: Session, row: StudyRow, rr: RoundRow, privacy: ClientLevelDP | None = None
    ) -> Step | Closing:
        """Add the contributions once all (or the deadline) are in; close once every
        contributor decrypted (or the deadline passed)."""
        state = self._rounds.get(row.id)
        if state is None or state.round_no != rr.round_no or state.attempt != rr.attempt:
            return Step.LOST
        now = self.core.clock()
        if rr.stage == ENCRYPT_STAGE:
            if len(state.contributions) < len(state.participants) and now <= rr.stage_deadline:
                return Step.WAITING
            return self._aggregate(s, row, rr, state, now)
        if len(state.means) < len(state.contributors) and now <= rr.stage_deadline:
            return Step.WAITING
        return self._close(row.id, rr, state)

    def _aggregate(
        self, s: Session, row: StudyRow, rr: RoundRow, state: _CkksRound, now: float
    ) -> Step | Closing:
        key = self._keys.get(row.id)
        if len(state.contributions) < rr.quorum or key is None:
            self._rounds.pop(row.id, None)
            return Closing(
                None,
                [],
                {
                    "error": f"{len(state.contributions)} of {len(state.participants)} sites "
                    f"sent an encrypted update; the quorum is {rr.quorum}"
                },
            )
        try:
            state.aggregate = key.aggregate(state.contributions, state.weights)
        except (ValueError, IntegrityError) as exc:
            self._rounds.pop(row.id, None)
            return Closing(None, [], {"error": f"CKKS aggregation failed: {exc}"})
        state.contributors = dict(state.weights)
        rr.stage = DECRYPT_STAGE
        rr.stage_deadline = now + state.stage_timeout_s
        body = decrypt_request(state.aggregate, state.contributors)
        for site in sorted(state.contributors):
            self._post(s, row.id, rr, site, body)
        return Step.MOVED

    def _close(self, study_id: str, rr: RoundRow, state: _CkksRound) -> Closing:
        self._rounds.pop(study_id, None)
        key = self._keys[study_id]
        assert state.aggregate is not None  # the decrypt stage follows the aggregation
        weight = sum(state.contributors.values())
        report = key.round_report(
            rr.round_no,
            state.aggregate,
            len(state.contributors),
            weight,
            max(len(c) for c in state.contributions.values()),
        )
        extra: dict[str, Any] = {"secure_aggregation": report}
        means = list(state.means.values())
        if not means:
            return Closing(None, [], {**extra, "error": "no site decrypted the aggregate"})
        if any(not np.array_equal(means[0], m) for m in means[1:]):
            return Closing(None, [], {**extra, "error": "the decrypting sites disagree"})
        contributors = sorted(state.contributors)
        aggregate = FitAggregate(
            state.spec.unflatten(means[0]), round(weight), len(contributors), None
        )
        return Closing(aggregate, contributors, extra)

    def receive(
        self, study_id: str, round_no: int, attempt: int, stage: str, site: str, body: bytes
    ) -> bool:
        """Take a site's encrypted update or decrypted mean (the inbox accepted it once);
        True once every site the stage waits for has sent its own."""
        state = self._rounds.get(study_id)
        if state is None or state.round_no != round_no or state.attempt != attempt:
            raise ConflictError(f"no CKKS round {round_no} is running for study {study_id}")
        arrays, meta = parse_tensors(body)
        if stage == ENCRYPT_STAGE and state.aggregate is None:
            self._receive_contribution(study_id, state, site, arrays, meta)
        elif stage == DECRYPT_STAGE and state.aggregate is not None:
            if site not in state.contributors:
                raise PermissionDenied(f"site {site} was not asked to decrypt round {round_no}")
            mean = arrays.get("mean")
            if (
                mean is None
                or mean.dtype != np.float64
                or mean.shape != (state.spec.size,)
                or not np.all(np.isfinite(mean))
            ):
                raise DataError(f"the decrypted mean must be {state.spec.size} finite float64s")
            state.means[site] = mean
            return len(state.means) >= len(state.contributors)
        else:
            raise ConflictError(f"the CKKS round is not in stage {stage!r}")
        return len(state.contributions) >= len(state.participants)

    def _receive_contribution(
        self,
        study_id: str,
        state: _CkksRound,
        site: str,
        arrays: Mapping[str, npt.NDArray[Any]],
        meta: Mapping[str, str],
    ) -> None:
        contribution = _bytes_of(arrays, "contribution")
        if contribution is None:
            raise DataError("a CKKS submission carries one uint8 tensor named 'contribution'")
        try:
            num_examples = int(meta.get("num_examples", ""))
        except ValueError:
            num_examples = 0
        if not 0 < num_examples <= state.declared.get(site, 0):
            raise DataError(
                f"num_examples must be positive and at most the {state.declared.get(site, 0)} "
                f"rows site {site} declared when it joined"
            )
        key = self._keys.get(study_id)
        context = _bytes_of(arrays, "context")
        if context is not None:
            try:
                offered = CkksCoordinator(context)
            except CryptoError:
                raise DataError(
                    "refusing a CKKS context that holds a secret key: the coordinator takes "
                    "the public context only"
                ) from None
            except IntegrityError:
                raise DataError("malformed CKKS public context") from None
            if key is None:
                key = self._keys[study_id] = offered
            elif offered.server.fingerprint != key.server.fingerprint:
                raise DataError(
                    f"site {site}'s CKKS public context differs from the one the study's "
                    "other sites sent"
                )
        if key is None:
            raise DataError("the coordinator holds no CKKS public context yet: send it")
        try:
            n_values = key.server.check(contribution, aggregation_id=state.aggregation_id)
        except IntegrityError as exc:
            raise DataError(f"CKKS contribution refused: {exc}") from None
        if n_values != state.spec.size + CONTRIBUTOR_TAGS:
            raise DataError(f"the contribution holds {n_values} values, not the model's")
        state.contributions[site] = contribution
        state.weights[site] = float(num_examples)

    def _post(self, s: Session, study_id: str, rr: RoundRow, site: str, body: bytes) -> None:
        self.core.post_to_site(s, study_id, rr, site, body)
