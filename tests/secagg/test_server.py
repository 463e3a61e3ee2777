"""The server rejects what does not fit the protocol and never releases a partial sum."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.secagg.helpers import make_round
from tutela.errors import ProtocolAbort
from tutela.secagg import SecAggConfig, Stage
from tutela.secagg.messages import MaskedInput, ShareKeysReply


def _advance(rnd, replies):  # type: ignore[no-untyped-def]
    for cid, msg in replies.items():
        assert rnd.server.receive(cid, msg), rnd.server.rejected
    nxt = rnd.server.step()
    assert nxt is not None
    return nxt


def test_server_rejects_out_of_place_messages() -> None:
    rnd = make_round(5, 4, SecAggConfig(neighbors=4, dropout_tolerance=0.2), seed=71)
    out = rnd.server.start()
    ads = {c: rnd.clients[c].handle(m) for c, m in out.items()}  # type: ignore[arg-type]
    assert rnd.server.receive(9, ads[0]) is False  # not invited
    assert rnd.server.receive(1, ads[0]) is False  # sender is not the advertised client
    out = _advance(rnd, ads)
    assert rnd.server.receive(0, ads[0]) is False  # an advertisement in the share stage
    replies = {c: rnd.clients[c].handle(m) for c, m in out.items()}  # type: ignore[arg-type]
    bad = replies[0]
    assert isinstance(bad, ShareKeysReply)
    assert rnd.server.receive(0, replace(bad, shares=bad.shares[1:])) is False  # not all neighbours
    assert rnd.server.receive(0, bad) is True
    assert rnd.server.receive(0, bad) is False  # duplicate
    out = _advance(rnd, {c: r for c, r in replies.items() if c != 0})
    masked = {c: rnd.clients[c].handle(m) for c, m in out.items()}  # type: ignore[arg-type]
    short = masked[1]
    assert isinstance(short, MaskedInput)
    assert rnd.server.receive(1, replace(short, payload=short.payload[:-4])) is False
    assert rnd.server.receive(1, replace(short, round_id=bytes(32))) is False
    assert rnd.server.stage is Stage.MASKED_INPUT


def test_no_result_before_completion_and_abort_is_final() -> None:
    rnd = make_round(5, 4, SecAggConfig(dropout_tolerance=0.2), seed=72)
    with pytest.raises(ProtocolAbort):
        rnd.server.result()
    rnd.server.start()
    rnd.clock.advance(rnd.params.stage_timeout_s)
    with pytest.raises(ProtocolAbort, match="advertise_keys"):
        rnd.server.step()  # nobody answered
    assert rnd.server.stage is Stage.ABORTED
    with pytest.raises(ProtocolAbort):
        rnd.server.step()
    with pytest.raises(ProtocolAbort):
        rnd.server.result()
