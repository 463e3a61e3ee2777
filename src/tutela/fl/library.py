"""Tutela as a library: your own PyTorch model and your own data, in a few lines.

::

    import tutela

    study = tutela.Study(
        model=lambda: MyNet(),                          # any nn.Module factory
        sites={"st-marys": df_a, "city": "city.parquet", "north": (x, y)},
        outcome="readmitted",                           # for tables and files
        privacy=tutela.SampleDP(epsilon=3.0),           # DP-SGD at every site
        secure_aggregation="secagg+",                   # the aggregator sees only the sum
        rounds=20,
    )
    result = study.run()
    result.metrics["auc"], result.epsilon, result.model

The study runs in this process on the same round engine, privacy accounting and secure
aggregation as a deployment (:func:`tutela.fl.recipes.run_configured_study`); every site
enforces a site policy (by default the least protective one that accepts the study and
still refuses direct identifiers, :meth:`~tutela.governance.SitePolicy.accepting`).

Data: each site's rows are a DataFrame, a CSV or Parquet path (both with an ``outcome``
column), a pair ``(features, labels)`` of arrays or tensors (features of any per-example
shape, e.g. images), or a ``TensorDataset``. Tables are encoded the same way at every site
(:class:`~tutela.data.tables.ColumnRoles`): numeric columns as they are, ``categorical``
columns one-hot over declared (or, for a simulation of data you hold, observed)
categories. :func:`split_table` splits one table into simulated sites.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import nn

from tutela.data.datasets import Dataset
from tutela.data.partition import PartitionScheme, partition, train_test_split_indices
from tutela.data.tables import ColumnRoles, read_table
from tutela.errors import ConfigError, DataError
from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.engine import RoundRecord
from tutela.fl.models import get_parameters, seeded_factory, set_parameters
from tutela.fl.recipes import run_configured_study, study_request
from tutela.fl.records import Parameters
from tutela.fl.strategy import Strategy
from tutela.fl.study import StudyData
from tutela.fl.summary import StudyRun
from tutela.fl.task import Task, predict
from tutela.governance.minimisation import SitePolicy
from tutela.governance.results import RunResults

__all__ = [
    "ClientDP",
    "SampleDP",
    "SiteInput",
    "Study",
    "StudyResult",
    "simulate",
    "split_table",
]

SiteInput = (
    pd.DataFrame
    | str
    | os.PathLike[str]
    | tuple[npt.ArrayLike | torch.Tensor, npt.ArrayLike | torch.Tensor]
    | torch.utils.data.TensorDataset
)
"""One site's rows: a DataFrame, a CSV/Parquet path, ``(features, labels)``, or a
``TensorDataset`` of ``(features, labels)``."""

Accountant = Literal["pld", "rdp"]


@dataclass(frozen=True)
class SampleDP:
    """Record-level DP: every site trains with DP-SGD; each site's records are
    ``(epsilon, delta)``-DP over the whole study (its own ledger, PLD accountant by default).

    Attributes:
        epsilon: the study's epsilon per site.
        delta: the study's delta per site.
        max_grad_norm: the per-example gradient clip.
        accountant: ``pld`` (tight) or ``rdp``.
    """

    epsilon: float
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    accountant: Accountant = "pld"

    def section(self) -> dict[str, Any]:
        return {
            "mode": "sample",
            "epsilon": self.epsilon,
            "delta": self.delta,
            "max_grad_norm": self.max_grad_norm,
            "accountant": self.accountant,
        }


@dataclass(frozen=True)
class ClientDP:
    """Site-level DP (DP-FedAvg): each site's whole dataset is ``(epsilon, delta)``-DP;
    updates are clipped to ``clip_norm`` (tracked at ``target_quantile`` with adaptive
    clipping) and Gaussian noise is added to their sum (inside SecAgg+ by the sites, or by
    the aggregator without it).

    Attributes:
        epsilon: the study's epsilon per site.
        delta: the study's delta.
        clip_norm: the update clip (initial value with adaptive clipping).
        adaptive_clipping: track the ``target_quantile`` of update norms.
        target_quantile: the quantile adaptive clipping tracks.
        accountant: ``pld`` (tight) or ``rdp``.
    """

    epsilon: float
    delta: float = 1e-5
    clip_norm: float = 1.0
    adaptive_clipping: bool = False
    target_quantile: float = 0.5
    accountant: Accountant = "pld"

    def section(self) -> dict[str, Any]:
        return {
            "mode": "client",
            "epsilon": self.epsilon,
            "delta": self.delta,
            "clip_norm": self.clip_norm,
            "adaptive_clipping": self.adaptive_clipping,
            "target_quantile": self.target_quantile,
            "accountant": self.accountant,
        }


@dataclass(frozen=True)
class StudyResult:
    """What :meth:`Study.run` returns.

    Attributes:
        results: the typed results (what ``results.json`` holds; see
            :class:`~tutela.governance.results.RunResults`).
        parameters: the final global parameters, by name.
        model_factory: builds the (untrained) model; :attr:`model` loads the parameters.
        task: what the model predicts.
    """

    results: RunResults
    parameters: Parameters
    model_factory: Callable[[], nn.Module] = field(repr=False)
    task: Task

    @property
    def model(self) -> nn.Module:
        """A fresh model holding the final global parameters."""
        module = self.model_factory()
        set_parameters(module, self.parameters)
        return module

    @property
    def metrics(self) -> dict[str, float]:
        """The final model's metrics on the held-out test set (accuracy, auc, log_loss)."""
        return dict(self.results.federated.model_dump())

    @property
    def epsilon(self) -> float | None:
        """The largest epsilon any site spent (``None`` without DP)."""
        privacy = self.results.privacy
        return None if privacy is None else float(privacy.epsilon)

    @property
    def history(self) -> list[dict[str, Any]]:
        """One entry per round: status, sites, metrics."""
        return [entry.model_dump(mode="json") for entry in self.results.history]

    def predict(self, features: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Probabilities for ``features`` (encoded and standardised as the study's were)."""
        return predict(self.model, features, self.task)


@dataclass
class _Site:
    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]


def _is_table(value: Any) -> bool:
    return isinstance(value, pd.DataFrame | str | os.PathLike)


def _as_array(value: Any, what: str) -> npt.NDArray[Any]:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: not an array ({exc})") from None


def _pair(value: Any, where: str) -> _Site:
    if isinstance(value, torch.utils.data.TensorDataset):
        if len(value.tensors) != 2:
            raise DataError(f"{where}: a TensorDataset of (features, labels) is needed")
        value = tuple(value.tensors)
    if not isinstance(value, tuple) or len(value) != 2:
        raise DataError(
            f"{where}: expected a DataFrame, a CSV/Parquet path, (features, labels) or a "
            f"TensorDataset, got {type(value).__name__}"
        )
    x = _as_array(value[0], f"{where} features").astype(np.float32)
    y = _as_array(value[1], f"{where} labels")
    if x.ndim < 2 or len(x) != len(y):
        raise DataError(f"{where}: features {x.shape} and labels {y.shape} disagree")
    if not np.isfinite(x).all():
        raise DataError(f"{where}: features contain NaN or infinite values")
    return _Site(x, Task.MULTICLASS.labels(y).astype(np.int64))


def _frame(value: Any, where: str) -> pd.DataFrame:
    if isinstance(value, pd.DataFrame):
        return value
    return read_table(Path(os.fspath(value)))


def split_table(
    table: pd.DataFrame | str | os.PathLike[str],
    sites: int | Sequence[str],
    *,
    outcome: str,
    scheme: PartitionScheme | str = PartitionScheme.IID,
    alpha: float = 0.5,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Split one table into simulated sites (IID, Dirichlet label skew, or size skew).

    Returns:
        ``{site name: its rows}`` (names ``site-1``... unless given).
    """
    frame = _frame(table, "table")
    if outcome not in frame.columns:
        raise DataError(f"the table has no outcome column {outcome!r}")
    names = [f"site-{i + 1}" for i in range(sites)] if isinstance(sites, int) else list(sites)
    if not names or len(set(names)) != len(names):
        raise ConfigError("sites must be a positive count or distinct names")
    parts = partition(
        frame[outcome].to_numpy(), len(names), scheme, alpha=alpha, min_size=2, seed=seed
    )
    return {
        n: frame.iloc[rows].reset_index(drop=True) for n, rows in zip(names, parts, strict=True)
    }


@dataclass
class Study:
    """A federated study over your own model and data (see the module docstring).

    Attributes:
        model: builds the model (called once per site per round, and for evaluation);
            seeded with ``seed`` so every site starts from the same weights.
        sites: each site's rows (:data:`SiteInput`), by site name.
        outcome: the label column of tables and files.
        categorical: categorical columns of tables (one-hot encoded).
        categories: the categories of each categorical column (default: those seen).
        test: a held-out test set; default: ``test_fraction`` of every site's rows.
        test_fraction: share of each site's rows held out when ``test`` is not given.
        task: ``binary`` or ``multiclass`` (default: from the labels).
        strategy: a strategy name (``fedavg``, ``fedprox``, ``fedadam``, ``fedyogi``,
            ``fedmedian``, ``trimmed-mean``) or any :class:`~tutela.fl.strategy.Strategy`.
        rounds, local_epochs, batch_size, learning_rate, optimizer: local training.
        privacy: :class:`SampleDP`, :class:`ClientDP` or ``None``.
        secure_aggregation: ``secagg+``, ``ckks`` or ``None``.
        standardise: standardise features federatedly (default: for tables and
            matrices, not for images and other shapes).
        feature_bounds: declared ``(low, high)`` per column, used by private and secure
            standardisation.
        min_quorum: fewest sites a round needs (default: two, or one with one site).
        name, purpose, seed: the study's name, declared purpose and seed.
        policy: the site policy every site enforces (default: see the module docstring).
        baselines: also train centralised and local-only baselines for comparison.
    """

    model: Callable[[], nn.Module]
    sites: Mapping[str, SiteInput]
    outcome: str | None = None
    categorical: Sequence[str] = ()
    categories: Mapping[str, Sequence[str]] | None = None
    test: SiteInput | None = None
    test_fraction: float = 0.25
    task: Literal["binary", "multiclass"] | None = None
    strategy: str | Strategy = "fedavg"
    rounds: int = 10
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.05
    optimizer: Literal["sgd", "adam"] = "sgd"
    privacy: SampleDP | ClientDP | None = None
    secure_aggregation: Literal["secagg+", "ckks"] | None = None
    standardise: bool | None = None
    feature_bounds: Mapping[str, tuple[float, float]] | None = None
    min_quorum: int | None = None
    name: str = "study"
    purpose: str = "research"
    seed: int = 0
    policy: SitePolicy | None = None
    baselines: bool = False

    # -- data --------------------------------------------------------------------------------

    def _roles(self, frames: Mapping[str, pd.DataFrame]) -> ColumnRoles:
        if self.outcome is None:
            raise ConfigError("outcome= names the label column of tables and files")
        declared = {k: list(v) for k, v in (self.categories or {}).items()}
        for col in self.categorical:
            if col not in declared:  # the caller holds every site's rows in a simulation
                seen: set[str] = set()
                for frame in frames.values():
                    if col in frame.columns:
                        seen |= set(frame[col].dropna().astype(str))
                declared[col] = sorted(seen)
        first = next(iter(frames.values()))
        return ColumnRoles.infer(
            first, self.outcome, categorical=list(self.categorical), categories=declared
        )

    def _load(self) -> tuple[dict[str, _Site], _Site | None, list[str], ColumnRoles | None]:
        if not self.sites:
            raise ConfigError("a study needs at least one site")
        inputs: dict[str, Any] = dict(self.sites)
        kinds = {_is_table(v) for v in inputs.values()}
        if self.test is not None:
            kinds.add(_is_table(self.test))
        if len(kinds) > 1:
            raise DataError("give every site (and the test set) as tables, or all as arrays")
        if kinds == {True}:
            frames = {n: _frame(v, f"site {n}") for n, v in inputs.items()}
            test_frame = _frame(self.test, "test set") if self.test is not None else None
            roles = self._roles(frames)
            sites = {}
            for n, f in frames.items():
                x, y = roles.encode(f, where=f"site {n}")
                sites[n] = _Site(x.to_numpy(np.float32), y)
            test = None
            if test_frame is not None:
                x, y = roles.encode(test_frame, where="test set")
                test = _Site(x.to_numpy(np.float32), y)
            return sites, test, roles.encoded_columns, roles
        sites = {n: _pair(v, f"site {n}") for n, v in inputs.items()}
        test = _pair(self.test, "test set") if self.test is not None else None
        shapes = {s.x.shape[1:] for s in sites.values()} | (
            {test.x.shape[1:]} if test is not None else set()
        )
        if len(shapes) > 1:
            raise DataError(f"sites' features have different shapes: {sorted(shapes)}")
        shape = next(iter(shapes))
        columns = [f"x{i}" for i in range(shape[0])] if len(shape) == 1 else ["input"]
        return sites, test, columns, None

    def _task(self, labels: npt.NDArray[np.int64]) -> Task:
        if self.task is not None:
            return Task(self.task)
        return Task.MULTICLASS if len(labels) and int(labels.max()) > 1 else Task.BINARY

    def _data(self) -> tuple[StudyData, Task, bool]:
        sites, test, columns, roles = self._load()
        names = list(sites)
        xs: list[npt.NDArray[np.float32]] = []
        ys: list[npt.NDArray[np.int64]] = []
        held_x: list[npt.NDArray[np.float32]] = []
        held_y: list[npt.NDArray[np.int64]] = []
        for i, site in enumerate(sites.values()):
            if test is None:
                train, held = train_test_split_indices(
                    site.y, self.test_fraction, seed=self.seed + i
                )
                xs.append(site.x[train])
                ys.append(site.y[train])
                held_x.append(site.x[held])
                held_y.append(site.y[held])
            else:
                xs.append(site.x)
                ys.append(site.y)
        if test is not None:
            held_x, held_y = [test.x], [test.y]
        offsets = np.cumsum([0, *(len(v) for v in ys)])
        site_rows = [np.arange(offsets[i], offsets[i + 1]) for i in range(len(ys))]
        x = np.concatenate([*xs, *held_x]).astype(np.float32)
        y = np.concatenate([*ys, *held_y]).astype(np.int64)
        test_rows = np.arange(offsets[-1], len(y))
        if any(len(r) == 0 for r in site_rows) or len(test_rows) == 0:
            raise DataError("every site needs training rows and the test set needs rows")
        task = self._task(y)
        tabular = x.ndim == 2
        standardise = tabular if self.standardise is None else self.standardise
        if standardise and not tabular:
            raise ConfigError("standardise=True needs one feature vector per row")
        features = (
            pd.DataFrame(x, columns=columns) if tabular else pd.DataFrame(index=range(len(y)))
        )
        dataset = Dataset(
            name=self.name,
            features=features,
            outcome=y,
            outcome_name=roles.outcome if roles is not None else (self.outcome or "label"),
            source="the caller's data",
        )
        data = StudyData(dataset, columns, site_rows, test_rows, x, y, names)
        return data, task, standardise

    # -- configuration -----------------------------------------------------------------------

    def _config(self, data: StudyData, task: Task, standardise: bool) -> StudyConfig:
        n = len(data.site_names)
        quorum = self.min_quorum if self.min_quorum is not None else min(2, n)
        doc: dict[str, Any] = {
            "study": {"name": self.name, "purpose": self.purpose, "seed": self.seed},
            "data": {
                "dataset": None,
                "sites": n,
                "columns": list(data.columns),
                "standardise": standardise,
                "test_fraction": self.test_fraction,
                "feature_bounds": {k: list(v) for k, v in (self.feature_bounds or {}).items()},
            },
            "model": {"task": task.value},
            "training": {
                "rounds": self.rounds,
                "local_epochs": self.local_epochs,
                "batch_size": self.batch_size,
                "learning_rate": self.learning_rate,
                "optimizer": self.optimizer,
                "min_fit_sites": quorum,
                "min_quorum": quorum,
            },
            "secure_aggregation": {"protocol": self.secure_aggregation or "none"},
        }
        if isinstance(self.strategy, str):
            doc["strategy"] = {"name": self.strategy}
        if self.privacy is not None:
            doc["privacy"] = self.privacy.section()
        return parse_study(doc)

    def run(
        self,
        *,
        run_dir: str | os.PathLike[str] | None = None,
        progress: Callable[[RoundRecord], None] | None = None,
    ) -> StudyResult:
        """Run the study in this process.

        Args:
            run_dir: write the run directory there (``results.json``, the encrypted model,
                the audit log and its signed checkpoint, the privacy ledger).
            progress: called after each round.

        Raises:
            DataError: malformed data (a missing column, NaN, labels that are not classes,
                sites that disagree on shapes).
            ConfigError: an impossible setting (the message names it).
            PolicyViolation: the site policy refuses the study.
        """
        data, task, standardise = self._data()
        config = self._config(data, task, standardise)
        context: dict[str, Any] = {"n_features": len(data.columns)} if data.x.ndim == 2 else {}
        factory = seeded_factory(self.model, self.seed, None, **context)
        _check_model(factory, data.x[:2], task)
        policy = self.policy or SitePolicy.accepting(study_request(config, data.columns))
        runs: list[StudyRun] = []
        results = run_configured_study(
            config,
            progress=progress,
            run_dir=Path(run_dir) if run_dir is not None else None,
            policy=policy,
            data=data,
            model_factory=factory,
            with_baselines=self.baselines,
            strategy=self.strategy if isinstance(self.strategy, Strategy) else None,
            on_complete=runs.append,
        )
        return StudyResult(results, runs[0].final_parameters, factory, task)


def _check_model(
    factory: Callable[[], nn.Module], sample: npt.NDArray[np.float32], task: Task
) -> None:
    """Build the model and run it on two rows, so a model that cannot take the sites'
    features (or returns the wrong shape for the task) fails before any site trains."""
    model = factory()
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(sample))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise DataError(
            f"the model cannot take the sites' features of shape {tuple(sample.shape[1:])}: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    task.outputs(out)  # DataError: one logit per row (binary) or per class (multiclass)


def simulate(
    model: Callable[[], nn.Module], sites: Mapping[str, SiteInput], **options: Any
) -> StudyResult:
    """Run a federated study in this process: ``Study(model, sites, **options).run()``."""
    run_dir = options.pop("run_dir", None)
    return Study(model, sites, **options).run(run_dir=run_dir)


def initial_parameters(model: Callable[[], nn.Module], seed: int = 0) -> Parameters:
    """The parameters ``model`` starts from in a study with ``seed`` (to upload as a
    deployed study's initial model)."""
    return get_parameters(seeded_factory(model, seed)())
