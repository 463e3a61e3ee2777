"""The privacy budget ledger: refuses overspend, survives restarts, never double-charges."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tutela.dp.accounting import AccountantKind, compute_epsilon
from tutela.dp.events import (
    GaussianEvent,
    LaplaceEvent,
    PoissonSampledEvent,
    SelfComposedEvent,
    SkellamEvent,
)
from tutela.dp.ledger import LedgerError, PrivacyLedger
from tutela.errors import AccountingError, BudgetExceeded

LAPLACE_01 = LaplaceEvent(scale=10.0)  # epsilon 0.1 (pure)


def _ledger(tmp_path: Path) -> PrivacyLedger:
    fixed = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return PrivacyLedger(
        tmp_path / "ledger.db", clock=lambda: fixed, value_discretization_interval=1e-3
    )


def test_charge_composes_and_refuses_overspend_without_writing(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.create_scope("adult", 0.35, 1e-6)
    for i in range(3):
        rec = ledger.charge("adult", LAPLACE_01, label=f"q{i}", idempotency_key=f"k{i}")
        assert rec.epsilon_after == pytest.approx(0.1 * (i + 1), abs=2e-3)
        assert rec.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(BudgetExceeded, match="nothing was spent"):
        ledger.charge("adult", LAPLACE_01, label="q3", idempotency_key="k3")
    assert len(ledger.records("adult")) == 3
    assert ledger.spent("adult") == pytest.approx(0.3, abs=2e-3)
    assert ledger.remaining("adult") == pytest.approx(0.05, abs=2e-3)
    # a cheaper query still fits
    ledger.charge("adult", LaplaceEvent(scale=25.0), label="small")
    assert len(ledger.records("adult")) == 4


def test_idempotency_key_prevents_double_charge(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.create_scope("d", 1.0, 1e-6)
    first = ledger.charge("d", LAPLACE_01, label="q", idempotency_key="retry-me")
    again = ledger.charge("d", LAPLACE_01, label="q", idempotency_key="retry-me")
    assert again == first
    assert len(ledger.records("d")) == 1
    with pytest.raises(LedgerError, match="different event"):
        ledger.charge("d", LaplaceEvent(scale=1.0), label="q", idempotency_key="retry-me")


def test_survives_restart(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.create_scope("site:1", 2.0, 1e-5)
    step = SelfComposedEvent(PoissonSampledEvent(0.01, GaussianEvent(1.0)), 100)
    rec = ledger.charge("site:1", step, label="round 1", idempotency_key="r1")
    reopened = PrivacyLedger(ledger.path, value_discretization_interval=1e-3)
    assert reopened.budget("site:1").epsilon == 2.0
    assert reopened.records() == (rec,)
    assert reopened.spent("site:1") == pytest.approx(rec.epsilon_after, rel=0.02)
    again = reopened.charge("site:1", step, label="round 1", idempotency_key="r1")
    assert again.id == rec.id


def test_unaccountable_event_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.create_scope("pld-scope", 5.0, 1e-5)
    with pytest.raises(AccountingError):
        ledger.charge("pld-scope", SkellamEvent(100.0, 4.0, 2.0), label="x")
    assert ledger.records("pld-scope") == ()
    ledger.create_scope("rdp-scope", 5.0, 1e-5, accountant=AccountantKind.RDP)
    rec = ledger.charge("rdp-scope", SkellamEvent(100.0, 4.0, 2.0), label="x")
    expected = compute_epsilon(SkellamEvent(100.0, 4.0, 2.0), 1e-5, AccountantKind.RDP)
    assert rec.epsilon_after == pytest.approx(expected)


def test_scope_management(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.create_scope("a", 1.0, 1e-6)
    assert ledger.create_scope("a", 1.0, 1e-6, exist_ok=True).epsilon == 1.0
    with pytest.raises(LedgerError):
        ledger.create_scope("a", 1.0, 1e-6)
    with pytest.raises(LedgerError, match="budget"):
        ledger.create_scope("a", 2.0, 1e-6, exist_ok=True)
    with pytest.raises(LedgerError, match="unknown"):
        ledger.charge("nope", LAPLACE_01, label="x")
    with pytest.raises(ValueError):
        ledger.create_scope("b", -1.0, 1e-6)
    with pytest.raises(ValueError):
        ledger.create_scope("b", 1.0, 1.0)
    assert [b.scope for b in ledger.scopes()] == ["a"]
    assert ledger.preview("a", LAPLACE_01) == pytest.approx(0.1, abs=2e-3)
    assert ledger.records() == ()


def test_records_serialise_for_the_audit_log(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.create_scope("a", 1.0, 1e-6)
    rec = ledger.charge("a", LAPLACE_01, label="mean(age)", idempotency_key="k")
    data = json.loads(json.dumps(rec.to_dict()))
    assert data["event"] == {"type": "laplace", "scale": 10.0, "sensitivity": 1.0}
    assert data["scope"] == "a"
    assert data["label"] == "mean(age)"
    assert data["created_at"].startswith("2026-01-02T03:04:05")


def test_concurrent_spends_never_pass_the_budget(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.create_scope("race", 1.1, 1e-6)  # room for four spends of 0.25, not five
    results: list[str] = []
    start = threading.Barrier(6)

    def spend(key: str) -> None:
        own = PrivacyLedger(ledger.path, value_discretization_interval=1e-3)  # own connection
        start.wait()
        try:
            own.charge("race", LaplaceEvent(scale=4.0), label="q", idempotency_key=key)
            results.append("ok")
        except BudgetExceeded:
            results.append("refused")

    threads = [threading.Thread(target=spend, args=(f"k{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == ["ok"] * 4 + ["refused"] * 2
    assert len(ledger.records("race")) == 4
    assert ledger.spent("race") <= 1.1
