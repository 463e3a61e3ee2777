"""Witnesses and C2SP tlog cosignatures: the spec's example, known answers computed
independently, and a log operator that cheats (rewrites, truncates, forks, swaps its key)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.errors import AuditError, ConfigError
from tutela.governance.audit import AuditLog
from tutela.governance.checkpoint import COSIGNATURE_V1, Checkpoint, VerifierKey
from tutela.governance.trust import TrustStore
from tutela.governance.witness import (
    Cosignature,
    Witness,
    WitnessRefusal,
    check_quorum,
    cosign,
    cosigned_message,
    load_cosigned,
    verify_witnessed,
    with_cosignature,
    witness_name,
)

EM_DASH = "\u2014"
# https://c2sp.org/tlog-cosignature (v1.0.0): the example checkpoint and its cosignature.
SPEC_ORIGIN = "example.com/behind-the-sofa"
SPEC_SIZE = 20852163
SPEC_ROOT = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
SPEC_COSIGNATURE = (
    f"{EM_DASH} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9"
    "dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
)
SPEC_MESSAGE = (
    "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
# RFC 8032 §7.1 test 1 secret key: a fixed witness key for known answers.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")


def test_the_spec_example_parses_and_its_signed_message_is_rebuilt_byte_for_byte() -> None:
    cos = Cosignature.parse_line(SPEC_COSIGNATURE)
    assert cos.name == "witness.example.com/w1"
    assert cos.timestamp == 1679315147  # the spec's "time 1679315147"
    assert len(cos.key_id) == 4 and len(cos.signature) == 64
    assert cos.line() == SPEC_COSIGNATURE + "\n"  # re-encodes to the same line
    checkpoint = Checkpoint(SPEC_ORIGIN, SPEC_SIZE, base64.b64decode(SPEC_ROOT))
    assert cosigned_message(checkpoint.body(), cos.timestamp) == SPEC_MESSAGE.encode()


def test_known_answer_computed_without_the_module() -> None:
    key = Ed25519PrivateKey.from_private_bytes(RFC8032_SEED)
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    name = "witness.example.com/tutela-kat"
    checkpoint = Checkpoint(SPEC_ORIGIN, SPEC_SIZE, base64.b64decode(SPEC_ROOT))
    cos = cosign(checkpoint, key, name, 1679315147)
    # independently: key ID with type 0x04, big-endian u64 timestamp, Ed25519 over the message
    kid = hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
    sig = key.sign(SPEC_MESSAGE.encode())  # Ed25519 is deterministic
    blob = base64.b64encode(kid + (1679315147).to_bytes(8, "big") + sig).decode()
    assert cos.line() == f"{EM_DASH} {name} {blob}\n"
    vkey = VerifierKey.of(key, name, COSIGNATURE_V1)
    material = base64.b64encode(bytes([4]) + public).decode()
    assert vkey.encode() == f"{name}+{kid.hex()}+{material}"
    assert VerifierKey.parse(vkey.encode()) == vkey and vkey.is_cosigner
    assert cos.verify(checkpoint, vkey)
    # the same key as a note signer (type 0x01) has another key ID and verifies nothing here
    assert not cos.verify(checkpoint, VerifierKey.of(key, name))
    later = Checkpoint(SPEC_ORIGIN, SPEC_SIZE + 1, checkpoint.root)
    assert not cos.verify(later, vkey)


def test_a_witness_key_never_counts_as_a_checkpoint_signer(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    as_cosigner = VerifierKey.of(key, "tutela.witness/h1", COSIGNATURE_V1)
    cp = Checkpoint.sign("origin", 3, bytes(32), key, name="tutela.witness/h1")
    assert cp.signers([as_cosigner]) == ()
    store = TrustStore(tmp_path / "store").with_key(as_cosigner)
    store.save()
    assert TrustStore.load(tmp_path / "store").keys == (as_cosigner,)


# the witness --------------------------------------------------------------------------------


class Log:
    """A log operator (the coordinator) with its signing key."""

    def __init__(self, path: Path, key: Ed25519PrivateKey | None = None) -> None:
        self.log = AuditLog.open(path)
        self.key = key or Ed25519PrivateKey.generate()

    def grow(self, n: int, tag: str = "") -> None:
        for i in range(n):
            self.log.append("coordinator", "round.close", f"r{tag}{i}", "ok", {"i": i})

    def view(self, from_size: int) -> tuple[str, list[bytes]]:
        cp = self.log.checkpoint(self.key)
        proof = []
        if 0 < from_size < cp.size:
            proof = list(self.log.prove_consistency(from_size, cp.size).path)
        return cp.encode(), proof


def _witness(tmp_path: Path, log: Log, site: str = "hospital-1") -> Witness:
    return Witness(
        tmp_path / site,
        witness_name(site),
        Ed25519PrivateKey.generate(),
        VerifierKey.of(log.key),
        clock=lambda: 1_700_000_000,
    )


def _observe(w: Witness, log: Log) -> Cosignature:
    latest = w.latest
    return w.observe(*log.view(latest.size if latest else 0))


def test_a_witness_cosigns_a_growing_log_and_keeps_each_checkpoint(tmp_path: Path) -> None:
    log = Log(tmp_path / "audit.jsonl")
    w = _witness(tmp_path, log)
    sizes = []
    for n in (1, 4, 0, 9):
        log.grow(n)
        cos = _observe(w, log)
        latest = w.latest
        assert latest is not None and cos.verify(latest, w.verifier_key)
        sizes.append(latest.size)
    assert sizes == [1, 5, 5, 14]
    kept = w.cosigned()
    assert [cp.size for cp in kept] == [1, 5, 14]
    assert all(c.signers([VerifierKey.of(log.key)]) for c in kept)
    report, witnessed = verify_witnessed(
        tmp_path / "audit.jsonl", [VerifierKey.of(log.key), w.verifier_key], kept, 1
    )
    assert report.ok and witnessed is not None and witnessed.ok
    assert witnessed.witnesses == (w.verifier_key.name,)


def _rewrite(path: Path, log: Log, keep: int, extra: int) -> Log:
    """Rebuild the log (same origin) with the first ``keep`` records and ``extra`` made-up
    ones: every hash recomputed and the checkpoint re-signed with the same (coordinator-held)
    key."""
    log.log.close()
    header = path.read_text(encoding="utf-8").splitlines(keepends=True)[0]
    path.write_text(header, encoding="utf-8")  # the JSON-lines header holds the origin
    path.with_name(path.name + ".checkpoints").unlink(missing_ok=True)
    forged = Log(path, log.key)
    assert forged.log.origin == log.log.origin
    forged.grow(keep)
    forged.grow(extra, tag="forged")
    return forged


def test_a_consistently_rewritten_and_re_signed_log_gets_no_cosignature(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = Log(path)
    log.grow(6)
    w = _witness(tmp_path, log)
    _observe(w, log)
    seen = w.latest
    forged = _rewrite(path, log, keep=4, extra=5)  # bigger than before, history changed
    note, proof = forged.view(6)
    assert Checkpoint.parse(note).signers([VerifierKey.of(log.key)])  # a genuine signature
    with pytest.raises(WitnessRefusal) as refused:
        w.observe(note, proof)
    assert refused.value.kind == "fork"
    evidence = json.loads(Path(str(refused.value.evidence)).read_text())
    assert evidence["previous"] == (seen.encode() if seen else None)
    assert evidence["presented"] == note
    assert w.refused is not None and "rewritten" in w.refused
    assert w.latest == seen  # nothing new was cosigned
    # it takes no further part, even for a checkpoint that would have been fine
    log2 = Log(tmp_path / "other.jsonl", log.key)
    log2.grow(1)
    with pytest.raises(WitnessRefusal, match="refused earlier") as again:
        w.observe(*log2.view(0))
    assert again.value.kind == "stopped"


def test_a_truncated_log_gets_no_cosignature(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = Log(path)
    log.grow(8)
    w = _witness(tmp_path, log)
    _observe(w, log)
    forged = _rewrite(path, log, keep=5, extra=0)  # cut back to five records
    with pytest.raises(WitnessRefusal, match=r"records 5\.\.7 were removed") as refused:
        w.observe(*forged.view(8))
    assert refused.value.kind == "truncated"


def test_a_fork_at_the_same_size_and_a_bad_proof_get_no_cosignature(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = Log(path)
    log.grow(3)
    a, b = _witness(tmp_path, log, "hospital-1"), _witness(tmp_path, log, "hospital-2")
    _observe(a, log)
    _observe(b, log)
    forged = _rewrite(path, log, keep=2, extra=1)
    with pytest.raises(WitnessRefusal, match="two roots for size 3"):
        a.observe(*forged.view(3))
    # an honest extension presented with a proof that is not one
    forged.log.close()
    honest = Log(tmp_path / "honest.jsonl", log.key)
    honest.grow(3)
    c = _witness(tmp_path, honest, "hospital-3")
    _observe(c, honest)
    honest.grow(4)
    note, proof = honest.view(3)
    with pytest.raises(WitnessRefusal, match="no valid consistency proof"):
        c.observe(note, [bytes(32)] * len(proof))


def test_a_checkpoint_under_another_key_or_of_another_log_gets_no_cosignature(
    tmp_path: Path,
) -> None:
    log = Log(tmp_path / "audit.jsonl")
    log.grow(2)
    w = _witness(tmp_path, log)
    _observe(w, log)
    log.grow(2)
    swapped = Log(tmp_path / "audit.jsonl", Ed25519PrivateKey.generate())  # same log, new key
    with pytest.raises(WitnessRefusal, match="not signed by the pinned audit key") as refused:
        w.observe(*swapped.view(2))
    assert refused.value.kind == "key"
    other = Log(tmp_path / "other.jsonl", log.key)
    other.grow(5)
    w2 = _witness(tmp_path, log, "hospital-2")
    _observe(w2, log)
    with pytest.raises(WitnessRefusal, match="another log") as refused:
        w2.observe(*other.view(0))
    assert refused.value.kind == "origin"


def test_the_pinned_audit_key_cannot_be_swapped_later(tmp_path: Path) -> None:
    log = Log(tmp_path / "audit.jsonl")
    w = _witness(tmp_path, log)
    again = Witness(w.directory, w.name, w.key)  # no key given: the pinned one
    assert again.pinned == VerifierKey.of(log.key)
    with pytest.raises(ConfigError, match="differs from the one this witness pinned"):
        Witness(w.directory, w.name, w.key, VerifierKey.of(Ed25519PrivateKey.generate()))
    with pytest.raises(ConfigError, match="none given"):
        Witness(tmp_path / "fresh", w.name, w.key)
    with pytest.raises(AuditError):
        w.observe("not a checkpoint\n", [])
    assert w.refused is None  # garbage is an error, not evidence of a fork


# the auditor's quorum -------------------------------------------------------------------------


def _cosigned_by(n: int, tmp_path: Path) -> tuple[Log, list[Witness], list[Checkpoint]]:
    log = Log(tmp_path / "audit.jsonl")
    log.grow(5)
    witnesses = [_witness(tmp_path, log, f"hospital-{i}") for i in range(n)]
    note, proof = log.view(0)
    cp = Checkpoint.parse(note)
    for w in witnesses:
        cp = with_cosignature(cp, w.observe(note, proof))
    return log, witnesses, [cp]


def test_forged_and_untrusted_cosignatures_do_not_count(tmp_path: Path) -> None:
    log, ws, (cp,) = _cosigned_by(3, tmp_path)
    trusted = [VerifierKey.of(log.key), ws[0].verifier_key, ws[1].verifier_key]
    report = check_quorum(cp.origin, cp.size, cp.root, [cp], trusted, 2)
    assert report.ok and set(report.witnesses) == {ws[0].name, ws[1].name}
    assert report.untrusted == 1  # hospital-2 is nobody the auditor pinned
    assert not check_quorum(cp.origin, cp.size, cp.root, [cp], trusted, 3).ok
    # forge hospital-1's cosignature: flip one bit of its signature
    sigs = list(cp.signatures)
    idx = next(i for i, s in enumerate(sigs) if s.name == ws[1].name)
    raw = bytearray(sigs[idx].signature)
    raw[-1] ^= 1
    sigs[idx] = type(sigs[idx])(sigs[idx].name, sigs[idx].key_id, bytes(raw))
    forged = Checkpoint(cp.origin, cp.size, cp.root, tuple(sigs))
    report = check_quorum(cp.origin, cp.size, cp.root, [forged], trusted, 2)
    assert not report.ok and report.witnesses == (ws[0].name,)
    assert report.invalid == (ws[1].name,)
    assert "quorum not met" in (report.problem or "") and ws[1].name in (report.problem or "")
    # a cosignature made by a fresh key under a trusted witness's name does not count either
    impostor = cosign(cp, Ed25519PrivateKey.generate(), ws[0].name, 1_700_000_000)
    alone = with_cosignature(Checkpoint(cp.origin, cp.size, cp.root, cp.signatures[:1]), impostor)
    assert not check_quorum(cp.origin, cp.size, cp.root, [alone], trusted, 1).ok


def test_cosignatures_on_an_older_checkpoint_do_not_cover_the_log(tmp_path: Path) -> None:
    log, ws, cosigned = _cosigned_by(2, tmp_path)
    log.grow(1)
    log.log.checkpoint(log.key)  # the coordinator signs a newer head no witness saw
    trusted = [VerifierKey.of(log.key), *(w.verifier_key for w in ws)]
    report, witnessed = verify_witnessed(tmp_path / "audit.jsonl", trusted, cosigned, 1)
    assert report.ok  # the log itself is fine
    assert witnessed is not None and not witnessed.ok
    assert "covering all 6 records" in (witnessed.problem or "")


def test_load_cosigned_reads_a_file_or_a_directory(tmp_path: Path) -> None:
    _log, ws, (cp,) = _cosigned_by(1, tmp_path)
    directory = ws[0].directory / "cosigned"
    assert [c.size for c in load_cosigned(directory)] == [5]
    one = tmp_path / "one.checkpoint"
    cp.save(one)
    assert load_cosigned(one) == [cp]
    with pytest.raises(AuditError, match="no cosigned checkpoints"):
        load_cosigned(tmp_path / "missing")


# the command line ------------------------------------------------------------------------------


def test_audit_verify_requires_the_witness_quorum(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tutela.cli.main import app

    log, ws, (cp,) = _cosigned_by(3, tmp_path)
    log.log.close()
    cosigned = tmp_path / "cosigned"
    cosigned.mkdir()
    cp.save(cosigned / "5.checkpoint")
    store = tmp_path / "trusted"
    TrustStore(store, (VerifierKey.of(log.key), ws[0].verifier_key, ws[1].verifier_key)).save()
    base = ["audit", "verify", str(tmp_path / "audit.jsonl"), "--trust-store", str(store)]
    runner = CliRunner()
    ok = runner.invoke(app, [*base, "--witnesses", str(cosigned), "--witness-quorum", "2"])
    assert ok.exit_code == 0, ok.output
    assert "witnesses: 2 of 2 required" in ok.output
    short = runner.invoke(app, [*base, "--witnesses", str(cosigned), "--witness-quorum", "3"])
    assert short.exit_code != 0  # main() prints this error as one line (see test_cli_governance)
    assert "witness quorum not met" in str(short.exception)
    # the same cosignatures under a witness key nobody pinned count for nothing
    TrustStore(store, (VerifierKey.of(log.key),)).save()
    none = runner.invoke(app, [*base, "--witnesses", str(cosigned), "--json"])
    assert none.exit_code == 1
    assert json.loads(none.output)["witnesses"]["untrusted"] == 3


# what comply reports ----------------------------------------------------------------------------


def test_comply_reports_the_witnesses_of_the_coordinators_log(tmp_path: Path) -> None:
    from tutela.governance.comply import check_run
    from tutela.governance.witness import WitnessManifest

    from .test_comply import AUDIT_KEY, GOOD, _make_run

    run = _make_run(tmp_path / "run", GOOD)
    deployment = run / "deployment"
    log, ws, (cp,) = _cosigned_by(2, deployment)
    log.log.close()
    (deployment / "cosignatures").mkdir()
    cp.save(deployment / "cosignatures" / "5.checkpoint")
    WitnessManifest(
        "audit.jsonl",
        "cosignatures",
        VerifierKey.of(log.key).encode(),
        tuple(w.verifier_key.encode() for w in ws),
    ).save(deployment)
    pinned = [VerifierKey.of(AUDIT_KEY), VerifierKey.of(log.key)]

    def audit_result(keys: list[VerifierKey]) -> tuple[str, dict[str, object]]:
        report = check_run(run, "gdpr", audit_keys=keys)
        result = next(r for r in report.results if r.id == "audit-log-verified")
        return result.reason, dict(result.evidence["witnesses"])

    reason, evidence = audit_result([*pinned, *(w.verifier_key for w in ws)])
    assert evidence["ok"] and "witnesses: 2 of 2 required" in reason
    reason, evidence = audit_result([*pinned, ws[0].verifier_key])  # one witness unpinned
    assert not evidence["ok"] and "witness quorum not met" in reason
    assert evidence["untrusted"] == 1
