"""What a compliance check says: the frameworks, each check's status and evidence, and the
report (:class:`ComplianceReport`) that ``tutela comply`` prints as Markdown or JSON.
The checks themselves are :mod:`tutela.governance.comply`'s."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Framework(StrEnum):
    """Regulatory frameworks the checks are mapped to."""

    GDPR = "gdpr"
    HIPAA = "hipaa"
    CCPA = "ccpa"


class Status(StrEnum):
    """Outcome of one check."""

    PASS = "pass"  # noqa: S105 - a check outcome, not a password
    FAIL = "fail"
    NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict, with the evidence it read and the provisions it maps to."""

    id: str
    title: str
    status: Status
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    references: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "reason": self.reason,
            "references": list(self.references),
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class ComplianceReport:
    """All checks of one framework on one run."""

    framework: Framework
    run_dir: str
    results: tuple[CheckResult, ...]
    record_of_processing: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(r.status is not Status.FAIL for r in self.results)

    @property
    def failed(self) -> tuple[str, ...]:
        """Ids of failed checks."""
        return tuple(r.id for r in self.results if r.status is Status.FAIL)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        counts = {s.value: sum(r.status is s for r in self.results) for s in Status}
        return {
            "framework": self.framework.value,
            "run_dir": self.run_dir,
            "passed": self.passed,
            "summary": counts,
            "checks": [r.to_json() for r in self.results],
            "record_of_processing": dict(self.record_of_processing),
        }

    def to_markdown(self) -> str:
        """A Markdown report."""
        name = self.framework.value.upper()
        verdict = (
            "all evidenced controls passed" if self.passed else "FAILED: " + ", ".join(self.failed)
        )
        lines = [
            f"# {name} controls report",
            "",
            f"Run: `{self.run_dir}`  ",
            f"Result: **{verdict}**",
            "",
            "Technical controls evidenced by the run; this is not a legal opinion.",
            "",
            "| Check | Status | Provisions | Reason |",
            "|---|---|---|---|",
        ]
        for r in self.results:
            reason = r.reason.replace("|", "\\|")
            lines.append(f"| {r.id} | {r.status.value} | {'; '.join(r.references)} | {reason} |")
        lines += ["", "## Evidence", ""]
        for r in self.results:
            lines.append(f"- **{r.id}**: `{json.dumps(dict(r.evidence), sort_keys=True)}`")
        if self.record_of_processing:
            lines += [
                "",
                "## Record of processing (generated)",
                "",
                "```json",
                json.dumps(dict(self.record_of_processing), indent=2, sort_keys=True),
                "```",
            ]
        return "\n".join(lines) + "\n"
