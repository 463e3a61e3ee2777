"""The exception tree of Tutela.

Every failure that is not a programming error (``TypeError``/``ValueError`` for bad
arguments) is a :class:`TutelaError`, so callers and the CLI can catch one root::

    TutelaError
    ├── ConfigError                 a study/site/policy file is invalid (names the key)
    ├── DataError                   a dataset or input file cannot be read or is malformed
    ├── PrivacyError
    │   ├── BudgetExceeded          a spend would pass the privacy budget; nothing was spent
    │   └── AccountingError         an event the accountant cannot account for
    ├── ProtocolAbort               a protocol round stopped cleanly (quorum, deadline, abuse)
    │   └── QuorumNotMet            fewer participants than the round requires
    ├── CryptoError
    │   └── IntegrityError          decryption/verification failed (one opaque error)
    ├── AuditError
    │   └── AuditVerificationError  the audit log or a proof does not verify
    ├── PermissionDenied            RBAC refused a principal a permission
    ├── PolicyViolation             a site policy or compliance rule refused an action
    ├── AnonymizationError          anonymisation cannot meet the requested guarantee
    └── ServiceError                coordinator / transport failures
        └── TransportError          a peer could not be reached or answered badly
"""

from __future__ import annotations


class TutelaError(Exception):
    """Root of every domain error raised by Tutela."""


class ConfigError(TutelaError):
    """A configuration (study, site policy, RBAC policy) is invalid."""


class DataError(TutelaError):
    """A dataset or input file is missing, unreadable or malformed."""


class PrivacyError(TutelaError):
    """A differential-privacy guarantee cannot be given or kept."""


class BudgetExceeded(PrivacyError):
    """A spend would exceed the privacy budget. Nothing was spent."""


class AccountingError(PrivacyError):
    """An accountant was given an event it cannot account for."""


class ProtocolAbort(TutelaError):
    """A protocol (round, SecAgg+, SMPC) aborted cleanly; no partial result is released."""


class QuorumNotMet(ProtocolAbort):
    """Fewer participants replied than the round or protocol requires."""


class CryptoError(TutelaError):
    """A cryptographic operation failed."""


class IntegrityError(CryptoError):
    """Authentication failed: wrong key, tampered, truncated or swapped data.

    Security: deliberately carries no detail about *why*, so it is not an oracle.
    """

    def __init__(self, message: str = "integrity check failed") -> None:
        super().__init__(message)


class AuditError(TutelaError):
    """The audit log cannot be written or read."""


class AuditVerificationError(AuditError):
    """The audit log, a checkpoint or a proof does not verify."""


class PermissionDenied(TutelaError):
    """A principal lacks the permission an action requires."""


class PolicyViolation(TutelaError):
    """A site policy or compliance rule refuses an action."""


class AnonymizationError(TutelaError):
    """Anonymisation cannot meet the requested guarantee (for example k too large)."""


class ServiceError(TutelaError):
    """The coordinator service or a site agent failed."""


class TransportError(ServiceError):
    """A peer could not be reached or answered with an error."""


def rebuild_error(name: str, message: str) -> TutelaError:
    """The Tutela error named ``name`` with ``message`` (an error that crossed a process
    boundary as its class name and message); a plain :class:`TutelaError` for any other name.
    """
    cls = globals().get(name)
    if isinstance(cls, type) and issubclass(cls, TutelaError):
        try:
            return cls(message)
        except TypeError:  # pragma: no cover - every Tutela error takes a message
            pass
    return TutelaError(message)
