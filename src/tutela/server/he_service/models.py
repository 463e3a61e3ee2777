"""The model an HE service evaluates, loaded from a run directory or a model file.

A run directory (``tutela demo``, ``tutela run``) of a ``logistic`` or ``poly-mlp`` study
(the latter's activation read from the module the sites trained) holds ``results.json`` and
the global model encrypted at rest (``model.safetensors.enc``, under the governance keyring
of whoever ran the study). The standardisation the sites trained with is read from the model
file's safetensors metadata (``tutela.standardisation``) or ``standardisation.json`` beside
it, and folded into the first layer, so data owners encrypt raw values.

A model file (``*.safetensors``, written by :func:`save_model_file`) holds the layers as
``layers.{i}.weight`` / ``layers.{i}.bias`` and, in its metadata under ``tutela.he``, the
features, their ranges, the standardisation and the activation.

Feature ranges: the study's declared ``data.feature_bounds`` where it has one, else the
mean plus or minus twenty standard deviations of the standardisation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from torch import nn

from tutela.errors import ConfigError, DataError
from tutela.fl.models import (
    ModelKind,
    QuadraticActivation,
    build_model,
    check_parameter_spec,
    get_parameters,
    parameter_spec,
)
from tutela.fl.records import parameters_from_bytes, parameters_to_bytes
from tutela.governance.envelope import Envelope
from tutela.governance.home import open_keyring
from tutela.governance.results import load_results
from tutela.he.network import QUADRATIC_RELU, PolyNetwork

__all__ = [
    "MODEL_META",
    "RANGE_DEVIATIONS",
    "STANDARDISATION_META",
    "load_network",
    "save_model_file",
]

MODEL_META = "tutela.he"
STANDARDISATION_META = "tutela.standardisation"
RANGE_DEVIATIONS = 20.0
_LAYER = re.compile(r"^(?:layers\.)?(\d+)\.(weight|bias)$")
_MAX_MODEL_BYTES = 256 << 20


def _layers(params: Mapping[str, npt.NDArray[Any]]) -> list[tuple[Any, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for name, value in params.items():
        m = _LAYER.match(name)
        if m is None:
            raise DataError(f"unexpected tensor {name!r}: only affine layers can be served")
        found.setdefault(int(m.group(1)), {})[m.group(2)] = np.asarray(value, np.float64)
    layers = []
    for index in sorted(found):
        entry = found[index]
        if set(entry) != {"weight", "bias"}:
            raise DataError(f"layer {index} needs both a weight and a bias")
        layers.append((entry["weight"], entry["bias"]))
    if not layers:
        raise DataError("the model holds no layers")
    return layers


def _ranges(
    features: Sequence[str], mean: Any, std: Any, bounds: Mapping[str, Any]
) -> list[tuple[float, float]]:
    out = []
    for j, name in enumerate(features):
        if name in bounds:
            low, high = bounds[name]
            out.append((float(low), float(high)))
        else:
            out.append(
                (
                    float(mean[j] - RANGE_DEVIATIONS * std[j]),
                    float(mean[j] + RANGE_DEVIATIONS * std[j]),
                )
            )
    return out


def _standardisation(doc: Any, n: int, where: str) -> tuple[Any, Any]:
    try:
        mean = np.asarray(doc["mean"], np.float64).reshape(-1)
        std = np.asarray(doc["std"], np.float64).reshape(-1)
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: malformed standardisation") from None
    if mean.shape != (n,) or std.shape != (n,):
        raise DataError(f"{where}: the standardisation does not match the {n} features")
    return mean, std


def _load_run(run_dir: Path, keyring: Path | None) -> tuple[PolyNetwork, str]:
    results = load_results(run_dir / "results.json")
    features = list(results.dataset.features)
    extra = results.config.model_extra or {}
    built = _run_module(extra.get("model") or {}, len(features))
    blob_path = run_dir / "model.safetensors.enc"
    try:
        blob = blob_path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"no model.safetensors.enc in {run_dir}") from None
    raw = Envelope(open_keyring(keyring, create=False)).decrypt(blob, name="model.safetensors.enc")
    params = parameters_from_bytes(raw, max_bytes=_MAX_MODEL_BYTES)
    try:  # the stored layers are those of the model kind the run declares
        check_parameter_spec(params, parameter_spec(get_parameters(built)))
    except DataError as exc:
        raise DataError(f"{run_dir}: {exc}") from None
    acts = {m.coefficients for m in built.modules() if isinstance(m, QuadraticActivation)}
    activation = acts.pop() if acts else QUADRATIC_RELU
    meta = _safetensors_metadata(raw)
    if STANDARDISATION_META in meta:
        doc = json.loads(meta[STANDARDISATION_META])
    elif (run_dir / "standardisation.json").is_file():
        doc = json.loads((run_dir / "standardisation.json").read_text(encoding="utf-8"))
    else:
        raise ConfigError(
            f"the run {run_dir} does not record the standardisation its sites trained with; "
            "run the study again with this version of Tutela"
        )
    mean, std = _standardisation(doc, len(features), str(run_dir))
    bounds = (
        dict(getattr(results.config.data, "model_extra", None) or {}).get("feature_bounds") or {}
    )
    try:
        network = PolyNetwork.from_standardised(
            features, _layers(params), mean, std, _ranges(features, mean, std, bounds), activation
        )
    except ValueError as exc:
        raise DataError(f"{run_dir}: {exc}") from None
    return network, results.config.study.name


def _run_module(model: Mapping[str, Any], n_features: int) -> nn.Module:
    """The built-in module a run's sites trained (its declared kind and widths): the service
    checks the stored layers against it and reads its activation from it
    (:class:`~tutela.fl.models.QuadraticActivation`), so the served polynomial is the trained
    one. A kind with non-polynomial activations, or a model factory, is refused."""
    if model.get("factory"):
        raise ConfigError(
            "the run trained its own model factory, whose layers the service cannot verify; "
            "export it as a polynomial MLP model file"
        )
    try:
        kind = ModelKind(model.get("kind", "logistic"))
        hidden = tuple(int(h) for h in model.get("hidden", (32,)))
    except (TypeError, ValueError):
        raise ConfigError(f"the run's model {dict(model)!r} is not a built-in kind") from None
    if kind not in (ModelKind.LOGISTIC, ModelKind.POLY_MLP):
        raise ConfigError(
            f"the run's model is a {kind.value!r}: its ReLU activations cannot be evaluated "
            "exactly under CKKS; train a 'poly-mlp' (or 'logistic') model to serve it"
        )
    return build_model(kind, n_features, hidden=hidden)


def _safetensors_metadata(raw: bytes) -> dict[str, str]:
    if len(raw) < 8:
        return {}
    size = int.from_bytes(raw[:8], "little")
    try:
        header = json.loads(raw[8 : 8 + size])
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def save_model_file(
    path: Path,
    features: Sequence[str],
    layers: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    mean: npt.ArrayLike,
    std: npt.ArrayLike,
    *,
    ranges: Sequence[tuple[float, float]] | None = None,
    activation: tuple[float, float, float] = QUADRATIC_RELU,
) -> PolyNetwork:
    """Write a model file (layers trained on standardised inputs) and return its network."""
    mu = np.asarray(mean, np.float64)
    sd = np.asarray(std, np.float64)
    spans = list(ranges) if ranges is not None else _ranges(features, mu, sd, {})
    network = PolyNetwork.from_standardised(features, layers, mu, sd, spans, activation)
    tensors = {}
    for i, (w, b) in enumerate(layers):
        tensors[f"layers.{i}.weight"] = np.asarray(w, np.float32)
        tensors[f"layers.{i}.bias"] = np.asarray(b, np.float32).reshape(-1)
    meta = {
        "features": list(features),
        "ranges": [list(r) for r in spans],
        "mean": mu.tolist(),
        "std": sd.tolist(),
        "activation": list(activation),
    }
    path.write_bytes(parameters_to_bytes(tensors, metadata={MODEL_META: json.dumps(meta)}))
    return network


def _load_file(path: Path) -> tuple[PolyNetwork, str]:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path} is a directory without results.json") from None
    params = parameters_from_bytes(raw, max_bytes=_MAX_MODEL_BYTES)
    meta = _safetensors_metadata(raw)
    if MODEL_META not in meta:
        raise DataError(f"{path} is not a Tutela HE model file (no {MODEL_META} metadata)")
    try:
        doc = json.loads(meta[MODEL_META])
        features = [str(f) for f in doc["features"]]
        ranges = [(float(lo), float(hi)) for lo, hi in doc["ranges"]]
        a0, a1, a2 = (float(c) for c in doc["activation"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        raise DataError(f"{path}: malformed {MODEL_META} metadata") from None
    mean, std = _standardisation(doc, len(features), str(path))
    try:
        network = PolyNetwork.from_standardised(
            features, _layers(params), mean, std, ranges, (a0, a1, a2)
        )
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None
    return network, path.stem


def load_network(path: str | Path, *, keyring: Path | None = None) -> tuple[PolyNetwork, str]:
    """The network at ``path`` (a run directory or a model file) and a name for its card.

    Raises:
        DataError: not a run directory or model file, or a malformed one.
        ConfigError: the run's model cannot be evaluated exactly, or lacks its
            standardisation.
    """
    target = Path(path)
    if not target.exists():
        raise FileNotFoundError(f"no model at {target}")
    if target.is_dir() and (target / "results.json").is_file():
        return _load_run(target, keyring)
    return _load_file(target)
