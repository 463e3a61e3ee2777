"""Standardisation over the network: under SecAgg+ no per-site statistic leaves a site in the
clear, the pooled statistics are the in-process ones, and a private study's sites pay for
their release before their first round.

The runs use the real TLS coordinator and real site agents (on threads, so the test seams
reach them): every request an agent sends is recorded and searched for the site's exact
feature sums and sums of squares (in the features' units and in the declared-range units the
secure round uses), and for their means, as JSON numbers and as raw float64/float32 bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tutela.dp.ledger import PrivacyLedger
from tutela.fl import standardisation as fl_standardisation
from tutela.fl.client import FeatureMoments, LocalSite
from tutela.fl.config import StudyConfig
from tutela.fl.privacy import standardisation_noise_multiplier
from tutela.fl.recipes import LEDGER_PLD_GRID, flagship_config
from tutela.fl.study import prepare_data, prepare_sites
from tutela.server.agent.transport import SiteTransport
from tutela.server.deploy import run_study_over_network


def _config(**overrides: Any) -> StudyConfig:
    config = flagship_config(rounds=1, sites=3, **overrides)
    config = config.with_overrides(training={"local_epochs": 1})
    return config.with_overrides(data={"columns": prepare_data(config).columns})


class _Capture:
    """Every request the agents send, and every moment vector their sites computed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.moments: dict[str, list[FeatureMoments]] = {}
        request, moments = SiteTransport.request, LocalSite.feature_moments
        capture = self

        def recording_request(
            transport: SiteTransport, method: str, path: str, **kwargs: Any
        ) -> Any:
            if "json" in kwargs:
                body = json.dumps(kwargs["json"]).encode()
            else:
                body = bytes(kwargs.get("content") or b"")
            capture.sent.append((transport.site, path, body))
            return request(transport, method, path, **kwargs)

        def recording_moments(site: LocalSite, *args: Any, **kwargs: Any) -> FeatureMoments:
            result = moments(site, *args, **kwargs)
            known = capture.moments.setdefault(site.site_id, [])
            known.extend([result, moments(site)])  # the bounded ones and the raw ones
            return result

        monkeypatch.setattr(SiteTransport, "request", recording_request)
        monkeypatch.setattr(LocalSite, "feature_moments", recording_moments)

    def statistics(self, site: str) -> list[float]:
        """The site's exact sums, sums of squares and their per-row means (nonzero ones)."""
        values: list[float] = []
        for m in self.moments[site]:
            for arr in (m.total, m.total_sq, m.total / m.count, m.total_sq / m.count):
                values.extend(float(v) for v in arr if abs(v) > 1e-9)
        return values


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def _in_the_clear(body: bytes, statistics: list[float]) -> list[float]:
    """The statistics that appear in ``body``: as a JSON number (to 6 significant digits)
    or as the bytes of a float64 or float32."""
    found = []
    try:
        numbers = _numbers(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        numbers = []
    for stat in statistics:
        as_number = any(abs(n - stat) <= 1e-6 * abs(stat) for n in numbers)
        as_bytes = np.float64(stat).tobytes() in body or np.float32(stat).tobytes() in body
        if as_number or as_bytes:
            found.append(stat)
    return found


def test_under_secagg_no_site_statistic_leaves_in_the_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture = _Capture(monkeypatch)
    pooled: list[tuple[np.ndarray, np.ndarray]] = []
    original = fl_standardisation.StandardisationPlan.pooled

    def recording_pooled(self: Any, total: np.ndarray, count: float) -> Any:
        result = original(self, total, count)
        pooled.append(result)
        return result

    monkeypatch.setattr(fl_standardisation.StandardisationPlan, "pooled", recording_pooled)
    config = _config()
    net = run_study_over_network(
        config, tmp_path / "net", sites_as_processes=False, with_baselines=False
    )
    assert [h["status"] for h in net["history"]] == ["aggregated"]
    sites = ("hospital-1", "hospital-2", "hospital-3")
    assert set(capture.moments) == set(sites)  # every site computed its moments...
    for site in sites:
        statistics = capture.statistics(site)
        assert len(statistics) >= 4 * len(config.data.columns or [])
        bodies = [body for name, _, body in capture.sent if name == site]
        assert any(b'"num_examples"' in body for body in bodies)  # the declared count
        for body in bodies:  # ...and none of them left in the clear
            assert _in_the_clear(body, statistics) == []
            assert b'"moments"' not in body and b'"noised"' not in body
        joined = [b for name, path, b in capture.sent if name == site and "participation" in path]
        assert len(joined) == 1
        assert set(json.loads(joined[0])) == {
            "accept",
            "num_examples",
            "identity",
            "certificate",
            "binding",
        }
    # The seam would find them: the plain study's join answer carries them in the clear.
    plain = [m.total[0] for m in capture.moments["hospital-1"]]
    assert _in_the_clear(json.dumps({"moments": {"total": plain}}).encode(), plain) != []
    # The coordinator pooled the secure sum into the in-process statistics (noise off); the
    # runner's own in-process preparation (for the test set) pooled once more before.
    assert len(pooled) == 2
    in_process = prepare_sites(config, prepare_data(config))
    for mean, std in pooled:
        np.testing.assert_allclose(mean, in_process.mean, rtol=1e-10)
        np.testing.assert_allclose(std, in_process.std, rtol=1e-6)


def test_a_private_study_charges_each_site_for_its_standardisation_before_round_1(
    tmp_path: Path,
) -> None:
    config = _config(privacy="sample", epsilon=2.0)
    net = run_study_over_network(
        config, tmp_path / "net", sites_as_processes=False, with_baselines=False
    )
    assert [h["status"] for h in net["history"]] == ["aggregated"]
    z = standardisation_noise_multiplier(2.0, config.privacy.delta, "pld")
    study = net["deployment"]["study_id"]
    for name in ("hospital-1", "hospital-2", "hospital-3"):
        state = tmp_path / "net" / "sites" / name / "state"
        ledger = PrivacyLedger(
            state / f"ledger-{study}.sqlite", value_discretization_interval=LEDGER_PLD_GRID
        )
        first, *rounds = ledger.records(f"site:{name}")
        assert "standardisation" in first.label and first.event.noise_multiplier == z
        assert len(rounds) == 1 and "round 1" in rounds[0].label
        assert 0 < ledger.spent(f"site:{name}") <= 2.0
        assert net["privacy"]["per_site"][name]["epsilon"] == pytest.approx(
            ledger.spent(f"site:{name}")
        )
