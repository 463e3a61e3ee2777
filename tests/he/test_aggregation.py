"""CKKS aggregation: correctness within the stated bound, key separation, integrity checks."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.errors import CryptoError, IntegrityError
from tutela.hazmat.rng import SecureRandom
from tutela.he import _wire
from tutela.he.aggregation import (
    AGGREGATION_PARAMS,
    MULTIPLICATION_PARAMS,
    AggregationServer,
    SiteKeyring,
)
from tutela.he.ckks import CkksParams

PER_CHUNK = 16 * 255  # values per ciphertext at N = 8192


@pytest.fixture(scope="module")
def keyring() -> SiteKeyring:
    return SiteKeyring.generate(rng=SecureRandom(1))


@pytest.fixture(scope="module")
def server(keyring: SiteKeyring) -> AggregationServer:
    return AggregationServer(keyring.public_context())


def _updates(seed: int, n_sites: int, size: int, scale: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-scale, scale, size) for _ in range(n_sites)]


@settings(max_examples=6, deadline=None)
@given(
    n_sites=st.integers(1, 4),
    size=st.sampled_from([1, 17, PER_CHUNK, PER_CHUNK + 1]),
    seed=st.integers(0, 2**16),
)
def test_sum_equals_plain_sum_within_bound(keyring, server, n_sites, size, seed) -> None:
    xs = _updates(seed, n_sites, size)
    agg = server.aggregate([keyring.encrypt_update(x, aggregation_id=b"r") for x in xs])
    result = keyring.decrypt_sum(agg, aggregation_id=b"r")
    assert result.n_terms == n_sites
    assert result.values.shape == (size,)
    assert np.max(np.abs(result.values - np.sum(xs, axis=0))) <= result.error_bound


@pytest.mark.parametrize(
    ("params", "weights"),
    [
        (AGGREGATION_PARAMS, [3.0, 150.0, -20.0]),  # integer weights: doubling and adding
        (MULTIPLICATION_PARAMS, [0.25, 1.5, -2.0]),  # plaintext multiplications
    ],
)
def test_weighted_sum_within_bound_at_full_range(params, weights) -> None:
    keyring = SiteKeyring.generate(params)
    server = AggregationServer(keyring.public_context())
    assert server.params == params  # read from the context itself
    scale = params.max_result_abs / sum(abs(w) for w in weights) / 1.01
    xs = _updates(7, 3, 1000, scale=min(params.max_abs, scale))
    agg = server.aggregate([keyring.encrypt_update(x) for x in xs], weights)
    result = keyring.decrypt_sum(agg)
    expected = sum(w * x for w, x in zip(weights, xs, strict=True))
    err = np.max(np.abs(result.values - expected))
    assert err <= result.error_bound
    assert result.total_weight == pytest.approx(sum(abs(w) for w in weights))
    # the bound is not vacuous: within 1000x of what was measured
    assert result.error_bound < 1000 * max(err, 1e-12)


def test_parameters_are_chosen_by_purpose(keyring, server) -> None:
    """Aggregation defaults to the addition-only chain: half the bytes, same range and
    error bound; fractional weights need the multiplication preset and are refused, with a
    clear error, rather than evaluated wrongly."""
    assert keyring.params == AGGREGATION_PARAMS and AGGREGATION_PARAMS.depth == 0
    assert AGGREGATION_PARAMS.max_result_abs == MULTIPLICATION_PARAMS.max_result_abs
    x = _updates(1, 1, 4 * PER_CHUNK)[0]
    mult = SiteKeyring.generate(MULTIPLICATION_PARAMS)
    small, large = len(keyring.encrypt_update(x)), len(mult.encrypt_update(x))
    assert small < 0.6 * large
    payload = keyring.encrypt_update(x)
    with pytest.raises(ValueError, match="integer weights"):
        server.aggregate([payload, payload], [0.5, 1.0])
    with pytest.raises(ValueError, match="integer weights"):
        server.aggregate([payload], [2.0**41])
    # a coordinator told other parameters than the context's refuses the context
    with pytest.raises(CryptoError, match="was not made with"):
        AggregationServer(mult.public_context(), AGGREGATION_PARAMS)
    other = SiteKeyring.generate(CkksParams(16384, (60, 60), 40))
    with pytest.raises(CryptoError, match="aggregation preset"):
        AggregationServer(other.public_context())


def test_release_is_rounded_to_a_grid(keyring, server) -> None:
    xs = _updates(3, 2, 300)
    result = keyring.decrypt_sum(server.aggregate([keyring.encrypt_update(x) for x in xs]))
    grid = 2.0 ** np.floor(np.log2(keyring.params.error_bound(2)))
    assert np.allclose(result.values / grid, np.round(result.values / grid), atol=0)


def test_coordinator_holds_no_secret_key(keyring, server) -> None:
    assert server.is_private() is False
    ctx = ts.context_from(keyring.public_context())
    assert not ctx.is_private()
    vec = ts.ckks_vector_from(
        ctx,
        _wire.unpack(
            keyring.encrypt_update(np.ones(3)), expected_kind=1, max_bytes=1 << 30, max_blobs=10
        ).blobs[0],
    )
    with pytest.raises(ValueError, match="secret"):
        vec.decrypt()


def test_server_refuses_a_secret_context(keyring) -> None:
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 60])
    ctx_bytes = ctx.serialize(save_secret_key=True)
    assert ts.context_from(ctx_bytes).is_private()
    with pytest.raises(CryptoError):
        AggregationServer(ctx_bytes)


def test_wrong_key_is_rejected(keyring, server) -> None:
    other = SiteKeyring.generate()
    agg = server.aggregate([keyring.encrypt_update(np.ones(10))])
    with pytest.raises(IntegrityError):
        other.decrypt_sum(agg)
    # even with the fingerprint forged, the keyed checks catch the garbage decryption
    env = _wire.unpack(agg, expected_kind=2, max_bytes=1 << 30, max_blobs=10)
    forged = _wire.pack(2, other.fingerprint, env.label, env.fields, env.floats, env.blobs)
    with pytest.raises(IntegrityError):
        other.decrypt_sum(forged)
    # and a contribution under another key never reaches the sum
    with pytest.raises(IntegrityError):
        server.aggregate([other.encrypt_update(np.ones(10))])


def test_flipped_byte_is_rejected(keyring, server) -> None:
    agg = bytearray(server.aggregate([keyring.encrypt_update(np.ones(10))]))
    agg[len(agg) // 2] ^= 0x01
    with pytest.raises(IntegrityError):
        keyring.decrypt_sum(bytes(agg))


@pytest.mark.parametrize("delta", [1e-2, 1.0])
def test_injected_ciphertext_fails_the_keyed_check(keyring, server, delta) -> None:
    """A coordinator adding an encryption of a change (valid envelope) is caught."""
    agg = server.aggregate([keyring.encrypt_update(np.zeros(500)) for _ in range(2)])
    env = _wire.unpack(agg, expected_kind=2, max_bytes=1 << 30, max_blobs=10)
    ctx = ts.context_from(keyring.public_context())
    change = np.zeros(keyring.params.slots)
    change[3] = delta
    tampered = ts.ckks_vector_from(ctx, env.blobs[0]) + ts.ckks_vector(ctx, change)
    forged = _wire.pack(
        2, env.fingerprint, env.label, env.fields, env.floats, (bytes(tampered.serialize()),)
    )
    with pytest.raises(IntegrityError):
        keyring.decrypt_sum(forged)


def test_aggregation_id_is_bound(keyring, server) -> None:
    agg = server.aggregate([keyring.encrypt_update(np.ones(10), aggregation_id=b"round-1")])
    with pytest.raises(IntegrityError):
        keyring.decrypt_sum(agg, aggregation_id=b"round-2")
    with pytest.raises(ValueError, match="differ"):
        server.aggregate(
            [
                keyring.encrypt_update(np.ones(10), aggregation_id=b"a"),
                keyring.encrypt_update(np.ones(10), aggregation_id=b"b"),
            ]
        )


def test_malformed_and_oversized_payloads(keyring, server) -> None:
    good = keyring.encrypt_update(np.ones(PER_CHUNK + 5))
    for bad in (b"", b"TUHE", good[:-1], good[:100], b"x" * 1000):
        with pytest.raises(IntegrityError):
            server.aggregate([bad])
    small = AggregationServer(keyring.public_context(), max_values=100)
    with pytest.raises(IntegrityError, match="limit"):  # refused by size before parsing
        small.aggregate([keyring.encrypt_update(np.ones(3 * PER_CHUNK))])
    with pytest.raises(IntegrityError, match="too many blocks"):
        small.aggregate([good])
    with pytest.raises(IntegrityError):  # an aggregate is not a contribution
        server.aggregate([server.aggregate([good])])
    with pytest.raises(IntegrityError):  # a contribution is not an aggregate
        keyring.decrypt_sum(good)
    with pytest.raises(IntegrityError):
        AggregationServer(b"not a context")


def test_range_and_argument_checks(keyring, server) -> None:
    payload = keyring.encrypt_update(np.full(4, keyring.params.max_abs))
    with pytest.raises(ValueError, match="range"):
        server.aggregate([payload], [1e6])
    with pytest.raises(ValueError):
        server.aggregate([payload], [0.0])
    with pytest.raises(ValueError):
        server.aggregate([payload, payload], [1.0])
    with pytest.raises(ValueError):
        server.aggregate([])
    for bad in (np.array([np.nan]), np.array([2e3]), np.ones((2, 2)), np.array([])):
        with pytest.raises(ValueError):
            keyring.encrypt_update(bad)


def test_keyring_round_trip_and_malformed(keyring, server) -> None:
    copy = SiteKeyring.from_bytes(keyring.to_bytes())
    assert copy.fingerprint == keyring.fingerprint
    agg = server.aggregate([keyring.encrypt_update(np.arange(5.0))])
    assert np.allclose(copy.decrypt_sum(agg).values, np.arange(5.0), atol=1e-6)
    for bad in (b"", b"TUHK", keyring.to_bytes()[:60]):
        with pytest.raises(IntegrityError):
            SiteKeyring.from_bytes(bad)
    assert "secret" in repr(keyring)


def test_parameters_enforce_128_bit_security() -> None:
    with pytest.raises(ValueError, match="128-bit"):
        CkksParams(8192, (60, 60, 60, 60), 40)
    with pytest.raises(ValueError):
        CkksParams(1000)
    p = CkksParams()
    assert p.slots == 4096 and p.depth == 1 and p.max_result_abs == 2.0**19
