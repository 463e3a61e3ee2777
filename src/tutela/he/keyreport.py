"""What a threshold Paillier key's generation says about who can decrypt.

Every summary that uses threshold Paillier carries a :class:`KeyGeneration`: how the key was
made (a dealer, or the key holders among themselves), whether any party ever saw the whole
key, and who can decrypt.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["KeyGenMode", "KeyGeneration"]


class KeyGenMode(enum.StrEnum):
    """How a threshold Paillier key was generated."""

    DEALER = "dealer"
    """A dealer, a role apart from the coordinator, made the key, split it and erased it."""
    DISTRIBUTED = "distributed"
    """The key holders generated it among themselves; no party ever held ``p``, ``q`` or ``d``."""


@dataclass(frozen=True, slots=True)
class KeyGeneration:
    """How one threshold Paillier key was made and who can decrypt under it.

    Attributes:
        mode: dealer or distributed generation.
        key_holders: number of decryption-key shares (all are needed to decrypt).
        key_bits: bit length of the modulus ``n``.
        dealer: name of the dealer role (dealer mode only).
        helpers: parties that took part in distributed generation without a key share
            (they complete an honest majority when there are only two key holders).
        trials: candidate moduli tried (distributed mode).
        biprimality_tests: candidates that reached the biprimality test (distributed mode).
    """

    mode: KeyGenMode
    key_holders: int
    key_bits: int
    dealer: str | None = None
    helpers: int = 0
    trials: int | None = None
    biprimality_tests: int | None = None

    def __post_init__(self) -> None:
        if self.key_holders < 2:
            raise ValueError("a threshold key has at least 2 key holders")
        if (self.mode is KeyGenMode.DEALER) != (self.dealer is not None):
            raise ValueError("a dealer is named exactly when the mode is dealer")
        if self.mode is KeyGenMode.DEALER and self.helpers:
            raise ValueError("dealt keys have no helpers")

    @property
    def dealer_saw_key(self) -> bool:
        """Whether any single party ever held the whole decryption key (``p``, ``q``, ``d``)."""
        return self.mode is KeyGenMode.DEALER

    @property
    def who_can_decrypt(self) -> str:
        """Who can decrypt, in words."""
        everyone = f"all {self.key_holders} key holders together"
        if self.mode is KeyGenMode.DEALER:
            return (
                f"{everyone}; the dealer '{self.dealer}' saw the whole key while dealing and "
                "could decrypt anything unless it erased it; the coordinator cannot"
            )
        return (
            f"{everyone} only; no key holder, helper or the coordinator ever held p, q, phi "
            "or the decryption exponent"
        )

    @property
    def assumption(self) -> str:
        """The trust assumption the key's secrecy rests on."""
        if self.mode is KeyGenMode.DEALER:
            return "the dealer erases the key after dealing and is not the coordinator"
        parties = self.key_holders + self.helpers
        return (
            f"semi-honest parties with an honest majority among the {parties} generating "
            f"parties (fewer than {parties / 2:g} collude); decryption needs all "
            f"{self.key_holders} key holders"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written into summaries and results."""
        return {
            "mode": self.mode.value,
            "key_holders": self.key_holders,
            "key_bits": self.key_bits,
            "dealer": self.dealer,
            "dealer_saw_key": self.dealer_saw_key,
            "helpers": self.helpers,
            "who_can_decrypt": self.who_can_decrypt,
            "assumption": self.assumption,
            "trials": self.trials,
            "biprimality_tests": self.biprimality_tests,
        }
