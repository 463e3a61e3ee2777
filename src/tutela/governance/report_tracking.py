"""Experiment tracking: a run's metrics and privacy summary as TensorBoard event files
(``tutela report RUN_DIR --tensorboard DIR``), so teams see federated runs beside their
others.

It reads only ``results.json`` (:func:`~tutela.governance.results.load_results`) and writes
through PyTorch's ``SummaryWriter``, which needs the ``tensorboard`` package: the optional
``tracking`` extra (``pip install 'tutela[tracking]'``); nothing here is needed otherwise.

What is written, under one run named after the study::

    round/accuracy, round/auc, round/loss, round/num_examples, round/sites   per round
    final/<federated|centralized|local_only>/<accuracy|auc|log_loss>         step = rounds
    privacy/epsilon, privacy/delta, privacy/target_epsilon                   step = rounds
    privacy/site_epsilon/<site>                                              sample-level DP
    privacy/round_noise_std, privacy/round_clip_norm                         client-level DP
    summary (text)                                                           the privacy claim
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tutela.errors import ConfigError
from tutela.governance.results import (
    ClientLevelPrivacy,
    Metrics,
    RunResults,
    SampleLevelPrivacy,
    load_results,
)

__all__ = ["export_tensorboard", "tracking_summary"]


def tracking_summary(results: RunResults) -> str:
    """The run's privacy claim and secure aggregation, as a short Markdown text."""
    lines = [f"**Study** {results.config.study.name} ({results.config.study.purpose}), "
             f"{results.rounds} rounds, {results.dataset.sites} sites"]  # fmt: skip
    p = results.privacy
    if p is None:
        lines.append("**Differential privacy**: none")
    else:
        lines.append(
            f"**Differential privacy**: {p.level}; {p.mechanism}; epsilon {p.epsilon:.4g} "
            f"(target {p.target_epsilon:.4g}), delta {p.delta:.3g}, accountant "
            f"{p.accountant.value}; neighbouring: {p.neighbouring}"
        )
    s = results.secure_aggregation
    lines.append("**Secure aggregation**: " + ("none" if s is None else str(s.protocol.value)))
    return "\n\n".join(lines)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _metrics(writer: Any, prefix: str, metrics: Metrics | None, step: int) -> None:
    if metrics is None:
        return
    for name in ("accuracy", "auc", "log_loss"):
        value = getattr(metrics, name)
        if _finite(value):
            writer.add_scalar(f"{prefix}/{name}", value, step)


def export_tensorboard(run_dir: str | Path, log_dir: str | Path) -> Path:
    """Write the run in ``run_dir`` as TensorBoard events under ``log_dir/<study name>``.

    Returns:
        The directory the event file was written to.

    Raises:
        DataError: no readable, valid ``results.json``.
        ConfigError: the ``tensorboard`` package is not installed (the ``tracking`` extra).
    """
    results = load_results(Path(run_dir) / "results.json")
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "the TensorBoard export needs the tensorboard package: pip install 'tutela[tracking]'"
        ) from None
    target = Path(log_dir) / results.config.study.name
    writer = SummaryWriter(log_dir=str(target))
    try:
        for entry in results.history:
            for name in ("accuracy", "auc", "loss"):
                value = getattr(entry, name)
                if _finite(value):
                    writer.add_scalar(f"round/{name}", value, entry.round)
            writer.add_scalar("round/num_examples", entry.num_examples, entry.round)
            writer.add_scalar("round/sites", len(entry.sites), entry.round)
        last = results.rounds
        _metrics(writer, "final/federated", results.federated, last)
        _metrics(writer, "final/centralized", results.centralized, last)
        _metrics(writer, "final/local_only", results.local_only, last)
        p = results.privacy
        if p is not None:
            writer.add_scalar("privacy/epsilon", p.epsilon, last)
            writer.add_scalar("privacy/target_epsilon", p.target_epsilon, last)
            writer.add_scalar("privacy/delta", p.delta, last)
            if isinstance(p, SampleLevelPrivacy):
                for site, spent in sorted(p.per_site.items()):
                    writer.add_scalar(f"privacy/site_epsilon/{site}", spent.epsilon, last)
            elif isinstance(p, ClientLevelPrivacy):
                for r in p.rounds:
                    writer.add_scalar("privacy/round_noise_std", r.noise_std_on_sum, r.round)
                    writer.add_scalar("privacy/round_clip_norm", r.clip_norm, r.round)
        writer.add_text("summary", tracking_summary(results), 0)
    finally:
        writer.close()
    return target
