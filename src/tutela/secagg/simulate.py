"""Simulated SecAgg+ rounds: the driver the FL engine calls, and dropout plans for tests.

:func:`secure_sum` runs one complete round between a :class:`~tutela.secagg.server.SecAggServer`
in this process and one :class:`~tutela.secagg.client.SecAggClient` per input. The clients
live in a :class:`ClientHost`: :class:`LocalClients` (this process, the default) or the Ray
backend's workers (:meth:`tutela.fl.ray_backend.RayBackend.client_hosts`), which run many
devices' state machines in parallel. Every message is serialised to bytes and parsed back
on the way (so the byte counts are real), and a :class:`ManualClock` stands in for time:
when a planned dropout, or a host that lost its clients, leaves a stage short, the clock
jumps past the deadline instead of waiting. A host is handed each round's messages and
returns the replies; the server state machine never leaves this process, and the result
is the same whichever host runs the clients (same ``rng``, same sum, bit for bit).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from tutela.errors import ProtocolAbort, TutelaError, rebuild_error
from tutela.hazmat.kex import ed25519_from_seed, ed25519_public_bytes
from tutela.hazmat.rng import SecureRandom
from tutela.secagg.client import SecAggClient
from tutela.secagg.config import ACTIVE_STAGES, MAX_CLIENT_ID, RoundParams, SecAggConfig, Stage
from tutela.secagg.messages import decode_message, encode_message
from tutela.secagg.server import SecAggServer

__all__ = [
    "ClientHost",
    "ClientHosts",
    "ClientSetup",
    "DropoutPlan",
    "HostedClients",
    "LocalClients",
    "ManualClock",
    "SecAggResult",
    "secure_sum",
]

_STAGE_NAMES = tuple(s.value for s in ACTIVE_STAGES)


class ManualClock:
    """A clock that only moves when told to (for simulations and tests)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.now += seconds


@dataclass(frozen=True, slots=True)
class DropoutPlan:
    """Which clients stop answering at which stage (they answer every earlier stage).

    Attributes:
        advertise_keys: never advertise keys.
        share_keys: advertise, then go silent.
        masked_input: share keys, then go silent (their pairwise masks must be removed).
        consistency_check: send their masked input, then go silent (their input still
            counts; they do not sign the survivor set).
        unmask: sign the survivor set, then go silent (their input still counts).
    """

    advertise_keys: frozenset[int] = frozenset()
    share_keys: frozenset[int] = frozenset()
    masked_input: frozenset[int] = frozenset()
    consistency_check: frozenset[int] = frozenset()
    unmask: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        sets = [getattr(self, name) for name in _STAGE_NAMES]
        if sum(len(s) for s in sets) != len(frozenset().union(*sets)):
            raise ValueError("a client can drop at one stage only")

    @classmethod
    def at(cls, stage: Stage | str, clients: Iterable[int]) -> DropoutPlan:
        """All ``clients`` drop at one stage."""
        name = Stage(stage).value
        if name not in _STAGE_NAMES:
            raise ValueError(f"not a protocol stage: {name}")
        return cls(**{name: frozenset(clients)})

    @classmethod
    def random(
        cls,
        client_ids: Iterable[int],
        fraction: float,
        *,
        rng: SecureRandom | None = None,
        stages: Iterable[Stage | str] = ACTIVE_STAGES,
    ) -> DropoutPlan:
        """``round(fraction * n)`` random clients, each dropping at a random one of ``stages``."""
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be in [0, 1]")
        ids = sorted(set(client_ids))
        names = [Stage(s).value for s in stages]
        gen = rng if rng is not None else SecureRandom()
        count = round(fraction * len(ids))
        order = np.argsort(gen.uint64(len(ids)), kind="stable")
        picked = [ids[int(i)] for i in order[:count]]
        where = gen.integers(len(names), count) if count else np.zeros(0, dtype=np.int64)
        groups: dict[str, set[int]] = {name: set() for name in _STAGE_NAMES}
        for cid, w in zip(picked, where, strict=True):
            groups[names[int(w)]].add(cid)
        return cls(**{name: frozenset(v) for name, v in groups.items()})

    def drops_at(self, stage: Stage) -> frozenset[int]:
        """Clients that stop at ``stage``."""
        return frozenset(getattr(self, stage.value))

    @property
    def total(self) -> int:
        """Number of clients that drop."""
        return sum(len(self.drops_at(s)) for s in ACTIVE_STAGES)


@dataclass(frozen=True, slots=True)
class SecAggResult:
    """The outcome of :func:`secure_sum`.

    Attributes:
        total: the (weighted) sum of the survivors' clipped inputs, plus distributed-DP noise
            when ``ddp_sigma > 0``; float64.
        weight_total: the sum of the survivors' weights (exact, not noised).
        survivors: clients whose inputs are in ``total``.
        params: the round's public parameters.
        dropped: per stage, the clients that stopped answering there.
        clipped_values: input coordinates that were outside ``[-clip, clip]`` (summed over
            survivors; computed by the driver, never sent).
        client_cpu_seconds: per client, CPU seconds spent in its state machine (including
            parsing and serialising its messages).
        server_cpu_seconds: CPU seconds spent in the server state machine (same).
        client_stage_cpu_seconds: the same per stage name, per client.
        server_stage_cpu_seconds: the server's CPU seconds per stage name (a stage's
            replies are received in that stage; closing it is counted there too).
        bytes_up: per client, bytes it sent.
        bytes_down: per client, bytes it received.
    """

    total: npt.NDArray[np.float64]
    weight_total: float
    survivors: tuple[int, ...]
    params: RoundParams
    dropped: Mapping[str, tuple[int, ...]]
    clipped_values: int = 0
    client_cpu_seconds: Mapping[int, float] = field(default_factory=dict)
    server_cpu_seconds: float = 0.0
    client_stage_cpu_seconds: Mapping[str, Mapping[int, float]] = field(default_factory=dict)
    server_stage_cpu_seconds: Mapping[str, float] = field(default_factory=dict)
    bytes_up: Mapping[int, int] = field(default_factory=dict)
    bytes_down: Mapping[int, int] = field(default_factory=dict)

    @property
    def quantization_error_bound(self) -> float:
        """Worst-case per-coordinate error vs the clipped (weighted) sum, noise aside."""
        return self.params.quantization_error_bound(len(self.survivors))

    def ddp(self) -> dict[str, Any]:
        """Distributed-DP figures for the caller's accountant.

        ``sigma_per_client`` (real units) is each survivor's noise std; the sum carries
        ``sigma_per_client * sqrt(survivors)``, at least ``guaranteed_sigma`` = the value at
        ``min_survivors`` (the round aborts below it), which is what to account. Each
        client's noise is a discrete Gaussian in quantisation steps; the sum of m of them is
        close to a discrete Gaussian (Kairouz, Liu and Steinke 2021): ``tau`` is their
        closeness term, ``10 * sum_{k=1}^{m-1} exp(-2 pi^2 s^2 k / (k + 1))``, for
        s^2 = the per-client variance in steps and m = min_survivors.
        ``l2_rounding_inflation`` (real units) is the most stochastic rounding can add to
        one client's L2 norm: account with sensitivity ``clip_norm + l2_rounding_inflation``.
        """
        p = self.params
        unit = p.max_weight / p.scale
        var = p.noise_variance
        m = p.min_survivors
        tau = (
            10.0 * sum(math.exp(-2 * math.pi**2 * var * k / (k + 1)) for k in range(1, m))
            if var
            else 0.0
        )
        per_client = math.sqrt(var) * unit
        return {
            "enabled": var > 0,
            "noise": "discrete_gaussian",
            "units": "real (same as total)",
            "sigma_per_client": per_client,
            "variance_per_client_steps": var,
            "min_survivors": m,
            "survivors": len(self.survivors),
            "guaranteed_sigma": per_client * math.sqrt(m),
            "effective_sigma": per_client * math.sqrt(len(self.survivors)),
            "tau": tau,
            "l2_rounding_inflation": unit * math.sqrt(p.dim),
        }

    def report(self) -> dict[str, Any]:
        """A JSON-ready summary (for ``results.json`` and the CLI)."""
        p = self.params
        from tutela.secagg.config import robustness_failure_bound

        clients = list(self.client_cpu_seconds.values())
        return {
            "protocol": "secagg+",
            "version": p.version,
            "n": p.n,
            "k": min(p.neighbors, p.n - 1),
            "complete_graph": p.neighbors >= p.n - 1,
            "threshold": p.threshold,
            "max_colluding_clients": p.threshold - 1,
            "min_survivors": p.min_survivors,
            "survivors": len(self.survivors),
            "dropped": {k: list(v) for k, v in self.dropped.items()},
            "dropped_count": {k: len(v) for k, v in self.dropped.items()},
            "modulus_bits": p.modulus_bits,
            "bytes_per_parameter": p.wire_bytes_per_word,
            "clip": p.clip,
            "scale": p.scale,
            "max_weight": p.max_weight,
            "quantization_step": p.max_weight / p.scale,
            "quantization_error_bound": self.quantization_error_bound,
            "clipped_values": self.clipped_values,
            "robustness_failure_bound": robustness_failure_bound(
                p.n, min(p.neighbors, p.n - 1), p.threshold, p.n - p.min_survivors
            ),
            "ddp": self.ddp(),
            "client_cpu_ms_median": 1e3 * statistics.median(clients) if clients else 0.0,
            "client_cpu_ms_median_by_stage": {
                stage: 1e3 * statistics.median(v.values())
                for stage, v in self.client_stage_cpu_seconds.items()
                if v
            },
            "server_cpu_ms": 1e3 * self.server_cpu_seconds,
            "server_cpu_ms_by_stage": {
                stage: 1e3 * v for stage, v in self.server_stage_cpu_seconds.items()
            },
            "bytes_up_per_client_max": max(self.bytes_up.values(), default=0),
            "bytes_down_per_client_max": max(self.bytes_down.values(), default=0),
        }


@dataclass(frozen=True, slots=True)
class ClientSetup:
    """What a host needs to run one simulated client for one round.

    Attributes:
        identity: the client's Ed25519 identity key (its 32-byte seed).
        seed: the seed of the client's own randomness (masks, keys, noise, rounding).
        vector: the client's input.
        weight: its weight.
    """

    identity: bytes
    seed: bytes
    vector: npt.NDArray[np.float64]
    weight: float


HostReply = tuple[bytes | None, float, tuple[str, str] | None]
"""A client's serialised reply, the CPU seconds it spent (parsing included) and, when it
refused the request, its error's class name and message (the reply is then ``None``)."""


class ClientHost(Protocol):
    """Where one round's simulated clients live while :func:`secure_sum` drives them."""

    def open(self, setups: Mapping[int, ClientSetup], registry: Mapping[int, bytes]) -> None:
        """Start one client per setup (``registry``: every client's identity public key)."""

    def handle(
        self, messages: Mapping[int, bytes], routes: Mapping[int, int]
    ) -> dict[int, HostReply]:
        """Hand ``messages[routes[c]]`` to each client ``c`` of ``routes`` and return the
        replies. A client the host lost (its worker died) is missing from the answer: the
        round treats it as a dropout."""

    def close(self) -> None:
        """Forget the round's clients."""


ClientHosts = Callable[[], ClientHost]
"""Makes a fresh host for each round."""


@runtime_checkable
class HostedClients(Protocol):
    """An aggregator whose SecAgg+ clients can run in a host other than this process."""

    client_hosts: ClientHosts | None


class LocalClients:
    """The clients of a round in this process (the default host; a Ray worker runs one too).

    Each distinct message is parsed once and its parse charged to every client it was
    addressed to, as if each had parsed its own copy.
    """

    def __init__(self, *, clock: Callable[[], float] = time.process_time) -> None:
        self._clock = clock
        self._clients: dict[int, SecAggClient] = {}

    def open(self, setups: Mapping[int, ClientSetup], registry: Mapping[int, bytes]) -> None:
        self._clients = {}
        for cid, setup in setups.items():
            client = SecAggClient(
                cid, ed25519_from_seed(setup.identity), registry, rng=SecureRandom(setup.seed)
            )
            client.set_input(setup.vector, setup.weight)
            self._clients[cid] = client

    def handle(
        self, messages: Mapping[int, bytes], routes: Mapping[int, int], *, refusals: bool = False
    ) -> dict[int, HostReply]:
        """The replies (see :meth:`ClientHost.handle`). A client's refusal raises its error,
        or with ``refusals`` comes back as that client's reply, the last one handled."""
        parsed: dict[int, tuple[Any, float]] = {}
        out: dict[int, HostReply] = {}
        for cid, key in routes.items():
            if key not in parsed:
                t0 = self._clock()
                request = decode_message(messages[key])
                parsed[key] = (request, self._clock() - t0)
            request, parse_s = parsed[key]
            t0 = self._clock()
            try:
                reply = self._clients[cid].handle(request)
            except TutelaError as exc:
                if not refusals:
                    raise
                out[cid] = (None, self._clock() - t0 + parse_s, (type(exc).__name__, str(exc)))
                break  # the round is over: the driver raises this client's error
            raw = encode_message(reply)
            out[cid] = (raw, self._clock() - t0 + parse_s, None)
        return out

    def close(self) -> None:
        self._clients = {}


def _validate_inputs(
    inputs: Mapping[int, npt.ArrayLike], weights: Mapping[int, float] | None
) -> tuple[dict[int, npt.NDArray[np.float64]], dict[int, float]]:
    if not inputs:
        raise ValueError("inputs must not be empty")
    vectors: dict[int, npt.NDArray[np.float64]] = {}
    for cid, x in inputs.items():
        if isinstance(cid, bool) or not isinstance(cid, int | np.integer):
            raise ValueError("client ids must be integers")
        if not 0 <= int(cid) <= MAX_CLIENT_ID:
            raise ValueError(f"client ids must be in [0, {MAX_CLIENT_ID}]")
        vec = np.asarray(x, dtype=np.float64)
        if vec.ndim != 1 or not np.isfinite(vec).all():
            raise ValueError(f"input of client {cid} must be a 1-D vector of finite floats")
        vectors[int(cid)] = vec
    dims = {v.shape[0] for v in vectors.values()}
    if len(dims) != 1 or 0 in dims:
        raise ValueError("all inputs must be non-empty and of the same length")
    if weights is None:
        return vectors, dict.fromkeys(vectors, 1.0)
    if set(weights) != set(inputs):
        raise ValueError("weights must have exactly the same client ids as inputs")
    ws = {int(c): float(w) for c, w in weights.items()}
    if any(not (math.isfinite(w) and w >= 0) for w in ws.values()):
        raise ValueError("weights must be finite and non-negative")
    return vectors, ws


def _weight_bound(config: SecAggConfig, weights: Mapping[int, float], weighted: bool) -> float:
    if config.max_weight is not None:
        bound = config.max_weight
        if max(weights.values()) > bound:
            raise ValueError(f"a weight exceeds max_weight={bound}")
        return bound
    top = max(weights.values()) if weighted else 1.0
    return 1.0 if top <= 0 else math.ldexp(1.0, math.ceil(math.log2(top)))


def secure_sum(
    inputs: Mapping[int, npt.ArrayLike],
    weights: Mapping[int, float] | None,
    config: SecAggConfig,
    *,
    dropouts: DropoutPlan | None = None,
    rng: SecureRandom | None = None,
    hosts: ClientHosts | None = None,
) -> SecAggResult:
    """One SecAgg+ round: the (weighted) sum of ``inputs``, seen only unmasked in sum.

    Args:
        inputs: client id -> 1-D float vector (all the same length).
        weights: client id -> weight >= 0 (e.g. example counts), or ``None`` for all 1.
            The result is the weighted *sum*; divide by ``weight_total`` for the mean.
        config: protocol settings (see :class:`SecAggConfig`).
        dropouts: which clients stop answering at which stage (none by default).
        rng: randomness for the whole round (round id, identities, every client); a fresh
            OS-keyed generator by default. Seed it only in tests.
        hosts: where the clients run (a fresh :class:`ClientHost` per call); this process
            by default (:class:`LocalClients`).

    Returns:
        :class:`SecAggResult`.

    Raises:
        ValueError: invalid inputs or a configuration that could wrap.
        QuorumNotMet: fewer than ``min_survivors`` clients at some stage.
        ProtocolAbort: the round could not complete (e.g. a secret could not be rebuilt).

    Security: the server state machine sees only masked vectors, one kind of share per
    client, and the final sum; see :mod:`tutela.secagg.client` for the threat model.
    Identity keys are generated per call here (the simulation's stand-in for registered
    site keys) and handed to the host with each client's input: the simulator and its
    hosts are one party.

    Privacy: with ``config.ddp_sigma > 0`` each client adds discrete Gaussian noise sized so
    that the sum over ``min_survivors`` clients has std ``ddp_sigma``; see
    :meth:`SecAggResult.ddp` for what to account.
    """
    vectors, ws = _validate_inputs(inputs, weights)
    plan = dropouts if dropouts is not None else DropoutPlan()
    unknown = {c for s in ACTIVE_STAGES for c in plan.drops_at(s)} - set(vectors)
    if unknown:
        raise ValueError(f"dropout plan names unknown clients {sorted(unknown)}")
    gen = rng if rng is not None else SecureRandom()
    ids = tuple(sorted(vectors))
    dim = next(iter(vectors.values())).shape[0]
    bound = _weight_bound(config, ws, weights is not None)
    params = config.plan(ids, dim, max_weight=bound, round_id=gen.bytes(32))

    identities = {c: gen.bytes(32) for c in ids}
    registry = {c: ed25519_public_bytes(ed25519_from_seed(k)) for c, k in identities.items()}
    setups = {c: ClientSetup(identities[c], gen.bytes(32), vectors[c], ws[c]) for c in ids}
    clock = ManualClock()
    server = SecAggServer(params, registry, clock=clock)
    host = hosts() if hosts is not None else LocalClients()
    try:
        host.open(setups, registry)
        agg, run = _drive(host, server, clock, params, ids, plan)
    finally:
        host.close()
    clipped = sum(int(np.count_nonzero(np.abs(vectors[c]) > params.clip)) for c in agg.survivors)
    return SecAggResult(
        total=agg.total,
        weight_total=agg.weight_total,
        survivors=agg.survivors,
        params=params,
        dropped=agg.dropped,
        clipped_values=clipped,
        client_cpu_seconds=run.cpu,
        server_cpu_seconds=sum(run.server_stage.values()),
        client_stage_cpu_seconds=run.stage_cpu,
        server_stage_cpu_seconds=run.server_stage,
        bytes_up=run.up,
        bytes_down=run.down,
    )


@dataclass
class _Costs:
    """What a round cost: CPU per client and stage, the server's per stage, bytes."""

    cpu: dict[int, float]
    up: dict[int, int]
    down: dict[int, int]
    stage_cpu: dict[str, dict[int, float]] = field(
        default_factory=lambda: {s.value: {} for s in ACTIVE_STAGES}
    )
    server_stage: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_STAGE_NAMES, 0.0))


def _drive(
    host: ClientHost,
    server: SecAggServer,
    clock: ManualClock,
    params: RoundParams,
    ids: tuple[int, ...],
    plan: DropoutPlan,
) -> tuple[Any, _Costs]:
    """The server's side of the round: each stage's messages out, the replies in."""
    run = _Costs(dict.fromkeys(ids, 0.0), dict.fromkeys(ids, 0), dict.fromkeys(ids, 0))
    t0 = time.process_time()
    outbox = server.start()
    run.server_stage[Stage.ADVERTISE_KEYS.value] += time.process_time() - t0
    silent: set[int] = set()
    for stage in ACTIVE_STAGES:
        silent |= plan.drops_at(stage)
        # The server sends one message object to many clients (the advertisements, the
        # survivor set): it is serialised once and the host parses it once per process,
        # charging each client the parse, so the driver's cost stays O(n k).
        t0 = time.process_time()
        wire: dict[int, bytes] = {}
        routes: dict[int, int] = {}
        for cid, message in outbox.items():
            key = id(message)
            if key not in wire:
                wire[key] = encode_message(message)
            run.down[cid] += len(wire[key])
            if cid not in silent:
                routes[cid] = key
        spent = time.process_time() - t0
        replies = host.handle(wire, routes)
        silent |= set(routes) - set(replies)  # lost with their worker: dropouts from here
        for cid in routes:
            if cid not in replies:
                continue
            raw_reply, took, error = replies[cid]
            if error is not None or raw_reply is None:
                raise _client_error(cid, error)
            run.stage_cpu[stage.value][cid] = took
            run.cpu[cid] += took
            run.up[cid] += len(raw_reply)
            t0 = time.process_time()
            server.receive(cid, decode_message(raw_reply))  # type: ignore[arg-type]
            spent += time.process_time() - t0
        t0 = time.process_time()
        nxt = server.step()
        if nxt is None:
            clock.advance(params.stage_timeout_s)
            nxt = server.step()
        spent += time.process_time() - t0
        run.server_stage[stage.value] += spent
        assert nxt is not None
        outbox = nxt
    return server.result(), run


def _client_error(cid: int, error: tuple[str, str] | None) -> TutelaError:
    """A remote client's refusal as the Tutela error it raised (as a local client would)."""
    if error is None:
        return ProtocolAbort(f"client {cid} sent no reply")
    return rebuild_error(*error)


def plain_aggregate(
    payloads: Mapping[int, bytes], weights: Mapping[int, float] | None, dim: int
) -> npt.NDArray[np.float64]:
    """The baseline SecAgg+ is measured against: a weighted sum of float32 wire vectors."""
    total = np.zeros(dim, dtype=np.float64)
    for cid, raw in payloads.items():
        vec = np.frombuffer(raw, dtype="<f4")
        if vec.shape[0] != dim:
            raise ValueError("payload has the wrong length")
        w = 1.0 if weights is None else weights[cid]
        if w == 1.0:
            total += vec
        else:
            total += w * vec
    return total


def simulate_random_round(
    clients: int,
    dim: int,
    dropout: float,
    config: SecAggConfig,
    *,
    seed: int | None = None,
) -> dict[str, Any]:
    """One round with random float32 updates in [-1, 1) and random dropouts (for the CLI).

    Returns the round's :meth:`SecAggResult.report` plus ``max_abs_error`` against the plain
    float64 sum of the survivors' updates, ``plain_aggregate_ms`` (CPU time of the plain
    weighted sum of float32 wire vectors), ``client_ms_median``, ``server_ms`` and
    ``bytes_per_client`` (median bytes sent plus received).
    """
    if clients < 3:
        raise ValueError("secure aggregation needs at least 3 clients")
    if dim < 1:
        raise ValueError("dim must be positive")
    data_rng = np.random.default_rng(seed)  # test data only; masks and noise use SecureRandom
    inputs = {i: data_rng.uniform(-1, 1, dim).astype(np.float32) for i in range(clients)}
    gen = SecureRandom(seed) if seed is not None else SecureRandom()
    plan = DropoutPlan.random(range(clients), dropout, rng=gen)
    result = secure_sum(inputs, None, config, dropouts=plan, rng=gen)
    payloads = {i: inputs[i].astype("<f4").tobytes() for i in result.survivors}
    t0 = time.process_time()
    plain = plain_aggregate(payloads, None, dim)
    plain_s = time.process_time() - t0
    report = result.report()
    per_client = [result.bytes_up[i] + result.bytes_down[i] for i in range(clients)]
    report.update(
        max_abs_error=float(np.abs(result.total - plain).max()),
        client_ms_median=report["client_cpu_ms_median"],
        server_ms=report["server_cpu_ms"],
        plain_aggregate_ms=1e3 * plain_s,
        bytes_per_client=int(statistics.median(per_client)),
        bytes_up_per_parameter=statistics.median(result.bytes_up[i] for i in result.survivors)
        / dim,
        dim=dim,
    )
    return report
