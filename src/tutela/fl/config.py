"""Study configuration: a TOML file validated with pydantic (the only pydantic edge in fl).

Unknown keys, wrong types and impossible values are rejected with a message naming the key
(for example ``data.sites: Input should be greater than or equal to 1``).
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tutela.data.datasets import DatasetName
from tutela.data.partition import PartitionScheme
from tutela.data.tables import ColumnRoles
from tutela.errors import ConfigError, DataError
from tutela.fl.client import OptimizerKind
from tutela.fl.models import ModelKind
from tutela.fl.task import Task


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


Name = Annotated[str, Field(min_length=1, max_length=200)]
"""A column, category or study name (every string of a study is bounded)."""
Bound = Annotated[float, Field(ge=-1e300, le=1e300)]
"""A finite declared number (a feature range end)."""


class StudySection(_Section):
    name: str = Field(default="hospital-outcome-study", min_length=1, max_length=200)
    purpose: str = Field(default="disease-outcome-prediction", min_length=1, max_length=200)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class DataSection(_Section):
    """Where the study's rows come from and how they are split.

    Either a shipped ``dataset``, or your own table (``path``: CSV or Parquet) with its
    column roles: the ``outcome`` column, ``numeric`` and ``categorical`` feature columns,
    the declared ``categories`` of each categorical column and their ``encoding``
    (``one-hot`` or ``ordinal``; see :mod:`tutela.data.tables`). In a deployment each site
    reads its own file with the same roles.
    """

    dataset: DatasetName | None = DatasetName.BREAST_CANCER
    path: str | None = Field(default=None, max_length=4096)
    outcome: str | None = Field(default=None, max_length=200)
    numeric: list[Name] = Field(default_factory=list, max_length=10_000)
    categorical: list[Name] = Field(default_factory=list, max_length=1_000)
    categories: dict[Name, Annotated[list[Name], Field(max_length=10_000)]] = Field(
        default_factory=dict, max_length=1_000
    )
    encoding: Literal["one-hot", "ordinal"] = "one-hot"
    columns: list[Name] | None = Field(default=None, max_length=10_000)
    rows: int | None = Field(default=None, ge=10, le=10**9, description="synthetic-ehr only")
    test_fraction: float = Field(default=0.25, gt=0.0, lt=1.0)
    sites: int = Field(default=5, ge=1, le=100_000)
    partition: PartitionScheme = PartitionScheme.DIRICHLET
    alpha: float = Field(default=0.5, gt=0.0, le=1e6)
    min_site_rows: int = Field(default=20, ge=1, le=10**9)
    feature_bounds: dict[Name, tuple[Bound, Bound]] = Field(default_factory=dict, max_length=10_000)
    """Declared range ``[low, high]`` of a feature column. Under SecAgg+ or DP,
    sites clip each feature to its range before computing standardisation statistics (the
    rows they train on are not clipped), and DP noise scales with the range: declare tight
    ranges in private studies. A column without one uses ``[-1e4, 1e4]``; a range naming a
    column the study does not use is ignored."""
    standardise: bool = True
    """Standardise features with the federated mean and standard deviation before training
    (``false``: the features are used as the sites hold them, e.g. images already scaled;
    in process only for now)."""

    @model_validator(mode="before")
    @classmethod
    def _table_replaces_dataset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("path") is not None:
            if data.get("dataset") is not None:
                raise ValueError("name either data.dataset or data.path, not both")
            return {**data, "dataset": None}
        return data

    def roles(self) -> ColumnRoles | None:
        """The declared column roles of a study over your own table (``None``: a shipped
        dataset, or a caller's data without declared roles)."""
        if self.outcome is None or not (self.numeric or self.categorical):
            return None
        cats = {k: tuple(v) for k, v in self.categories.items()}
        return ColumnRoles(
            self.outcome, tuple(self.numeric), tuple(self.categorical), cats, self.encoding
        )

    def model_columns(self) -> list[str] | None:
        """The model's input columns: the encoded columns of a table with declared roles,
        else the declared ``columns`` (``None``: not declared)."""
        roles = self.roles()
        if roles is not None:
            return roles.encoded_columns
        return list(self.columns) if self.columns is not None else None

    @model_validator(mode="after")
    def _bounds_ordered(self) -> DataSection:
        if self.path is not None and self.roles() is None:
            raise ValueError("data.path needs data.outcome and numeric or categorical columns")
        try:
            self.roles()
        except DataError as exc:
            raise ValueError(str(exc)) from None
        for name, (low, high) in self.feature_bounds.items():
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"feature_bounds.{name}: need finite low < high")
        return self


ModelOption = (
    bool
    | Annotated[int, Field(ge=-(2**53), le=2**53)]
    | Annotated[float, Field(ge=-1e300, le=1e300)]
    | Annotated[str, Field(max_length=1000)]
)


class ModelSection(_Section):
    """The model every site trains.

    A built-in ``kind`` (``logistic``, ``mlp`` or ``poly-mlp`` (quadratic activations, servable
    under CKKS) with ``hidden`` widths), or your own
    PyTorch model named by an importable ``factory`` (``package.module:function``) with the
    SHA-256 of its module's source (``source_sha256``; ``tutela model hash
    package.module:function`` prints it) and keyword ``options`` for the factory (it also
    receives ``n_features`` if it takes that argument). Each site runs a factory only if its
    site policy allow-lists that factory with that hash; the coordinator never imports it.
    """

    kind: ModelKind = ModelKind.LOGISTIC
    hidden: list[Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        default_factory=lambda: [32], max_length=64
    )
    task: Task = Task.BINARY
    factory: str | None = Field(
        default=None, max_length=300, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
    )
    source_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    options: dict[str, ModelOption] = Field(default_factory=dict, max_length=64)

    @model_validator(mode="after")
    def _hidden_positive(self) -> ModelSection:
        if any(h < 1 for h in self.hidden):
            raise ValueError("hidden layer widths must be positive")
        if self.factory is not None and self.source_sha256 is None:
            raise ValueError(
                "model.source_sha256 is required with model.factory "
                "(print it with: tutela model hash " + self.factory + ")"
            )
        if self.factory is None and (self.source_sha256 is not None or self.options):
            raise ValueError("model.source_sha256 and model.options need model.factory")
        return self


DEFAULT_MAX_UPDATE_NORM = 10.0
"""The update-norm bound of a study that declares none (outside client-level DP): about twice
the largest honest update measured on the bundled datasets and models (L2 4.3: synthetic-ehr,
20,000 rows, MLP with Adam; breast-cancer and pima stay under 3 even at learning rate 1)."""


class TrainingSection(_Section):
    rounds: int = Field(default=30, ge=1, le=100_000)
    local_epochs: int = Field(default=2, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=1, le=10**7)
    learning_rate: float = Field(default=0.1, gt=0.0, le=1e3)
    optimizer: OptimizerKind = OptimizerKind.SGD
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0, le=1e3)
    fraction_fit: float = Field(default=1.0, gt=0.0, le=1.0)
    min_fit_sites: int = Field(default=2, ge=1, le=100_000)
    min_quorum: int = Field(default=2, ge=1, le=100_000)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="simulated site drop rate")
    max_update_norm: float | None = Field(default=None, gt=0.0, le=1e6)
    """L2 bound on one site's update (local minus global parameters) in a round: every site
    clips its update to it before sending, and wherever updates are visible (no secure
    aggregation) a longer one is refused (:mod:`tutela.fl.bounds`). Unset: the clip norm under
    client-level DP (``privacy.mode = "client"`` without adaptive clipping), else
    :data:`DEFAULT_MAX_UPDATE_NORM` (10.0); raise it for models whose honest updates are
    longer (a clipped honest update is never refused, but it moves the model less). See
    :func:`update_norm_bound`."""


StrategyName = Literal["fedavg", "fedprox", "fedadam", "fedyogi", "fedmedian", "trimmed-mean"]


class StrategySection(_Section):
    name: StrategyName = "fedavg"
    server_learning_rate: float | None = Field(default=None, gt=0.0, le=1e3)
    proximal_mu: float = Field(default=0.01, ge=0.0, le=1e3)
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    beta2: float = Field(default=0.99, ge=0.0, lt=1.0)
    tau: float = Field(default=1e-3, gt=0.0, le=1e3)
    trim_fraction: float = Field(default=0.2, ge=0.0, lt=0.5)


PrivacyMode = Literal["none", "sample", "client"]


class PrivacySection(_Section):
    """Differential privacy for the study.

    ``sample``: every site trains with DP-SGD (record-level DP per site).
    ``client``: DP-FedAvg (site-level DP): updates clipped, Gaussian noise on the sum.
    """

    mode: PrivacyMode = "none"
    epsilon: float | None = Field(default=None, gt=0.0, le=100.0)
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0)
    max_grad_norm: float = Field(default=1.0, gt=0.0, le=1e6, description="sample mode clip")
    clip_norm: float = Field(default=1.0, gt=0.0, le=1e6, description="client mode clip")
    adaptive_clipping: bool = False
    target_quantile: float = Field(default=0.5, gt=0.0, lt=1.0)
    accountant: Literal["pld", "rdp"] = "pld"

    @model_validator(mode="after")
    def _epsilon_when_private(self) -> PrivacySection:
        if self.mode != "none" and self.epsilon is None:
            raise ValueError("privacy.epsilon is required when privacy.mode is not 'none'")
        return self


class SecureAggregationSection(_Section):
    protocol: Literal["none", "secagg+", "ckks"] = "none"
    neighbors: int | None = Field(default=None, ge=1, le=100_000)
    threshold: int | None = Field(default=None, ge=1, le=100_000)
    modulus_bits: int = Field(default=32, ge=16, le=62)
    clip_range: float = Field(default=8.0, gt=0.0, le=1e6)

    @model_validator(mode="after")
    def _majority_threshold(self) -> SecureAggregationSection:
        # Sites refuse a threshold at or below half the neighbourhood (tutela.secagg); say so
        # when the study is loaded rather than when the first round is planned.
        if self.threshold is not None:
            if self.neighbors is not None and self.threshold > self.neighbors:
                raise ValueError("secure_aggregation.threshold cannot exceed neighbors")
            if self.neighbors is not None and 2 * self.threshold <= self.neighbors:
                raise ValueError(
                    f"secure_aggregation.threshold must be above half of neighbors "
                    f"({self.neighbors // 2 + 1} or more for {self.neighbors}); sites refuse less"
                )
            if self.threshold < 2:
                raise ValueError("secure_aggregation.threshold must be at least 2")
        return self


class StudyConfig(_Section):
    """A whole study: what data, which model, how to train, what privacy."""

    study: StudySection = Field(default_factory=StudySection)
    data: DataSection = Field(default_factory=DataSection)
    model: ModelSection = Field(default_factory=ModelSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    strategy: StrategySection = Field(default_factory=StrategySection)
    privacy: PrivacySection = Field(default_factory=PrivacySection)
    secure_aggregation: SecureAggregationSection = Field(default_factory=SecureAggregationSection)

    @model_validator(mode="after")
    def _consistent(self) -> StudyConfig:
        if self.training.min_quorum > self.data.sites:
            raise ValueError("training.min_quorum cannot exceed data.sites")
        if self.training.min_fit_sites > self.data.sites:
            raise ValueError("training.min_fit_sites cannot exceed data.sites")
        robust = self.strategy.name in ("fedmedian", "trimmed-mean")
        if robust and self.secure_aggregation.protocol != "none":
            raise ValueError(
                f"strategy.name {self.strategy.name!r} needs individual updates; "
                "it cannot run with secure_aggregation"
            )
        _check_update_norm(self)
        return self

    def resolved(self) -> dict[str, Any]:
        """The full configuration as plain JSON-ready data."""
        return self.model_dump(mode="json")

    def with_overrides(self, **sections: dict[str, Any]) -> StudyConfig:
        """Return a copy with some section fields replaced (validated again)."""
        data = self.model_dump(mode="json")
        for section, values in sections.items():
            data[section] = {**data[section], **values}
        return parse_study(data)


def update_norm_bound(config: StudyConfig) -> float:
    """The study's L2 bound on one site's update per round (``training.max_update_norm``).

    Unset, it is the clip norm under client-level DP without adaptive clipping (the DP clip
    bounds every update already) and :data:`DEFAULT_MAX_UPDATE_NORM` otherwise. With adaptive
    clipping the bound caps the moving clip norm's view of the updates: a clip above it sees
    every update within it and moves down.
    """
    declared = config.training.max_update_norm
    if declared is not None:
        return declared
    p = config.privacy
    if p.mode == "client" and not p.adaptive_clipping:
        return p.clip_norm
    return DEFAULT_MAX_UPDATE_NORM


def _check_update_norm(config: StudyConfig) -> None:
    declared, p = config.training.max_update_norm, config.privacy
    if declared is None or p.mode != "client":
        return
    if p.adaptive_clipping and declared < p.clip_norm:
        raise ValueError("training.max_update_norm cannot be below privacy.clip_norm")
    if not p.adaptive_clipping and declared != p.clip_norm:
        raise ValueError(
            "under client-level DP training.max_update_norm is privacy.clip_norm "
            f"({p.clip_norm}); leave it unset"
        )


def _format_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}")
    return "invalid study config: " + "; ".join(parts)


def parse_study(data: dict[str, Any]) -> StudyConfig:
    """Validate a study mapping; raises :class:`ConfigError` naming each bad key."""
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study TOML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"study file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read study file {p}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"study file {p} is not valid TOML: {exc}") from None
    table = data.get("data", {}).get("path") if isinstance(data.get("data"), dict) else None
    if isinstance(table, str) and not Path(table).is_absolute():
        # a table named by the study file is found next to it, wherever the command runs
        data["data"]["path"] = str(p.parent / table)
    return parse_study(data)
