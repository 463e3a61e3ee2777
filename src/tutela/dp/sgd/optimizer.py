"""The DP optimiser: clip per example, add secure noise on the grid, account, then step."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from tutela.dp.accounting import PLDAccountant, RDPAccountant
from tutela.dp.events import GaussianEvent, PoissonSampledEvent
from tutela.dp.sgd.engine import _Engine
from tutela.dp.sgd.plan import UnsupportedModuleError
from tutela.hazmat.noise import rounded_gaussian32_granularity
from tutela.hazmat.noise_buffer import RoundedGaussian32Buffer
from tutela.hazmat.rng import SecureRandom

__all__ = ["DPOptimizer"]


class DPOptimizer:
    """Wraps an optimiser: ``step()`` clips per example, adds noise, accounts, then steps.

    Use it like the wrapped optimiser (an LR scheduler takes ``dp_optimizer.optimizer``).
    Attributes ``accountant``, ``noise_multiplier``, ``max_grad_norm``, ``sample_rate`` and
    ``steps_taken`` describe what was spent. A step that cannot be proven to clip each
    example (see :meth:`privatise_gradients`) raises before any noise is drawn or any spend
    is accounted; ``zero_grad()`` then drops the captured batch.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        engine: _Engine,
        params: list[nn.Parameter],
        *,
        noise_multiplier: float,
        max_grad_norm: float,
        sample_rate: float,
        expected_batch_size: float,
        loss_reduction: str,
        accountant: PLDAccountant | RDPAccountant,
        rng: SecureRandom | torch.Generator,
    ) -> None:
        self.optimizer = optimizer
        self._engine = engine
        self._params = params
        self.noise_multiplier = float(noise_multiplier)
        self.max_grad_norm = float(max_grad_norm)
        self.sample_rate = float(sample_rate)
        self.expected_batch_size = float(expected_batch_size)
        self.loss_reduction = loss_reduction
        self.accountant = accountant
        self._rng = rng
        self._noise_buffer: RoundedGaussian32Buffer | None = None
        self.steps_taken = 0
        self.last_norms: torch.Tensor = torch.zeros(0)
        # auditing only (tutela.dp.audit): canary gradients, each of norm at most C and
        # sampled like a record, added to the clipped sum before the noise
        self.canary_gradients: Callable[[], Mapping[nn.Parameter, torch.Tensor]] | None = None
        sigma = self.noise_multiplier * self.max_grad_norm
        d = sum(p.numel() for p in params)
        if isinstance(rng, torch.Generator):
            self.granularity = 0.0
            self.effective_noise_multiplier = self.noise_multiplier
        else:
            self.granularity = rounded_gaussian32_granularity(sigma)
            self.effective_noise_multiplier = sigma / (
                self.max_grad_norm + self.granularity * math.sqrt(d)
            )
        self.event = PoissonSampledEvent(
            min(1.0, self.sample_rate), GaussianEvent(self.effective_noise_multiplier)
        )

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The wrapped optimiser's parameter groups (for LR schedulers)."""
        return self.optimizer.param_groups

    @property
    def state(self) -> Any:
        """The wrapped optimiser's state."""
        return self.optimizer.state

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimiser's state dict."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load the wrapped optimiser's state dict."""
        self.optimizer.load_state_dict(state)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear gradients and captured activations."""
        self.optimizer.zero_grad(set_to_none=set_to_none)
        self._engine.clear()

    def _buffer(self) -> RoundedGaussian32Buffer:
        if self._noise_buffer is None:
            assert not isinstance(self._rng, torch.Generator)
            sigma = self.noise_multiplier * self.max_grad_norm
            largest = max(p.numel() for p in self._params)
            self._noise_buffer = RoundedGaussian32Buffer(sigma, largest, rng=self._rng)
        return self._noise_buffer

    def _noise(self, numel: int) -> torch.Tensor:
        """Fresh noise for ``numel`` coordinates: in grid units (secure) or value units.

        The secure noise lives in a buffer that the next call overwrites.
        """
        if isinstance(self._rng, torch.Generator):
            sigma = self.noise_multiplier * self.max_grad_norm
            return torch.normal(0.0, sigma, (numel,), generator=self._rng)
        return torch.from_numpy(self._buffer().draw(numel))

    def _check_covered(self) -> None:
        covered = {id(p) for p in self._params}
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None and id(p) not in covered:
                    raise UnsupportedModuleError(
                        f"{self._engine.name_of(p)} has a gradient but no per-example rule "
                        "(it was frozen, or not in the module, when make_private ran); call "
                        "make_private again after changing which parameters are trainable"
                    )

    def _release(self, p: nn.Parameter, s: torch.Tensor | None) -> torch.Tensor:
        """The noised (and averaged) gradient of ``p`` from its clipped sum ``s`` (reused)."""
        g = self.granularity
        divisor = self.expected_batch_size if self.loss_reduction == "mean" else 1.0
        s = torch.zeros_like(p) if s is None else s.detach()
        if g == 0:  # torch.Generator: plain float noise (not hardened)
            z = self._noise(p.numel()).view_as(p)
            return s.to(p.dtype).add_(z.to(p.dtype)).div_(divisor)
        # round to the grid, add the noise and scale, block by block in cache; float32 is
        # exact there (|s/g| < 2**22 is checked, |noise/g| < 2**20)
        fused = s.dtype == torch.float32 and s.device.type == "cpu" and s.is_contiguous()
        if fused and self._buffer().add_on_grid(s.view(-1).numpy(), g / divisor):
            return s
        # float64 keeps the grid exact for any magnitude
        z = self._noise(p.numel()).view_as(p).to(s.device)
        exact = torch.round(s.double() / g).add_(z.double()).mul_(g)
        return exact.to(p.dtype).div_(divisor)

    def privatise_gradients(self) -> None:
        """Replace every ``p.grad`` by the clipped, noised (and averaged) gradient.

        Raises:
            UnsupportedModuleError: a layer's batch dimension cannot be proven, or a tensor
                the optimiser updates received a gradient without a per-example rule.
            DataError: an example's gradient is not finite.

        Nothing is changed (no gradient, no noise drawn) when it raises.
        """
        self._check_covered()
        sums, norms = self._engine.clipped_sums(self.max_grad_norm)
        self.last_norms = norms
        if self.canary_gradients is not None:
            for p, g in self.canary_gradients().items():
                sums[p] = g if p not in sums else sums[p] + g
        for p in self._params:  # one parameter at a time keeps the peak memory low
            p.grad = self._release(p, sums.pop(p, None))
        self._engine.clear()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Clip, noise, account one sampled Gaussian step, then step the wrapped optimiser."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.privatise_gradients()
        self.accountant.compose(self.event)
        self.steps_taken += 1
        self.optimizer.step()
        return loss
