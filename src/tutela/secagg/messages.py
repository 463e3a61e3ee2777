"""SecAgg+ protocol messages and their byte encoding (versioned, no pickle).

Wire format of every message::

    b"TSA" | version (1 byte) | type (1 byte) | header length (4 bytes, big-endian)
          | header: UTF-8 JSON object, byte strings as standard base64
          | tail: raw bytes (only the masked vector of :class:`MaskedInput`)

Decoding is strict: unknown versions or types, missing or extra keys, wrong JSON types and
trailing bytes raise :class:`MalformedMessage`. A transport only moves the bytes; the state
machines never see anything but these dataclasses.

Server to client: :class:`AdvertiseKeysRequest`, :class:`ShareKeysRequest`,
:class:`MaskedInputRequest`, :class:`ConsistencyCheckRequest`, :class:`UnmaskRequest`.
Client to server: :class:`KeyAdvertisement`, :class:`ShareKeysReply`, :class:`MaskedInput`,
:class:`ConsistencySignature`, :class:`UnmaskReply`.

Lists of client ids and of signatures hold at most :data:`MAX_LIST` entries (the most
clients a round can hold), and every id is in the client-id range.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from tutela.errors import ProtocolAbort
from tutela.secagg.config import MAX_CLIENT_ID, PROTOCOL_VERSION, RoundParams

__all__ = [
    "MAX_LIST",
    "AdvertiseKeysRequest",
    "ClientMessage",
    "ConsistencyCheckRequest",
    "ConsistencySignature",
    "EncryptedShare",
    "KeyAdvertisement",
    "MalformedMessage",
    "MaskedInput",
    "MaskedInputRequest",
    "Message",
    "RevealedShare",
    "ServerMessage",
    "ShareKeysReply",
    "ShareKeysRequest",
    "SurvivorSignature",
    "UnmaskReply",
    "UnmaskRequest",
    "consistency_bytes",
    "decode_message",
    "encode_message",
]

_MAGIC = b"TSA"
_PREFIX = len(_MAGIC) + 2 + 4
_ADVERTISE_DOMAIN = b"tutela.secagg.advertise/v1|"
_CONSISTENCY_DOMAIN = b"tutela.secagg.consistency/v1|"
MAX_LIST = 1 << 20
"""The most entries a list of ids or signatures may hold in a decoded message."""


class MalformedMessage(ProtocolAbort):
    """A message could not be decoded or fails its schema."""


# -- JSON field helpers ---------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise MalformedMessage("expected base64 text")
    try:
        out = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise MalformedMessage("bad base64") from exc
    if length is not None and len(out) != length:
        raise MalformedMessage(f"expected {length} bytes")
    return out


def _int(value: Any, lo: int = 0, hi: int = (1 << 63) - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise MalformedMessage("expected an integer in range")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedMessage("expected a number")
    out = float(value)
    if not math.isfinite(out):
        raise MalformedMessage("expected a finite number")
    return out


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedMessage("expected a list")
    if len(value) > MAX_LIST:
        raise MalformedMessage(f"a list longer than {MAX_LIST} entries")
    return value


def _fields(header: Any, keys: set[str]) -> dict[str, Any]:
    if not isinstance(header, dict) or set(header) != keys:
        raise MalformedMessage("header fields do not match the message type")
    return header


def _ids(value: Any) -> tuple[int, ...]:
    ids = _list(value)  # checked in C: a round's id lists reach every client
    if ids and (set(map(type, ids)) != {int} or min(ids) < 0 or max(ids) > MAX_CLIENT_ID):
        raise MalformedMessage("expected an integer in range")
    return tuple(ids)


@functools.lru_cache(maxsize=8)
def consistency_bytes(
    round_id: bytes, survivors: tuple[int, ...], dropped: tuple[int, ...]
) -> bytes:
    """The exact bytes a client signs in the consistency check: the round id, then the
    survivors and the dropped clients (each sorted, count-prefixed, 8-byte ids).

    Memoised (a pure function of immutable arguments): a simulation's clients all sign and
    check the same sets."""
    out = bytearray(_CONSISTENCY_DOMAIN + round_id)
    for ids in (survivors, dropped):
        out += len(ids).to_bytes(8, "big")
        for i in sorted(ids):
            out += i.to_bytes(8, "big")
    return bytes(out)


# -- messages -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdvertiseKeysRequest:
    """Server to every invited client: the round parameters; asks for key advertisements."""

    TYPE: ClassVar[int] = 1
    params: RoundParams

    def _header(self) -> dict[str, Any]:
        p = self.params
        return {
            "round_id": _b64(p.round_id),
            "client_ids": list(p.client_ids),
            "neighbors": p.neighbors,
            "threshold": p.threshold,
            "min_survivors": p.min_survivors,
            "modulus_bits": p.modulus_bits,
            "dim": p.dim,
            "clip": p.clip,
            "scale": p.scale,
            "max_weight": p.max_weight,
            "noise_variance": p.noise_variance,
            "stage_timeout_s": p.stage_timeout_s,
            "version": p.version,
        }

    @classmethod
    def _parse(cls, header: Any, tail: bytes) -> AdvertiseKeysRequest:
        h = _fields(header, set(_PARAM_KEYS))
        return cls(
            RoundParams(
                round_id=_unb64(h["round_id"], 32),
                client_ids=_ids(h["client_ids"]),
                neighbors=_int(h["neighbors"]),
                threshold=_int(h["threshold"]),
                min_survivors=_int(h["min_survivors"]),
                modulus_bits=_int(h["modulus_bits"]),
                dim=_int(h["dim"]),
                clip=_float(h["clip"]),
                scale=_float(h["scale"]),
                max_weight=_float(h["max_weight"]),
                noise_variance=_int(h["noise_variance"]),
                stage_timeout_s=_float(h["stage_timeout_s"]),
                version=_int(h["version"]),
            )
        )


@dataclass(frozen=True, slots=True)
class KeyAdvertisement:
    """Client to server: fresh X25519 keys for share encryption and masking, signed.

    Security: the Ed25519 signature (by the client's long-term identity key) covers the
    round id, the client id, both public keys and the commitment to the self-mask seed, so
    an advertisement cannot be forged, altered, or replayed into another round.
    """

    TYPE: ClassVar[int] = 2
    round_id: bytes
    client_id: int
    encryption_key: bytes
    mask_key: bytes
    self_mask_commitment: bytes
    signature: bytes

    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers."""
        return (
            _ADVERTISE_DOMAIN
            + self.round_id
            + self.client_id.to_bytes(8, "big")
            + self.encryption_key
            + self.mask_key
            + self.self_mask_commitment
        )

    def _header(self) -> dict[str, Any]:
        return {
            "round_id": _b64(self.round_id),
            "client_id": self.client_id,
            "encryption_key": _b64(self.encryption_key),
            "mask_key": _b64(self.mask_key),
            "self_mask_commitment": _b64(self.self_mask_commitment),
            "signature": _b64(self.signature),
        }

    @classmethod
    def _from_header(cls, header: Any) -> KeyAdvertisement:
        h = _fields(
            header,
            {
                "round_id",
                "client_id",
                "encryption_key",
                "mask_key",
                "self_mask_commitment",
                "signature",
            },
        )
        return cls(
            round_id=_unb64(h["round_id"], 32),
            client_id=_int(h["client_id"]),
            encryption_key=_unb64(h["encryption_key"], 32),
            mask_key=_unb64(h["mask_key"], 32),
            self_mask_commitment=_unb64(h["self_mask_commitment"], 32),
            signature=_unb64(h["signature"], 64),
        )

    @classmethod
    def _parse(cls, header: Any, tail: bytes) -> KeyAdvertisement:
        return cls._from_header(header)


@dataclass(frozen=True, slots=True)
class ShareKeysRequest:
    """Server to each client that advertised: every advertisement it received."""

    TYPE: ClassVar[int] = 3
    round_id: bytes
    advertisements: tuple[KeyAdvertisement, ...]

    def _header(self) -> dict[str, Any]:
        return {
            "round_id": _b64(self.round_id),
            "advertisements": [a._header() for a in self.advertisements],
        }

    @classmethod
    def _parse(cls, header: Any, tail: bytes) -> ShareKeysRequest:
        h = _fields(header, {"round_id", "advertisements"})
        ads = tuple(KeyAdvertisement._from_header(a) for a in _list(h["advertisements"]))
        return cls(_unb64(h["round_id"], 32), ads)


@dataclass(frozen=True, slots=True)
class EncryptedShare:
    """Shares of the sender's self-mask seed and mask key for one receiver, AES-GCM sealed."""

    sender: int
    receiver: int
    ciphertext: bytes

    def _header(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "receiver": self.receiver,
            "ciphertext": _b64(self.ciphertext),
        }

    @classmethod
    def _from_header(cls, header: Any) -> EncryptedShare:
        h = _fields(header, {"sender", "receiver", "ciphertext"})
        return cls(_int(h["sender"]), _int(h["receiver"]), _unb64(h["ciphertext"]))


@dataclass(frozen=True, slots=True)
class ShareKeysReply:
    """Client to server: one :class:`EncryptedShare` per neighbour (relayed by the server)."""

    TYPE: ClassVar[int] = 4
    round_id: bytes
    client_id: int
    shares: tuple[EncryptedShare, ...]

    def _header(self) -> dict[str, Any]:
        return {
            "round_id": _b64(self.round_id),
            "client_id": self.client_id,
            "shares": [s._header() for s in self.shares],
        }

    @classmethod
    def _parse(cls, header: Any, tail: bytes) -> ShareKeysReply:
        h = _fields(header, {"round_id", "client_id", "shares"})
        shares = tuple(EncryptedShare._from_header(s) for s in _list(h["shares"]))
        return cls(_unb64(h["round_id"], 32), _int(h["client_id"]), shares)


@dataclass(frozen=True, slots=True)
class MaskedInputRequest:
    """Server to each client that shared keys: the shares its live neighbours sent it."""

    TYPE: ClassVar[int] = 5
    round_id: bytes
    shares: tuple[EncryptedShare, ...]

    def _header(self) -> dict[str, Any]:
        return {"round_id": _b64(self.round_id), "shares": [s._header() for s in self.shares]}

    @classmethod
    def _parse(cls, header: Any, tail: bytes) -> MaskedInputRequest:
        h = _fields(header, {"round_id", "shares"})
        shares = tuple(EncryptedShare._from_header(s) for s in _list(h["shares"]))
        return cls(_unb64(h["round_id"], 32), shares)


@dataclass(frozen=True, slots=True)
class MaskedInput:
    """Client to server: the masked vector (update words then the weight word), packed.

    ``payload`` holds ``ceil(b / 8)`` little-endian bytes per word (see
    :func:`tutela.hazmat.quantize.pack`); it travels as the raw tail, not base64. A parsed
    message's payload is a read-only view into the received bytes (the vector is not copied).
    """

    TYPE: ClassVar[int] = 6
    round_id: bytes
    client_id: int
    payload: bytes | memoryview

    def _header(self) -> dict[str, Any]:
        return {"round_id": _b64(self.round_id), "client_id": self.client_id}

    def _tail(self) -> bytes | memoryview:
        return self.payload

    @classmethod
    def _parse(cls, header: Any, tail: bytes | memoryview) -> MaskedInput:
        h = _fields(header, {"round_id", "client_id"})
        return cls(_unb64(h["round_id"], 32), _int(h["client_id"]), tail)


@dataclass(frozen=True, slots=True)
class ConsistencyCheckRequest:
    """Server to each client that sent a masked input: the survivors (the clients whose masked
    inputs it will unmask) and the dropped clients (those that shared keys but sent no masked
    input), for the client to sign."""

    TYPE: ClassVar[int] = 9
    round_id: bytes
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]

    def _header(self) -> dict[str, Any]:
        return {
            "round_id": _b64(self.round_id),
            "survivors": list(self.survivors),
            "dropped": list(self.dropped),
        }

    @classmethod
    def _parse(cls, header: Any, tail: bytes) -> ConsistencyCheckRequest:
        h = _fields(header, {"round_id", "survivors", "dropped"})
        return cls(_unb64(h["round_id"], 32), _ids(h["survivors"]), _ids(h["dropped"]))


@dataclass(frozen=True, slots=True)
class ConsistencySignature:
    """Client to server: the client's Ed25519 identity-key signature over
    :func:`consistency_bytes` of the survivor and dropped sets it was told."""

    TYPE: ClassVar[int] = 10
    round_id: bytes
    client_id: int
    signature: bytes

    def _header(self) -> dict[str, Any]:
        return {
            "round_id": _b64(self.round_id),
            "client_id": self.client_id,
            "signature": _b64(self.signature),
        }

    @classmethod
    def _parse(cls, header: Any, tail: bytes) -> ConsistencySignature:
        h = _fields(header, {"round_id", "client_id", "signature"})
        return cls(_unb64(h["round_id"], 32), _int(h["client_id"]), _unb64(h["signature"], 64))


@dataclass(frozen=True, slots=True)
class SurvivorSignature:
    """One client's consistency-check signature, as the server forwards it."""

    signer: int
    signature: bytes

    def _header(self) -> list[Any]:
        return [self.signer, _b64(self.signature)]

    @classmethod
    def _from_header(cls, value: Any) -> SurvivorSignature:
        pair = _list(value)
        if len(pair) != 2:
            raise MalformedMessage("expected [signer, signature]")
        return cls(_int(pair[0], 0, MAX_CLIENT_ID), _unb64(pair[1], 64))


@dataclass(frozen=True, slots=True)
class UnmaskRequest:
    """Server to each client that signed: who survived and who dropped (the signed sets),
    with the signatures over them that the server collected."""

    TYPE: ClassVar[int] = 7
    round_id: bytes
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]
    signatures: tuple[SurvivorSignature, ...] = ()

    def _header(self) -> dict[str, Any]:
        return {
            "round_id": _b64(self.round_id),
            "survivors": list(self.survivors),
            "dropped": list(self.dropped),
            "signatures": [s._header() for s in self.signatures],
        }

    @classmethod
    def _parse(cls, header: Any, tail: bytes) -> UnmaskRequest:
        h = _fields(header, {"round_id", "survivors", "dropped", "signatures"})
        return cls(
            _unb64(h["round_id"], 32),
            _ids(h["survivors"]),
            _ids(h["dropped"]),
            tuple(SurvivorSignature._from_header(v) for v in _list(h["signatures"])),
        )


@dataclass(frozen=True, slots=True)
class RevealedShare:
    """One revealed Shamir share (:meth:`tutela.hazmat.shamir.Share.to_bytes`) of ``owner``."""

    owner: int
    share: bytes

    def _header(self) -> list[Any]:
        return [self.owner, _b64(self.share)]

    @classmethod
    def _from_header(cls, value: Any) -> RevealedShare:
        pair = _list(value)
        if len(pair) != 2:
            raise MalformedMessage("expected [owner, share]")
        return cls(_int(pair[0]), _unb64(pair[1]))


@dataclass(frozen=True, slots=True)
class UnmaskReply:
    """Client to server: self-mask shares of survivors and mask-key shares of dropped clients.

    Security: an honest client never puts the same owner in both lists, in this reply or
    across replies of the round.
    """

    TYPE: ClassVar[int] = 8
    round_id: bytes
    client_id: int
    self_mask_shares: tuple[RevealedShare, ...]
    mask_key_shares: tuple[RevealedShare, ...]

    def _header(self) -> dict[str, Any]:
        return {
            "round_id": _b64(self.round_id),
            "client_id": self.client_id,
            "self_mask_shares": [s._header() for s in self.self_mask_shares],
            "mask_key_shares": [s._header() for s in self.mask_key_shares],
        }

    @classmethod
    def _parse(cls, header: Any, tail: bytes) -> UnmaskReply:
        h = _fields(header, {"round_id", "client_id", "self_mask_shares", "mask_key_shares"})
        return cls(
            _unb64(h["round_id"], 32),
            _int(h["client_id"]),
            tuple(RevealedShare._from_header(s) for s in _list(h["self_mask_shares"])),
            tuple(RevealedShare._from_header(s) for s in _list(h["mask_key_shares"])),
        )


ServerMessage = (
    AdvertiseKeysRequest
    | ShareKeysRequest
    | MaskedInputRequest
    | ConsistencyCheckRequest
    | UnmaskRequest
)
ClientMessage = KeyAdvertisement | ShareKeysReply | MaskedInput | ConsistencySignature | UnmaskReply
Message = ServerMessage | ClientMessage

_TYPES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        AdvertiseKeysRequest,
        KeyAdvertisement,
        ShareKeysRequest,
        ShareKeysReply,
        MaskedInputRequest,
        MaskedInput,
        ConsistencyCheckRequest,
        ConsistencySignature,
        UnmaskRequest,
        UnmaskReply,
    )
}

_PARAM_KEYS = frozenset(
    {
        "round_id",
        "client_ids",
        "neighbors",
        "threshold",
        "min_survivors",
        "modulus_bits",
        "dim",
        "clip",
        "scale",
        "max_weight",
        "noise_variance",
        "stage_timeout_s",
        "version",
    }
)


def encode_message(message: Message) -> bytes:
    """Serialise a protocol message (see the module docstring for the format)."""
    header = json.dumps(message._header(), separators=(",", ":"), sort_keys=True).encode()
    tail = message._tail() if isinstance(message, MaskedInput) else b""
    return (
        _MAGIC
        + bytes([PROTOCOL_VERSION, message.TYPE])
        + len(header).to_bytes(4, "big")
        + header
        + tail
    )


def decode_message(data: bytes) -> Message:
    """Parse bytes from :func:`encode_message`.

    Raises:
        MalformedMessage: wrong magic, version or type, bad JSON, schema mismatch, or
            trailing bytes on a message without a tail.
    """
    if len(data) < _PREFIX or data[: len(_MAGIC)] != _MAGIC:
        raise MalformedMessage("not a SecAgg+ message")
    version, kind = data[3], data[4]
    if version != PROTOCOL_VERSION:
        raise MalformedMessage(f"unsupported message version {version}")
    cls = _TYPES.get(kind)
    if cls is None:
        raise MalformedMessage(f"unknown message type {kind}")
    length = int.from_bytes(data[5:_PREFIX], "big")
    end = _PREFIX + length
    if end > len(data):
        raise MalformedMessage("truncated header")
    try:
        header = json.loads(data[_PREFIX:end].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage("header is not JSON") from exc
    if cls is MaskedInput:  # the masked vector stays where it arrived: a read-only view
        whole = data if isinstance(data, bytes) else bytes(data)
        return MaskedInput._parse(header, memoryview(whole)[end:])
    if end != len(data):
        raise MalformedMessage("unexpected trailing bytes")
    return cls._parse(header, b"")
