"""SecAgg+ configuration (what the caller chooses) and round parameters (what every party checks).

:class:`SecAggConfig` holds the knobs with safe defaults; :meth:`SecAggConfig.plan` turns it,
the invited clients and the vector length into :class:`RoundParams`: the public, serialisable
parameters of one round that the server sends in its first message and that each client
re-validates before taking part.

Defaults. ``neighbors=None`` picks the smallest even k (at least ``2 * ceil(log2 n)``) such
that, with threshold ``t = k // 2 + 1`` and up to ``floor(dropout_tolerance * n)`` clients
dropping at random, the probability that some client keeps fewer than t live neighbours (so
its secrets could not be rebuilt) is at most ``failure_probability`` (hypergeometric tail,
union bound over clients). When k reaches n - 1 the graph is complete (plain SecAgg). At
n=100 and 10% tolerance this gives k=22, t=12: every client may lose 10 of its 22 neighbours,
so any 10 dropouts are survived with certainty.

Threshold floor. Every round needs ``t > k/2`` (:func:`majority_threshold`); ``validate``
refuses less, and so does every client on the round's first message, whatever the server
or the study asks (see :class:`tutela.secagg.client.ClientPolicy`).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from tutela.hazmat.masks import mask_dtype
from tutela.hazmat.quantize import (
    DEFAULT_WRAP_FAILURE,
    FixedPoint,
    bytes_per_element,
    check_no_wrap,
    max_scale,
    noise_headroom,
)

__all__ = [
    "MAX_CLIENT_ID",
    "PROTOCOL_VERSION",
    "RoundParams",
    "SecAggConfig",
    "Stage",
    "choose_neighbors",
    "majority_threshold",
    "robustness_failure_bound",
]

PROTOCOL_VERSION = 3
"""Version 2 added the consistency-check stage (clients sign the survivor set); version 3
expands masks with the GCTR keystream (:mod:`tutela.hazmat.masks`), so a version-2 party's
masks would not cancel and its messages are refused."""
MAX_CLIENT_ID = (1 << 32) - 2
"""Client ids are integers in [0, 2**32 - 2] (the Shamir x-coordinate is id + 1)."""
_MAX_DDP_STEPS = 2.0**12  # per-client noise std cap in quantisation steps (finer is useless)


class Stage(enum.Enum):
    """Protocol stages, in order."""

    ADVERTISE_KEYS = "advertise_keys"
    SHARE_KEYS = "share_keys"
    MASKED_INPUT = "masked_input"
    CONSISTENCY_CHECK = "consistency_check"
    UNMASK = "unmask"
    DONE = "done"
    ABORTED = "aborted"


ACTIVE_STAGES = (
    Stage.ADVERTISE_KEYS,
    Stage.SHARE_KEYS,
    Stage.MASKED_INPUT,
    Stage.CONSISTENCY_CHECK,
    Stage.UNMASK,
)


def majority_threshold(neighbors: int) -> int:
    """The smallest threshold a round may use with k neighbours: ``k // 2 + 1`` (t > k/2).

    Security: the shares of one client's self-mask seed and of its mask key go to the same
    k neighbours, and an honest neighbour reveals at most one of the two. With t > k/2 a
    server that tells some neighbours "survived" and others "dropped" cannot collect t of
    both without at least 2t - k colluding neighbours; with t <= k/2 it needs none (and at
    t = 1 every single share is the whole secret).
    """
    return neighbors // 2 + 1


def robustness_failure_bound(n: int, k: int, t: int, dropped: int) -> float:
    """Upper bound on P(some client keeps < t live neighbours) with ``dropped`` random dropouts.

    Each client's dropped neighbours are hypergeometric (k draws from n - 1 peers, of which
    ``dropped`` drop); the bound is the union over n clients. 0.0 means impossible.
    """
    if dropped <= k - t:
        return 0.0
    from scipy.stats import hypergeom

    return float(min(1.0, n * hypergeom.sf(k - t, n - 1, min(dropped, n - 1), k)))


def choose_neighbors(
    n: int, dropout_tolerance: float, failure_probability: float
) -> tuple[int, int]:
    """Default (k, t) for n clients; see the module docstring."""
    if n < 3:
        raise ValueError("secure aggregation needs at least 3 clients")
    dropped = math.floor(dropout_tolerance * n)
    floor_k = min(n - 1, 2 * math.ceil(math.log2(n)))
    k = floor_k + (floor_k % 2)
    while k < n - 1:
        t = majority_threshold(k)
        if robustness_failure_bound(n, k, t, dropped) <= failure_probability:
            return k, t
        k += 2
    return n - 1, majority_threshold(n - 1)


@dataclass(frozen=True, slots=True)
class SecAggConfig:
    """What the caller chooses for SecAgg+ rounds.

    Args:
        neighbors: k, the degree of the neighbour graph; ``None`` picks it (see module
            docstring); ``k >= n - 1`` gives the complete graph (SecAgg). An odd k below
            n - 1 is rounded up to even (the graph is a Harary graph).
        threshold: t, shares needed to rebuild a secret; ``None`` gives ``k // 2 + 1``,
            which is also the least allowed (:func:`majority_threshold`).
        modulus_bits: b, arithmetic in Z_{2^b} (8..64); ``ceil(b / 8)`` bytes per
            parameter on the wire.
        clip: each input coordinate is clipped to ``[-clip, clip]`` (real units).
        scale: fixed-point scale (power of two); ``None`` picks the finest that cannot wrap.
            An explicit scale that could wrap is rejected.
        max_weight: public upper bound W on any client's weight; ``None`` uses 1.0 without
            weights and the next power of two above the largest weight with weights (that
            power of two is then public).
        dropout_tolerance: fraction of invited clients that may drop over the whole round;
            ``min_survivors = n - floor(dropout_tolerance * n)``. Fewer survivors at any
            stage abort the round (so distributed-DP noise is never below target).
        ddp_sigma: standard deviation of the distributed-DP noise on the released total,
            in the same real units as the inputs (times weights). 0 disables it.
        failure_probability: robustness target for choosing k (see module docstring).
        stage_timeout_s: deadline of each stage, in seconds of the server's clock.
    """

    neighbors: int | None = None
    threshold: int | None = None
    modulus_bits: int = 32
    clip: float = 8.0
    scale: float | None = None
    max_weight: float | None = None
    dropout_tolerance: float = 0.1
    ddp_sigma: float = 0.0
    failure_probability: float = 2.0**-20
    stage_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        mask_dtype(self.modulus_bits)
        if self.neighbors is not None and self.neighbors < 1:
            raise ValueError("neighbors must be positive")
        if self.threshold is not None and self.threshold < 1:
            raise ValueError("threshold must be positive")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError("clip must be positive and finite")
        if self.scale is not None and not (
            math.isfinite(self.scale) and self.scale > 0 and math.frexp(self.scale)[0] == 0.5
        ):
            raise ValueError("scale must be a positive power of two")
        if self.max_weight is not None and not (
            math.isfinite(self.max_weight) and self.max_weight > 0
        ):
            raise ValueError("max_weight must be positive and finite")
        if not 0 <= self.dropout_tolerance < 1:
            raise ValueError("dropout_tolerance must be in [0, 1)")
        if not (math.isfinite(self.ddp_sigma) and self.ddp_sigma >= 0):
            raise ValueError("ddp_sigma must be finite and non-negative")
        if not 0 < self.failure_probability < 1:
            raise ValueError("failure_probability must be in (0, 1)")
        if not (math.isfinite(self.stage_timeout_s) and self.stage_timeout_s > 0):
            raise ValueError("stage_timeout_s must be positive")

    def plan(
        self, client_ids: tuple[int, ...], dim: int, *, max_weight: float, round_id: bytes
    ) -> RoundParams:
        """Round parameters for these clients and vector length.

        Raises:
            ValueError: fewer than 3 clients, bad ids, k/t inconsistent, or an encoding
                that could wrap (names the fix).
        """
        ids = tuple(sorted(client_ids))
        n = len(ids)
        if n < 3:
            raise ValueError("secure aggregation needs at least 3 clients")
        dropped = math.floor(self.dropout_tolerance * n)
        min_survivors = n - dropped
        if self.neighbors is None:
            k, t_auto = choose_neighbors(n, self.dropout_tolerance, self.failure_probability)
        else:
            k = min(self.neighbors + self.neighbors % 2, n - 1)
            t_auto = majority_threshold(k)
        t = self.threshold if self.threshold is not None else t_auto
        weight_bound = self.max_weight if self.max_weight is not None else max_weight
        if self.ddp_sigma > 0:
            per_client_real = self.ddp_sigma / (weight_bound * math.sqrt(min_survivors))
        else:
            per_client_real = 0.0
        scale = self.scale
        if scale is None:
            scale = max_scale(
                n,
                self.clip,
                self.modulus_bits,
                noise_std_per_client=per_client_real * 1.001,
                dim=dim + 1,
            )
            if per_client_real > 0:
                cap = math.ldexp(1.0, math.floor(math.log2(_MAX_DDP_STEPS / per_client_real)))
                scale = min(scale, cap)
        variance = 0
        if per_client_real > 0:
            variance = math.ceil((per_client_real * scale) ** 2)
        params = RoundParams(
            round_id=round_id,
            client_ids=ids,
            neighbors=k,
            threshold=t,
            min_survivors=min_survivors,
            modulus_bits=self.modulus_bits,
            dim=dim,
            clip=self.clip,
            scale=scale,
            max_weight=weight_bound,
            noise_variance=variance,
            stage_timeout_s=self.stage_timeout_s,
        )
        params.validate()
        return params


@dataclass(frozen=True, slots=True)
class RoundParams:
    """Public parameters of one SecAgg+ round (sent to clients, re-validated by each).

    Attributes:
        round_id: 32 random bytes chosen by the server; binds every signature and key.
        client_ids: the invited clients, sorted.
        neighbors: k (``>= n - 1`` means the complete graph).
        threshold: t, with ``k // 2 < t <= k``.
        min_survivors: the round aborts if fewer clients remain at any stage.
        modulus_bits: b.
        dim: length of the update (the weight travels as one extra word).
        clip: per-coordinate clip (real units).
        scale: fixed-point scale (power of two).
        max_weight: W, public bound on weights.
        noise_variance: per-client discrete-Gaussian variance in quantisation steps
            squared (integer; 0 = no distributed DP).
        stage_timeout_s: deadline per stage.
        version: protocol version.
    """

    round_id: bytes
    client_ids: tuple[int, ...]
    neighbors: int
    threshold: int
    min_survivors: int
    modulus_bits: int
    dim: int
    clip: float
    scale: float
    max_weight: float
    noise_variance: int
    stage_timeout_s: float
    version: int = PROTOCOL_VERSION

    @property
    def n(self) -> int:
        """Number of invited clients."""
        return len(self.client_ids)

    @property
    def fixed_point(self) -> FixedPoint:
        """The encoding of update coordinates."""
        return FixedPoint(self.clip, self.scale, self.modulus_bits)

    @property
    def vector_length(self) -> int:
        """Words in a masked input: the update plus the weight word."""
        return self.dim + 1

    @property
    def wire_bytes_per_word(self) -> int:
        """Bytes per word of the masked input."""
        return bytes_per_element(self.modulus_bits)

    def noise_headroom(self) -> int:
        """Bound on the summed noise per coordinate (see :func:`noise_headroom`)."""
        return noise_headroom(self.noise_variance, self.n, self.vector_length, DEFAULT_WRAP_FAILURE)

    def quantization_error_bound(self, survivors: int) -> float:
        """Worst-case |released total - sum of clipped weighted inputs| per coordinate, noise aside.

        Each stochastic rounding moves a value by less than one step 1/scale; the total is
        W / scale times the integer sum, so the error is below ``W * survivors / scale``.
        """
        return self.max_weight * survivors / self.scale

    def validate(self) -> None:
        """Raise ``ValueError`` unless these parameters are safe and consistent."""
        if self.version != PROTOCOL_VERSION:
            raise ValueError(f"unsupported protocol version {self.version}")
        if len(self.round_id) != 32:
            raise ValueError("round_id must be 32 bytes")
        ids = self.client_ids
        if len(ids) < 3 or list(ids) != sorted(set(ids)):
            raise ValueError("client_ids must be at least 3 distinct ids, sorted")
        if ids[0] < 0 or ids[-1] > MAX_CLIENT_ID:
            raise ValueError(f"client ids must be in [0, {MAX_CLIENT_ID}]")
        n = len(ids)
        if not 1 <= self.neighbors <= n - 1:
            raise ValueError("neighbors must be in [1, n - 1]")
        if self.neighbors < n - 1 and self.neighbors % 2:
            raise ValueError("neighbors below n - 1 must be even")
        floor = majority_threshold(self.neighbors)
        if not floor <= self.threshold <= self.neighbors:
            raise ValueError(
                f"threshold must be in [{floor}, k={self.neighbors}] "
                "(more than half of the neighbours)"
            )
        if not max(self.threshold + 1, 2) <= self.min_survivors <= n:
            raise ValueError("min_survivors must be in [threshold + 1, n]")
        if self.dim < 1:
            raise ValueError("dim must be positive")
        if not (math.isfinite(self.max_weight) and self.max_weight > 0):
            raise ValueError("max_weight must be positive and finite")
        if self.noise_variance < 0:
            raise ValueError("noise_variance must be non-negative")
        if not (math.isfinite(self.stage_timeout_s) and self.stage_timeout_s > 0):
            raise ValueError("stage_timeout_s must be positive")
        fp = self.fixed_point
        check_no_wrap(n, fp.client_bound, self.modulus_bits, self.noise_headroom())
