"""Secure aggregation: SecAgg+ (Bell et al. 2020) with dropout recovery and distributed DP.

The safe entry point is :func:`secure_sum` (one in-process round, used by ``tutela.fl``).
Deployments drive the pure state machines :class:`SecAggServer` and :class:`SecAggClient`
over a transport, moving the messages of :mod:`tutela.secagg.messages` as bytes
(:func:`encode_message` / :func:`decode_message`).
"""

from tutela.secagg.client import (
    AdvertisementRejected,
    ClientPolicy,
    RequestRefused,
    SecAggClient,
)
from tutela.secagg.config import RoundParams, SecAggConfig, Stage, choose_neighbors
from tutela.secagg.messages import MalformedMessage, decode_message, encode_message
from tutela.secagg.server import AggregateResult, SecAggServer
from tutela.secagg.simulate import DropoutPlan, ManualClock, SecAggResult, secure_sum

__all__ = [
    "AdvertisementRejected",
    "AggregateResult",
    "ClientPolicy",
    "DropoutPlan",
    "MalformedMessage",
    "ManualClock",
    "RequestRefused",
    "RoundParams",
    "SecAggClient",
    "SecAggConfig",
    "SecAggResult",
    "SecAggServer",
    "Stage",
    "choose_neighbors",
    "decode_message",
    "encode_message",
    "secure_sum",
]
