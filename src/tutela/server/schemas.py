"""Request and response bodies of the coordinator's HTTP API (pydantic at the edge only).

Every input is bounded in the schema: integers have a minimum and a maximum, strings a
maximum length, lists a maximum number of items, mappings a maximum number of entries
(``tests/server/test_bounds_schema.py`` walks the OpenAPI schema for it). Path parameters
use the aliases below (:data:`StudyId`, :data:`RoundNo`, :data:`StageName`,
:data:`SiteName`), so a round number of 2**70 is a 422, never a 500.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tutela.server.api import MAX_BINARY_BYTES
from tutela.server.authz import Role
from tutela.server.round_metrics import check_evaluation

MAX_ROUND = 100_000
"""The largest round number (a study runs at most 100,000 rounds; round 0 standardises)."""
MAX_SITES = 100_000
"""The most sites a study may name (``data.sites`` is at most this too)."""
MAX_VECTOR = 100_000
"""The most entries of a per-feature vector a site sends (feature moments)."""

StudyId = Annotated[str, Path(min_length=1, max_length=64)]
RoundNo = Annotated[int, Path(ge=0, le=MAX_ROUND)]
StageName = Annotated[str, Path(min_length=1, max_length=64)]
SiteName = Annotated[str, Path(min_length=1, max_length=63)]
SiteNameField = Annotated[str, Field(min_length=1, max_length=63)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeploymentIn(_Model):
    join_timeout_s: float = Field(default=120.0, gt=0, le=86400)
    stage_timeout_s: float = Field(default=120.0, gt=0, le=86400)
    max_update_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=MAX_BINARY_BYTES)
    max_relay_bytes: int = Field(default=1024 * 1024, ge=64, le=64 * 1024 * 1024)
    sites: list[SiteNameField] | None = Field(default=None, max_length=MAX_SITES)


class StudyIn(_Model):
    config: dict[str, Any]
    deployment: DeploymentIn = Field(default_factory=DeploymentIn)


class StudyCreated(_Model):
    id: str


class StatusOut(_Model):
    id: str
    status: str


class SiteIn(_Model):
    name: str = Field(min_length=1, max_length=63)


class EnrolmentTokenOut(_Model):
    site: str
    enrolment_token: str


class TokenIn(_Model):
    role: Role
    name: str = Field(min_length=1, max_length=200)


class TokenOut(_Model):
    token: str
    role: Role
    name: str


class EnrolIn(_Model):
    token: str = Field(min_length=1, max_length=200)
    csr_pem: str = Field(min_length=1, max_length=16384)


class EnrolOut(_Model):
    certificate_pem: str
    ca_pem: str | None


class MomentsIn(_Model):
    count: int = Field(ge=0, le=10**9)
    total: list[float] = Field(max_length=MAX_VECTOR)
    total_sq: list[float] = Field(max_length=MAX_VECTOR)


class ParticipationIn(_Model):
    accept: bool
    reason: str = Field(default="", max_length=2000)
    num_examples: int = Field(default=0, ge=0, le=10**9)
    moments: MomentsIn | None = None
    noised: list[float] | None = Field(default=None, max_length=200_001)
    """The site's noised moment vector (DP without secure aggregation)."""
    identity: str | None = Field(default=None, min_length=64, max_length=64)
    certificate: str | None = Field(default=None, min_length=1, max_length=16384)
    """The site's client certificate (PEM), which its ``binding`` ties to ``identity``."""
    binding: str | None = Field(default=None, pattern=r"^[0-9a-f]{2,512}$")
    """Its TLS key's signature over the study, the site name and ``identity`` (hex)."""


class ParticipationOut(_Model):
    study_id: str
    site: str
    status: str


class ReceiptOut(_Model):
    study_id: str
    round: int
    stage: str
    site: str
    digest: str
    duplicate: bool


class StageReceiptOut(ReceiptOut):
    """A round-stage receipt; when the site asked to wait, also its next tasks answer (what
    ``GET /v1/site/tasks`` answers, with its ``version``)."""

    next_tasks: dict[str, Any] | None = None


class MetricsIn(_Model):
    """A site's numbers for a round: privacy figures, and its evaluation of a global model
    (range-checked here, :func:`tutela.server.round_metrics.check_evaluation`)."""

    metrics: dict[
        Annotated[str, Field(max_length=64)], Annotated[float, Field(allow_inf_nan=False)]
    ] = Field(max_length=256)

    @model_validator(mode="after")
    def _evaluation_in_range(self) -> MetricsIn:
        check_evaluation(self.metrics)
        return self


class SiteReportIn(_Model):
    """A site's signed report (:mod:`tutela.governance.site_report`), kept verbatim."""

    site: str = Field(min_length=1, max_length=64)
    policy: dict[str, Any]
    ledger: dict[str, Any]
    signature: str = Field(pattern=r"^[0-9a-f]{128}$")
    public_key: str = Field(pattern=r"^[0-9a-f]{64}$")
