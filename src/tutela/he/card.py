"""The public description of a served model: what a data owner needs, never the weights.

A :class:`ModelCard` names the input columns in order, the range each must lie in, the CKKS
parameters the service evaluates under (chosen from the model's multiplicative depth), and
the error bound of a decrypted logit. The service publishes it; the owner generates keys
for its parameters and checks its table's columns against its features before encrypting.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from tutela.errors import DataError
from tutela.he.ckks import CkksParams
from tutela.he.network import PolyNetwork

__all__ = ["CARD_FORMAT", "FLOODING_CAP", "FLOODING_FRACTION", "ModelCard"]

CARD_FORMAT = "tutela-he-model"
FLOODING_FRACTION = 0.25
FLOODING_CAP = 2.0**-14
"""Results are flooded with uniform noise of half-width ``FLOODING_FRACTION`` times the
evaluation error bound, at most ``FLOODING_CAP`` (about 6e-5, so a logit keeps four
decimals); the card's :attr:`ModelCard.error_bound` includes it."""


@dataclass(frozen=True)
class ModelCard:
    """What the service tells data owners about its model.

    Attributes:
        name: a label for people.
        kind: ``logistic`` or ``poly-mlp``.
        digest: the model id (SHA-256 over features, ranges and weights).
        features: input columns, in order.
        ranges: declared ``(low, high)`` per feature; encryption refuses values outside.
        depth: multiplicative depth of the evaluation.
        params: the CKKS parameters keys must be generated with.
        relin_keys: whether the public bundle must carry relinearisation keys.
        evaluation_bound: worst-case CKKS error of the logit on the declared ranges.
        flooding: half-width of the uniform noise added to every result.
    """

    name: str
    kind: str
    digest: str
    features: tuple[str, ...]
    ranges: tuple[tuple[float, float], ...]
    depth: int
    params: CkksParams
    relin_keys: bool
    evaluation_bound: float
    flooding: float

    @property
    def error_bound(self) -> float:
        """Largest absolute error of a decrypted logit: evaluation plus flooding."""
        return self.evaluation_bound + self.flooding

    @classmethod
    def of(cls, network: PolyNetwork, name: str) -> ModelCard:
        """The card of ``network`` (raises ``ValueError`` if its ranges overflow CKKS)."""
        bound = network.error_bound()
        return cls(
            name=name,
            kind=network.kind.value,
            digest=network.digest(),
            features=network.features,
            ranges=network.ranges,
            depth=network.depth,
            params=network.params,
            relin_keys=network.needs_relin_keys,
            evaluation_bound=bound,
            flooding=min(FLOODING_FRACTION * bound, FLOODING_CAP),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (what ``GET /v1/he/model`` returns)."""
        p = self.params
        return {
            "format": CARD_FORMAT,
            "version": 1,
            "name": self.name,
            "kind": self.kind,
            "digest": self.digest,
            "features": list(self.features),
            "ranges": [list(r) for r in self.ranges],
            "depth": self.depth,
            "params": {
                "poly_modulus_degree": p.poly_modulus_degree,
                "coeff_mod_bit_sizes": list(p.coeff_mod_bit_sizes),
                "scale_bits": p.scale_bits,
                "security_bits": 128,
            },
            "relin_keys": self.relin_keys,
            "evaluation_bound": self.evaluation_bound,
            "flooding": self.flooding,
            "error_bound": self.error_bound,
            "output": "logit",
        }

    def dumps(self) -> str:
        """Canonical JSON text."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, doc: Any) -> ModelCard:
        """Parse a card.

        Raises:
            DataError: not a model card, or a field is missing or of the wrong type.
        """
        if not isinstance(doc, dict) or doc.get("format") != CARD_FORMAT:
            raise DataError("not a Tutela HE model card")
        try:
            p = doc["params"]
            params = CkksParams(
                int(p["poly_modulus_degree"]),
                tuple(int(b) for b in p["coeff_mod_bit_sizes"]),
                int(p["scale_bits"]),
                max_abs=2.0**18,
            )
            features = tuple(str(f) for f in doc["features"])
            ranges = tuple((float(lo), float(hi)) for lo, hi in doc["ranges"])
            card = cls(
                name=str(doc["name"]),
                kind=str(doc["kind"]),
                digest=str(doc["digest"]),
                features=features,
                ranges=ranges,
                depth=int(doc["depth"]),
                params=params,
                relin_keys=bool(doc["relin_keys"]),
                evaluation_bound=float(doc["evaluation_bound"]),
                flooding=float(doc["flooding"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed model card: {exc}") from None
        if len(card.ranges) != len(card.features) or not all(
            math.isfinite(lo) and math.isfinite(hi) and lo < hi for lo, hi in card.ranges
        ):
            raise DataError("malformed model card: one finite (low, high) range per feature")
        return card

    @classmethod
    def loads(cls, text: str | bytes) -> ModelCard:
        """Parse a card from JSON text."""
        try:
            return cls.from_json(json.loads(text))
        except json.JSONDecodeError as exc:
            raise DataError(f"malformed model card: {exc.msg}") from None
