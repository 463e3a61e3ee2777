import pytest

from tutela.errors import ConfigError
from tutela.fl.config import load_study, parse_study
from tutela.fl.recipes import flagship_config


def test_example_study_loads():
    cfg = load_study("examples/healthcare/study.toml")
    assert cfg.data.sites == 5
    assert cfg.resolved()["strategy"]["name"] == "fedavg"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"data": {"sites": 0}}, "data.sites"),
        ({"training": {"fraction_fit": 1.5}}, "training.fraction_fit"),
        ({"training": {"rounds": "many"}}, "training.rounds"),
        ({"data": {"colour": "blue"}}, "data.colour: unknown key"),
        ({"bogus": {}}, "bogus: unknown key"),
        ({"data": {"dataset": "adult"}}, "data.dataset"),
        ({"privacy": {"mode": "sample"}}, "privacy.epsilon is required"),
        ({"privacy": {"mode": "client", "epsilon": -1}}, "privacy.epsilon"),
        ({"data": {"sites": 3}, "training": {"min_quorum": 4}}, "min_quorum cannot exceed"),
        (
            {"strategy": {"name": "fedmedian"}, "secure_aggregation": {"protocol": "secagg+"}},
            "cannot run with secure_aggregation",
        ),
    ],
)
def test_invalid_configs_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_study(data)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_study(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\nsites = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_study(bad)


def test_flagship_overrides():
    cfg = flagship_config(quick=True, epsilon=2.0, sites=2)
    assert cfg.training.rounds == 10
    assert cfg.privacy.mode == "sample"
    assert cfg.training.min_quorum == 2


@pytest.mark.parametrize(
    ("neighbors", "threshold", "message"),
    [(4, 2, "above half"), (4, 5, "exceed"), (None, 1, "at least 2")],
)
def test_a_secure_aggregation_threshold_sites_would_refuse_is_refused_at_load(
    neighbors, threshold, message
):
    section = {"protocol": "secagg+", "threshold": threshold}
    if neighbors is not None:
        section["neighbors"] = neighbors
    with pytest.raises(ConfigError, match=message):
        parse_study({"secure_aggregation": section})


def test_a_majority_threshold_is_accepted():
    cfg = parse_study(
        {"secure_aggregation": {"protocol": "secagg+", "neighbors": 4, "threshold": 3}}
    )
    assert cfg.secure_aggregation.threshold == 3
