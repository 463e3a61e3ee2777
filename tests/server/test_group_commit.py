"""Group commit of round submissions: many queued submissions, one transaction, each judged
on its own.

While one caller holds the coordinator lock, the others queue; the next holder accepts the
whole queue in one transaction. These tests hold the lock themselves so that a known set
of submissions queues behind it, then check that every caller gets its own outcome (an
honest update accepted, a retry recognised as one, a second update for the same stage and
an over-long update from a lying site refused, the latter audited), that nothing refused is
stored, and that the group really shares its transaction. A failure of that transaction
fails every submission in it and stores none of them; sent again, they are accepted.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from tests.server.test_bounds_update_norm import HONEST, LIAR, _body, _running, _scaled
from tests.server.test_store import Clock, open_coordinator
from tutela.fl.bounds import UpdateNormExceeded
from tutela.fl.records import parameters_to_bytes
from tutela.server.coordinator import Coordinator
from tutela.server.core import ConflictError, Receipt
from tutela.server.store import UpdateRow


def _queue_behind_the_lock(
    co: Coordinator, calls: list[tuple[str, str, bytes]], study: str
) -> list[Receipt | BaseException]:
    """Queue ``calls`` (site, key, body) one after another behind the held coordinator lock,
    then let them through; each call's receipt or refusal, in order."""
    outcomes: list[Receipt | BaseException | None] = [None] * len(calls)

    def call(i: int, site: str, key: str, body: bytes) -> None:
        try:
            outcomes[i] = co.submit(site, study, 1, "fit", key, body)
        except BaseException as exc:  # the outcome under test
            outcomes[i] = exc

    threads = []
    with co.core.lock:
        for i, (site, key, body) in enumerate(calls):
            thread = threading.Thread(target=call, args=(i, site, key, body), daemon=True)
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 10
            while co.inbox._submissions.queued < i + 1:  # queued in this order
                assert time.monotonic() < deadline, "a submission never queued"
                time.sleep(0.001)
    for thread in threads:
        thread.join(timeout=30)
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


def _stored(co: Coordinator, study: str) -> list[tuple[str, str]]:
    with co.core.store.read() as s:
        rows = s.execute(
            select(UpdateRow.site, UpdateRow.idempotency_key).where(UpdateRow.study_id == study)
        ).all()
    return sorted((site, key) for site, key in rows)


def test_one_transaction_gives_every_caller_its_own_outcome(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = _running(co, clock, liar_rows=300)
    honest_0 = _body(study, _scaled(0.5), 100)
    commits: list[int] = []
    event.listen(co.core.store.engine, "commit", lambda _c: commits.append(1))
    outcomes = _queue_behind_the_lock(
        co,
        [
            (HONEST[0], "a", honest_0),
            (HONEST[0], "a", honest_0),  # a retry of the same submission
            (HONEST[1], "b", _body(study, _scaled(-0.25), 300)),
            (HONEST[1], "b2", _body(study, _scaled(0.25), 300)),  # a second one: refused
            (LIAR, "lie", _body(study, _scaled(1e6), 300)),  # over the norm bound: refused
        ],
        study,
    )
    first, retry, other, second, lie = outcomes
    assert isinstance(first, Receipt) and first.duplicate is False
    assert isinstance(retry, Receipt) and retry.duplicate is True
    assert retry.digest == first.digest
    assert isinstance(other, Receipt) and other.duplicate is False
    assert isinstance(second, ConflictError) and "already submitted" in str(second)
    assert isinstance(lie, UpdateNormExceeded)
    # One transaction for the group, one for the liar's audited refusal.
    assert len(commits) == 2
    assert _stored(co, study) == [(HONEST[0], "a"), (HONEST[1], "b")]
    denied = [
        e
        for e in co.audit_events(limit=10_000)
        if e["action"] == "round.submit" and e["outcome"] == "denied"
    ]
    assert [e["actor"] for e in denied] == [f"site:{LIAR}"]
    accepted = [
        e["actor"]
        for e in co.audit_events(limit=10_000)
        if e["action"] == "round.submit" and e["outcome"] == "ok"
    ]
    assert sorted(accepted) == [f"site:{HONEST[0]}", f"site:{HONEST[1]}"]
    # The liar did not reply; the round closes on the honest two at its deadline.
    assert not co.tick()
    clock.now += 31
    assert co.tick()
    assert co.study_status(study)["rounds"][0]["sites"] == list(HONEST)


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_a_failed_group_transaction_stores_nothing_and_a_resend_is_accepted(
    db_url: str, tmp_path: Path, failure: type[BaseException]
) -> None:
    """Whatever stops the commit (an error, or an interrupt that unwinds the serving thread),
    no caller is told its submission was accepted, and none was."""
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = _running(co, clock, liar_rows=300)
    bodies = {
        HONEST[0]: _body(study, _scaled(0.5), 100),
        HONEST[1]: _body(study, _scaled(-0.25), 300),
    }

    def fail_once(_session: Any) -> None:
        raise failure("the database went away")

    event.listen(co.core.store.write_sessions, "before_commit", fail_once, once=True)
    outcomes = _queue_behind_the_lock(
        co, [(site, f"{site}-k", body) for site, body in bodies.items()], study
    )
    assert not any(isinstance(o, Receipt) for o in outcomes)
    if failure is RuntimeError:
        assert all(isinstance(o, RuntimeError) for o in outcomes)
    else:  # the serving caller is interrupted; the other is told to send again
        assert sorted(type(o).__name__ for o in outcomes) == ["KeyboardInterrupt", "ServiceError"]
    assert _stored(co, study) == []
    for site, body in bodies.items():  # sent again with the same keys: first acceptances
        receipt = co.submit(site, study, 1, "fit", f"{site}-k", body)
        assert receipt.duplicate is False
    assert _stored(co, study) == sorted((site, f"{site}-k") for site in bodies)


def test_submissions_for_two_studies_queued_together_go_to_their_own_study(
    tmp_path: Path,
) -> None:
    clock = Clock()
    co = open_coordinator(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "keyring", clock)
    first = _running(co, clock, liar_rows=300)
    second = _running(co, clock, liar_rows=300)
    update = _scaled(0.5)
    outcomes: list[Receipt | BaseException] = []
    with co.core.lock:
        threads = [
            threading.Thread(
                target=lambda st=st: outcomes.append(
                    co.submit(HONEST[0], st, 1, "fit", "same-key", _body(st, update, 100))
                ),
                daemon=True,
            )
            for st in (first, second)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while co.inbox._submissions.queued < 2:
            assert time.monotonic() < deadline
            time.sleep(0.001)
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r.study_id for r in outcomes if isinstance(r, Receipt)) == sorted([first, second])
    assert _stored(co, first) == [(HONEST[0], "same-key")]
    assert _stored(co, second) == [(HONEST[0], "same-key")]


@pytest.mark.parametrize("bad", ["wrong-study", "stale-round"])
def test_a_misdirected_submission_in_a_group_is_refused_alone(tmp_path: Path, bad: str) -> None:
    clock = Clock()
    co = open_coordinator(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "keyring", clock)
    study = _running(co, clock, liar_rows=300)
    if bad == "wrong-study":
        body = _body("another-study", _scaled(0.1), 300)  # bound to another study: replayed
    else:
        meta = {"study": study, "round": "0", "num_examples": "300"}  # a stale round
        body = parameters_to_bytes(_scaled(0.1), metadata=meta)
    outcomes = _queue_behind_the_lock(
        co,
        [(HONEST[0], "ok", _body(study, _scaled(0.5), 100)), (LIAR, "bad", body)],
        study,
    )
    assert isinstance(outcomes[0], Receipt)
    assert isinstance(outcomes[1], ConflictError)
    assert _stored(co, study) == [(HONEST[0], "ok")]


def test_task_reads_woken_together_share_one_read_and_answer_each_site(
    db_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = _running(co, clock, liar_rows=300)
    co.submit(HONEST[0], study, 1, "fit", "done", _body(study, _scaled(0.5), 100))
    alone = {site: co.tasks_for(site) for site in (*HONEST, LIAR, "stranger")}
    assert alone[HONEST[0]]["tasks"] == []  # it has submitted
    assert [t["kind"] for t in alone[HONEST[1]]["tasks"]] == ["fit"]
    assert alone["stranger"] == {"tasks": [], "studies": {}}
    reads: list[int] = []
    event.listen(co.core.store.read_engine, "begin", lambda _c: reads.append(1))
    batcher = co.participants._tasks
    answers: dict[str, list[dict[str, Any]]] = {}
    with batcher._lock:  # a read in progress: the calls below queue behind it
        threads = [
            threading.Thread(
                target=lambda site=site: answers.setdefault(site, []).append(co.tasks_for(site)),
                daemon=True,
            )
            for site in (*HONEST, LIAR, "stranger", HONEST[1])
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while batcher.queued < len(threads):
            assert time.monotonic() < deadline
            time.sleep(0.001)
    for thread in threads:
        thread.join(timeout=30)
    assert len(reads) == 1
    for site, got in answers.items():
        assert all(answer == alone[site] for answer in got), site
    assert len(answers[HONEST[1]]) == 2
