"""Tasks pushed to site agents: long polling of ``/v1/site/tasks``.

A site agent asks for its tasks with ``wait`` (seconds) and ``seen`` (the ``version`` of
the last answer it acted on). The coordinator answers at once when the answer holds news
for the agent: a study's status changed, or there are tasks other than those it saw.
Otherwise (nothing changed, or only the tasks the agent has just done are gone) it holds
the request until the site's tasks may have changed or the wait runs out, and then answers
(the same answer again when nothing changed). The agent asks again at once, so a task
reaches it as soon as the coordinator creates it, with no fixed polling interval, and
finishing a task costs no extra request. A request without ``wait`` or ``seen`` (an older
agent) is answered at once, as before. A round-stage submission may carry ``wait`` and
``seen`` too: it is accepted first, then held the same way, and its receipt brings the next
answer (over the bounds it comes back at once, without it).

The wake-up comes from the coordinator's own state changes, never from a timer:

- :func:`watch_store` listens to every write transaction of the store and, once it commits,
  rings the sites whose tasks it may have changed: the participants of a round that opened,
  changed stage or closed; a site invited to a study or whose answer changed; the recipient
  of a coordinator message; every site when a study's status changed.
- Parts that keep state in memory (federated queries) ring :class:`TaskBell` themselves.

A ring only wakes the held requests; each recomputes its site's answer and goes back to
waiting if it did not change, so a ring too many costs one read, never a wrong answer.

Answers read ahead: a thread that has just changed a study (the submission that completed a
stage and opened the next one) reads the answers of every site that change rang in one
transaction and leaves them with the bell (:meth:`TaskBell.remember`); the requests it
woke take them instead of reading again (:meth:`TaskBell.recall`). An answer is kept only
while no ring for its site came after its read began (every ring counts in a per-site
generation, and a ring drops the site's answer), is taken at most once, and for at most
:data:`ANSWER_MAX_AGE_S`; so it is exactly what a read at the time of the taking would
return, as far as the rings tell.

People wait the same way for a study to change status (:class:`StudyWatch`: an operator's
or a deployment's wait for a study to end): the same commits that ring the sites wake the
requests waiting on the study whose status they changed, so a wait for the end of a study
costs one request, not one every fraction of a second.

Security: long polling changes when an answer is sent, not what it holds: a held request is
authenticated (mutual TLS) and authorised before it is held, and it is answered with its
own site's tasks only, computed exactly as a plain poll computes them. Held requests are
bounded per site and in total (:class:`PushLimits`); over a bound the request is refused at
once with the reason (429 for one site holding too many, 503 when the coordinator holds too
many in all), so many held requests cannot exhaust the coordinator.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from tutela.errors import ConfigError, ServiceError
from tutela.server.store import ParticipationRow, RelayRow, RoundRow, Store, StudyRow, UpdateRow

COORDINATOR_SENDER = "coordinator"
"""The relay sender name of the coordinator's own protocol messages."""

ALL_SITES = None
"""Ring every site (a change whose sites are not known at hand)."""

ANSWER_MAX_AGE_S = 1.0
"""The longest an answer read ahead is kept (its tasks' deadlines move with the clock)."""

_MAX_ANSWERS = 4096
"""Answers read ahead kept at most (beyond it they are all dropped: reads are cheap)."""

Generation = tuple[int, int]
"""Rings of every site, then rings of one site: where a read of that site's answer began."""

_PENDING = "tutela.push.sites"
"""Key in ``Session.info`` of the sites a transaction's changes concern."""


class TooManyWaiting(ServiceError):
    """A long poll over a bound on held requests.

    Attributes:
        status: the HTTP status to answer (429: the site holds too many; 503: the
            coordinator holds too many in all).
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PushLimits:
    """Bounds on long polls.

    Attributes:
        max_wait_s: the longest a request is held (a larger ``wait`` is cut to it).
        max_per_site: held requests one site may have at once (an agent holds one; the
            second covers a reconnection while the first has not noticed yet).
        max_total: held requests the coordinator keeps at once, all sites together.
    """

    max_wait_s: float = 30.0
    max_per_site: int = 2
    max_total: int = 1500

    def __post_init__(self) -> None:
        if not 0 < self.max_wait_s <= 300:
            raise ConfigError("max_wait_s must be in (0, 300]")
        if self.max_per_site < 1 or self.max_total < 1:
            raise ConfigError("the bounds on held requests must be positive")


@dataclass(eq=False)
class _Waiter:
    site: str
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def ring(self) -> None:
        self.loop.call_soon_threadsafe(self.event.set)


@dataclass
class _Deferred:
    rung: list[set[str] | None] = field(default_factory=list)
    waiters: list[_Waiter] = field(default_factory=list)


def _wake(waiters: Iterable[_Waiter]) -> None:
    for waiter in waiters:
        with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits any more
            waiter.ring()


class _HeldRequests:
    """Requests held on keys (a site's tasks, a study's status), bounded per holder (429)
    and in all (503); guarded by its owner's lock.

    Args:
        lock: the owner's lock (its wake-ups read :attr:`by_key` under it).
        one: what a holder holds, in the 429 message ("waiting task request(s)").
        many: what the coordinator holds, in the 503 message ("waiting task requests").
    """

    def __init__(self, lock: threading.Lock, one: str, many: str) -> None:
        self._lock = lock
        self._one, self._many = one, many
        self.by_key: dict[str, set[_Waiter]] = {}
        self._by_holder: dict[str, int] = {}
        self.total = 0

    def waiters(self, keys: Iterable[str]) -> list[_Waiter]:
        """The requests held on ``keys`` (call under the lock)."""
        return [w for key in keys for w in self.by_key.get(key, ())]

    @contextlib.contextmanager
    def hold(
        self, key: str, holder: str, label: str, per_holder: int, total: int
    ) -> Iterator[_Waiter]:
        """Hold a request of ``holder`` (``label`` in messages) on ``key``.

        Raises:
            TooManyWaiting: ``holder`` holds ``per_holder`` (429), or all hold ``total``
                (503); nothing was held.
        """
        waiter = _Waiter(key, asyncio.get_running_loop())
        with self._lock:
            held = self._by_holder.get(holder, 0)
            if held >= per_holder:
                raise TooManyWaiting(
                    f"{label} already holds {held} {self._one} "
                    f"(at most {per_holder}); ask again without waiting",
                    429,
                )
            if self.total >= total:
                raise TooManyWaiting(
                    f"the coordinator holds {self.total} {self._many} "
                    f"(at most {total}); retry shortly",
                    503,
                )
            self.by_key.setdefault(key, set()).add(waiter)
            self._by_holder[holder] = held + 1
            self.total += 1
        try:
            yield waiter
        finally:
            with self._lock:
                mine = self.by_key.get(key, set())
                mine.discard(waiter)
                if not mine:
                    self.by_key.pop(key, None)
                left = self._by_holder.get(holder, 1) - 1
                if left:
                    self._by_holder[holder] = left
                else:
                    self._by_holder.pop(holder, None)
                self.total -= 1


class TaskBell:
    """Wakes the long polls of sites whose tasks may have changed (any thread may ring).

    Args:
        limits: bounds on held requests.
    """

    def __init__(self, limits: PushLimits | None = None) -> None:
        self.limits = limits or PushLimits()
        self._lock = threading.Lock()
        self._held = _HeldRequests(self._lock, "waiting task request(s)", "waiting task requests")
        self._rung_all = 0
        self._rung: dict[str, int] = {}
        self._answers: dict[str, tuple[Generation, float, dict[str, Any]]] = {}
        self._local = threading.local()
        self.rings = 0
        """How many times the bell rang (for tests and benchmarks)."""
        self.recalled = 0
        """How many answers read ahead were taken (for tests and benchmarks)."""

    @property
    def held(self) -> int:
        """Requests held now, all sites together."""
        return self._held.total

    def held_by(self, site: str) -> int:
        """Requests ``site`` holds now."""
        with self._lock:
            return len(self._held.by_key.get(site, ()))

    def held_sites(self) -> set[str]:
        """The sites that hold a request now."""
        with self._lock:
            return set(self._held.by_key)

    def ring(self, sites: Iterable[str] | None = ALL_SITES) -> None:
        """Wake the held requests of ``sites`` (every site when None)."""
        rung = None if sites is None else set(sites)
        with self._lock:
            self.rings += 1
            if rung is None:
                self._rung_all += 1
                self._answers.clear()
                waiters = self._held.waiters(list(self._held.by_key))
            else:
                for site in rung:
                    self._rung[site] = self._rung.get(site, 0) + 1
                    self._answers.pop(site, None)
                waiters = self._held.waiters(rung)
        deferred: _Deferred | None = getattr(self._local, "deferred", None)
        if deferred is not None:  # woken when the thread's block ends
            deferred.rung.append(rung)
            deferred.waiters.extend(waiters)
            return
        _wake(waiters)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[list[set[str] | None]]:
        """Rings this thread makes inside the block count at once (generations move, answers
        read ahead are dropped) but wake the held requests only when the block ends, so
        that answers read ahead inside it are ready for them. Yields the rings as they
        happen (each a set of sites, or None for every site)."""
        outer: _Deferred | None = getattr(self._local, "deferred", None)
        mine = _Deferred()
        self._local.deferred = mine
        try:
            yield mine.rung
        finally:
            self._local.deferred = outer
            if outer is not None:
                outer.rung.extend(mine.rung)
                outer.waiters.extend(mine.waiters)
            else:
                _wake(mine.waiters)

    def generation(self, site: str) -> Generation:
        """Where ``site``'s rings stand now (take it before reading the site's answer)."""
        with self._lock:
            return (self._rung_all, self._rung.get(site, 0))

    def remember(self, site: str, generation: Generation, answer: dict[str, Any]) -> None:
        """Keep ``answer``, read from the store after :meth:`generation` gave
        ``generation``, for the next request of ``site`` (unless a ring came since)."""
        with self._lock:
            if generation != (self._rung_all, self._rung.get(site, 0)):
                return
            if len(self._answers) >= _MAX_ANSWERS:
                self._answers.clear()
            self._answers[site] = (generation, time.monotonic(), answer)

    def recall(self, site: str) -> dict[str, Any] | None:
        """Take the answer read ahead for ``site``, if one is kept and still current."""
        with self._lock:
            entry = self._answers.pop(site, None)
            if entry is None:
                return None
            generation, at, answer = entry
            if generation != (self._rung_all, self._rung.get(site, 0)):
                return None
            if time.monotonic() - at > ANSWER_MAX_AGE_S:
                return None
            self.recalled += 1
            return answer

    async def long_poll(
        self,
        site: str,
        compute: Callable[[], Awaitable[dict[str, Any]]],
        *,
        seen: str | None,
        wait: float,
        disconnected: Callable[[], Awaitable[None]] | None = None,
        opening: Callable[[Callable[[], None]], Awaitable[dict[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """``site``'s tasks (with their ``version``) once they are news (:func:`is_news`)
        to an agent that acted on ``seen``, or after
        ``wait`` seconds (at most ``limits.max_wait_s``), or at once without ``seen``.

        ``compute`` reads the site's tasks; ``disconnected`` returns when the caller hung
        up (the request then ends early and frees its place). ``opening``, if given, stands
        in for the first ``compute`` once the request is held: it may first change the
        store (a submission) and then call the function it is given, from any thread,
        before it reads, so that the rings of its own change are not taken for news.

        Raises:
            TooManyWaiting: over a bound on held requests (nothing was held, and
                ``opening`` did not run).
        """
        if seen is None or wait <= 0:
            return versioned(await compute())
        loop = asyncio.get_running_loop()
        give_up = loop.time() + min(wait, self.limits.max_wait_s)
        limits = self.limits
        with self._held.hold(
            site, site, f"site {site}", limits.max_per_site, limits.max_total
        ) as waiter:

            def clear() -> None:  # scheduled after the rings already scheduled
                loop.call_soon_threadsafe(waiter.event.clear)

            async def answer() -> dict[str, Any]:
                nonlocal opening
                if opening is None:
                    return versioned(await compute())
                first, opening = opening, None
                result = versioned(await first(clear))
                await asyncio.sleep(0)  # let the scheduled clear run before waiting
                return result

            return await _held(waiter, answer, lambda a: is_news(a, seen), give_up, disconnected)


MAX_STUDY_WAITS_PER_CALLER = 8
"""Waits on studies one person (or token) may hold at once."""


class StudyWatch:
    """Wakes the requests waiting for a study's status to change (any thread may call
    :meth:`changed`; :func:`watch_store` does on every commit that changed a status).

    Args:
        limits: bounds on held requests (``max_wait_s``; ``max_total`` bounds these waits
            apart from the sites' task requests).
    """

    def __init__(self, limits: PushLimits | None = None) -> None:
        self.limits = limits or PushLimits()
        self._lock = threading.Lock()
        self._held = _HeldRequests(self._lock, "waits on studies", "waits on studies")

    @property
    def held(self) -> int:
        """Waits held now, all studies together."""
        return self._held.total

    def changed(self, study_ids: Iterable[str]) -> None:
        """Wake the requests waiting on ``study_ids``."""
        with self._lock:
            waiters = self._held.waiters(set(study_ids))
        _wake(waiters)

    async def wait(
        self,
        study_id: str,
        read: Callable[[], Awaitable[dict[str, Any]]],
        *,
        caller: str,
        seen: str | None,
        wait: float,
        disconnected: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """The study's answer from ``read`` (a mapping with its ``status``) once its status
        is not ``seen``, or after ``wait`` seconds (at most ``limits.max_wait_s``), or at
        once without ``seen``; ``disconnected`` returns when the caller hung up.

        Raises:
            TooManyWaiting: over a bound on held waits (nothing was held): 429 when
                ``caller`` holds :data:`MAX_STUDY_WAITS_PER_CALLER`, 503 when the
                coordinator holds ``limits.max_total``.
        """
        if seen is None or wait <= 0:
            return await read()
        loop = asyncio.get_running_loop()
        give_up = loop.time() + min(wait, self.limits.max_wait_s)
        bound = MAX_STUDY_WAITS_PER_CALLER
        with self._held.hold(study_id, caller, caller, bound, self.limits.max_total) as waiter:
            return await _held(
                waiter, read, lambda a: a.get("status") != seen, give_up, disconnected
            )


async def _held(
    waiter: _Waiter,
    read: Callable[[], Awaitable[dict[str, Any]]],
    news: Callable[[dict[str, Any]], bool],
    give_up: float,
    disconnected: Callable[[], Awaitable[None]] | None,
) -> dict[str, Any]:
    """Read until an answer is ``news``, waiting for ``waiter`` to be rung in between; at
    ``give_up`` (the loop's time), when the caller hung up or when the server stops, the
    last answer."""
    loop = asyncio.get_running_loop()
    gone = asyncio.ensure_future(disconnected()) if disconnected is not None else None
    try:
        while True:
            waiter.event.clear()  # before reading: a ring after this point is never lost
            answer = await read()
            left = give_up - loop.time()
            if news(answer) or left <= 0:
                return answer
            rung = asyncio.ensure_future(waiter.event.wait())
            pending = {rung, gone} if gone is not None else {rung}
            try:
                done, _ = await asyncio.wait(
                    pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
            except asyncio.CancelledError:
                # A stopping server cancels what it still serves: answer what is known, so
                # the caller asks again (and reconnects to whichever coordinator serves
                # next) instead of reading a server error.
                rung.cancel()
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                return answer
            if not rung.done():
                rung.cancel()
            if gone is not None and gone in done:
                return answer  # nobody reads it; the place is freed
    finally:
        if gone is not None and not gone.done():
            gone.cancel()


CARRIED = ("model", "message")
"""Task fields that carry a payload the rest of the task determines (the global model of the
task's study and ``model_version``; the coordinator's message for its study, round, attempt,
stage and site): left out of the version's digest, which they would only make slower."""


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def versioned(answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` with its ``version``: a digest of everything but its tasks, then a digest of
    its tasks without their :data:`CARRIED` payloads (16 hex digits each)."""
    body = {k: v for k, v in answer.items() if k != "version"}
    rest = {k: v for k, v in body.items() if k != "tasks"}
    tasks = [
        {k: v for k, v in task.items() if k not in CARRIED} if isinstance(task, dict) else task
        for task in body.get("tasks", [])
    ]
    return {**body, "version": _digest(rest) + _digest(tasks)}


def is_news(answer: dict[str, Any], seen: str) -> bool:
    """Whether a :func:`versioned` ``answer`` tells an agent that acted on version ``seen``
    anything new: something besides the tasks changed, or it has tasks other than those."""
    version = str(answer["version"])
    if version[:16] != seen[:16]:
        return True
    return bool(answer.get("tasks")) and version[16:] != seen[16:]


# ---- the store's changes ------------------------------------------------------------------


def _changed(obj: object, *names: str) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in names)


def _sites_of(session: Session) -> set[str] | None:
    """The sites whose tasks this flush may have changed (None: every site)."""
    sites: set[str] = set()
    for obj in [*session.new, *session.dirty]:
        if isinstance(obj, RoundRow):
            if obj in session.new or _changed(
                obj, "stage", "status", "attempt", "stage_deadline", "protocol_state"
            ):
                sites.update(json.loads(obj.participants_json or "[]"))
        elif isinstance(obj, StudyRow):
            if obj not in session.new and _changed(obj, "status", "prep_json"):
                return None
        elif isinstance(obj, ParticipationRow):
            if obj in session.new or _changed(obj, "status"):
                sites.add(obj.site)
        elif isinstance(obj, RelayRow):
            if obj in session.new and obj.sender == COORDINATOR_SENDER:
                sites.add(obj.recipient)
        elif isinstance(obj, UpdateRow) and obj in session.new:
            sites.add(obj.site)
    return sites


def _status_changes(session: Session) -> set[str]:
    """The studies whose status this flush changed."""
    return {
        obj.id for obj in session.dirty if isinstance(obj, StudyRow) and _changed(obj, "status")
    }


def watch_store(store: Store, bell: TaskBell, studies: StudyWatch | None = None) -> None:
    """Ring ``bell`` for the sites each committed write transaction of ``store`` concerns,
    and tell ``studies`` which studies' status it changed."""
    factory = store.write_sessions
    key = f"{_PENDING}.{id(bell)}"  # one entry per bell: several may watch one store
    study_key = f"{key}.studies"

    def after_flush(session: Session, _context: object) -> None:
        if studies is not None:
            changed = _status_changes(session)
            if changed:
                session.info[study_key] = session.info.get(study_key, set()) | changed
        pending = session.info.get(key, set())
        if pending is ALL_SITES:
            return
        found = _sites_of(session)
        session.info[key] = ALL_SITES if found is None else pending | found

    def after_commit(session: Session) -> None:
        changed = session.info.pop(study_key, None)
        if key in session.info:
            sites = session.info.pop(key)
            if sites is ALL_SITES or sites:
                bell.ring(sites)
        if changed and studies is not None:
            studies.changed(changed)

    def after_rollback(session: Session) -> None:
        session.info.pop(key, None)
        session.info.pop(study_key, None)

    event.listen(factory, "after_flush", after_flush)
    event.listen(factory, "after_commit", after_commit)
    event.listen(factory, "after_soft_rollback", lambda s, _prev: after_rollback(s))


async def disconnect_of(receive: Callable[[], Awaitable[MutableMapping[str, Any]]]) -> None:
    """Return once the ASGI client hung up (for a request whose body was read)."""
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return
