"""A verified site certificate is recognised without a store read for a few seconds, and a
change to the site is seen at once.

The cheating party is whoever disables a site: once the change is committed through the
coordinator, the very next request with that site's certificate is refused; a change made
to the database behind the coordinator's back is seen within ``SITE_CACHE_S``. Certificates
looked up at once share one read, and each is judged on its own row.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from tests.server.test_store import ADMIN, Clock, open_coordinator
from tutela.server import identity
from tutela.server.coordinator import Coordinator
from tutela.server.store import SiteRow

FP = "ab" * 32


def _reads(co: Coordinator) -> list[int]:
    reads: list[int] = []
    event.listen(co.core.store.read_engine, "begin", lambda _c: reads.append(1))
    return reads


def test_a_recognised_site_costs_no_read_until_it_changes(db_url: str, tmp_path: Path) -> None:
    co = open_coordinator(db_url, tmp_path / "keyring", Clock())
    co.activate_site(ADMIN, "hospital-1")
    reads = _reads(co)
    assert co.identity.recognised_site("hospital-1", FP) is None  # never looked up yet
    for _ in range(5):
        assert co.principal_for_site("hospital-1", FP) is not None
    assert len(reads) == 1
    # what the event loop asks before it hands a request to a worker thread: no read
    assert co.identity.recognised_site("hospital-1", FP) is not None
    assert co.identity.recognised_site("hospital-1", "cd" * 32) is None
    assert len(reads) == 1
    with co.core.store.session() as s:  # suspended through the coordinator's store
        row = s.get(SiteRow, "hospital-1")
        assert row is not None
        row.status = "suspended"
    assert co.identity.recognised_site("hospital-1", FP) is None
    assert co.principal_for_site("hospital-1", FP) is None
    with co.core.store.session() as s:  # a certificate issued at enrolment pins the site
        row = s.get(SiteRow, "hospital-1")
        assert row is not None
        row.status, row.cert_fingerprint = "active", "cd" * 32
    assert co.principal_for_site("hospital-1", FP) is None
    assert co.principal_for_site("hospital-1", "cd" * 32) is not None
    co.store.close()


def test_a_change_behind_the_coordinators_back_is_seen_within_the_bound(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(identity.time, "monotonic", lambda: now[0])
    co = open_coordinator(db_url, tmp_path / "keyring", Clock())
    co.activate_site(ADMIN, "hospital-1")
    assert co.principal_for_site("hospital-1", FP) is not None
    outside = sa.create_engine(co.core.store.url)
    with outside.begin() as connection:  # not through the coordinator
        connection.execute(
            sa.update(SiteRow).where(SiteRow.name == "hospital-1").values(status="suspended")
        )
    outside.dispose()
    now[0] += identity.SITE_CACHE_S - 0.01
    assert co.principal_for_site("hospital-1", FP) is not None  # still within the bound
    now[0] += 0.02
    assert co.identity.recognised_site("hospital-1", FP) is None
    assert co.principal_for_site("hospital-1", FP) is None
    co.store.close()


def test_certificates_looked_up_together_share_one_read_and_are_judged_apart(
    db_url: str, tmp_path: Path
) -> None:
    co = open_coordinator(db_url, tmp_path / "keyring", Clock())
    names = [f"hospital-{i}" for i in range(8)]
    for name in names:
        co.activate_site(ADMIN, name)
    with co.core.store.session() as s:  # one suspended, one pinned to another certificate
        suspended = s.get(SiteRow, "hospital-3")
        pinned = s.get(SiteRow, "hospital-5")
        assert suspended is not None and pinned is not None
        suspended.status = "suspended"
        pinned.cert_fingerprint = "cd" * 32
    reads = _reads(co)
    lookups = co.identity._lookups
    answers: dict[str, object] = {}

    def look(name: str) -> None:
        answers[name] = co.principal_for_site(name, FP)

    with lookups._lock:  # a batch is being served: the lookups below queue behind it
        threads = [threading.Thread(target=look, args=(name,)) for name in names]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while lookups.queued < len(names):
            assert time.monotonic() < deadline, "the lookups never queued"
            time.sleep(0.01)
    for t in threads:
        t.join(timeout=30)
    assert len(reads) == 1  # one read for the eight of them
    refused = {name for name, principal in answers.items() if principal is None}
    assert refused == {"hospital-3", "hospital-5"}
    assert co.identity.recognised_site("hospital-0", FP) is not None
    assert co.identity.recognised_site("hospital-3", FP) is None
    co.store.close()
