"""Differential privacy: events, accountants, the budget ledger, mechanisms, DP-SGD, DP-FedAvg,
and DP queries over a DataFrame.

Submodules:

- :mod:`tutela.dp.events`: frozen, JSON-serialisable privacy events.
- :mod:`tutela.dp.accounting`: PLD (default) and RDP accountants, calibration.
- :mod:`tutela.dp.ledger`: the persistent budget ledger (refuses overspend).
- :mod:`tutela.dp.mechanisms`: Laplace, Gaussian, discrete, exponential, noisy max.
- :mod:`tutela.dp.sgd`: ``make_private`` for PyTorch (ghost clipping, Poisson sampling).
- :mod:`tutela.dp.federated`: client-level DP for federated averaging (numpy).
- :mod:`tutela.dp.analytics`: DP queries over a DataFrame behind a ledger (``PrivateTable``).

The names below import lazily: ``import tutela.dp`` loads nothing heavy (no PyTorch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tutela._lazy import lazy_getattr

if TYPE_CHECKING:
    from tutela.dp.accounting import (
        AccountantKind,
        PLDAccountant,
        RDPAccountant,
        calibrate_noise_multiplier,
        compute_epsilon,
    )
    from tutela.dp.analytics import PrivateTable, Query, QueryResult, fingerprint, parse_query
    from tutela.dp.ledger import Budget, PrivacyLedger, SpendRecord
    from tutela.dp.mechanisms import (
        DiscreteGaussianMechanism,
        DiscreteLaplaceMechanism,
        ExponentialMechanism,
        GaussianMechanism,
        LaplaceMechanism,
        ReportNoisyMax,
    )
    from tutela.dp.sgd import DPOptimizer, PrivateTraining, make_private

_LAZY = {
    "AccountantKind": "tutela.dp.accounting",
    "PLDAccountant": "tutela.dp.accounting",
    "RDPAccountant": "tutela.dp.accounting",
    "calibrate_noise_multiplier": "tutela.dp.accounting",
    "compute_epsilon": "tutela.dp.accounting",
    "PrivateTable": "tutela.dp.analytics",
    "Query": "tutela.dp.analytics",
    "QueryResult": "tutela.dp.analytics",
    "fingerprint": "tutela.dp.analytics",
    "parse_query": "tutela.dp.analytics",
    "Budget": "tutela.dp.ledger",
    "PrivacyLedger": "tutela.dp.ledger",
    "SpendRecord": "tutela.dp.ledger",
    "DiscreteGaussianMechanism": "tutela.dp.mechanisms",
    "DiscreteLaplaceMechanism": "tutela.dp.mechanisms",
    "ExponentialMechanism": "tutela.dp.mechanisms",
    "GaussianMechanism": "tutela.dp.mechanisms",
    "LaplaceMechanism": "tutela.dp.mechanisms",
    "ReportNoisyMax": "tutela.dp.mechanisms",
    "DPOptimizer": "tutela.dp.sgd",
    "PrivateTraining": "tutela.dp.sgd",
    "make_private": "tutela.dp.sgd",
}

__all__ = [
    "AccountantKind",
    "Budget",
    "DPOptimizer",
    "DiscreteGaussianMechanism",
    "DiscreteLaplaceMechanism",
    "ExponentialMechanism",
    "GaussianMechanism",
    "LaplaceMechanism",
    "PLDAccountant",
    "PrivacyLedger",
    "PrivateTable",
    "PrivateTraining",
    "Query",
    "QueryResult",
    "RDPAccountant",
    "ReportNoisyMax",
    "SpendRecord",
    "calibrate_noise_multiplier",
    "compute_epsilon",
    "fingerprint",
    "make_private",
    "parse_query",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
