"""Secure multi-party computation: additive sharing over Z_{2^64} among N parties.

- :mod:`tutela.smpc.session`: the runtime (input, open, Beaver multiplication, matrix
  products, exact-carry truncation), messages as bytes over a :class:`Network`.
- :mod:`tutela.smpc.dealer`: the trusted dealer of Beaver triples and truncation pairs.
- :mod:`tutela.smpc.stats`: joint count/sum/mean/variance/covariance/correlation.
- :mod:`tutela.smpc.logreg`: secure logistic regression with a polynomial sigmoid.
- :mod:`tutela.smpc.linkage`: blocking keys (normalised name and date of birth, identifiers).
- :mod:`tutela.smpc.psi`: two-party ECDH private set intersection (the intersection, its
  size only, or shares of a membership bit per row), as message objects with no I/O.

Security: semi-honest parties, any coalition of at most N - 1 learns only the opened
results; the dealer is trusted. Each module states its own model.
"""

from tutela.smpc.dealer import TrustedDealer
from tutela.smpc.linkage import BlockingKey, blocking_keys
from tutela.smpc.logreg import (
    SecureLogisticRegression,
    Sigmoid,
    standardise,
    train_logistic_regression,
)
from tutela.smpc.psi import (
    PsiMode,
    PsiRequester,
    PsiResponder,
    PsiResult,
    private_set_intersection,
)
from tutela.smpc.session import Network, Session, Shared, Traffic
from tutela.smpc.stats import JointStatistics, joint_statistics, public_bounds
from tutela.smpc.wire import MessageError

__all__ = [
    "BlockingKey",
    "JointStatistics",
    "MessageError",
    "Network",
    "PsiMode",
    "PsiRequester",
    "PsiResponder",
    "PsiResult",
    "SecureLogisticRegression",
    "Session",
    "Shared",
    "Sigmoid",
    "Traffic",
    "TrustedDealer",
    "blocking_keys",
    "joint_statistics",
    "private_set_intersection",
    "public_bounds",
    "standardise",
    "train_logistic_regression",
]
