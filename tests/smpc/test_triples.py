"""Dealer-free correlated randomness: Paillier, Gilboa triples, the pairwise runtime.

Keys are 1024 bits to keep the tests quick (2048 or more in use); the protocol is the same.
"""

from __future__ import annotations

import threading
from functools import cache

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_breast_cancer

from tutela.hazmat.paillier import (
    PaillierKeyPair,
    generate_paillier_keypair,
    parse_ciphertexts,
    serialise_ciphertexts,
)
from tutela.hazmat.rng import SecureRandom
from tutela.smpc import wire
from tutela.smpc.pairwise import SLOT_BITS, PairwiseRuntime
from tutela.smpc.party import MaterialStream, PartyRuntime, ShapeRuntime
from tutela.smpc.triples import PaillierTriples
from tutela.smpc.vertical import VerticalPlan, plaintext_reference, train_vertical

from .test_vertical import TOLERANCE, Mailboxes

ALPHA = 1e-4  # false-failure rate of each uniformity test


@cache
def _keys(i: int) -> PaillierKeyPair:
    return generate_paillier_keypair(1024)


def test_paillier_round_trip_and_homomorphism() -> None:
    keys, rng = _keys(0), SecureRandom(1)
    pk = keys.public
    for m in (0, 1, 2**64 - 1, pk.n - 1):
        assert keys.decrypt(keys.encrypt(m, rng)) == m
        assert keys.decrypt(pk.encrypt(m, rng)) == m
    a, b = pk.encrypt(7, rng), pk.encrypt(11, rng)
    assert keys.decrypt(pk.dot([a, b], [3, 5])) == 7 * 3 + 11 * 5
    assert keys.decrypt(pk.rerandomise(pk.add_plain(a, 2**70), rng)) == 7 + 2**70
    data = serialise_ciphertexts(pk, [a, b])
    assert parse_ciphertexts(pk, data, 2) == [a, b]
    with pytest.raises(ValueError, match="not a ciphertext"):
        parse_ciphertexts(pk, serialise_ciphertexts(pk, [a, pk.n]), 2)  # shares a factor with n


def _generate(shape: tuple[int, ...], seeds: tuple[int, int] = (2, 3)):
    p0 = PaillierTriples(0, _keys(0), rng=SecureRandom(seeds[0]))
    p1 = PaillierTriples(1, _keys(1), rng=SecureRandom(seeds[1]))
    p0.accept_key(p1.key_message())
    p1.accept_key(p0.key_message())
    o0, o1 = p0.offer(shape), p1.offer(shape)
    a0, a1 = p0.answer(o1), p1.answer(o0)
    return p0, p1, p0.finish(a1), p1.finish(a0)


def test_dealer_free_triples_multiply_over_the_ring() -> None:
    _, _, t0, t1 = _generate((4, 25))
    a, b = t0.a + t1.a, t0.b + t1.b
    assert np.array_equal(a * b, t0.c + t1.c)  # uint64 arithmetic is the ring Z_{2^64}
    assert not np.array_equal(t0.c, t1.c)


def _received_after_decryption(b_peer: int, count: int, seed: int) -> np.ndarray:
    """What party 0 decrypts from party 1's answers when party 1's ``b`` is ``b_peer``."""
    p0 = PaillierTriples(0, _keys(0), rng=SecureRandom(seed))
    p1 = PaillierTriples(1, _keys(1), rng=SecureRandom(seed + 1))
    p0.accept_key(p1.key_message())
    p1.accept_key(p0.key_message())
    offer = p0.offer((count,))
    p1.offer((count,))
    assert p1._pending is not None
    p1._pending = (p1._pending[0], np.full(count, b_peer, dtype=np.uint64))  # the peer's input
    answer = p1.answer(offer)
    cs = parse_ciphertexts(p0.keys.public, answer, count)
    return np.array([p0.keys.decrypt(c) % (1 << 64) for c in cs], dtype=np.uint64)


def test_what_a_party_decrypts_is_uniform_whatever_the_other_party_holds() -> None:
    count = 400
    views = [_received_after_decryption(b, count, seed) for b, seed in ((0, 10), (2**63 + 5, 20))]
    for view in views:  # uniform over Z_{2^64}: top byte over 16 buckets, chi-square
        top = (view >> np.uint64(60)).astype(np.int64)
        assert stats.chisquare(np.bincount(top, minlength=16)).pvalue > ALPHA
    # independent of the peer's input: the two views have the same distribution
    assert stats.ks_2samp(views[0].astype(np.float64), views[1].astype(np.float64)).pvalue > ALPHA


def test_a_malformed_ciphertext_aborts_naming_the_sender() -> None:
    p0 = PaillierTriples(0, _keys(0), rng=SecureRandom(4))
    p1 = PaillierTriples(1, _keys(1), rng=SecureRandom(5))
    p0.accept_key(p1.key_message())
    p1.accept_key(p0.key_message())
    offer = bytearray(p1.offer((3,)))
    p0.offer((3,))
    width = p1.keys.public.ciphertext_bytes
    offer[width : 2 * width] = b"\xff" * width  # beyond n^2: no ciphertext
    with pytest.raises(wire.MessageError, match="party 1 sent a malformed ciphertext"):
        p0.answer(bytes(offer))
    with pytest.raises(wire.MessageError, match="party 1 sent a malformed ciphertext"):
        p0.answer(bytes(offer[:-1]))
    with pytest.raises(wire.MessageError, match="party 0 sent a malformed Paillier public key"):
        p1.accept_key(b"\x02" * 16)


def _run_pairwise(
    plan: VerticalPlan, parts: list[np.ndarray], labels: np.ndarray, *, dealer: bool
) -> tuple[list[np.ndarray], int]:
    boxes = Mailboxes()
    out: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    streams: list[MaterialStream] = []
    if dealer:
        dry = ShapeRuntime(2, SecureRandom(b"dealer"))
        train_vertical(dry, plan, None)
        streams = dry.streams()

    def party(i: int) -> None:
        rt: PartyRuntime
        if dealer:
            rt = PartyRuntime(i, 2, boxes.exchange_for(i), streams[i], rng=SecureRandom(i))
        else:
            rt = PairwiseRuntime(i, boxes.exchange_for(i), _keys(i), rng=SecureRandom(i))
        try:
            out[i] = train_vertical(rt, plan, parts[i], labels if i == plan.label_party else None)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=party, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    if errors:
        raise errors[0]
    return [out[0], out[1]], boxes.bytes


def test_dealer_free_training_matches_plaintext_as_the_dealer_does() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    rows = np.arange(0, 120)
    parts, labels = [X[rows, :3], X[rows, 3:6]], y[rows]
    plan = VerticalPlan(rows=120, widths=(3, 3), label_party=1, iterations=8)
    reference = plaintext_reference(parts, labels, plan)
    free, free_bytes = _run_pairwise(plan, parts, labels, dealer=False)
    dealt, dealt_bytes = _run_pairwise(plan, parts, labels, dealer=True)
    assert np.array_equal(free[0], free[1])
    assert np.max(np.abs(free[0] - reference)) < TOLERANCE
    assert np.max(np.abs(dealt[0] - reference)) < TOLERANCE
    assert free_bytes > dealt_bytes  # the parties now carry what the dealer sent


def test_the_pairwise_runtime_is_for_two_parties_and_checks_its_peer() -> None:
    with pytest.raises(ValueError, match="parties 0 and 1"):
        PairwiseRuntime(2, lambda step, out, senders: {}, _keys(0))
    rt = PairwiseRuntime(0, lambda step, out, senders: {1: b"\x00" * 8}, _keys(0))
    with pytest.raises(wire.MessageError, match="party 1 sent a malformed Paillier public key"):
        rt.truncate(np.zeros(2, np.uint64))


def _truncation_views(x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Run one dealer-free truncation of the shared ``x``; return what party 0 can compute
    from what it receives and its own share (``x + r``) and what party 1 decrypts
    (``msb(c) msb(r) + mu`` mod 2**64)."""
    rng = SecureRandom(seed)
    share0 = rng.uint64(x.size)
    share1 = x - share0
    boxes = Mailboxes()
    seen: dict[str, dict[int, bytes]] = {}

    def recording(me: int):  # type: ignore[no-untyped-def]
        inner = boxes.exchange_for(me)

        def exchange(step, outbox, senders):  # type: ignore[no-untyped-def]
            got = inner(step, outbox, senders)
            seen.setdefault(f"{me}:{step}", {}).update(got)
            return got

        return exchange

    out: dict[int, np.ndarray] = {}

    def party(i: int) -> None:
        rt = PairwiseRuntime(i, recording(i), _keys(i), rng=SecureRandom(seed + 1 + i))
        out[i] = rt.truncate((share0, share1)[i], 20)

    threads = [threading.Thread(target=party, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    expected = (x.view(np.int64) >> 20).view(np.uint64)
    diff = (out[0] + out[1] - expected).view(np.int64)
    assert np.all(np.abs(diff) <= 1)  # floor, or one more
    to_zero = seen["0:s2"][1]  # step 1 swaps keys; step 2 is party 1's masked share
    (n,) = np.frombuffer(to_zero[:4], dtype=">u4")
    masked = wire.decode(to_zero[4 : 4 + int(n)], sender=1, step=2, shape=(x.size,))
    to_one = seen["1:s3"][0]  # packed slots of SLOT_BITS bits each
    per = (_keys(1).public.key_bits - 1) // SLOT_BITS
    cs = parse_ciphertexts(_keys(1).public, to_one, -(-x.size // per))
    slots = [(_keys(1).decrypt(c) >> (SLOT_BITS * k)) % (1 << 64) for c in cs for k in range(per)]
    decrypted = np.array(slots[: x.size], dtype=np.uint64)
    return masked + share0, decrypted


def test_each_party_s_view_of_a_dealer_free_truncation_is_uniform_whatever_the_input() -> None:
    count = 300
    views = [
        _truncation_views(np.zeros(count, np.uint64), 30),
        _truncation_views(np.full(count, 1 << 50, np.uint64), 40),
    ]
    for masked, decrypted in views:
        for words in (masked, decrypted):
            top = (words >> np.uint64(60)).astype(np.int64)
            assert stats.chisquare(np.bincount(top, minlength=16)).pvalue > ALPHA
    for k in range(2):
        a, b = views[0][k].astype(np.float64), views[1][k].astype(np.float64)
        assert stats.ks_2samp(a, b).pvalue > ALPHA
