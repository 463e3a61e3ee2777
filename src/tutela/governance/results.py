"""The typed results model: what every run writes to ``RUN_DIR/results.json``.

One model for every runtime (in process, or through the coordinator and site agents): the
FL layer's summariser builds a :class:`RunResults`, and reports, the dashboard and
``tutela comply`` read one back with :func:`load_results`. The model lives here, in
governance, because compliance checks read runs and must not depend on the FL layer.

Strict on purpose, so that drift between writers fails loudly instead of being read as
"no evidence": unknown keys are refused at the top level and in every stable section, each
field has one JSON type (a number written as a string is refused), modes and statuses are
enums. Two sections stay open: ``config`` (the resolved study configuration, validated
where it is parsed; only the keys checks read are typed here) and ``deployment`` (how the
deployment layer ran the study).

Its JSON Schema is published beside this module as ``results.schema.json``; after changing
the model, regenerate it with
``python -c "from tutela.governance.results import write_schema; write_schema()"``
(a test fails while the two differ).

Top-level shape (see the sub-models for each section)::

    schema_version      1
    run_dir             the run directory the results were written to, or null
    dataset             what was split how (name, rows, sites, features, outcome, ...)
    rounds, history     rounds configured; one entry per round (status, sites, metrics)
    federated           test-set metrics of the final global model
    centralized, local_only, local_only_per_site    baselines (null when not computed)
    config              the resolved study configuration
    privacy             null without DP; else the sample- or client-level report
    secure_aggregation  null without it; else the SecAgg+ or CKKS report
    governance          purpose, minimisation, policy floor, audit log, encryption at rest
    sites               each site's signed report, verbatim (null when no site signed one)
    site_keys           site -> the identity key the site registered (see RunResults.site_keys)
    deployment          null in process; how the coordinator ran the study
    empirical_audit     absent or null unless audited; else the one-run audit's lower bound
    elapsed_s           wall-clock seconds
"""

from __future__ import annotations

import json
import math
import os
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from tutela.errors import DataError

__all__ = [
    "SCHEMA_FILE",
    "SCHEMA_VERSION",
    "Accountant",
    "AggregationProtocol",
    "AnonymisationReport",
    "CkksReport",
    "ClientLevelPrivacy",
    "ClientRoundPrivacy",
    "DatasetSummary",
    "DeploymentReport",
    "DistributedNoise",
    "EmpiricalAudit",
    "GovernanceReport",
    "KeyHolder",
    "Metrics",
    "MinimisationReport",
    "PolicyFloor",
    "PrivacyMode",
    "ResolvedConfig",
    "RoundEntry",
    "RoundOutcome",
    "RunResults",
    "SampleLevelPrivacy",
    "SecAggPlusReport",
    "SecAggRound",
    "SignedSiteReport",
    "SitePrivacy",
    "committed_schema",
    "describe_validation_error",
    "load_results",
    "parse_results",
    "schema_text",
    "write_schema",
]

SCHEMA_VERSION: Final = 1
SCHEMA_FILE = "results.schema.json"


class PrivacyMode(StrEnum):
    """Differential privacy a study asks for (``config.privacy.mode``)."""

    NONE = "none"
    SAMPLE = "sample"
    CLIENT = "client"


class AggregationProtocol(StrEnum):
    """How site updates are combined (``config.secure_aggregation.protocol``)."""

    NONE = "none"
    SECAGG_PLUS = "secagg+"
    CKKS = "ckks"


class RoundOutcome(StrEnum):
    """How a federated round closed."""

    AGGREGATED = "aggregated"
    QUORUM_NOT_MET = "quorum-not-met"


class Accountant(StrEnum):
    """The privacy accountant that bounded the spend."""

    PLD = "pld"
    RDP = "rdp"


class _Strict(BaseModel):
    """A stable section: unknown keys and loosely typed values are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Open(BaseModel):
    """A section another layer owns: typed where read, other keys kept as they are."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


Score = Annotated[float | None, BeforeValidator(_finite_or_none)]
"""A metric; undefined values (an AUC on one class) are null."""

Hex = Annotated[str, Field(pattern=r"^[0-9a-f]+$")]
PublicKeyHex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""A raw 32-byte Ed25519 public key, hex."""


# dataset, rounds, metrics ------------------------------------------------------------------


class Metrics(_Strict):
    """Binary-outcome metrics on the held-out test set."""

    accuracy: Score
    auc: Score
    log_loss: Score


class RoundEntry(_Strict):
    """One round of the transcript, with the global model's test metrics after it."""

    round: int = Field(ge=1)
    status: RoundOutcome
    sites: list[str]
    failed: list[str]
    num_examples: int = Field(ge=0)
    loss: Score
    accuracy: Score
    auc: Score
    log_loss: Score


class DatasetSummary(_Strict):
    """What was split how: the table, the features shared, rows per site."""

    name: str
    rows: int = Field(ge=0)
    sites: int = Field(ge=1)
    features: list[str]
    outcome: str
    train_rows_per_site: dict[str, int]
    test_rows: int = Field(ge=0)


# config (open) -----------------------------------------------------------------------------


class ConfigStudy(_Open):
    name: str
    purpose: str
    seed: int


class ConfigData(_Open):
    dataset: str | None
    """The shipped dataset's name (``None``: your own table or the caller's data)."""
    columns: list[str] | None
    sites: int


class ConfigPrivacy(_Open):
    mode: PrivacyMode
    epsilon: float | None
    delta: float


class ConfigSecureAggregation(_Open):
    protocol: AggregationProtocol


class ResolvedConfig(_Open):
    """The resolved study configuration; the sections compliance reads are typed."""

    study: ConfigStudy
    data: ConfigData
    privacy: ConfigPrivacy
    secure_aggregation: ConfigSecureAggregation


# privacy -----------------------------------------------------------------------------------


class SitePrivacy(_Strict):
    """What one site spent under sample-level DP (fields a runtime does not know are null)."""

    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float | None = None
    steps: int | None = None
    rounds_charged: int | None = None
    max_grad_norm: float | None = None
    budget_epsilon: float | None = None
    budget_left: float | None = None


class _PrivacyClaim(_Strict):
    """What every private run states: its level, mechanism and neighbouring relation, the
    accountant, the spend against the target, and the ledger it was charged to."""

    level: str
    mechanism: str
    neighbouring: str
    accountant: Accountant
    epsilon: float
    target_epsilon: float
    delta: float
    ledger: str | None


class SampleLevelPrivacy(_PrivacyClaim):
    """Record-level DP: DP-SGD at every site; ``epsilon`` is the largest site's spend."""

    mode: Literal[PrivacyMode.SAMPLE]
    max_grad_norm: float
    per_site: dict[str, SitePrivacy]


class ClientRoundPrivacy(_Strict):
    round: int = Field(ge=1)
    clip_norm: float
    noise_std_on_sum: float
    distributed: bool
    count_scale: float | None = None
    count_noise_std: float | None = None


class ClientLevelPrivacy(_PrivacyClaim):
    """Site-level DP (DP-FedAvg): one study-wide budget, noise on the sum of updates."""

    mode: Literal[PrivacyMode.CLIENT]
    budget_left: float
    noise_multiplier: float
    clip_norm: float
    adaptive_clipping: bool
    expected_sites: int
    rounds: list[ClientRoundPrivacy]


PrivacyReport = Annotated[SampleLevelPrivacy | ClientLevelPrivacy, Field(discriminator="mode")]


# secure aggregation ------------------------------------------------------------------------


class DistributedNoise(_Strict):
    """Distributed discrete-Gaussian noise inside SecAgg+ (see ``SecureSumResult.ddp``)."""

    enabled: bool
    noise: str
    units: str
    sigma_per_client: float
    variance_per_client_steps: float
    min_survivors: int
    survivors: int
    guaranteed_sigma: float
    effective_sigma: float
    tau: float
    l2_rounding_inflation: float


class SecAggRound(_Strict):
    round: int = Field(ge=1)
    survivors: int
    dropped_count: dict[str, int]
    server_cpu_ms: float | None


class SecAggPlusReport(_Strict):
    """SecAgg+ over the whole study (fields a runtime does not measure are null)."""

    protocol: Literal[AggregationProtocol.SECAGG_PLUS]
    n: int
    k: int
    threshold: int
    min_survivors: int
    modulus_bits: int
    rounds: int
    dropped_per_stage: dict[str, int]
    quantization_error_bound: float | None
    version: int | None = None
    complete_graph: bool | None = None
    max_colluding_clients: int | None = None
    bytes_per_parameter: int | None = None
    clip: float | None = None
    quantization_step: float | None = None
    clipped_values: int | None = None
    ddp: DistributedNoise | None = None
    per_round: list[SecAggRound] | None = None


class KeyHolder(_Strict):
    """One party of encrypted aggregation: what key material it holds, what it can decrypt."""

    party: str
    holds: str
    can_decrypt: str


class CkksReport(_Strict):
    """CKKS encrypted aggregation over the whole study (``key_holders``: who can decrypt
    what; ``min_contributions_to_decrypt``: the fewest contributions a site decrypts)."""

    protocol: Literal[AggregationProtocol.CKKS]
    library: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: list[int]
    scale_bits: int
    security_bits: int
    rounds: int
    n: int
    approximation_error_bound: float
    bytes_per_contribution: int
    coordinator_holds_secret_key: bool
    min_contributions_to_decrypt: int | None = None
    key_holders: list[KeyHolder] | None = None


SecureAggregationReport = Annotated[SecAggPlusReport | CkksReport, Field(discriminator="protocol")]


# governance --------------------------------------------------------------------------------


class MinimisationReport(_Strict):
    """What data minimisation kept and dropped (and why) for the study's purpose."""

    purpose: str
    requested: list[str]
    kept: list[str]
    dropped: dict[str, str]


class PolicyFloor(_Strict):
    """The site policy floor the run was checked against."""

    dp_required: bool
    secure_aggregation_required: bool
    max_epsilon: float | None = None
    min_epsilon: float | None = None
    max_delta: float | None = None
    min_k: int | None = None


class AnonymisationReport(_Strict):
    """k-anonymity of record-level data that left the sites."""

    k_achieved: int
    k_required: int | None = None


class GovernanceReport(_Strict):
    purpose: str
    shared_columns: list[str]
    minimisation: MinimisationReport | None
    encryption_at_rest: bool
    audit_log: str | None
    audit_size: int | None = None
    policy: PolicyFloor
    anonymisation: AnonymisationReport | None = None


class SignedSiteReport(_Strict):
    """One site's own report, signed by the site, kept verbatim (``policy`` and ``ledger``
    are the site's documents; the signature covers them)."""

    site: str
    policy: dict[str, Any]
    ledger: dict[str, Any]
    signature: Hex
    public_key: Hex


class DeploymentReport(_Open):
    """How the deployment layer ran the study (transport, coordinator, rounds it recorded)."""

    transport: str
    coordinator: str
    study_id: str


class EmpiricalAudit(_Strict):
    """An empirical lower bound on epsilon beside the accounted one (``tutela dp audit``):
    one-run auditing (Steinke, Nasr and Jagielski 2023) of the study's configuration, with
    ``canaries`` canaries each included with probability 1/2, ``guesses`` guesses of which
    ``correct`` were right. A ``epsilon_lower_bound`` above ``accounted_epsilon`` means the
    accounting or its implementation is wrong, at the stated ``confidence``."""

    method: Literal["one-run"]
    mode: Literal["white-box", "black-box"]
    canary_kind: str
    canaries: int = Field(ge=1)
    included: int = Field(ge=0)
    guesses: int = Field(ge=0)
    correct: int = Field(ge=0)
    confidence: float = Field(gt=0, lt=1)
    delta: float = Field(ge=0, le=1)
    epsilon_lower_bound: float = Field(ge=0)
    accounted_epsilon: float | None


# the document ------------------------------------------------------------------------------


class RunResults(_Strict):
    """``results.json``: one run, whatever runtime ran it (see the module docstring)."""

    model_config = ConfigDict(title="Tutela run results")

    schema_version: Literal[1] = SCHEMA_VERSION
    run_dir: str | None
    dataset: DatasetSummary
    rounds: int = Field(ge=1)
    history: list[RoundEntry]
    federated: Metrics
    centralized: Metrics | None
    local_only: Metrics | None
    local_only_per_site: dict[str, Metrics] | None
    config: ResolvedConfig
    privacy: PrivacyReport | None
    secure_aggregation: SecureAggregationReport | None
    governance: GovernanceReport | None
    sites: list[SignedSiteReport] | None = None
    site_keys: dict[str, PublicKeyHex] | None = Field(
        default=None,
        description="Site -> the Ed25519 identity key the site registered when it joined "
        "(the coordinator's participation records; in process, the key the run gave the "
        "simulated site), recorded apart from the reports: verify each report against it, "
        "never against the key the report carries.",
    )
    deployment: DeploymentReport | None
    elapsed_s: float = Field(ge=0)
    empirical_audit: EmpiricalAudit | None = None


# reading -----------------------------------------------------------------------------------


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the first bad field (``a.b.c: message``) and how many more there are."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "document"
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"


def parse_results(text: str | bytes, *, source: str = "results.json") -> RunResults:
    """Validate a ``results.json`` document.

    Raises:
        DataError: not JSON, or not a valid results document (one line naming the field).
    """
    try:
        return RunResults.model_validate_json(text)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise DataError(f"{source} is not valid JSON: {exc.errors()[0]['msg']}") from None
        if exc.errors()[0]["type"] == "model_type":
            raise DataError(f"{source} must hold a JSON object") from None
        raise DataError(
            f"{source} is not a valid results document: {describe_validation_error(exc)}"
        ) from None


def load_results(path: str | os.PathLike[str]) -> RunResults:
    """Read and validate a ``results.json`` file.

    Raises:
        DataError: missing, unreadable, or not a valid results document.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"no {p.name} in {p.parent}") from None
    except OSError as exc:
        raise DataError(f"cannot read {p}: {exc}") from None
    return parse_results(data, source=str(p))


# the published schema ----------------------------------------------------------------------


def schema_text() -> str:
    """The JSON Schema of :class:`RunResults`, as committed (sorted keys, 2-space indent)."""
    return json.dumps(RunResults.model_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: str | os.PathLike[str] | None = None) -> Path:
    """Regenerate the committed schema file (default: beside this module)."""
    target = Path(path) if path is not None else Path(__file__).with_name(SCHEMA_FILE)
    target.write_text(schema_text(), encoding="utf-8")
    return target


def committed_schema() -> dict[str, Any]:
    """The schema shipped with the package."""
    text = resources.files("tutela.governance").joinpath(SCHEMA_FILE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
