"""The results of a real deployment, fetched into a run directory (``tutela server results``).

A study that ran through a coordinator leaves its results there; this module fetches them
(as a person with a bearer token, over the deployment's TLS and RBAC: the token's role
needs ``study:read``, ``model:read``, ``ledger:read`` and ``audit:read``, which the built-in
admin role holds) and lays them out as the demo's run directory is laid out, so
``tutela report``, ``tutela comply`` and ``tutela audit verify`` read a real deployment as
they read the demo::

    OUT/results.json                 the typed results (RunResults): rounds with the sites'
                                     evaluations, the privacy ledger, secure aggregation,
                                     the sites' signed reports and their registered keys
    OUT/model.safetensors.enc        the final global model, in your keyring's envelope
    OUT/standardisation.json         the mean and std the sites standardised with (if any)
    OUT/metrics.json                 each round's evaluations, per site and combined
    OUT/privacy.json                 the coordinator's privacy ledger of the study
    OUT/site-reports/<site>.json     each site's signed report, verbatim
    OUT/audit.jsonl                  the coordinator's tamper-evident log, as stored
    OUT/audit.jsonl.checkpoints      every checkpoint it signed
    OUT/audit.checkpoint             the checkpoint covering the whole exported log
    OUT/cosignatures/*.checkpoint    the checkpoints the sites cosigned (witnesses)
    OUT/witnesses.json               where those are, and the keys the run names

Security: nothing fetched is trusted for being here. The audit log verifies only under an
audit key the auditor pinned out of band (``tutela audit trust add``); the site reports
under the keys the sites registered at join, or those the auditor pins (``--site-keys``); a
log rewritten after download fails ``tutela audit verify`` and ``tutela comply``.

What the coordinator never had is not invented: there are no baselines (centralised and
local-only need the data), and the test-set metrics are the sites' own evaluations on
their held-out rows (:mod:`tutela.server.round_metrics`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from tutela.fl.config import parse_study
from tutela.fl.records import parameters_to_bytes
from tutela.fl.summary import network_run, summarise
from tutela.governance._files import atomic_write, private_dir
from tutela.governance.audit import RUN_CHECKPOINT, Checkpoint
from tutela.governance.envelope import Envelope
from tutela.governance.home import open_keyring
from tutela.governance.results import (
    GovernanceReport,
    MinimisationReport,
    PolicyFloor,
    RunResults,
)
from tutela.governance.witness import WitnessManifest, cosigned_path
from tutela.server.admin_client import admin_get as _get
from tutela.server.core import ConflictError, NotFoundError
from tutela.server.deploy import _ckks_summary, _privacy_summary, _secagg_summary
from tutela.server.wire import parse_tensors

if TYPE_CHECKING:
    from tutela.server.coordinator import Coordinator

__all__ = [
    "AUDIT_LOG",
    "StudyEvidence",
    "evidence_of",
    "fetch_evidence",
    "fetch_results",
    "write_results",
]

AUDIT_LOG = "audit.jsonl"
COSIGNATURES = "cosignatures"
MODEL_FILE = "model.safetensors.enc"


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write(path, text.encode("utf-8"), mode=0o644)


def _metrics(entry: dict[str, Any] | None) -> dict[str, float | None]:
    """The results' metric triple from a round's combined evaluation (null if none)."""
    agg = (entry or {}).get("aggregate") or {}
    return {"accuracy": agg.get("accuracy"), "auc": agg.get("auc"), "log_loss": agg.get("loss")}


def _floor(reports: list[dict[str, Any]]) -> PolicyFloor:
    """The weakest floor among the sites' signed policies: what every site enforced."""
    floors = [r.get("policy", {}).get("floor", {}) for r in reports]
    if not floors:
        return PolicyFloor(dp_required=False, secure_aggregation_required=False)

    def most(key: str) -> float | None:
        values = [float(f[key]) for f in floors if isinstance(f.get(key), int | float)]
        return max(values) if len(values) == len(floors) else None

    ks = [int(f["min_k"]) for f in floors if isinstance(f.get("min_k"), int)]
    return PolicyFloor(
        dp_required=all(bool(f.get("dp_required")) for f in floors),
        secure_aggregation_required=all(bool(f.get("secure_aggregation_required")) for f in floors),
        max_epsilon=most("max_epsilon"),
        max_delta=most("max_delta"),
        min_k=min(ks) if len(ks) == len(floors) else None,
    )


def _write_audit(out: Path, export: dict[str, Any]) -> dict[str, Any]:
    """Write the exported log, its checkpoints and the cosignatures; the deployment's
    ``witnesses`` entry."""
    atomic_write(out / AUDIT_LOG, export["log"].encode("utf-8"), mode=0o644)
    lines = "".join(json.dumps(note, ensure_ascii=False) + "\n" for note in export["checkpoints"])
    atomic_write(out / (AUDIT_LOG + ".checkpoints"), lines.encode("utf-8"), mode=0o644)
    Checkpoint.parse(export["checkpoint"]).save(out / RUN_CHECKPOINT)
    target = out / COSIGNATURES
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    for note in export["cosigned"].values():
        cp = Checkpoint.parse(note)  # named by its own content, never by the server
        cp.save(cosigned_path(target, cp))
    manifest = WitnessManifest(
        log=AUDIT_LOG, cosigned=COSIGNATURES, audit_key=export["audit_key"], witnesses=()
    )
    path = manifest.save(out)
    return {
        "manifest": str(path),
        "audit_key": export["audit_key"],
        "cosignatures": str(target),
        "cosigned_checkpoints": len(export["cosigned"]),
    }


@dataclass(frozen=True)
class StudyEvidence:
    """What the coordinator holds about a completed study, as its admin API returns it."""

    study_id: str
    coordinator: str
    status: dict[str, Any]
    ledger: dict[str, Any]
    signed: dict[str, Any]
    model: bytes
    export: dict[str, Any]


def _completed(study_id: str, status: dict[str, Any]) -> None:
    if status["status"] != "completed":
        raise ConflictError(
            f"study {study_id} is {status['status']}; its results are fetched once it completed"
        )


def fetch_evidence(client: httpx.Client, study_id: str) -> StudyEvidence:
    """Fetch a completed study's evidence over the admin API (``client``: base URL and
    bearer token set).

    Raises:
        ServiceError: the coordinator refused a request (an unknown study, a role without
            one of the permissions), with its reason.
        ConflictError: the study has not completed (its results are not final).
    """
    status = _get(client, f"/v1/admin/studies/{study_id}").json()
    _completed(study_id, status)
    return StudyEvidence(
        study_id,
        str(client.base_url),
        status,
        _get(client, f"/v1/admin/studies/{study_id}/privacy").json(),
        _get(client, f"/v1/admin/studies/{study_id}/site-reports").json(),
        _get(client, f"/v1/admin/studies/{study_id}/model").content,
        _get(client, "/v1/admin/audit/export").json(),
    )


def evidence_of(coordinator: Coordinator, study_id: str, url: str = "") -> StudyEvidence:
    """The same evidence read in process from ``coordinator`` (its dashboard), whose audit
    hook must keep the tamper-evident log (:class:`tutela.server.serve.MerkleAuditHook`).

    Raises:
        NotFoundError: no such study, or no tamper-evident log.
        ConflictError: the study has not completed.
    """
    status = coordinator.study_status(study_id)
    _completed(study_id, status)
    export = getattr(coordinator.core.audit_hook, "export", None)
    if export is None:
        raise NotFoundError("this coordinator keeps no tamper-evident audit log")
    return StudyEvidence(
        study_id,
        url,
        status,
        coordinator.privacy_ledger(study_id),
        coordinator.site_reports(study_id),
        coordinator.final_model(study_id),
        export(),
    )


def fetch_results(client: httpx.Client, study_id: str, out: Path) -> RunResults:
    """Fetch a completed study's results from the coordinator ``client`` talks to (base URL
    and bearer token set) into the run directory ``out`` (see the module docstring).

    Raises:
        ServiceError: the coordinator refused a request (an unknown study, a role without
            one of the permissions), with its reason.
        ConflictError: the study has not completed (its results are not final).
    """
    return write_results(fetch_evidence(client, study_id), out)


def write_results(evidence: StudyEvidence, out: Path, *, seal_model: bool = True) -> RunResults:
    """Lay ``evidence`` out as a run directory in ``out`` (see the module docstring);
    ``seal_model=False`` leaves the model out (a directory only checked, never kept)."""
    started = time.perf_counter()
    study_id, status = evidence.study_id, evidence.status
    config = parse_study(status["config"])
    ledger, signed, export = evidence.ledger, evidence.signed, evidence.export
    private_dir(out)
    witnesses = _write_audit(out, export)
    arrays, _ = parse_tensors(evidence.model)
    final = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    if seal_model:
        blob = Envelope(open_keyring()).encrypt(parameters_to_bytes(final), name=MODEL_FILE)
        atomic_write(out / MODEL_FILE, blob)
    released = status.get("standardisation") or {}
    if released.get("mean") is not None:
        _write_json(out / "standardisation.json", released)
    rounds = [r for r in status["rounds"] if r["status"] in ("aggregated", "quorum_not_met")]
    evaluations = {"0": status.get("initial_evaluation")} | {
        str(r["round"]): r.get("evaluation") for r in rounds
    }
    _write_json(out / "metrics.json", {"study_id": study_id, "rounds": evaluations})
    _write_json(out / "privacy.json", ledger)
    reports_dir = out / "site-reports"
    reports_dir.mkdir(exist_ok=True)
    for report in signed["reports"]:
        _write_json(reports_dir / f"{report['site']}.json", report)

    columns = config.data.model_columns() or []
    accepted = {s: p for s, p in status["participation"].items() if p["status"] == "accepted"}
    final_eval = rounds[-1].get("evaluation") if rounds else None
    results = network_run(
        {
            "dataset": {
                "name": config.data.dataset or "site data",
                "rows": sum(int(p["num_examples"]) for p in accepted.values()),
                "sites": max(1, len(accepted)),
                "features": list(columns),
                "outcome": config.data.outcome or "outcome",
                "train_rows_per_site": {s: int(p["num_examples"]) for s, p in accepted.items()},
                "test_rows": int(((final_eval or {}).get("aggregate") or {}).get("rows", 0)),
            },
            "history": [
                {
                    "round": r["round"],
                    "status": r["status"],
                    "sites": r.get("sites", []),
                    "failed": r.get("failed", []),
                    "num_examples": r.get("num_examples", 0),
                    # no site evaluated this model: NaN, which the results write as null
                    **{
                        k: math.nan if v is None else v
                        for k, v in _metrics(r.get("evaluation")).items()
                    },
                }
                for r in rounds
            ],
            "federated": _metrics(final_eval),
            "final_parameters": final,
            "elapsed_s": time.perf_counter() - started,
            "secure_aggregation": _ckks_summary(
                config, [r["secure_aggregation"] for r in rounds if "secure_aggregation" in r]
            )
            if config.secure_aggregation.protocol == "ckks"
            else _secagg_summary(
                [r["secure_aggregation"] for r in rounds if "secure_aggregation" in r]
            ),
            "sites": signed["reports"] or None,
            "site_keys": signed["site_keys"] or None,
            "deployment": {
                "transport": "https (TLS 1.2+, mutual TLS for sites)",
                "coordinator": evidence.coordinator,
                "study_id": study_id,
                "audit_log": AUDIT_LOG,
                "witnesses": witnesses,
                "rounds": [
                    {k: r.get(k) for k in ("round", "status", "sites", "failed", "num_examples")}
                    for r in rounds
                ],
            },
            "standardisation": released,
        }
    )
    governance = GovernanceReport(
        purpose=config.study.purpose,
        shared_columns=list(columns),
        # every site that joined allowed exactly the requested columns for the purpose (a
        # site refuses a study asking for any other; the refusals are in the audit log)
        minimisation=MinimisationReport(
            purpose=config.study.purpose, requested=columns, kept=columns, dropped={}
        ),
        encryption_at_rest=True,  # sealed in the coordinator's store, enveloped here
        audit_log=AUDIT_LOG,
        audit_size=int(export["size"]),
        policy=_floor(signed["reports"]),
    )
    privacy = _privacy_summary(config, ledger, out)
    summary = summarise(config, results, privacy=privacy, governance=governance, run_dir=out)
    _write_json(out / "results.json", summary.model_dump(mode="json"))
    return summary
