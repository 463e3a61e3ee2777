"""Where the domain packages meet: the round's privacy pipeline.

One concept per module, each stating its claim:

* :mod:`~tutela.fl.privacy.secure`: :class:`SecureAggregator` runs SecAgg+
  (:mod:`tutela.secagg`) over the sites' updates, so the coordinator learns only their
  weighted sum.
* :mod:`~tutela.fl.privacy.budget`: the standardisation slice of a private study's epsilon.
* :mod:`~tutela.fl.privacy.ledgers`: :func:`ledger_summary`, what a site reports (signed)
  about its own ledger.
* :mod:`~tutela.fl.privacy.sample`: sample-level DP (DP-SGD at each site).
* :mod:`~tutela.fl.privacy.fedavg`: client-level DP (DP-FedAvg) calibration and round
  events, shared by :mod:`~tutela.fl.privacy.client` (the coordinator's side) and
  :mod:`~tutela.fl.privacy.site` (a site's side).

Client-level and sample-level DP are composed from :mod:`tutela.dp`; every spend goes
through the privacy ledger before it happens.
"""

from tutela.fl.privacy.budget import (
    STANDARDISATION_SHARE,
    standardisation_event,
    standardisation_noise_multiplier,
)
from tutela.fl.privacy.client import ClientLevelDP, client_level_dp, expected_sites
from tutela.fl.privacy.fedavg import (
    ROUND_CLIP,
    ROUND_NOISE,
    WITHIN_CLIP,
    central_round_event,
    client_level_calibration,
    clip_for_round,
    count_scale,
    guaranteed_sigma,
    secure_input,
    secure_round_event,
)
from tutela.fl.privacy.ledgers import ledger_summary, no_ledger_summary, site_scope
from tutela.fl.privacy.sample import PrivatizeHook, SampleLevelDP
from tutela.fl.privacy.secure import (
    SecureAggregator,
    max_abs_difference,
    secagg_config_from_study,
    summarise_secagg_rounds,
)
from tutela.fl.privacy.site import SiteClientDP

__all__ = [
    "ROUND_CLIP",
    "ROUND_NOISE",
    "STANDARDISATION_SHARE",
    "WITHIN_CLIP",
    "ClientLevelDP",
    "PrivatizeHook",
    "SampleLevelDP",
    "SecureAggregator",
    "SiteClientDP",
    "central_round_event",
    "client_level_calibration",
    "client_level_dp",
    "clip_for_round",
    "count_scale",
    "expected_sites",
    "guaranteed_sigma",
    "ledger_summary",
    "max_abs_difference",
    "no_ledger_summary",
    "secagg_config_from_study",
    "secure_input",
    "secure_round_event",
    "site_scope",
    "standardisation_event",
    "standardisation_noise_multiplier",
    "summarise_secagg_rounds",
]
