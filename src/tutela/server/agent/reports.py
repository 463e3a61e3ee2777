"""A site's signed reports: the policy it enforced and its ledger summary, per study; and
its evaluation of each global model on its own held-out rows.

After joining and in each round (after training, before the update it spent on) the site
signs its report (:func:`tutela.fl.client.site_report`) and keeps it in
:attr:`SiteAgent.reports <tutela.server.agent.SiteAgent.reports>`; when it changed, the site
writes it to ``site-report-<study>.json`` in its state directory and sends it to the
coordinator (an unchanged report is not sent again); the numeric privacy figures go to the
coordinator as round metrics.

Unless its policy says ``report_metrics = false``, a site keeps a share of its rows out of
training when it joins (the study's ``data.test_fraction``, stratified:
:func:`split_holdout`) and, each time it receives a global model, sends its loss, accuracy,
AUC and row count on those rows (:meth:`SiteReporter.report_evaluation`; what that reveals:
:mod:`tutela.server.round_metrics`).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tutela.data.partition import train_test_split_indices
from tutela.errors import TransportError
from tutela.fl.client import site_report
from tutela.fl.privacy import no_ledger_summary
from tutela.fl.records import Parameters
from tutela.governance._files import atomic_write
from tutela.server.agent.transport import detail

if TYPE_CHECKING:
    from tutela.server.agent.site import SiteAgent
    from tutela.server.agent.state import StudyState

MIN_HOLDOUT_ROWS = 2
"""A site holding out fewer rows than this (or training on fewer) evaluates nothing."""

Holdout = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


def split_holdout(
    features: npt.NDArray[np.float32],
    outcome: npt.NDArray[np.int64],
    fraction: float,
    *,
    seed: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], Holdout | None]:
    """(training features, training outcome, held-out rows) of a site's rows: a stratified
    ``fraction`` held out (seeded by the site), or every row for training and ``None`` when
    either part would have fewer than :data:`MIN_HOLDOUT_ROWS` rows."""
    train, test = train_test_split_indices(outcome, fraction, seed=seed)
    if len(test) < MIN_HOLDOUT_ROWS or len(train) < MIN_HOLDOUT_ROWS:
        return features, outcome, None
    return features[train], outcome[train], (features[test], outcome[test])


def evaluate_holdout(
    state: StudyState, params: Parameters, standardisation: dict[str, Any]
) -> dict[str, float] | None:
    """The evaluation keys (:data:`tutela.server.round_metrics.EVAL_KEYS`) of ``params`` on
    the site's held-out rows, standardised as its training rows are; ``None`` without any."""
    if state.holdout is None:
        return None
    x, y = state.holdout
    if standardisation.get("mean") is not None:
        mean = np.asarray(standardisation["mean"], np.float64)
        std = np.asarray(standardisation["std"], np.float64)
        x = ((x - mean) / std).astype(np.float32)
    task = state.site.task
    scores = task.metrics(task.labels(y), state.site.predict_proba(params, x))
    out = {"eval_rows": float(len(y))}
    for name, key in (
        ("log_loss", "eval_loss"),
        ("accuracy", "eval_accuracy"),
        ("auc", "eval_auc"),
    ):
        value = scores.get(name)
        if isinstance(value, int | float) and math.isfinite(value):
            out[key] = float(value)
    return out


class SiteReporter:
    """Signs, keeps, writes and sends one :class:`~tutela.server.agent.SiteAgent`'s reports."""

    def __init__(self, agent: SiteAgent) -> None:
        self.agent = agent
        self._written: dict[str, str] = {}
        self._sent: dict[str, str] = {}

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
        if self._written.get(study_id) != text:  # signatures are deterministic (Ed25519)
            atomic_write(agent.state_dir / f"site-report-{study_id}.json", text.encode("utf-8"))
            self._written[study_id] = text
        return report

    def send(self, study_id: str, deadline: float | None) -> None:
        """Send the latest signed report for ``study_id`` to the coordinator, which checks it
        against the identity key this site registered at join and keeps it verbatim. A
        report the coordinator already accepted is not sent again (the coordinator would
        keep it once). A refusal or an unreachable coordinator is logged: the report stays
        in the state directory and is sent with the next one."""
        agent = self.agent
        text = json.dumps(agent.reports[study_id], sort_keys=True, allow_nan=False)
        if self._sent.get(study_id) == text:
            return
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
            return
        self._sent[study_id] = text

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

    def report_evaluation(self, task: dict[str, Any], params: Parameters, model_round: int) -> None:
        """Evaluate ``params`` (the global model after round ``model_round``) on the held-out
        rows and send it as that round's metrics, once per round; nothing when the policy
        says ``report_metrics = false`` (no rows were held out). A refusal or an unreachable
        coordinator is logged: the round goes on."""
        agent = self.agent
        state = agent.studies[task["study_id"]]
        if not agent.settings.policy.report_metrics or model_round in state.evaluated:
            return
        metrics = evaluate_holdout(state, params, task.get("standardisation") or {})
        if metrics is None:
            return
        state.evaluated.add(model_round)
        try:
            response = agent.transport.request(
                "POST",
                f"/v1/site/studies/{task['study_id']}/rounds/{model_round}/metrics",
                json={"metrics": metrics},
                deadline=float(task["deadline"]),
            )
        except TransportError as exc:
            agent.log(f"{agent.name}: evaluation of round {model_round} not sent: {exc}")
            return
        if response.status_code >= 300:
            agent.log(f"{agent.name}: evaluation refused: {detail(response)}")
