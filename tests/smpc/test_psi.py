"""ECDH-PSI: the true intersection, what each mode reveals, and refused messages.

Statistical checks use fixed seeds; each would fail for a fresh seed with probability at
most 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tutela.hazmat.ecgroup import BlindingKey, hash_to_point
from tutela.hazmat.rng import SecureRandom
from tutela.smpc.dealer import TrustedDealer
from tutela.smpc.linkage import BlockingKey, blocking_keys
from tutela.smpc.psi import (
    PsiMode,
    PsiRequester,
    PsiResponder,
    private_set_intersection,
)
from tutela.smpc.wire import MessageError

from .linkage_data import two_hospitals

ALPHA = 1e-6


def _single(keys: list[str]) -> list[tuple[bytes | None, ...]]:
    return [(k.encode(),) for k in keys]


def test_blinding_commutes_and_separates_sessions() -> None:
    a, b = BlindingKey(SecureRandom(1)), BlindingKey(SecureRandom(2))
    items = [b"alice", b"bob", b""]
    ab = b.reblind(a.blind_items(items, b"s1"))
    ba = a.reblind(b.blind_items(items, b"s1"))
    assert ab == ba
    assert len(set(ab)) == 3
    assert a.blind_items(items, b"s2") != a.blind_items(items, b"s1")


def test_hash_to_point_known_answer() -> None:
    """Pins the hash-to-group encoding (both parties must derive the same point)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    point = hash_to_point(b"tutela", b"domain").public_bytes(
        Encoding.X962, PublicFormat.CompressedPoint
    )
    import hashlib

    x = hashlib.sha256((6).to_bytes(4, "big") + b"domain" + b"\x00" + b"tutela").digest()
    # the first candidate is on the curve for this input, so the point is its even lift
    assert point == b"\x02" + x


def test_linkage_finds_the_true_pairs_across_conventions() -> None:
    """Different accents, case, spacing, name order, date formats and Soundex-preserving
    typos: the linked pairs are exactly the true ones."""
    a_rows, b_rows, truth = two_hospitals(150, 120, 60, seed=3)
    kinds = (BlockingKey.NAME_DOB, BlockingKey.PHONETIC_DOB)
    ra, rb = private_set_intersection(
        blocking_keys(a_rows, kinds), blocking_keys(b_rows, kinds), seed=5
    )
    assert ra.size == rb.size == len(truth) == 60
    assert set(zip(ra.rows.tolist(), rb.rows.tolist(), strict=True)) == truth
    assert list(ra.rows) == sorted(ra.rows)  # the joint order is A's row order
    # exact keys alone miss the typos: the phonetic key is what links them
    exact, _ = private_set_intersection(
        blocking_keys(a_rows, (BlockingKey.NAME_DOB,)),
        blocking_keys(b_rows, (BlockingKey.NAME_DOB,)),
        seed=5,
    )
    assert exact.size is not None and exact.size < len(truth)


def test_identifier_key_links_hashed_identifiers() -> None:
    a = [{"nhs": "943 476 5919", "given_name": "x", "date_of_birth": ""}, {"nhs": "111"}]
    b = [{"nhs": "222"}, {"nhs": "9434765919"}]
    kinds = (BlockingKey.IDENTIFIER,)
    ra, rb = private_set_intersection(
        blocking_keys(a, kinds, identifier="nhs"), blocking_keys(b, kinds, identifier="nhs")
    )
    assert ra.rows.tolist() == [0] and rb.rows.tolist() == [1]


def test_each_row_links_at_most_once_and_repeats_count_once() -> None:
    a = _single(["x", "x", "y", "z"])
    b = _single(["x", "y", "y", "w"])
    ra, rb = private_set_intersection(a, b, seed=1)
    assert list(zip(ra.rows.tolist(), rb.rows.tolist(), strict=True)) == [(0, 0), (2, 1)]
    ca, cb = private_set_intersection(a, b, PsiMode.CARDINALITY, seed=1)
    assert ca.size == cb.size == 2
    sa, sb = private_set_intersection(a, b, PsiMode.SHARES, seed=1)
    assert sa.shares is not None and sb.shares is not None
    assert (sa.shares + sb.shares).tolist() == [1, 0, 1, 0]


def test_missing_keys_never_match() -> None:
    ra, _ = private_set_intersection([(None,), (b"k",)], [(None,), (b"k",)], seed=2)
    assert ra.rows.tolist() == [1]


def _member_positions(keys_a, keys_b, mode: PsiMode, seed: int) -> list[int]:
    """What a curious requester computes from the response: which positions of its doubly
    blinded values are in the responder's set."""
    from tutela.smpc import psi

    mask = corr = None
    if mode is PsiMode.SHARES:
        mask, corr = TrustedDealer(2, SecureRandom(seed)).shuffle_correlation(len(keys_a))
    a = PsiRequester(keys_a, mode, session=b"s", rng=SecureRandom(f"a{seed}".encode()), mask=mask)
    b = PsiResponder(
        keys_b, mode, session=b"s", rng=SecureRandom(f"b{seed}".encode()), correlation=corr
    )
    response = b.respond(a.request())
    doubled, theirs, _ = psi._unpack(response, mode, psi._RESPONSE, b"s")
    table = set(a._key.reblind(theirs))
    return [k for k, v in enumerate(doubled) if v in table]


def test_cardinality_hides_which_rows_matched() -> None:
    """A curious requester locates the matches in the response: in INTERSECTION mode they
    are exactly its rows 0..9; in CARDINALITY and SHARES mode their positions are uniform
    over its 40 rows, whatever rows truly matched."""
    keys_a = _single([f"k{i}" for i in range(40)])
    keys_b = _single([f"k{i}" for i in range(10)] + [f"other{i}" for i in range(30)])
    assert _member_positions(keys_a, keys_b, PsiMode.INTERSECTION, 0) == list(range(10))
    for mode in (PsiMode.CARDINALITY, PsiMode.SHARES):
        counts = np.zeros(40)
        for seed in range(60):
            positions = _member_positions(keys_a, keys_b, mode, seed)
            assert len(positions) == 10  # the count is what the mode reveals
            counts[positions] += 1
        assert stats.chisquare(counts).pvalue > ALPHA
        assert counts[:10].sum() < 0.5 * counts.sum()  # not concentrated on the true rows
    ra, rb = private_set_intersection(keys_a, keys_b, PsiMode.CARDINALITY, seed=4)
    assert ra.size == rb.size == 10
    assert ra.rows.size == rb.rows.size == 0 and ra.shares is None and rb.shares is None


def test_shares_reconstruct_the_indicator_and_the_responder_sees_uniform_words() -> None:
    """The responder's view (every word of the finish message) is uniform whether all or none
    of the requester's rows match; the shares add up to the membership bits."""
    n = 4000
    keys_a = _single([f"k{i}" for i in range(n)])
    views = {}
    for label, keys_b in {
        "all": _single([f"k{i}" for i in range(n)]),
        "none": _single([f"j{i}" for i in range(n)]),
        "half": _single([f"k{i}" for i in range(0, n, 2)]),
    }.items():
        mask, corr = TrustedDealer(2, SecureRandom(label.encode())).shuffle_correlation(n)
        a = PsiRequester(keys_a, PsiMode.SHARES, session=b"v", rng=SecureRandom(1), mask=mask)
        b = PsiResponder(
            keys_b, PsiMode.SHARES, session=b"v", rng=SecureRandom(2), correlation=corr
        )
        final, ra = a.finish(b.respond(a.request()))
        rb = b.finish(final)
        assert ra.shares is not None and rb.shares is not None
        truth = {"all": np.ones(n), "none": np.zeros(n), "half": (np.arange(n) % 2 == 0)}[label]
        assert np.array_equal(ra.shares + rb.shares, truth.astype(np.uint64))
        assert rb.size is None and ra.size == int(truth.sum())
        words = np.frombuffer(final[-8 * n :], dtype="<u8")
        views[label] = words
        for share in (words, rb.shares, ra.shares):
            top = np.bincount((share >> np.uint64(56)).astype(np.int64), minlength=256)
            assert stats.chisquare(top).pvalue > ALPHA
            low = (share & np.uint64(1)).astype(np.int64)  # the bit the indicator sits in
            assert stats.binomtest(int(low.sum()), n).pvalue > ALPHA
    ks = stats.ks_2samp(views["all"].astype(np.float64), views["none"].astype(np.float64))
    assert ks.pvalue > ALPHA


def test_messages_of_another_session_or_mode_are_refused() -> None:
    a = PsiRequester(_single(["x"]), PsiMode.INTERSECTION, session=b"one")
    b = PsiResponder(_single(["x"]), PsiMode.INTERSECTION, session=b"two")
    with pytest.raises(MessageError, match="session"):
        b.respond(a.request())
    c = PsiResponder(_single(["x"]), PsiMode.CARDINALITY, session=b"one")
    with pytest.raises(MessageError, match="mode"):
        c.respond(a.request())


def test_a_lying_or_broken_peer_is_refused() -> None:
    a = PsiRequester(_single(["x", "y"]), PsiMode.INTERSECTION, session=b"s")
    b = PsiResponder(_single(["x"]), PsiMode.INTERSECTION, session=b"s")
    request = a.request()
    with pytest.raises(MessageError, match="length"):
        b.respond(request[:-1])
    # x = 1 is no point's x-coordinate on P-256 (1 - 3 + b is a quadratic non-residue)
    bad = request[:-32] + (1).to_bytes(32, "big")
    with pytest.raises(MessageError, match="curve"):
        b.respond(bad)
    response = b.respond(request)
    with pytest.raises(MessageError, match="every key"):
        a.finish(_drop_first_point(response))
    final, _ = a.finish(response)
    # a requester claiming a row the responder does not have
    from tutela.smpc import psi

    forged = psi._pack(PsiMode.INTERSECTION, psi._FINISH, b"s", np.array([5], np.uint64))
    with pytest.raises(MessageError, match="rows"):
        b.finish(forged)
    assert b.finish(final).rows.tolist() == [0]


def test_an_impossible_count_is_refused() -> None:
    from tutela.smpc import psi

    a = PsiRequester(_single(["x"]), PsiMode.CARDINALITY, session=b"s")
    b = PsiResponder(_single(["x", "y"]), PsiMode.CARDINALITY, session=b"s")
    b.respond(a.request())
    forged = psi._pack(PsiMode.CARDINALITY, psi._FINISH, b"s", np.array([2], np.uint64))
    with pytest.raises(MessageError, match="count"):
        b.finish(forged)


def _drop_first_point(response: bytes) -> bytes:
    from tutela.smpc import psi

    doubled, theirs, words = psi._unpack(response, PsiMode.INTERSECTION, psi._RESPONSE, b"s")
    return psi._pack(PsiMode.INTERSECTION, psi._RESPONSE, b"s", doubled[1:], theirs)


def test_modes_check_their_inputs() -> None:
    with pytest.raises(ValueError, match="one key per row"):
        PsiRequester([(b"a", b"b")], PsiMode.CARDINALITY, session=b"s")
    with pytest.raises(ValueError, match="same number"):
        PsiRequester([(b"a",), (b"a", b"b")], PsiMode.INTERSECTION, session=b"s")
    with pytest.raises(ValueError, match="shuffle mask"):
        PsiRequester([(b"a",)], PsiMode.SHARES, session=b"s")


def test_a_noised_count_is_all_the_responder_sees() -> None:
    """With count noise (the DP release of CARDINALITY mode) the responder's result, the
    only count it receives, is the true count plus the requester's noise, clipped to the
    public sizes; other modes refuse noise."""
    keys_a = _single([f"k{i}" for i in range(30)])
    keys_b = _single([f"k{i}" for i in range(12)] + [f"other{i}" for i in range(8)])
    for noise, expected in ((3, 15), (-5, 7), (-40, 0), (50, 20)):
        a = PsiRequester(keys_a, PsiMode.CARDINALITY, session=b"dp", count_noise=noise)
        b = PsiResponder(keys_b, PsiMode.CARDINALITY, session=b"dp")
        final, ra = a.finish(b.respond(a.request()))
        assert b.finish(final).size == ra.size == expected
    with pytest.raises(ValueError, match="CARDINALITY"):
        PsiRequester(keys_a, PsiMode.INTERSECTION, session=b"dp", count_noise=1)
