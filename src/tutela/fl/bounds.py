"""The update-norm bound: how far one site's update may move the global model in a round.

A study declares ``training.max_update_norm`` (:func:`tutela.fl.config.update_norm_bound`),
and every round's fit config carries it under :data:`MAX_UPDATE_NORM`. Both sides read it
from there:

- every honest site clips its own update (local minus global parameters) to the bound
  before it sends anything (:func:`clip_to_bound`, called by
  :meth:`tutela.fl.client.LocalSite.fit`, so the in-process sites and the network agent
  alike), outside DP too;
- wherever updates are visible in the clear (the round state machine,
  :meth:`tutela.fl.rounds.RoundState.accept`, and the coordinator's inbox without secure
  aggregation) an update whose L2 norm exceeds the bound by more than float rounding
  (:data:`NORM_TOLERANCE`) is refused with :class:`UpdateNormExceeded`
  (:func:`check_update_norm`).

Security: with declared row counts capped (:class:`tutela.fl.rounds.RoundState`) a lying
site moves the plain weighted mean by at most its capped weight share times the bound; a
non-finite or overflowing update never gets that far (refused as non-finite). An honest
site's clipped update is never refused: the site checks the very float32 difference the
coordinator will compute. Under SecAgg+ the coordinator cannot see an update to check it;
there each coordinate is clipped by honest sites and, for a lying one, bounded by the
field: whatever a site masks, its contribution to every decoded coordinate of the sum lies
within ``±2**(modulus_bits - 1) * max_weight / scale``, the range the protocol's fixed-point
scale reserves for the whole sum (:class:`tutela.secagg.config.SecAggConfig`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from tutela.dp.federated import clip_update, update_norm
from tutela.errors import DataError, PolicyViolation
from tutela.fl.records import Array, ConfigRecord, Parameters, add, subtract

MAX_UPDATE_NORM = "max_update_norm"
"""The fit config key carrying the round's L2 bound on one site's update."""

NORM_TOLERANCE = 1e-5
"""Relative slack over the bound before an update is refused (float32 rounding only)."""


class UpdateNormExceeded(DataError):
    """A site's update is longer (L2) than the study's ``max_update_norm``."""


def round_norm_bound(config: ConfigRecord) -> float | None:
    """The round's update-norm bound from its fit config (``None``: the round sets none).

    Raises:
        PolicyViolation: the bound is not a positive finite number (a site refuses the round).
    """
    value = config.get(MAX_UPDATE_NORM)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyViolation(f"task refused: {MAX_UPDATE_NORM} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise PolicyViolation(f"task refused: {MAX_UPDATE_NORM} must be positive, got {value!r}")
    return float(value)


def clip_to_bound(
    parameters: Mapping[str, Array], reference: Mapping[str, Array], bound: float
) -> Parameters:
    """``parameters`` moved towards ``reference`` until ``parameters - reference`` (as float32,
    as the coordinator computes it) has L2 norm at most ``bound``; unchanged if already within.
    """
    update = subtract(parameters, reference)
    if update_norm(update) <= bound:
        return {k: np.asarray(parameters[k], np.float32) for k in reference}
    clipped, _ = clip_update(update, bound)
    out = add(reference, clipped)
    scale = 1.0
    while update_norm(subtract(out, reference)) > bound:  # the sum rounds: shrink by ulps
        scale *= 1 - 1e-6
        out = add(reference, clipped, scale)
    return out


def check_update_norm(update: Mapping[str, Array], bound: float | None, site: str) -> float:
    """Refuse an update longer than ``bound`` (beyond float rounding); returns its norm.

    Raises:
        UpdateNormExceeded: the norm is above ``bound * (1 + NORM_TOLERANCE)``.
    """
    norm = update_norm(update)
    if bound is not None and not norm <= bound * (1 + NORM_TOLERANCE):
        raise UpdateNormExceeded(
            f"site {site}'s update has L2 norm {norm:.6g}, above the study's "
            f"{MAX_UPDATE_NORM} of {bound:.6g}: refused"
        )
    return norm
