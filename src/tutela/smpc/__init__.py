"""Secure multi-party computation: additive sharing over Z_{2^64} among N parties.

- :mod:`tutela.smpc.session`: the runtime (input, open, Beaver multiplication, matrix
  products, exact-carry truncation), messages as bytes over a :class:`Network`.
- :mod:`tutela.smpc.dealer`: the trusted dealer of Beaver triples and truncation pairs.
- :mod:`tutela.smpc.stats`: joint count/sum/mean/variance/covariance/correlation.
- :mod:`tutela.smpc.logreg`: secure logistic regression with a polynomial sigmoid.
- :mod:`tutela.smpc.linkage`: blocking keys (normalised name and date of birth, identifiers).
- :mod:`tutela.smpc.psi`: two-party ECDH private set intersection (the intersection, its
  size only, or shares of a membership bit per row), as message objects with no I/O.
- :mod:`tutela.smpc.triples` and :mod:`tutela.smpc.pairwise`: dealer-free Beaver triples
  (Gilboa products under each party's Paillier key) and a two-party runtime that makes all
  its correlated randomness that way.
- :mod:`tutela.smpc.horizontal`: logistic and linear regression on rows the parties hold
  apart, through secure sums (optionally noised).

Security: semi-honest parties, any coalition of at most N - 1 learns only the opened
results; the dealer, where there is one, is trusted. Each module states its own model.
"""

from tutela.smpc.dealer import TrustedDealer
from tutela.smpc.horizontal import (
    HorizontalModel,
    HorizontalSpec,
    plaintext_horizontal,
    train_horizontal,
)
from tutela.smpc.linkage import BlockingKey, blocking_keys
from tutela.smpc.logreg import (
    SecureLogisticRegression,
    Sigmoid,
    standardise,
    train_logistic_regression,
)
from tutela.smpc.pairwise import PairwiseRuntime
from tutela.smpc.psi import (
    PsiMode,
    PsiRequester,
    PsiResponder,
    PsiResult,
    private_set_intersection,
)
from tutela.smpc.session import Network, Session, Shared, Traffic
from tutela.smpc.stats import JointStatistics, joint_statistics, public_bounds
from tutela.smpc.triples import PaillierTriples, Triple
from tutela.smpc.wire import MessageError

__all__ = [
    "BlockingKey",
    "HorizontalModel",
    "HorizontalSpec",
    "JointStatistics",
    "MessageError",
    "Network",
    "PaillierTriples",
    "PairwiseRuntime",
    "PsiMode",
    "PsiRequester",
    "PsiResponder",
    "PsiResult",
    "SecureLogisticRegression",
    "Session",
    "Shared",
    "Sigmoid",
    "Traffic",
    "Triple",
    "TrustedDealer",
    "blocking_keys",
    "joint_statistics",
    "plaintext_horizontal",
    "private_set_intersection",
    "public_bounds",
    "standardise",
    "train_horizontal",
    "train_logistic_regression",
]
