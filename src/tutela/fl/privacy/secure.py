"""SecAgg+ aggregation of an FL round's updates, and the study-level summary of its rounds.

:class:`SecureAggregator` runs SecAgg+ (:mod:`tutela.secagg`) over the sites' updates, so
the coordinator learns only their weighted sum.

Security: with :class:`SecureAggregator` the strategy receives only the weighted mean update
(``FitAggregate.updates is None``); the individual updates exist only inside the SecAgg+
client state machines, which send masked vectors. No differential privacy is claimed here:
the sum itself is released exactly (up to quantisation) unless the config adds DDP noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tutela.errors import QuorumNotMet
from tutela.fl.records import Parameters, ParameterSpec
from tutela.fl.strategy import ClientUpdate, FitAggregate
from tutela.secagg import DropoutPlan, SecAggConfig, secure_sum
from tutela.secagg.simulate import ClientHosts


@dataclass
class SecureAggregator:
    """Sample-weighted mean of the updates through one SecAgg+ round per FL round.

    Args:
        config: SecAgg+ settings (k, t, modulus, clip range, dropout tolerance, DDP noise).
        weighted: weight each update by its site's row count (the weight travels masked).
        dropouts: optional per-round dropout plans (simulation and tests).
        client_hosts: where the sites' SecAgg+ clients run (e.g. the Ray backend's workers,
            bound by ``run_study``); this process by default.
    """

    config: SecAggConfig
    weighted: bool = True
    dropouts: dict[int, DropoutPlan] = field(default_factory=dict)
    client_hosts: ClientHosts | None = field(default=None, repr=False)
    reveals_individual_updates: bool = field(default=False, init=False)
    _reports: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)

    def aggregate(
        self, server_round: int, updates: Sequence[ClientUpdate], reference: Parameters
    ) -> FitAggregate:
        spec = ParameterSpec.of(reference)
        ids = dict(enumerate(updates))
        inputs = {i: spec.flatten(u.update) for i, u in ids.items()}
        weights = {i: float(u.num_examples) for i, u in ids.items()} if self.weighted else None
        result = secure_sum(
            inputs,
            weights,
            self.config,
            dropouts=self.dropouts.get(server_round),
            hosts=self.client_hosts,
        )
        if result.weight_total <= 0:
            raise QuorumNotMet("secure aggregation ended with no weight")
        mean = spec.unflatten(result.total / result.weight_total)
        report = result.report()
        report["round"] = server_round
        self._reports.append(report)
        return FitAggregate(
            mean_update=mean,
            num_examples=round(result.weight_total)
            if self.weighted
            else sum(ids[i].num_examples for i in result.survivors),
            num_sites=len(result.survivors),
            updates=None,
        )

    def report(self) -> dict[str, Any] | None:
        """Study-level summary for ``results.json`` (``secure_aggregation`` section)."""
        return summarise_secagg_rounds(self._reports)


def summarise_secagg_rounds(reports: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Fold per-round SecAgg+ reports (each with its ``round``) into the study-level summary."""
    if not reports:
        return None
    last = reports[-1]
    dropped: dict[str, int] = {}
    for r in reports:
        for stage, count in r["dropped_count"].items():
            dropped[stage] = dropped.get(stage, 0) + int(count)
    keep = (
        "protocol", "version", "n", "k", "complete_graph", "threshold", "max_colluding_clients",
        "min_survivors", "modulus_bits", "bytes_per_parameter", "clip", "quantization_step",
    )  # fmt: skip
    return {
        **{k: last[k] for k in keep if k in last},
        "rounds": len(reports),
        "dropped_per_stage": dropped,
        "quantization_error_bound": max(r["quantization_error_bound"] for r in reports),
        "clipped_values": sum(int(r["clipped_values"]) for r in reports),
        "ddp": last.get("ddp"),
        "per_round": [
            {
                "round": r["round"],
                "survivors": r["survivors"],
                "dropped_count": r["dropped_count"],
                "server_cpu_ms": r.get("server_cpu_ms"),
            }
            for r in reports
        ],
    }


def secagg_config_from_study(section: Any) -> SecAggConfig:
    """Translate the study's ``[secure_aggregation]`` section into a :class:`SecAggConfig`."""
    return SecAggConfig(
        neighbors=section.neighbors,
        threshold=section.threshold,
        modulus_bits=section.modulus_bits,
        clip=section.clip_range,
    )


def max_abs_difference(a: Parameters, b: Parameters) -> float:
    """Largest absolute coordinate difference between two parameter sets."""
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)
