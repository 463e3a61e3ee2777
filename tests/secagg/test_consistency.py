"""The consistency check (Bonawitz et al. 2017, round 3) against a server that deviates.

* the attack of issue 11 (split survivor lists plus two colluding neighbours) recovers the
  target's input exactly when only the server runs the check, and nothing when clients
  enforce it; no split of the honest clients recovers anything;
* in a sparse (Harary) graph a server that cuts the ring into two views is stopped by the
  rule that t of each revealed peer's neighbourhood signed (and succeeds without it);
* forged, unknown and repeated signatures, too few signatures, and an unmask request whose
  sets differ from the signed ones are refused; a client signs one survivor set per round;
* rounds with dropouts at every stage, the consistency stage included, give the right sum,
  and min_survivors applies to the new stage;
* without dropouts, a survivor's masked input stays uniform to a server that strips every
  pairwise mask of it (chi-square over many rounds; fails if the self mask is omitted).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import chisquare

from tests.secagg.helpers import (
    Round,
    make_round,
    masked_words,
    plain_sum,
    recover_input,
    run,
    split_view_attack,
    split_views,
)
from tutela.errors import ProtocolAbort, QuorumNotMet
from tutela.hazmat.kex import ed25519_sign, generate_ed25519, x25519_agree
from tutela.hazmat.masks import add_masks, reduce_mod
from tutela.hazmat.rng import SecureRandom
from tutela.secagg import DropoutPlan, RequestRefused, SecAggClient, SecAggConfig, Stage
from tutela.secagg.client import pair_mask_key, self_mask_key
from tutela.secagg.graph import graph_seed
from tutela.secagg.messages import (
    ConsistencyCheckRequest,
    ConsistencySignature,
    SurvivorSignature,
    UnmaskReply,
    UnmaskRequest,
    consistency_bytes,
)

ALPHA = 1e-4  # each chi-square test: false-failure rate 1e-4 for a truly uniform source


def _close_enough(rnd: Round, recovered: np.ndarray | None, target: int) -> bool:
    step = rnd.params.max_weight / rnd.params.scale
    return recovered is not None and bool(np.abs(recovered - rnd.inputs[target]).max() <= step)


# -- the attack of issue 11 -----------------------------------------------------------------

TARGET, COLLUDERS = 0, {3, 4}


def _issue_round() -> Round:
    """Five sites, complete graph k = 4, t = 3 (the floor), one dropout allowed; distinct
    constant inputs so a recovered input is unmistakable."""
    xs = {i: np.full(16, 0.1 * (i + 1)) for i in range(5)}
    rnd = make_round(5, 16, SecAggConfig(dropout_tolerance=0.2, clip=1.0), seed=111, inputs=xs)
    assert (rnd.params.neighbors, rnd.params.threshold, rnd.params.min_survivors) == (4, 3, 4)
    run(rnd, until=Stage.CONSISTENCY_CHECK)
    return rnd


def test_issue_attack_recovers_the_input_when_only_the_server_runs_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Positive control: clients that leave the check to the server (they skip verifying the
    # signatures) reveal what a split view asks, and the attack of the issue works.
    monkeypatch.setattr(SecAggClient, "_check_signatures", lambda self, params, message: None)
    rnd = _issue_round()
    views = split_views(rnd, TARGET, {2: "key"})  # site 2 is told the target dropped
    replies, refused = split_view_attack(rnd, views, COLLUDERS)
    assert refused == {} and set(replies) == {0, 1, 2}
    assert any(r.owner == TARGET for r in replies[2].mask_key_shares)
    assert any(r.owner == TARGET for r in replies[1].self_mask_shares)
    assert _close_enough(rnd, recover_input(rnd, COLLUDERS, TARGET), TARGET)


def test_issue_attack_recovers_nothing_when_clients_enforce_the_check() -> None:
    rnd = _issue_round()
    views = split_views(rnd, TARGET, {2: "key"})
    replies, refused = split_view_attack(rnd, views, COLLUDERS)
    # site 2 signed the lie but only the two colluders signed it with it: it refuses
    assert set(refused) == {2}
    assert refused[2] == (
        "only 2 of this client's neighbours signed the survivor set this client was told; "
        "t=3 are required"
    )
    assert rnd.clients[2].stage is Stage.ABORTED
    assert all(r.owner != TARGET for reply in replies.values() for r in reply.mask_key_shares)
    assert recover_input(rnd, COLLUDERS, TARGET) is None


def test_no_split_of_the_honest_sites_recovers_the_input() -> None:
    # Every way to tell the three honest sites (the target included) "survived" or
    # "dropped": with the check, the two colluders never hold t shares of both kinds.
    honest = sorted({0, 1, 2, 3, 4} - COLLUDERS)
    for kinds in itertools.product(("self", "key"), repeat=len(honest)):
        rnd = _issue_round()
        views = split_views(rnd, TARGET, dict(zip(honest, kinds, strict=True)))
        split_view_attack(rnd, views, COLLUDERS)
        assert recover_input(rnd, COLLUDERS, TARGET) is None, kinds


# -- a sparse graph cut in two ----------------------------------------------------------------


def _ring(rnd: Round) -> list[int]:
    """The ring order of the round's Harary graph (as every party computes it)."""
    ads = rnd.server._ads
    seed = graph_seed(rnd.params.round_id, (ads[i].signed_bytes() for i in sorted(ads)))
    return sorted(ads, key=lambda i: hashlib.sha256(seed + i.to_bytes(8, "big")).digest())


def _cut_ring_attack() -> tuple[Round, int, set[int], dict[int, str]]:
    """n = 20, k = 6, t = 4. The server tells the half of the ring left of the target (the
    target included) that it survived and the right half that it dropped; the colluders are
    the target's two nearest neighbours. Near the target, each honest neighbour still sees
    t signatures of its own neighbours over its view."""
    xs = {i: np.full(8, 0.05 * (i % 7)) for i in range(20)}
    rnd = make_round(20, 8, SecAggConfig(neighbors=6, clip=1.0), seed=121, inputs=xs)
    assert (rnd.params.neighbors, rnd.params.threshold) == (6, 4)
    run(rnd, until=Stage.CONSISTENCY_CHECK)
    ring = _ring(rnd)
    target = ring[0]
    colluders = {ring[1], ring[-1]}
    told = {ring[p]: "key" for p in range(1, 10)}
    return rnd, target, colluders, told


def test_a_ring_cut_in_two_views_recovers_nothing() -> None:
    rnd, target, colluders, told = _cut_ring_attack()
    _, refused = split_view_attack(rnd, split_views(rnd, target, told), colluders)
    ring = _ring(rnd)
    for p in (2, 3):  # the target's honest neighbours told "dropped" refuse to unmask
        assert "neighbourhood signed the survivor set" in refused[ring[p]]
    assert recover_input(rnd, colluders, target) is None


def test_a_ring_cut_in_two_views_recovers_the_input_without_the_peer_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Positive control: count only the client's own neighbours' signatures and the same cut
    # recovers the target's input (two colluders, t = 4 > k/2).
    monkeypatch.setattr(
        SecAggClient, "_signature_pools", lambda self: [("its neighbours", self._neighbours)]
    )
    rnd, target, colluders, told = _cut_ring_attack()
    split_view_attack(rnd, split_views(rnd, target, told), colluders)
    assert _close_enough(rnd, recover_input(rnd, colluders, target), target)


# -- what a client refuses ------------------------------------------------------------------


def _at_unmask(seed: int = 131) -> tuple[Round, dict[int, UnmaskRequest]]:
    """An honest round up to the unmask requests (k = 4, t = 3 among 7 clients)."""
    rnd = make_round(7, 4, SecAggConfig(neighbors=4, dropout_tolerance=0.3), seed=seed)
    outbox = run(rnd, until=Stage.UNMASK)
    assert all(isinstance(m, UnmaskRequest) for m in outbox.values())
    return rnd, outbox  # type: ignore[return-value]


def _other_set(rnd: Round, request: UnmaskRequest, cid: int) -> bytes:
    """The signed bytes of a survivor set other than the true one (a neighbour dropped)."""
    peer = min(set(rnd.clients[cid]._neighbours) - {cid})
    survivors = tuple(i for i in request.survivors if i != peer)
    return consistency_bytes(rnd.params.round_id, survivors, (*request.dropped, peer))


@pytest.mark.parametrize("forgery", ["flipped", "unregistered", "other set", "unknown signer"])
def test_a_forged_signature_is_refused(forgery: str) -> None:
    rnd, outbox = _at_unmask()
    request = outbox[0]
    sigs = list(request.signatures)
    victim = sigs[0]
    if forgery == "flipped":
        raw = bytearray(victim.signature)
        raw[5] ^= 1
        sigs[0] = SurvivorSignature(victim.signer, bytes(raw))
    elif forgery == "unregistered":
        mallory = generate_ed25519(SecureRandom(7))
        message = consistency_bytes(rnd.params.round_id, request.survivors, request.dropped)
        sigs[0] = SurvivorSignature(victim.signer, ed25519_sign(mallory, message))
    elif forgery == "other set":  # the signer's real key, over another survivor set
        key = rnd.clients[victim.signer]._identity
        sigs[0] = SurvivorSignature(victim.signer, ed25519_sign(key, _other_set(rnd, request, 0)))
    else:
        sigs.append(SurvivorSignature(99, victim.signature))
    expected = "unknown client 99" if forgery == "unknown signer" else "does not verify"
    with pytest.raises(RequestRefused, match=expected):
        rnd.clients[0].handle(replace(request, signatures=tuple(sigs)))
    assert rnd.clients[0].stage is Stage.ABORTED
    # the untouched request would have been answered
    rnd2, outbox2 = _at_unmask()
    assert isinstance(rnd2.clients[0].handle(outbox2[0]), UnmaskReply)


def test_a_repeated_signature_is_refused() -> None:
    rnd, outbox = _at_unmask()
    request = outbox[1]
    twice = (*request.signatures, request.signatures[0])
    with pytest.raises(RequestRefused, match=f"two signatures of client {twice[0].signer}"):
        rnd.clients[1].handle(replace(request, signatures=twice))


def test_too_few_signatures_are_refused() -> None:
    rnd, outbox = _at_unmask()
    cid = 2
    request = outbox[cid]
    t = rnd.params.threshold
    near = rnd.clients[cid]._neighbours
    kept_near = sorted(s.signer for s in request.signatures if s.signer in near)[: t - 1]
    few = tuple(s for s in request.signatures if s.signer not in near or s.signer in kept_near)
    with pytest.raises(RequestRefused, match=f"only {t - 1} of this client's neighbours"):
        rnd.clients[cid].handle(replace(request, signatures=few))
    rnd2, outbox2 = _at_unmask()
    with pytest.raises(RequestRefused, match="only 0 of"):
        rnd2.clients[cid].handle(replace(outbox2[cid], signatures=()))


def test_an_unmask_request_whose_sets_differ_from_the_signed_ones_is_refused() -> None:
    for alter in ("dropped", "survivor removed", "dropped removed"):
        rnd = make_round(7, 4, SecAggConfig(neighbors=4, dropout_tolerance=0.3), seed=141)
        outbox = run(rnd, DropoutPlan.at(Stage.MASKED_INPUT, [6]), until=Stage.UNMASK)
        cid = next(c for c in outbox if 6 not in rnd.clients[c]._peer_shares)
        request = outbox[cid]
        assert isinstance(request, UnmaskRequest) and request.dropped == (6,)
        peer = max(i for i in request.survivors if i != cid)
        if alter == "dropped":  # a survivor moved to the dropped set, signatures kept
            new = replace(
                request,
                survivors=tuple(i for i in request.survivors if i != peer),
                dropped=tuple(sorted((*request.dropped, peer))),
            )
        elif alter == "survivor removed":
            new = replace(request, survivors=tuple(i for i in request.survivors if i != peer))
        else:
            new = replace(request, dropped=())
        with pytest.raises(RequestRefused, match="differs from the set this client signed"):
            rnd.clients[cid].handle(new)


def test_a_client_signs_one_survivor_set_per_round() -> None:
    rnd = make_round(7, 4, SecAggConfig(neighbors=4, dropout_tolerance=0.3), seed=151)
    outbox = run(rnd, until=Stage.CONSISTENCY_CHECK)
    request = outbox[0]
    assert isinstance(request, ConsistencyCheckRequest)
    first = rnd.clients[0].handle(request)
    assert isinstance(first, ConsistencySignature)
    assert rnd.clients[0].handle(request) == first  # an honest repeat: the same answer
    peer = max(request.survivors)
    other = replace(
        request,
        survivors=tuple(i for i in request.survivors if i != peer),
        dropped=(*request.dropped, peer),
    )
    with pytest.raises(RequestRefused, match="second, different survivor set"):
        rnd.clients[0].handle(other)


def test_a_survivor_set_that_omits_a_neighbour_or_names_strangers_is_refused() -> None:
    rnd = make_round(7, 4, SecAggConfig(neighbors=4, dropout_tolerance=0.3), seed=161)
    outbox = run(rnd, until=Stage.CONSISTENCY_CHECK)
    request = outbox[1]
    assert isinstance(request, ConsistencyCheckRequest)
    peer = min(rnd.clients[1]._peer_shares)
    omitted = replace(request, survivors=tuple(i for i in request.survivors if i != peer))
    with pytest.raises(RequestRefused, match="omits a neighbour"):
        rnd.clients[1].handle(omitted)
    with pytest.raises(RequestRefused, match="never advertised"):
        rnd.clients[2].handle(replace(outbox[2], dropped=(77,)))  # type: ignore[arg-type]
    with pytest.raises(RequestRefused, match="sorted"):
        rnd.clients[3].handle(replace(outbox[3], survivors=(3, 3, 4, 5, 6)))  # type: ignore[arg-type]


def test_the_server_rejects_a_signature_over_another_set() -> None:
    rnd = make_round(7, 4, SecAggConfig(neighbors=4, dropout_tolerance=0.3), seed=171)
    outbox = run(rnd, until=Stage.CONSISTENCY_CHECK)
    request = outbox[4]
    assert isinstance(request, ConsistencyCheckRequest)
    real = rnd.clients[4].handle(request)
    assert isinstance(real, ConsistencySignature)
    wrong = ed25519_sign(
        rnd.clients[4]._identity,
        consistency_bytes(rnd.params.round_id, request.survivors[1:], request.dropped),
    )
    assert rnd.server.receive(4, replace(real, signature=wrong)) is False
    assert rnd.server.rejected[-1] == (
        4,
        "consistency signature does not verify over the survivor set",
    )
    assert rnd.server.receive(4, real) is True


# -- dropouts ---------------------------------------------------------------------------------


def test_dropouts_at_every_stage_in_one_round_give_the_right_sum() -> None:
    plan = DropoutPlan(
        advertise_keys=frozenset({1}),
        share_keys=frozenset({4}),
        masked_input=frozenset({7}),
        consistency_check=frozenset({9}),
        unmask=frozenset({11}),
    )
    rnd = make_round(14, 6, SecAggConfig(dropout_tolerance=0.36), seed=181)
    run(rnd, plan)
    res = rnd.server.result()
    # clients that sent a masked input count, whether or not they signed or unmasked
    assert res.survivors == tuple(i for i in range(14) if i not in (1, 4, 7))
    assert res.dropped == {
        "advertise_keys": (1,),
        "share_keys": (4,),
        "masked_input": (7,),
        "consistency_check": (9,),
        "unmask": (11,),
    }
    bound = rnd.params.quantization_error_bound(len(res.survivors))
    assert np.abs(res.total - plain_sum(rnd, res.survivors)).max() <= bound


def test_min_survivors_applies_to_the_consistency_stage() -> None:
    rnd = make_round(10, 4, SecAggConfig(dropout_tolerance=0.1), seed=191)
    with pytest.raises(QuorumNotMet, match="consistency_check: 8 clients answered"):
        run(rnd, DropoutPlan.at(Stage.CONSISTENCY_CHECK, [2, 5]))
    assert rnd.server.stage is Stage.ABORTED


def test_the_server_aborts_when_a_client_could_not_hold_t_signatures() -> None:
    # two of client 0's four neighbours stop after their masked input: its neighbourhood
    # has 2 < t = 3 signatures, so the server aborts instead of asking it to unmask
    rnd = make_round(9, 4, SecAggConfig(neighbors=4, dropout_tolerance=0.34), seed=201)
    run(rnd, until=Stage.MASKED_INPUT)
    gone = sorted(rnd.clients[0]._neighbours)[:2]
    rnd = make_round(9, 4, SecAggConfig(neighbors=4, dropout_tolerance=0.34), seed=201)
    with pytest.raises(ProtocolAbort, match=r"consistency_check: clients .*fewer than t=3"):
        run(rnd, DropoutPlan.at(Stage.CONSISTENCY_CHECK, gone))


# -- uniformity without dropouts ----------------------------------------------------------


def _first_word_without_pair_masks(rnd: Round, cid: int, *, strip_self: bool = False) -> int:
    """Client ``cid``'s first masked word minus every pairwise mask of it (and, for the
    control, minus its self mask too)."""
    p = rnd.params
    client = rnd.clients[cid]
    words = masked_words(rnd, cid)[:1].copy()
    plus, minus = [], []
    for j in client._peer_shares:
        shared = x25519_agree(client._mask_key, client._ads[j].mask_key)
        (minus if cid < j else plus).append(pair_mask_key(p.round_id, cid, j, shared))
    if strip_self:
        minus.append(self_mask_key(p.round_id, cid, client._seed))
    add_masks(words, plus, minus, p.modulus_bits)
    return int(reduce_mod(words, p.modulus_bits)[0])


def test_without_dropouts_a_masked_input_stays_uniform_over_many_rounds() -> None:
    """1,280 rounds of three clients, no dropouts, a constant input. The server sees each
    masked input before it asks for any share; even a server that also held every pairwise
    mask of client 0 (e.g. by claiming it dropped) sees a uniform word: the self mask. Chi-
    square over the 16 values of the low and of the high 4 bits of the first 8-bit word, 80
    expected per bin: two checks at ALPHA, false failure at most 2e-4 (seeds fixed). The
    same statistic without the self mask is the constant encoding, which fails it.
    """
    rounds, low, high, exposed = 1280, [], [], []
    for seed in range(rounds):
        xs = {i: np.array([0.5]) for i in range(3)}
        rnd = make_round(3, 1, SecAggConfig(modulus_bits=8, clip=1.0), seed=seed, inputs=xs)
        run(rnd)
        assert rnd.server.result().survivors == (0, 1, 2)
        word = _first_word_without_pair_masks(rnd, 0)
        low.append(word & 0xF)
        high.append(word >> 4)
        if seed < 64:
            exposed.append(_first_word_without_pair_masks(rnd, 0, strip_self=True))
    for nibbles in (low, high):
        assert chisquare(np.bincount(nibbles, minlength=16)).pvalue > ALPHA
    # control: what the self mask hides is the same value every round
    assert len(set(exposed)) == 1
    assert chisquare(np.bincount(np.array(exposed) & 0xF, minlength=16)).pvalue < ALPHA
