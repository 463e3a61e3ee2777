"""Differential privacy: events, accountants, the budget ledger, mechanisms, DP-SGD, DP-FedAvg.

Submodules (import them directly; nothing heavy is imported here):

- :mod:`tutela.dp.events`: frozen, JSON-serialisable privacy events.
- :mod:`tutela.dp.accounting`: PLD (default) and RDP accountants, calibration.
- :mod:`tutela.dp.ledger`: the persistent budget ledger (refuses overspend).
- :mod:`tutela.dp.mechanisms`: Laplace, Gaussian, discrete, exponential, noisy max.
- :mod:`tutela.dp.sgd`: ``make_private`` for PyTorch (ghost clipping, Poisson sampling).
- :mod:`tutela.dp.federated`: client-level DP for federated averaging (numpy).
"""
