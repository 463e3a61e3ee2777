"""A hand-driven SecAgg+ round for tests: keeps the server, the clients and the transcript.

Also the adversary's tools: a malicious server that shows clients different survivor sets
(:func:`split_view_attack`) and the recovery of one client's input from what the server and
its colluders hold (:func:`recover_input`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tutela.errors import IntegrityError, ProtocolAbort
from tutela.hazmat.kex import (
    ed25519_public_bytes,
    ed25519_sign,
    ed25519_verify,
    generate_ed25519,
    x25519_agree,
    x25519_from_bytes,
)
from tutela.hazmat.masks import add_masks, reduce_mod
from tutela.hazmat.quantize import from_modular, unpack
from tutela.hazmat.rng import SecureRandom
from tutela.hazmat.shamir import Share, reconstruct_field
from tutela.secagg import (
    DropoutPlan,
    ManualClock,
    RoundParams,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    Stage,
    decode_message,
    encode_message,
)
from tutela.secagg.client import pair_mask_key, self_mask_key
from tutela.secagg.config import ACTIVE_STAGES
from tutela.secagg.messages import (
    ClientMessage,
    ConsistencyCheckRequest,
    ConsistencySignature,
    MaskedInput,
    ServerMessage,
    SurvivorSignature,
    UnmaskReply,
    UnmaskRequest,
    consistency_bytes,
)


@dataclass
class Round:
    params: RoundParams
    server: SecAggServer
    clients: dict[int, SecAggClient]
    clock: ManualClock
    registry: dict[int, bytes]
    inputs: dict[int, np.ndarray]
    # (direction, client id, message) for everything that crossed the wire
    transcript: list[tuple[str, int, object]] = field(default_factory=list)


def make_round(
    n: int,
    dim: int,
    config: SecAggConfig,
    *,
    seed: int = 0,
    weights: Mapping[int, float] | None = None,
    inputs: Mapping[int, np.ndarray] | None = None,
    round_id: bytes | None = None,
    identities_seed: int | None = None,
) -> Round:
    gen = SecureRandom(seed)
    ids = tuple(range(n))
    data = (
        {i: np.asarray(v, dtype=np.float64) for i, v in inputs.items()}
        if inputs is not None
        else {i: np.random.default_rng(seed * 1000 + i).uniform(-1, 1, dim) for i in ids}
    )
    ws = dict(weights) if weights is not None else dict.fromkeys(ids, 1.0)
    bound = config.max_weight or 1.0
    params = config.plan(ids, dim, max_weight=bound, round_id=round_id or gen.bytes(32))
    id_gen = SecureRandom(identities_seed if identities_seed is not None else seed + 10**6)
    identities = {i: generate_ed25519(id_gen) for i in ids}
    registry = {i: ed25519_public_bytes(k) for i, k in identities.items()}
    clients = {
        i: SecAggClient(i, identities[i], registry, rng=SecureRandom(gen.bytes(32))) for i in ids
    }
    for i in ids:
        clients[i].set_input(data[i], ws[i])
    clock = ManualClock()
    return Round(
        params, SecAggServer(params, registry, clock=clock), clients, clock, registry, data
    )


Tamper = Callable[[Stage, int, ServerMessage], ServerMessage]


def run(
    rnd: Round,
    plan: DropoutPlan | None = None,
    *,
    tamper: Tamper | None = None,
    until: Stage | None = None,
) -> dict[int, ServerMessage]:
    """Drive stages in order (bytes on the wire); returns the last outbox."""
    plan = plan or DropoutPlan()
    outbox = rnd.server.start()
    silent: set[int] = set()
    for stage in ACTIVE_STAGES:
        if stage is until:
            return outbox
        silent |= plan.drops_at(stage)
        for cid, original in outbox.items():
            msg = tamper(stage, cid, original) if tamper is not None else original
            request = decode_message(encode_message(msg))
            rnd.transcript.append(("down", cid, request))
            if cid in silent:
                continue
            reply: ClientMessage = rnd.clients[cid].handle(request)  # type: ignore[arg-type]
            reply = decode_message(encode_message(reply))  # type: ignore[assignment]
            rnd.transcript.append(("up", cid, reply))
            rnd.server.receive(cid, reply)
        nxt = rnd.server.step()
        if nxt is None:
            rnd.clock.advance(rnd.params.stage_timeout_s)
            nxt = rnd.server.step()
        assert nxt is not None
        outbox = nxt
    return outbox


def plain_sum(rnd: Round, survivors: tuple[int, ...]) -> np.ndarray:
    p = rnd.params
    total = np.zeros(p.dim)
    for i in survivors:
        total += np.clip(rnd.inputs[i], -p.clip, p.clip)
    return total


# -- the adversary ------------------------------------------------------------------------

View = tuple[tuple[int, ...], tuple[int, ...]]  # (survivors, dropped)


def masked_words(rnd: Round, cid: int) -> np.ndarray:
    """The masked input client ``cid`` sent (what the server holds)."""
    for direction, sender, msg in rnd.transcript:
        if direction == "up" and sender == cid and isinstance(msg, MaskedInput):
            return unpack(msg.payload, rnd.params.vector_length, rnd.params.modulus_bits)
    raise AssertionError("no masked input")


def secret_of(shares: Mapping[int, Share], t: int) -> bytes:
    values = reconstruct_field(list(shares.values()), t)
    return b"".join(v.to_bytes(16, "big") for v in values)


def adversary_shares(
    rnd: Round, colluders: set[int], target: int
) -> tuple[dict[int, Share], dict[int, Share]]:
    """Shares of the target's self-mask seed and mask key the adversary can see: both halves
    of every colluder's share, and whatever honest clients revealed in the transcript."""
    self_sh: dict[int, Share] = {}
    key_sh: dict[int, Share] = {}
    for c in colluders:
        share = rnd.clients[c]._peer_shares.get(target)
        if share is not None:
            self_sh[c] = Share(share.x, share.values[:2])
            key_sh[c] = Share(share.x, share.values[2:])
    for direction, sender, msg in rnd.transcript:
        if direction == "up" and isinstance(msg, UnmaskReply):
            for r in msg.self_mask_shares:
                if r.owner == target:
                    self_sh[sender] = Share.from_bytes(r.share)
            for r in msg.mask_key_shares:
                if r.owner == target:
                    key_sh[sender] = Share.from_bytes(r.share)
    return self_sh, key_sh


def recover_input(rnd: Round, colluders: set[int], target: int) -> np.ndarray | None:
    """Try to recover the target's update from the server view plus the colluders' state:
    ``None`` unless the adversary holds t shares of both the self-mask seed and the mask key."""
    p = rnd.params
    self_sh, key_sh = adversary_shares(rnd, colluders, target)
    if len(self_sh) < p.threshold or len(key_sh) < p.threshold:
        return None
    seed = secret_of(self_sh, p.threshold)
    mask_sk = x25519_from_bytes(secret_of(key_sh, p.threshold))
    words = masked_words(rnd, target).copy()
    ads = rnd.clients[target]._ads
    plus, minus = [], [self_mask_key(p.round_id, target, seed)]
    for j in rnd.clients[target]._peer_shares:
        key = pair_mask_key(p.round_id, target, j, x25519_agree(mask_sk, ads[j].mask_key))
        (minus if target < j else plus).append(key)
    add_masks(words, plus, minus, p.modulus_bits)
    reduce_mod(words, p.modulus_bits)
    return from_modular(words, p.modulus_bits)[: p.dim] * (p.max_weight / p.scale)


def split_views(rnd: Round, target: int, told: Mapping[int, str]) -> dict[int, View]:
    """Survivor views of a server that lies about ``target``: every client that sent a masked
    input is told the true sets, except those with ``told[c] == "key"``, who are told that
    the target dropped (so that they reveal its mask-key share)."""
    survivors = tuple(sorted(rnd.server._survivors))
    dropped = tuple(sorted(rnd.server._dropped_u2))
    lie = (
        tuple(i for i in survivors if i != target),
        tuple(sorted((*dropped, target))),
    )
    return {c: lie if told.get(c) == "key" else (survivors, dropped) for c in survivors}


def split_view_attack(
    rnd: Round, views: Mapping[int, View], colluders: set[int]
) -> tuple[dict[int, UnmaskReply], dict[int, str]]:
    """A malicious server that ran the round honestly up to the masked inputs, then shows each
    client its own view. Colluders sign every view (the server holds their keys); each honest
    client's unmask request carries every signature that verifies over its view (the best
    the server can do). Returns the honest clients' unmask replies (also appended to the
    transcript) and, for those that refused, the reason."""
    p = rnd.params
    signed: dict[int, ConsistencySignature] = {}
    refused: dict[int, str] = {}
    honest = sorted(set(views) - colluders)
    for c in honest:
        request = ConsistencyCheckRequest(p.round_id, *views[c])
        try:
            signed[c] = rnd.clients[c].handle(decode_message(encode_message(request)))  # type: ignore[arg-type,assignment]
        except ProtocolAbort as exc:
            refused[c] = str(exc)
    replies: dict[int, UnmaskReply] = {}
    for u in sorted(signed):
        message = consistency_bytes(p.round_id, *views[u])
        sigs = [
            SurvivorSignature(c, ed25519_sign(rnd.clients[c]._identity, message))
            for c in sorted(colluders)
        ]
        for c, sig in signed.items():
            try:
                ed25519_verify(rnd.registry[c], message, sig.signature)
            except IntegrityError:
                continue
            sigs.append(SurvivorSignature(c, sig.signature))
        sigs.sort(key=lambda s: s.signer)
        request = UnmaskRequest(p.round_id, *views[u], tuple(sigs))
        try:
            reply = rnd.clients[u].handle(decode_message(encode_message(request)))  # type: ignore[arg-type]
        except ProtocolAbort as exc:
            refused[u] = str(exc)
            continue
        assert isinstance(reply, UnmaskReply)
        rnd.transcript.append(("up", u, reply))
        replies[u] = reply
    return replies, refused
