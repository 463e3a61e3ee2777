"""A hand-driven SecAgg+ round for tests: keeps the server, the clients and the transcript."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tutela.hazmat.kex import ed25519_public_bytes, generate_ed25519
from tutela.hazmat.rng import SecureRandom
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
from tutela.secagg.config import ACTIVE_STAGES
from tutela.secagg.messages import ClientMessage, ServerMessage


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
