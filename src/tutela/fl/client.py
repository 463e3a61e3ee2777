"""Sites: the data holders. Local training is a real PyTorch loop; only parameters leave.

A :class:`SiteClient` is anything with ``fit`` and ``evaluate``; :class:`LocalSite` is the
in-process implementation used by simulation and by the deployed site agent.

A site owns its guarantees: before a round's training it works out exactly what it will run
(the round's local epochs times the batches of its own data loader), refuses a round beyond
its policy's limits (:meth:`~tutela.governance.minimisation.SitePolicy.check_task`), and
hands that exact count to its privatize hook, which charges the site's ledger before any
step runs. :func:`site_report` signs what a site enforced and spent
(:mod:`tutela.governance.site_report`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from torch import nn

from tutela.errors import DataError, PolicyViolation
from tutela.fl.bounds import clip_to_bound, round_norm_bound
from tutela.fl.models import get_parameters, set_parameters
from tutela.fl.records import ConfigRecord, EvaluateIns, EvaluateRes, FitIns, FitRes, Parameters
from tutela.fl.task import Task, predict
from tutela.governance.minimisation import SitePolicy
from tutela.governance.site_report import sign_site_report


class OptimizerKind(StrEnum):
    SGD = "sgd"
    ADAM = "adam"


@dataclass(frozen=True)
class LocalTraining:
    """How a site trains in one round."""

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.05
    optimizer: OptimizerKind = OptimizerKind.SGD
    momentum: float = 0.0
    weight_decay: float = 0.0


@runtime_checkable
class SiteClient(Protocol):
    """A participant in federated rounds."""

    site_id: str

    def fit(self, ins: FitIns) -> FitRes: ...

    def evaluate(self, ins: EvaluateIns) -> EvaluateRes: ...


@dataclass(frozen=True)
class FeatureMoments:
    """Per-site sums from which the coordinator computes global standardisation."""

    count: int
    total: npt.NDArray[np.float64]
    total_sq: npt.NDArray[np.float64]


def global_standardisation(
    moments: list[FeatureMoments],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Combine per-site moments into the pooled mean and standard deviation."""
    count = sum(m.count for m in moments)
    if count == 0:
        raise DataError("no rows to standardise")
    total = np.sum([m.total for m in moments], axis=0)
    total_sq = np.sum([m.total_sq for m in moments], axis=0)
    mean = total / count
    var = np.maximum(total_sq / count - mean**2, 0.0)
    std = np.sqrt(var)
    return mean, np.where(std > 1e-12, std, 1.0)


ModelFactory = Callable[[], nn.Module]
Loader = torch.utils.data.DataLoader[tuple[torch.Tensor, ...]]
PrivatizeHook = Callable[
    [nn.Module, torch.optim.Optimizer, Loader, int, int],
    tuple[nn.Module, torch.optim.Optimizer, Loader],
]
"""``(model, optimizer, loader, server_round, epochs) -> private (model, optimizer, loader)``.

The hook is called before any training step, with the number of epochs the site will run
over the loader it returns; it charges the ledger for exactly ``epochs * len(loader)``
steps (or refuses the round)."""


def _round_epochs(config: ConfigRecord, default: int) -> int:
    value = config.get("local_epochs", default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyViolation(
            f"task refused: local_epochs must be a positive integer, got {value!r}"
        )
    return value


def _round_learning_rate(config: ConfigRecord, default: float) -> float:
    value = config.get("learning_rate", default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyViolation(f"task refused: learning_rate must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise PolicyViolation(f"task refused: learning_rate must be positive, got {value!r}")
    return float(value)


class LocalSite:
    """A site holding its rows in memory and training a fresh copy of the model each round.

    Args:
        site_id: the site's name.
        features: float32 array with one row per example (a matrix restricted to the
            columns the study may use, or any per-example shape the model takes, e.g.
            images).
        outcome: labels (0/1 for a binary task, class indices for a multiclass one).
        model_factory: builds the (untrained) model architecture.
        training: local training settings.
        seed: seeds the site's data order (not privacy noise).
        privatize: optional hook turning (model, optimizer, loader, round, epochs) into
            private drop-in versions (DP-SGD) after charging the site's ledger; composed by
            :mod:`tutela.fl.privacy`.
        policy: the site's policy; when given, a round beyond its limits is refused before
            training (``None``: no limits beyond the privatize hook's plan, as for the
            baselines a simulation trains for comparison).
        identity: the site's Ed25519 key for :meth:`signed_report` (a fresh one if
            ``None``).
        task: what the model predicts (:class:`~tutela.fl.task.Task`): the loss, the
            label encoding and the metrics follow from it.

    Privacy: the round's batch size is the site's own (``training.batch_size``), never the
    round config's; the round config may set ``local_epochs`` (checked against the policy
    and charged in full by the hook), ``learning_rate`` and ``proximal_mu``, which change
    what is computed but not what a record can influence.

    Security: with ``max_update_norm`` in the round config the site clips its own update
    (local minus global parameters) to that L2 bound before returning it
    (:mod:`tutela.fl.bounds`), so the coordinator's check of the bound never refuses it.
    """

    def __init__(
        self,
        site_id: str,
        features: npt.NDArray[np.float32],
        outcome: npt.NDArray[np.int64],
        model_factory: ModelFactory,
        training: LocalTraining,
        *,
        seed: int = 0,
        privatize: PrivatizeHook | None = None,
        policy: SitePolicy | None = None,
        identity: Ed25519PrivateKey | None = None,
        task: Task = Task.BINARY,
    ) -> None:
        if features.ndim < 2 or len(features) != len(outcome):
            raise DataError(
                f"site {site_id}: features {features.shape} and outcome {outcome.shape} disagree"
            )
        if len(outcome) == 0:
            raise DataError(f"site {site_id} has no rows")
        if not np.isfinite(features).all():
            raise DataError(f"site {site_id}: features contain NaN or infinite values")
        self.site_id = site_id
        self._x = features.astype(np.float32, copy=True)
        self.task = Task(task)
        self._y = self.task.labels(outcome)
        self._model_factory = model_factory
        self._training = training
        self._privatize = privatize
        self._policy = policy
        self._identity = identity if identity is not None else Ed25519PrivateKey.generate()
        self._generator = torch.Generator().manual_seed(seed)
        self.steps_run = 0
        """Optimiser steps the last :meth:`fit` ran (what its hook charged)."""

    @property
    def num_examples(self) -> int:
        return len(self._y)

    def feature_moments(
        self,
        low: npt.NDArray[np.float64] | None = None,
        high: npt.NDArray[np.float64] | None = None,
    ) -> FeatureMoments:
        """Row count, feature sums and sums of squares of this site's rows; with a declared
        range ``[low, high]`` per feature, of the rows clipped to it and mapped onto
        ``[-1, 1]`` (``u = (clip(x) - mid) / half``: bounded, for secure or noisy release,
        see :mod:`tutela.fl.standardisation`)."""
        x = self._x.astype(np.float64)
        if low is not None and high is not None:
            x = (np.clip(x, low, high) - (high + low) / 2) / ((high - low) / 2)
        return FeatureMoments(len(x), x.sum(axis=0), (x * x).sum(axis=0))

    def standardise(self, mean: npt.NDArray[np.float64], std: npt.NDArray[np.float64]) -> None:
        self._x = ((self._x - mean) / std).astype(np.float32)

    def _loader(self) -> torch.utils.data.DataLoader[tuple[torch.Tensor, ...]]:
        dataset = torch.utils.data.TensorDataset(
            torch.from_numpy(self._x), torch.from_numpy(self._y)
        )
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=min(self._training.batch_size, len(dataset)),
            shuffle=True,
            generator=self._generator,
        )

    def _optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        t = self._training
        if t.optimizer is OptimizerKind.ADAM:
            return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=t.weight_decay)
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=t.momentum, weight_decay=t.weight_decay
        )

    @property
    def policy(self) -> SitePolicy | None:
        """The policy this site enforces (``None`` for a simulated site without one)."""
        return self._policy

    def fit(self, ins: FitIns) -> FitRes:
        """Train one round from ``ins.parameters``.

        Raises:
            PolicyViolation: the round config is malformed or beyond the site's limits;
                nothing was trained or charged.
            BudgetExceeded: the privatize hook refused the round (beyond the site's privacy
                plan or budget); nothing was trained or charged.
        """
        epochs, lr, model, optimizer, loader = self._start(ins)
        bound = round_norm_bound(ins.config)
        mu = float(ins.config.get("proximal_mu", 0.0))
        private = self._privatize is not None
        anchor = [p.detach().clone() for p in model.parameters()]
        loss_fn = self.task.loss()
        model.train()
        seen = 0
        steps = 0
        running = 0.0
        for _ in range(epochs):
            for xb, yb in loader:
                optimizer.zero_grad()
                if len(yb) == 0:  # Poisson sampling can draw an empty batch
                    if private:  # the charged step still runs (noise only), as accounted
                        optimizer.step()
                        steps += 1
                    continue
                loss = loss_fn(self.task.outputs(model(xb)), yb)
                loss.backward()
                optimizer.step()
                if mu > 0:
                    _proximal_step(model, anchor, lr * mu)
                steps += 1
                running += float(loss.detach()) * len(yb)
                seen += len(yb)
        self.steps_run = steps
        params = get_parameters(_unwrap(model))
        if bound is not None:  # the study's update-norm bound, enforced here before sending
            params = clip_to_bound(params, ins.parameters, bound)
        return FitRes(params, self.num_examples, {"train_loss": running / max(seen, 1)})

    def _start(self, ins: FitIns) -> tuple[int, float, nn.Module, Any, Any]:
        """Check the round against the policy and run the privatize hook (which charges the
        ledger): ``(epochs, lr, model, optimizer, loader)``, ready to train. The Ray backend
        calls it alone to charge a private site's round in the driver before dispatch."""
        epochs = _round_epochs(ins.config, self._training.epochs)
        lr = _round_learning_rate(ins.config, self._training.learning_rate)
        round_norm_bound(ins.config)  # a malformed bound is refused before anything is charged
        server_round = int(ins.config.get("server_round", 0))
        loader: Any = self._loader()
        if self._policy is not None:
            self._policy.check_task(local_epochs=epochs, steps=epochs * max(1, len(loader)))
        model = self._model_factory()
        set_parameters(model, ins.parameters)
        optimizer: Any = self._optimizer(model, lr)
        if self._privatize is not None:
            model, optimizer, loader = self._privatize(
                model, optimizer, loader, server_round, epochs
            )
        return epochs, lr, model, optimizer, loader

    def signed_report(self, ledger: Mapping[str, Any]) -> dict[str, Any]:
        """This site's signed report of its policy and ``ledger`` (see :func:`site_report`).

        Raises:
            ValueError: the site has no policy to report.
        """
        if self._policy is None:
            raise ValueError(f"site {self.site_id} enforces no policy to report")
        return site_report(self.site_id, self._policy, ledger, self._identity)

    def predict_proba(
        self, params: Parameters, features: npt.NDArray[np.float32] | None = None
    ) -> npt.NDArray[np.float64]:
        model = self._model_factory()
        set_parameters(model, params)
        return predict(model, self._x if features is None else features, self.task)

    def evaluate(self, ins: EvaluateIns) -> EvaluateRes:
        prob = self.predict_proba(ins.parameters)
        metrics = self.task.metrics(self._y, prob)
        return EvaluateRes(metrics["log_loss"], self.num_examples, metrics)


def warm_up() -> None:
    """Pay PyTorch's one-time lazy imports now rather than inside a round's deadline.

    The first optimiser a process builds imports ``torch._dynamo`` (several CPU-seconds, more
    on a loaded host); a site agent calls this while it starts, so its first round costs
    what its later rounds cost.
    """
    weight = torch.zeros(1, requires_grad=True)
    torch.optim.SGD([weight], lr=0.1).step()


def site_report(
    site_id: str, policy: SitePolicy, ledger: Mapping[str, Any], key: Ed25519PrivateKey
) -> dict[str, Any]:
    """The site's signed report: the policy it enforced and its own ledger summary.

    Args:
        site_id: the site's name.
        policy: the policy the site enforced.
        ledger: the site's ledger summary (:func:`tutela.fl.privacy.ledger_summary`).
        key: the site's Ed25519 key (the deployed agent's SecAgg+ identity key).

    Returns:
        ``{"site", "policy", "ledger", "signature", "public_key"}``; check it with
        :func:`tutela.governance.site_report.verify_site_report`.
    """
    return sign_site_report(site_id, policy.to_json(), ledger, key)


def _proximal_step(model: nn.Module, anchor: list[torch.Tensor], rate: float) -> None:
    """FedProx's proximal term ``mu/2 ||w - w_global||^2`` as a decoupled step towards the
    global model (``w -= lr * mu * (w - w_global)``) after the optimiser's step.

    Decoupled, the term never enters the per-example gradients: it depends on no record, so
    under DP-SGD it is post-processing (DP-SGD refuses a gradient that reaches a parameter
    from outside its layer, which a loss term would be).
    """
    with torch.no_grad():
        for p, a in zip(model.parameters(), anchor, strict=True):
            p.sub_(rate * (p - a))


def _unwrap(model: nn.Module) -> nn.Module:
    """Return the wrapped module of a private wrapper (exposes ``_module``), else the model."""
    inner = getattr(model, "_module", None)
    return inner if isinstance(inner, nn.Module) else model


def predict_proba(model: nn.Module, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Probability of the positive class for each row."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.asarray(features, np.float32))).squeeze(-1)
    return torch.sigmoid(logits).double().numpy()
