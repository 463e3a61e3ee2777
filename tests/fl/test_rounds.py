"""The round state machine: the rules both runtimes share, played against lying sites."""

import numpy as np
import pytest

from tutela.errors import ConfigError, DataError, ProtocolAbort
from tutela.fl.engine import PlainAggregator
from tutela.fl.rounds import (
    RoundConflict,
    RoundPlan,
    RoundState,
    RoundStatus,
    close_round,
    open_round,
)
from tutela.fl.strategy import FedAvg, FitAggregate

REF = {"w": np.zeros((2, 3), np.float32), "b": np.zeros(1, np.float32)}


def _params(value):
    return {k: np.full(v.shape, value, np.float32) for k, v in REF.items()}


def _open(sites=("a", "b", "c"), quorum=2, now=0.0, timeout=10.0, seed=0, **kw):
    strategy = FedAvg(min_fit_sites=len(sites), **kw)
    rng = np.random.default_rng(seed)
    plan = open_round(strategy, 1, REF, list(sites), rng, quorum=quorum, now=now, timeout=timeout)
    return strategy, plan


def test_plan_round_trips_through_json_and_restarts_as_a_new_attempt():
    _, plan = _open()
    assert RoundPlan.from_json(plan.to_json()) == plan
    again = plan.restarted(now=50.0, timeout=10.0)
    assert again.attempt == 2 and again.participants == plan.participants
    assert again.deadline == 60.0
    assert plan.extended(now=100.0, timeout=5.0).deadline == 105.0
    assert plan.extended(now=0.0, timeout=1.0).deadline == plan.deadline


def test_sampling_is_the_strategys_and_reproducible_from_the_seed():
    sites = [f"s{i}" for i in range(20)]
    strategy = FedAvg(fraction_fit=0.25, min_fit_sites=2)
    a = open_round(strategy, 1, REF, sites, np.random.default_rng(7), quorum=1)
    b = open_round(strategy, 1, REF, list(reversed(sites)), np.random.default_rng(7), quorum=1)
    assert a.participants == b.participants and len(a.participants) == 5
    assert a.config["server_round"] == 1


def test_quorum_below_one_is_refused():
    with pytest.raises(ConfigError):
        _open(quorum=0)


def test_due_when_everyone_answered_or_the_deadline_passed():
    _, plan = _open(timeout=10.0)
    state = RoundState(plan, REF)
    assert not state.is_due(5.0)
    state.accept("a", _params(1.0), 10)
    state.fail("b", "gone")
    assert state.pending() == ("c",) and not state.is_due(9.0)
    assert state.is_due(10.5)
    state.accept("c", _params(2.0), 10)
    assert state.is_due(0.0)


def test_replies_are_idempotent_and_a_changed_reply_is_a_conflict():
    _, plan = _open()
    state = RoundState(plan, REF)
    assert state.accept("a", _params(1.0), 10) is True
    assert state.accept("a", _params(1.0), 10) is False
    with pytest.raises(RoundConflict):
        state.accept("a", _params(1.5), 10)
    with pytest.raises(RoundConflict):
        state.accept("a", _params(1.0), 11)
    assert state.responded == ("a",)


def test_uninvited_sites_and_bad_replies_are_refused():
    _, plan = _open(sites=("a", "b"))
    state = RoundState(plan, REF)
    with pytest.raises(ProtocolAbort, match="not asked"):
        state.accept("mallory", _params(1.0), 10)
    with pytest.raises(DataError, match="shape"):
        state.accept("a", {"w": np.zeros((3, 2), np.float32), "b": np.zeros(1, np.float32)}, 5)
    bad = _params(1.0)
    bad["w"][0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        state.accept("a", bad, 5)
    with pytest.raises(DataError, match="examples"):
        state.accept("a", _params(1.0), 0)
    with pytest.raises(DataError, match="integer"):
        state.accept("a", _params(1.0), 2.5)  # type: ignore[arg-type]
    # 3e38 minus the reference overflows nothing, but as an update it is still bounded by
    # the aggregator's clipping; a value whose difference overflows float32 is refused.
    huge = _params(3e38)
    state.accept("b", huge, 5)
    assert state.responded == ("b",)


def test_a_site_lying_about_its_size_is_capped_at_its_declared_count():
    strategy, plan = _open(sites=("honest", "liar"), quorum=2)
    state = RoundState(plan, REF, declared_examples={"honest": 100, "liar": 100})
    state.accept("honest", _params(1.0), 100)
    state.accept("liar", _params(-1.0), 10**15)
    updates = state.updates()
    assert [u.num_examples for u in updates] == [100, 100]
    agg = PlainAggregator().aggregate(1, updates, REF)
    closure = close_round(strategy, state, REF, agg)
    assert closure.record.status is RoundStatus.AGGREGATED
    assert np.allclose(closure.parameters["w"], 0.0)


def test_close_without_quorum_keeps_the_model_and_names_the_failed():
    strategy, plan = _open(quorum=2)
    state = RoundState(plan, REF)
    state.accept("a", _params(1.0), 10)
    closure = close_round(strategy, state, REF, None)
    assert closure.record.status is RoundStatus.QUORUM_NOT_MET
    assert closure.record.failed == ("b", "c") and closure.record.num_examples == 0
    assert all(np.array_equal(closure.parameters[k], REF[k]) for k in REF)


def test_protocol_dropouts_below_quorum_close_as_quorum_not_met():
    strategy, plan = _open(quorum=2)
    state = RoundState(plan, REF)
    for s in ("a", "b", "c"):
        state.accept(s, _params(1.0), 10)
    agg = FitAggregate(_params(1.0), 10, 1, None)
    closure = close_round(strategy, state, REF, agg, survivors=["a"])
    assert closure.record.status is RoundStatus.QUORUM_NOT_MET
    assert closure.record.sites == ("a",) and closure.record.failed == ("b", "c")


def test_a_failed_site_cannot_reply_later_in_the_same_round():
    _, plan = _open()
    state = RoundState(plan, REF)
    state.fail("a", "deadline")
    with pytest.raises(RoundConflict):
        state.accept("a", _params(1.0), 10)
