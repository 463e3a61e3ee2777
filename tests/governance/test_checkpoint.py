"""C2SP signed notes and checkpoints: known answers, checked by independent computation, and
the reference vector of Go's golang.org/x/mod/sumdb/note."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tutela.errors import AuditError, AuditVerificationError
from tutela.governance.checkpoint import (
    Checkpoint,
    NoteSignature,
    SignedNote,
    VerifierKey,
    default_key_name,
    key_id,
)
from tutela.governance.merkle import leaf_hash, root_from_leaves

# golang.org/x/mod/sumdb/note note_test.go: an implementation independent of this one.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNATURE = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
EM_DASH = "\u2014"

SEED = bytes(range(32))
NAME = "example.com/tutela-kat"
ORIGIN = "example.com/tutela-kat-log"
LEAVES = [leaf_hash(f"record {i}".encode()) for i in range(5)]


def _go_key() -> Ed25519PrivateKey:
    material = base64.b64decode(GO_SIGNER.split("+", 4)[4])  # the material may hold "+"
    assert material[0] == 0x01
    return Ed25519PrivateKey.from_private_bytes(material[1:])


def test_go_reference_vector() -> None:
    key = _go_key()
    verifier = VerifierKey.of(key, "PeterNeumann")
    assert verifier.encode() == GO_VERIFIER
    assert VerifierKey.parse(GO_VERIFIER) == verifier
    note = SignedNote(GO_TEXT).sign(key, "PeterNeumann")
    assert note.encode() == f"{GO_TEXT}\n{EM_DASH} PeterNeumann {GO_SIGNATURE}\n"
    parsed = SignedNote.parse(note.encode().encode("utf-8"))
    assert parsed.signers([verifier]) == (verifier,)
    tampered = SignedNote.parse(note.encode().replace("cryptography", "cryptographY"))
    with pytest.raises(AuditVerificationError):
        tampered.signers([verifier])


def test_constructed_checkpoint_checked_independently() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    public = key.public_key().public_bytes_raw()
    root = root_from_leaves(LEAVES)
    cp = Checkpoint.sign(ORIGIN, 5, root, key, name=NAME)

    # the key ID and verifier key string, recomputed from the specification
    expected_id = hashlib.sha256(NAME.encode() + b"\x0a" + b"\x01" + public).digest()[:4]
    assert key_id(NAME, public) == expected_id
    material = base64.b64encode(bytes([1]) + public).decode()
    vkey = f"{NAME}+{expected_id.hex()}+{material}"
    assert VerifierKey.of(key, NAME).encode() == vkey

    # the body and the signature line, byte for byte
    body = f"{ORIGIN}\n5\n{base64.b64encode(root).decode()}\n"
    assert cp.body() == body
    text = cp.encode()
    body_part, sig_line = text.split("\n\n")
    assert body_part + "\n" == body
    assert sig_line.endswith("\n") and sig_line.count("\n") == 1
    dash, name, blob = sig_line[:-1].split(" ")
    assert (dash, name) == (EM_DASH, NAME)
    raw = base64.b64decode(blob, validate=True)
    assert raw[:4] == expected_id and len(raw) == 4 + 64
    # verified with `cryptography` directly (raises if wrong)
    Ed25519PublicKey.from_public_bytes(public).verify(raw[4:], body.encode())
    assert raw[4:] == key.sign(body.encode())  # Ed25519 is deterministic (RFC 8032)

    again = Checkpoint.parse(text)
    assert again == cp
    assert again.signers([VerifierKey.parse(vkey)]) == (VerifierKey.of(key, NAME),)


def test_unknown_keys_are_ignored_and_cosignatures_kept() -> None:
    log_key = Ed25519PrivateKey.from_private_bytes(SEED)
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    cp = Checkpoint.sign(ORIGIN, 5, root_from_leaves(LEAVES), log_key, name=NAME)
    both = cp.add_signature(other, "witness.example/w1")
    assert len(Checkpoint.parse(both.encode()).signatures) == 2
    assert both.signers([VerifierKey.of(other, "witness.example/w1")]) == (
        VerifierKey.of(other, "witness.example/w1"),
    )
    assert both.signers([VerifierKey.of(Ed25519PrivateKey.generate())]) == ()
    # same name, different key: a different key ID, so ignored rather than failed
    impostor = VerifierKey.of(Ed25519PrivateKey.generate(), NAME)
    assert both.signers([impostor]) == ()
    # same name and key ID as a trusted key but a bad signature: the note is rejected
    bad = replace(both, signatures=(replace(both.signatures[0], signature=bytes(64)),))
    with pytest.raises(AuditVerificationError):
        bad.signers([VerifierKey.of(log_key, NAME)])


def test_default_key_name_is_derived_from_the_key() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    public = key.public_key().public_bytes_raw()
    assert default_key_name(key) == "tutela.audit/" + hashlib.sha256(public).hexdigest()[:16]
    assert VerifierKey.of(key).name == default_key_name(key)


@pytest.mark.parametrize(
    "text",
    [
        f"{ORIGIN}\n05\nAAAA\n",  # leading zero
        f"{ORIGIN}\n5\n",  # no root line
        f"{ORIGIN}\n5\n{base64.b64encode(bytes(31)).decode()}\n",  # short root
        f"{ORIGIN}\n-5\n{base64.b64encode(bytes(32)).decode()}\n",
        f"{ORIGIN}\n5\n{base64.b64encode(bytes(32)).decode().rstrip('=')}\n",  # no padding
        f"{ORIGIN}\n5\n{base64.b64encode(bytes(32)).decode()}\n\n",  # empty extension line
    ],
)
def test_malformed_checkpoint_bodies_are_refused(text: str) -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    note = SignedNote(text).sign(key, NAME) if not text.endswith("\n\n") else None
    data = note.encode() if note is not None else text + "\n" + _line(key, text)
    with pytest.raises(AuditError, match="malformed checkpoint"):
        Checkpoint.parse(data)


def _line(key: Ed25519PrivateKey, text: str) -> str:
    sig = key.sign(text.encode())
    return NoteSignature(NAME, key_id(NAME, key.public_key()), sig).line()


@pytest.mark.parametrize(
    "data",
    [
        "no blank line\n" + EM_DASH + " a AAAAAAA=\n",
        "text\n\n",  # no signature
        "text\n\n- a AAAAAAAA\n",  # hyphen, not an em dash
        "text\n\n" + EM_DASH + " a+b AAAAAAAA\n",  # '+' in a key name
        "text\n\n" + EM_DASH + " a AAAA\n",  # shorter than a key ID and one byte
        "text\x07\n\n" + EM_DASH + " a AAAAAAAA\n",  # control character
        "text\n\n" + (EM_DASH + " a AAAAAAAA\n") * 101,
    ],
)
def test_malformed_notes_are_refused(data: str) -> None:
    with pytest.raises(ValueError):
        SignedNote.parse(data)


@pytest.mark.parametrize(
    "vkey",
    [
        GO_VERIFIER.replace("c74f20a3", "c74f20a4"),  # key ID does not match
        GO_VERIFIER.replace("c74f20a3", "C74F20A3"),
        GO_VERIFIER.replace("+ARpc", "+Ahpc"),  # not type 0x01
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        GO_VERIFIER[:-1],
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(ValueError):
        VerifierKey.parse(vkey)
