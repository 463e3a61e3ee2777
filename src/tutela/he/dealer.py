"""The threshold Paillier dealer: a role apart from the coordinator.

Where the key holders cannot run dealer-free generation (:mod:`tutela.he.keygen`), a dealer
makes the key, hands one share to each key holder and keeps only the public key. The dealer
is a named party of its own: it is never the coordinator, and every summary of a dealt key
says that the dealer saw the key.

Security:
    The dealer sees ``p``, ``q`` and ``d`` while dealing and could decrypt anything under
    the key; its secrecy rests on the dealer erasing them. What the object keeps afterwards
    is observable (:meth:`ThresholdKeyDealer.retained`: public keys only), but erasure of
    memory cannot be proved to a remote party: prefer dealer-free generation.
"""

from __future__ import annotations

from dataclasses import dataclass

from tutela.hazmat.rng import SecureRandom
from tutela.he.keyreport import KeyGeneration, KeyGenMode
from tutela.he.threshold import KeyShare, PaillierPublicKey, deal_threshold_keys

__all__ = ["DealtKeys", "ThresholdKeyDealer"]

_RESERVED = frozenset({"coordinator", "server", "aggregator"})


@dataclass(frozen=True, slots=True)
class DealtKeys:
    """A dealt key: the public key, one share per key holder, and how it was made."""

    public_key: PaillierPublicKey
    shares: tuple[KeyShare, ...]
    report: KeyGeneration


class ThresholdKeyDealer:
    """The dealer role for n-of-n threshold Paillier keys.

    Args:
        name: the dealer's identity as reported; never the coordinator's role.

    Raises:
        ValueError: an empty name or a coordinator role name.
    """

    __slots__ = ("_issued", "name")

    def __init__(self, name: str) -> None:
        if not name.strip() or name.strip().lower() in _RESERVED:
            raise ValueError("the dealer is a party of its own: not the coordinator")
        self.name = name
        self._issued: list[PaillierPublicKey] = []

    def __repr__(self) -> str:
        return f"ThresholdKeyDealer({self.name!r}, issued={len(self._issued)})"

    def deal(
        self, n_parties: int, *, key_bits: int = 3072, rng: SecureRandom | None = None
    ) -> DealtKeys:
        """Make a key, split its decryption exponent over ``n_parties`` and keep only ``n``.

        Security: see the module docstring; the returned shares go to the key holders and
        the caller must not keep them.
        """
        pk, shares = deal_threshold_keys(n_parties, key_bits=key_bits, rng=rng)
        self._issued.append(pk)
        report = KeyGeneration(
            KeyGenMode.DEALER, key_holders=n_parties, key_bits=pk.key_bits, dealer=self.name
        )
        return DealtKeys(pk, shares, report)

    def retained(self) -> tuple[PaillierPublicKey, ...]:
        """Everything the dealer keeps after dealing: the public keys it issued."""
        return tuple(self._issued)
