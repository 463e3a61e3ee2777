"""The dealer is a named role apart from the coordinator, and every key says how it was made."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tutela.hazmat.rng import SecureRandom
from tutela.he.dealer import ThresholdKeyDealer
from tutela.he.keyreport import KeyGeneration, KeyGenMode
from tutela.he.threshold import aggregate, combine, encrypt_update, partial_decrypt


@pytest.mark.parametrize("name", ["coordinator", "Coordinator ", "server", "aggregator", " "])
def test_the_coordinator_cannot_be_the_dealer(name) -> None:
    with pytest.raises(ValueError, match="not the coordinator"):
        ThresholdKeyDealer(name)


def test_dealer_keeps_only_public_keys_and_reports_that_it_saw_the_key() -> None:
    dealer = ThresholdKeyDealer("key-ceremony")
    dealt = dealer.deal(3, key_bits=1024, rng=SecureRandom(3))
    pk = dealt.public_key
    x = np.array([1.5, -2.0])
    agg = aggregate(pk, [encrypt_update(pk, x), encrypt_update(pk, x)])
    result = combine(pk, agg, [partial_decrypt(s, agg) for s in dealt.shares])
    assert np.allclose(result.values, 2 * x, atol=result.error_bound)
    # what the dealer object still holds: its name and the public keys it issued, nothing
    # that shares a factor with n or equals a share
    assert dealer.retained() == (pk,)
    held = [getattr(dealer, slot) for slot in type(dealer).__slots__]
    ints = [k.n for k in dealer.retained()] + [v for v in held if isinstance(v, int)]
    assert all(math.gcd(v, pk.n) in (1, pk.n) for v in ints)
    assert not {s.exponent for s in dealt.shares} & set(ints)
    report = dealt.report
    assert report.mode is KeyGenMode.DEALER and report.dealer_saw_key
    assert report.dealer == "key-ceremony"
    summary = report.to_dict()
    assert summary["dealer_saw_key"] is True and summary["mode"] == "dealer"
    assert "all 3 key holders together" in summary["who_can_decrypt"]
    assert "key-ceremony" in summary["who_can_decrypt"]


def test_distributed_report_states_no_dealer_and_the_assumption() -> None:
    report = KeyGeneration(
        KeyGenMode.DISTRIBUTED, key_holders=2, key_bits=2048, helpers=1, trials=10
    )
    summary = report.to_dict()
    assert summary["dealer_saw_key"] is False and summary["dealer"] is None
    assert summary["who_can_decrypt"].startswith("all 2 key holders together only")
    assert "honest majority among the 3 generating parties" in summary["assumption"]
    with pytest.raises(ValueError):
        KeyGeneration(KeyGenMode.DISTRIBUTED, key_holders=2, key_bits=2048, dealer="x")
    with pytest.raises(ValueError):
        KeyGeneration(KeyGenMode.DEALER, key_holders=2, key_bits=2048)
    with pytest.raises(ValueError):
        KeyGeneration(KeyGenMode.DEALER, key_holders=1, key_bits=2048, dealer="d")
