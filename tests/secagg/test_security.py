"""Security properties that would fail if the guarantee broke.

* one client's masked input is uniform over Z_{2^b} (chi-square), and without dropouts it
  stays uniform to the server after the server has rebuilt every survivor's self mask;
* a round whose threshold is not above half the neighbourhood (or below the site's own
  minimum) is refused by every client before any key or share leaves it;
* the server's view plus t - 1 colluding clients does not reveal an individual update (and
  the same attack with t colluders does, so the test can see a break);
* forged, altered and replayed key advertisements are rejected;
* an honest client never reveals both shares of one peer; a server that asks is refused.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import chisquare

from tests.secagg.helpers import (
    Round,
    adversary_shares,
    make_round,
    masked_words,
    plain_sum,
    recover_input,
    run,
    secret_of,
    split_view_attack,
    split_views,
)
from tutela.errors import ProtocolAbort
from tutela.hazmat.kex import (
    ed25519_public_bytes,
    ed25519_sign,
    generate_ed25519,
    x25519_agree,
)
from tutela.hazmat.masks import add_masks, expand_mask, mask_dtype, reduce_mod
from tutela.hazmat.rng import SecureRandom
from tutela.secagg import (
    AdvertisementRejected,
    ClientPolicy,
    DropoutPlan,
    RequestRefused,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    Stage,
    decode_message,
    encode_message,
)
from tutela.secagg.client import pair_mask_key, self_mask_key
from tutela.secagg.config import majority_threshold
from tutela.secagg.messages import (
    AdvertiseKeysRequest,
    ConsistencyCheckRequest,
    KeyAdvertisement,
    ShareKeysRequest,
    UnmaskReply,
    UnmaskRequest,
)

ALPHA = 1e-4  # each chi-square test: false-failure rate 1e-4 for a truly uniform source


def test_single_masked_input_is_uniform_chi_square() -> None:
    # b = 8: chi-square over all of Z_256, 100 expected per bin. The input is maximally
    # structured (a constant), and its unmasked encoding fails the same test.
    dim = 25_600
    xs = {i: np.full(dim, 0.5) for i in range(5)}
    rnd = make_round(5, dim, SecAggConfig(modulus_bits=8, clip=1.0), seed=11, inputs=xs)
    run(rnd)
    words = masked_words(rnd, 0)[:dim].astype(np.int64)
    assert chisquare(np.bincount(words, minlength=256)).pvalue > ALPHA
    plain = np.round(xs[0] * rnd.params.scale).astype(np.int64) % 256
    assert chisquare(np.bincount(plain, minlength=256)).pvalue < ALPHA
    # the round still sums correctly at b = 8
    res = rnd.server.result()
    assert np.abs(res.total - 2.5).max() <= rnd.params.quantization_error_bound(5)


def test_without_dropouts_a_survivors_input_stays_uniform_to_the_server() -> None:
    """No dropouts: at unmask the server rebuilds every survivor's self mask (it must, to
    release the sum); what is left of each masked input (input plus pairwise masks) must
    still be uniform. Chi-square over the low and the high 8 bits of 25,600 32-bit words
    per survivor, 100 expected per bin: 10 checks at ALPHA each, so a false failure for a
    truly uniform source has probability at most 1e-3 (the seeds are fixed).
    """
    n, dim = 5, 25_600
    xs = {i: np.full(dim, 0.5 - 0.25 * i) for i in range(n)}
    rnd = make_round(n, dim, SecAggConfig(modulus_bits=32, clip=1.0), seed=31, inputs=xs)
    run(rnd)
    res = rnd.server.result()
    assert res.survivors == tuple(range(n))
    assert np.abs(res.total - plain_sum(rnd, res.survivors)).max() <= (
        rnd.params.quantization_error_bound(n)
    )
    for cid in range(n):
        self_sh, key_sh = adversary_shares(rnd, set(), cid)
        assert len(self_sh) >= rnd.params.threshold and key_sh == {}  # the server's view
        residual = _residual(rnd, set(), cid)[:dim].astype(np.int64)
        for low_bits in (residual & 0xFF, residual >> 24):
            assert chisquare(np.bincount(low_bits, minlength=256)).pvalue > ALPHA, cid
    # positive control: strip the pairwise masks too (every other client colluding) and
    # what is left is the constant encoding, which the same test rejects
    exposed = _residual(rnd, set(range(1, n)), 0)[:dim].astype(np.int64)
    assert chisquare(np.bincount(exposed & 0xFF, minlength=256)).pvalue < ALPHA


# -- thresholds the coordinator cannot lower ----------------------------------------------


def _floor_round() -> Round:
    rnd = make_round(7, 4, SecAggConfig(neighbors=4, dropout_tolerance=0.2), seed=61)
    assert rnd.params.neighbors == 4 and rnd.params.threshold == majority_threshold(4) == 3
    return rnd


@pytest.mark.parametrize("threshold", [1, 2])
def test_a_coordinator_asking_a_low_threshold_is_refused_by_every_client(threshold: int) -> None:
    rnd = _floor_round()
    # the coordinator writes its own plan: t = 1 (every share is the secret) or t = k/2
    weak = replace(rnd.params, threshold=threshold)
    wire = encode_message(AdvertiseKeysRequest(weak))
    for cid, client in rnd.clients.items():
        request = decode_message(wire)
        assert isinstance(request, AdvertiseKeysRequest) and request.params.threshold == threshold
        with pytest.raises(RequestRefused, match=f"threshold {threshold} is not above half"):
            client.handle(request)
        assert client.stage is Stage.ABORTED, cid
        assert client._peer_shares == {} and not hasattr(client, "_own_ad")  # nothing sent
        with pytest.raises(ProtocolAbort, match="aborted"):
            client.handle(decode_message(wire))  # type: ignore[arg-type]
    # a site policy that would allow it changes nothing: the majority floor is not a setting
    permissive = ClientPolicy(min_threshold=1)
    key = generate_ed25519(SecureRandom(62))
    lone = SecAggClient(0, key, {0: ed25519_public_bytes(key)}, policy=permissive)
    with pytest.raises(RequestRefused, match="not above half"):
        lone.handle(AdvertiseKeysRequest(weak))
    # and neither an honest coordinator's plan nor its server accepts such a round
    with pytest.raises(ValueError, match=r"threshold must be in \[3, k=4\]"):
        SecAggConfig(neighbors=4, threshold=threshold).plan(
            tuple(range(7)), 4, max_weight=1.0, round_id=bytes(32)
        )
    with pytest.raises(ValueError, match="threshold"):
        SecAggServer(weak, rnd.registry)


def test_a_plan_at_the_floor_completes_and_a_site_minimum_above_it_refuses() -> None:
    rnd = _floor_round()
    run(rnd)
    res = rnd.server.result()
    assert res.survivors == tuple(range(7))
    assert np.abs(res.total - plain_sum(rnd, res.survivors)).max() <= (
        rnd.params.quantization_error_bound(7)
    )
    # the complete graph (k = n - 1 = 3, odd): t = 2 is the floor, t = 1 is refused
    small = make_round(4, 3, SecAggConfig(), seed=63)
    assert (small.params.neighbors, small.params.threshold) == (3, 2)
    with pytest.raises(RequestRefused, match="threshold 1 is not above half"):
        small.clients[0].handle(AdvertiseKeysRequest(replace(small.params, threshold=1)))
    run(make_round(4, 3, SecAggConfig(), seed=63))
    # a site may ask for more than the floor, and then refuses the floor
    key = generate_ed25519(SecureRandom(64))
    strict = SecAggClient(
        0, key, {0: ed25519_public_bytes(key)}, policy=ClientPolicy(min_threshold=4)
    )
    with pytest.raises(RequestRefused, match="below the site's 4"):
        strict.handle(AdvertiseKeysRequest(rnd.params))
    assert ClientPolicy().min_threshold == 2


# -- collusion ----------------------------------------------------------------------------


def _residual(rnd: Round, colluders: set[int], target: int) -> np.ndarray:
    """The target's masked input minus every mask the adversary can compute."""
    p = rnd.params
    words = masked_words(rnd, target).copy()
    self_sh, _ = adversary_shares(rnd, colluders, target)
    minus = []
    if len(self_sh) >= p.threshold:
        minus.append(self_mask_key(p.round_id, target, secret_of(self_sh, p.threshold)))
    plus = []
    for c in colluders & set(rnd.clients[target]._peer_shares):
        shared = x25519_agree(rnd.clients[c]._mask_key, rnd.clients[c]._ads[target].mask_key)
        (minus if target < c else plus).append(pair_mask_key(p.round_id, target, c, shared))
    add_masks(words, plus, minus, p.modulus_bits)
    return reduce_mod(words, p.modulus_bits)


def _collusion_round() -> tuple[Round, int, list[int]]:
    dim = 12_800
    cfg = SecAggConfig(neighbors=6, modulus_bits=8, clip=1.0, dropout_tolerance=0.2)
    xs = {i: np.full(dim, 0.25 * (i % 3)) for i in range(10)}
    rnd = make_round(10, dim, cfg, seed=21, inputs=xs)
    # client 9 drops after sharing keys, so the server asks for (and gets) its mask key
    run(rnd, DropoutPlan.at(Stage.MASKED_INPUT, [9]))
    assert rnd.params.threshold == 4
    target = 0
    neighbours_of_target = sorted(rnd.clients[target]._neighbours - {9})
    return rnd, target, neighbours_of_target


def test_server_with_t_minus_1_colluders_learns_no_update() -> None:
    rnd, target, near = _collusion_round()
    t = rnd.params.threshold
    colluders = set(near[: t - 1])  # worst case: t - 1 of the target's own neighbours
    honest = [i for i in rnd.clients if i not in colluders and i != 9]
    for victim in honest:
        assert recover_input(rnd, colluders, victim) is None
    # what the adversary can strip leaves a uniform vector (the honest pairwise masks)
    residual = _residual(rnd, colluders, target)[: rnd.params.dim].astype(np.int64)
    assert chisquare(np.bincount(residual, minlength=256)).pvalue > ALPHA
    # the dropped client's masked input was never sent, and its self-mask seed never revealed
    self_sh, key_sh = adversary_shares(rnd, colluders, 9)
    assert len(key_sh) >= t and len(self_sh) < t


def test_same_attack_with_t_colluders_recovers_the_update() -> None:
    # positive control: the attack above is real, so its failure means something
    rnd, target, near = _collusion_round()
    t = rnd.params.threshold
    recovered = recover_input(rnd, set(near[:t]), target)
    assert recovered is not None
    assert np.abs(recovered - rnd.inputs[target]).max() <= rnd.params.max_weight / rnd.params.scale


def test_no_peer_ever_has_both_shares_revealed() -> None:
    for seed in range(3):
        rnd = make_round(8, 4, SecAggConfig(neighbors=6, dropout_tolerance=0.25), seed=seed)
        plan = DropoutPlan.random(range(8), 0.25, rng=SecureRandom(seed))
        run(rnd, plan)
        revealed: dict[tuple[int, int], set[str]] = {}
        for direction, sender, msg in rnd.transcript:
            if direction == "up" and isinstance(msg, UnmaskReply):
                for r in msg.self_mask_shares:
                    revealed.setdefault((sender, r.owner), set()).add("self")
                for r in msg.mask_key_shares:
                    revealed.setdefault((sender, r.owner), set()).add("key")
        assert revealed and all(len(kinds) == 1 for kinds in revealed.values())


# -- refused double share -------------------------------------------------------------------


def _at_unmask() -> tuple[Round, dict]:
    rnd = make_round(6, 4, SecAggConfig(neighbors=4, dropout_tolerance=0.34), seed=31)
    outbox = run(rnd, until=Stage.UNMASK)
    return rnd, outbox


def test_server_asking_for_both_shares_is_refused() -> None:
    rnd, outbox = _at_unmask()
    request = outbox[0]
    assert isinstance(request, UnmaskRequest)
    client = rnd.clients[0]
    reply = client.handle(request)
    peer = reply.self_mask_shares[0].owner
    # the same server now claims that peer dropped, asking for its mask-key share too
    twist = UnmaskRequest(
        request.round_id,
        tuple(i for i in request.survivors if i != peer),
        (*request.dropped, peer),
    )
    with pytest.raises(RequestRefused, match="both"):
        client.handle(twist)
    with pytest.raises(ProtocolAbort):  # the client has aborted the round
        client.handle(request)


def test_one_request_listing_a_peer_twice_is_refused() -> None:
    rnd, outbox = _at_unmask()
    request = outbox[1]
    assert isinstance(request, UnmaskRequest)
    peer = next(iter(rnd.clients[1]._peer_shares))
    with pytest.raises(RequestRefused):
        rnd.clients[1].handle(replace(request, dropped=(*request.dropped, peer)))


def test_client_refuses_to_sign_below_min_survivors_or_when_listed_dropped() -> None:
    rnd = make_round(6, 4, SecAggConfig(neighbors=4, dropout_tolerance=0.34), seed=31)
    outbox = run(rnd, until=Stage.CONSISTENCY_CHECK)
    request = outbox[2]
    assert isinstance(request, ConsistencyCheckRequest)
    few = request.survivors[: rnd.params.min_survivors - 1]
    if 2 not in few:
        few = (*few[:-1], 2)
    rest = tuple(sorted({*request.survivors, *request.dropped} - set(few)))
    with pytest.raises(RequestRefused, match="min_survivors"):
        rnd.clients[2].handle(replace(request, survivors=few, dropped=rest))
    with pytest.raises(RequestRefused, match="not listed as a survivor"):
        rnd.clients[3].handle(
            replace(
                request,
                survivors=tuple(i for i in request.survivors if i != 3),
                dropped=(*request.dropped, 3),
            )
        )
    for cid in (2, 3):  # nothing was signed, and the clients have left the round
        assert rnd.clients[cid].stage is Stage.ABORTED


def test_honest_repeat_of_the_same_request_is_answered() -> None:
    rnd, outbox = _at_unmask()
    request = outbox[4]
    assert isinstance(request, UnmaskRequest)
    first = rnd.clients[4].handle(request)
    assert rnd.clients[4].handle(request) == first


# -- advertisements -------------------------------------------------------------------------


def _ads(rnd: Round) -> dict[int, KeyAdvertisement]:
    return {s: m for d, s, m in rnd.transcript if d == "up" and isinstance(m, KeyAdvertisement)}


def test_replayed_advertisement_from_another_round_is_rejected() -> None:
    cfg = SecAggConfig(neighbors=4, dropout_tolerance=0.2)
    old = make_round(6, 3, cfg, seed=41, identities_seed=7)
    run(old)
    stale = _ads(old)[1]

    new = make_round(6, 3, cfg, seed=42, identities_seed=7)  # same long-term identities

    def replay(stage: Stage, cid: int, msg: object) -> object:
        if isinstance(msg, ShareKeysRequest):
            ads = tuple(stale if a.client_id == 1 else a for a in msg.advertisements)
            return replace(msg, advertisements=ads)
        return msg

    with pytest.raises(AdvertisementRejected, match="another round"):
        run(new, tamper=replay)  # type: ignore[arg-type]
    # the server refuses it as well
    fresh = make_round(6, 3, cfg, seed=43, identities_seed=7)
    fresh.server.start()
    assert fresh.server.receive(1, stale) is False


@pytest.mark.parametrize(
    "field", ["mask_key", "encryption_key", "self_mask_commitment", "client_id"]
)
def test_altered_advertisement_is_rejected(field: str) -> None:
    rnd = make_round(6, 3, SecAggConfig(neighbors=4, dropout_tolerance=0.2), seed=51)

    def alter(stage: Stage, cid: int, msg: object) -> object:
        if isinstance(msg, ShareKeysRequest):
            ads = list(msg.advertisements)
            victim = ads[2]
            if field == "client_id":
                # client 5's advertisement relabelled as client 2's (impersonation)
                ads[2] = replace(ads[5], client_id=victim.client_id)
            else:
                value = bytearray(getattr(victim, field))
                value[0] ^= 1
                ads[2] = replace(victim, **{field: bytes(value)})
            return replace(msg, advertisements=tuple(ads))
        return msg

    with pytest.raises(AdvertisementRejected, match="signature"):
        run(rnd, tamper=alter)  # type: ignore[arg-type]


def test_advertisement_signed_by_an_unregistered_key_is_rejected() -> None:
    rnd = make_round(5, 3, SecAggConfig(dropout_tolerance=0.2), seed=61)
    outbox = rnd.server.start()
    real = rnd.clients[3].handle(outbox[3])  # type: ignore[arg-type]
    assert isinstance(real, KeyAdvertisement)
    mallory = generate_ed25519(SecureRandom(99))
    forged = replace(real, signature=ed25519_sign(mallory, real.signed_bytes()))
    assert rnd.server.receive(3, forged) is False
    assert "signature" in rnd.server.rejected[-1][1]
    rnd.clients[0].handle(outbox[0])  # type: ignore[arg-type]
    with pytest.raises(AdvertisementRejected):
        rnd.clients[0].verify_advertisement(forged)


def test_mask_words_come_from_seeded_aes_not_a_short_seed() -> None:
    # the self mask is a function of a 256-bit seed: flipping any seed byte changes it
    p_bits = 32
    base = expand_mask(self_mask_key(bytes(32), 1, bytes(32)), 64, p_bits)
    for i in (0, 15, 31):
        seed = bytearray(32)
        seed[i] = 1
        assert not np.array_equal(
            base, expand_mask(self_mask_key(bytes(32), 1, bytes(seed)), 64, p_bits)
        )
    assert base.dtype == mask_dtype(p_bits)


def test_split_view_server_cannot_collect_both_when_t_exceeds_k_over_2() -> None:
    # A malicious server tells half of the target's neighbours "the target survived" and the
    # other half "the target dropped", and forwards to each the signatures over its own set.
    # With t > k/2 and no colluders neither half has t shares (and with the consistency
    # check neither half even holds t signatures, so nobody reveals anything).
    rnd = make_round(9, 4, SecAggConfig(neighbors=6, dropout_tolerance=0.2), seed=81)
    run(rnd, until=Stage.CONSISTENCY_CHECK)
    target = 0
    near = sorted(rnd.clients[target]._peer_shares)
    t = rnd.params.threshold
    assert len(near) == 6 and t == 4
    told = {cid: ("key" if idx % 2 else "self") for idx, cid in enumerate(near)}
    views = split_views(rnd, target, told)
    replies, refused = split_view_attack(rnd, views, colluders=set())
    got = {
        kind: sum(
            any(r.owner == target for r in getattr(reply, f"{kind}_shares"))
            for reply in replies.values()
        )
        for kind in ("self_mask", "mask_key")
    }
    assert got["self_mask"] < t and got["mask_key"] < t
    assert set(refused) >= set(near)  # every neighbour of the target refused to unmask


def test_site_policy_floor_refuses_weaker_rounds() -> None:
    from tutela.hazmat.kex import ed25519_public_bytes
    from tutela.secagg import ClientPolicy, SecAggClient
    from tutela.secagg.messages import AdvertiseKeysRequest

    key = generate_ed25519(SecureRandom(91))
    registry = {0: ed25519_public_bytes(key)}
    weak = make_round(6, 3, SecAggConfig(dropout_tolerance=0.2, ddp_sigma=0.5), seed=92).params
    request = AdvertiseKeysRequest(weak)
    with pytest.raises(RequestRefused, match="distributed-DP"):
        SecAggClient(0, key, registry, policy=ClientPolicy(min_ddp_sigma=0.6)).handle(request)
    with pytest.raises(RequestRefused, match="threshold"):
        SecAggClient(0, key, registry, policy=ClientPolicy(min_threshold=6)).handle(request)
    ok = SecAggClient(0, key, registry, policy=ClientPolicy(min_ddp_sigma=0.5, min_threshold=2))
    assert isinstance(ok.handle(request), KeyAdvertisement)
