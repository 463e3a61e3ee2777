"""Shamir secret sharing over GF(2**130 - 5): known answers, round trips, validation."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.hazmat.rng import SecureRandom
from tutela.hazmat.shamir import (
    PRIME,
    Share,
    ShareValidationError,
    interpolate_at,
    lagrange_coefficients,
    random_field_elements,
    reconstruct_field,
    reconstruct_secret,
    split_field,
    split_secret,
)


def test_prime_is_poly1305_prime() -> None:
    assert PRIME == 2**130 - 5
    # Fermat witnesses (PRIME is a known prime; this guards against a typo)
    for a in (2, 3, 5, 7, 11):
        assert pow(a, PRIME - 1, PRIME) == 1


def test_known_answer_small_polynomial() -> None:
    # f(x) = 1234 + 166 x + 94 x^2, the classic textbook example
    shares = split_field([1234], 3, [1, 2, 3, 4, 5], coefficients=[[166, 94]])
    assert [(s.x, s.values[0]) for s in shares] == [
        (1, 1494),
        (2, 1942),
        (3, 2578),
        (4, 3402),
        (5, 4414),
    ]
    assert reconstruct_field([shares[1], shares[3], shares[4]], 3) == (1234,)


def test_known_answer_wraps_modulo_prime() -> None:
    # f(x) = (p - 1) + (p - 1) x = -(1 + x) mod p
    shares = split_field([PRIME - 1], 2, [1, 2], coefficients=[[PRIME - 1]])
    assert [s.values[0] for s in shares] == [PRIME - 2, PRIME - 3]
    assert reconstruct_field(shares, 2) == (PRIME - 1,)


def test_lagrange_coefficients_at_zero_known_answer() -> None:
    # for xs = 1, 2, 3: L(0) = 3, -3, 1
    assert lagrange_coefficients([1, 2, 3]) == [3, PRIME - 3, 1]


@settings(max_examples=40, deadline=None)
@given(
    secret=st.binary(min_size=16, max_size=64).filter(lambda b: len(b) % 16 == 0),
    t=st.integers(1, 6),
    extra=st.integers(0, 4),
    seed=st.integers(0, 2**32),
)
def test_any_t_shares_reconstruct(secret: bytes, t: int, extra: int, seed: int) -> None:
    xs = list(range(3, 3 + t + extra))
    shares = split_secret(secret, t, xs, rng=SecureRandom(seed))
    assert reconstruct_secret(shares, t) == secret  # all shares, extras validated
    assert reconstruct_secret(shares[extra:], t) == secret  # exactly the last t
    assert reconstruct_secret(list(reversed(shares))[: t + 1] if extra else shares, t) == secret


def test_fewer_than_t_shares_are_refused() -> None:
    shares = split_secret(bytes(range(32)), 3, [1, 2, 3], rng=SecureRandom(1))
    with pytest.raises(ShareValidationError, match="need 3 shares, got 2"):
        reconstruct_secret(shares[:2], 3)


@pytest.mark.parametrize("t", [2, 3, 5])
@pytest.mark.parametrize("validate", [True, False])
def test_exactly_t_minus_one_shares_are_refused_by_name(t: int, validate: bool) -> None:
    # the refusal must be the share count, not some later check that happens to raise
    secret = bytes(range(32))
    shares = split_secret(secret, t, list(range(1, t + 3)), rng=SecureRandom(t))
    for subset in itertools.combinations(shares, t - 1):
        with pytest.raises(ShareValidationError, match=rf"^need {t} shares, got {t - 1}$"):
            reconstruct_field(subset, t, validate=validate)
        with pytest.raises(ShareValidationError, match=rf"^need {t} shares, got {t - 1}$"):
            reconstruct_secret(subset, t, validate=validate)


def test_t_shares_reconstruct_exactly_and_t_minus_one_never_give_the_secret() -> None:
    t, n = 4, 7
    secrets = [0, 1, PRIME - 1, 0x0123456789ABCDEF0123456789ABCDEF]
    shares = split_field(secrets, t, list(range(1, n + 1)), rng=SecureRandom(11))
    for subset in itertools.combinations(shares, t):
        assert reconstruct_field(subset, t) == tuple(secrets)
        assert reconstruct_field(subset, t, validate=False) == tuple(secrets)
    for subset in itertools.combinations(shares, t - 1):
        # what an interpolation through t - 1 points would give: never the secret (each
        # value matches with probability 1/PRIME for a random polynomial)
        wrong = interpolate_at(subset, 0)
        assert all(w != s for w, s in zip(wrong, secrets, strict=True))
        with pytest.raises(ShareValidationError, match=f"need {t} shares"):
            reconstruct_field(subset, t)


def test_t_minus_one_shares_fit_every_secret() -> None:
    # information-theoretic hiding: for 2 shares of a 3-of-n sharing, any candidate secret
    # lies on some degree-2 polynomial through them (so the shares cannot rule it out)
    shares = split_field([42], 3, [1, 2, 3], rng=SecureRandom(2))
    seen = shares[:2]
    for candidate in (0, 1, 42, PRIME - 1):
        fake = [Share(s.x, s.values) for s in seen]
        coeffs = lagrange_coefficients([0, fake[0].x, fake[1].x], 3)
        y3 = (
            coeffs[0] * candidate + coeffs[1] * fake[0].values[0] + coeffs[2] * fake[1].values[0]
        ) % PRIME
        assert reconstruct_field([*fake, Share(3, (y3,))], 3) == (candidate,)


def test_inconsistent_share_is_detected() -> None:
    shares = split_secret(bytes(32), 2, [1, 2, 3, 4], rng=SecureRandom(3))
    bad = Share(shares[3].x, ((shares[3].values[0] + 1) % PRIME, shares[3].values[1]))
    with pytest.raises(ShareValidationError):
        reconstruct_secret([*shares[:3], bad], 2)
    # without the extra share the corruption cannot be seen (documented limitation)
    assert reconstruct_secret(shares[:2], 2) == bytes(32)


def test_share_validation_rules() -> None:
    with pytest.raises(ShareValidationError):
        Share(0, (1,))
    with pytest.raises(ShareValidationError):
        Share(1, (PRIME,))
    with pytest.raises(ShareValidationError):
        Share(1, ())
    s = split_secret(bytes(16), 2, [1, 2], rng=SecureRandom(4))
    with pytest.raises(ShareValidationError):
        reconstruct_secret([s[0], s[0]], 2)
    with pytest.raises(ShareValidationError):
        reconstruct_field([s[0], Share(2, (1, 2))], 2)
    with pytest.raises(ValueError):
        split_secret(bytes(15), 2, [1, 2])
    with pytest.raises(ValueError):
        split_secret(bytes(16), 3, [1, 2])
    with pytest.raises(ValueError):
        split_secret(bytes(16), 2, [1, 1])


def test_share_bytes_round_trip_and_malformed() -> None:
    s = split_secret(bytes(range(32)), 2, [7, 9], rng=SecureRandom(5))[0]
    assert Share.from_bytes(s.to_bytes()) == s
    assert len(s.to_bytes()) == 4 + 2 * 17
    with pytest.raises(ShareValidationError):
        Share.from_bytes(s.to_bytes()[:-1])
    with pytest.raises(ShareValidationError):
        Share.from_bytes(b"\x00\x00\x00\x01" + (PRIME).to_bytes(17, "big"))


def test_random_field_elements_are_in_range_and_spread() -> None:
    values = random_field_elements(2000, SecureRandom(6))
    assert all(0 <= v < PRIME for v in values)
    # top bit (2**129) is set for about half (P(outside [800, 1200]) < 1e-18)
    high = sum(v >> 129 for v in values)
    assert 800 < high < 1200
