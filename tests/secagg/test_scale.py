"""The in-process simulation scales with the neighbour graph, not with all pairs of clients:
what every client derives from the same broadcast (the graph, the advertisements by id) is
derived once per round, and a broadcast is serialised once, while each client is still
charged its bytes and its parse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tutela.hazmat.rng import SecureRandom
from tutela.secagg import SecAggConfig, secure_sum
from tutela.secagg import client as client_module
from tutela.secagg import simulate as simulate_module
from tutela.secagg.messages import ShareKeysRequest


def _counting(fn: Callable[..., Any], calls: list[Any]) -> Callable[..., Any]:
    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return fn(*args, **kwargs)

    return spy


def test_a_round_derives_the_graph_once_for_all_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    graphs: list[Any] = []
    encoded: list[Any] = []
    monkeypatch.setattr(client_module, "neighbours", _counting(client_module.neighbours, graphs))
    monkeypatch.setattr(
        simulate_module, "encode_message", _counting(simulate_module.encode_message, encoded)
    )
    n = 30
    inputs = {i: np.full(5, 0.25) for i in range(n)}
    result = secure_sum(inputs, None, SecAggConfig(neighbors=8), rng=SecureRandom(3))
    assert np.allclose(result.total, 0.25 * n, atol=result.quantization_error_bound)
    assert len(graphs) == 1  # not once per client
    assert sum(isinstance(m, ShareKeysRequest) for m in encoded) == 1
    # every client is still charged the whole broadcast (and its parse)
    assert min(result.bytes_down.values()) > n * 200  # n advertisements of > 200 bytes
    assert all(result.client_stage_cpu_seconds["share_keys"][c] > 0 for c in range(n))


def test_clients_in_one_process_still_check_their_own_advertisement() -> None:
    # the memo is keyed by the identity of the parsed message: a client handed another
    # request (here: the broadcast without its own advertisement) checks that one
    from dataclasses import replace

    from tests.secagg.helpers import make_round
    from tutela.errors import ProtocolAbort

    rnd = make_round(6, 3, SecAggConfig(neighbors=4, dropout_tolerance=0.2), seed=5)
    out = rnd.server.start()
    for cid, msg in out.items():
        assert rnd.server.receive(cid, rnd.clients[cid].handle(msg))  # type: ignore[arg-type]
    out = rnd.server.step()
    assert out is not None
    request = out[0]
    assert isinstance(request, ShareKeysRequest)
    rnd.clients[1].handle(request)  # the shared view is built
    stripped = replace(request, advertisements=request.advertisements[1:])
    with pytest.raises(ProtocolAbort, match="own advertisement"):
        rnd.clients[0].handle(stripped)
