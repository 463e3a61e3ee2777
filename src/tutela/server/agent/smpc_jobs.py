"""What a party runs over its :class:`~tutela.server.agent.smpc.SmpcChannel`: PSI, the dealer,
joint statistics (training: :mod:`tutela.server.agent.smpc_train`).

Each function drives one party's side of a protocol from :mod:`tutela.smpc` (pure message
objects) over the session's end-to-end encrypted relay, and reports what it released to the
coordinator's audit record when done.

PSI parties are ``parties[0]`` (the requester) and ``parties[1]`` (the responder); in
``SHARES`` mode ``parties[2]`` is the dealer, a separate service that holds no data, sees no
message between the two parties (it holds no key for them) and sends each its half of the
shuffle correlation.

Joint statistics (:func:`run_stats`) are a secure sum among all parties
(:mod:`tutela.smpc.joint`). With a :class:`StatsPrivacy` plan the party charges its own
ledger for the release before anything is sent, then adds its share of discrete Gaussian
noise (standard deviation ``sigma / sqrt(N)`` on the fixed-point grid, ``sigma`` calibrated
by the analytic Gaussian mechanism to the plan's epsilon and delta for the aggregate
vector's L2 sensitivity) to its local vector, so only the noised total is reconstructed.
The guarantee assumes every party adds its share (semi-honest parties); a party that wants
its guarantee regardless of the others can ask for ``N`` times the variance.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tutela.errors import ProtocolAbort
from tutela.hazmat.ring import FixedPoint64
from tutela.hazmat.rng import SecureRandom
from tutela.server.agent.smpc import SmpcChannel
from tutela.smpc.dealer import ShuffleCorrelation, ShuffleMask, TrustedDealer
from tutela.smpc.joint import SecureSum, StatsSpec, local_vector, statistics_from_total
from tutela.smpc.psi import PsiMode, PsiRequester, PsiResponder, PsiResult

__all__ = [
    "StatsPrivacy",
    "channel_sum",
    "charge_psi_count",
    "charge_release",
    "noise_share",
    "psi_function",
    "run_psi",
    "run_stats",
    "serve_psi_dealer",
    "stats_function",
]

_U64 = np.dtype("<u8")


def psi_function(mode: PsiMode, privacy: StatsPrivacy | None = None) -> str:
    """The session function name of a PSI mode (and of a DP count's parameters)."""
    if privacy is None:
        return f"psi-{mode.value}"
    return f"psi-{mode.value}-dp-e{privacy.epsilon:g}-d{privacy.delta:g}"


def charge_psi_count(privacy: StatsPrivacy, session: str) -> tuple[int, float]:
    """Charge this site's ledger for a DP release of the PSI count, before the session
    opens; return this party's integer noise (discrete Gaussian, used by the requester)
    and its standard deviation.

    Privacy: the count changes by at most one when a row of either party is added or
    removed; the noise of the analytic Gaussian mechanism for sensitivity 1 makes the
    released count (epsilon, delta)-DP for both parties' rows. The requester computes the
    exact count inside the protocol (ECDH cardinality PSI reveals it to the requester);
    the responder and every output see only the noised count.

    Raises:
        BudgetExceeded: past this site's budget; nothing was sent.
    """
    from tutela.dp.events import GaussianEvent
    from tutela.dp.mechanisms import analytic_gaussian_sigma
    from tutela.hazmat.noise import sample_discrete_gaussian

    sigma = analytic_gaussian_sigma(privacy.epsilon, privacy.delta, 1.0)
    charge_release(
        privacy,
        GaussianEvent(noise_multiplier=sigma),
        label=f"smpc PSI count, session {session}",
        key=f"smpc-psi/{session}",
    )
    return int(sample_discrete_gaussian(sigma, 1)[0]), sigma


def _words(*arrays: np.ndarray) -> bytes:
    return b"".join(
        struct.pack(">I", a.size) + np.ascontiguousarray(a, dtype=_U64).tobytes() for a in arrays
    )


def _unwords(data: bytes, count: int) -> list[np.ndarray]:
    out, off = [], 0
    for _ in range(count):
        if len(data) < off + 4:
            raise ProtocolAbort("malformed dealer message")
        (n,) = struct.unpack_from(">I", data, off)
        off += 4
        if len(data) < off + 8 * n:
            raise ProtocolAbort("malformed dealer message")
        out.append(np.frombuffer(data, dtype=_U64, count=n, offset=off).astype(np.uint64))
        off += 8 * n
    if off != len(data):
        raise ProtocolAbort("malformed dealer message")
    return out


def run_psi(
    channel: SmpcChannel,
    keys: Sequence[Sequence[bytes | None]],
    mode: PsiMode,
    *,
    rng: SecureRandom | None = None,
    count_noise: int = 0,
) -> PsiResult:
    """This party's side of PSI over ``channel`` (requester or responder by its position).

    ``count_noise`` (the requester, ``CARDINALITY`` mode) is added to the count before it
    is released (:func:`charge_psi_count` draws it).

    Raises:
        ProtocolAbort: a peer went missing or sent something malformed (the session is
            aborted, naming it).
        ValueError: this site is the dealer, or the keys do not fit the mode.
    """
    parties = list(channel.parties)
    requester, responder = parties[0], parties[1]
    session = channel.session.encode()
    if channel.site == requester:
        mask = None
        if mode is PsiMode.SHARES:
            dealer = parties[2]
            channel.send("dealer-size", dealer, struct.pack(">Q", len(keys)))
            u, z = _unwords(channel.receive("dealer-mask", dealer), 2)
            mask = ShuffleMask(u, z)
        a = PsiRequester(keys, mode, session=session, rng=rng, mask=mask, count_noise=count_noise)
        channel.send("psi-request", responder, a.request())
        final, result = a.finish(channel.receive("psi-response", responder))
        channel.send("psi-finish", responder, final)
    elif channel.site == responder:
        corr = None
        if mode is PsiMode.SHARES:
            perm, e = _unwords(channel.receive("dealer-correlation", parties[2]), 2)
            if not np.array_equal(np.sort(perm), np.arange(perm.size, dtype=np.uint64)):
                channel.abort([parties[2]], "its shuffle correlation is not a permutation")
            corr = ShuffleCorrelation(perm.astype(np.int64), e)
        b = PsiResponder(keys, mode, session=session, rng=rng, correlation=corr)
        response = b.respond(channel.receive("psi-request", requester))
        channel.send("psi-response", requester, response)
        result = b.finish(channel.receive("psi-finish", requester))
    else:
        raise ValueError("the dealer runs serve_psi_dealer, not run_psi")
    channel.finish(
        {
            "function": channel.function,
            "released_to_this_party": {
                PsiMode.INTERSECTION: "linked rows",
                PsiMode.CARDINALITY: "intersection size",
                PsiMode.SHARES: "membership shares"
                + (" and size" if result.size is not None else ""),
            }[mode],
            "size": result.size,
        }
    )
    return result


def serve_psi_dealer(channel: SmpcChannel, *, rng: SecureRandom | None = None) -> int:
    """The dealer's side of SHARES-mode PSI: one shuffle correlation of the requester's size.

    Returns:
        The correlation's length.
    """
    parties = list(channel.parties)
    if channel.site != parties[2]:
        raise ValueError("the dealer is the third party of a SHARES-mode PSI session")
    data = channel.receive("dealer-size", parties[0])
    if len(data) != 8:
        channel.abort([parties[0]], "its size message is malformed")
    n = int(struct.unpack(">Q", data)[0])
    if n > 1 << 24:
        channel.abort([parties[0]], "it asked for more than 2**24 rows")
    mask, corr = TrustedDealer(2, rng).shuffle_correlation(n)
    channel.send("dealer-mask", parties[0], _words(mask.u, mask.z))
    channel.send("dealer-correlation", parties[1], _words(corr.perm.astype(np.uint64), corr.e))
    channel.finish({"function": channel.function, "released_to_this_party": "nothing"})
    return n


@dataclass(frozen=True)
class StatsPrivacy:
    """A party's DP plan for a joint-statistics release.

    Attributes:
        epsilon, delta: the release's guarantee (add/remove one row of the union).
        state_dir: where this site keeps its SMPC ledger (``ledger-smpc.sqlite``).
        budget: the ledger scope's total epsilon budget (at ``delta``).
    """

    epsilon: float
    delta: float
    state_dir: Path
    budget: float

    def __post_init__(self) -> None:
        if not (self.epsilon > 0 and 0 < self.delta < 1 and self.budget >= self.epsilon):
            raise ValueError("need epsilon > 0, 0 < delta < 1 and a budget >= epsilon")


def stats_function(spec: StatsSpec, privacy: StatsPrivacy | None) -> str:
    """The session function name: every party must agree on the spec and the DP parameters."""
    public = {
        "columns": spec.columns,
        "bounds": spec.bounds,
        "histogram": spec.histogram,
        "edges": spec.edges,
        **({"quantiles": spec.quantiles} if spec.quantiles else {}),
        "dp": None if privacy is None else [privacy.epsilon, privacy.delta],
    }
    return "stats-" + hashlib.sha256(json.dumps(public).encode()).hexdigest()[:16]


def charge_release(privacy: StatsPrivacy, event: Any, *, label: str, key: str) -> None:
    """Charge this site's SMPC ledger for ``event`` before anything is released.

    Raises:
        BudgetExceeded: the release would pass the budget; nothing was written.
    """
    from tutela.dp.ledger import PrivacyLedger

    privacy.state_dir.mkdir(parents=True, exist_ok=True)
    ledger = PrivacyLedger(privacy.state_dir / "ledger-smpc.sqlite")
    ledger.create_scope("smpc", privacy.budget, privacy.delta, exist_ok=True)
    ledger.charge("smpc", event, label=label, idempotency_key=key)


def noise_share(sigma: float, n_parties: int, length: int, fxp: FixedPoint64) -> np.ndarray:
    """This party's share of Gaussian noise of total standard deviation ``sigma`` (in the
    values' units): discrete Gaussian of ``sigma / sqrt(N)`` on the fixed-point grid."""
    from tutela.hazmat.noise import sample_discrete_gaussian

    grid_sigma = sigma / math.sqrt(n_parties) * 2.0**fxp.frac_bits
    return sample_discrete_gaussian(grid_sigma, length).view(np.uint64)


def _charge_and_draw(
    privacy: StatsPrivacy, spec: StatsSpec, session: str, n_parties: int, fxp: FixedPoint64
) -> tuple[np.ndarray, float]:
    """Charge this site's ledger for the release, then draw its noise share (grid units)."""
    from tutela.dp.events import GaussianEvent
    from tutela.dp.mechanisms import analytic_gaussian_sigma

    sigma = analytic_gaussian_sigma(privacy.epsilon, privacy.delta, spec.sensitivity)
    charge_release(
        privacy,
        GaussianEvent(noise_multiplier=sigma / spec.sensitivity),
        label=f"smpc joint statistics, session {session}",
        key=f"smpc-stats/{session}",
    )
    return noise_share(sigma, n_parties, spec.length, fxp), sigma


def channel_sum(
    channel: SmpcChannel, step: str, vector: np.ndarray, *, rng: SecureRandom | None = None
) -> np.ndarray:
    """The two-round secure sum (:class:`~tutela.smpc.joint.SecureSum`) of every party's
    ring ``vector`` over an open channel; ``step`` names this sum's messages."""
    parties = list(channel.parties)
    others = [p for p in parties if p != channel.site]
    summer = SecureSum(channel.index, len(parties), int(vector.size), rng=rng)
    for j, message in summer.share(vector).items():
        channel.send(f"{step}-shares", parties[j], message)
    received = channel.receive_all(f"{step}-shares", others)
    for j, message in summer.combine({parties.index(p): m for p, m in received.items()}).items():
        channel.send(f"{step}-total", parties[j], message)
    received = channel.receive_all(f"{step}-total", others)
    return summer.reveal({parties.index(p): m for p, m in received.items()})


def run_stats(
    channel: SmpcChannel,
    table: Mapping[str, npt.ArrayLike],
    spec: StatsSpec,
    *,
    privacy: StatsPrivacy | None = None,
    rng: SecureRandom | None = None,
) -> dict[str, Any]:
    """This party's side of the joint statistics (every party runs the same).

    Call it before :meth:`SmpcChannel.open`: with a privacy plan the ledger is charged
    first (a refusal sends nothing), then the channel is opened.

    Raises:
        BudgetExceeded: the release would pass this site's budget; nothing was sent.
        ProtocolAbort: a party went missing or sent something malformed.
        ValueError: this party's table does not fit the spec.
    """
    fxp = FixedPoint64()
    vector = fxp.encode(local_vector(table, spec))
    parties = list(channel.parties)
    sigma = None
    if privacy is not None:
        noise, sigma = _charge_and_draw(privacy, spec, channel.session, len(parties), fxp)
        vector = vector + noise
    channel.open()
    total = channel_sum(channel, "sum", vector, rng=rng)
    result = statistics_from_total(total, spec, fxp)
    result["dp"] = (
        None
        if privacy is None
        else {"epsilon": privacy.epsilon, "delta": privacy.delta, "sigma_u_units": sigma}
    )
    channel.finish(
        {
            "function": channel.function,
            "released_to_this_party": "count, sums, means, variances, covariance"
            + (", histogram" if spec.histogram else "")
            + (", quantiles" if spec.quantiles else ""),
            "dp_epsilon": None if privacy is None else privacy.epsilon,
        }
    )
    return result
