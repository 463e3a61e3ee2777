"""Dealer-free threshold Paillier keys: correct, needing every share, and nobody holds the key."""

from __future__ import annotations

import dataclasses
import math
import random

import gmpy2
import numpy as np
import pytest

from tutela.errors import IntegrityError, ProtocolAbort
from tutela.hazmat.rng import SecureRandom
from tutela.he import _integers
from tutela.he.keygen import (
    KeyGenMessage,
    KeyGenParams,
    KeyGenParty,
    Phase,
    biprimality_base,
    biprimality_passes,
    biprimality_values,
    generate_threshold_keys,
    run_parties,
)
from tutela.he.keyreport import KeyGenMode
from tutela.he.threshold import KeyShare, aggregate, combine, encrypt_update, partial_decrypt

SMALL = KeyGenParams(key_bits=256, batch=16)


def _parties(n_holders: int, helpers: int = 0, *, seed: int = 1, params=SMALL):
    return [
        KeyGenParty(
            i,
            n_holders,
            helpers=helpers,
            params=params,
            session=b"test-session",
            rng=SecureRandom(b"party/%d/%d" % (seed, i)),
        )
        for i in range(n_holders + helpers)
    ]


def _factor_from_multiple_of_phi(n: int, k: int) -> tuple[int, int]:
    """Miller's reduction: a multiple of phi(n) factors n (what all key holders could do)."""
    s, t = 0, k
    while t % 2 == 0:
        s, t = s + 1, t // 2
    for a in range(2, 200):
        x = pow(a, t, n)
        for _ in range(s):
            y = x * x % n
            if y == 1 and x not in (1, n - 1):
                p = math.gcd(x - 1, n)
                return p, n // p
            x = y
    raise AssertionError("could not factor")


def _raw_decrypt(n: int, exponents, m: int) -> int:
    n2 = n * n
    c = (1 + m * n) * pow(123457, n, n2) % n2
    acc = 1
    for d in exponents:
        acc = acc * pow(c, d, n2) % n2
    return (acc - 1) // n if acc % n == 1 else -1


@pytest.fixture(scope="module")
def dealer_free_1024():
    return generate_threshold_keys(3, key_bits=1024, seed=b"fixture")


def test_generated_key_decrypts_with_all_partials_and_never_with_fewer(dealer_free_1024) -> None:
    keys = dealer_free_1024
    pk, shares = keys.public_key, keys.shares
    xs = [np.array([0.5, -1.25, 3.0]), np.array([1.0, 2.0, -0.5])]
    agg = aggregate(pk, [encrypt_update(pk, x, aggregation_id=b"k") for x in xs])
    partials = [partial_decrypt(s, agg) for s in shares]
    result = combine(pk, agg, partials)
    assert np.max(np.abs(result.values - (xs[0] + xs[1]))) <= result.error_bound
    with pytest.raises(IntegrityError):
        combine(pk, agg, partials[:-1])
    # two key holders pooling their shares into a forged third partial get nothing
    pooled = KeyShare(2, 3, pk, shares[0].exponent + shares[1].exponent)
    with pytest.raises(IntegrityError):
        combine(pk, agg, [*partials[:2], partial_decrypt(pooled, agg)])
    assert keys.report.mode is KeyGenMode.DISTRIBUTED and not keys.report.dealer_saw_key
    assert keys.report.trials >= keys.report.biprimality_tests >= 1


@pytest.mark.parametrize(("holders", "helpers"), [(2, 1), (3, 0), (4, 0), (5, 0), (2, 2)])
def test_every_party_count_yields_a_biprime_and_an_n_of_n_key(holders, helpers) -> None:
    parties = _parties(holders, helpers, seed=holders * 10 + helpers)
    run_parties(parties)
    n = parties[0].modulus
    assert all(p.modulus == n for p in parties) and n.bit_length() == 256
    exps = [p.exponent for p in parties[:holders]]
    d = sum(exps)
    assert d % n == 1
    p, q = _factor_from_multiple_of_phi(n, d)
    assert gmpy2.is_prime(p) and gmpy2.is_prime(q) and p != q and p * q == n
    assert p % 4 == 3 and q % 4 == 3
    assert d % math.lcm(p - 1, q - 1) == 0
    m = random.Random(holders).randrange(n)
    assert _raw_decrypt(n, exps, m) == m
    for drop in range(holders):  # any N-1 key holders decrypt nothing
        assert _raw_decrypt(n, exps[:drop] + exps[drop + 1 :], m) != m
    for helper in parties[holders:]:
        assert helper.exponent is None
        with pytest.raises(ValueError):
            helper.key_share()


def _ints(obj, seen=None):
    """Every integer reachable from an object (attributes, containers, dataclasses)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, bool):
        return
    if isinstance(obj, int):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _ints(k, seen)
            yield from _ints(v, seen)
    elif isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            yield from _ints(v, seen)
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _ints(getattr(obj, f.name), seen)
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("tutela.he"):
        yield from _ints(vars(obj), seen)


@pytest.mark.parametrize(("holders", "helpers"), [(3, 0), (2, 1)])
def test_no_party_view_holds_a_factor_phi_or_the_key(holders, helpers) -> None:
    """Each party's final state and its whole transcript (every message it sent or got)."""
    parties = _parties(holders, helpers, seed=7)
    views: dict[int, list[KeyGenMessage]] = {p.index: [] for p in parties}

    def record(messages):
        for m in messages:
            for p in parties:
                if m.sender == p.index or m.receiver in (None, p.index):
                    views[p.index].append(m)
        return messages

    run_parties(parties, relay=record)
    n = parties[0].modulus
    exps = [p.exponent for p in parties[:holders]]
    d = sum(exps)
    p, q = _factor_from_multiple_of_phi(n, d)
    secrets = {p, q, (p - 1) * (q - 1), math.lcm(p - 1, q - 1), d, p + q}
    for party in parties:
        values = list(_ints(party)) + list(_ints(views[party.index]))
        assert len(values) > 1000  # the transcript really was scanned
        assert not secrets & set(values), party
        assert not any(1 < math.gcd(v, n) < n for v in values), party
    # a single share is a wide integer, not a key: alone it decrypts nothing
    for e in exps:
        assert e.bit_length() > d.bit_length() + 100
        assert _raw_decrypt(n, [e], 5) != 5


def test_shares_look_uniform_across_runs() -> None:
    """The low bits of a key holder's share are balanced over independent generations."""
    bits = []
    for seed in range(12):
        parties = _parties(3, seed=100 + seed)
        run_parties(parties)
        bits.extend((parties[1].exponent >> k) & 1 for k in range(64))
    assert 0.4 < sum(bits) / len(bits) < 0.6


def _tamper(phase: Phase, change, *, holders: int = 3, helpers: int = 0, params=SMALL):
    parties = _parties(holders, helpers, seed=3, params=params)
    done = []

    def relay(messages):
        if done or not messages or messages[0].phase is not phase:
            return messages
        done.append(True)
        return change(list(messages))

    run_parties(parties, relay=relay)


def _replace(m: KeyGenMessage, **kw) -> KeyGenMessage:
    return dataclasses.replace(m, **kw)


def test_malformed_messages_abort_with_a_clear_error() -> None:
    big = SMALL.modulus_field
    cases = [
        (
            lambda ms: [_replace(ms[1], values=(big, *ms[1].values[1:])), *ms[2:], *ms[:1]],
            "out of range",
        ),
        (lambda ms: [_replace(ms[0], values=ms[0].values[:-1]), *ms[1:]], "values in CANDIDATE"),
        (lambda ms: [*ms, ms[0]], "two CANDIDATE messages"),
        (lambda ms: [m for m in ms if m.sender != 1], r"no CANDIDATE message from parties \[1\]"),
        (lambda ms: [_replace(ms[0], round=0), *ms[1:]], "another session, round or phase"),
        (lambda ms: [_replace(ms[0], session=b"other"), *ms[1:]], "another session"),
        (lambda ms: [_replace(ms[0], receiver=None), *ms[1:]], "wrong receiver"),
        (lambda ms: [_replace(ms[0], sender=9), *ms[1:]], "outside the roster"),
    ]
    for change, match in cases:
        with pytest.raises(ProtocolAbort, match=match):
            _tamper(Phase.CANDIDATE, change)


def test_an_inconsistent_reveal_aborts_when_points_are_redundant() -> None:
    """Four parties reveal a degree-2 polynomial: a lie at one point is caught."""

    def lie(ms):
        bad = ms[1]
        return [
            ms[0],
            _replace(bad, values=((bad.values[0] + 1) % SMALL.modulus_field, *bad.values[1:])),
            *ms[2:],
        ]

    with pytest.raises(ProtocolAbort, match="do not lie on one polynomial"):
        _tamper(Phase.MODULUS, lie, holders=4)


def test_a_corrupted_key_piece_fails_key_confirmation() -> None:
    def corrupt(ms):
        i = next(k for k, m in enumerate(ms) if m.values)
        ms[i] = _replace(ms[i], values=(ms[i].values[0] + 1,))
        return ms

    with pytest.raises(ProtocolAbort, match="key confirmation failed"):
        _tamper(Phase.HANDOFF, corrupt)


def test_a_lying_carry_is_refused() -> None:
    def lie(ms):
        return [_replace(ms[0], values=(ms[0].values[0] + 2**40,)), *ms[1:]]

    with pytest.raises(ProtocolAbort, match=r"carry|confirmation"):
        _tamper(Phase.CARRY, lie)


def _bf(n: int, p: int, q: int, holders: int = 3, rounds: int = 64, seed: int = 0) -> bool:
    """Run the Boneh-Franklin test on n = p q with p, q split like the protocol splits them."""
    rng = random.Random(seed)

    def split(x: int) -> list[int]:
        rest = [4 * rng.randrange(1 << 20) for _ in range(holders - 1)]
        return [x - sum(rest), *rest]

    ps, qs = split(p), split(q)
    bases = [biprimality_base(b"bf", n, k) for k in range(rounds)]
    rows = [biprimality_values(i, n, ps[i], qs[i], bases) for i in range(holders)]
    return biprimality_passes(n, rows)


def _prime_3mod4(bits: int, rng: random.Random) -> int:
    while True:
        x = rng.getrandbits(bits) | (1 << (bits - 1)) | 3
        if gmpy2.is_prime(x):
            return x


def test_biprimality_test_accepts_biprimes_and_rejects_known_non_biprimes() -> None:
    rng = random.Random(11)
    for _ in range(5):
        p, q = _prime_3mod4(128, rng), _prime_3mod4(128, rng)
        assert _bf(p * q, p, q)
    for trial in range(5):
        r1, r2 = _prime_3mod4(64, rng), _prime_3mod4(64, rng)
        s1, s2 = _prime_1mod4(64, rng), _prime_1mod4(64, rng)
        q = _prime_3mod4(128, rng)
        # n = p q r: the shared "p" sums to r1 * s1, a composite that is 3 mod 4
        assert (r1 * s1) % 4 == 3
        assert not _bf(r1 * s1 * q, r1 * s1, q, seed=trial)
        # p = q
        p = _prime_3mod4(128, rng)
        assert not _bf(p * p, p, p, seed=trial)
        # two composites
        assert not _bf(r1 * s1 * r2 * s2, r1 * s1, r2 * s2, seed=trial)


def _prime_1mod4(bits: int, rng: random.Random) -> int:
    while True:
        x = (rng.getrandbits(bits) | (1 << (bits - 1))) & ~3 | 1
        if gmpy2.is_prime(x):
            return x


def test_helpers_are_required_for_two_key_holders_and_hold_nothing() -> None:
    with pytest.raises(ValueError, match="honest majority"):
        KeyGenParty(0, 2, session=b"s", params=SMALL)
    parties = _parties(2, 1, seed=5)
    run_parties(parties)
    helper = parties[2]
    assert helper.exponent is None and not helper.is_key_holder
    assert helper._secret == {} and helper._candidates == [] and helper._queue == []
    keys_small = [p.exponent for p in parties[:2]]
    assert _raw_decrypt(parties[0].modulus, keys_small, 77) == 77


def test_pure_python_fallbacks_agree(monkeypatch) -> None:
    assert _integers.prev_prime_pure(96) == int(gmpy2.prev_prime(1 << 96))
    from tutela.he import keygen

    a = _parties(3, seed=21)
    run_parties(a)
    monkeypatch.setattr(keygen, "powmod", pow)
    b = _parties(3, seed=21)
    run_parties(b)
    assert a[0].modulus == b[0].modulus
    assert [p.exponent for p in a] == [p.exponent for p in b]


def test_argument_checks() -> None:
    with pytest.raises(ValueError):
        KeyGenParams(key_bits=100)
    with pytest.raises(ValueError):
        generate_threshold_keys(3, params=KeyGenParams(key_bits=512))
    with pytest.raises(ValueError):
        KeyGenParty(3, 3, session=b"s")
    party = _parties(3)[0]
    with pytest.raises(ValueError):
        party.key_share()
    with pytest.raises(ProtocolAbort, match="within 1 trials"):
        run_parties(_parties(3, params=KeyGenParams(key_bits=256, batch=1, max_trials=1)))
