"""Envelope encryption: known answers, round trips, every tamper case, rotation."""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.errors import ConfigError, IntegrityError
from tutela.governance._files import atomic_write
from tutela.governance.envelope import (
    HEADER_SIZE,
    Envelope,
    Keyring,
    KeyState,
    generate_keyfile,
    read_header,
)

VECTOR = json.loads((Path(__file__).parent / "vectors" / "envelope_v1.json").read_text())
FAST_N = 2**10


def _fixed_rng(*chunks: bytes) -> Callable[[int], bytes]:
    it: Iterator[bytes] = iter(chunks)

    def draw(n: int) -> bytes:
        chunk = next(it)
        assert len(chunk) == n
        return chunk

    return draw


def _vector_ring() -> Keyring:
    return Keyring.from_keys(
        {VECTOR["kek_id"]: bytes.fromhex(VECTOR["kek"])}, primary=VECTOR["kek_id"]
    )


@pytest.fixture
def ring() -> Keyring:
    return Keyring.from_keys({"11" * 8: os.urandom(32)}, primary="11" * 8)


# known answers ------------------------------------------------------------------------------


def test_known_answer_encrypt() -> None:
    rng = _fixed_rng(
        bytes.fromhex(VECTOR["dek"]),
        bytes.fromhex(VECTOR["wrap_nonce"]),
        bytes.fromhex(VECTOR["data_nonce"]),
    )
    blob = Envelope(_vector_ring(), rng=rng).encrypt(
        VECTOR["plaintext"].encode(), name=VECTOR["name"]
    )
    assert blob.hex() == VECTOR["ciphertext"]


def test_known_answer_decrypt() -> None:
    plain = Envelope(_vector_ring()).decrypt(
        bytes.fromhex(VECTOR["ciphertext"]), name=VECTOR["name"]
    )
    assert plain == VECTOR["plaintext"].encode()


def test_documented_layout_rebuilt_from_raw_aes_gcm() -> None:
    """The module docstring's byte layout, built by hand, gives the vector exactly."""
    name = VECTOR["name"].encode()
    name_field = struct.pack(">H", len(name)) + name
    prefix = b"TTLA\x01\x01"
    head = prefix + bytes.fromhex(VECTOR["kek_id"])
    wrap_nonce = bytes.fromhex(VECTOR["wrap_nonce"])
    data_nonce = bytes.fromhex(VECTOR["data_nonce"])
    dek = bytes.fromhex(VECTOR["dek"])
    wrapped = AESGCM(bytes.fromhex(VECTOR["kek"])).encrypt(
        wrap_nonce, dek, b"tutela/envelope/v1/wrap" + head + name_field
    )
    payload = AESGCM(dek).encrypt(
        data_nonce, VECTOR["plaintext"].encode(), b"tutela/envelope/v1/data" + prefix + name_field
    )
    assert (head + wrap_nonce + wrapped + data_nonce + payload).hex() == VECTOR["ciphertext"]
    assert read_header(bytes.fromhex(VECTOR["ciphertext"])).kek_id == VECTOR["kek_id"]


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=2048), name=st.text(max_size=40))
def test_round_trip(data: bytes, name: str) -> None:
    ring = Keyring.from_keys({"22" * 8: bytes(range(32))}, primary="22" * 8)
    env = Envelope(ring)
    blob = env.encrypt(data, name=name)
    assert len(blob) == HEADER_SIZE + len(data) + 16
    assert env.decrypt(blob, name=name) == data


def test_fresh_randomness_per_object(ring: Keyring) -> None:
    env = Envelope(ring)
    a, b = env.encrypt(b"same", name="x"), env.encrypt(b"same", name="x")
    assert a != b
    assert a[26:74] != b[26:74]  # different wrapped data keys


# tamper cases -------------------------------------------------------------------------------


def test_every_single_bit_flip_fails() -> None:
    env = Envelope(_vector_ring())
    blob = bytes.fromhex(VECTOR["ciphertext"])
    for pos in range(len(blob)):
        for bit in (0, 7):
            bad = bytearray(blob)
            bad[pos] ^= 1 << bit
            with pytest.raises(IntegrityError) as info:
                env.decrypt(bytes(bad), name=VECTOR["name"])
            assert str(info.value) == "integrity check failed"


def test_every_truncation_and_extension_fails() -> None:
    env = Envelope(_vector_ring())
    blob = bytes.fromhex(VECTOR["ciphertext"])
    for cut in range(len(blob)):
        with pytest.raises(IntegrityError):
            env.decrypt(blob[:cut], name=VECTOR["name"])
    with pytest.raises(IntegrityError):
        env.decrypt(blob + b"\x00", name=VECTOR["name"])


def test_wrong_name_fails(ring: Keyring) -> None:
    env = Envelope(ring)
    blob = env.encrypt(b"update", name="site-a/round-1")
    with pytest.raises(IntegrityError):
        env.decrypt(blob, name="site-b/round-1")


def test_wrong_key_fails(ring: Keyring) -> None:
    blob = Envelope(ring).encrypt(b"secret", name="n")
    other_same_id = Keyring.from_keys({"11" * 8: os.urandom(32)}, primary="11" * 8)
    other_id = Keyring.from_keys({"33" * 8: os.urandom(32)}, primary="33" * 8)
    for other in (other_same_id, other_id):
        with pytest.raises(IntegrityError):
            Envelope(other).decrypt(blob, name="n")


def test_header_from_one_object_with_payload_of_another_fails(ring: Keyring) -> None:
    env = Envelope(ring)
    a = env.encrypt(b"A" * 40, name="same")
    b = env.encrypt(b"B" * 40, name="same")
    with pytest.raises(IntegrityError):
        env.decrypt(a[:HEADER_SIZE] + b[HEADER_SIZE:], name="same")


def test_swapped_and_renamed_files_fail(tmp_path: Path, ring: Keyring) -> None:
    env = Envelope(ring)
    (tmp_path / "a.csv").write_bytes(b"alpha")
    (tmp_path / "b.csv").write_bytes(b"beta")
    env.encrypt_file(tmp_path / "a.csv", tmp_path / "a.enc")
    env.encrypt_file(tmp_path / "b.csv", tmp_path / "b.enc")
    env.decrypt_file(tmp_path / "a.enc", tmp_path / "a.out")
    assert (tmp_path / "a.out").read_bytes() == b"alpha"
    a, b = (tmp_path / "a.enc").read_bytes(), (tmp_path / "b.enc").read_bytes()
    (tmp_path / "a.enc").write_bytes(b)
    (tmp_path / "b.enc").write_bytes(a)
    for name in ("a.enc", "b.enc"):
        with pytest.raises(IntegrityError):
            env.decrypt_file(tmp_path / name, tmp_path / "x.out")
    (tmp_path / "b.enc").rename(tmp_path / "c.enc")  # holds a.enc's bytes under a new name
    with pytest.raises(IntegrityError):
        env.decrypt_file(tmp_path / "c.enc", tmp_path / "x.out")
    assert not (tmp_path / "x.out").exists()


def test_failed_decrypt_leaves_existing_output_untouched(tmp_path: Path, ring: Keyring) -> None:
    env = Envelope(ring)
    (tmp_path / "in").write_bytes(b"data")
    env.encrypt_file(tmp_path / "in", tmp_path / "in.enc")
    bad = bytearray((tmp_path / "in.enc").read_bytes())
    bad[-1] ^= 1
    (tmp_path / "in.enc").write_bytes(bytes(bad))
    (tmp_path / "out").write_bytes(b"previous")
    with pytest.raises(IntegrityError):
        env.decrypt_file(tmp_path / "in.enc", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "in.enc", "out"]


def test_atomic_write_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


# keyring --------------------------------------------------------------------------------------


def test_keyring_passphrase_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ring" / "keyring"
    ring = Keyring.create(path, passphrase="correct horse", scrypt_n=FAST_N)
    blob = Envelope(ring).encrypt(b"x", name="n")
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"correct horse" not in path.read_bytes()
    again = Keyring.open(path, passphrase="correct horse")
    assert again.primary_id == ring.primary_id
    assert Envelope(again).decrypt(blob, name="n") == b"x"
    with pytest.raises(FileExistsError):
        Keyring.create(path, passphrase="other", scrypt_n=FAST_N)


def test_keyring_default_cost_is_recorded(tmp_path: Path) -> None:
    Keyring.create(tmp_path / "k", passphrase="pw")
    assert json.loads((tmp_path / "k").read_text())["protection"]["n"] == 2**15


def test_wrong_passphrase_and_tampered_keyring_fail(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    Keyring.create(path, passphrase="right", scrypt_n=FAST_N)
    with pytest.raises(IntegrityError):
        Keyring.open(path, passphrase="wrong")
    doc = json.loads(path.read_text())
    downgraded = dict(doc, protection=dict(doc["protection"], n=2**9))
    path.write_text(json.dumps(downgraded))
    with pytest.raises(IntegrityError):
        Keyring.open(path, passphrase="right")
    raw = bytearray(base64.b64decode(doc["ciphertext"]))
    raw[5] ^= 1
    doc["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    path.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError):
        Keyring.open(path, passphrase="right")
    path.write_text("{}")
    with pytest.raises(ConfigError):
        Keyring.open(path, passphrase="right")


def test_keyring_keyfile(tmp_path: Path) -> None:
    keyfile, other = tmp_path / "kf", tmp_path / "other"
    generate_keyfile(keyfile)
    generate_keyfile(other)
    with pytest.raises(FileExistsError):
        generate_keyfile(keyfile)
    ring = Keyring.create(tmp_path / "keyring", keyfile=keyfile)
    blob = Envelope(ring).encrypt(b"payload", name="n")
    assert (
        Envelope(Keyring.open(tmp_path / "keyring", keyfile=keyfile)).decrypt(blob, name="n")
        == b"payload"
    )
    with pytest.raises(IntegrityError):
        Keyring.open(tmp_path / "keyring", keyfile=other)
    with pytest.raises(IntegrityError):
        Keyring.open(tmp_path / "keyring", passphrase="guess")
    (tmp_path / "short").write_bytes(b"abc")
    with pytest.raises(ConfigError):
        Keyring.create(tmp_path / "k2", keyfile=tmp_path / "short")


def test_exactly_one_secret_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Keyring.create(tmp_path / "k", scrypt_n=FAST_N)
    with pytest.raises(ValueError):
        Keyring.create(tmp_path / "k", passphrase="", scrypt_n=FAST_N)


# rotation ---------------------------------------------------------------------------------


def test_rotate_twice_1000_objects_nothing_lost(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    ring = Keyring.create(path, passphrase="pw", scrypt_n=FAST_N)
    env = Envelope(ring)
    originals = {f"obj-{i}": os.urandom(i % 97) for i in range(1000)}
    blobs = {name: env.encrypt(data, name=name) for name, data in originals.items()}
    first = ring.primary_id
    payloads = {name: blob[74:] for name, blob in blobs.items()}

    second = ring.rotate().key_id
    blobs = {name: env.rewrap(blob, name=name) for name, blob in blobs.items()}
    third = ring.rotate().key_id
    blobs = {name: env.rewrap(blob, name=name) for name, blob in blobs.items()}

    assert len({first, second, third}) == 3
    assert {read_header(b).kek_id for b in blobs.values()} == {third}
    assert {name: blob[74:] for name, blob in blobs.items()} == payloads  # never re-encrypted
    assert ring.retire_unused(read_header(b).kek_id for b in blobs.values()) == [first, second]

    reopened = Keyring.open(path, passphrase="pw")
    states = {k.key_id: k.state for k in reopened.list_keys()}
    assert states == {first: KeyState.RETIRED, second: KeyState.RETIRED, third: KeyState.PRIMARY}
    env2 = Envelope(reopened)
    assert {name: env2.decrypt(blob, name=name) for name, blob in blobs.items()} == originals


def test_rotation_keeps_unrewrapped_objects_until_retired(ring: Keyring) -> None:
    env = Envelope(ring)
    old = env.encrypt(b"old", name="n")
    old_id = ring.primary_id
    ring.rotate()
    assert env.decrypt(old, name="n") == b"old"
    assert env.rewrap(env.encrypt(b"new", name="m"), name="m")[6:14].hex() == ring.primary_id
    with pytest.raises(ValueError):
        ring.retire(ring.primary_id)
    ring.retire(old_id)
    with pytest.raises(IntegrityError):
        env.decrypt(old, name="n")
    with pytest.raises(IntegrityError):
        env.rewrap(old, name="n")


def test_rewrap_refuses_tampered_payload(ring: Keyring) -> None:
    env = Envelope(ring)
    blob = bytearray(env.encrypt(b"payload", name="n"))
    ring.rotate()
    blob[-3] ^= 4
    with pytest.raises(IntegrityError):
        env.rewrap(bytes(blob), name="n")


def test_rewrap_file(tmp_path: Path, ring: Keyring) -> None:
    env = Envelope(ring)
    (tmp_path / "p").write_bytes(b"plain")
    env.encrypt_file(tmp_path / "p", tmp_path / "p.enc")
    assert env.rewrap_file(tmp_path / "p.enc") is False
    ring.rotate()
    assert env.rewrap_file(tmp_path / "p.enc") is True
    assert read_header((tmp_path / "p.enc").read_bytes()).kek_id == ring.primary_id
    env.decrypt_file(tmp_path / "p.enc", tmp_path / "p.out")
    assert (tmp_path / "p.out").read_bytes() == b"plain"


def test_a_crafted_keyring_asking_for_gigabytes_of_scrypt_is_refused_before_deriving(
    tmp_path: Path,
) -> None:
    """Someone with write access to the keyring file raises its scrypt cost (n=2^20, r=32 is
    4 GiB); opening it fails at once with a clear error instead of exhausting memory."""
    from tutela.errors import ConfigError

    path = tmp_path / "keyring"
    Keyring.create(path, passphrase="pw", scrypt_n=FAST_N)
    doc = json.loads(path.read_text())
    doc["protection"].update({"n": 2**20, "r": 32, "p": 16})
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="more memory or work"):
        Keyring.open(path, passphrase="pw")
