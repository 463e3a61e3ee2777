"""The N-party runtime: correctness of each protocol and what goes over the wire.

Statistical checks use fixed seeds; each would fail for a fresh seed with probability 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tutela.errors import ProtocolAbort
from tutela.hazmat.ring import FixedPoint64, to_signed
from tutela.smpc import wire
from tutela.smpc.dealer import TrustedDealer
from tutela.smpc.session import Network, Session, Shared

ALPHA = 1e-6
RES = 2.0**-20


class RecordingNetwork(Network):
    """The real in-memory network, keeping a copy of every message."""

    def __init__(self, n_parties: int) -> None:
        super().__init__(n_parties)
        self.log: list[list[dict[int, bytes]]] = []

    def exchange(self, outboxes):
        self.log.append([dict(o) for o in outboxes])
        return super().exchange(outboxes)


def _uniform(words: np.ndarray) -> bool:
    counts = np.bincount((words >> np.uint64(56)).astype(np.int64), minlength=256)
    return bool(stats.chisquare(counts).pvalue > ALPHA)


@pytest.mark.parametrize("n_parties", [2, 3, 5])
def test_input_open_add_and_public_ops(n_parties) -> None:
    s = Session(n_parties, seed=1)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-50, 50, 100), rng.uniform(-50, 50, 100)
    X, Y = s.input(0, x), s.input(n_parties - 1, y)
    assert np.max(np.abs(s.open(X) - x)) <= RES / 2
    assert np.max(np.abs(s.open(s.add(X, Y)) - (x + y))) <= RES
    assert np.max(np.abs(s.open(s.sub(X, Y)) - (x - y))) <= RES
    assert np.max(np.abs(s.open(s.add_public(X, 2.5)) - (x + 2.5))) <= RES
    assert np.max(np.abs(s.open(s.mul_int(X, -3)) - (-3 * x))) <= 3 * RES
    assert np.max(np.abs(s.open(s.mul_public(X, 1 / 7, frac_bits=34)) - x / 7)) <= 2 * RES


def test_beaver_multiplication_within_bound() -> None:
    s = Session(3, seed=2)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-100, 100, 500), rng.uniform(-100, 100, 500)
    z = s.open(s.mul(s.input(0, x), s.input(1, y)))
    bound = (np.abs(x) + np.abs(y) + 2) * RES
    assert np.all(np.abs(z - x * y) <= bound)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(-(2**62) + 1, 2**62 - 1), min_size=1, max_size=30),
    st.integers(1, 40),
)
def test_truncation_is_floor_or_one_more_over_the_whole_range(values, shift) -> None:
    """No wrap-around failure anywhere in |x| < 2^62 (the probabilistic-truncation flaw)."""
    s = Session(3, seed=shift)
    x = np.array(values, dtype=np.int64)
    shared = s.input_ring(0, x.view(np.uint64))
    got = to_signed(s.open_ring(s.truncate(shared, shift))[0])
    floor = x >> shift
    assert np.all((got == floor) | (got == floor + 1))


def test_matrix_products_reuse_one_mask() -> None:
    s = Session(3, seed=3)
    rng = np.random.default_rng(2)
    A = rng.normal(size=(40, 5))
    m = s.mask_matrix(s.input(0, A))
    for k in range(3):
        w = rng.normal(size=(5, 1))
        e = rng.normal(size=(40, 1))
        assert np.max(np.abs(s.open(s.matmul(m, s.input(1, w))) - A @ w)) < 5 * 6 * RES
        got = s.open(s.matmul(m, s.input(2, e), transpose=True))
        assert np.max(np.abs(got - A.T @ e)) < 50 * 6 * RES, k


def test_what_parties_see_is_uniform() -> None:
    """Input shares and every opened mask (Beaver, truncation) are uniform for a fixed secret."""
    s = Session(3, seed=4)
    net = RecordingNetwork(3)
    s.network = net
    secret = np.full(20_000, 1234.5)
    X = s.input(0, secret)
    s.mul(X, X)
    # round 0: party 0's shares to parties 1 and 2
    for j in (1, 2):
        share = wire.decode(net.log[0][0][j], sender=0, step=1, shape=(20_000,))
        assert _uniform(share)
    # round 1: opened x - a and x - b (Beaver); round 2: opened c = x + r (truncation)
    for rnd, size in ((1, 40_000), (2, 20_000)):
        opened = sum(
            (
                wire.decode(net.log[rnd][i][(i + 1) % 3], sender=i, step=rnd + 1, shape=(size,))
                for i in range(3)
            ),
            start=np.zeros(size, dtype=np.uint64),
        )
        assert _uniform(opened)


def test_messages_are_checked() -> None:
    msg = wire.encode(1, 5, np.arange(4, dtype=np.uint64))
    assert np.array_equal(wire.decode(msg, sender=1, step=5, shape=(4,)), np.arange(4))
    for kwargs in (
        {"sender": 2, "step": 5, "shape": (4,)},
        {"sender": 1, "step": 6, "shape": (4,)},
        {"sender": 1, "step": 5, "shape": (5,)},
        {"sender": 1, "step": 5, "shape": (2, 2)},
    ):
        with pytest.raises(wire.MessageError):
            wire.decode(msg, **kwargs)
    for bad in (b"", msg[:-1], b"XXXX" + msg[4:]):
        with pytest.raises(ProtocolAbort):
            wire.decode(bad, sender=1, step=5, shape=(4,))
    with pytest.raises(ValueError):
        Network(2).exchange([{1: "not bytes"}, {}])  # type: ignore[dict-item]


def test_a_tampered_message_aborts_the_protocol() -> None:
    class Replaying(Network):
        def exchange(self, outboxes):
            boxes = [dict(o) for o in outboxes]
            if self.traffic.rounds == 1:  # the open: party 1 replays an old step number
                boxes[1] = {j: wire.encode(1, 1, np.zeros(3, dtype=np.uint64)) for j in boxes[1]}
            return super().exchange(boxes)

    s = Session(3, seed=5)
    s.network = Replaying(3)
    x = s.input(0, np.ones(3))
    with pytest.raises(wire.MessageError):
        s.open(x)


def test_argument_checks() -> None:
    with pytest.raises(ValueError):
        Session(1)
    with pytest.raises(ValueError):
        Session(3, dealer=TrustedDealer(2))
    s = Session(2, seed=1)
    with pytest.raises(ValueError):
        s.input(5, [1.0])
    a = s.input(0, np.ones(3))
    with pytest.raises(ValueError):
        s.mul(a, s.input(1, np.ones(4)))
    with pytest.raises(ValueError):
        s.mul_public(a, 1e30)
    with pytest.raises(ValueError):
        s.mask_matrix(a)
    assert isinstance(a, Shared) and a.shape == (3,)
    assert FixedPoint64().frac_bits == 20
