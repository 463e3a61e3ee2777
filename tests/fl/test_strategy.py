import numpy as np
import pytest

from tutela.errors import ConfigError
from tutela.fl.engine import PlainAggregator
from tutela.fl.strategy import (
    ClientUpdate,
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedTrimmedMean,
    FedYogi,
    sample_sites,
)


def _p(*values):
    return {"w": np.array(values, np.float32)}


def _aggregate(updates):
    return PlainAggregator().aggregate(1, updates, _p(0.0, 0.0))


def test_fedavg_is_sample_weighted():
    ups = [ClientUpdate("a", _p(1.0, 2.0), 10), ClientUpdate("b", _p(4.0, -1.0), 30)]
    new = FedAvg().aggregate_fit(1, _p(1.0, 1.0), _aggregate(ups))
    # mean update = (10*[1,2] + 30*[4,-1]) / 40 = [3.25, -0.25]
    np.testing.assert_allclose(new["w"], [4.25, 0.75], rtol=1e-6)


def test_fedadam_step_matches_hand_computation():
    s = FedAdam(server_learning_rate=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    agg = _aggregate([ClientUpdate("a", _p(0.5, -2.0), 1)])
    new = s.aggregate_fit(1, _p(0.0, 0.0), agg)
    # m = 0.1 d ; v = 0.01 d^2 ; step = 0.1 * m / (sqrt(v) + tau)
    d = np.array([0.5, -2.0])
    expected = 0.1 * (0.1 * d) / (np.sqrt(0.01 * d * d) + 1e-3)
    np.testing.assert_allclose(new["w"], expected, rtol=1e-5)
    # A second identical step uses the accumulated moments.
    new2 = s.aggregate_fit(2, new, agg)
    m2 = 0.9 * 0.1 * d + 0.1 * d
    v2 = 0.99 * 0.01 * d * d + 0.01 * d * d
    np.testing.assert_allclose(new2["w"], expected + 0.1 * m2 / (np.sqrt(v2) + 1e-3), rtol=1e-5)


def test_fedyogi_second_moment_differs_from_adam():
    d = np.array([0.5, -2.0])
    agg = _aggregate([ClientUpdate("a", _p(*d), 1)])
    yogi = FedYogi(server_learning_rate=0.1, beta2=0.99, tau=1e-3)
    new = yogi.aggregate_fit(1, _p(0.0, 0.0), agg)
    # v0 = 0: v = 0 - 0.01 d^2 sign(0 - d^2) = 0.01 d^2 (same as Adam on the first step)
    np.testing.assert_allclose(new["w"], 0.1 * 0.1 * d / (np.sqrt(0.01 * d * d) + 1e-3), rtol=1e-5)
    yogi.aggregate_fit(2, new, agg)
    adam = FedAdam(server_learning_rate=0.1, beta2=0.99, tau=1e-3)
    adam.aggregate_fit(1, _p(0.0, 0.0), agg)
    adam.aggregate_fit(2, new, agg)
    # Yogi: v2 = v1 + 0.01 d^2 (v1 < d^2); Adam: v2 = 0.99 v1 + 0.01 d^2
    np.testing.assert_allclose(yogi._v["w"], 0.02 * d * d, rtol=1e-5)
    np.testing.assert_allclose(adam._v["w"], (0.99 * 0.01 + 0.01) * d * d, rtol=1e-5)


def test_median_and_trimmed_mean_resist_outliers():
    ups = [ClientUpdate(str(i), _p(v, -v), 1) for i, v in enumerate([1.0, 1.1, 0.9, 1.05, 1000.0])]
    agg = _aggregate(ups)
    med = FedMedian().aggregate_fit(1, _p(0.0, 0.0), agg)
    np.testing.assert_allclose(med["w"], [1.05, -1.05], rtol=1e-6)
    trimmed = FedTrimmedMean(trim_fraction=0.2).aggregate_fit(1, _p(0.0, 0.0), agg)
    # drop 1 lowest and 1 highest per coordinate: mean(1.0, 1.05, 1.1)
    np.testing.assert_allclose(trimmed["w"], [1.05, -1.05], rtol=1e-6)
    plain = FedAvg().aggregate_fit(1, _p(0.0, 0.0), agg)
    assert plain["w"][0] > 100


def test_robust_strategy_refuses_hidden_updates():
    agg = _aggregate([ClientUpdate("a", _p(1.0, 1.0), 1)])
    hidden = type(agg)(agg.mean_update, agg.num_examples, agg.num_sites, None)
    with pytest.raises(ConfigError, match="secure aggregation"):
        FedMedian().aggregate_fit(1, _p(0.0, 0.0), hidden)


def test_fedprox_sends_mu_and_fedavg_does_not():
    rng = np.random.default_rng(0)
    ins = FedProx(proximal_mu=0.3).configure_fit(1, _p(0.0), ["a", "b"], rng)
    assert all(i.config["proximal_mu"] == 0.3 for _, i in ins)
    assert "proximal_mu" not in FedAvg().configure_fit(1, _p(0.0), ["a", "b"], rng)[0][1].config


def test_sampling_respects_fraction_and_minimum():
    rng = np.random.default_rng(0)
    sites = [f"s{i}" for i in range(10)]
    assert len(sample_sites(sites, 0.3, 2, rng)) == 3
    assert len(sample_sites(sites, 0.05, 2, rng)) == 2
    chosen = sample_sites(sites, 0.5, 1, rng)
    assert len(set(chosen)) == 5


@pytest.mark.parametrize(
    "kwargs", [{"fraction_fit": 0.0}, {"fraction_fit": 1.5}, {"min_fit_sites": 0}]
)
def test_bad_strategy_settings(kwargs):
    with pytest.raises(ConfigError):
        FedAvg(**kwargs)


FRESH = {
    "fedavg": FedAvg,
    "fedprox": lambda: FedProx(proximal_mu=0.1),
    "fedadam": lambda: FedAdam(server_learning_rate=0.1),
    "fedyogi": lambda: FedYogi(server_learning_rate=0.1),
    "fedmedian": FedMedian,
    "trimmed-mean": lambda: FedTrimmedMean(trim_fraction=0.2),
}


def _rounds(strategy, params, count):
    for r in range(1, count + 1):
        ups = [ClientUpdate(str(i), _p(0.3 * i - r, 0.7 * r + i), 5 + i) for i in range(4)]
        params = strategy.aggregate_fit(r, params, _aggregate(ups))
    return params


@pytest.mark.parametrize("steps", [0, 2])
@pytest.mark.parametrize("name", sorted(FRESH))
def test_state_round_trips_through_safetensors_bytes(name, steps):
    from safetensors.numpy import load, save

    original, restored = FRESH[name](), FRESH[name]()
    params = _rounds(original, _p(0.5, -0.25), steps)
    blob = save(original.state_dict(), metadata={"strategy": type(original).__name__})
    restored.load_state_dict(load(blob))
    before, after = original.state_dict(), restored.state_dict()
    assert before.keys() == after.keys()
    for name, value in before.items():
        assert after[name].dtype == value.dtype and np.array_equal(after[name], value), name
    if isinstance(original, FedAdam):
        assert before["initialised"][0] == (1 if steps else 0)
        assert {k for k in before if k != "initialised"} == ({"m/w", "v/w"} if steps else set())
    else:
        assert before == {}
    # The restored strategy continues exactly as the original would.
    ahead, expected = _rounds(restored, params, 2), _rounds(original, params, 2)
    assert ahead.keys() == expected.keys()
    assert all(np.array_equal(ahead[k], expected[k]) for k in expected)


def test_state_dict_is_a_copy():
    s = FedAdam()
    _rounds(s, _p(0.0, 0.0), 1)
    state = s.state_dict()
    state["m/w"][:] = 99.0
    assert not np.array_equal(s.state_dict()["m/w"], state["m/w"])


def test_foreign_state_is_refused():
    with pytest.raises(ValueError, match="keeps no state"):
        FedAvg().load_state_dict({"m/w": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match="initialised"):
        FedAdam().load_state_dict({})
    one = np.ones(1, np.uint8)
    with pytest.raises(ValueError, match="same parameters"):
        FedAdam().load_state_dict({"initialised": one, "m/w": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match="unexpected entry"):
        FedYogi().load_state_dict({"initialised": one, "x/w": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match="uninitialised"):
        FedAdam().load_state_dict(
            {"initialised": np.zeros(1, np.uint8), "m/w": np.zeros(2, np.float32)}
        )
