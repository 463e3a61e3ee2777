"""The Ray simulation backend: a study's sites train on a Ray cluster, the rounds stay here.

:class:`RayBackend` places a study's :class:`~tutela.fl.client.LocalSite` objects on a local
Ray instance, or on an existing cluster by address, and hands the round engine one
:class:`RaySite` per site. This process keeps driving the same
:class:`~tutela.fl.engine.RoundEngine` and round state machine (sampling, quorum, failures,
the aggregator: plain, DP-FedAvg, SecAgg+), so a study run on Ray gives the same result as
in process: bit-identical parameters for the same seed.

How the work is laid out:

- Each site's rows, labels, model builder, training settings and policy are put in the
  object store once (:meth:`RayBackend.place`); each round's global parameters are put once
  and referenced by every task of the round.
- Sites are stateless tasks: a pool of actors, one per CPU of the cluster, runs fits in
  chunks of sites. What a site carries from one round to the next (the state of its
  data-order generator) comes back from the task as its own object and stays in the
  object store, referenced by the next task for that site.
- The pool keeps at most ``in_flight`` chunks per actor, so the driver holds a bounded
  number of pending results beyond the round's accepted updates (which the round state
  machine holds in every runtime).
- A worker that dies mid-task (a killed actor, a lost node) fails the sites of its chunk
  with :class:`~tutela.errors.TransportError`: the round closes under its quorum as with
  any dropout, and a fresh actor takes the dead one's place for the next chunks.

Security: the driver and its Ray workers are one party (the simulator's own machines); Ray
moves arrays and the site specs between them with its own serialisation. Nothing here
crosses a trust boundary or is stored: a deployment's sites run the site agent instead.

SecAgg+ among the sampled devices: the aggregator's server state machine stays in this
process, and the devices' client state machines (key agreements, shares, masks, their
distributed-DP noise) run on the pool's actors, a contiguous share of the round's devices
per actor (:meth:`RayBackend.client_hosts`, bound by ``run_study``). Each stage's messages
go out as bytes, a message sent to many devices once per actor; the replies come back as
bytes. A worker that dies mid-round loses its devices, which the round treats as dropouts.

Sample-level DP (DP-SGD at the sites): the ledgers and the accountant stay in this process.
Before a private site's round is dispatched, this process runs the site's own round preamble
and privatize hook (:class:`~tutela.fl.privacy.sample.SiteHook`), which refuses a round beyond
the site's policy, plan or budget and otherwise charges the site's ledger for exactly the
steps it will run, as in process; the worker then trains with DP-SGD at the noise multiplier
planned here (:class:`~tutela.fl.privacy.sample.DPSGDTraining`, which holds no ledger and
refuses more epochs or steps than were planned). A refused round is never dispatched, so the
epsilon reported on Ray is the one reported in process. Privatize hooks of other kinds cannot
be split this way and are refused by :meth:`RayBackend.place`.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from tutela.errors import ConfigError, TransportError, TutelaError, rebuild_error
from tutela.fl.client import LocalSite, LocalTraining, ModelFactory
from tutela.fl.privacy.sample import DPSGDTraining, SiteHook
from tutela.fl.records import ConfigRecord, EvaluateIns, EvaluateRes, FitIns, FitRes, Parameters
from tutela.fl.task import Task
from tutela.governance.minimisation import SitePolicy
from tutela.secagg.simulate import ClientHost, ClientSetup, HostReply, LocalClients

__all__ = ["RayBackend", "RaySite"]

MAX_CHUNK = 32
"""Sites per task at most (a dead worker fails at most ``in_flight`` chunks)."""


def _ray() -> Any:
    """The ``ray`` module, or a clear error when the extra is missing."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "the Ray backend needs Ray: pip install 'tutela[ray]' (ray>=2.55,<2.61)"
        ) from exc
    return ray


@dataclass(frozen=True)
class _SiteSpec:
    """What a worker needs to rebuild a site: its rows, model, settings and policy."""

    site_id: str
    features: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    model_factory: ModelFactory
    training: LocalTraining
    policy: SitePolicy | None
    task: Task
    data_order: npt.NDArray[np.uint8]
    training_dp: DPSGDTraining | None = None

    @classmethod
    def of(cls, site: LocalSite) -> _SiteSpec:
        hook = site._privatize
        if hook is not None and not isinstance(hook, SiteHook):
            raise ConfigError(
                f"site {site.site_id} trains with a privatize hook whose charging cannot be "
                "kept in this process while a worker trains: use SampleLevelDP's hooks, run "
                "in process, or use client-level DP (privacy.mode = 'client') on Ray"
            )
        return cls(
            site.site_id,
            site._x,
            np.asarray(site._y).astype(np.int64),
            site._model_factory,
            site._training,
            site._policy,
            site.task,
            site._generator.get_state().numpy().copy(),
            hook.plan.training(hook.site) if hook is not None else None,
        )

    def site(self, state: npt.NDArray[np.uint8] | None) -> LocalSite:
        """The site as it stands after its last round (``state``: its data order)."""
        site = LocalSite(
            self.site_id, self.features, self.labels, self.model_factory, self.training,
            policy=self.policy, task=self.task, privatize=self.training_dp,
        )  # fmt: skip
        order = self.data_order if state is None else state
        site._generator.set_state(torch.from_numpy(np.array(order, np.uint8)))
        return site


def _error_outcome(exc: TutelaError) -> tuple[str, str]:
    return type(exc).__name__, str(exc)


class _FitWorker:
    """One actor of the pool: runs chunks of site fits, keeping nothing between them, and
    its share of a SecAgg+ round's simulated clients, kept until the round closes."""

    def __init__(self) -> None:
        torch.set_num_threads(1)
        self._secagg: dict[bytes, LocalClients] = {}

    def node(self) -> str:
        return str(_ray().get_runtime_context().get_node_id())

    def fit(
        self, parameters: Parameters, config: ConfigRecord, count: int, *refs: Any
    ) -> tuple[Any, ...]:
        specs: tuple[_SiteSpec, ...] = refs[:count]
        states = refs[count:]
        ins = FitIns({k: np.array(v, np.float32) for k, v in parameters.items()}, config)
        results: list[Any] = []
        orders: list[npt.NDArray[np.uint8]] = []
        for spec, state in zip(specs, states, strict=True):
            site = spec.site(state)
            try:
                res = site.fit(ins)
                results.append((res.parameters, res.num_examples, dict(res.metrics), None))
            except TutelaError as exc:
                results.append((None, 0, {}, _error_outcome(exc)))
            orders.append(site._generator.get_state().numpy().copy())
        return (results, *orders)

    def evaluate(
        self, spec: _SiteSpec, state: npt.NDArray[np.uint8] | None, parameters: Parameters
    ) -> tuple[float, int, dict[str, float]]:
        res = spec.site(state).evaluate(EvaluateIns(dict(parameters), {}))
        return res.loss, res.num_examples, dict(res.metrics)

    def secagg_open(
        self, round_key: bytes, setups: dict[int, ClientSetup], registry: dict[int, bytes]
    ) -> None:
        """Start this worker's share of a SecAgg+ round's simulated clients."""
        clients = LocalClients(clock=time.thread_time)
        clients.open(setups, registry)
        self._secagg[round_key] = clients

    def secagg_handle(
        self, round_key: bytes, messages: dict[int, bytes], routes: dict[int, int]
    ) -> dict[int, HostReply]:
        """This worker's clients' replies to one stage (a refusal comes back as its error)."""
        return self._secagg[round_key].handle(messages, routes, refusals=True)

    def secagg_close(self, round_key: bytes) -> None:
        self._secagg.pop(round_key, None)


@dataclass
class _Job:
    site_id: str
    ins: FitIns
    outcome: FitRes | TutelaError | None = None


@dataclass
class _Chunk:
    jobs: list[_Job]
    actor: Any = None
    slot: int = -1
    refs: list[Any] = field(default_factory=list)


class _Pool:
    """Actors sized to the cluster, fed chunks of sites, replaced when they die."""

    def __init__(self, ray: Any, size: int, in_flight: int, chunk_size: int | None) -> None:
        self._ray = ray
        self._remote = ray.remote(num_cpus=1, max_restarts=0)(_FitWorker)
        self.actors = [self._spawn() for _ in range(size)]
        self._load = [0] * size
        self._in_flight = in_flight
        self._chunk_size = chunk_size
        self.specs: dict[str, Any] = {}
        self.states: dict[str, Any] = {}
        self._queued: list[_Job] = []
        self._ready: deque[_Chunk] = deque()
        self._running: dict[Any, _Chunk] = {}
        self._round: tuple[FitIns, Any] | None = None
        self.replaced = 0

    def _spawn(self) -> Any:
        return self._remote.options(scheduling_strategy="SPREAD").remote()

    def nodes(self) -> set[str]:
        return set(self._ray.get([a.node.remote() for a in self.actors]))

    def submit(self, site_id: str, ins: FitIns) -> Callable[[], FitRes]:
        job = _Job(site_id, ins)
        self._queued.append(job)
        return lambda: self._wait(job)

    def _parameters_ref(self, ins: FitIns) -> Any:
        if self._round is None or self._round[0] is not ins:  # put once per round
            self._round = (ins, self._ray.put(dict(ins.parameters)))
        return self._round[1]

    def _chunk_queued(self) -> None:
        jobs, self._queued = self._queued, []
        size = self._chunk_size or min(
            MAX_CHUNK, max(1, math.ceil(len(jobs) / (4 * len(self.actors))))
        )
        for i in range(0, len(jobs), size):
            self._ready.append(_Chunk(jobs[i : i + size]))

    def _dispatch(self) -> None:
        while self._ready:
            slot = min(range(len(self.actors)), key=self._load.__getitem__)
            if self._load[slot] >= self._in_flight:
                return
            chunk = self._ready.popleft()
            ins = chunk.jobs[0].ins
            n = len(chunk.jobs)
            args = [self.specs[j.site_id] for j in chunk.jobs]
            args += [self.states.get(j.site_id) for j in chunk.jobs]
            chunk.actor, chunk.slot = self.actors[slot], slot
            chunk.refs = list(
                chunk.actor.fit.options(num_returns=1 + n).remote(
                    self._parameters_ref(ins), dict(ins.config), n, *args
                )
            )
            self._load[slot] += 1
            self._running[chunk.refs[0]] = chunk

    def _wait(self, job: _Job) -> FitRes:
        if any(j is job for j in self._queued):
            self._chunk_queued()
        while job.outcome is None:
            self._dispatch()
            if not self._running:  # pragma: no cover - a queued job is always dispatched
                raise TransportError(f"{job.site_id}: its fit was never dispatched")
            done, _ = self._ray.wait(list(self._running), num_returns=1)
            self._collect(self._running.pop(done[0]))
        if isinstance(job.outcome, TutelaError):
            raise job.outcome
        return job.outcome

    def _collect(self, chunk: _Chunk) -> None:
        ray = self._ray
        alive = self.actors[chunk.slot] is chunk.actor
        if alive:
            self._load[chunk.slot] -= 1
        try:
            results = ray.get(chunk.refs[0])
        except ray.exceptions.RayTaskError:
            raise  # the site's code failed with a non-Tutela error: as in process
        except ray.exceptions.RayError as exc:  # the worker or its node died mid-task
            for job in chunk.jobs:
                job.outcome = TransportError(
                    f"{job.site_id}: its Ray worker stopped mid-task ({type(exc).__name__})"
                )
            if alive:
                self.replace(chunk.slot)
            return
        for i, (job, (params, count, metrics, error)) in enumerate(
            zip(chunk.jobs, results, strict=True)
        ):
            self.states[job.site_id] = chunk.refs[1 + i]
            job.outcome = (
                rebuild_error(*error) if error is not None else FitRes(params, count, metrics)
            )

    def replace(self, slot: int) -> None:
        """A fresh actor in place of the dead one at ``slot``."""
        self.actors[slot] = self._spawn()
        self._load[slot] = 0
        self.replaced += 1

    def evaluate(self, site_id: str, ins: EvaluateIns) -> EvaluateRes:
        ref = self.actors[0].evaluate.remote(
            self.specs[site_id], self.states.get(site_id), dict(ins.parameters)
        )
        loss, count, metrics = self._ray.get(ref)
        return EvaluateRes(loss, count, metrics)

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors.clear()
        self.specs.clear()
        self.states.clear()
        self._round = None


class _RayClients:
    """A SecAgg+ round's simulated clients spread over the pool's actors (a
    :class:`~tutela.secagg.simulate.ClientHost`): each actor runs its share's state machines
    in its own process, all actors at once, while the server stays with the driver.

    A worker that dies mid-round loses its clients: they are missing from the stage's
    replies, so the round treats them as dropouts and closes under its quorum (or stops
    with :class:`~tutela.errors.QuorumNotMet`), and a fresh actor takes the dead one's place.
    """

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._key = os.urandom(16)
        self._parts: list[tuple[int, Any, list[int]]] = []

    def _gather(self, calls: list[tuple[int, Any, Any]]) -> list[Any]:
        """Each live share's answer; a share whose actor died is dropped (and replaced)."""
        ray = self._pool._ray
        answers: list[Any] = []
        for slot, actor, ref in calls:
            try:
                answers.append(ray.get(ref))
            except ray.exceptions.RayTaskError:
                raise  # the clients' code failed with a non-Tutela error: as in process
            except ray.exceptions.RayError:
                self._parts = [p for p in self._parts if p[1] is not actor]
                if self._pool.actors[slot] is actor:
                    self._pool.replace(slot)
        return answers

    def open(self, setups: Mapping[int, ClientSetup], registry: Mapping[int, bytes]) -> None:
        ray = self._pool._ray
        ids = sorted(setups)
        share = math.ceil(len(ids) / len(self._pool.actors))
        self._parts = [
            (slot, actor, ids[slot * share : (slot + 1) * share])
            for slot, actor in enumerate(self._pool.actors)
            if ids[slot * share : (slot + 1) * share]
        ]
        keys = ray.put(dict(registry))
        self._gather([
            (slot, actor,
             actor.secagg_open.remote(self._key, {c: setups[c] for c in part}, keys))
            for slot, actor, part in self._parts
        ])  # fmt: skip

    def handle(
        self, messages: Mapping[int, bytes], routes: Mapping[int, int]
    ) -> dict[int, HostReply]:
        calls = []
        for slot, actor, part in self._parts:
            mine = {c: routes[c] for c in part if c in routes}
            if mine:
                wanted = {k: messages[k] for k in set(mine.values())}
                calls.append((slot, actor, actor.secagg_handle.remote(self._key, wanted, mine)))
        out: dict[int, HostReply] = {}
        for replies in self._gather(calls):
            out.update(replies)
        return out

    def close(self) -> None:
        for _slot, actor, _part in self._parts:
            actor.secagg_close.remote(self._key)
        self._parts = []


class RaySite:
    """A site that trains on the Ray pool (a :class:`~tutela.fl.engine.DeferredFit`).

    ``charge``: for a site with sample-level DP, the site as held in this process, whose
    round preamble and hook charge its ledger here before the round is dispatched.
    """

    def __init__(self, site_id: str, pool: _Pool, charge: LocalSite | None = None) -> None:
        self.site_id = site_id
        self._pool = pool
        self._charge = charge

    def start_fit(self, ins: FitIns) -> Callable[[], FitRes]:
        """Charge (a private site) and dispatch the round.

        Raises:
            PolicyViolation, BudgetExceeded: the round is refused here, as in process;
                nothing was charged or dispatched.
        """
        if self._charge is not None:
            self._charge._start(ins)  # charges the ledger (or refuses); the drop-ins are unused
        return self._pool.submit(self.site_id, ins)

    def fit(self, ins: FitIns) -> FitRes:
        return self.start_fit(ins)()

    def evaluate(self, ins: EvaluateIns) -> EvaluateRes:
        return self._pool.evaluate(self.site_id, ins)


@dataclass
class RayBackend:
    """Run a study's sites on Ray: ``run_study(config, backend=RayBackend())``.

    Args:
        address: an existing cluster (``"ray://host:10001"``, ``"host:6379"`` or
            ``"auto"``); ``None`` starts a local instance (or uses the one this process
            already started).
        num_cpus: CPUs of the local instance (default: all); ignored with ``address``.
        workers: actors in the pool (default: the cluster's CPUs).
        in_flight: chunks queued per actor at most.
        chunk_size: sites per task (default: the round's sites over four tasks per actor,
            at most :data:`MAX_CHUNK`).
    """

    address: str | None = None
    num_cpus: int | None = None
    workers: int | None = None
    in_flight: int = 2
    chunk_size: int | None = None
    _pool: _Pool | None = field(default=None, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)
    _replaced: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("num_cpus", "workers", "chunk_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"RayBackend.{name} must be at least 1")
        if self.in_flight < 1:
            raise ConfigError("RayBackend.in_flight must be at least 1")

    def _connect(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            try:
                if self.address is None:
                    ray.init(num_cpus=self.num_cpus, include_dashboard=False)
                else:
                    ray.init(address=self.address, include_dashboard=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or "a local instance"
                raise ConfigError(f"cannot start or reach Ray ({where}): {exc}") from exc
            self._started = True
        return ray

    def place(self, sites: Mapping[str, LocalSite]) -> dict[str, RaySite]:
        """Put each site's data in the object store and return the sites the engine drives.

        Raises:
            ConfigError: Ray is not installed or not reachable, or a site's privatize hook
                is not one of :class:`~tutela.fl.privacy.SampleLevelDP`'s.
        """
        specs = {name: _SiteSpec.of(site) for name, site in sites.items()}
        self.release_pool()
        pool = self._start_pool()
        pool.specs = {name: pool._ray.put(spec) for name, spec in specs.items()}
        return {
            name: RaySite(name, pool, site if site._privatize is not None else None)
            for name, site in sites.items()
        }

    def _start_pool(self) -> _Pool:
        ray = self._connect()
        size = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._pool = _Pool(ray, size, self.in_flight, self.chunk_size)
        return self._pool

    def client_hosts(self) -> ClientHost:
        """A host for one SecAgg+ round's simulated clients on the pool's actors (pass the
        method itself: ``secure_sum(..., hosts=backend.client_hosts)``); starts the pool
        if no study placed its sites yet.

        Raises:
            ConfigError: Ray is not installed or not reachable.
        """
        return _RayClients(self._pool if self._pool is not None else self._start_pool())

    @property
    def nodes(self) -> set[str]:
        """The Ray nodes the pool's actors run on."""
        if self._pool is None:
            return set()
        return self._pool.nodes()

    @property
    def actors(self) -> list[Any]:
        """The pool's actor handles (tests kill one to play a device that dies)."""
        return list(self._pool.actors) if self._pool is not None else []

    @property
    def busy_actors(self) -> list[Any]:
        """Actors with a chunk of sites running or queued right now."""
        if self._pool is None:
            return []
        return [c.actor for c in list(self._pool._running.values())]

    @property
    def replaced_workers(self) -> int:
        """Actors that died and were replaced (during this backend's runs)."""
        return self._replaced + (self._pool.replaced if self._pool is not None else 0)

    def release_pool(self) -> None:
        if self._pool is not None:
            self._replaced += self._pool.replaced
            self._pool.close()
            self._pool = None

    def release(self) -> None:
        """Stop the pool's actors; shut Ray down if this backend started it."""
        self.release_pool()
        if self._started:
            _ray().shutdown()
            self._started = False
