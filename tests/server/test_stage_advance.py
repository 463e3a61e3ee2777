"""A stage moves on with the submission that completes it, and the answers it changes are
read once for every waiting site.

The service's coordinator (``advance_on_submit``) closes a stage in the call of the last
submission it waited for, instead of waking its ticker; the receipt says when that did not
happen (``driver_due``), so the ticker still moves the study if the advance failed. The
answers the move changed are read in one transaction and left with the bell for the woken
requests; an answer read ahead is served only while no later ring for its site came, at
most once, and for at most ``ANSWER_MAX_AGE_S``. The tests play the cases that would make a
kept answer wrong: a ring between the read and the taking, a ring of every site, a read
that began before a ring, an old answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.server.test_bounds_update_norm import HONEST, LIAR, _body, _running, _scaled
from tests.server.test_round_requests import _config
from tests.server.test_store import Clock
from tutela.server import push, serve
from tutela.server.coordinator import Coordinator
from tutela.server.deploy import run_study_over_network
from tutela.server.push import TaskBell
from tutela.server.sealing import open_sealer
from tutela.server.store import Store

ANSWER = {"tasks": [{"kind": "fit", "round": 1}], "studies": {"s": "running"}}


def test_an_answer_read_ahead_is_taken_once_and_only_while_no_ring_came() -> None:
    bell = TaskBell()
    g = bell.generation("a")
    bell.remember("a", g, ANSWER)
    assert bell.recall("a") == ANSWER
    assert bell.recall("a") is None  # taken once

    bell.remember("a", bell.generation("a"), ANSWER)
    bell.ring(["b"])  # another site's ring leaves it
    assert bell.recall("a") == ANSWER

    bell.remember("a", bell.generation("a"), ANSWER)
    bell.ring(["a"])  # its own site's ring drops it
    assert bell.recall("a") is None

    bell.remember("a", bell.generation("a"), ANSWER)
    bell.ring()  # a ring of every site drops it
    assert bell.recall("a") is None

    started = bell.generation("a")  # a read began here ...
    bell.ring(["a"])  # ... and a change rang before it was kept: the read may have missed it
    bell.remember("a", started, ANSWER)
    assert bell.recall("a") is None
    started = bell.generation("a")
    bell.ring()
    bell.remember("a", started, ANSWER)
    assert bell.recall("a") is None
    assert bell.recalled == 2


def test_an_old_answer_read_ahead_is_not_served(monkeypatch: pytest.MonkeyPatch) -> None:
    bell = TaskBell()
    bell.remember("a", bell.generation("a"), ANSWER)
    monkeypatch.setattr(push, "ANSWER_MAX_AGE_S", 0.0)
    time.sleep(0.01)
    assert bell.recall("a") is None


def test_rings_inside_a_deferred_block_count_at_once_and_wake_at_its_end() -> None:
    bell = TaskBell()
    answers = iter([{"tasks": [], "studies": {}}, {"tasks": [{"kind": "fit"}], "studies": {}}])
    first = push.versioned({"tasks": [{"kind": "fit"}], "studies": {}})  # what the site saw

    async def compute() -> dict[str, Any]:
        return next(answers)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        # the first answer is no news (its first half matches what the site saw)
        seen = first["version"][:16] + "0" * 16
        held = asyncio.run_coroutine_threadsafe(
            bell.long_poll("a", compute, seen=seen, wait=10), loop
        )
        deadline = time.monotonic() + 5
        while bell.held_by("a") == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.05)  # the first (not news) answer was read; the request waits
        with bell.deferred() as rung:
            before = bell.generation("a")
            bell.ring(["a"])
            assert bell.generation("a") != before  # counted at once
            assert rung == [{"a"}]
            time.sleep(0.2)
            assert not held.done()  # but nobody woken yet
        assert held.result(timeout=5)["tasks"] == [{"kind": "fit"}]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


def _coordinator(tmp_path: Path, clock: Clock) -> Coordinator:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}", open_sealer(tmp_path / "keyring"))
    return Coordinator(store, clock=clock, advance_on_submit=True)


def test_the_submission_completing_a_stage_moves_the_study(tmp_path: Path) -> None:
    clock = Clock()
    co = _coordinator(tmp_path, clock)
    study = _running(co, clock, liar_rows=100)
    receipts = [
        co.submit(site, study, 1, "fit", f"k-{site}", _body(study, _scaled(0.1), 100))
        for site in (*HONEST, LIAR)
    ]
    # nothing is due for the driver: the first two did not complete the stage, the third
    # closed the round (the last of the study) in its own call
    assert [r.driver_due for r in receipts] == [False, False, False]
    status = co.study_status(study)
    assert status["rounds"][-1]["status"] == "aggregated"
    assert status["status"] == "completed"
    assert not co.tick()


def test_a_failed_advance_leaves_the_stage_to_the_ticker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    co = _coordinator(tmp_path, clock)
    study = _running(co, clock, liar_rows=100)

    def broken(_study: str, most: int = 8) -> int:
        raise RuntimeError("the store went away")

    monkeypatch.setattr(co.driver, "advance_study", broken)
    receipts = [
        co.submit(site, study, 1, "fit", f"k-{site}", _body(study, _scaled(0.1), 100))
        for site in (*HONEST, LIAR)
    ]
    assert [r.driver_due for r in receipts] == [False, False, True]  # accepted, still due
    assert co.study_status(study)["rounds"][-1]["status"] == "open"
    monkeypatch.undo()
    assert co.tick()  # the ticker closes the round
    assert co.study_status(study)["rounds"][-1]["status"] == "aggregated"


def test_a_network_study_moves_its_stages_without_the_ticker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the ticker asleep (an hour between its checks, woken only when a receipt says the
    driver is due), a SecAgg+ study over TLS still runs: every stage was opened by the
    submission that completed the one before, and the woken sites took answers read ahead."""
    original = serve.create_app
    moved_by_ticker: list[bool] = []
    bells: list[TaskBell] = []

    def create_app(coordinator: Coordinator, **kwargs: Any) -> Any:
        tick = coordinator.tick

        def counted() -> bool:
            moved = tick()
            moved_by_ticker.append(moved)
            return moved

        coordinator.tick = counted  # type: ignore[method-assign]
        bells.append(coordinator.core.bell)
        return original(coordinator, **{**kwargs, "tick_interval": 3600.0})

    monkeypatch.setattr(serve, "create_app", create_app)
    rounds, sites = 2, 4
    result = run_study_over_network(
        _config(rounds), tmp_path, sites_as_processes=False, with_baselines=False
    )
    assert [h["round"] for h in result["history"]] == list(range(1, rounds + 1))
    # rounds 0 (the secure standardisation round) to 2, five SecAgg+ stages each: none of
    # their 15 transitions, nor the rounds they close and open, came from the ticker, which
    # moved only recruiting (the start, the join answers)
    assert sum(moved_by_ticker) <= 3, moved_by_ticker
    # every stage after a round's first woke the sites that submitted earlier; they took
    # answers read ahead instead of reading their own
    assert bells[0].recalled >= (rounds + 1) * 4 * (sites - 1)
