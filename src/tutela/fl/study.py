"""Run a whole federated study in process: data, sites, rounds, baselines.

:func:`run_study` returns a :class:`~tutela.fl.summary.StudyRun`;
:func:`tutela.fl.summary.summarise` turns it into the typed results
(:class:`~tutela.governance.results.RunResults`, what ``results.json`` holds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from torch import nn

from tutela.data.datasets import Dataset, DatasetName, load_dataset
from tutela.data.partition import partition, train_test_split_indices
from tutela.data.tables import table_dataset
from tutela.dp.ledger import PrivacyLedger
from tutela.errors import ConfigError, DataError
from tutela.fl.bounds import MAX_UPDATE_NORM
from tutela.fl.client import LocalSite, LocalTraining, PrivatizeHook, SiteClient
from tutela.fl.config import StudyConfig, update_norm_bound
from tutela.fl.engine import DeferredFit, RoundEngine, RoundRecord, UpdateAggregator
from tutela.fl.models import (
    build_model,
    get_parameters,
    load_factory,
    seeded_factory,
    set_parameters,
)
from tutela.fl.records import Metrics, Parameters
from tutela.fl.standardisation import StandardisationPlan, standardise_in_process
from tutela.fl.strategy import (
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedTrimmedMean,
    FedYogi,
    Strategy,
)
from tutela.fl.summary import StudyRun
from tutela.fl.task import Task, predict
from tutela.governance.minimisation import SitePolicy, minimise
from tutela.governance.results import DatasetSummary
from tutela.secagg.simulate import HostedClients

if TYPE_CHECKING:
    from tutela.fl.ray_backend import RayBackend


def build_strategy(config: StudyConfig) -> Strategy:
    """Instantiate the configured strategy with the study's local training settings."""
    s, t = config.strategy, config.training
    local = {
        "local_epochs": t.local_epochs,
        "learning_rate": t.learning_rate,
        MAX_UPDATE_NORM: update_norm_bound(config),  # every site clips to it; checked
    }
    common: dict[str, Any] = {
        "fraction_fit": t.fraction_fit,
        "min_fit_sites": t.min_fit_sites,
        "local_config": local,
    }
    if s.server_learning_rate is not None:
        common["server_learning_rate"] = s.server_learning_rate
    adam: dict[str, Any] = {"beta1": s.beta1, "beta2": s.beta2, "tau": s.tau}
    match s.name:
        case "fedavg":
            return FedAvg(**common)
        case "fedprox":
            return FedProx(**common, proximal_mu=s.proximal_mu)
        case "fedadam":
            return FedAdam(**common, **adam)
        case "fedyogi":
            return FedYogi(**common, **adam)
        case "fedmedian":
            return FedMedian(**common)
        case "trimmed-mean":
            return FedTrimmedMean(**common, trim_fraction=s.trim_fraction)
    raise AssertionError(s.name)  # pragma: no cover - Literal is exhaustive


@dataclass
class StudyData:
    """The study's data after splitting: per-site training rows and the global test set."""

    dataset: Dataset
    columns: list[str]
    site_rows: list[npt.NDArray[np.int64]]
    test_rows: npt.NDArray[np.int64]
    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]
    site_names: list[str] = field(default_factory=list)
    minimisation: dict[str, Any] | None = None


def load_study_dataset(config: StudyConfig) -> Dataset:
    """The study's dataset, loaded once per run (offline; see :mod:`tutela.data`)."""
    c = config.data
    roles = c.roles()
    if c.path is not None and roles is not None:
        return table_dataset(c.path, roles)
    if c.dataset is None:
        raise ConfigError("the study names no data: set data.dataset or data.path")
    return load_dataset(c.dataset, rows=c.rows, seed=config.study.seed)


def study_columns(config: StudyConfig, dataset: Dataset) -> list[str]:
    """The feature columns the study uses: declared, else the dataset's model features."""
    c = config.data
    roles = c.roles()
    if c.path is not None and roles is not None:
        return roles.encoded_columns
    if c.columns is not None:
        unknown = sorted(set(c.columns) - set(dataset.features.columns))
        if unknown:
            raise DataError(
                f"data.columns: unknown column(s) {', '.join(unknown)} in {dataset.name}"
            )
        return list(c.columns)
    if c.dataset is DatasetName.SYNTHETIC_EHR:
        return dataset.meta["model_features"].split(",")
    return list(dataset.features.select_dtypes(include=["number"]).columns)


def prepare_data(
    config: StudyConfig, policy: SitePolicy | None = None, *, dataset: Dataset | None = None
) -> StudyData:
    """Choose columns, cut the held-out test set, split the rest by site.

    With a site ``policy``, the table is first minimised to the columns the study declared
    and its purpose allows (a forbidden column stops the study with ``PolicyViolation``).
    ``dataset`` is the study's dataset when the caller already loaded it
    (:func:`load_study_dataset`; a run loads it once).
    """
    c = config.data
    if dataset is None:
        dataset = load_study_dataset(config)
    columns = study_columns(config, dataset)
    minimisation = None
    roles = c.roles() if c.path is not None else None
    if policy is not None and roles is not None:
        # the policy judges the table's own columns; the encoded ones derive from them
        source = pd.DataFrame(columns=roles.source_columns)
        _, record = minimise(source, config.study.purpose, roles.source_columns, policy)
        minimisation = record.to_json()
    elif policy is not None:
        kept, record = minimise(dataset.features, config.study.purpose, columns, policy)
        minimisation = record.to_json()
        dataset = replace(dataset, features=kept)
    x = dataset.numeric_matrix(columns)
    y = dataset.outcome
    train, test = train_test_split_indices(y, c.test_fraction, seed=config.study.seed)
    parts = partition(
        y,
        c.sites,
        c.partition,
        alpha=c.alpha,
        indices=train,
        min_size=min(c.min_site_rows, len(train) // c.sites),
        seed=config.study.seed,
    )
    names = [f"hospital-{i + 1}" for i in range(c.sites)]
    return StudyData(dataset, columns, parts, test, x, y, names, minimisation)


def study_model_factory(config: StudyConfig, n_features: int) -> Callable[[], nn.Module]:
    """The study's model builder: a built-in kind, or the named factory after its source
    was checked against the declared hash (:func:`~tutela.fl.models.load_factory`; only a
    site runs this, after its policy allowed the factory)."""
    m, seed = config.model, config.study.seed
    if m.factory is not None:
        assert m.source_sha256 is not None  # the config requires it with a factory
        fn = load_factory(m.factory, m.source_sha256)
        return seeded_factory(fn, seed, m.options, n_features=n_features)
    kind, hidden = m.kind, tuple(m.hidden)
    return lambda: build_model(kind, n_features, hidden=hidden, seed=seed)


def _training(config: StudyConfig) -> LocalTraining:
    t = config.training
    return LocalTraining(
        epochs=t.local_epochs,
        batch_size=t.batch_size,
        learning_rate=t.learning_rate,
        optimizer=t.optimizer,
        momentum=t.momentum,
        weight_decay=t.weight_decay,
    )


@dataclass
class PreparedStudy:
    """Sites ready to train, plus the standardised global test set."""

    data: StudyData
    sites: dict[str, LocalSite]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int64]
    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]
    model_factory: Callable[[], Any]
    site_keys: dict[str, str] = field(default_factory=dict)
    """Site -> the public half (hex) of the identity key the run gave the site."""
    task: Task = Task.BINARY

    def evaluate(self, params: Parameters) -> Metrics:
        model = self.model_factory()
        set_parameters(model, params)
        return self.task.metrics(self.y_test, predict(model, self.x_test, self.task))

    def standardise_test_set(
        self, mean: npt.NDArray[np.float64], std: npt.NDArray[np.float64]
    ) -> None:
        """Standardise the global test set with ``mean`` and ``std`` instead (a run over the
        network evaluates with the statistics its coordinator released)."""
        self.mean, self.std = mean, std
        self.x_test = ((self.data.x[self.data.test_rows] - mean) / std).astype(np.float32)

    def pooled(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Every site's training rows together, as the sites hold them (the centralised
        baseline's data)."""
        xs = [s._x for s in self.sites.values()]
        ys = [np.asarray(s._y).astype(np.int64) for s in self.sites.values()]
        return np.concatenate(xs), np.concatenate(ys)

    def signed_reports(self, ledger: SiteLedger) -> list[dict[str, Any]]:
        """Each site's signed report: the policy it enforced and ``ledger(site)``, its ledger
        summary (:meth:`~tutela.fl.client.LocalSite.signed_report`).

        Raises:
            ValueError: the sites were prepared without a policy.
        """
        return [site.signed_report(ledger(name)) for name, site in self.sites.items()]


PrivatizeFactory = Callable[[str], PrivatizeHook]
SiteLedger = Callable[[str], Mapping[str, Any]]
"""``site -> ledger summary`` of a site's own ledger (see ``tutela.fl.privacy``)."""


def build_sites(
    config: StudyConfig,
    data: StudyData,
    privatize: PrivatizeFactory | None = None,
    policy: SitePolicy | None = None,
    model_factory: Callable[[], nn.Module] | None = None,
) -> tuple[dict[str, LocalSite], dict[str, str]]:
    """One :class:`LocalSite` per hospital over its raw (not yet standardised) rows, each
    with its own fresh identity key; returns the sites and each one's public key (hex).

    Every runtime builds its sites here, so the same study trains the same sites (model,
    training settings, data order seeds) in process and behind the coordinator.
    ``model_factory`` replaces the study's model (a library caller's own builder).
    """
    factory = model_factory or study_model_factory(config, len(data.columns))
    sites: dict[str, LocalSite] = {}
    keys: dict[str, str] = {}
    for i, (name, rows) in enumerate(zip(data.site_names, data.site_rows, strict=True)):
        identity = Ed25519PrivateKey.generate()
        keys[name] = identity.public_key().public_bytes_raw().hex()
        sites[name] = LocalSite(
            name,
            data.x[rows],
            data.y[rows],
            factory,
            _training(config),
            seed=config.study.seed * 1000 + i,
            privatize=privatize(name) if privatize is not None else None,
            policy=policy,
            identity=identity,
            task=config.model.task,
        )
    return sites, keys


def prepare_sites(
    config: StudyConfig,
    data: StudyData,
    privatize: PrivatizeFactory | None = None,
    policy: SitePolicy | None = None,
    ledger: PrivacyLedger | None = None,
    model_factory: Callable[[], nn.Module] | None = None,
) -> PreparedStudy:
    """Build one :class:`LocalSite` per hospital and standardise features federatedly.

    Standardisation uses only per-site sums (count, sum, sum of squares), never rows, and
    they travel as the deployed sites send them (:mod:`tutela.fl.standardisation`): through
    a SecAgg+ round under secure aggregation, noised in a private study, where each site's
    own scope in ``ledger`` is charged its release first (``None``: nothing is charged, for
    comparison runs). With a site ``policy`` every site enforces it (a round beyond its
    limits is refused before training) and can sign what it enforced; each site holds its
    own fresh identity key, whose public half is kept in :attr:`PreparedStudy.site_keys`.
    """
    factory = model_factory or study_model_factory(config, len(data.columns))
    sites, keys = build_sites(config, data, privatize, policy, factory)
    if config.data.standardise:
        mean, std = standardise_in_process(
            StandardisationPlan.of(config, data.columns),
            sites,
            study=config.study.name,
            ledger=ledger,
        )
        for s in sites.values():
            s.standardise(mean, std)
    else:  # the caller's features are used as they are
        mean, std = np.zeros(len(data.columns)), np.ones(len(data.columns))
    x_test = data.x[data.test_rows]
    if config.data.standardise:
        x_test = ((x_test - mean) / std).astype(np.float32)
    return PreparedStudy(
        data,
        sites,
        x_test.astype(np.float32),
        data.y[data.test_rows],
        mean,
        std,
        factory,
        keys,
        config.model.task,
    )


class _DroppingSite:
    """Wraps a site so that it fails to reply with a given probability (dropout simulation)."""

    def __init__(self, site: SiteClient, rate: float, rng: np.random.Generator) -> None:
        self.site_id = site.site_id
        self._site, self._rate, self._rng = site, rate, rng

    def _drop(self) -> None:
        from tutela.errors import TransportError

        if self._rng.random() < self._rate:
            raise TransportError(f"{self.site_id} dropped out")

    def fit(self, ins: Any) -> Any:
        self._drop()
        return self._site.fit(ins)

    def start_fit(self, ins: Any) -> Any:
        """Drop (or not) now, in the participants' order; fit here or on a remote worker."""
        self._drop()
        if isinstance(self._site, DeferredFit):
            return self._site.start_fit(ins)
        result = self._site.fit(ins)
        return lambda: result

    def evaluate(self, ins: Any) -> Any:
        return self._site.evaluate(ins)


def train_alone(site: LocalSite, initial: Parameters, epochs: int, lr: float) -> Parameters:
    """Train one site by itself for ``epochs`` epochs (local-only and centralised baselines)."""
    from tutela.fl.records import FitIns

    res = site.fit(FitIns(initial, {"local_epochs": epochs, "learning_rate": lr}))
    return res.parameters


def baselines(
    config: StudyConfig,
    prepared: PreparedStudy,
    initial: Parameters,
    privatize: PrivatizeFactory | None = None,
) -> dict[str, Any]:
    """Centralised (pooled training rows: the upper bound) and local-only (each site alone).

    Both train for as many epochs as one site does over the whole study. Under DP pass a
    ``privatize`` factory with its own ledger: baselines are comparisons, not releases.
    """
    epochs = config.training.rounds * config.training.local_epochs
    lr = config.training.learning_rate
    training = _training(config)
    pooled_x, pooled_y = prepared.pooled()
    hook = privatize("pooled") if privatize is not None else None
    pooled = LocalSite(
        "pooled", pooled_x, pooled_y, prepared.model_factory, training,
        seed=config.study.seed, privatize=hook, task=prepared.task,
    )  # fmt: skip
    centralized = prepared.evaluate(train_alone(pooled, initial, epochs, lr))
    local: list[Metrics] = []
    for i, (name, site) in enumerate(prepared.sites.items()):
        alone = LocalSite(
            name, site._x, site._y.astype(np.int64), prepared.model_factory, training,
            seed=config.study.seed * 1000 + i,
            privatize=privatize(name) if privatize is not None else None,
            task=prepared.task,
        )  # fmt: skip
        local.append(prepared.evaluate(train_alone(alone, initial, epochs, lr)))
    keys = local[0].keys()
    local_only = {k: float(np.nanmean([m[k] for m in local])) for k in keys}
    return {
        "centralized": centralized,
        "local_only": local_only,
        "local_only_per_site": dict(zip(prepared.sites, local, strict=True)),
    }


ProgressFn = Callable[[RoundRecord], None]


def dataset_summary(config: StudyConfig, data: StudyData) -> DatasetSummary:
    """The ``dataset`` section of the results: what was split how."""
    return DatasetSummary(
        name=data.dataset.name,
        rows=data.dataset.rows,
        sites=config.data.sites,
        features=list(data.columns),
        outcome=data.dataset.outcome_name,
        train_rows_per_site={
            n: len(r) for n, r in zip(data.site_names, data.site_rows, strict=True)
        },
        test_rows=len(data.test_rows),
    )


def run_study(
    config: StudyConfig,
    *,
    progress: ProgressFn | None = None,
    aggregator: UpdateAggregator | None = None,
    privatize: PrivatizeFactory | None = None,
    baseline_privatize: PrivatizeFactory | None = None,
    with_baselines: bool = True,
    policy: SitePolicy | None = None,
    site_ledger: SiteLedger | None = None,
    ledger: PrivacyLedger | None = None,
    data: StudyData | None = None,
    model_factory: Callable[[], nn.Module] | None = None,
    strategy: Strategy | None = None,
    backend: RayBackend | None = None,
) -> StudyRun:
    """Run the study in process: rounds, the final model's metrics, and the baselines.

    With a site ``policy``, the data is minimised to it and every site enforces it; with
    ``site_ledger`` too, each site signs a report of that policy and its ledger summary at
    the end (``sites``), and the run records each site's identity key (``site_keys``).
    In a private study ``ledger`` holds the sites' own scopes, charged the standardisation
    release before round 1 (:func:`prepare_sites`). ``data`` is the study's data when the
    caller already loaded and split it (:func:`prepare_data`; a run prepares it once).
    ``model_factory`` replaces the study's model and ``strategy`` the configured strategy
    (a library caller's own). With a ``backend`` the sites train on Ray workers
    (:class:`~tutela.fl.ray_backend.RayBackend`) while this process drives the same rounds,
    and a SecAgg+ aggregator's simulated clients run on those workers too (the server stays
    here).
    """
    started = time.perf_counter()
    if data is None:
        data = prepare_data(config, policy)
    prepared = prepare_sites(config, data, privatize, policy, ledger, model_factory)
    initial = get_parameters(prepared.model_factory())
    rng = np.random.default_rng(config.study.seed + 7)
    placed = backend.place(prepared.sites) if backend is not None else dict(prepared.sites)
    hosted = (
        aggregator
        if backend is not None and isinstance(aggregator, HostedClients)
        and aggregator.client_hosts is None
        else None
    )  # fmt: skip
    if hosted is not None and backend is not None:
        hosted.client_hosts = backend.client_hosts  # the devices' SecAgg+ clients run on Ray
    clients: dict[str, Any] = (
        {n: _DroppingSite(s, config.training.dropout, rng) for n, s in placed.items()}
        if config.training.dropout > 0
        else placed
    )
    engine = RoundEngine(
        strategy if strategy is not None else build_strategy(config),
        clients,
        aggregator=aggregator,
        min_quorum=config.training.min_quorum,
        evaluate_fn=prepared.evaluate,
        seed=config.study.seed,
    )
    try:
        final = engine.run(config.training.rounds, initial, progress=progress)
    finally:
        if hosted is not None:
            hosted.client_hosts = None
        if backend is not None:
            backend.release()
    reports = (
        prepared.signed_reports(site_ledger)
        if policy is not None and site_ledger is not None
        else None
    )
    return StudyRun(
        dataset=dataset_summary(config, data),
        history=tuple(engine.history),
        federated=prepared.evaluate(final),
        final_parameters=final,
        baselines=baselines(config, prepared, initial, baseline_privatize)
        if with_baselines
        else None,
        secure_aggregation=engine.aggregator.report(),
        minimisation=data.minimisation,
        sites=reports,
        site_keys=dict(prepared.site_keys) if reports is not None else None,
        elapsed_s=time.perf_counter() - started,
        standardisation={"mean": prepared.mean.tolist(), "std": prepared.std.tolist()}
        if config.data.standardise
        else None,
    )
