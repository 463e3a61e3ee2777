"""The SecAgg+ server state machine (messages in, messages out, no I/O).

The server relays messages between clients and, at the end, removes the masks from the sum
of the masked inputs it received. It never holds enough to unmask a single client's input:
for each survivor it learns only the self-mask seed, for each dropped client only its mask
key (see :mod:`tutela.secagg.client` for the threat model). Between the masked inputs and
the unmasking it runs the consistency check: it sends every survivor the survivor and
dropped sets, collects the survivors' signatures over them and forwards them with the
unmask request (the clients, not this server, enforce the check).

Driving it::

    server = SecAggServer(params, registry, clock=clock)
    outbox = server.start()                    # {client_id: message}
    ...                                        # deliver; for each reply:
    server.receive(client_id, reply)           # False if rejected or late
    outbox = server.step()                     # None while the stage is still open;
                                               # the next outbox once it closes
    result = server.result()                   # after the unmask stage closes

A stage closes when every expected client replied or the stage deadline (``clock() >=
start + stage_timeout_s``) passed. Fewer than ``min_survivors`` clients at any stage, or a
secret that cannot be rebuilt, aborts the round with :class:`~tutela.errors.ProtocolAbort`
(:class:`~tutela.errors.QuorumNotMet` for the former); no partial sum is released.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tutela.errors import IntegrityError, ProtocolAbort, QuorumNotMet
from tutela.hazmat.kex import ed25519_verify, x25519_agree, x25519_from_bytes, x25519_public_bytes
from tutela.hazmat.masks import MaskArray, add_masks, mask_dtype, reduce_mod
from tutela.hazmat.quantize import from_modular, unpack
from tutela.hazmat.shamir import Share, ShareValidationError, reconstruct_field
from tutela.secagg.client import pair_mask_key, self_mask_commitment, self_mask_key
from tutela.secagg.config import ACTIVE_STAGES, RoundParams, Stage
from tutela.secagg.graph import graph_seed, neighbours
from tutela.secagg.messages import (
    AdvertiseKeysRequest,
    ClientMessage,
    ConsistencyCheckRequest,
    ConsistencySignature,
    EncryptedShare,
    KeyAdvertisement,
    MaskedInput,
    MaskedInputRequest,
    ServerMessage,
    ShareKeysReply,
    ShareKeysRequest,
    SurvivorSignature,
    UnmaskReply,
    UnmaskRequest,
    consistency_bytes,
)

__all__ = ["AggregateResult", "SecAggServer"]


@dataclass(frozen=True, slots=True)
class AggregateResult:
    """What the server releases after a successful round.

    Attributes:
        total: the (weighted) sum of the survivors' clipped inputs (plus distributed-DP
            noise when enabled), float64.
        weight_total: the sum of the survivors' weights (not noised).
        survivors: clients whose inputs are in ``total``.
        dropped: for each stage name, the clients that did not answer in that stage.
        integer_sum: the decoded integer sum (update words, then the weight word).
    """

    total: npt.NDArray[np.float64]
    weight_total: float
    survivors: tuple[int, ...]
    dropped: Mapping[str, tuple[int, ...]]
    integer_sum: npt.NDArray[np.int64]


class SecAggServer:
    """The server's side of one SecAgg+ round.

    Args:
        params: the round parameters (validated here).
        registry: every client's long-term Ed25519 public key (raw 32 bytes), by id.
        clock: seconds, monotone; injectable for tests and simulation.
    """

    def __init__(
        self,
        params: RoundParams,
        registry: Mapping[int, bytes],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        params.validate()
        missing = set(params.client_ids) - set(registry)
        if missing:
            raise ValueError(f"no identity key for clients {sorted(missing)}")
        self.params = params
        self._registry = dict(registry)
        self._clock = clock
        self._stage: Stage | None = None
        self._deadline = float("inf")
        self._expected: frozenset[int] = frozenset(params.client_ids)
        self._replies: dict[int, ClientMessage] = {}
        self._alive: dict[Stage, frozenset[int]] = {}
        self._revealed: dict[int, list[tuple[int, Share]]] = {}
        self.rejected: list[tuple[int, str]] = []
        self.abort_reason: str | None = None
        self._result: AggregateResult | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def stage(self) -> Stage | None:
        """The open stage (``None`` before :meth:`start`; DONE or ABORTED at the end)."""
        return self._stage

    @property
    def deadline(self) -> float:
        """Clock time at which the open stage closes regardless of missing replies."""
        return self._deadline

    @property
    def complete(self) -> bool:
        """Whether every client the open stage expects has replied (:meth:`step` would then
        close it without waiting for the deadline)."""
        return self._stage in ACTIVE_STAGES and set(self._replies) >= self._expected

    def dropped(self) -> dict[str, tuple[int, ...]]:
        """Per closed stage, the expected clients that did not answer."""
        out: dict[str, tuple[int, ...]] = {}
        before = frozenset(self.params.client_ids)
        for stage in ACTIVE_STAGES:
            if stage not in self._alive:
                break
            out[stage.value] = tuple(sorted(before - self._alive[stage]))
            before = self._alive[stage]
        return out

    def _open(self, stage: Stage, expected: frozenset[int]) -> None:
        self._stage = stage
        self._expected = expected
        self._replies = {}
        self._deadline = self._clock() + self.params.stage_timeout_s

    def _abort(self, exc: ProtocolAbort) -> ProtocolAbort:
        self._stage = Stage.ABORTED
        self.abort_reason = str(exc)
        return exc

    def start(self) -> dict[int, ServerMessage]:
        """Open the advertise-keys stage; the messages to send to every invited client."""
        if self._stage is not None:
            raise ProtocolAbort("round already started")
        self._open(Stage.ADVERTISE_KEYS, frozenset(self.params.client_ids))
        request = AdvertiseKeysRequest(self.params)
        return dict.fromkeys(self.params.client_ids, request)

    # -- receiving --------------------------------------------------------------------------

    def receive(self, sender: int, message: ClientMessage) -> bool:
        """Take one client's reply to the open stage.

        Returns:
            True if accepted; False if late, unexpected, duplicate or invalid (the reason is
            appended to :attr:`rejected`; the sender is then treated as dropped).
        """
        reason = self._check(sender, message)
        if reason is not None:
            self.rejected.append((sender, reason))
            return False
        self._replies[sender] = message
        return True

    def _check(self, sender: int, message: ClientMessage) -> str | None:
        if self._stage not in ACTIVE_STAGES:
            return "no stage is open"
        if sender not in self._expected:
            return "sender not expected in this stage"
        if sender in self._replies:
            return "duplicate reply"
        if message.round_id != self.params.round_id:
            return "message for another round"
        if getattr(message, "client_id", None) != sender:
            return "client id does not match the sender"
        try:
            if self._stage is Stage.ADVERTISE_KEYS:
                return self._check_advertisement(sender, message)
            if self._stage is Stage.SHARE_KEYS:
                return self._check_shares(sender, message)
            if self._stage is Stage.MASKED_INPUT:
                return self._check_masked(sender, message)
            if self._stage is Stage.CONSISTENCY_CHECK:
                return self._check_consistency(sender, message)
            return self._check_unmask(sender, message)
        except (ValueError, ShareValidationError) as exc:
            return f"malformed: {exc}"

    def _check_advertisement(self, sender: int, message: ClientMessage) -> str | None:
        if not isinstance(message, KeyAdvertisement):
            return "expected a KeyAdvertisement"
        try:
            ed25519_verify(self._registry[sender], message.signed_bytes(), message.signature)
        except IntegrityError:
            return "advertisement signature does not verify"
        return None

    def _check_shares(self, sender: int, message: ClientMessage) -> str | None:
        if not isinstance(message, ShareKeysReply):
            return "expected a ShareKeysReply"
        receivers = [s.receiver for s in message.shares]
        if any(s.sender != sender for s in message.shares):
            return "share sender does not match"
        if len(set(receivers)) != len(receivers) or set(receivers) != self._graph[sender]:
            return "shares must go to exactly the sender's neighbours"
        return None

    def _check_masked(self, sender: int, message: ClientMessage) -> str | None:
        if not isinstance(message, MaskedInput):
            return "expected a MaskedInput"
        words = unpack(
            message.payload, self.params.vector_length, self.params.modulus_bits, copy=False
        )
        np.add(self._sum, words, out=self._sum)
        return None

    def _check_consistency(self, sender: int, message: ClientMessage) -> str | None:
        if not isinstance(message, ConsistencySignature):
            return "expected a ConsistencySignature"
        try:
            ed25519_verify(self._registry[sender], self._signed_sets, message.signature)
        except IntegrityError:
            return "consistency signature does not verify over the survivor set"
        return None

    def _check_unmask(self, sender: int, message: ClientMessage) -> str | None:
        if not isinstance(message, UnmaskReply):
            return "expected an UnmaskReply"
        owners_self = [r.owner for r in message.self_mask_shares]
        owners_key = [r.owner for r in message.mask_key_shares]
        if set(owners_self) & set(owners_key):
            return "both shares of one client"
        for owners, allowed in ((owners_self, self._survivors), (owners_key, self._dropped_u2)):
            if len(set(owners)) != len(owners):
                return "repeated owner"
            for owner in owners:
                if owner not in allowed or sender not in self._delivered.get(owner, ()):
                    return "share of a client the sender holds no share of"
        parsed: list[tuple[int, Share]] = []
        for revealed in (*message.self_mask_shares, *message.mask_key_shares):
            share = Share.from_bytes(revealed.share)
            if share.x != sender + 1 or len(share.values) != 2:
                return "revealed share is malformed"
            parsed.append((revealed.owner, share))
        self._revealed[sender] = parsed  # kept parsed for the close (each share parsed once)
        return None

    # -- advancing --------------------------------------------------------------------------

    def step(self) -> dict[int, ServerMessage] | None:
        """Close the open stage if it is complete or past its deadline.

        Returns:
            ``None`` while waiting; otherwise the next stage's messages (an empty dict when
            the unmask stage closed and :meth:`result` is ready).

        Raises:
            QuorumNotMet: fewer than ``min_survivors`` clients answered the stage.
            ProtocolAbort: a secret could not be rebuilt or did not verify.
        """
        if self._stage not in ACTIVE_STAGES:
            raise ProtocolAbort(f"no stage is open (stage: {self._stage})")
        if not self.complete and self._clock() < self._deadline:
            return None
        stage = self._stage
        assert stage is not None
        alive = frozenset(self._replies)
        self._alive[stage] = alive
        if len(alive) < self.params.min_survivors:
            raise self._abort(
                QuorumNotMet(
                    f"secure aggregation aborted at {stage.value}: {len(alive)} clients "
                    f"answered, min_survivors is {self.params.min_survivors}"
                )
            )
        if stage is Stage.ADVERTISE_KEYS:
            return self._close_advertise(alive)
        if stage is Stage.SHARE_KEYS:
            return self._close_share_keys(alive)
        if stage is Stage.MASKED_INPUT:
            return self._close_masked(alive)
        if stage is Stage.CONSISTENCY_CHECK:
            return self._close_consistency(alive)
        return self._close_unmask(alive)

    def _close_advertise(self, alive: frozenset[int]) -> dict[int, ServerMessage]:
        ads = tuple(self._replies[i] for i in sorted(alive))
        self._ads: dict[int, KeyAdvertisement] = {}
        for ad in ads:
            assert isinstance(ad, KeyAdvertisement)
            self._ads[ad.client_id] = ad
        seed = graph_seed(self.params.round_id, (a.signed_bytes() for a in self._ads.values()))
        self._graph = neighbours(alive, self.params.neighbors, seed)
        request = ShareKeysRequest(self.params.round_id, tuple(self._ads.values()))
        self._open(Stage.SHARE_KEYS, alive)
        return dict.fromkeys(sorted(alive), request)

    def _close_share_keys(self, alive: frozenset[int]) -> dict[int, ServerMessage]:
        inbox: dict[int, list[EncryptedShare]] = {i: [] for i in alive}
        for sender in sorted(alive):
            reply = self._replies[sender]
            assert isinstance(reply, ShareKeysReply)
            for share in reply.shares:
                if share.receiver in alive:
                    inbox[share.receiver].append(share)
        # _delivered[v] = clients that received v's share (and so mask with v): v's live
        # neighbours (the graph is symmetric), O(k) per client
        self._delivered: dict[int, frozenset[int]] = {v: self._graph[v] & alive for v in alive}
        short = [u for u in alive if len(inbox[u]) < self.params.threshold]
        if short:
            raise self._abort(
                ProtocolAbort(
                    f"secure aggregation aborted at share_keys: clients {sorted(short)[:5]} "
                    f"keep fewer than t={self.params.threshold} live neighbours"
                )
            )
        self._sum: MaskArray = np.zeros(
            self.params.vector_length, dtype=mask_dtype(self.params.modulus_bits)
        )
        self._open(Stage.MASKED_INPUT, alive)
        return {u: MaskedInputRequest(self.params.round_id, tuple(inbox[u])) for u in sorted(alive)}

    def _close_masked(self, alive: frozenset[int]) -> dict[int, ServerMessage]:
        self._survivors = alive
        self._dropped_u2 = self._alive[Stage.SHARE_KEYS] - alive
        survivors, dropped = tuple(sorted(alive)), tuple(sorted(self._dropped_u2))
        self._signed_sets = consistency_bytes(self.params.round_id, survivors, dropped)
        request = ConsistencyCheckRequest(self.params.round_id, survivors, dropped)
        self._open(Stage.CONSISTENCY_CHECK, alive)
        return dict.fromkeys(survivors, request)

    def _close_consistency(self, alive: frozenset[int]) -> dict[int, ServerMessage]:
        t = self.params.threshold
        # a client accepts the unmask request only with t signatures from its neighbours and,
        # for each peer whose share it holds, from t of that peer's neighbourhood (itself
        # excluded; see tutela.secagg.client): say so here rather than let it refuse
        short = []
        for u in sorted(alive):
            pools = [self._graph[u]] + [
                (self._graph[v] | {v}) - {u}
                for v in self._graph[u]
                if u in self._delivered.get(v, ())
            ]
            if any(len(pool & alive) < t for pool in pools):
                short.append(u)
        if short:
            raise self._abort(
                ProtocolAbort(
                    f"secure aggregation aborted at consistency_check: clients {short[:5]} "
                    f"hold fewer than t={t} signatures of the survivor set from their "
                    "neighbourhood"
                )
            )
        signatures: dict[int, SurvivorSignature] = {}
        for sender in sorted(alive):
            reply = self._replies[sender]
            assert isinstance(reply, ConsistencySignature)
            signatures[sender] = SurvivorSignature(sender, reply.signature)
        survivors, dropped = tuple(sorted(self._survivors)), tuple(sorted(self._dropped_u2))
        out: dict[int, ServerMessage] = {}
        for u in sorted(alive):
            # the signatures u checks: its neighbours' and its neighbours' neighbours'
            near = set(self._graph[u]).union(*(self._graph[v] for v in self._graph[u]))
            forwarded = tuple(signatures[v] for v in sorted(near - {u}) if v in signatures)
            out[u] = UnmaskRequest(self.params.round_id, survivors, dropped, forwarded)
        self._open(Stage.UNMASK, alive)
        return out

    def _collect(self, alive: frozenset[int]) -> dict[int, list[Share]]:
        """Per owner, the shares revealed of its secret, in sender order."""
        shares: dict[int, list[Share]] = {u: [] for u in self._survivors | self._dropped_u2}
        for sender in sorted(alive):
            for owner, share in self._revealed[sender]:
                shares[owner].append(share)
        return shares

    def _close_unmask(self, alive: frozenset[int]) -> dict[int, ServerMessage]:
        # Each secret is rebuilt from the first t shares and checked against what its owner
        # signed (the self-mask commitment, the mask public key), so extra shares need no
        # consistency check: a wrong share among the first t fails the check and aborts, a
        # wrong one beyond them is never used.
        p = self.params
        shares = self._collect(alive)
        plus: list[bytes] = []
        minus: list[bytes] = []
        try:
            for u in sorted(self._survivors):
                seed = _secret_bytes(reconstruct_field(shares[u], p.threshold, validate=False))
                if self_mask_commitment(p.round_id, u, seed) != self._ads[u].self_mask_commitment:
                    raise ShareValidationError(f"self-mask seed of client {u} does not verify")
                minus.append(self_mask_key(p.round_id, u, seed))
            for v in sorted(self._dropped_u2):
                secret = x25519_from_bytes(
                    _secret_bytes(reconstruct_field(shares[v], p.threshold, validate=False))
                )
                if x25519_public_bytes(secret) != self._ads[v].mask_key:
                    raise ShareValidationError(f"mask key of client {v} does not verify")
                for u in sorted(self._delivered[v] & self._survivors):
                    key = pair_mask_key(
                        p.round_id, u, v, x25519_agree(secret, self._ads[u].mask_key)
                    )
                    (minus if u < v else plus).append(key)
        except ShareValidationError as exc:
            raise self._abort(
                ProtocolAbort(f"secure aggregation aborted at unmask: {exc}")
            ) from None
        acc = self._sum
        add_masks(acc, plus, minus, p.modulus_bits)
        reduce_mod(acc, p.modulus_bits)
        z = from_modular(acc, p.modulus_bits)
        unit = p.max_weight / p.scale
        self._result = AggregateResult(
            total=z[: p.dim].astype(np.float64) * unit,
            weight_total=float(z[p.dim]) * unit / p.clip,
            survivors=tuple(sorted(self._survivors)),
            dropped=self.dropped(),
            integer_sum=z,
        )
        self._stage = Stage.DONE
        self._deadline = float("inf")
        return {}

    def result(self) -> AggregateResult:
        """The released aggregate (only after a successful unmask stage)."""
        if self._result is None:
            raise ProtocolAbort("the round has not completed")
        return self._result


def _secret_bytes(values: tuple[int, ...]) -> bytes:
    if len(values) != 2 or any(v >> 128 for v in values):
        raise ShareValidationError("reconstructed secret is malformed")
    return b"".join(v.to_bytes(16, "big") for v in values)
