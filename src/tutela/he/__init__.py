"""Homomorphic encryption: CKKS aggregation and inference (TenSEAL), threshold Paillier.

- :mod:`tutela.he.aggregation`: sites share a CKKS key; the coordinator adds ciphertexts
  (optionally weighted) holding only a public context; a site decrypts only the sum.
- :mod:`tutela.he.threshold`: n-of-n threshold Paillier, no single party can decrypt.
- :mod:`tutela.he.inference`: encrypted logistic-regression scoring.
- :mod:`tutela.he.ckks`: parameters (128-bit security) and the error bound.

Each module's docstring states its security model.
"""

from tutela.he.aggregation import AggregationServer, DecryptedSum, SiteKeyring
from tutela.he.ckks import CkksParams
from tutela.he.inference import InferenceClient, LogisticModel, sigmoid_cubic
from tutela.he.threshold import (
    KeyShare,
    PackingParams,
    PaillierPublicKey,
    ThresholdSum,
    deal_threshold_keys,
)

__all__ = [
    "AggregationServer",
    "CkksParams",
    "DecryptedSum",
    "InferenceClient",
    "KeyShare",
    "LogisticModel",
    "PackingParams",
    "PaillierPublicKey",
    "SiteKeyring",
    "ThresholdSum",
    "deal_threshold_keys",
    "sigmoid_cubic",
]
