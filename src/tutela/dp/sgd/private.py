"""The one entry point: :func:`make_private` and what it returns."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader

from tutela.dp.accounting import (
    AccountantKind,
    PLDAccountant,
    RDPAccountant,
    calibrate_noise_multiplier,
    make_accountant,
)
from tutela.dp.sgd.data import PoissonDataLoader
from tutela.dp.sgd.engine import _Engine
from tutela.dp.sgd.optimizer import DPOptimizer
from tutela.dp.sgd.plan import Clipping, LayerPlan, validate
from tutela.hazmat.noise import rounded_gaussian32_granularity
from tutela.hazmat.rng import SecureRandom

__all__ = ["PrivateTraining", "make_private"]


@dataclass(frozen=True)
class PrivateTraining:
    """What :func:`make_private` returns; unpacks as ``module, optimizer, data_loader``."""

    module: nn.Module
    optimizer: DPOptimizer
    data_loader: PoissonDataLoader
    plan: tuple[LayerPlan, ...]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.module, self.optimizer, self.data_loader))

    @property
    def accountant(self) -> PLDAccountant | RDPAccountant:
        """The accountant holding every step taken so far."""
        return self.optimizer.accountant

    @property
    def noise_multiplier(self) -> float:
        """z: noise standard deviation / max_grad_norm."""
        return self.optimizer.noise_multiplier

    def epsilon(self, delta: float) -> float:
        """Epsilon spent so far at ``delta`` (upper bound, the accountant's kind)."""
        return self.accountant.get_epsilon(delta)

    def detach(self) -> None:
        """Restore the module's layers and remove the hooks; the optimiser refuses to step after."""
        self.optimizer._engine.remove()


def make_private(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: DataLoader[Any],
    *,
    max_grad_norm: float,
    noise_multiplier: float | None = None,
    target_epsilon: float | None = None,
    delta: float = 1e-5,
    epochs: int | None = None,
    clipping: Clipping = Clipping.GHOST,
    loss_reduction: Literal["mean", "sum"] = "mean",
    accountant: AccountantKind = AccountantKind.PLD,
    rng: SecureRandom | torch.Generator | None = None,
) -> PrivateTraining:
    """Turn a module, its optimiser and data loader into DP-SGD drop-in replacements.

    Args:
        module: the model; hooks are attached in place (see :meth:`PrivateTraining.detach`).
        optimizer: any torch optimiser over the module's parameters.
        data_loader: gives the dataset, the expected batch size (``batch_size``), the
            steps per epoch (``len(data_loader)``) and ``collate_fn``; its sampler and
            shuffling are replaced by Poisson sampling with rate q = batch_size / len(dataset).
        max_grad_norm: per-example clipping bound C.
        noise_multiplier: z; give this or ``target_epsilon``.
        target_epsilon: calibrate the smallest z that keeps ``epochs`` epochs within
            (target_epsilon, delta) under ``accountant``.
        delta: the delta of the target.
        epochs: planned epochs (required with ``target_epsilon``).
        clipping: ``Clipping.GHOST`` (default) or ``Clipping.PER_SAMPLE``.
        loss_reduction: how the training loss reduces over the batch: ``"mean"``
            (1/B sum_i loss_i, torch's default) or ``"sum"``.
        accountant: PLD (default) or RDP.
        rng: ``SecureRandom`` (default: fresh, OS-keyed) for noise and sampling, or a
            ``torch.Generator`` for reproducible but NOT secure noise (sampling then uses
            a ``SecureRandom`` seeded from the generator's initial seed).

    Raises:
        UnsupportedModuleError: see :func:`validate`; while training, see
            :meth:`DPOptimizer.privatise_gradients` (and a parameter that receives a gradient
            from outside its layer's forward is refused during ``backward()``).
        ValueError: inconsistent arguments, or an optimiser that does not hold exactly the
            module's trainable parameters.

    Privacy: one ``optimizer.step()`` is ``PoissonSampledEvent(q, GaussianEvent(z_eff))``
    under add/remove-one-record neighbours (see the module docstring);
    ``PrivateTraining.epsilon(delta)`` reports the spend so far. The loss must be a sum (or
    mean) of per-example losses, and no layer may mix examples (BatchNorm is refused): the
    per-example gradients are read from each example's own slice (index i of dimension 0) of
    every layer's input and output gradient, so a loss that couples examples (batch-normalised
    or contrastive terms) would void the sensitivity bound. What can be checked is: every
    trainable parameter has a per-example rule (checked here), every layer's dimension 0 has
    as many entries as the batch the returned loader gave and no other candidate dimension
    of that size the layer has not been seen to tell apart, no parameter gets a gradient
    from outside its layer, and every per-example gradient is finite (checked each step,
    before noise is drawn). Batches that do not come from the returned loader are not
    Poisson-sampled, so the reported epsilon does not cover them; their batch size is read
    from the first layer and only checked for consistency.
    """
    if (noise_multiplier is None) == (target_epsilon is None):
        raise ValueError("give exactly one of noise_multiplier and target_epsilon")
    if not (math.isfinite(max_grad_norm) and max_grad_norm > 0):
        raise ValueError("max_grad_norm must be positive")
    if loss_reduction not in ("mean", "sum"):
        raise ValueError("loss_reduction must be 'mean' or 'sum'")
    plans = validate(module, clipping)
    dataset = data_loader.dataset
    n = len(dataset)  # type: ignore[arg-type]
    batch_size = data_loader.batch_size
    if not batch_size:
        raise ValueError("the data loader needs a batch_size (the expected batch size)")
    sample_rate = min(1.0, batch_size / n)
    steps_per_epoch = max(1, len(data_loader))
    if target_epsilon is not None:
        if epochs is None or epochs < 1:
            raise ValueError("target_epsilon needs the planned number of epochs")
        noise_multiplier = calibrate_noise_multiplier(
            target_epsilon, delta, sample_rate, epochs * steps_per_epoch, accountant
        )
        # the noise grid adds g sqrt(d) to the sensitivity; scale z up to absorb it
        if not isinstance(rng, torch.Generator):
            d = sum(p.numel() for p in module.parameters() if p.requires_grad)
            needed = noise_multiplier
            for _ in range(4):
                g = rounded_gaussian32_granularity(noise_multiplier * max_grad_norm)
                if noise_multiplier / (1 + g * math.sqrt(d) / max_grad_norm) >= needed:
                    break
                noise_multiplier = needed * (1 + g * math.sqrt(d) / max_grad_norm)
    assert noise_multiplier is not None
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError("noise_multiplier must be positive")
    if isinstance(rng, torch.Generator):
        sampler_rng = SecureRandom(int(rng.initial_seed()))
        noise_rng: SecureRandom | torch.Generator = rng
    else:
        sampler_rng = rng if rng is not None else SecureRandom()
        noise_rng = sampler_rng
    loader = PoissonDataLoader(
        dataset, sample_rate, steps_per_epoch, rng=sampler_rng, collate_fn=data_loader.collate_fn
    )
    params = [p for p in module.parameters() if p.requires_grad]
    opt_params = [p for group in optimizer.param_groups for p in group["params"]]
    if not {id(p) for p in params} <= {id(p) for p in opt_params}:
        raise ValueError("the optimiser must cover every trainable parameter of the module")
    module_params = {id(p) for p in module.parameters()}
    extra = [tuple(p.shape) for p in opt_params if p.requires_grad and id(p) not in module_params]
    if extra:
        raise ValueError(
            f"the optimiser also updates tensors that are not parameters of the module "
            f"(shapes {extra}); they would have no per-example gradient, so the optimiser "
            "must hold only the module's parameters"
        )
    engine = _Engine(module, plans, loss_reduction, loader)
    dp_opt = DPOptimizer(
        optimizer,
        engine,
        params,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        sample_rate=sample_rate,
        expected_batch_size=sample_rate * n,
        loss_reduction=loss_reduction,
        accountant=make_accountant(accountant),
        rng=noise_rng,
    )
    return PrivateTraining(module, dp_opt, loader, plans)
