"""Real PyTorch models: the built-in tabular ones, your own named by a factory, and moving
their weights to and from records."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import importlib.machinery
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from tutela.errors import ConfigError, DataError
from tutela.fl.records import Parameters, check_compatible


class ModelKind(StrEnum):
    LOGISTIC = "logistic"
    MLP = "mlp"
    POLY_MLP = "poly-mlp"
    """Hidden layers with the quadratic activation an HE service evaluates exactly."""


class QuadraticActivation(nn.Module):
    """``a0 + a1 h + a2 h^2`` elementwise: the activation of the ``poly-mlp`` kind.

    Its default coefficients are :data:`tutela.he.network.QUADRATIC_RELU`, the polynomial
    the HE service evaluates under CKKS, which reads them back from this module
    (:attr:`coefficients`) so the two cannot diverge. It holds no parameters (DP-SGD clips
    only the affine layers around it).
    """

    def __init__(self, coefficients: tuple[float, float, float] | None = None) -> None:
        super().__init__()
        if coefficients is None:
            from tutela.he.network import QUADRATIC_RELU  # imported here: it pulls in TenSEAL

            coefficients = QUADRATIC_RELU
        a0, a1, a2 = (float(c) for c in coefficients)
        self.coefficients: tuple[float, float, float] = (a0, a1, a2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a0, a1, a2 = self.coefficients
        return a0 + h * (a1 + a2 * h)

    def extra_repr(self) -> str:
        a0, a1, a2 = self.coefficients
        return f"{a0:g} + {a1:g} h + {a2:g} h^2"


def build_model(
    kind: ModelKind | str, n_features: int, *, hidden: Sequence[int] = (32,), seed: int = 0
) -> nn.Module:
    """Build a binary classifier returning one logit per row.

    Args:
        kind: ``logistic`` (one linear layer), ``mlp`` (ReLU hidden layers) or
            ``poly-mlp`` (hidden layers with :class:`QuadraticActivation`, servable under HE).
        n_features: input width.
        hidden: hidden layer widths for the MLP.
        seed: initial weights are a deterministic function of this seed.
    """
    if n_features < 1:
        raise ValueError("n_features must be positive")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        kind = ModelKind(kind)
        if kind is ModelKind.LOGISTIC:
            return nn.Sequential(nn.Linear(n_features, 1))
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            act = QuadraticActivation() if kind is ModelKind.POLY_MLP else nn.ReLU()
            layers += [nn.Linear(width, h), act]
            width = h
        layers.append(nn.Linear(width, 1))
        return nn.Sequential(*layers)
    finally:
        torch.random.set_rng_state(generator_state)


def get_parameters(module: nn.Module) -> Parameters:
    """Copy a module's trainable parameters into named float32 arrays."""
    return {
        name: p.detach().cpu().numpy().astype(np.float32, copy=True)
        for name, p in module.named_parameters()
    }


def set_parameters(module: nn.Module, params: Parameters) -> None:
    """Load named arrays into a module in place (names and shapes must match)."""
    current = get_parameters(module)
    try:
        check_compatible(params, current)
    except DataError:
        raise
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.from_numpy(np.asarray(params[name], np.float32)))


# -- models named by a factory ---------------------------------------------------------------

ModelFactoryFn = Callable[..., nn.Module]


def _split_factory(spec: str) -> tuple[str, str]:
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"model factory {spec!r}: expected 'package.module:function'")
    return module, attr


def factory_source_path(spec: str, search: Sequence[Path] = ()) -> Path:
    """The source file of the factory's module, found without importing (executing) it.

    ``search`` directories are looked in before ``sys.path`` (``tutela model hash`` passes
    the current directory, which a console script does not have on its path)."""
    module, _ = _split_factory(spec)
    parts = module.split(".")
    locations: list[str] | None = [str(d) for d in search] + sys.path if search else None
    found = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        found = importlib.machinery.PathFinder.find_spec(name, locations)
        if found is None:
            raise ConfigError(f"model factory {spec!r}: module {name!r} is not installed here")
        if i < len(parts) - 1:
            if found.submodule_search_locations is None:
                raise ConfigError(f"model factory {spec!r}: {name!r} is not a package")
            locations = list(found.submodule_search_locations)
    if found is None or found.origin is None or not found.origin.endswith(".py"):
        raise ConfigError(f"model factory {spec!r}: its module has no Python source file")
    return Path(found.origin)


def factory_source_sha256(spec: str, search: Sequence[Path] = ()) -> str:
    """SHA-256 (hex) of the factory module's source file, computed without importing it.

    Security: the hash covers that one file, not the modules it imports; pin those with
    the site's environment (a locked, reviewed install).
    """
    return hashlib.sha256(factory_source_path(spec, search).read_bytes()).hexdigest()


def load_factory(spec: str, source_sha256: str) -> ModelFactoryFn:
    """Import a model factory after checking its module's source against ``source_sha256``.

    Raises:
        ConfigError: the module is missing, its source differs from the hash (nothing was
            imported), or the name is not a callable.
    """
    actual = factory_source_sha256(spec)
    if not hmac.compare_digest(actual, source_sha256):
        raise ConfigError(
            f"model factory {spec!r}: its source here has SHA-256 {actual}, "
            f"not the study's {source_sha256}"
        )
    module, attr = _split_factory(spec)
    try:
        fn = getattr(importlib.import_module(module), attr)
    except AttributeError:
        raise ConfigError(f"model factory {spec!r}: {module} has no {attr!r}") from None
    if not callable(fn):
        raise ConfigError(f"model factory {spec!r} is not callable")
    return cast(ModelFactoryFn, fn)


def seeded_factory(
    fn: ModelFactoryFn, seed: int, options: Mapping[str, Any] | None = None, **context: Any
) -> Callable[[], nn.Module]:
    """A zero-argument builder calling ``fn(**options)`` under ``seed`` (the same initial
    weights every time, without disturbing the caller's random state). ``context`` entries
    (e.g. ``n_features``) are passed only if ``fn`` takes an argument of that name."""
    kwargs = dict(options or {})
    try:
        accepted = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature take no context
        accepted = {}  # type: ignore[assignment]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    for name, value in context.items():
        if name in accepted or takes_any:
            kwargs.setdefault(name, value)

    def build() -> nn.Module:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            model = fn(**kwargs)
        finally:
            torch.random.set_rng_state(state)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"the model factory returned {type(model).__name__}, not a Module")
        return model

    return build


def parameter_spec(params: Parameters) -> dict[str, list[int]]:
    """``{name: shape}`` of named arrays (what a study announces of its model)."""
    return {name: [int(d) for d in value.shape] for name, value in sorted(params.items())}


def check_parameter_spec(params: Parameters, expected: Any) -> None:
    """Refuse a model whose parameter names or shapes differ from ``expected`` (``{name:
    shape}``, as :func:`parameter_spec` writes it), naming the first differences.

    Raises:
        DataError: they differ, or ``expected`` is malformed.
    """
    if not isinstance(expected, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(type(d) is int for d in v)
        for k, v in expected.items()
    ):
        raise DataError("the study's parameter spec is malformed")
    have = parameter_spec(params)
    missing = sorted(set(expected) - set(have))
    extra = sorted(set(have) - set(expected))
    shapes = sorted(n for n in set(have) & set(expected) if have[n] != expected[n])
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing[:5]))
    if extra:
        problems.append("unexpected " + ", ".join(extra[:5]))
    if shapes:
        problems.append(
            "shape of " + ", ".join(f"{n} {have[n]} != {expected[n]}" for n in shapes[:5])
        )
    if problems:
        raise DataError("the model does not match the study's: " + "; ".join(problems))
