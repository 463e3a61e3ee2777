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
from tutela.secagg.messages import AdvertiseKeysRequest, MaskedInput, UnmaskRequest


def _transcript() -> list[object]:
    rnd = make_round(6, 5, SecAggConfig(neighbors=4, dropout_tolerance=0.2), seed=3)
    run(rnd, DropoutPlan.at(Stage.MASKED_INPUT, [2]))
    return [m for _, _, m in rnd.transcript]


def test_every_message_type_round_trips() -> None:
    messages = _transcript()
    kinds = {type(m).__name__ for m in messages}
    assert len(kinds) == 8
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
    return b"TSA" + bytes([1, kind]) + len(body).to_bytes(4, "big") + body + tail


def test_malformed_messages_are_rejected() -> None:
    good = encode_message(UnmaskRequest(bytes(32), (1, 2), (3,)))
    cases = [
        b"",
        b"XYZ" + good[3:],
        good[:3] + b"\x02" + good[4:],  # version
        good[:4] + b"\x63" + good[5:],  # type
        good[:-3],  # truncated header
        good + b"trailing",
        _frame(7, {"round_id": "AAAA", "survivors": [], "dropped": []}),  # round id length
        _frame(7, {"round_id": "A" * 44, "survivors": [1], "dropped": [], "x": 1}),
        _frame(7, {"round_id": "A" * 44, "survivors": ["1"], "dropped": []}),
        _frame(7, {"round_id": "A" * 44, "survivors": [True], "dropped": []}),
        _frame(7, [1, 2]),
        b"TSA\x01\x07\x00\x00\x00\x02{x",
    ]
    for raw in cases:
        with pytest.raises(MalformedMessage):
            decode_message(raw)


def test_params_round_trip_exactly() -> None:
    rnd = make_round(5, 7, SecAggConfig(ddp_sigma=0.3, clip=0.7), seed=4)
    msg = AdvertiseKeysRequest(rnd.params)
    assert decode_message(encode_message(msg)) == msg
