"""Training over a party's :class:`~tutela.server.agent.smpc.SmpcChannel`: vertical logistic
regression on PSI-linked rows, horizontal logistic and linear regression.

Horizontal training (:func:`run_train_horizontal`) runs :func:`tutela.smpc.horizontal.
train_horizontal` with every release a secure sum among all parties (no dealer). With a
:class:`~tutela.server.agent.smpc_jobs.StatsPrivacy` plan the party first charges its own
ledger for the whole training (``releases`` Gaussian releases at one noise multiplier,
calibrated to the plan's epsilon and delta), then adds its share of the noise to each
released sum, as the joint statistics do.

Vertical training (:func:`run_train`) takes its correlated randomness from one of two
sources (:class:`TripleSource`), which the session's function name carries so every
participant agrees on it:

* ``DEALER``: the parties are ``channel.parties[:-1]``; the last participant is the dealer
  (:func:`serve_train_dealer`), a separate service that hears only the public plan, sends
  each party its material and sees no message between the parties.
* ``PAILLIER``: exactly two parties and no third participant; each makes the other's
  triples and truncation with its own Paillier key (:mod:`tutela.smpc.pairwise`), at a
  higher cost in time and bytes (``benchmarks/smpc.py``).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tutela.hazmat.ring import FixedPoint64
from tutela.hazmat.rng import SecureRandom
from tutela.server.agent.smpc import SmpcChannel
from tutela.server.agent.smpc_jobs import StatsPrivacy, channel_sum, charge_release, noise_share
from tutela.smpc.horizontal import HorizontalModel, HorizontalSpec, train_horizontal

__all__ = [
    "TripleSource",
    "horizontal_function",
    "run_train",
    "run_train_horizontal",
    "serve_train_dealer",
    "train_function",
]


class TripleSource(enum.Enum):
    """Where vertical training's correlated randomness comes from."""

    DEALER = "dealer"
    PAILLIER = "paillier"


def train_function(
    iterations: int, learning_rate: float, l2: float, triples: TripleSource = TripleSource.DEALER
) -> str:
    """The session function name of vertical training (the parties and the dealer agree on
    the hyperparameters and the source of triples through it)."""
    name = f"train-vertical-i{iterations}-lr{learning_rate:g}-l2{l2:g}"
    return name if triples is TripleSource.DEALER else f"{name}-{triples.value}"


def _data_parties(channel: SmpcChannel, triples: TripleSource) -> list[str]:
    parties = list(channel.parties)
    if triples is TripleSource.PAILLIER:
        if len(parties) != 2:
            raise ValueError("dealer-free (paillier) training is between exactly two parties")
        return parties
    if len(parties) < 3:
        raise ValueError("give every data party in order, then the dealer")
    return parties[:-1]


def _announce(
    channel: SmpcChannel, parties: list[str], rows: int, width: int, label: bool
) -> dict[str, list[int]]:
    """Every party tells every other participant its rows, width and whether it holds the
    label; returns what each party announced (``[rows, width, label]``)."""
    mine = [rows, width, int(label)]
    for other in channel.parties:
        if other != channel.site:
            channel.send("plan", other, json.dumps(mine).encode())
    heard = channel.receive_all("plan", [p for p in parties if p != channel.site])
    out = {}
    for site in parties:
        try:
            value = mine if site == channel.site else json.loads(heard[site])
            if not (
                isinstance(value, list)
                and len(value) == 3
                and all(isinstance(v, int) for v in value)
            ):
                raise ValueError
        except ValueError:
            channel.abort([site], "its plan announcement is malformed")
        out[site] = value
    return out


def _plan(
    channel: SmpcChannel,
    parties: list[str],
    announced: dict[str, list[int]],
    iterations: int,
    learning_rate: float,
    l2: float,
) -> Any:
    from tutela.smpc.vertical import VerticalPlan

    rows = {a[0] for a in announced.values()}
    labels = [p for p in parties if announced[p][2]]
    if len(rows) != 1:
        channel.abort([], f"the parties hold different numbers of linked rows: {sorted(rows)}")
    if len(labels) != 1:
        channel.abort([], f"exactly one party must hold the label; got {labels or 'none'}")
    return VerticalPlan(
        rows=rows.pop(),
        widths=tuple(announced[p][1] for p in parties),
        label_party=parties.index(labels[0]),
        iterations=iterations,
        learning_rate=learning_rate,
        l2=l2,
    )


def run_train(
    channel: SmpcChannel,
    features: np.ndarray,
    labels: np.ndarray | None,
    *,
    iterations: int,
    learning_rate: float,
    l2: float = 0.0,
    triples: TripleSource = TripleSource.DEALER,
    key_bits: int = 2048,
    rng: SecureRandom | None = None,
) -> np.ndarray:
    """This party's side of vertical logistic regression over linked rows (joint order).

    Args:
        triples: the source of correlated randomness (module docstring).
        key_bits: this party's Paillier modulus size (``PAILLIER`` only).

    Returns:
        The opened weights (every party's columns in party order, then the bias).

    Raises:
        ProtocolAbort: a party went missing or sent something malformed (named).
        ValueError: this site is the dealer, or the parties do not fit the source.
    """
    from tutela.smpc.party import MaterialStream, PartyRuntime
    from tutela.smpc.vertical import train_vertical

    parties = _data_parties(channel, triples)
    if channel.site not in parties:
        raise ValueError("the dealer runs serve_train_dealer, not run_train")
    announced = _announce(
        channel, parties, features.shape[0], features.shape[1], labels is not None
    )
    plan = _plan(channel, parties, announced, iterations, learning_rate, l2)

    def exchange(
        step: str, outbox: Mapping[int, bytes], senders: Sequence[int]
    ) -> dict[int, bytes]:
        for j, message in outbox.items():
            channel.send(f"t-{step}", parties[j], message)
        got = channel.receive_all(f"t-{step}", [parties[j] for j in senders])
        return {parties.index(site): m for site, m in got.items()}

    me = parties.index(channel.site)
    runtime: PartyRuntime
    if triples is TripleSource.PAILLIER:
        from tutela.hazmat.paillier import generate_paillier_keypair
        from tutela.smpc.pairwise import PairwiseRuntime

        runtime = PairwiseRuntime(me, exchange, generate_paillier_keypair(key_bits), rng=rng)
    else:
        material = MaterialStream.from_bytes(channel.receive("material", channel.parties[-1]))
        runtime = PartyRuntime(me, len(parties), exchange, material, rng=rng)
    weights = train_vertical(runtime, plan, features, labels)
    channel.finish(
        {
            "function": channel.function,
            "released_to_this_party": "model weights (every party's columns and the bias)",
            "rows": plan.rows,
            "triples": triples.value,
        }
    )
    return weights


def serve_train_dealer(
    channel: SmpcChannel,
    *,
    iterations: int,
    learning_rate: float,
    l2: float = 0.0,
    rng: SecureRandom | None = None,
) -> int:
    """The dealer of vertical training: hears the plan, dry-runs the program, sends each
    party its material. It sees no data and no message between the parties.

    Returns:
        The number of ring elements it sent each party.
    """
    from tutela.smpc.party import ShapeRuntime
    from tutela.smpc.vertical import train_vertical

    parties = list(channel.parties)[:-1]
    if channel.site != list(channel.parties)[-1]:
        raise ValueError("the dealer is the last party of a training session")
    heard = channel.receive_all("plan", parties)
    announced = {}
    for site in parties:
        try:
            announced[site] = json.loads(heard[site])
        except ValueError:
            channel.abort([site], "its plan announcement is malformed")
    plan = _plan(channel, parties, announced, iterations, learning_rate, l2)
    dry = ShapeRuntime(len(parties), rng)
    train_vertical(dry, plan, None)
    size = 0
    for site, stream in zip(parties, dry.streams(), strict=True):
        channel.send("material", site, stream.to_bytes())
        size = sum(int(item.size) for item in stream.items)
    channel.finish({"function": channel.function, "released_to_this_party": "nothing"})
    return size


def horizontal_function(spec: HorizontalSpec, privacy: StatsPrivacy | None) -> str:
    """The session function name: every party must agree on the spec and the DP parameters."""
    public = {
        "model": spec.model.value,
        "features": spec.features,
        "bounds": spec.bounds,
        "label": [spec.label, spec.label_bound],
        "gd": [spec.iterations, spec.learning_rate, spec.l2],
        "dp": None if privacy is None else [privacy.epsilon, privacy.delta],
    }
    return "train-horizontal-" + hashlib.sha256(json.dumps(public).encode()).hexdigest()[:16]


def _noise_multiplier(privacy: StatsPrivacy, releases: int) -> float:
    from tutela.dp.accounting import calibrate_noise_multiplier
    from tutela.dp.mechanisms import analytic_gaussian_sigma

    if releases == 1:
        return analytic_gaussian_sigma(privacy.epsilon, privacy.delta, 1.0)
    # on the ledger's PLD grid, so the charge below passes a budget equal to epsilon
    return calibrate_noise_multiplier(
        privacy.epsilon, privacy.delta, 1.0, releases, value_discretization_interval=1e-4
    )


def run_train_horizontal(
    channel: SmpcChannel,
    table: Mapping[str, Any],
    spec: HorizontalSpec,
    *,
    privacy: StatsPrivacy | None = None,
    rng: SecureRandom | None = None,
) -> dict[str, Any]:
    """This party's side of horizontal training (every party runs the same).

    Call it before :meth:`SmpcChannel.open`: with a privacy plan the ledger is charged
    first (a refusal sends nothing), then the channel is opened.

    Returns:
        ``coefficients`` (per feature, data units), ``intercept``, ``dp`` (or None).

    Raises:
        BudgetExceeded: the training would pass this site's budget; nothing was sent.
        ProtocolAbort: a party went missing or sent something malformed.
        ValueError: this party's table does not fit the spec.
    """
    from tutela.dp.accounting import dpsgd_event

    fxp = FixedPoint64()
    n_parties = len(channel.parties)
    z = None
    if privacy is not None:
        z = _noise_multiplier(privacy, spec.releases)
        charge_release(
            privacy,
            dpsgd_event(z, 1.0, spec.releases),  # releases Gaussians, no sampling
            label=f"smpc horizontal {spec.model.value} regression, session {channel.session}",
            key=f"smpc-train/{channel.session}",
        )
    channel.open()

    def secure_sum(step: str, vector: np.ndarray, sensitivity: float) -> np.ndarray:
        ring = fxp.encode(vector)
        if z is not None:
            ring = ring + noise_share(z * sensitivity, n_parties, ring.size, fxp)
        return fxp.decode(channel_sum(channel, f"h-{step}", ring, rng=rng))

    weights = train_horizontal(table, spec, secure_sum)
    channel.finish(
        {
            "function": channel.function,
            "released_to_this_party": (
                "sufficient statistics and the model"
                if spec.model is HorizontalModel.LINEAR
                else "row count, every iteration's gradient sum and the model"
            ),
            "dp_epsilon": None if privacy is None else privacy.epsilon,
        }
    )
    return {
        "model": spec.model.value,
        "coefficients": dict(zip(spec.features, weights[:-1].tolist(), strict=True)),
        "intercept": float(weights[-1]),
        "dp": None
        if privacy is None
        else {
            "epsilon": privacy.epsilon,
            "delta": privacy.delta,
            "noise_multiplier": z,
            "releases": spec.releases,
        },
    }
