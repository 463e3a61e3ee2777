"""Secure multi-party computation: additive sharing over Z_{2^64} among N parties.

- :mod:`tutela.smpc.session`: the runtime (input, open, Beaver multiplication, matrix
  products, exact-carry truncation), messages as bytes over a :class:`Network`.
- :mod:`tutela.smpc.dealer`: the trusted dealer of Beaver triples and truncation pairs.
- :mod:`tutela.smpc.stats`: joint count/sum/mean/variance/covariance/correlation.
- :mod:`tutela.smpc.logreg`: secure logistic regression with a polynomial sigmoid.

Security: semi-honest parties, any coalition of at most N - 1 learns only the opened
results; the dealer is trusted. Each module states its own model.
"""

from tutela.smpc.dealer import TrustedDealer
from tutela.smpc.logreg import (
    SecureLogisticRegression,
    Sigmoid,
    standardise,
    train_logistic_regression,
)
from tutela.smpc.session import Network, Session, Shared, Traffic
from tutela.smpc.stats import JointStatistics, joint_statistics, public_bounds
from tutela.smpc.wire import MessageError

__all__ = [
    "JointStatistics",
    "MessageError",
    "Network",
    "SecureLogisticRegression",
    "Session",
    "Shared",
    "Sigmoid",
    "Traffic",
    "TrustedDealer",
    "joint_statistics",
    "public_bounds",
    "standardise",
    "train_logistic_regression",
]
