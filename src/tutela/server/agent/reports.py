"""A site's signed reports: the policy it enforced and its ledger summary, per study.

After joining and after each round the site signs its report
(:func:`tutela.fl.client.site_report`), keeps it in :attr:`SiteAgent.reports
<tutela.server.agent.SiteAgent.reports>`, writes it to ``site-report-<study>.json`` in its
state directory and sends it to the coordinator; the numeric privacy figures go to the
coordinator as round metrics.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tutela.errors import TransportError
from tutela.fl.client import site_report
from tutela.fl.privacy import no_ledger_summary
from tutela.governance._files import atomic_write
from tutela.server.agent.transport import detail

if TYPE_CHECKING:
    from tutela.server.agent.site import SiteAgent


class SiteReporter:
    """Signs, keeps, writes and sends one :class:`~tutela.server.agent.SiteAgent`'s reports."""

    def __init__(self, agent: SiteAgent) -> None:
        self.agent = agent

    def sign(self, study_id: str) -> dict[str, Any]:
        """Sign this site's policy and ledger summary for ``study_id``; keep and write it."""
        agent = self.agent
        state = agent.studies[study_id]
        if state.dp is not None:
            ledger = state.dp.ledger_summary(agent.name)
        elif state.client_dp is not None:
            ledger = state.client_dp.ledger_summary()
        else:
            ledger = no_ledger_summary()
        report = site_report(agent.name, agent.settings.policy, ledger, agent.identity)
        agent.reports[study_id] = report
        text = json.dumps(report, sort_keys=True, indent=2, allow_nan=False) + "\n"
        atomic_write(agent.state_dir / f"site-report-{study_id}.json", text.encode("utf-8"))
        return report

    def send(self, study_id: str, deadline: float | None) -> None:
        """Send the latest signed report for ``study_id`` to the coordinator, which checks it
        against the identity key this site registered at join and keeps it verbatim (the
        same report sent again is kept once). A refusal or an unreachable coordinator is
        logged: the report stays in the state directory."""
        agent = self.agent
        text = json.dumps(agent.reports[study_id], sort_keys=True, allow_nan=False)
        try:
            response = agent.transport.request(
                "POST",
                f"/v1/site/studies/{study_id}/site-report",
                content=text.encode("utf-8"),
                headers={"Content-Type": "application/json"},
                deadline=deadline,
            )
        except TransportError as exc:
            agent.log(f"{agent.name}: site report for study {study_id} not sent: {exc}")
            return
        if response.status_code != 200:
            agent.log(f"{agent.name}: site report refused: {detail(response)}")

    def report_round(self, task: dict[str, Any]) -> None:
        """Sign this round's site report; send its privacy figures as round metrics."""
        agent = self.agent
        state = agent.studies[task["study_id"]]
        report = self.sign(task["study_id"])
        self.send(task["study_id"], float(task["deadline"]))
        if state.dp is not None:
            noise = float(state.dp.report()["per_site"][agent.name]["noise_multiplier"])
        elif state.client_dp is not None:
            noise = state.client_dp.noise_multiplier
        else:
            return
        ledger = report["ledger"]
        metrics = {  # floats only: the metrics endpoint takes numbers
            "epsilon": float(ledger["spent_epsilon"]),
            "delta": float(ledger["delta"]),
            "noise_multiplier": noise,
            "budget_epsilon": float(ledger["budget_epsilon"]),
            "budget_left": float(ledger["remaining_epsilon"]),
        }
        agent.transport.request(
            "POST",
            f"/v1/site/studies/{task['study_id']}/rounds/{task['round']}/metrics",
            json={"metrics": metrics},
            deadline=float(task["deadline"]),
        )
