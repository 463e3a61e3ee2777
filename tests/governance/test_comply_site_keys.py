"""``tutela comply`` verifies every site report under a key it pinned: the auditor's
(``--site-keys``) when given, else the key each site registered at join that the run
records apart from the reports; never the key a report carries."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from tests.governance.test_comply import (
    GOOD,
    SITE_KEYS,
    STRONG_SITE_POLICY,
    _make_run,
    _site_key_hex,
    _site_report,
)
from tutela.cli.main import app
from tutela.errors import DataError
from tutela.governance.comply import CheckResult, Status, check_run, load_trusted_keys

CHECK = "site-reports-verified"


def _run(tmp_path: Path, mutate: Any = None) -> Path:
    doc = copy.deepcopy(GOOD)
    if mutate is not None:
        mutate(doc)
    return _make_run(tmp_path / "run", doc)


def _check(run: Path, cid: str = CHECK, **kwargs: Any) -> CheckResult:
    return next(r for r in check_run(run, "gdpr", **kwargs).results if r.id == cid)


def _site_failures(run: Path, **kwargs: Any) -> set[str]:
    """The site checks that failed (the other checks are tested in test_comply)."""
    failed = set(check_run(run, "gdpr", **kwargs).failed)
    return failed & {CHECK, "site-policy-floor"}


def _keys_file(tmp_path: Path, keys: dict[str, str]) -> Path:
    path = tmp_path / "pinned.json"
    path.write_text(json.dumps(keys))
    return path


def test_reports_signed_by_the_registered_keys_pass(tmp_path: Path) -> None:
    run = _run(tmp_path)
    result = _check(run)
    assert result.status is Status.PASS
    assert "keys the sites registered at join" in result.reason
    assert _check(run, "site-policy-floor").status is Status.PASS


def test_a_report_loosened_after_signing_fails(tmp_path: Path) -> None:
    def loosen(doc: dict[str, Any]) -> None:
        doc["sites"][1]["policy"]["floor"]["dp_required"] = False

    run = _run(tmp_path, loosen)
    assert _site_failures(run) == {CHECK, "site-policy-floor"}
    result = _check(run)
    assert result.reason.startswith("site reports not verified")
    assert "b's report its signature does not cover its content" in result.reason
    floor = _check(run, "site-policy-floor")
    assert floor.evidence["shortfalls"] == {
        "b": ["sent a report that does not verify (see site-reports-verified)"]
    }


def test_a_report_re_signed_by_a_fresh_key_fails(tmp_path: Path) -> None:
    fresh = Ed25519PrivateKey.generate()
    weak = {**STRONG_SITE_POLICY, "floor": {"dp_required": False}}
    run = _run(tmp_path, lambda d: d["sites"].__setitem__(0, _site_report("a", weak, fresh)))
    result = _check(run)
    assert result.status is Status.FAIL
    assert "a's report signed by key" in result.reason
    assert "not the key pinned for the site" in result.reason
    assert _site_failures(run) == {CHECK, "site-policy-floor"}


def test_reports_without_any_pinned_key_fail_closed(tmp_path: Path) -> None:
    run = _run(tmp_path, lambda d: d.update(site_keys=None))
    result = _check(run)
    assert result.status is Status.FAIL
    assert "a's report no key is pinned for this site" in result.reason


def test_a_site_that_trained_without_a_report_fails(tmp_path: Path) -> None:
    run = _run(tmp_path, lambda d: d["sites"].pop(1))
    result = _check(run)
    assert result.status is Status.FAIL
    assert "b contributed to round 1 but sent no signed report" in result.reason


def test_the_auditors_keys_take_precedence_over_the_registered_ones(tmp_path: Path) -> None:
    run = _run(tmp_path)
    # The run's registered keys match the reports, but the auditor pinned another key for b.
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    pinned = load_trusted_keys(_keys_file(tmp_path, {"a": _site_key_hex("a"), "b": other}))
    result = _check(run, trusted_keys=pinned)
    assert result.status is Status.FAIL
    assert result.reason.startswith("site reports not verified (auditor's trusted keys)")
    assert "b's report signed by key" in result.reason
    # A site the auditor did not pin is not verified by the run's own records either.
    only_a = load_trusted_keys(_keys_file(tmp_path, {"a": _site_key_hex("a")}))
    assert "b's report no key is pinned" in _check(run, trusted_keys=only_a).reason
    both = {site: key.public_key().public_bytes_raw() for site, key in SITE_KEYS.items()}
    assert _check(run, trusted_keys=both).status is Status.PASS


def test_comply_command_takes_trusted_keys(tmp_path: Path) -> None:
    run = _run(tmp_path)
    runner = CliRunner()
    good = _keys_file(tmp_path, {s: _site_key_hex(s) for s in SITE_KEYS})
    ok = runner.invoke(app, ["comply", str(run), "--site-keys", str(good), "--json"])
    doc = json.loads(ok.stdout)
    (check,) = [c for c in doc["checks"] if c["id"] == CHECK]
    assert check["status"] == "pass" and check["evidence"]["pinned_by"] == "auditor's trusted keys"
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    bad = _keys_file(tmp_path, {"a": other, "b": _site_key_hex("b")})
    failed = runner.invoke(app, ["comply", str(run), "--site-keys", str(bad)])
    assert failed.exit_code == 1
    assert "| site-reports-verified | fail |" in failed.stdout
    assert "a's report signed by key" in failed.stdout
    malformed = _keys_file(tmp_path, {"a": "zz"})
    refused = runner.invoke(app, ["comply", str(run), "--site-keys", str(malformed)])
    assert isinstance(refused.exception, DataError)  # `tutela` prints it as one line
    assert "the key for site 'a' is not 64 hex digits" in str(refused.exception)
