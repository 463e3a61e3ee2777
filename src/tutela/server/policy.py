"""A site's local policy: the floor no study can lower, enforced by the site agent.

``site-policy.toml``::

    [privacy]
    require_dp = true          # refuse studies without differential privacy
    max_epsilon = 8.0          # refuse a study whose epsilon is larger (weaker) than this
    max_delta = 1e-5

    [secure_aggregation]
    required = true            # refuse studies without SecAgg+

    [purposes.disease-outcome-prediction]
    columns = ["npreg", "glu", "bp", "skin", "bmi", "ped", "age"]

    [data]
    never_leave = ["name", "ssn", "mrn"]   # never used, whatever the purpose says

The agent checks every invitation against the policy *before* touching data, and refuses
(with every reason, sent to the coordinator and audited there) a study that asks for less
protection or for columns the purpose does not allow. When it trains, it loads only the
columns the policy allows, whatever the study's code asks for.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tutela.errors import ConfigError, PolicyViolation


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Privacy(_Section):
    require_dp: bool = False
    max_epsilon: float | None = Field(default=None, gt=0)
    max_delta: float | None = Field(default=None, gt=0, lt=1)


class _SecAgg(_Section):
    required: bool = False


class _Purpose(_Section):
    columns: list[str]


class _Data(_Section):
    never_leave: list[str] = Field(default_factory=list)


class _PolicyFile(_Section):
    privacy: _Privacy = Field(default_factory=_Privacy)
    secure_aggregation: _SecAgg = Field(default_factory=_SecAgg)
    purposes: dict[str, _Purpose] = Field(default_factory=dict)
    data: _Data = Field(default_factory=_Data)


@dataclass(frozen=True)
class SitePolicy:
    """The site's floor (see the module docstring for the file format)."""

    require_dp: bool = False
    max_epsilon: float | None = None
    max_delta: float | None = None
    require_secure_aggregation: bool = False
    purposes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    never_leave: frozenset[str] = frozenset()

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, source: str = "site policy") -> SitePolicy:
        """Validate a parsed policy document (unknown keys are errors)."""
        try:
            doc = _PolicyFile.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
            raise ConfigError(f"{source}: {loc}: {msg}") from None
        return cls(
            require_dp=doc.privacy.require_dp,
            max_epsilon=doc.privacy.max_epsilon,
            max_delta=doc.privacy.max_delta,
            require_secure_aggregation=doc.secure_aggregation.required,
            purposes={name: tuple(p.columns) for name, p in doc.purposes.items()},
            never_leave=frozenset(doc.data.never_leave),
        )

    @classmethod
    def load(cls, path: Path) -> SitePolicy:
        """Read a policy TOML file."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"site policy not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"site policy {path} is not valid TOML: {exc}") from None
        return cls.from_mapping(data, source=str(path))

    def allowed_columns(self, purpose: str) -> tuple[str, ...]:
        """Columns the purpose may use, minus those that never leave."""
        return tuple(c for c in self.purposes.get(purpose, ()) if c not in self.never_leave)

    def refusals(self, study: dict[str, Any], columns: list[str]) -> list[str]:
        """Every reason this site refuses a study (empty: the study is acceptable).

        Args:
            study: the study's resolved config (as the coordinator sends it).
            columns: the columns the study would train on at this site.
        """
        reasons: list[str] = []
        purpose = str(study.get("study", {}).get("purpose", ""))
        if purpose not in self.purposes:
            reasons.append(f"purpose {purpose!r} is not allowed at this site")
        else:
            allowed = set(self.allowed_columns(purpose))
            banned = [c for c in columns if c not in allowed]
            if banned:
                reasons.append(f"columns not allowed for purpose {purpose!r}: {', '.join(banned)}")
        privacy = study.get("privacy") or {}
        mode = privacy.get("mode", "none")
        epsilon = privacy.get("epsilon")
        delta = privacy.get("delta")
        if self.require_dp and mode == "none":
            reasons.append("differential privacy is required by this site (privacy.mode is 'none')")
        if (
            mode != "none"
            and self.max_epsilon is not None
            and (epsilon is None or epsilon > self.max_epsilon)
        ):
            reasons.append(
                f"privacy.epsilon {epsilon} exceeds this site's maximum {self.max_epsilon}"
            )
        if (
            mode != "none"
            and self.max_delta is not None
            and (delta is None or delta > self.max_delta)
        ):
            reasons.append(f"privacy.delta {delta} exceeds this site's maximum {self.max_delta}")
        protocol = (study.get("secure_aggregation") or {}).get("protocol", "none")
        if self.require_secure_aggregation and protocol == "none":
            reasons.append(
                "secure aggregation is required by this site "
                "(secure_aggregation.protocol is 'none')"
            )
        return reasons

    def enforce(self, study: dict[str, Any], columns: list[str]) -> None:
        """Raise :class:`PolicyViolation` naming every reason, if the study is refused."""
        reasons = self.refusals(study, columns)
        if reasons:
            raise PolicyViolation("; ".join(reasons))
