"""``tutela dp audit``: an empirical lower bound on a study's epsilon from one training run.

The study is the flagship (``tutela demo``'s hospitals on the Pima data) or the study a run
directory recorded (its ``results.json`` configuration, the same data split). The audit
re-trains it once with canaries (:mod:`tutela.dp.audit`):

- ``--mode white-box``: Dirac gradient canaries on one site's DP-SGD optimiser (the site
  with the most rows), with that site's sampling rate, clip, steps over the whole study and
  a noise multiplier calibrated to its DP-SGD share of the study's epsilon;
- ``--mode black-box``: input canaries (mislabelled copies of training records, or
  records drawn over the declared feature ranges) spread over the sites, the whole
  federated study run as configured (DP, secure aggregation), scored by their loss on the
  released model.

With ``--run-dir`` the result is also written to the run's ``results.json``
(``empirical_audit``), beside the accounted epsilon.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import typer

_STANDARDISATION_SHARE = 0.1  # the flagship's sites spend the rest of epsilon on DP-SGD
_DEFAULT_CANARIES = {"white-box": 1000, "black-box": 100}


class AuditModeOpt(StrEnum):
    WHITE_BOX = "white-box"
    BLACK_BOX = "black-box"


class CanaryKindOpt(StrEnum):
    MISLABELLED = "mislabelled"
    OUT_OF_DISTRIBUTION = "out-of-distribution"


def _study_config(run_dir: Path | None, epsilon: float | None, rounds: int | None) -> Any:
    """The audited study: the run directory's recorded configuration, or the flagship."""
    from tutela.errors import ConfigError
    from tutela.fl.config import parse_study
    from tutela.fl.recipes import flagship_config
    from tutela.governance.results import load_results

    if run_dir is None:
        config = flagship_config(epsilon=epsilon, rounds=rounds)
    else:
        results = load_results(run_dir / "results.json")
        doc = results.config.model_dump(mode="json")
        if doc["data"].get("dataset") is None and doc["data"].get("path") is None:
            raise ConfigError(
                f"{run_dir} was trained on data passed in memory; only runs of a shipped "
                "dataset or a table file can be audited from their run directory"
            )
        if epsilon is not None:
            raise ConfigError("--epsilon comes from the run directory's study; leave it out")
        if rounds is not None:
            doc["training"]["rounds"] = rounds
        config = parse_study(doc)
    return config


def _policy(config: Any, data_columns: list[str]) -> Any:
    from tutela.fl.recipes import study_request
    from tutela.governance.minimisation import SitePolicy

    return SitePolicy.accepting(study_request(config, data_columns))


def _prepared(config: Any) -> tuple[Any, Any]:
    from tutela.fl.study import load_study_dataset, prepare_data, study_columns

    dataset = load_study_dataset(config)
    columns = (
        list(config.data.columns)
        if config.data.columns is not None
        else study_columns(config, dataset)
    )
    policy = _policy(config, columns)
    return prepare_data(config, policy, dataset=dataset), policy


def white_box(
    config: Any,
    canaries: int,
    *,
    confidence: float,
    guesses: int | None,
    seed: int | None,
) -> Any:
    """Audit one site's DP-SGD (the site with the most rows) as the study configures it."""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from tutela.dp.audit import audit_dp_sgd
    from tutela.errors import ConfigError
    from tutela.fl.study import study_model_factory
    from tutela.hazmat.rng import SecureRandom

    p = config.privacy
    if p.mode != "sample":
        raise ConfigError(
            "white-box mode audits DP-SGD at a site: the study needs sample-level DP "
            "(--epsilon for the flagship, or a run with privacy mode 'sample')"
        )
    data, _ = _prepared(config)
    rows = max(data.site_rows, key=len)
    x = data.x[rows].astype(np.float32)
    mean, std = x.mean(0), x.std(0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    y = data.y[rows].astype(np.float32)
    model = study_model_factory(config, x.shape[1])()
    t = config.training

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(out.reshape(-1), target)

    return audit_dp_sgd(
        model,
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        loss_fn=loss_fn,
        canaries=canaries,
        epochs=t.rounds * t.local_epochs,
        batch_size=t.batch_size,
        learning_rate=t.learning_rate,
        max_grad_norm=p.max_grad_norm,
        target_epsilon=(1 - _STANDARDISATION_SHARE) * float(p.epsilon),
        delta=p.delta,
        confidence=confidence,
        k_plus=guesses,
        k_minus=guesses,
        rng=SecureRandom(seed) if seed is not None else None,
    )


def _canary_records(
    config: Any, data: Any, kind: CanaryKindOpt, m: int, rng: Any
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    from tutela.dp.audit import mislabelled_canaries, out_of_distribution_canaries

    train = np.concatenate(data.site_rows)
    if kind is CanaryKindOpt.MISLABELLED:
        return mislabelled_canaries(data.x[train], data.y[train], m, rng)
    bounds = config.data.feature_bounds or {}
    lo = [
        float(bounds[c][0]) if c in bounds else float(data.x[train, i].min())
        for i, c in enumerate(data.columns)
    ]
    hi = [
        float(bounds[c][1]) if c in bounds else float(data.x[train, i].max())
        for i, c in enumerate(data.columns)
    ]
    return out_of_distribution_canaries(lo, hi, m, rng)


def black_box(
    config: Any,
    canaries: int,
    *,
    kind: CanaryKindOpt,
    confidence: float,
    guesses: int | None,
    seed: int | None,
) -> Any:
    """Audit the whole federated study with input canaries spread over its sites."""
    from tutela.dp.audit import audit_black_box
    from tutela.fl.models import set_parameters
    from tutela.fl.recipes import run_configured_study
    from tutela.fl.study import study_model_factory
    from tutela.fl.summary import StudyRun
    from tutela.fl.task import Task, predict
    from tutela.hazmat.rng import SecureRandom

    rng = SecureRandom(seed) if seed is not None else SecureRandom()
    data, policy = _prepared(config)
    cx, cy = _canary_records(config, data, kind, canaries, rng)
    delta = config.privacy.delta if config.privacy.mode != "none" else 0.0

    def train(included: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.float64], float | None]:
        chosen = np.flatnonzero(included)
        site_of = rng.integers(len(data.site_rows), size=len(chosen))
        first = len(data.y)
        site_rows = [
            np.concatenate([rows, first + np.flatnonzero(site_of == s)]).astype(np.int64)
            for s, rows in enumerate(data.site_rows)
        ]
        augmented = replace(
            data,
            x=np.concatenate([data.x, cx[chosen]]).astype(np.float32),
            y=np.concatenate([data.y, cy[chosen]]).astype(np.int64),
            site_rows=site_rows,
        )
        runs: list[StudyRun] = []
        results = run_configured_study(
            config, policy=policy, data=augmented, with_baselines=False, on_complete=runs.append
        )
        run = runs[0]
        model = study_model_factory(config, cx.shape[1])()
        set_parameters(model, run.final_parameters)
        features = cx
        if run.standardisation is not None:
            mean = np.asarray(run.standardisation["mean"], np.float32)
            std = np.asarray(run.standardisation["std"], np.float32)
            features = (cx - mean) / std
        prob = np.clip(predict(model, features, Task.BINARY).reshape(-1), 1e-12, 1 - 1e-12)
        losses = -np.where(cy == 1, np.log(prob), np.log1p(-prob))
        claimed = None if results.privacy is None else float(results.privacy.epsilon)
        return losses, claimed

    return audit_black_box(
        train,
        canaries,
        delta=delta,
        confidence=confidence,
        k_plus=guesses,
        k_minus=guesses,
        rng=rng,
    )


def _record(run_dir: Path, result: Any, canary_kind: str) -> None:
    """Write the audit into the run's ``results.json`` (atomic, validated)."""
    from tutela.fl.recipes import write_json_atomic
    from tutela.governance.results import EmpiricalAudit, load_results

    path = run_dir / "results.json"
    results = load_results(path)
    audit = EmpiricalAudit(
        method="one-run",
        mode=result.mode.value,
        canary_kind=canary_kind,
        canaries=result.canaries,
        included=result.included,
        guesses=result.guesses,
        correct=result.correct,
        confidence=result.confidence,
        delta=result.delta,
        epsilon_lower_bound=result.epsilon_lower_bound,
        accounted_epsilon=None if results.privacy is None else float(results.privacy.epsilon),
    )
    updated = results.model_copy(update={"empirical_audit": audit})
    write_json_atomic(path, updated.model_dump(mode="json"))


def _table(result: Any, canary_kind: str, study: str) -> str:
    claimed = result.claimed_epsilon
    rows = [
        ("study", study),
        ("mode", f"{result.mode.value} ({canary_kind} canaries)"),
        ("canaries", f"{result.canaries} ({result.included} included)"),
        ("guesses", f"{result.guesses} ({result.k_plus} in, {result.k_minus} out)"),
        ("correct", str(result.correct)),
        ("confidence", f"{result.confidence:g}"),
        ("delta", f"{result.delta:g}"),
        ("epsilon lower bound", f"{result.epsilon_lower_bound:.4g}"),
        ("accounted epsilon", "none (no DP)" if claimed is None else f"{claimed:.4g}"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    if result.contradicts_claim:
        lines.append("the lower bound EXCEEDS the accounted epsilon: the accounting is wrong")
    return "\n".join(lines)


def audit_cmd(
    mode: AuditModeOpt = typer.Option(AuditModeOpt.WHITE_BOX, "--mode", help="Canary kind."),
    canaries: int | None = typer.Option(
        None, "--canaries", help="Canaries m (default 1000 white-box, 100 black-box)."
    ),
    guesses: int | None = typer.Option(
        None, "--guesses", help="Guesses on each side, fixed before scoring (default m/4)."
    ),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence of the bound."),
    epsilon: float | None = typer.Option(
        None, "--epsilon", help="The flagship's sample-level epsilon (none: no DP)."
    ),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", help="Audit the study this run directory recorded, and record it."
    ),
    rounds: int | None = typer.Option(None, "--rounds", help="Override the study's rounds."),
    canary_kind: CanaryKindOpt = typer.Option(
        CanaryKindOpt.MISLABELLED, "--canary-kind", help="Black-box input canaries."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed the CSPRNG (reproducible)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Empirical lower bound on epsilon from one training run with canaries.

    Privacy: the re-training with canaries is the auditor's own run; a lower bound above the
    accounted epsilon means the implementation or its accounting is wrong (at the stated
    confidence); one below it is not a proof of privacy.
    """
    m = canaries if canaries is not None else _DEFAULT_CANARIES[mode.value]
    if m < 1:
        raise ValueError(f"--canaries must be positive, got {m}")
    if guesses is not None and not 0 <= 2 * guesses <= m:
        raise ValueError(f"--guesses must be between 0 and half the canaries ({m // 2})")
    if not (math.isfinite(confidence) and 0 < confidence < 1):
        raise ValueError(f"--confidence must be in (0, 1), got {confidence}")
    if rounds is not None and rounds < 1:
        raise ValueError(f"--rounds must be positive, got {rounds}")
    if run_dir is not None and not (run_dir / "results.json").is_file():
        raise ValueError(f"{run_dir} is not a run directory (no results.json)")
    config = _study_config(run_dir, epsilon, rounds)
    if mode is AuditModeOpt.WHITE_BOX:
        kind = "dirac-gradient"
        result = white_box(config, m, confidence=confidence, guesses=guesses, seed=seed)
    else:
        kind = canary_kind.value
        result = black_box(
            config, m, kind=canary_kind, confidence=confidence, guesses=guesses, seed=seed
        )
    if run_dir is not None:
        _record(run_dir, result, kind)
    payload = {**result.to_dict(), "canary_kind": kind, "study": config.study.name}
    if as_json:
        typer.echo(json.dumps(payload, sort_keys=True))
    else:
        typer.echo(_table(result, kind, config.study.name))
