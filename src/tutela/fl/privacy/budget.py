"""The standardisation slice of a private study's budget.

A private study pays for its standardisation statistics (the pooled feature moments) before
any round: one Gaussian mechanism at :data:`STANDARDISATION_SHARE` of the study's epsilon.

Privacy: the standardisation release is (``STANDARDISATION_SHARE * epsilon``, delta)-DP under
the study's neighbouring relation, planned as :func:`standardisation_event`; the training
calibrations (:class:`~tutela.fl.privacy.sample.SampleLevelDP`,
:func:`~tutela.fl.privacy.fedavg.client_level_calibration`) leave room for it, so the
standardisation and every round together fit the study's (epsilon, delta).
"""

from __future__ import annotations

from tutela.dp.accounting import AccountantKind, calibrate_noise_multiplier
from tutela.dp.events import Event, GaussianEvent


def _accountant_kind(name: str) -> AccountantKind:
    return AccountantKind.RDP if name == "rdp" else AccountantKind.PLD


STANDARDISATION_SHARE = 0.1
"""The slice of a private study's epsilon that pays for its standardisation statistics."""


def standardisation_noise_multiplier(epsilon: float, delta: float, accountant: str) -> float:
    """z of the standardisation release: one Gaussian mechanism at a tenth of the study's
    epsilon (:data:`STANDARDISATION_SHARE`), at the study's delta.

    Every party computes it from the study's settings (the sites, which charge it to their
    own ledgers before sending, and the coordinator, which plans the secure round with it).

    The training calibrations (:class:`SampleLevelDP`, :func:`client_level_calibration`)
    leave room for it, so the standardisation and every round together fit the study's
    epsilon.
    """
    return calibrate_noise_multiplier(
        STANDARDISATION_SHARE * epsilon, delta, 1.0, 1, _accountant_kind(accountant)
    )


def standardisation_event(epsilon: float, delta: float, accountant: str) -> Event:
    """The event a site's standardisation release is planned at (what training leaves room
    for); the release itself is at least as noisy (:mod:`tutela.fl.standardisation`)."""
    return GaussianEvent(standardisation_noise_multiplier(epsilon, delta, accountant))
