"""The one summariser: what a run produced, as the typed results model.

Every runtime ends in a :class:`StudyRun`: the in-process engine
(:func:`tutela.fl.study.run_study`) builds one directly, and the network runner's mapping
(coordinator and site agents, see ``tutela.server.deploy``) becomes one through
:func:`network_run`. :func:`summarise` then writes the one
:class:`~tutela.governance.results.RunResults` that ``results.json`` holds, so the two paths
cannot drift apart: a key one of them adds or renames fails validation here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutela.fl.config import StudyConfig
from tutela.fl.records import Metrics, Parameters
from tutela.fl.rounds import RoundRecord, RoundStatus
from tutela.governance.results import (
    DatasetSummary,
    GovernanceReport,
    PrivacyMode,
    RoundOutcome,
    RunResults,
)

__all__ = ["StudyRun", "network_run", "round_outcome", "summarise"]


@dataclass(frozen=True)
class StudyRun:
    """What one run produced, before it is summarised.

    Attributes:
        dataset: what was split how.
        history: one record per round, in order.
        federated: test-set metrics of the final global model.
        final_parameters: the final global model.
        elapsed_s: wall-clock seconds of the run.
        baselines: ``centralized``, ``local_only`` and ``local_only_per_site`` metrics, or
            ``None`` when they were not computed.
        secure_aggregation: the aggregation's study-level report (``None`` without one).
        minimisation: the data-minimisation record (``None`` without a site policy).
        sites: each site's signed report, verbatim, when the sites sent one.
        site_keys: site -> the identity key (hex) the site registered, recorded apart from
            the reports (the coordinator's join records, or the keys the in-process run
            gave its sites).
        deployment: how the deployment layer ran the study (``None`` in process).
        standardisation: the ``mean`` and ``std`` the sites standardised their features
            with (``None`` when the study does not standardise), for serving the model.
    """

    dataset: DatasetSummary
    history: tuple[RoundRecord, ...]
    federated: Metrics
    final_parameters: Parameters
    elapsed_s: float
    baselines: Mapping[str, Any] | None = None
    secure_aggregation: Mapping[str, Any] | None = None
    minimisation: Mapping[str, Any] | None = None
    sites: Sequence[Mapping[str, Any]] | None = None
    site_keys: Mapping[str, str] | None = None
    deployment: Mapping[str, Any] | None = None
    standardisation: Mapping[str, list[float]] | None = None


def round_outcome(status: RoundStatus) -> RoundOutcome:
    """How a closed round is written in the results (an open round has no outcome)."""
    return RoundOutcome(status.value)


def _history_entry(record: RoundRecord) -> dict[str, Any]:
    return {**record.as_dict(), "status": round_outcome(record.status)}


def _privacy_section(
    config: StudyConfig, report: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The ``privacy`` section: the DP report with its mode, or ``None`` when not private.

    Reporters mark their report ``private`` (the section being present says so) and the
    network's per-site entries carry the last ``round`` a site reported (its signed ledger
    has every spend); both are left out. Sample-level fields only the in-process report
    states are filled from the study configuration they were set from.
    """
    mode = PrivacyMode(config.privacy.mode)
    if mode is PrivacyMode.NONE or report is None:
        return None
    section = {k: v for k, v in report.items() if k != "private"}
    section["mode"] = mode
    if mode is PrivacyMode.SAMPLE:
        section.setdefault("max_grad_norm", config.privacy.max_grad_norm)
        section.setdefault("ledger", None)
        section["per_site"] = {
            site: {k: v for k, v in entry.items() if k != "round"}
            for site, entry in section.get("per_site", {}).items()
        }
    return section


def summarise(
    config: StudyConfig,
    run: StudyRun,
    *,
    privacy: Mapping[str, Any] | None,
    governance: GovernanceReport | None = None,
    run_dir: Path | None = None,
) -> RunResults:
    """The results of ``run`` (``results.json``), validated against the model.

    Args:
        config: the study as it ran (columns resolved).
        run: what the runtime produced.
        privacy: the DP report (``None`` without DP).
        governance: the governance section (``None`` for a bare engine run).
        run_dir: the run directory the results are written to.

    Raises:
        pydantic.ValidationError: a runtime produced a section the model does not allow
            (a bug: the model and its writers have drifted apart).
    """
    baselines = run.baselines or {}
    doc: dict[str, Any] = {
        "run_dir": str(run_dir) if run_dir is not None else None,
        "dataset": run.dataset,
        "rounds": config.training.rounds,
        "history": [_history_entry(r) for r in run.history],
        "federated": run.federated,
        "centralized": baselines.get("centralized"),
        "local_only": baselines.get("local_only"),
        "local_only_per_site": baselines.get("local_only_per_site"),
        "config": config.resolved(),
        "privacy": _privacy_section(config, privacy),
        "secure_aggregation": run.secure_aggregation,
        "governance": governance,
        "sites": list(run.sites) if run.sites is not None else None,
        "site_keys": dict(run.site_keys) if run.site_keys is not None else None,
        "deployment": run.deployment,
        "elapsed_s": run.elapsed_s,
    }
    return RunResults.model_validate(doc, strict=False)


def _network_round(entry: Mapping[str, Any]) -> RoundRecord:
    metrics = {k: float(entry[k]) for k in ("accuracy", "auc", "log_loss") if k in entry}
    return RoundRecord(
        int(entry["round"]),
        RoundStatus(entry["status"]),
        tuple(entry.get("sites", ())),
        tuple(entry.get("failed", ())),
        int(entry.get("num_examples", 0)),
        metrics,
    )


def _network_secure_aggregation(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The network runner's SecAgg+ summary in the model's terms: its total of dropped sites
    per stage is ``dropped_per_stage``; the last round's dropped site names are left out."""
    if report is None:
        return None
    section = {k: v for k, v in report.items() if k != "dropped"}
    if "dropped_total_per_stage" in section:
        section["dropped_per_stage"] = section.pop("dropped_total_per_stage")
    return section


def network_run(results: Mapping[str, Any]) -> StudyRun:
    """The :class:`StudyRun` of a network runner's mapping (``dataset``, ``history``,
    ``federated``, ``secure_aggregation``, ``final_parameters``, ``elapsed_s``,
    ``deployment``, and ``sites`` with ``site_keys`` as the coordinator recorded them). Its
    ``privacy`` is passed to :func:`summarise` by the caller."""
    return StudyRun(
        dataset=DatasetSummary.model_validate(results["dataset"], strict=False),
        history=tuple(_network_round(e) for e in results["history"]),
        federated=dict(results["federated"]),
        final_parameters=results["final_parameters"],
        elapsed_s=float(results["elapsed_s"]),
        secure_aggregation=_network_secure_aggregation(results.get("secure_aggregation")),
        sites=results.get("sites"),
        site_keys=results.get("site_keys"),
        deployment=results.get("deployment"),
        standardisation=_released_standardisation(results.get("standardisation")),
    )


def _released_standardisation(released: Any) -> dict[str, list[float]] | None:
    """The mean and std the coordinator released (``None`` if it released none)."""
    if not isinstance(released, Mapping) or released.get("mean") is None:
        return None
    return {"mean": list(map(float, released["mean"])), "std": list(map(float, released["std"]))}
