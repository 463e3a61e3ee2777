"""SecAgg+ correctness: the unmasked sum equals the plain sum within the stated bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.secagg.helpers import make_round, plain_sum, run
from tutela.errors import ProtocolAbort, QuorumNotMet
from tutela.hazmat.rng import SecureRandom
from tutela.secagg import DropoutPlan, SecAggConfig, Stage, secure_sum
from tutela.secagg.config import ACTIVE_STAGES


def _inputs(n: int, dim: int, seed: int = 0) -> dict[int, np.ndarray]:
    g = np.random.default_rng(seed)
    return {i: g.uniform(-1, 1, dim) for i in range(n)}


@pytest.mark.parametrize("stage", ACTIVE_STAGES)
def test_dropout_at_each_stage_is_recovered(stage: Stage) -> None:
    xs = _inputs(9, 50)
    cfg = SecAggConfig(dropout_tolerance=0.25)
    plan = DropoutPlan.at(stage, [2, 6])
    res = secure_sum(xs, None, cfg, dropouts=plan, rng=SecureRandom(1))
    # a client that sent its masked input counts, whether or not it signed or unmasked
    late = stage in (Stage.CONSISTENCY_CHECK, Stage.UNMASK)
    expected_survivors = tuple(range(9)) if late else (0, 1, 3, 4, 5, 7, 8)
    assert res.survivors == expected_survivors
    assert res.dropped[stage.value] == (2, 6)
    plain = sum(xs[i] for i in res.survivors)
    assert np.abs(res.total - plain).max() <= res.quantization_error_bound
    assert res.weight_total == pytest.approx(len(res.survivors), abs=1e-6)


def test_complete_graph_is_plain_secagg() -> None:
    xs = _inputs(6, 20, seed=3)
    res = secure_sum(xs, None, SecAggConfig(neighbors=5), rng=SecureRandom(2))
    rep = res.report()
    assert rep["k"] == 5 and rep["complete_graph"] is True
    assert np.abs(res.total - sum(xs.values())).max() <= res.quantization_error_bound


def test_weighted_sum_weight_travels_masked() -> None:
    xs = _inputs(7, 30, seed=5)
    ws = {i: float(10 * (i + 1)) for i in range(7)}
    plan = DropoutPlan.at(Stage.MASKED_INPUT, [3])
    res = secure_sum(
        xs, ws, SecAggConfig(dropout_tolerance=0.2), dropouts=plan, rng=SecureRandom(3)
    )
    assert res.params.max_weight == 128.0  # next power of two above 70
    expected = sum(ws[i] * xs[i] for i in res.survivors)
    assert np.abs(res.total - expected).max() <= res.quantization_error_bound
    assert res.weight_total == pytest.approx(sum(ws[i] for i in res.survivors), abs=1e-3)
    with pytest.raises(ValueError, match="max_weight"):
        secure_sum(xs, ws, SecAggConfig(max_weight=50.0), rng=SecureRandom(3))


def test_clipping_is_applied_and_counted() -> None:
    xs = {i: np.array([10.0, -10.0, 0.5]) for i in range(4)}
    res = secure_sum(xs, None, SecAggConfig(clip=1.0), rng=SecureRandom(4))
    assert np.allclose(res.total, [4.0, -4.0, 2.0], atol=res.quantization_error_bound)
    assert res.clipped_values == 8


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_property_random_n_k_t_and_dropouts(data: st.DataObject) -> None:
    n = data.draw(st.integers(4, 9), label="n")
    k = data.draw(st.integers(2, n - 1), label="k")
    k_eff = min(k + k % 2, n - 1)
    t = data.draw(st.integers(k_eff // 2 + 1, k_eff), label="t")  # t > k/2 is required
    # every client in U2 needs t live neighbours at the end: allow at most k_eff - t drops
    max_drop = min(k_eff - t, n - t - 1)
    dropped = data.draw(
        st.lists(st.integers(0, n - 1), unique=True, max_size=max_drop), label="drop"
    )
    stages = data.draw(
        st.lists(st.sampled_from(ACTIVE_STAGES), min_size=len(dropped), max_size=len(dropped)),
        label="stages",
    )
    groups: dict[str, set[int]] = {s.value: set() for s in ACTIVE_STAGES}
    for cid, st_ in zip(dropped, stages, strict=True):
        groups[st_.value].add(cid)
    plan = DropoutPlan(**{k_: frozenset(v) for k_, v in groups.items()})
    bits = data.draw(st.sampled_from([16, 32, 48, 64]), label="bits")
    cfg = SecAggConfig(
        neighbors=k, threshold=t, modulus_bits=bits, clip=1.0, dropout_tolerance=len(dropped) / n
    )
    xs = _inputs(n, 8, seed=n * 31 + k)
    res = secure_sum(xs, None, cfg, dropouts=plan, rng=SecureRandom(n * 7 + t))
    survivors = set(range(n)) - {c for s in ACTIVE_STAGES[:3] for c in plan.drops_at(s)}
    assert set(res.survivors) == survivors
    plain = sum(xs[i] for i in res.survivors)
    assert np.abs(res.total - plain).max() <= res.quantization_error_bound


def test_too_many_dropouts_abort_with_quorum_not_met() -> None:
    xs = _inputs(10, 5)
    plan = DropoutPlan.at(Stage.SHARE_KEYS, [0, 1])  # tolerance 0.1 -> 1 drop allowed
    with pytest.raises(QuorumNotMet, match="share_keys"):
        secure_sum(
            xs, None, SecAggConfig(dropout_tolerance=0.1), dropouts=plan, rng=SecureRandom(5)
        )


def test_unrecoverable_round_aborts_cleanly() -> None:
    # t = k: a single dropped neighbour leaves a secret unrecoverable
    xs = _inputs(6, 5)
    cfg = SecAggConfig(neighbors=2, threshold=2, dropout_tolerance=0.5)
    with pytest.raises(ProtocolAbort):
        secure_sum(xs, None, cfg, dropouts=DropoutPlan.at(Stage.UNMASK, [0]), rng=SecureRandom(6))


def test_stage_deadline_closes_stage_with_injected_clock() -> None:
    rnd = make_round(5, 4, SecAggConfig(dropout_tolerance=0.2, stage_timeout_s=10.0), seed=7)
    outbox = rnd.server.start()
    for cid, msg in outbox.items():
        if cid != 4:
            rnd.server.receive(cid, rnd.clients[cid].handle(msg))  # type: ignore[arg-type]
    assert rnd.server.step() is None  # client 4 may still answer
    rnd.clock.advance(9.9)
    assert rnd.server.step() is None
    rnd.clock.advance(0.2)
    nxt = rnd.server.step()
    assert nxt is not None and set(nxt) == {0, 1, 2, 3}
    assert rnd.server.dropped()["advertise_keys"] == (4,)
    # a late advertisement is not accepted any more
    assert rnd.server.receive(4, rnd.clients[4].handle(outbox[4])) is False  # type: ignore[arg-type]


def test_server_completes_early_when_all_reply() -> None:
    rnd = make_round(4, 3, SecAggConfig(), seed=8)
    run(rnd)
    assert rnd.server.stage is Stage.DONE
    assert rnd.clock() == 0.0  # never waited for a deadline
    res = rnd.server.result()
    assert np.abs(
        res.total - plain_sum(rnd, res.survivors)
    ).max() <= rnd.params.quantization_error_bound(4)


def test_config_rejects_wrapping_or_inconsistent_settings() -> None:
    with pytest.raises(ValueError, match="could wrap"):
        SecAggConfig(modulus_bits=16, clip=1.0, scale=2.0**14).plan(
            tuple(range(10)), 4, max_weight=1.0, round_id=bytes(32)
        )
    with pytest.raises(ValueError, match="too small"):
        SecAggConfig(modulus_bits=8, clip=1.0).plan(
            tuple(range(300)), 4, max_weight=1.0, round_id=bytes(32)
        )
    with pytest.raises(ValueError, match="threshold"):
        SecAggConfig(neighbors=2, threshold=3).plan(
            (0, 1, 2, 3), 4, max_weight=1.0, round_id=bytes(32)
        )
    with pytest.raises(ValueError, match="at least 3"):
        secure_sum(_inputs(2, 3), None, SecAggConfig())
    with pytest.raises(ValueError, match="same length"):
        secure_sum({0: np.zeros(3), 1: np.zeros(3), 2: np.zeros(4)}, None, SecAggConfig())
    with pytest.raises(ValueError, match="finite"):
        secure_sum(
            {0: np.zeros(3), 1: np.zeros(3), 2: np.array([0, np.nan, 0])}, None, SecAggConfig()
        )
    with pytest.raises(ValueError):
        SecAggConfig(scale=3.0)
