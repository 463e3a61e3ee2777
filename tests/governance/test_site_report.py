"""Signed site reports: what a site enforced and spent, checked by whoever records it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.governance.audit import public_key_bytes
from tutela.governance.minimisation import SitePolicy
from tutela.governance.site_report import (
    SITE_REPORT_LABEL,
    sign_site_report,
    site_report_message,
    verify_site_report,
)

LEDGER = {
    "private": True,
    "scope": "site:hospital-1",
    "accountant": "pld",
    "budget_epsilon": 2.0,
    "delta": 1e-5,
    "spent_epsilon": 0.75,
    "remaining_epsilon": 1.25,
    "spends": [{"label": "round 1", "epsilon_after": 0.75, "event": {"type": "gaussian"}}],
}


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def report(key: Ed25519PrivateKey) -> dict[str, Any]:
    policy = SitePolicy({"p": frozenset({"age", "bmi"})}, site="hospital-1").to_json()
    return sign_site_report("hospital-1", policy, LEDGER, key)


def test_a_signed_report_has_the_documented_shape_and_verifies(
    report: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    assert set(report) == {"site", "policy", "ledger", "signature", "public_key"}
    assert report["site"] == "hospital-1"
    assert report["ledger"] == LEDGER
    assert bytes.fromhex(report["public_key"]) == public_key_bytes(key)
    assert len(bytes.fromhex(report["signature"])) == 64
    assert verify_site_report(report)
    # Recorded verbatim in a JSON file and read back, it still verifies.
    assert verify_site_report(json.loads(json.dumps(report)))
    # Exactly the documented bytes are signed.
    message = site_report_message(report["site"], report["policy"], report["ledger"])
    assert message.startswith(SITE_REPORT_LABEL)
    key.public_key().verify(bytes.fromhex(report["signature"]), message)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: r["policy"]["floor"].update(dp_required=False),
        lambda r: r["policy"]["floor"].update(max_epsilon=30.0),
        lambda r: r["policy"]["purposes"]["p"]["columns"].append("name"),
        lambda r: r["policy"]["limits"].update(max_local_epochs=50),
        lambda r: r["ledger"].update(spent_epsilon=0.1),
        lambda r: r["ledger"]["spends"].clear(),
        lambda r: r.update(site="hospital-2"),
        lambda r: r.update(signature="00" * 64),
        lambda r: r.update(signature="not hex"),
        lambda r: r.update(
            public_key=Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
        ),
        lambda r: r.pop("ledger"),
        lambda r: r.update(extra=1),
        lambda r: r.update(policy=["not", "a", "mapping"]),
    ],
)
def test_an_altered_report_fails_verification(report: dict[str, Any], tamper: Any) -> None:
    altered = copy.deepcopy(report)
    tamper(altered)
    assert not verify_site_report(altered)


def test_a_report_resigned_by_another_key_fails_against_the_pinned_key(
    report: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    """Whoever alters the policy can sign it again under a key of their own: only a pinned
    key (the one the site registered) catches that."""
    forged = copy.deepcopy(report)
    forged["policy"]["floor"]["dp_required"] = False
    forger = Ed25519PrivateKey.generate()
    forged = sign_site_report(forged["site"], forged["policy"], forged["ledger"], forger)
    assert verify_site_report(forged)  # self-consistent under its own key
    assert not verify_site_report(forged, trusted_keys=[public_key_bytes(key)])
    assert verify_site_report(report, trusted_keys=[public_key_bytes(key)])


def test_reports_refuse_what_json_cannot_carry(key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError):
        sign_site_report("s", {}, {"spent_epsilon": float("nan")}, key)
    with pytest.raises(ValueError):
        sign_site_report("", {}, {}, key)
