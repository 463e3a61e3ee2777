"""``tutela demo`` and ``tutela study run``: the flagship federated study."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from tutela.governance.results import RunResults

study_app = typer.Typer(help="Run federated studies from study files.", no_args_is_help=True)

QUICK_ROUNDS = 10


class BackendChoice(StrEnum):
    """``tutela study run --backend``: where the simulated sites train."""

    IN_PROCESS = "in-process"
    RAY = "ray"


class PrivacyChoice(StrEnum):
    """``tutela demo --privacy``: the study's differential-privacy mode."""

    NONE = "none"
    SAMPLE = "sample"
    CLIENT = "client"


class AggregationChoice(StrEnum):
    """``tutela demo --secure-aggregation``: how the sites' updates are summed."""

    SECAGG_PLUS = "secagg+"
    CKKS = "ckks"
    NONE = "none"


NOT_PRIVATE = (
    "this run was NOT differentially private: the released model carries no formal bound on "
    "what it reveals about any patient (run with privacy.mode and epsilon, or "
    "`tutela demo --epsilon E`)"
)


def _print_summary(console: Console, results: RunResults) -> None:
    from tutela.governance.results import SecAggPlusReport

    ds = results.dataset
    table = Table(
        title=f"{ds.name}: {ds.rows} patients, {ds.sites} hospitals, "
        f"{results.rounds} rounds (held-out test set: {ds.test_rows} patients)"
    )
    table.add_column("model")
    for col in ("accuracy", "ROC AUC", "log loss"):
        table.add_column(col, justify="right")
    rows = [
        ("federated", results.federated),
        ("centralised (pooled, upper bound)", results.centralized),
        ("local-only (mean over hospitals)", results.local_only),
    ]
    for label, m in rows:
        if m is not None:
            table.add_row(label, *(_score(v) for v in (m.accuracy, m.auc, m.log_loss)))
    console.print(table)
    privacy = results.privacy
    if privacy is None:
        console.print(f"privacy: none — {NOT_PRIVATE}")
    else:
        console.print(
            f"privacy: {privacy.mechanism} — epsilon {privacy.epsilon:.3g}, "
            f"delta {privacy.delta:.1e} ({privacy.accountant.value} accountant)"
        )
    secagg = results.secure_aggregation
    if isinstance(secagg, SecAggPlusReport):
        console.print(
            f"secure aggregation: {secagg.protocol.value} (n={secagg.n}, k={secagg.k}, "
            f"threshold={secagg.threshold})"
        )
    elif secagg is not None:
        console.print(
            f"secure aggregation: {secagg.protocol.value} (n={secagg.n}, error bound "
            f"{secagg.approximation_error_bound:.2g}, {secagg.bytes_per_contribution} bytes per "
            "contribution; the sites hold the key, the coordinator can decrypt nothing)"
        )


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _network_runner(sites_as_processes: bool) -> Any:
    """The deployment layer's runner: a TLS coordinator on loopback and one agent per site."""

    def runner(config: Any, deployment_dir: Path) -> Mapping[str, Any]:
        from tutela.server.deploy import run_study_over_network

        return run_study_over_network(
            config, deployment_dir, sites_as_processes=sites_as_processes, with_baselines=False
        )

    return runner


def execute(
    config: Any,
    *,
    out: Path | None,
    run_dir: Path | None,
    console: Console,
    network: bool = False,
    sites_as_processes: bool = True,
    policy: Any = None,
    backend: Any = None,
) -> RunResults:
    """Run a study with a progress bar, print the summary, write the run directory."""
    from tutela.fl.recipes import run_configured_study, write_json_atomic

    if network:
        how = "site processes" if sites_as_processes else "site agents on threads"
        console.print(
            f"running through the coordinator on loopback (HTTPS, mutual TLS, {how}); "
            "--in-process skips the network"
        )

    rounds = config.training.rounds
    with Progress(
        TextColumn("[bold]federated training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("rounds", total=rounds, status="")

        def on_round(record: Any) -> None:
            m = record.metrics
            status = (
                f"auc {m.get('auc', float('nan')):.3f} acc {m.get('accuracy', float('nan')):.3f}"
            )
            progress.update(task, advance=1, status=status)

        results = run_configured_study(
            config,
            progress=on_round,
            run_dir=run_dir,
            network=_network_runner(sites_as_processes) if network else None,
            policy=policy,
            backend=backend,
        )
    _print_summary(console, results)
    if out is not None:
        write_json_atomic(out, results.model_dump(mode="json"))
        console.print(f"results written to {out}")
    if run_dir is not None:
        console.print(f"run directory: {run_dir}")
        _pin_audit_key(console)
        _pin_witnessed_log(console, results)
        from tutela.governance.report import write_report

        report = write_report([run_dir])  # after pinning: verified under the user's keys
        made = f"{report.html}" + (f" and {report.pdf}" if report.pdf else "")
        console.print(f"report: {made}", soft_wrap=True, highlight=False)
    return results


def _pin_audit_key(console: Console) -> None:
    """Pin the key that signed the run's audit checkpoints in the user's trust store, so
    `tutela comply` and `tutela audit verify` here accept the run; say where, and what to pin
    elsewhere."""
    from tutela.governance.audit import VerifierKey
    from tutela.governance.home import signing_key
    from tutela.governance.trust import pin

    key = VerifierKey.of(signing_key())
    where = pin(key)
    console.print(f"audit log signed by {key.encode()}", soft_wrap=True, highlight=False)
    console.print(
        f"  pinned in {where}; an auditor elsewhere pins it with "
        "`tutela audit trust add <key>` after comparing it out of band",
        soft_wrap=True,
        highlight=False,
    )


def _pin_witnessed_log(console: Console, results: RunResults) -> None:
    """Name the coordinator's audit key and its site witnesses (the deployment ran them);
    pin them like the run's key, and say how to check the cosignatures."""
    from tutela.governance.checkpoint import VerifierKey
    from tutela.governance.trust import pin

    extra = (results.deployment.model_extra if results.deployment is not None else None) or {}
    witnessed = extra.get("witnesses")
    if not witnessed:
        return
    keys = [VerifierKey.parse(k) for k in (witnessed["audit_key"], *witnessed["keys"])]
    where = [pin(key) for key in keys][-1]
    lines = [
        f"coordinator audit log signed by {keys[0].encode()} (pinned in {where})",
        f"witnessed by {len(keys) - 1} site(s), their keys pinned in {where}:",
        *(f"  {key.encode()}" for key in keys[1:]),
        f"  check: tutela audit verify {extra.get('audit_log')} --witnesses "
        f"{witnessed['cosignatures']} --witness-quorum {len(keys) - 1}",
    ]
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)


def _default_run_dir(name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / f"{name}-{stamp}"


def demo(
    quick: bool = typer.Option(
        False, "--quick", help=f"Fewer rounds ({QUICK_ROUNDS}); under a minute."
    ),
    out: Path | None = typer.Option(None, "--out", help="Write results JSON here."),
    epsilon: float | None = typer.Option(
        None, "--epsilon", help="Train under DP with this epsilon (alone: sample-level DP)."
    ),
    privacy: PrivacyChoice | None = typer.Option(
        None,
        "--privacy",
        help="DP mode: none, sample (DP-SGD at each hospital, per patient) or client "
        "(DP-FedAvg, per hospital); sample and client need --epsilon.",
    ),
    adaptive_clipping: bool = typer.Option(
        False, "--adaptive-clipping", help="Client-level DP: track the median update norm."
    ),
    secure_aggregation: AggregationChoice = typer.Option(
        AggregationChoice.SECAGG_PLUS,
        "--secure-aggregation",
        help="How updates are summed: secagg+ (masked sum), ckks (encrypted under a key the "
        "hospitals hold) or none.",
    ),
    dataset: str | None = typer.Option(None, "--dataset", help="Override the dataset."),
    sites: int | None = typer.Option(None, "--sites", help="Number of hospitals."),
    rounds: int | None = typer.Option(None, "--rounds", help="Number of rounds."),
    seed: int | None = typer.Option(None, "--seed", help="Study seed."),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", help="Run directory (default runs/<name>-<time>)."
    ),
    in_process: bool = typer.Option(
        False, "--in-process", help="Skip the network: sites run in this process (fastest)."
    ),
) -> None:
    """Run the flagship study: hospitals predicting a disease outcome, federated.

    By default: a TLS coordinator on loopback, one site-agent process per hospital, SecAgg+
    (``--secure-aggregation ckks``: CKKS under a keyring only the hospitals hold).
    """
    from tutela.errors import ConfigError
    from tutela.fl.recipes import flagship_config

    try:
        config = flagship_config(
            quick=quick, epsilon=epsilon, dataset=dataset, sites=sites, rounds=rounds, seed=seed,
            privacy=privacy.value if privacy is not None else None,
            adaptive_clipping=adaptive_clipping, secure_aggregation=secure_aggregation.value,
        )  # fmt: skip
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    execute(
        config,
        out=out,
        run_dir=run_dir or _default_run_dir("demo"),
        console=Console(),
        network=not in_process,
    )


@study_app.command("run")
def study_run(
    path: Path = typer.Argument(..., help="Study TOML file."),
    out: Path | None = typer.Option(None, "--out", help="Write results JSON here."),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run directory."),
    policy: Path | None = typer.Option(
        None,
        "--policy",
        help="Site policy TOML every simulated site enforces (default: the flagship's).",
    ),
    backend: BackendChoice = typer.Option(
        BackendChoice.IN_PROCESS, "--backend", help="Where the simulated sites train."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="An existing Ray cluster (default: a local instance)."
    ),
) -> None:
    """Run the study described by a TOML file (in process or on Ray; each simulated site
    enforces the site policy)."""
    from tutela.fl.config import load_study
    from tutela.fl.ray_backend import RayBackend
    from tutela.governance.minimisation import SitePolicy

    if ray_address is not None and backend is not BackendChoice.RAY:
        raise typer.BadParameter("--ray-address needs --backend ray")
    config = load_study(path)
    execute(
        config,
        out=out,
        run_dir=run_dir or _default_run_dir(config.study.name),
        console=Console(),
        policy=SitePolicy.from_toml(policy) if policy is not None else None,
        backend=RayBackend(address=ray_address) if backend is BackendChoice.RAY else None,
    )


@study_app.command("validate")
def study_validate(path: Path = typer.Argument(..., help="Study TOML file.")) -> None:
    """Check a study file and print its fully resolved configuration."""
    from tutela.fl.config import load_study

    typer.echo(json.dumps(load_study(path).resolved(), indent=2))


model_app = typer.Typer(help="Models named by a factory: print what a study and a site pin.")


@model_app.command("hash")
def model_hash(
    factory: str = typer.Argument(..., help="package.module:function"),
    path: list[Path] = typer.Option(
        [],
        "--path",
        help="Directory to look in before the installed packages (repeatable; "
        "default: the current directory).",
    ),
) -> None:
    """Print the SHA-256 of a factory's module source (without importing it): the
    ``model.source_sha256`` of a study and the ``sha256`` of a site policy's ``[[models]]``.
    The file hashed is printed beside the hash: check it is the one the sites will import."""
    from tutela.fl.models import factory_source_path, factory_source_sha256

    search = path or [Path.cwd()]
    typer.echo(f"{factory_source_sha256(factory, search)}  {factory_source_path(factory, search)}")


def register(app: typer.Typer) -> None:
    """Attach ``demo``, ``study`` and ``model`` to the root app."""
    app.command("demo")(demo)
    app.add_typer(study_app, name="study")
    app.add_typer(model_app, name="model")
