"""The server's unmasking: secrets rebuilt from t shares and checked against what each owner
signed, so a client that reveals a wrong share can stop the round but never skew the sum."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.secagg.helpers import Round, make_round, plain_sum, run
from tutela.errors import ProtocolAbort
from tutela.hazmat.shamir import PRIME, Share
from tutela.secagg import DropoutPlan, SecAggConfig, Stage, decode_message, encode_message
from tutela.secagg.messages import MaskedInput, RevealedShare, UnmaskReply

CONFIG = SecAggConfig(neighbors=6, dropout_tolerance=0.2)  # k = 6, t = 4


def _corrupt(share: RevealedShare) -> RevealedShare:
    parsed = Share.from_bytes(share.share)
    bad = Share(parsed.x, ((parsed.values[0] + 1) % PRIME, parsed.values[1]))
    return replace(share, share=bad.to_bytes())


def _unmask_with(rnd: Round, liar: int, owner: int, kind: str) -> None:
    """Play the unmask stage; ``liar`` reveals a wrong share of ``owner``'s secret."""
    outbox = run(rnd, DropoutPlan.at(Stage.MASKED_INPUT, [9]), until=Stage.UNMASK)
    for cid, request in outbox.items():
        reply = rnd.clients[cid].handle(request)
        assert isinstance(reply, UnmaskReply)
        if cid == liar:
            field = "self_mask_shares" if kind == "self" else "mask_key_shares"
            shares = tuple(_corrupt(r) if r.owner == owner else r for r in getattr(reply, field))
            assert shares != getattr(reply, field), "the liar holds no share of the owner"
            reply = replace(reply, **{field: shares})
        assert rnd.server.receive(cid, decode_message(encode_message(reply)))  # type: ignore[arg-type]


def _revealers(rnd: Round, owner: int) -> list[int]:
    """Clients that hold a share of ``owner`` and reveal it, in the server's (sender) order."""
    return sorted(c for c in rnd.server._delivered[owner] if c in rnd.server._survivors)


@pytest.mark.parametrize("kind", ["self", "key"])
def test_a_wrong_share_among_the_first_t_aborts_without_a_sum(kind: str) -> None:
    owner = 0 if kind == "self" else 9  # a survivor's self-mask seed, a dropped mask key
    probe = make_round(10, 8, CONFIG, seed=81)
    run(probe, DropoutPlan.at(Stage.MASKED_INPUT, [9]), until=Stage.UNMASK)
    liar = _revealers(probe, owner)[0]  # certainly among the first t shares
    rnd = make_round(10, 8, CONFIG, seed=81)  # the same round again, now with the liar
    _unmask_with(rnd, liar, owner, kind)
    with pytest.raises(ProtocolAbort, match="aborted at unmask"):
        rnd.server.step()
    assert rnd.server.stage is Stage.ABORTED
    with pytest.raises(ProtocolAbort):
        rnd.server.result()


@pytest.mark.parametrize("kind", ["self", "key"])
def test_a_wrong_share_beyond_the_first_t_leaves_the_sum_exact(kind: str) -> None:
    owner = 0 if kind == "self" else 9
    probe = make_round(10, 8, CONFIG, seed=82)
    run(probe, DropoutPlan.at(Stage.MASKED_INPUT, [9]), until=Stage.UNMASK)
    revealers = _revealers(probe, owner)
    assert len(revealers) > probe.params.threshold
    rnd = make_round(10, 8, CONFIG, seed=82)
    _unmask_with(rnd, revealers[-1], owner, kind)
    assert rnd.server.step() == {}
    result = rnd.server.result()
    assert 9 not in result.survivors
    err = np.abs(result.total - plain_sum(rnd, result.survivors)).max()
    assert err <= rnd.params.quantization_error_bound(len(result.survivors))


def test_a_parsed_masked_input_does_not_alias_a_mutable_buffer() -> None:
    raw = bytearray(encode_message(MaskedInput(bytes(32), 3, bytes(range(8)))))
    message = decode_message(raw)  # type: ignore[arg-type]
    assert isinstance(message, MaskedInput)
    raw[-8:] = bytes(8)  # the sender's buffer is reused after parsing
    assert bytes(message.payload) == bytes(range(8))
    view = decode_message(bytes(raw))
    assert isinstance(view, MaskedInput) and isinstance(view.payload, memoryview)
    assert view.payload.readonly
