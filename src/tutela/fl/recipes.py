"""Safe, high-level recipes: the flagship configuration and a fully composed study run.

:func:`run_configured_study` composes the domain packages around the round engine: the site
policy and data minimisation (governance), the privacy pipeline (DP-SGD at the sites or
DP-FedAvg at the coordinator, every spend through the privacy ledger), secure aggregation
(SecAgg+), the hash-chained audit log, and encryption at rest of what the run stores. It
writes the run directory that ``tutela comply`` and an auditor read:

    RUN_DIR/results.json             the typed results (tutela.governance.results.RunResults)
    RUN_DIR/model.safetensors.enc    the global model, AES-256-GCM envelope (name-bound)
    RUN_DIR/standardisation.json     the mean and std the sites standardised features with
    RUN_DIR/audit.sqlite             RFC 6962 Merkle audit log of everything the run did
    RUN_DIR/audit.checkpoint         C2SP signed checkpoint (origin, tree size, root)
    RUN_DIR/ledger.sqlite            the privacy ledger (when DP is on)
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tutela.dp.ledger import PrivacyLedger
from tutela.errors import ConfigError, PolicyViolation
from tutela.fl.ckks import CkksAggregator, min_contributions
from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.engine import RoundRecord, UpdateAggregator
from tutela.fl.models import get_parameters
from tutela.fl.privacy import (
    SampleLevelDP,
    SecureAggregator,
    client_level_dp,
    no_ledger_summary,
    secagg_config_from_study,
)
from tutela.fl.records import parameters_to_bytes
from tutela.fl.rounds import RoundStatus
from tutela.fl.strategy import Strategy
from tutela.fl.study import (
    StudyData,
    baselines,
    load_study_dataset,
    prepare_data,
    prepare_sites,
    run_study,
    study_columns,
    study_model_factory,
)
from tutela.fl.summary import StudyRun, network_run, summarise
from tutela.governance._files import atomic_write
from tutela.governance.audit import RUN_CHECKPOINT, AuditLog
from tutela.governance.envelope import Envelope
from tutela.governance.home import open_keyring
from tutela.governance.home import signing_key as _signing_key
from tutela.governance.minimisation import PolicyDecision, SitePolicy, StudyRequest
from tutela.governance.results import GovernanceReport, MinimisationReport, PolicyFloor, RunResults

if TYPE_CHECKING:
    from tutela.fl.ray_backend import RayBackend

FLAGSHIP: dict[str, Any] = {
    "study": {"name": "hospital-diabetes", "purpose": "disease-outcome-prediction", "seed": 0},
    "data": {
        "dataset": "pima-diabetes",
        "sites": 5,
        "partition": "dirichlet",
        "alpha": 0.5,
        "test_fraction": 0.25,
        "min_site_rows": 20,
        # declared (clinically plausible, not fitted) ranges: under SecAgg+ or DP
        # sites clip to them for the standardisation statistics, and DP noise scales with them
        "feature_bounds": {
            "pregnancies": [0, 20],
            "glucose": [0, 250],
            "diastolic_bp": [0, 150],
            "skinfold": [0, 100],
            "bmi": [10, 70],
            "pedigree": [0, 2.5],
            "age": [18, 100],
        },
    },
    "model": {"kind": "logistic"},
    "training": {
        "rounds": 30,
        "local_epochs": 2,
        "batch_size": 32,
        "learning_rate": 0.1,
        "min_fit_sites": 3,
        "min_quorum": 3,
    },
    "strategy": {"name": "fedavg"},
    "secure_aggregation": {"protocol": "secagg+"},
}

ACTOR = "coordinator"
# PLD grid of the study ledgers: 10x faster than 1e-4 and still a pessimistic (upper) bound;
# on the flagship the reported epsilon moves in the fifth significant digit.
LEDGER_PLD_GRID = 1e-3


def flagship_config(
    *,
    quick: bool = False,
    epsilon: float | None = None,
    dataset: str | None = None,
    sites: int | None = None,
    rounds: int | None = None,
    seed: int | None = None,
    secure_aggregation: bool | Literal["secagg+", "ckks", "none"] = True,
    privacy: str | None = None,
    adaptive_clipping: bool = False,
) -> StudyConfig:
    """The flagship study: hospitals predicting diabetes, federated, on embedded defaults.

    ``privacy`` is the DP mode (``none``, ``sample``, ``client``); an ``epsilon`` alone means
    sample-level DP. ``adaptive_clipping`` tracks the median update norm (client-level DP).
    ``secure_aggregation`` names the protocol (``secagg+``, ``ckks``, ``none``); ``True`` is
    SecAgg+, ``False`` none.

    Raises:
        ConfigError: a DP mode without an epsilon, an epsilon without DP, or adaptive
            clipping outside client-level DP.
    """
    mode = privacy if privacy is not None else ("sample" if epsilon is not None else "none")
    if mode not in ("none", "sample", "client"):
        raise ConfigError(f"privacy must be none, sample or client, not {mode!r}")
    if mode != "none" and epsilon is None:
        raise ConfigError(f"privacy {mode!r} needs an epsilon (--epsilon)")
    if mode == "none" and epsilon is not None:
        raise ConfigError("an epsilon needs a DP mode: --privacy sample or --privacy client")
    if adaptive_clipping and mode != "client":
        raise ConfigError("adaptive clipping is part of client-level DP (--privacy client)")
    data = json.loads(json.dumps(FLAGSHIP))
    if quick:
        data["training"]["rounds"] = 10
    if rounds is not None:
        data["training"]["rounds"] = rounds
    if dataset is not None:
        data["data"]["dataset"] = dataset
    if sites is not None:
        data["data"]["sites"] = sites
        data["training"]["min_fit_sites"] = min(data["training"]["min_fit_sites"], sites)
        data["training"]["min_quorum"] = min(data["training"]["min_quorum"], sites)
    if seed is not None:
        data["study"]["seed"] = seed
    if mode != "none":
        data["privacy"] = {"mode": mode, "epsilon": epsilon, "delta": 1e-5}
        if adaptive_clipping:
            data["privacy"]["adaptive_clipping"] = True
    protocol: str
    if isinstance(secure_aggregation, bool):
        protocol = "secagg+" if secure_aggregation else "none"
    else:
        protocol = secure_aggregation
    if protocol not in ("secagg+", "ckks", "none"):
        raise ConfigError(f"secure aggregation must be secagg+, ckks or none, not {protocol!r}")
    data["secure_aggregation"] = {"protocol": protocol}
    return parse_study(data)


def flagship_policy() -> SitePolicy:
    """The site policy every hospital applies in the embedded flagship study."""
    text = resources.files("tutela.fl").joinpath("flagship_policy.toml").read_text("utf-8")
    import tomllib

    return SitePolicy.from_mapping(tomllib.loads(text), source="flagship site policy")


def json_ready(value: Any) -> Any:
    """JSON-ready copy: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON through the one private atomic writer: never half-written."""
    atomic_write(path, (json.dumps(json_ready(data), indent=2) + "\n").encode("utf-8"))


def build_aggregator(config: StudyConfig) -> UpdateAggregator | None:
    """The aggregation the study asks for (``None`` means plain averaging)."""
    if config.secure_aggregation.protocol == "secagg+":
        return SecureAggregator(secagg_config_from_study(config.secure_aggregation))
    if config.secure_aggregation.protocol == "ckks":
        # in process the key ceremony is played here: the keyring goes to the simulated
        # sites, the public context to the coordinator's object
        return CkksAggregator.ceremony(
            config.study.name, min_contributions=min_contributions(config.training.min_quorum)
        )
    return None


@dataclass
class PrivacyPlan:
    """The privacy pieces a study run composes (all optional)."""

    ledger: PrivacyLedger
    aggregator: UpdateAggregator | None = None
    privatize: Callable[[str], Any] | None = None
    baseline_privatize: Callable[[str], Any] | None = None
    report: Callable[[], dict[str, Any]] | None = None
    secure_report: Callable[[], dict[str, Any] | None] | None = None
    description: dict[str, Any] = field(default_factory=dict)
    restore: Callable[[Sequence[Mapping[str, Any]]], None] | None = None
    """Replays the rounds a coordinator released into this plan's ledger and report
    (client-level DP through the network: :meth:`ClientLevelDP.restore`)."""
    site_ledger: Callable[[str], dict[str, Any]] = lambda _site: no_ledger_summary()
    """``site -> summary of the site's own ledger scope`` (what each site signs in process;
    sites that spend nothing themselves report no ledger)."""


def build_privacy(
    config: StudyConfig,
    ledger: PrivacyLedger,
    scratch: Path,
    aggregator: UpdateAggregator | None,
    data: StudyData | None = None,
    model_factory: Callable[[], Any] | None = None,
) -> PrivacyPlan:
    """Compose the configured DP mode with the ledger and the aggregation.

    Baselines (centralised and local-only) are trained with the same privacy as the sites but
    charged to a scratch ledger: they are comparisons a simulation can afford, not releases.
    """
    p, t = config.privacy, config.training
    if p.mode == "none" or p.epsilon is None:
        return PrivacyPlan(ledger, aggregator)
    name = config.study.name
    if p.mode == "sample":
        data = data if data is not None else prepare_data(config)
        rows = {n: len(r) for n, r in zip(data.site_names, data.site_rows, strict=True)}
        model = (model_factory or study_model_factory(config, len(data.columns)))()
        common: dict[str, Any] = {
            "dimension": sum(int(v.numel()) for v in model.parameters()),
            "grid": LEDGER_PLD_GRID,
            "epsilon": p.epsilon,
            "delta": p.delta,
            "max_grad_norm": p.max_grad_norm,
            "accountant": p.accountant,
            "batch_size": t.batch_size,
        }
        sites_dp = SampleLevelDP(
            ledger, name, rounds=t.rounds, local_epochs=t.local_epochs, site_rows=rows, **common
        )
        baseline_dp = SampleLevelDP(
            PrivacyLedger(
                scratch / "baseline-ledger.sqlite", value_discretization_interval=LEDGER_PLD_GRID
            ),
            f"{name}-baselines",
            rounds=1,
            local_epochs=t.rounds * t.local_epochs,
            site_rows={**rows, "pooled": sum(rows.values())},
            **common,
        )
        return PrivacyPlan(
            ledger,
            aggregator,
            sites_dp.hook,
            baseline_dp.hook,
            sites_dp.report,
            None,
            {
                "mode": "sample",
                "epsilon": p.epsilon,
                "delta": p.delta,
                "noise_multipliers": sites_dp.noise_multipliers,
            },
            site_ledger=sites_dp.ledger_summary,
        )
    if config.secure_aggregation.protocol == "ckks":
        raise ConfigError(
            "client-level DP with CKKS aggregation is not supported; use secure_aggregation "
            "protocol 'secagg+' (distributed noise) or 'none' (noise at the coordinator)"
        )
    client_dp = client_level_dp(config, ledger)
    client_dp.simulated_site_ledgers = True  # in process the sites' own ledgers live here
    return PrivacyPlan(
        ledger,
        client_dp,
        None,
        None,
        client_dp.report,
        client_dp.secure_report,
        {
            "mode": "client",
            "epsilon": p.epsilon,
            "delta": p.delta,
            "noise_multiplier": client_dp.noise_multiplier,
            "expected_sites": client_dp.expected_sites,
        },
        restore=client_dp.restore,
        site_ledger=client_dp.site_ledger,
    )


def _run_over_network(
    config: StudyConfig,
    network: NetworkRunner,
    deployment_dir: Path,
    plan: PrivacyPlan,
    on_round: Callable[[RoundRecord], None],
    data: StudyData,
) -> tuple[StudyRun, Mapping[str, Any] | None]:
    """Rounds through the coordinator; baselines and minimisation computed here as in process.

    Returns the run and its privacy report: what the site agents sent (sample-level DP), or
    the coordinator's released DP-FedAvg rounds replayed into this run's ledger, so the
    report is the in-process one (client-level DP); ``None`` without DP.
    """
    results = network(config, deployment_dir)
    run = network_run(results)
    for record in run.history:
        on_round(record)
    prepared = prepare_sites(config, data)
    initial = get_parameters(prepared.model_factory())
    run = replace(
        run,
        baselines=baselines(config, prepared, initial, plan.baseline_privatize),
        minimisation=data.minimisation,
    )
    privacy = results.get("privacy")
    released = results.get("privacy_rounds")
    if plan.restore is not None and plan.report is not None and released:
        plan.restore(released)
        privacy = plan.report()
    return run, privacy


def study_request(config: StudyConfig, columns: list[str]) -> StudyRequest:
    """What the study asks of each site, for the site policy to judge."""
    p = config.privacy
    return StudyRequest(
        study=config.study.name,
        purpose=config.study.purpose,
        columns=tuple(columns),
        dp_mode=p.mode,
        epsilon=p.epsilon,
        delta=p.delta if p.mode != "none" else None,
        secure_aggregation=config.secure_aggregation.protocol,
        local_epochs=config.training.local_epochs,
        secagg_threshold=config.secure_aggregation.threshold,
        model_factory=config.model.factory,
        model_sha256=config.model.source_sha256,
    )


def precheck(config: StudyConfig, policy: SitePolicy) -> PolicyDecision:
    """What a site with ``policy`` would say to ``config``, before anything runs (the
    compliance gate of a development workflow: ``tutela comply --study S --policy P``).

    The columns judged are the table's own columns of a study with declared roles, the
    declared ``data.columns``, or the shipped dataset's model features.
    """
    roles = config.data.roles() if config.data.path is not None else None
    if roles is not None:
        columns = roles.source_columns
    elif config.data.columns is not None:
        columns = list(config.data.columns)
    else:
        columns = study_columns(config, load_study_dataset(config))
    return policy.evaluate(study_request(config, columns))


NetworkRunner = Callable[[StudyConfig, Path], Mapping[str, Any]]


def run_configured_study(
    config: StudyConfig,
    *,
    progress: Callable[[RoundRecord], None] | None = None,
    run_dir: Path | None = None,
    policy: SitePolicy | None = None,
    network: NetworkRunner | None = None,
    data: StudyData | None = None,
    model_factory: Callable[[], Any] | None = None,
    with_baselines: bool = True,
    strategy: Strategy | None = None,
    on_complete: Callable[[StudyRun], None] | None = None,
    backend: RayBackend | None = None,
) -> RunResults:
    """Run a study with every configured protection; write ``run_dir`` if given.

    Args:
        config: the study.
        progress: called after each round.
        run_dir: where the run directory is written (see the module docstring).
        policy: the site policy (default: the embedded flagship policy).
        network: run the rounds through a real coordinator and site agents instead of in
            process (the deployment layer passes its runner; see
            :func:`tutela.fl.summary.network_run` for what it returns). Baselines, the audit
            log and encryption at rest are composed here either way.
        data: the study's data, already split by site (a library caller's own data;
            default: the configured dataset, loaded and split here).
        model_factory: the model every site trains (a library caller's own builder;
            default: the configured one). In process only.
        with_baselines: also train the centralised and local-only baselines.
        strategy: the strategy instance to run (default: the configured one). In process
            only.
        on_complete: called with the finished run (its final parameters included) before
            the results are summarised.
        backend: train the sites on Ray (:class:`~tutela.fl.ray_backend.RayBackend`); the
            rounds, privacy and secure aggregation stay here. In process only.

    Returns:
        The run's results, as written to ``RUN_DIR/results.json``.

    Raises:
        PolicyViolation: the site policy refuses the study (recorded in the audit log).
    """
    policy = policy if policy is not None else flagship_policy()
    audit = AuditLog.open(run_dir / "audit.sqlite") if run_dir is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        if backend is not None and network is not None:
            raise ConfigError("a study runs through the coordinator or on Ray, not both")
        extras = _Extras(data, model_factory, with_baselines, strategy, on_complete, backend)
        return _run(config, progress, run_dir, policy, audit, network, extras)
    finally:
        if audit is not None:
            audit.close()


@dataclass(frozen=True)
class _Extras:
    """What a library caller brings to a run instead of the configured parts."""

    data: StudyData | None = None
    model_factory: Callable[[], Any] | None = None
    with_baselines: bool = True
    strategy: Strategy | None = None
    on_complete: Callable[[StudyRun], None] | None = None
    backend: RayBackend | None = None


def _governance(
    config: StudyConfig, run: StudyRun, policy: SitePolicy, audit: AuditLog | None
) -> GovernanceReport:
    """The ``governance`` section: purpose, minimisation, the policy floor, the run's records
    (an audit log and encryption at rest exist when the run has a directory)."""
    minimisation = run.minimisation
    return GovernanceReport(
        purpose=config.study.purpose,
        shared_columns=list(run.dataset.features),
        minimisation=MinimisationReport.model_validate(minimisation, strict=False)
        if minimisation is not None
        else None,
        encryption_at_rest=audit is not None,
        audit_log="audit.sqlite" if audit is not None else None,
        audit_size=audit.size if audit is not None else None,
        policy=PolicyFloor(
            dp_required=policy.dp_required,
            max_epsilon=policy.max_epsilon,
            max_delta=policy.max_delta,
            secure_aggregation_required=policy.secure_aggregation_required,
            min_k=policy.min_k,
        ),
    )


def _run(
    config: StudyConfig,
    progress: Callable[[RoundRecord], None] | None,
    run_dir: Path | None,
    policy: SitePolicy,
    audit: AuditLog | None,
    network: NetworkRunner | None = None,
    extras: _Extras | None = None,
) -> RunResults:
    extras = extras if extras is not None else _Extras()
    given, model_factory = extras.data, extras.model_factory

    def log(action: str, resource: str, outcome: str = "success", **details: Any) -> None:
        if audit is not None:
            audit.append(ACTOR, action, resource, outcome, json_ready(details))

    study = config.study.name
    log("study:start", study, config=config.resolved())
    # The run is prepared once: the data is loaded and split here, and every later step
    # (DP calibration, the rounds, the baselines) reads this one copy.
    dataset = None
    roles = config.data.roles() if config.data.path is not None else None
    if given is None:
        dataset = load_study_dataset(config)
        if config.data.columns is None and roles is None:  # record the columns it used
            config = config.with_overrides(data={"columns": study_columns(config, dataset)})
    columns = list(config.data.columns or (given.columns if given is not None else []))
    if roles is not None:  # the policy judges the table's own columns
        columns = roles.source_columns
    decision = policy.evaluate(study_request(config, columns))
    if not decision.allowed:
        log("study:refused", study, "denied", reasons=list(decision.reasons))
        raise PolicyViolation("site policy refuses the study: " + "; ".join(decision.reasons))
    log("policy:accepted", study, findings=[f.message for f in decision.findings])
    data = given if given is not None else prepare_data(config, policy, dataset=dataset)

    def on_round(record: RoundRecord) -> None:
        log(
            "round:complete",
            f"{study}/round/{record.server_round}",
            "success" if record.status is RoundStatus.AGGREGATED else "failure",
            **record.as_dict(),
        )
        if progress is not None:
            progress(record)

    aggregator = build_aggregator(config)
    if aggregator is not None:
        log("secagg:configured", study, protocol=config.secure_aggregation.protocol)
    with tempfile.TemporaryDirectory(prefix="tutela-") as scratch:
        ledger_path = (run_dir or Path(scratch)) / "ledger.sqlite"
        plan = build_privacy(
            config,
            PrivacyLedger(ledger_path, value_discretization_interval=LEDGER_PLD_GRID),
            Path(scratch),
            aggregator,
            data,
            model_factory,
        )
        if plan.description:
            log("privacy:configured", study, **plan.description)
        privacy: Mapping[str, Any] | None
        if network is None:
            run = run_study(
                config,
                progress=on_round,
                aggregator=plan.aggregator,
                policy=policy,
                privatize=plan.privatize,
                baseline_privatize=plan.baseline_privatize,
                site_ledger=plan.site_ledger,
                ledger=plan.ledger,
                data=data,
                model_factory=model_factory,
                with_baselines=extras.with_baselines,
                strategy=extras.strategy,
                backend=extras.backend,
            )
            privacy = plan.report() if plan.report is not None else None
        else:
            deployment = (run_dir or Path(scratch)) / "deployment"
            run, privacy = _run_over_network(config, network, deployment, plan, on_round, data)
            log("deployment:complete", study, **(run.deployment or {}))
        # in process every spend is in the study's ledger; over the network the site agents
        # kept their own ledgers and reported them
        for spend in plan.ledger.records():
            log("privacy:spend", spend.scope, **spend.to_dict())
        if plan.secure_report is not None and network is None:
            run = replace(run, secure_aggregation=plan.secure_report())
    if extras.on_complete is not None:
        extras.on_complete(run)
    log("data:minimise", study, **(run.minimisation or {}))
    if run_dir is not None and audit is not None:
        envelope = Envelope(open_keyring())
        blob = envelope.encrypt(
            parameters_to_bytes(run.final_parameters), name="model.safetensors.enc"
        )
        (run_dir / "model.safetensors.enc").write_bytes(blob)
        if run.standardisation is not None:  # what serving the model must apply first
            write_json_atomic(run_dir / "standardisation.json", run.standardisation)
        log("model:stored", f"{study}/model", encrypted=True, bytes=len(blob))
        log("study:complete", study, federated=run.federated)
    governance = _governance(config, run, policy, audit)
    results = summarise(config, run, privacy=privacy, governance=governance, run_dir=run_dir)
    if run_dir is not None and audit is not None:
        write_json_atomic(run_dir / "results.json", results.model_dump(mode="json"))
        audit.checkpoint(_signing_key()).save(run_dir / RUN_CHECKPOINT)
    return results
