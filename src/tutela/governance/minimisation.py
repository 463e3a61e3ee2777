"""Data minimisation and the site policy: the one model of what a site allows.

A study declares its purpose and the columns it needs; the site's policy lists what each
purpose may use and which columns never leave. :func:`minimise` keeps exactly the
requested, allowed columns and records what it dropped and why. :meth:`SitePolicy.evaluate`
checks a whole study request against the site's floor (DP, secure aggregation, k for
released records, task limits) before the site joins, and :meth:`SitePolicy.check_task`
checks each task (one round of local training) before the site runs it.

Site policy file (TOML)::

    site = "st-marys"
    never_share = ["nhs_number", "postcode"]   # in addition to the direct-identifier list
    block_direct_identifiers = true            # default; see DIRECT_IDENTIFIERS

    [purposes.readmission-risk]
    columns = ["age", "sex", "bmi", "hba1c", "los_days"]

    [floor]                                    # the least protection a study may offer
    dp_required = true                         # default true
    max_epsilon = 3.0                          # largest epsilon a study may spend here (3.0)
    max_delta = 1e-5                           # largest delta (1e-5)
    secure_aggregation_required = true         # default true
    min_secagg_threshold = 2                   # smallest SecAgg+ threshold t accepted (2)
    min_k = 5                                  # k-anonymity for released records (5)

    [limits]                                   # the most one task may make this site run
    max_local_epochs = 5                       # local epochs per round (5)
    max_steps_per_round = 10000                # optimiser steps per round (10000)

    [[models]]                                 # your own model factories this site runs
    factory = "clinic_models.tabular:build"    # package.module:function
    sha256 = "<64 hex digits>"                 # of that module's source (tutela model hash)

Every default is the protective one: a policy file that only lists purposes requires DP and
secure aggregation, caps epsilon at 3 and delta at 1e-5, and caps the work per round. A
purpose not listed is refused; nothing is allowed by default.

Column names are compared after normalisation (lower case, runs of non-alphanumerics
become ``_``), so ``"Patient Name"`` and ``patient_name`` are the same column.

Privacy:
    Enforces GDPR Art. 5(1)(c) / HIPAA minimum necessary at the site boundary: nothing
    outside the purpose's list and nothing on the never-share list leaves. Direct-identifier
    detection is by column *name* only; identifiers hidden in free text or under innocuous
    names need the anonymisation package. The epsilon and delta bounds are checked against
    what the study states; the site's own ledger (in ``tutela.fl``) enforces them against
    what the site actually runs.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tutela.errors import ConfigError, DataError, PolicyViolation
from tutela.governance.analytics import AnalyticsPolicy

if TYPE_CHECKING:
    import pandas as pd

    from tutela.governance.rbac import AuditSink

__all__ = [
    "DIRECT_IDENTIFIERS",
    "Finding",
    "MinimisationRecord",
    "PolicyDecision",
    "SitePolicy",
    "StudyRequest",
    "is_direct_identifier",
    "minimise",
    "normalise_column",
]

DIRECT_IDENTIFIERS: frozenset[str] = frozenset(
    {
        # names (HIPAA Safe Harbor A)
        "name", "first_name", "last_name", "full_name", "given_name", "surname", "family_name",
        "middle_name", "patient_name", "maiden_name",
        # geography smaller than a state (B)
        "address", "street", "street_address", "home_address", "address_line_1",
        "address_line_2", "zip", "zipcode", "zip_code", "postcode", "postal_code",
        # dates tied to a person (C)
        "dob", "date_of_birth", "birth_date", "birthdate", "date_of_death", "admission_date",
        "discharge_date",
        # contact (D, E, F)
        "phone", "phone_number", "telephone", "mobile", "mobile_number", "fax", "fax_number",
        "email", "email_address", "e_mail", "e_mail_address",
        # numbers (G-M)
        "ssn", "social_security_number", "mrn", "medical_record_number", "health_plan_id",
        "health_plan_number", "beneficiary_id", "member_id", "insurance_id", "account_number",
        "bank_account", "iban", "credit_card", "license_number", "licence_number",
        "driver_license", "certificate_number", "vin", "vehicle_id", "license_plate",
        "device_id", "serial_number", "passport_number", "national_id", "nhs_number",
        # network and biometric (N-Q)
        "url", "ip", "ip_address", "mac_address", "fingerprint", "face_image", "photo",
        "voiceprint", "biometric_id",
    }
)  # fmt: skip
"""Normalised column names treated as direct identifiers (after HIPAA §164.514(b)(2))."""

_IDENTIFIER_TOKENS = frozenset({"ssn", "mrn", "email", "phone", "fax", "passport", "iban"})

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise_column(name: str) -> str:
    """Lower-case; non-alphanumeric runs become ``_`` (``"Patient Name"`` → ``patient_name``)."""
    return _NON_ALNUM.sub("_", name.lower()).strip("_")


def is_direct_identifier(column: str) -> bool:
    """Whether a column *name* denotes a direct identifier (fails closed on token hits).

    Matches :data:`DIRECT_IDENTIFIERS` exactly after normalisation, or any name containing a
    token that is an identifier on its own (``ssn``, ``mrn``, ``email``, ``phone``, ``fax``,
    ``passport``, ``iban``), e.g. ``patient_mrn`` or ``contact_email``.
    """
    norm = normalise_column(column)
    return norm in DIRECT_IDENTIFIERS or bool(_IDENTIFIER_TOKENS & set(norm.split("_")))


DpMode = Literal["none", "sample", "client"]
SecAggProtocol = Literal["none", "secagg+", "ckks"]

DEFAULT_MAX_EPSILON = 3.0
"""Largest study epsilon a site accepts unless its policy says otherwise."""
DEFAULT_MAX_DELTA = 1e-5
"""Largest study delta a site accepts unless its policy says otherwise."""
DEFAULT_MAX_LOCAL_EPOCHS = 5
"""Most local epochs one round may ask of a site unless its policy says otherwise."""
DEFAULT_MAX_STEPS_PER_ROUND = 10_000
"""Most optimiser steps one round may make a site run unless its policy says otherwise."""
DEFAULT_MIN_SECAGG_THRESHOLD = 2
"""Smallest SecAgg+ threshold a site accepts: no single neighbour can rebuild its secrets."""


@dataclass(frozen=True)
class StudyRequest:
    """What a study asks of a site (read from the study configuration).

    ``local_epochs`` and ``secagg_threshold`` are ``None`` when the study leaves them to
    the runtime; the site then checks them per task (:meth:`SitePolicy.check_task`) and per
    SecAgg+ round.
    """

    study: str
    purpose: str
    columns: tuple[str, ...]
    dp_mode: DpMode = "none"
    epsilon: float | None = None
    delta: float | None = None
    secure_aggregation: SecAggProtocol = "none"
    releases_records: bool = False
    k: int | None = None
    local_epochs: int | None = None
    secagg_threshold: int | None = None
    model_factory: str | None = None
    """``package.module:function`` of the study's own model (``None``: a built-in kind)."""
    model_sha256: str | None = None
    """The SHA-256 the study declares for that factory's module source."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        if self.dp_mode not in ("none", "sample", "client"):
            raise ValueError(f"dp_mode must be none, sample or client, not {self.dp_mode!r}")
        if self.secure_aggregation not in ("none", "secagg+", "ckks"):
            raise ValueError("secure_aggregation must be 'none', 'secagg+' or 'ckks'")


@dataclass(frozen=True)
class Finding:
    """One rule's verdict on a request."""

    rule: str
    passed: bool
    message: str


@dataclass(frozen=True)
class PolicyDecision:
    """Whether a site accepts a study request, with every rule's finding."""

    findings: tuple[Finding, ...]

    @property
    def allowed(self) -> bool:
        """True only when every rule passed."""
        return all(f.passed for f in self.findings)

    @property
    def reasons(self) -> tuple[str, ...]:
        """Messages of the failed rules (empty when allowed)."""
        return tuple(f.message for f in self.findings if not f.passed)

    def raise_if_denied(self) -> None:
        """Raise :class:`PolicyViolation` listing every reason, unless allowed."""
        if not self.allowed:
            raise PolicyViolation("; ".join(self.reasons))


@dataclass(frozen=True)
class MinimisationRecord:
    """What :func:`minimise` kept and dropped, and why."""

    purpose: str
    requested: tuple[str, ...]
    kept: tuple[str, ...]
    dropped: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (the shape written under ``governance.minimisation``)."""
        return {
            "purpose": self.purpose,
            "requested": list(self.requested),
            "kept": list(self.kept),
            "dropped": dict(self.dropped),
        }


_TOP_KEYS = frozenset(
    {"site", "never_share", "block_direct_identifiers", "purposes", "floor", "limits", "models"}
) | {"analytics", "report_metrics"}
_FLOOR_BOOLS = ("dp_required", "secure_aggregation_required")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _allowed_models(raw: Any, source: str) -> frozenset[tuple[str, str]]:
    """The ``[[models]]`` entries of a policy file: ``factory`` and ``sha256`` each."""
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: models must be an array of tables ([[models]])")
    out: set[tuple[str, str]] = set()
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or set(entry) != {"factory", "sha256"}:
            raise ConfigError(f"{source}: models[{i}] needs exactly factory and sha256")
        factory, digest = entry["factory"], entry["sha256"]
        if not isinstance(factory, str) or not _FACTORY.match(factory):
            raise ConfigError(f"{source}: models[{i}].factory must be 'package.module:function'")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ConfigError(f"{source}: models[{i}].sha256 must be 64 lower-case hex digits")
        out.add((factory, digest))
    return frozenset(out)


_FLOOR_NUMBERS = ("max_epsilon", "max_delta")
_FLOOR_INTS = ("min_k", "min_secagg_threshold")
_LIMIT_INTS = ("max_local_epochs", "max_steps_per_round")


@dataclass(frozen=True)
class SitePolicy:
    """A site's data policy, privacy floor and task limits (see the module docstring).

    The defaults are the protective choices; a site relaxes one only by saying so.
    """

    purposes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    never_share: frozenset[str] = frozenset()
    block_direct_identifiers: bool = True
    dp_required: bool = True
    max_epsilon: float = DEFAULT_MAX_EPSILON
    max_delta: float = DEFAULT_MAX_DELTA
    secure_aggregation_required: bool = True
    min_secagg_threshold: int = DEFAULT_MIN_SECAGG_THRESHOLD
    min_k: int = 5
    max_local_epochs: int = DEFAULT_MAX_LOCAL_EPOCHS
    max_steps_per_round: int = DEFAULT_MAX_STEPS_PER_ROUND
    site: str | None = None
    models: frozenset[tuple[str, str]] = frozenset()
    """Model factories this site runs: ``(package.module:function, source SHA-256)`` pairs
    (the built-in kinds need no entry; nothing else runs by default)."""
    analytics: AnalyticsPolicy = field(default_factory=AnalyticsPolicy)
    """What DP queries this site answers (``[analytics]``, :mod:`tutela.governance.analytics`)."""
    report_metrics: bool = True
    """Whether the site sends the coordinator its evaluation of each global model on its own
    held-out rows (loss, accuracy, AUC, row count); ``report_metrics = false`` keeps them home."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "purposes",
            {p: frozenset(normalise_column(c) for c in cols) for p, cols in self.purposes.items()},
        )
        object.__setattr__(
            self, "never_share", frozenset(normalise_column(c) for c in self.never_share)
        )
        if not (math.isfinite(self.max_epsilon) and self.max_epsilon > 0):
            raise ValueError("max_epsilon must be a positive finite number")
        if not 0 < self.max_delta < 1:
            raise ValueError("max_delta must be in (0, 1)")
        for label, value in (
            ("min_k", self.min_k),
            ("min_secagg_threshold", self.min_secagg_threshold),
            ("max_local_epochs", self.max_local_epochs),
            ("max_steps_per_round", self.max_steps_per_round),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer")

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> SitePolicy:
        """Load a site policy file.

        Raises:
            ConfigError: missing file, invalid TOML or entry (the message names the key).
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"site policy not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read site policy {path}: {exc}") from None
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        return cls.from_mapping(doc, source=str(path))

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], *, source: str = "site policy") -> SitePolicy:
        """Build from a parsed document (same shape as the TOML file); unknown keys are errors."""
        for key in doc:
            if key not in _TOP_KEYS:
                raise ConfigError(f"{source}: unknown key {key!r}")
        purposes: dict[str, frozenset[str]] = {}
        raw = doc.get("purposes", {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: [purposes] must be a table")
        for name, spec in raw.items():
            cols = spec.get("columns") if isinstance(spec, dict) else None
            if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
                raise ConfigError(f"{source}: purposes.{name}.columns must be a list of strings")
            if isinstance(spec, dict) and set(spec) - {"columns"}:
                extra = sorted(set(spec) - {"columns"})[0]
                raise ConfigError(f"{source}: unknown key purposes.{name}.{extra}")
            purposes[name] = frozenset(cols)
        never = doc.get("never_share", [])
        if not isinstance(never, list) or not all(isinstance(c, str) for c in never):
            raise ConfigError(f"{source}: never_share must be a list of strings")
        block = doc.get("block_direct_identifiers", True)
        if not isinstance(block, bool):
            raise ConfigError(f"{source}: block_direct_identifiers must be true or false")
        site = doc.get("site")
        if site is not None and not isinstance(site, str):
            raise ConfigError(f"{source}: site must be a string")
        kwargs: dict[str, Any] = {"models": _allowed_models(doc.get("models", []), source)}
        kwargs["analytics"] = AnalyticsPolicy.from_mapping(doc.get("analytics", {}), source=source)
        if not isinstance(
            kwargs.setdefault("report_metrics", doc.get("report_metrics", True)), bool
        ):
            raise ConfigError(f"{source}: report_metrics must be true or false")
        for table, bools, numbers, ints in (
            ("floor", _FLOOR_BOOLS, _FLOOR_NUMBERS, _FLOOR_INTS),
            ("limits", (), (), _LIMIT_INTS),
        ):
            section = doc.get(table, {})
            if not isinstance(section, dict):
                raise ConfigError(f"{source}: [{table}] must be a table")
            for key, value in section.items():
                if key in bools:
                    if not isinstance(value, bool):
                        raise ConfigError(f"{source}: {table}.{key} must be true or false")
                    kwargs[key] = value
                elif key in numbers:
                    if isinstance(value, bool) or not isinstance(value, int | float):
                        raise ConfigError(f"{source}: {table}.{key} must be a number")
                    kwargs[key] = float(value)
                elif key in ints:
                    if isinstance(value, bool) or not isinstance(value, int):
                        raise ConfigError(f"{source}: {table}.{key} must be an integer")
                    kwargs[key] = value
                else:
                    raise ConfigError(f"{source}: unknown key {table}.{key}")
        try:
            return cls(purposes, frozenset(never), block, site=site, **kwargs)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """The whole enforced policy as JSON-ready data (sorted, so it signs canonically).

        The shape mirrors the file: ``site``, ``never_share``, ``block_direct_identifiers``,
        ``purposes`` ({name: {columns}}), ``floor``, ``limits`` and ``analytics`` (what the
        site enforces for DP queries, :meth:`AnalyticsPolicy.to_json`: categories by column
        name, each list in the policy's order), every default filled in.
        """
        return {
            "site": self.site,
            "never_share": sorted(self.never_share),
            "block_direct_identifiers": self.block_direct_identifiers,
            "purposes": {p: {"columns": sorted(c)} for p, c in sorted(self.purposes.items())},
            "floor": {
                "dp_required": self.dp_required,
                "max_epsilon": self.max_epsilon,
                "max_delta": self.max_delta,
                "secure_aggregation_required": self.secure_aggregation_required,
                "min_secagg_threshold": self.min_secagg_threshold,
                "min_k": self.min_k,
            },
            "limits": {
                "max_local_epochs": self.max_local_epochs,
                "max_steps_per_round": self.max_steps_per_round,
            },
            "models": [{"factory": f, "sha256": h} for f, h in sorted(self.models)],
            "analytics": self.analytics.to_json(),
            "report_metrics": self.report_metrics,
        }

    def never_leaves(self, column: str) -> str | None:
        """Why ``column`` may never leave the site, or ``None`` if it may."""
        if normalise_column(column) in self.never_share:
            return "on the site's never-share list"
        if self.block_direct_identifiers and is_direct_identifier(column):
            return "a direct identifier"
        return None

    def allowed_columns(self, purpose: str) -> frozenset[str]:
        """Normalised column names ``purpose`` may use (never-share columns included; ask
        :meth:`never_leaves` too, as :func:`minimise` and :meth:`evaluate` do).

        Raises:
            PolicyViolation: the site does not accept this purpose.
        """
        try:
            return self.purposes[purpose]
        except KeyError:
            known = ", ".join(sorted(self.purposes)) or "none"
            raise PolicyViolation(
                f"purpose {purpose!r} is not accepted by this site (accepted: {known})"
            ) from None

    def evaluate(self, request: StudyRequest) -> PolicyDecision:
        """Check a study request against this policy; every rule yields a finding."""
        findings: list[Finding] = []
        allowed: frozenset[str] | None
        try:
            allowed = self.allowed_columns(request.purpose)
            findings.append(Finding("purpose", True, f"purpose {request.purpose!r} accepted"))
        except PolicyViolation as exc:
            allowed = None
            findings.append(Finding("purpose", False, str(exc)))
        blocked = [c for c in request.columns if self.never_leaves(c)]
        findings.append(
            Finding(
                "never-share",
                not blocked,
                "no never-share column requested"
                if not blocked
                else "columns never leave this site: "
                + ", ".join(f"{c!r} ({self.never_leaves(c)})" for c in blocked),
            )
        )
        if allowed is not None:
            extra = [c for c in request.columns if normalise_column(c) not in allowed]
            findings.append(
                Finding(
                    "columns",
                    not extra,
                    f"all {len(request.columns)} columns allowed for the purpose"
                    if not extra
                    else f"columns not allowed for purpose {request.purpose!r}: "
                    + ", ".join(repr(c) for c in extra),
                )
            )
        findings.extend(self._dp_findings(request))
        findings.extend(self._secagg_findings(request))
        if request.model_factory is not None:
            findings.append(self._model_finding(request.model_factory, request.model_sha256))
        if request.local_epochs is not None:
            ok = request.local_epochs <= self.max_local_epochs
            findings.append(
                Finding(
                    "local-epochs",
                    ok,
                    f"{request.local_epochs} local epochs per round within the site maximum "
                    f"{self.max_local_epochs}"
                    if ok
                    else f"{request.local_epochs} local epochs per round exceed the site "
                    f"maximum {self.max_local_epochs}",
                )
            )
        if request.releases_records:
            ok = request.k is not None and request.k >= self.min_k
            findings.append(
                Finding(
                    "k-anonymity",
                    ok,
                    f"released records are {request.k}-anonymous (site minimum {self.min_k})"
                    if ok
                    else f"released records must be at least {self.min_k}-anonymous "
                    f"(study offers k={request.k})",
                )
            )
        return PolicyDecision(tuple(findings))

    def check_task(self, *, local_epochs: int, steps: int) -> None:
        """Refuse one round of local training that exceeds this site's limits.

        Call it with what the site will actually run (epochs from the round's config and
        optimiser steps from the site's own data loader), before any training.

        Raises:
            PolicyViolation: every limit exceeded, named.
        """
        reasons = []
        if local_epochs > self.max_local_epochs:
            reasons.append(
                f"the round asks for {local_epochs} local epochs but this site allows at most "
                f"{self.max_local_epochs}"
            )
        if steps > self.max_steps_per_round:
            reasons.append(
                f"the round would run {steps} optimiser steps but this site allows at most "
                f"{self.max_steps_per_round} per round"
            )
        if reasons:
            raise PolicyViolation("task refused: " + "; ".join(reasons))

    def _model_finding(self, factory: str, sha256: str | None) -> Finding:
        if sha256 is not None and (factory, sha256) in self.models:
            return Finding("model", True, f"model factory {factory!r} is allow-listed")
        if any(f == factory for f, _ in self.models):
            return Finding(
                "model",
                False,
                f"model factory {factory!r} is allow-listed with another source hash, not {sha256}",
            )
        return Finding("model", False, f"model factory {factory!r} is not on this site's list")

    @classmethod
    def accepting(cls, request: StudyRequest) -> SitePolicy:
        """The least protective policy that accepts ``request`` and still blocks direct
        identifiers: a simulation of the caller's own data uses it when no site policy is
        given (deployed sites always load their own, :meth:`from_toml`)."""
        models = (
            frozenset({(request.model_factory, request.model_sha256)})
            if request.model_factory is not None and request.model_sha256 is not None
            else frozenset()
        )
        return cls(
            purposes={request.purpose: frozenset(request.columns)},
            dp_required=request.dp_mode != "none",
            max_epsilon=max(DEFAULT_MAX_EPSILON, request.epsilon or 0.0),
            max_delta=max(DEFAULT_MAX_DELTA, request.delta or 0.0),
            secure_aggregation_required=request.secure_aggregation != "none",
            max_local_epochs=max(DEFAULT_MAX_LOCAL_EPOCHS, request.local_epochs or 0),
            models=models,
        )

    def _secagg_findings(self, request: StudyRequest) -> list[Finding]:
        out: list[Finding] = []
        if self.secure_aggregation_required:
            ok = request.secure_aggregation != "none"
            out.append(
                Finding(
                    "secure-aggregation",
                    ok,
                    f"secure aggregation {request.secure_aggregation}"
                    if ok
                    else "secure aggregation is required by this site but the study uses none",
                )
            )
        t = request.secagg_threshold
        if request.secure_aggregation == "secagg+" and t is not None:
            ok = t >= self.min_secagg_threshold
            out.append(
                Finding(
                    "secagg-threshold",
                    ok,
                    f"SecAgg+ threshold {t} meets the site minimum {self.min_secagg_threshold}"
                    if ok
                    else f"SecAgg+ threshold {t} is below the site minimum "
                    f"{self.min_secagg_threshold}",
                )
            )
        return out

    def _dp_findings(self, request: StudyRequest) -> list[Finding]:
        out: list[Finding] = []
        dp_on = request.dp_mode != "none"
        if self.dp_required:
            out.append(
                Finding(
                    "dp-required",
                    dp_on,
                    f"differential privacy on ({request.dp_mode})"
                    if dp_on
                    else "differential privacy is required by this site but the study has it off",
                )
            )
        if dp_on:
            eps = request.epsilon
            ok = eps is not None and math.isfinite(eps) and 0 < eps <= self.max_epsilon
            out.append(
                Finding(
                    "epsilon",
                    ok,
                    f"epsilon {eps} within the site maximum {self.max_epsilon}"
                    if ok
                    else f"epsilon {eps} exceeds the site maximum {self.max_epsilon}"
                    if eps is not None
                    else "the study states no epsilon",
                )
            )
            delta = request.delta
            ok = delta is not None and 0 <= delta <= self.max_delta
            out.append(
                Finding(
                    "delta",
                    ok,
                    f"delta {delta} within the site maximum {self.max_delta}"
                    if ok
                    else f"delta {delta} exceeds the site maximum {self.max_delta}",
                )
            )
        return out


def minimise(
    df: pd.DataFrame,
    purpose: str,
    requested_columns: Sequence[str] | Iterable[str],
    policy: SitePolicy,
    *,
    audit: AuditSink | None = None,
) -> tuple[pd.DataFrame, MinimisationRecord]:
    """Keep only the requested columns the purpose allows; record everything dropped.

    Args:
        df: the site's table (not modified).
        purpose: the study's declared purpose.
        requested_columns: the columns the study needs, in the order it wants them.
        policy: the site policy.
        audit: if given, the minimisation is recorded there (action ``data:minimise``).

    Returns:
        A copy of ``df`` with exactly the requested columns, and the record.

    Raises:
        PolicyViolation: unknown purpose, or a requested column that is on the never-share
            list, is a direct identifier, or is not allowed for the purpose (names them).
        DataError: a requested column is not in ``df``.
        ValueError: a column is requested twice.

    Privacy:
        Only ``requested ∩ allowed(purpose)`` minus never-share columns survive; a request
        for anything else fails rather than being silently trimmed, so a study cannot
        run on a column set other than the one it declared.
    """
    requested = tuple(requested_columns)
    if len(set(requested)) != len(requested):
        raise ValueError("a column is requested more than once")
    allowed = policy.allowed_columns(purpose)
    blocked = [(c, why) for c in requested if (why := policy.never_leaves(c))]
    if blocked:
        detail = ", ".join(f"{c!r} ({why})" for c, why in blocked)
        raise PolicyViolation(f"requested columns never leave this site: {detail}")
    outside = [c for c in requested if normalise_column(c) not in allowed]
    if outside:
        names = ", ".join(repr(c) for c in outside)
        raise PolicyViolation(f"columns not allowed for purpose {purpose!r}: {names}")
    missing = [c for c in requested if c not in df.columns]
    if missing:
        raise DataError(f"requested columns not in the data: {', '.join(map(repr, missing))}")
    dropped: dict[str, str] = {}
    for column in df.columns:
        name = str(column)
        if name in requested:
            continue
        why = policy.never_leaves(name)
        if why is not None:
            dropped[name] = f"never leaves the site ({why})"
        elif normalise_column(name) not in allowed:
            dropped[name] = f"not allowed for purpose {purpose!r}"
        else:
            dropped[name] = "not requested by the study"
    record = MinimisationRecord(purpose, requested, requested, dropped)
    if audit is not None:
        audit.append(
            f"site:{policy.site}" if policy.site else "site",
            "data:minimise",
            f"purpose/{purpose}",
            "success",
            record.to_json(),
        )
    return df.loc[:, list(requested)].copy(), record
