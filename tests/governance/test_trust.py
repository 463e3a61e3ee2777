"""The auditor's trust store: where it lives, what it holds, how it is written."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.errors import ConfigError
from tutela.governance.checkpoint import VerifierKey
from tutela.governance.home import trust_store_path
from tutela.governance.trust import TrustStore, parse_verifier_keys, pin


def test_trust_store_resolves_through_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUTELA_TRUST_STORE", raising=False)
    monkeypatch.setenv("TUTELA_HOME", str(tmp_path / "home"))
    assert trust_store_path() == tmp_path / "home" / "trusted-audit-keys"
    monkeypatch.setenv("TUTELA_TRUST_STORE", str(tmp_path / "elsewhere"))
    assert trust_store_path() == tmp_path / "elsewhere"
    assert trust_store_path(tmp_path / "given") == tmp_path / "given"


def test_pin_list_remove(tmp_path: Path) -> None:
    path = tmp_path / "home" / "trusted-audit-keys"
    assert TrustStore.load(path).keys == ()
    first = VerifierKey.of(Ed25519PrivateKey.generate())
    second = VerifierKey.of(Ed25519PrivateKey.generate(), "coordinator.example/audit")
    assert pin(first, path) == path
    pin(second, path)
    pin(first, path)  # pinning twice keeps one entry
    store = TrustStore.load(path)
    assert store.keys == (first, second)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().splitlines()[-2:] == [first.encode(), second.encode()]
    smaller, removed = store.without("coordinator.example/audit")
    assert removed == (second,)
    smaller.save()
    assert TrustStore.load(path).keys == (first,)


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "store"
    path.write_text("# pinned\n\nnot-a-key\n")
    with pytest.raises(ConfigError, match=r"trust store .*store line 3"):
        TrustStore.load(path)
    with pytest.raises(ConfigError, match="expected <name>"):
        parse_verifier_keys(["00" * 32])
