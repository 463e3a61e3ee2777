"""DP-FedAvg round arithmetic shared by the coordinator and every site.

The calibration, the fit-config keys of a round, the events a round is charged, and how a
site clips and encodes its update: the coordinator (:mod:`tutela.fl.privacy.client`) and the
sites (:mod:`tutela.fl.privacy.site`) compute them with the same functions from the same
study settings.

Privacy: :func:`client_level_calibration` gives the noise multiplier z under which the
study's rounds (Gaussian noise of std ``z C`` on the sum of updates clipped to L2 norm ``C``,
and with adaptive clipping the noisy clip count), composed with the standardisation release,
are (epsilon, delta)-DP under add/remove one site's whole dataset, at sampling rate 1.
:func:`secure_round_event` accounts a SecAgg+ round at the noise guaranteed with its
minimum survivors, including the stochastic-rounding growth of the sensitivity.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tutela.dp.events import ComposedEvent, Event, GaussianEvent
from tutela.dp.federated import calibrate_client_level, clip_update, dp_fedavg_event
from tutela.fl.privacy.budget import _accountant_kind, standardisation_noise_multiplier
from tutela.fl.records import Parameters, ParameterSpec
from tutela.secagg.config import RoundParams

WITHIN_CLIP = "within_clip"
"""Metric a site reports with its clipped update (central noise): 1.0 if its update's norm
was within the round's clip norm, else 0.0 (the adaptive-clipping indicator b_i)."""

ROUND_CLIP = "dp_clip_norm"
ROUND_NOISE = "dp_noise_multiplier"
"""Fit-config keys of a DP-FedAvg round: the clip norm every site clips to, and the noise
multiplier the release will carry (each site checks it against its own calibration)."""


def client_level_calibration(
    epsilon: float,
    delta: float,
    expected_sites: int,
    rounds: int,
    accountant: str,
    *,
    adaptive: bool,
) -> tuple[float, float | None]:
    """The noise multiplier z of the update sum and, with adaptive clipping, the std of the
    centred clip count (``None`` without): what the coordinator and every site compute from
    the same study settings (1% above the calibrated z, which absorbs the rounding terms),
    leaving room for the standardisation release (:func:`standardisation_noise_multiplier`).
    """
    count_std = None
    if adaptive:
        # Size the clip count's noise from the study, not a constant: the count gets about a
        # tenth of the noise budget (its std twice the plain calibration's z, for the centred
        # indicator of sensitivity 1/2), and at least expected_sites / 20 (Andrew et al.).
        plain = calibrate_client_level(
            epsilon, delta, expected_sites, expected_sites, rounds,
            accountant=_accountant_kind(accountant),
        )  # fmt: skip
        count_std = max(1.0, expected_sites / 20, 2.0 * plain)
    z = calibrate_client_level(
        epsilon,
        delta,
        expected_sites,
        expected_sites,
        rounds,
        count_noise_std=count_std,
        accountant=_accountant_kind(accountant),
    )
    # Carve out the standardisation release: every event here is a Gaussian at sampling
    # rate 1, so the study composes exactly into one Gaussian whose 1/z^2 is the sum of its
    # parts; the rounds give up 1/z_s^2 of it, spread over the rounds.
    z_s = standardisation_noise_multiplier(epsilon, delta, accountant)
    rest = z**-2 - z_s**-2 / rounds
    if rest <= 0:  # pragma: no cover - a tenth of epsilon is far less than the whole
        raise ValueError("the standardisation slice leaves no budget for the rounds")
    return rest**-0.5 * 1.01, count_std


def count_scale(sigma: float, clip: float, count_noise_std: float | None) -> float | None:
    """Scale s of the centred count inside SecAgg+ (``None`` without adaptive clipping).

    The count coordinate gets the same noise std as every coordinate (``sigma``), so in
    count units its std is ``sigma / s``; ``s = sigma / sigma_b`` makes it ``sigma_b``, and
    ``s <= 2 C`` keeps ``(b_i - 1/2) s`` inside the coordinate clip range ``[-C, C]``.
    """
    if count_noise_std is None:
        return None
    return min(sigma / count_noise_std, 2.0 * clip)


def guaranteed_sigma(params: RoundParams) -> float:
    """The least noise std on each coordinate of a SecAgg+ round's released sum (real units):
    each survivor's discrete-Gaussian share, at the round's ``min_survivors``."""
    step = params.max_weight / params.scale
    return math.sqrt(params.noise_variance) * step * math.sqrt(params.min_survivors)


def secure_round_event(params: RoundParams, clip: float, dim: int, scale: float | None) -> Event:
    """The event the distributed noise guarantees for one round.

    The noise on each coordinate of the released sum is at least the per-site share
    times ``sqrt(min_survivors)`` (``g``). Stochastic rounding to the step ``u`` can grow
    one site's L2 contribution by ``u sqrt(dim)`` over the update, and by ``u`` on the
    count coordinate. The update sum (sensitivity ``C``) is ``GaussianEvent(g / (C + u
    sqrt(dim)))``; with adaptive clipping the centred count (sensitivity ``s / 2`` in
    coordinate units) adds ``GaussianEvent(g / (s / 2 + u))``, and the round is their
    composition (one site's change to both is bounded separately, so composing the two
    Gaussians is exact for the joint vector).
    """
    step = params.max_weight / params.scale
    guaranteed = guaranteed_sigma(params)
    update = GaussianEvent(guaranteed / (clip + step * math.sqrt(dim)))
    if scale is None:
        return update
    return ComposedEvent([update, GaussianEvent(guaranteed / (scale / 2 + step))])


def central_round_event(noise_multiplier: float, dim: int, count_noise_std: float | None) -> Event:
    """The event of one round with the noise added to the sum of clipped updates by the
    coordinator (and, with adaptive clipping, to the clip count)."""
    return dp_fedavg_event(noise_multiplier, 1.0, 1, dimension=dim, count_noise_std=count_noise_std)


def clip_for_round(update: Parameters, clip: float) -> tuple[Parameters, int]:
    """A site's update clipped to the round's clip norm (float32) and its indicator b_i."""
    clipped, norm = clip_update(update, clip)
    return {k: np.asarray(v, np.float32) for k, v in clipped.items()}, int(norm <= clip)


def secure_input(
    spec: ParameterSpec, clipped: Parameters, indicator: int, scale: float | None
) -> np.ndarray[Any, Any]:
    """What a site contributes to a DP-FedAvg SecAgg+ round: its clipped update, flat, and
    with adaptive clipping its centred indicator ``(b_i - 1/2) s`` as one more coordinate."""
    flat = spec.flatten(clipped)
    return flat if scale is None else np.append(flat, (indicator - 0.5) * scale)
