"""Message encoding: every type round-trips; malformed bytes are rejected."""

from __future__ import annotations

import json

import pytest

from tests.secagg.helpers import make_round, run
from tutela.secagg import (
    DropoutPlan,
    MalformedMessage,
    SecAggConfig,
    Stage,
    decode_message,
    encode_message,
)
from tutela.secagg.config import MAX_CLIENT_ID, PROTOCOL_VERSION
from tutela.secagg.messages import (
    MAX_LIST,
    AdvertiseKeysRequest,
    ConsistencyCheckRequest,
    ConsistencySignature,
    MaskedInput,
    SurvivorSignature,
    UnmaskRequest,
)


def _transcript() -> list[object]:
    rnd = make_round(6, 5, SecAggConfig(neighbors=4, dropout_tolerance=0.2), seed=3)
    run(rnd, DropoutPlan.at(Stage.MASKED_INPUT, [2]))
    return [m for _, _, m in rnd.transcript]


def test_every_message_type_round_trips() -> None:
    messages = _transcript()
    kinds = {type(m).__name__ for m in messages}
    assert len(kinds) == 10  # the consistency check's request and signature included
    for m in messages:
        raw = encode_message(m)  # type: ignore[arg-type]
        assert decode_message(raw) == m
        assert b"pickle" not in raw and raw[:3] == b"TSA"


def test_masked_vector_travels_raw_not_base64() -> None:
    masked = next(m for m in _transcript() if isinstance(m, MaskedInput))
    raw = encode_message(masked)
    assert raw.endswith(masked.payload)
    assert len(raw) - len(masked.payload) < 200


def _frame(kind: int, header: object, tail: bytes = b"") -> bytes:
    body = json.dumps(header).encode()
    return b"TSA" + bytes([PROTOCOL_VERSION, kind]) + len(body).to_bytes(4, "big") + body + tail


def test_malformed_messages_are_rejected() -> None:
    good = encode_message(
        UnmaskRequest(bytes(32), (1, 2), (3,), (SurvivorSignature(1, bytes(64)),))
    )
    rid = "A" * 43 + "="  # 32 bytes
    sig = "A" * 86 + "=="  # 64 bytes

    def unmask(**fields: object) -> bytes:
        header = {"round_id": rid, "survivors": [1], "dropped": [], "signatures": []}
        return _frame(7, {**header, **fields})

    assert isinstance(decode_message(unmask(signatures=[[1, sig]])), UnmaskRequest)
    assert isinstance(
        decode_message(_frame(10, {"round_id": rid, "client_id": 1, "signature": sig})),
        ConsistencySignature,
    )
    cases = [
        b"",
        b"XYZ" + good[3:],
        good[:3] + b"\x01" + good[4:],  # version 1 (no consistency check) is refused
        good[:4] + b"\x63" + good[5:],  # type
        good[:-3],  # truncated header
        good + b"trailing",
        unmask(round_id="AAAA"),  # round id length
        unmask(x=1),
        unmask(survivors=["1"]),
        unmask(survivors=[True]),
        unmask(survivors=[MAX_CLIENT_ID + 1]),
        unmask(signatures=[[1, "AAAA"]]),  # a signature of the wrong length
        unmask(signatures=[[1, sig, 2]]),
        unmask(signatures=[["1", sig]]),
        unmask(signatures=[[-1, sig]]),
        unmask(signatures={"1": sig}),
        _frame(7, {"round_id": rid, "survivors": [1], "dropped": []}),  # signatures missing
        _frame(9, {"round_id": rid, "survivors": [1], "dropped": [], "signatures": []}),
        _frame(9, {"round_id": rid, "survivors": [1], "dropped": [], "x": None}),
        _frame(9, {"round_id": rid, "survivors": [1.0], "dropped": []}),
        _frame(10, {"round_id": rid, "client_id": 1, "signature": "AAAA"}),
        _frame(10, {"round_id": rid, "client_id": 1}),
        _frame(7, [1, 2]),
        b"TSA" + bytes([PROTOCOL_VERSION, 7]) + b"\x00\x00\x00\x02{x",
    ]
    for raw in cases:
        with pytest.raises(MalformedMessage):
            decode_message(raw)


def test_lists_are_bounded_while_parsing() -> None:
    # one more id than any round can hold is refused, whatever the message
    long = _frame(9, {"round_id": "A" * 43 + "=", "survivors": [0] * (MAX_LIST + 1), "dropped": []})
    with pytest.raises(MalformedMessage, match="longer than"):
        decode_message(long)


def test_consistency_messages_round_trip() -> None:
    for msg in (
        ConsistencyCheckRequest(bytes(range(32)), (0, 2, 5), (1,)),
        ConsistencySignature(bytes(32), 3, bytes(range(64))),
        UnmaskRequest(bytes(32), (0, 2), (1,), (SurvivorSignature(2, bytes(64)),)),
    ):
        assert decode_message(encode_message(msg)) == msg


def test_params_round_trip_exactly() -> None:
    rnd = make_round(5, 7, SecAggConfig(ddp_sigma=0.3, clip=0.7), seed=4)
    msg = AdvertiseKeysRequest(rnd.params)
    assert decode_message(encode_message(msg)) == msg
