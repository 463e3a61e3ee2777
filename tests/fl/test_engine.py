import numpy as np
import pytest

from tutela.errors import ConfigError, TransportError
from tutela.fl.client import LocalSite, LocalTraining
from tutela.fl.engine import RoundEngine
from tutela.fl.models import build_model, get_parameters
from tutela.fl.records import EvaluateIns, FitIns
from tutela.fl.strategy import FedAvg, FedMedian


def _sites(n, rows=40, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=4)
    factory = lambda: build_model("logistic", 4, seed=1)
    sites = {}
    for i in range(n):
        x = rng.normal(size=(rows, 4)).astype(np.float32)
        y = (x @ w + 0.3 * rng.normal(size=rows) > 0).astype(np.int64)
        sites[f"s{i}"] = LocalSite(
            f"s{i}", x, y, factory, LocalTraining(epochs=1, learning_rate=0.5), seed=i
        )
    return sites, factory


class Flaky:
    def __init__(self, site, fail):
        self.site_id, self._site, self._fail = site.site_id, site, fail

    def fit(self, ins):
        if self._fail:
            raise TransportError("gone")
        return self._site.fit(ins)

    def evaluate(self, ins):
        return self._site.evaluate(ins)


def test_training_improves_the_global_model():
    sites, factory = _sites(4)
    eng = RoundEngine(
        FedAvg(min_fit_sites=2),
        sites,
        min_quorum=2,
        evaluate_fn=lambda p: sites["s0"].evaluate(EvaluateIns(p)).metrics,
    )
    start = get_parameters(factory())
    before = sites["s0"].evaluate(EvaluateIns(start)).metrics["log_loss"]
    final = eng.run(5, start)
    assert [r.status for r in eng.history] == ["aggregated"] * 5
    assert eng.history[-1].metrics["log_loss"] < before
    assert not np.allclose(final["0.weight"], start["0.weight"])


def test_dropped_site_is_handled_and_quorum_enforced():
    sites, factory = _sites(3)
    start = get_parameters(factory())
    one_down = {k: Flaky(s, k == "s1") for k, s in sites.items()}
    eng = RoundEngine(FedAvg(min_fit_sites=3), one_down, min_quorum=2)
    new, rec = eng.run_round(1, start)
    assert rec.status == "aggregated" and rec.failed == ("s1",) and len(rec.sites) == 2
    all_down = {k: Flaky(s, k != "s0") for k, s in sites.items()}
    eng = RoundEngine(FedAvg(min_fit_sites=3), all_down, min_quorum=2)
    same, rec = eng.run_round(1, start)
    assert rec.status == "quorum-not-met"
    assert all(np.array_equal(same[k], start[k]) for k in start)


def test_site_sending_wrong_shape_counts_as_failure():
    sites, factory = _sites(2)
    start = get_parameters(factory())

    class Evil:
        site_id = "evil"

        def fit(self, ins):
            return (
                sites["s0"]
                .fit(FitIns(ins.parameters))
                .__class__(
                    {"0.weight": np.zeros((2, 2), np.float32), "0.bias": np.zeros(1, np.float32)},
                    10,
                )
            )

        def evaluate(self, ins):
            raise AssertionError

    eng = RoundEngine(FedAvg(min_fit_sites=2), {"s0": sites["s0"], "evil": Evil()}, min_quorum=1)
    _, rec = eng.run_round(1, start)
    assert rec.failed == ("evil",) and rec.sites == ("s0",)


def test_local_site_rejects_bad_data():
    factory = lambda: build_model("logistic", 2)
    with pytest.raises(Exception, match="NaN"):
        LocalSite(
            "x", np.array([[np.nan, 1.0]], np.float32), np.array([1]), factory, LocalTraining()
        )
    with pytest.raises(Exception, match="disagree"):
        LocalSite("x", np.zeros((3, 2), np.float32), np.array([1]), factory, LocalTraining())


def test_robust_strategy_with_hiding_aggregator_is_refused():
    class Hiding:
        reveals_individual_updates = False

    sites, _ = _sites(2)
    with pytest.raises(ConfigError, match="hides"):
        RoundEngine(FedMedian(), sites, aggregator=Hiding())


def test_fedprox_local_term_keeps_sites_closer_to_global():
    sites, factory = _sites(1, rows=200)
    start = get_parameters(factory())
    s = sites["s0"]
    free = s.fit(FitIns(start, {"local_epochs": 3, "proximal_mu": 0.0})).parameters
    prox = s.fit(FitIns(start, {"local_epochs": 3, "proximal_mu": 1.0})).parameters
    dist = lambda p: sum(float(np.sum((p[k] - start[k]) ** 2)) for k in p)
    assert dist(prox) < dist(free)
