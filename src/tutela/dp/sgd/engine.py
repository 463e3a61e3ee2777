"""The capture engine: taps each layer's input and output gradient, checks the batch layout,
and forms per-example norms and clipped sums."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from tutela.dp.sgd.data import PoissonDataLoader
from tutela.dp.sgd.layers import _batch_dims, ghost_norm2, ghost_sum, per_example
from tutela.dp.sgd.plan import LayerPlan, UnsupportedModuleError, _own_params
from tutela.errors import DataError, PrivacyError

_NORM_EPS = 1e-6


@dataclass
class _StepGradients:
    """One step's per-example norms and what the clipped sums are formed from: (layer, input,
    output gradient) for ghost layers, materialised per-example gradients for the rest."""

    norms: torch.Tensor
    ghost: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    per_param: list[tuple[nn.Parameter, torch.Tensor]] = field(default_factory=list)


@dataclass
class _Capture:
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    grad: torch.Tensor | None = None

    def add_grad(self, grad: torch.Tensor) -> None:
        g = grad.detach()
        self.grad = g if self.grad is None else self.grad + g


class _Tap(torch.autograd.Function):
    """Identity on a layer's output that records dLoss/dOutput on the way back.

    The layer ran with detached parameters, so autograd computes no (unclipped, wasted)
    parameter gradient; passing the parameters in only makes the output require grad when
    the layer's input does not. The parameters get ``None``: any gradient that still reaches
    them came from outside the layer's forward, which :class:`_Engine` refuses.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, cap: _Capture, out: torch.Tensor, *params: torch.Tensor
    ) -> torch.Tensor:
        ctx.cap = cap
        ctx.n_params = len(params)
        return out.detach()

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (g,) = grads
        ctx.cap.add_grad(g)
        return (None, g, *([None] * ctx.n_params))


@contextlib.contextmanager
def _detached(module: nn.Module, params: dict[str, nn.Parameter]) -> Iterator[None]:
    """Run ``module`` with its own trainable parameters detached from autograd."""
    try:
        for n, p in params.items():
            module._parameters[n] = cast(nn.Parameter, p.detach())
        yield
    finally:
        for n, p in params.items():
            module._parameters[n] = p


# the engine whose capturing forward a layer runs; a second make_private takes the layer over
_OWNERS: weakref.WeakKeyDictionary[nn.Module, _Engine] = weakref.WeakKeyDictionary()


class _Engine:
    """Captures layer inputs and output gradients, checks them, and forms clipped sums."""

    def __init__(
        self,
        module: nn.Module,
        plans: Sequence[LayerPlan],
        loss_reduction: str,
        loader: PoissonDataLoader | None = None,
    ) -> None:
        self.loss_reduction = loss_reduction
        self.loader = loader
        self.layers: list[tuple[nn.Module, LayerPlan]] = []
        self.param_names: dict[int, dict[str, nn.Parameter]] = {}
        self.captures: dict[int, list[_Capture]] = {}
        self.handles: list[Any] = []
        self.active = True
        self.detached = False
        # layers that had, in some step, dimension 0 as their only one of the sampled size
        self.proven: set[int] = set()
        self._loader_mark = loader.batches_drawn if loader is not None else 0
        self.qualified = {id(p): n for n, p in module.named_parameters()}
        names = dict(module.named_modules())
        self.patched: list[tuple[nn.Module, Any]] = []
        owners: dict[int, list[str]] = {}
        for plan in plans:
            sub = names["" if plan.name == "(root)" else plan.name]
            earlier = _OWNERS.get(sub)
            if earlier is not None and earlier is not self:
                earlier.remove()
            own = dict(_own_params(sub))
            self.layers.append((sub, plan))
            self.param_names[id(sub)] = own
            self.patched.append((sub, vars(sub).get("forward")))
            sub.forward = self._capturing_forward(sub, plan, own)  # type: ignore[method-assign]
            _OWNERS[sub] = self
            for p in own.values():
                owners.setdefault(id(p), []).append(plan.name)
        hooked: set[int] = set()
        for sub, _plan in self.layers:
            for p in self.param_names[id(sub)].values():
                if id(p) not in hooked:
                    hooked.add(id(p))
                    hook = self._outside_use_hook(p, owners[id(p)])
                    self.handles.append(p.register_hook(hook))  # type: ignore[no-untyped-call]

    def _check_no_accumulation(self) -> None:
        if any(c.grad is not None for caps in self.captures.values() for c in caps):
            raise UnsupportedModuleError(
                "a forward pass after backward() without optimizer.step(): gradient "
                "accumulation over several batches would clip sums of different examples "
                "together; call step() after each backward (Poisson batches already vary in "
                "size) or zero_grad() to drop the captured batch"
            )

    def _capturing_forward(
        self, layer: nn.Module, plan: LayerPlan, params: dict[str, nn.Parameter]
    ) -> Callable[..., Any]:
        original = layer.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            trainable = [p for p in params.values() if p.requires_grad]
            if not (self.active and trainable and torch.is_grad_enabled()):
                return original(*args, **kwargs)
            self._check_no_accumulation()
            tensor_kwargs = sorted(k for k, v in kwargs.items() if isinstance(v, torch.Tensor))
            if tensor_kwargs:
                raise UnsupportedModuleError(
                    f"{plan.name} ({plan.module_type}) was called with tensor keyword "
                    f"arguments {tensor_kwargs}; pass tensors positionally, so that each "
                    "example's slice (index i of dimension 0) can be found and checked"
                )
            with _detached(layer, params):
                out = original(*args, **kwargs)
            if not isinstance(out, torch.Tensor):
                raise UnsupportedModuleError(
                    f"{plan.name} ({plan.module_type}) returned {type(out).__name__}, not a "
                    "tensor, so its parameters would get no per-example gradient; wrap it so "
                    "the trainable layer returns one tensor (and return the rest from a "
                    "parameter-free parent), or freeze it with requires_grad_(False)"
                )
            if not (out.is_floating_point() or out.is_complex()):
                return out  # nothing differentiable flows back through it
            cap = _Capture(
                tuple(t.detach() if isinstance(t, torch.Tensor) else t for t in args), kwargs
            )
            self.captures.setdefault(id(layer), []).append(cap)
            tapped: torch.Tensor = _Tap.apply(cap, out, *trainable)  # type: ignore[no-untyped-call]
            return tapped

        return forward

    def _outside_use_hook(
        self, param: nn.Parameter, layers: list[str]
    ) -> Callable[[torch.Tensor | None], None]:
        name = self.qualified.get(id(param), "a parameter")
        where = " and ".join(layers)

        def hook(grad: torch.Tensor | None) -> None:
            if grad is not None and not self.detached:
                raise UnsupportedModuleError(
                    f"parameter {name!r} received a gradient from outside the forward of "
                    f"{where} (for example an output projection written as "
                    "h @ embedding.weight.T, or a penalty on the parameters in the loss), "
                    "which has no per-example attribution; tie weights by registering the "
                    "same Parameter in both layers (head.weight = embedding.weight), move the "
                    "computation into a layer, or use the optimiser's weight_decay for an L2 "
                    "penalty"
                )

        return hook

    def clear(self) -> None:
        self.captures.clear()

    def remove(self) -> None:
        """Restore every layer's forward and drop the hooks; the engine cannot clip after."""
        for h in self.handles:
            h.remove()
        self.handles.clear()
        for layer, previous in self.patched:
            if _OWNERS.get(layer) is self:
                del _OWNERS[layer]
            if previous is None:
                vars(layer).pop("forward", None)
            else:
                layer.forward = previous  # type: ignore[method-assign]
        self.patched.clear()
        self.captures.clear()
        self.detached = True

    def name_of(self, param: torch.Tensor) -> str:
        """The qualified name of a module parameter, or its shape for anything else."""
        return self.qualified.get(id(param), f"a tensor of shape {tuple(param.shape)}")

    def clipped_sums(
        self, max_grad_norm: float
    ) -> tuple[dict[nn.Parameter, torch.Tensor], torch.Tensor]:
        """Return sum_i c_i grad_i per parameter and the unclipped per-example norms.

        Raises:
            UnsupportedModuleError: a layer's input or output gradient does not have the
                batch's examples along dimension 0 (or cannot yet be told apart from another
                dimension of the same size), or the engine was detached.
            DataError: an example's gradient is not finite.
        """
        step = self.per_example_norms()
        return self.clip(step, max_grad_norm), step.norms

    def per_example_norms(self) -> _StepGradients:
        """Check the captured batch and compute each example's gradient norm.

        Raises: as :meth:`clipped_sums`.
        """
        if self.detached:
            raise PrivacyError(
                "this PrivateTraining was detached (by detach() or by a later make_private "
                "on the same module); its optimiser can no longer clip"
            )
        self.active = False  # torch.func re-runs modules; do not capture those calls
        try:
            return self._per_example_norms()
        finally:
            self.active = True
            if self.loader is not None:
                self._loader_mark = self.loader.batches_drawn  # that batch is now spent

    def _batch_size(
        self, live: list[tuple[nn.Module, LayerPlan, list[_Capture]]]
    ) -> tuple[int, str | None]:
        """The batch size and, when it was not the loader's, the layer it was read from."""
        loader = self.loader
        if loader is not None and loader.batches_drawn > self._loader_mark:
            return loader.last_batch_size, None
        for _, plan, caps in live:
            for cap in caps:
                if cap.grad is not None and cap.grad.dim() > 0:
                    return int(cap.grad.shape[0]), plan.name
        return 0, live[0][1].name

    def _check_layout(
        self,
        module: nn.Module,
        plan: LayerPlan,
        caps: list[_Capture],
        batch: int,
        source: str | None,
    ) -> None:
        """Refuse a layer whose dimension 0 is not provably the batch's examples."""
        label = f"{plan.name} ({plan.module_type})"
        if source is None:
            batch_said = f"the batch the data loader gave has {batch} examples"
        else:
            batch_said = f"the batch has {batch} examples (read from layer {source})"
        ambiguous: tuple[str, tuple[int, ...], int] | None = None
        for cap in caps:
            assert cap.grad is not None
            seen = [("input", t) for t in cap.args if isinstance(t, torch.Tensor)]
            for what, t in [*seen, ("output gradient", cap.grad)]:
                shape = tuple(t.shape)
                lead = _batch_dims(module, t, output=what == "output gradient")
                if lead < 1:
                    raise UnsupportedModuleError(
                        f"{label} got an {what} of shape {shape} with no batch dimension (an "
                        "unbatched call, or a layer that reduces over the batch); give every "
                        "layer (batch, ...) tensors. Nothing was released"
                    )
                if shape[0] != batch:
                    raise UnsupportedModuleError(
                        f"{label} got an {what} of shape {shape}, but {batch_said}. "
                        "Per-example clipping reads example i at index i of dimension 0 of "
                        "every layer's input and output gradient, so a layer applied to a "
                        "(sequence, batch, feature) tensor would be clipped per position, not "
                        "per example, and the privacy bound would not hold. Put the batch "
                        "dimension first (batch_first=True, or x.transpose(0, 1) before this "
                        "layer). Nothing was released"
                    )
                others = [d for d in range(1, lead) if shape[d] == batch]
                if batch > 1 and others and ambiguous is None:
                    ambiguous = (what, shape, others[0])
        if ambiguous is None:
            if source is None and batch > 1:
                self.proven.add(id(module))
        elif id(module) not in self.proven:
            what, shape, dim = ambiguous
            raise UnsupportedModuleError(
                f"{label} got an {what} of shape {shape} and {batch_said}: dimensions 0 and "
                f"{dim} both have that size, and this layer has not yet been seen with a "
                "batch of another size, so Tutela cannot prove that dimension 0 holds the "
                "examples (a (sequence, batch, feature) tensor looks the same). This happens "
                "when a sequence length equals the batch size: call optimizer.zero_grad() and "
                "go on with the next batch (Poisson batches vary in size), or change the "
                "sequence length. Nothing was released"
            )

    def _per_example_norms(self) -> _StepGradients:
        live = []
        for module, plan in self.layers:
            caps = [c for c in self.captures.get(id(module), []) if c.grad is not None]
            if caps:
                live.append((module, plan, caps))
        if not live:
            return _StepGradients(torch.zeros(0))
        batch, source = self._batch_size(live)
        for module, plan, caps in live:
            self._check_layout(module, plan, caps, batch, source)
        if batch == 0:
            return _StepGradients(torch.zeros(0))
        scale = float(batch) if self.loss_reduction == "mean" else 1.0
        norm2: torch.Tensor | None = None
        ghost: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        # per-example gradients by parameter, summed over the layers that share it
        per_param: dict[int, tuple[nn.Parameter, torch.Tensor]] = {}
        for module, plan, caps in live:
            gs = [c.grad * scale for c in caps if c.grad is not None]
            if plan.path == "ghost" and len(caps) == 1 and not isinstance(module, nn.LayerNorm):
                n2 = ghost_norm2(module, caps[0].args[0], gs[0])
                norm2 = n2 if norm2 is None else norm2 + n2
                ghost.append((module, caps[0].args[0], gs[0]))
                continue
            params = self.param_names[id(module)]
            for n, v in per_example(
                module, plan, [(c.args, c.kwargs, g) for c, g in zip(caps, gs, strict=True)]
            ).items():
                p = params[n]
                earlier = per_param.get(id(p))
                per_param[id(p)] = (p, v if earlier is None else earlier[1] + v)
        for _, v in per_param.values():
            n2 = v.reshape(batch, -1).pow(2).sum(1)
            norm2 = n2 if norm2 is None else norm2 + n2
        assert norm2 is not None
        norms = norm2.clamp_min(0).sqrt()
        bad = torch.nonzero(~torch.isfinite(norms)).flatten().tolist()
        if bad:
            raise DataError(
                f"{len(bad)} of the {batch} examples in this batch (positions {bad[:10]}) "
                "have a non-finite gradient: a NaN or inf in their features or labels, or a "
                "loss that overflows for them, would make the whole noisy update non-finite. "
                "Nothing was released; repair or drop those records, then call "
                "optimizer.zero_grad() and go on"
            )
        return _StepGradients(norms, ghost, list(per_param.values()))

    def clip(self, step: _StepGradients, max_grad_norm: float) -> dict[nn.Parameter, torch.Tensor]:
        """sum_i c_i grad_i per parameter, c_i = min(1, C / ||grad_i||), from ``step``."""
        if step.norms.numel() == 0:
            return {}
        c = (max_grad_norm / (step.norms + _NORM_EPS)).clamp(max=1.0)
        sums: dict[nn.Parameter, torch.Tensor] = {}
        for module, a, g in step.ghost:
            params = self.param_names[id(module)]
            for n, v in ghost_sum(module, a, g, c).items():
                sums[params[n]] = v
        for p, v in step.per_param:
            sums[p] = torch.einsum("b...,b->...", v, c.to(v.dtype))
        return sums
