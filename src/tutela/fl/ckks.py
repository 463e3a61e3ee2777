"""CKKS aggregation of a round's updates: the sites' side and the coordinator's side apart.

Every runtime runs the same two objects; only the transport differs:

* :class:`CkksSite` is one site's part. It holds the study's keyring (the CKKS secret key
  and the check key, made by a key ceremony and provisioned to every site), encrypts its
  own flattened update bound to the round's aggregation id and to its name, and decrypts
  only an aggregate that holds exactly the named contributions, at least its minimum
  number of them, once per aggregation id.
* :class:`CkksCoordinator` is the coordinator's part. It holds only the public context
  (it refuses one with a secret key) and adds the contributions weighted by the declared
  (capped) row counts. It can decrypt nothing.

In process, :class:`CkksAggregator` plays the round with a coordinator object and simulated
site objects (the first contributor decrypts, as one site does over the network); through
the coordinator, :mod:`tutela.server.ckks` runs the coordinator object and each site agent
its own :class:`CkksSite` (:mod:`tutela.server.agent.ckks`).

Security: who can decrypt what. Each site holding the keyring can decrypt any contribution
or aggregate of the study; it decrypts only aggregates of at least ``min_contributions``
named contributions (never a single update), each aggregation id once. The coordinator can
decrypt nothing: it holds the public context only. A site colluding with the coordinator
learns every update (one shared key, not a threshold key); the released mean is rounded to
its error bound (see :mod:`tutela.he.aggregation`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tutela.errors import PolicyViolation, QuorumNotMet
from tutela.fl.records import Parameters, ParameterSpec
from tutela.fl.strategy import ClientUpdate, FitAggregate
from tutela.he.aggregation import AggregationServer, SiteKeyring
from tutela.he.ckks import CkksParams

__all__ = [
    "CkksAggregator",
    "CkksCoordinator",
    "CkksMean",
    "CkksSite",
    "ckks_report",
    "ckks_round_id",
    "min_contributions",
]

FloatArray = npt.NDArray[np.float64]
LIBRARY = "TenSEAL (Microsoft SEAL)"


def ckks_round_id(study: str, server_round: int, attempt: int = 1) -> bytes:
    """The aggregation id of one round attempt: every contribution and the decryption of
    their sum are bound to it, so nothing is replayed into another round or study."""
    text = f"tutela.fl.ckks/v1\x00{study}\x00{server_round}\x00{attempt}"
    return hashlib.sha256(text.encode("utf-8")).digest()


def min_contributions(quorum: int, policy_floor: int = 2) -> int:
    """The fewest contributions a site decrypts: the study's quorum, the site policy's floor,
    and never fewer than two (one contribution is one site's update)."""
    return max(2, int(quorum), int(policy_floor))


@dataclass(frozen=True)
class CkksMean:
    """A decrypted round mean and what stands behind it.

    Attributes:
        values: the weighted mean, one float per parameter (flattened).
        total_weight: the sum of the contributors' weights.
        n_terms: number of contributions.
        error_bound: per-value absolute error bound of ``values`` against the exact mean.
    """

    values: FloatArray
    total_weight: float
    n_terms: int
    error_bound: float


@dataclass
class CkksSite:
    """One site's part of CKKS aggregation (see the module docstring).

    Args:
        name: the site's name (bound into its contribution).
        keyring: the study's keyring, as provisioned to this site.
        min_contributions: the fewest named contributions this site decrypts.
    """

    name: str
    keyring: SiteKeyring = field(repr=False)
    min_contributions: int = 2
    _decrypted: set[bytes] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.min_contributions < 2:
            raise ValueError("a site never decrypts fewer than two contributions")

    def encrypt(self, update: FloatArray, aggregation_id: bytes) -> bytes:
        """This site's flattened update, encrypted and bound to the round and to its name."""
        return self.keyring.encrypt_update(
            update, aggregation_id=aggregation_id, contributor=self.name
        )

    def decrypt_mean(
        self, aggregate: bytes, aggregation_id: bytes, contributors: Mapping[str, float]
    ) -> CkksMean:
        """Decrypt the weighted sum of exactly ``contributors`` (name -> weight); return the mean.

        Raises:
            PolicyViolation: fewer than ``min_contributions`` contributors, or this
                aggregation id was decrypted before (nothing is decrypted).
            IntegrityError: the aggregate does not hold exactly those contributions with
                those weights, or was tampered with.
        """
        if aggregation_id in self._decrypted:
            raise PolicyViolation("this site already decrypted that round's aggregate")
        total = self.keyring.decrypt_sum(
            aggregate,
            aggregation_id=aggregation_id,
            contributors=contributors,
            min_terms=self.min_contributions,
        )
        self._decrypted.add(aggregation_id)
        weight = total.total_weight
        return CkksMean(
            np.asarray(total.values, np.float64) / weight,
            weight,
            total.n_terms,
            total.error_bound / weight,
        )


class CkksCoordinator:
    """The coordinator's part: the public context only; adds weighted contributions.

    Raises:
        CryptoError: the context holds a secret key.
    """

    __slots__ = ("server",)

    def __init__(self, public_context: bytes, params: CkksParams | None = None) -> None:
        self.server = AggregationServer(public_context, params)

    @property
    def params(self) -> CkksParams:
        """The CKKS parameters the sites encrypt under."""
        return self.server.params

    def is_private(self) -> bool:
        """Whether this object could decrypt (never)."""
        return self.server.is_private()

    def aggregate(self, contributions: Mapping[str, bytes], weights: Mapping[str, float]) -> bytes:
        """The encrypted weighted sum of the named contributions."""
        names = sorted(contributions)
        return self.server.aggregate(
            [contributions[n] for n in names], [float(weights[n]) for n in names]
        )

    def round_report(
        self, server_round: int, aggregate: bytes, n_terms: int, weight: float, size: int
    ) -> dict[str, Any]:
        """What a round of CKKS aggregation records (public values only)."""
        return {
            "protocol": "ckks",
            "round": server_round,
            "n_terms": n_terms,
            "error_bound": self.server.error_bound(aggregate) / weight,
            "bytes_per_contribution": size,
            "poly_modulus_degree": self.params.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(self.params.coeff_mod_bit_sizes),
            "scale_bits": self.params.scale_bits,
        }


def ckks_report(rounds: Sequence[Mapping[str, Any]], minimum: int) -> dict[str, Any] | None:
    """The study's CKKS section (``results.json``) from its rounds' reports, any runtime."""
    if not rounds:
        return None
    last = rounds[-1]
    return {
        "protocol": "ckks",
        "library": LIBRARY,
        "poly_modulus_degree": int(last["poly_modulus_degree"]),
        "coeff_mod_bit_sizes": [int(b) for b in last["coeff_mod_bit_sizes"]],
        "scale_bits": int(last["scale_bits"]),
        "security_bits": 128,
        "rounds": len(rounds),
        "n": max(int(r["n_terms"]) for r in rounds),
        "approximation_error_bound": max(float(r["error_bound"]) for r in rounds),
        "bytes_per_contribution": max(int(r["bytes_per_contribution"]) for r in rounds),
        "coordinator_holds_secret_key": False,
        "min_contributions_to_decrypt": minimum,
        "key_holders": [
            {
                "party": "sites",
                "holds": "the study's CKKS keyring (secret key and check key), from the key "
                "ceremony",
                "can_decrypt": "any contribution or aggregate of the study; each site "
                f"decrypts only aggregates of at least {minimum} named contributions",
            },
            {
                "party": "coordinator",
                "holds": "the public context only (no secret key)",
                "can_decrypt": "nothing",
            },
        ],
    }


@dataclass
class CkksAggregator:
    """Sample-weighted mean of the updates under CKKS, in process (the sites simulated).

    The coordinator's object (:attr:`coordinator`) holds only the public context; the
    keyring lives in the simulated sites' objects (:meth:`site`), as each site agent holds
    it over the network. Build with :meth:`ceremony`.

    Args:
        coordinator: the coordinator's side (public context only).
        sites_keyring: the keyring the key ceremony provisioned to every site.
        study: names the study in each round's aggregation id.
        min_contributions: what every simulated site decrypts at least.
    """

    coordinator: CkksCoordinator
    sites_keyring: SiteKeyring = field(repr=False)
    study: str = "study"
    min_contributions: int = 2
    reveals_individual_updates: bool = field(default=False, init=False)
    _sites: dict[str, CkksSite] = field(default_factory=dict, init=False, repr=False)
    _reports: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)

    @classmethod
    def ceremony(
        cls, study: str = "study", *, min_contributions: int = 2, params: CkksParams | None = None
    ) -> CkksAggregator:
        """Run the key ceremony: a keyring for the sites, its public context for the
        coordinator."""
        keyring = SiteKeyring.generate(params)
        return cls(
            CkksCoordinator(keyring.public_context(), keyring.params),
            keyring,
            study,
            min_contributions,
        )

    def site(self, name: str) -> CkksSite:
        """The simulated site ``name``'s side (it holds the keyring)."""
        if name not in self._sites:
            self._sites[name] = CkksSite(name, self.sites_keyring, self.min_contributions)
        return self._sites[name]

    def aggregate(
        self, server_round: int, updates: Sequence[ClientUpdate], reference: Parameters
    ) -> FitAggregate:
        spec = ParameterSpec.of(reference)
        round_id = ckks_round_id(self.study, server_round)
        payloads = {
            u.site: self.site(u.site).encrypt(spec.flatten(u.update), round_id) for u in updates
        }
        weights = {u.site: float(u.num_examples) for u in updates}
        encrypted = self.coordinator.aggregate(payloads, weights)
        try:
            mean = self.site(min(weights)).decrypt_mean(encrypted, round_id, weights)
        except PolicyViolation as exc:  # the sites refuse: the round does not aggregate
            raise QuorumNotMet(str(exc)) from None
        self._reports.append(
            self.coordinator.round_report(
                server_round,
                encrypted,
                mean.n_terms,
                mean.total_weight,
                max(len(p) for p in payloads.values()),
            )
        )
        return FitAggregate(
            spec.unflatten(mean.values), round(mean.total_weight), len(updates), None
        )

    def report(self) -> dict[str, Any] | None:
        return ckks_report(self._reports, self.min_contributions)
