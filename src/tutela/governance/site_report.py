"""Site reports: what a site enforced and spent, signed by the site itself.

A site (the deployed agent, or a simulated site in process) ends each round by signing the
policy it enforced and the summary of its own privacy ledger. The report travels as plain
JSON and is recorded verbatim, so that a result or a compliance check can show what each
site attests, not what a driver says the sites did.

Report shape (a JSON object)::

    {
      "site": "hospital-1",
      "policy": {...},        # SitePolicy.to_json() of the policy the site enforced
      "ledger": {...},        # the site's own ledger summary (see tutela.fl.privacy)
      "signature": "<hex>",   # Ed25519 over SITE_REPORT_LABEL + canonical JSON (below)
      "public_key": "<hex>"   # the site's raw 32-byte Ed25519 public key
    }

The signed bytes are :data:`SITE_REPORT_LABEL` followed by the canonical JSON (sorted keys,
no whitespace, UTF-8, no NaN or infinity) of ``{"site", "policy", "ledger"}``.

Security:
    :func:`verify_site_report` proves that the holder of ``public_key`` signed exactly this
    site name, policy and ledger; altering any of them (or the key) makes it fail. It does
    not prove *who* holds the key: pass ``trusted_keys`` (for example the identity key the
    site registered when it joined, or one pinned out of band) to check that too. An
    auditor never trusts a key only because the report carries it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["SITE_REPORT_LABEL", "sign_site_report", "site_report_message", "verify_site_report"]

SITE_REPORT_LABEL = b"tutela site report v1\n"
"""Domain separation: a site-report signature is never valid as any other signature."""

_FIELDS = frozenset({"site", "policy", "ledger", "signature", "public_key"})


def _canonical(obj: object) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def site_report_message(site: str, policy: Mapping[str, Any], ledger: Mapping[str, Any]) -> bytes:
    """The exact bytes a site signs.

    Raises:
        ValueError: ``policy`` or ``ledger`` is not JSON data (or holds NaN or infinity).
        TypeError: a value JSON cannot encode.
    """
    body = {"site": site, "policy": dict(policy), "ledger": dict(ledger)}
    return SITE_REPORT_LABEL + _canonical(body)


def sign_site_report(
    site: str, policy: Mapping[str, Any], ledger: Mapping[str, Any], key: Ed25519PrivateKey
) -> dict[str, Any]:
    """Sign what ``site`` enforced (``policy``) and spent (``ledger``); return the report.

    The returned ``policy`` and ``ledger`` are the JSON round trip of the inputs (tuples
    become lists), so the report compares equal to itself after being written and read.

    Raises:
        ValueError, TypeError: see :func:`site_report_message`.
    """
    if not isinstance(site, str) or not site:
        raise ValueError("site must be a non-empty string")
    message = site_report_message(site, policy, ledger)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    body = json.loads(message[len(SITE_REPORT_LABEL) :])
    return {
        "site": site,
        "policy": body["policy"],
        "ledger": body["ledger"],
        "signature": key.sign(message).hex(),
        "public_key": public.hex(),
    }


def verify_site_report(
    report: Mapping[str, Any], *, trusted_keys: Iterable[bytes] | None = None
) -> bool:
    """Whether ``report`` is well formed and its signature covers its site, policy and ledger.

    Args:
        report: a report as :func:`sign_site_report` returns it (or as read back from JSON).
        trusted_keys: raw Ed25519 public keys allowed to have signed; when given, a report
            under any other key is rejected.

    Returns:
        ``True`` only if every check passes; ``False`` for any malformed, altered or
        untrusted report (one answer, no detail, as for any failed authentication).
    """
    if not isinstance(report, Mapping) or set(report) != _FIELDS:
        return False
    site, policy, ledger = report["site"], report["policy"], report["ledger"]
    if not isinstance(site, str) or not isinstance(policy, Mapping):
        return False
    if not isinstance(ledger, Mapping):
        return False
    try:
        public = bytes.fromhex(report["public_key"])
        signature = bytes.fromhex(report["signature"])
        message = site_report_message(site, policy, ledger)
        if trusted_keys is not None and public not in {bytes(k) for k in trusted_keys}:
            return False
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
