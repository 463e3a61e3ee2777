"""Experiment tracking: a run's metrics and privacy summary as TensorBoard event files
(``tutela report RUN_DIR --tensorboard DIR``) or an MLflow run (``--mlflow URI``), so teams
see federated runs beside their others.

It reads only ``results.json`` (:func:`~tutela.governance.results.load_results`) and writes
through PyTorch's ``SummaryWriter`` (the ``tensorboard`` package) or MLflow's client
(``mlflow-skinny``): the optional ``tracking`` extra (``pip install 'tutela[tracking]'``);
nothing here is needed otherwise.

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

from tutela.errors import ConfigError
from tutela.governance.results import (
    ClientLevelPrivacy,
    Metrics,
    RunResults,
    SampleLevelPrivacy,
    load_results,
)

__all__ = ["export_mlflow", "export_tensorboard", "tracking_scalars", "tracking_summary"]


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


Scalar = tuple[str, float, int]
"""A tracked value: (tag, value, step)."""


def _metrics(prefix: str, metrics: Metrics | None, step: int) -> list[Scalar]:
    if metrics is None:
        return []
    values = ((name, getattr(metrics, name)) for name in ("accuracy", "auc", "log_loss"))
    return [(f"{prefix}/{name}", v, step) for name, v in values if _finite(v)]


def tracking_scalars(results: RunResults) -> list[Scalar]:
    """Every value the exports write, in the order written (the same for each backend)."""
    out: list[Scalar] = []
    for entry in results.history:
        for name in ("accuracy", "auc", "loss"):
            value = getattr(entry, name)
            if _finite(value):
                out.append((f"round/{name}", value, entry.round))
        out.append(("round/num_examples", float(entry.num_examples), entry.round))
        out.append(("round/sites", float(len(entry.sites)), entry.round))
    last = results.rounds
    out += _metrics("final/federated", results.federated, last)
    out += _metrics("final/centralized", results.centralized, last)
    out += _metrics("final/local_only", results.local_only, last)
    p = results.privacy
    if p is not None:
        out += [("privacy/epsilon", p.epsilon, last),
                ("privacy/target_epsilon", p.target_epsilon, last),
                ("privacy/delta", p.delta, last)]  # fmt: skip
        if isinstance(p, SampleLevelPrivacy):
            for site, spent in sorted(p.per_site.items()):
                out.append((f"privacy/site_epsilon/{site}", spent.epsilon, last))
        elif isinstance(p, ClientLevelPrivacy):
            for r in p.rounds:
                out.append(("privacy/round_noise_std", r.noise_std_on_sum, r.round))
                out.append(("privacy/round_clip_norm", r.clip_norm, r.round))
    return out


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
        for tag, value, step in tracking_scalars(results):
            writer.add_scalar(tag, value, step)
        writer.add_text("summary", tracking_summary(results), 0)
    finally:
        writer.close()
    return target


def export_mlflow(run_dir: str | Path, tracking_uri: str) -> str:
    """Log the run in ``run_dir`` to MLflow at ``tracking_uri`` (a server URL, or a
    database URI such as ``sqlite:///mlflow.db``; artifacts go where the server or experiment
    puts them): one MLflow run in the experiment named after the study, with
    every value of :func:`tracking_scalars` as a metric at its step, the study's privacy
    settings as parameters, and the privacy claim as the artifact ``privacy-summary.md``.

    Returns:
        The MLflow run id.

    Raises:
        DataError: no readable, valid ``results.json``.
        ConfigError: the ``mlflow`` client is not installed (the ``tracking`` extra), or
            the tracking server refused the run.
    """
    results = load_results(Path(run_dir) / "results.json")
    try:
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError(
            "the MLflow export needs the mlflow client: pip install 'tutela[tracking]'"
        ) from None
    name = results.config.study.name
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(name)
        experiment = found.experiment_id if found else client.create_experiment(name)
        run = client.create_run(experiment, run_name=f"{name}-{Path(run_dir).name}")
        run_id: str = run.info.run_id
        params = {"study.purpose": results.config.study.purpose,
                  "rounds": str(results.rounds), "sites": str(results.dataset.sites),
                  "secure_aggregation": "none" if results.secure_aggregation is None
                  else str(results.secure_aggregation.protocol.value)}  # fmt: skip
        if results.privacy is not None:
            params.update({"dp.level": str(results.privacy.level),
                           "dp.accountant": str(results.privacy.accountant.value)})  # fmt: skip
        stamp = int(Path(run_dir, "results.json").stat().st_mtime * 1000)
        metrics = [
            Metric(tag, value, stamp, step) for tag, value, step in tracking_scalars(results)
        ]
        for i in range(0, len(metrics), 1000):  # MLflow's batch limit
            client.log_batch(run_id, metrics=metrics[i : i + 1000])
        client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
        client.log_text(run_id, tracking_summary(results), "privacy-summary.md")
        client.set_terminated(run_id)
    except Exception as exc:  # the client raises MlflowException, OSError, HTTP errors
        if isinstance(exc, ConfigError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"MLflow at {tracking_uri} refused the run: {first}") from None
    return run_id
