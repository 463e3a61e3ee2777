"""Encrypted logistic-regression scoring: correctness, key separation, malformed input."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts

from tutela.errors import CryptoError, IntegrityError
from tutela.he import _wire
from tutela.he.inference import (
    SIGMOID_COEFFS,
    SIGMOID_MAX_ERROR,
    SIGMOID_RANGE,
    InferenceClient,
    LogisticModel,
    sigmoid_cubic,
)

RNG = np.random.default_rng(11)
W = RNG.normal(size=6) * 0.4
MODEL = LogisticModel.from_arrays(W, -0.3)


@pytest.fixture(scope="module")
def logit_client() -> InferenceClient:
    return InferenceClient.generate("logit")


@pytest.fixture(scope="module")
def prob_client() -> InferenceClient:
    return InferenceClient.generate("probability")


def test_cubic_is_the_least_squares_fit_with_the_stated_error() -> None:
    z = np.linspace(-SIGMOID_RANGE, SIGMOID_RANGE, 100_001)
    sig = 1 / (1 + np.exp(-z))
    fit, *_ = np.linalg.lstsq(np.stack([np.ones_like(z), z, z**3], 1), sig, rcond=None)
    assert np.allclose(fit, SIGMOID_COEFFS, atol=1e-7)
    err = np.max(np.abs(sigmoid_cubic(z) - sig))
    assert SIGMOID_MAX_ERROR - 1e-3 < err <= SIGMOID_MAX_ERROR  # tight on both sides


def test_logit_scores_match_across_batches(logit_client) -> None:
    X = np.random.default_rng(1).normal(size=(4100, 6))  # two batches of 4096 slots
    scores = logit_client.decrypt_scores(
        MODEL.score_encrypted(
            logit_client.public_context(), logit_client.encrypt_features(X), "logit"
        )
    )
    bound = logit_client.params.error_bound(
        6, float(np.sum(np.abs(W))), float(np.sum(np.abs(W)) * np.max(np.abs(X)))
    )
    assert np.max(np.abs(scores - MODEL.score_plain(X))) <= bound


def test_probability_scores_match_the_cubic_and_the_sigmoid_on_range(prob_client) -> None:
    X = np.random.default_rng(2).normal(size=(50, 6))
    result = MODEL.score_encrypted(
        prob_client.public_context(), prob_client.encrypt_features(X), "probability"
    )
    probs = prob_client.decrypt_scores(result)
    assert np.max(np.abs(probs - MODEL.score_plain(X, "probability"))) < 1e-4
    z = MODEL.score_plain(X)
    inside = np.abs(z) <= SIGMOID_RANGE
    assert inside.sum() > 40
    true = 1 / (1 + np.exp(-z[inside]))
    assert np.max(np.abs(probs[inside] - true)) <= SIGMOID_MAX_ERROR + 1e-4


def test_server_never_holds_the_secret_key(logit_client) -> None:
    assert not ts.context_from(logit_client.public_context()).is_private()
    secret = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 60])
    secret.global_scale = 2.0**40
    query = logit_client.encrypt_features(np.ones((2, 6)))
    with pytest.raises(CryptoError):
        MODEL.score_encrypted(secret.serialize(save_secret_key=True), query, "logit")


def test_wrong_key_and_tampering_are_rejected(logit_client) -> None:
    X = np.ones((3, 6))
    result = MODEL.score_encrypted(
        logit_client.public_context(), logit_client.encrypt_features(X), "logit"
    )
    other = InferenceClient.generate("logit")
    with pytest.raises(IntegrityError):
        other.decrypt_scores(result)
    env = _wire.unpack(result, expected_kind=22, max_bytes=1 << 30, max_blobs=10)
    forged = _wire.pack(22, other._fingerprint, b"", env.fields, (), env.blobs)
    with pytest.raises(IntegrityError, match="range"):
        other.decrypt_scores(forged)
    flipped = bytearray(result)
    flipped[len(flipped) // 2] ^= 0x80
    with pytest.raises(IntegrityError):
        logit_client.decrypt_scores(bytes(flipped))
    # a query under one key cannot be scored with another key's context
    with pytest.raises(IntegrityError):
        MODEL.score_encrypted(other.public_context(), logit_client.encrypt_features(X), "logit")


def test_malformed_queries_and_arguments(logit_client) -> None:
    ctx = logit_client.public_context()
    good = logit_client.encrypt_features(np.ones((2, 6)))
    for bad in (b"", good[:50], good[:-1], b"\x00" * 64):
        with pytest.raises(IntegrityError):
            MODEL.score_encrypted(ctx, bad, "logit")
    with pytest.raises(IntegrityError):
        MODEL.score_encrypted(b"junk", good, "logit")
    with pytest.raises(ValueError, match="features"):
        LogisticModel.from_arrays(np.ones(3), 0.0).score_encrypted(ctx, good, "logit")
    with pytest.raises(ValueError):
        MODEL.score_encrypted(ctx, good, "probability")
    with pytest.raises(ValueError):
        logit_client.encrypt_features(np.full((2, 6), np.nan))
    with pytest.raises(ValueError):
        logit_client.encrypt_features(np.ones(6))
    with pytest.raises(ValueError):
        LogisticModel((), 0.0)
