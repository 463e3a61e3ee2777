"""Serving concurrent calls together: whoever gets the lock serves everyone queued.

A call queues its item and takes the lock; if the item was not served while it waited, it
serves the whole queue, its own item included, in one go, and every waiting caller gets its
own outcome. Nobody waits longer than one batch behind the call that arrived before it,
and a batch starts after every item in it was queued, so an answer reflects every change
committed before its call. The coordinator uses this for round submissions (one
transaction for a group, see :meth:`tutela.server.inbox.Inbox.submit`), for the task
reads of held requests woken together (:meth:`tutela.server.participation.Participation.tasks_for`)
and for the site certificates it looks up together
(:meth:`tutela.server.identity.Identity.principal_for_site`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from tutela.errors import ServiceError

T = TypeVar("T")
R = TypeVar("R")


class Slot(Generic[T, R]):
    """One queued call: its item, then its result or its error."""

    __slots__ = ("error", "item", "result", "served")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: R | None = None
        self.error: BaseException | None = None
        self.served = False

    def resolve(self, result: R) -> None:
        """Answer the call with ``result``."""
        self.result, self.error, self.served = result, None, True

    def fail(self, error: BaseException) -> None:
        """Answer the call by raising ``error`` (also after a result, which it replaces)."""
        self.result, self.error, self.served = None, error, True


class Batcher(Generic[T, R]):
    """Calls that arrive while one is served are served together by the next one.

    Args:
        serve: answers every slot of a batch (``resolve`` or ``fail``); a slot it leaves
            unanswered, or every unanswered slot when it raises, fails with the error.
        lock: held while a batch is served (default: a lock of its own); pass a lock other
            work also takes to serve batches under it.
    """

    def __init__(
        self,
        serve: Callable[[list[Slot[T, R]]], None],
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self._serve = serve
        self._lock = lock if lock is not None else threading.Lock()
        self._queue: list[Slot[T, R]] = []
        self._queue_lock = threading.Lock()

    def exclusive(self) -> AbstractContextManager[Any]:
        """The lock batches are served under: work that holds it runs between batches."""
        return self._lock

    @property
    def queued(self) -> int:
        """Calls waiting to be served now."""
        return len(self._queue)

    def __call__(self, item: T) -> R:
        """Serve ``item`` (with whatever else is queued) and return its result."""
        slot: Slot[T, R] = Slot(item)
        with self._queue_lock:
            self._queue.append(slot)
        with self._lock:
            if not slot.served:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                failure: BaseException = ServiceError("the call was not answered; try again")
                try:
                    self._serve(batch)
                except Exception as exc:
                    failure = exc
                finally:
                    for other in batch:
                        if not other.served:
                            other.fail(failure)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]  # R itself may be optional
