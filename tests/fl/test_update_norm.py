"""The update-norm bound in process: sites clip to it, the round state machine refuses more.

The lying site here plays what issue 11 measured: it joined claiming 10^15 rows and sends
3e38 in every coordinate; it must not move the global model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.dp.federated import update_norm
from tutela.errors import ConfigError, PolicyViolation
from tutela.fl.bounds import (
    MAX_UPDATE_NORM,
    NORM_TOLERANCE,
    UpdateNormExceeded,
    check_update_norm,
    clip_to_bound,
)
from tutela.fl.config import DEFAULT_MAX_UPDATE_NORM, parse_study, update_norm_bound
from tutela.fl.engine import RoundEngine
from tutela.fl.models import get_parameters
from tutela.fl.records import FitIns, FitRes, Parameters, subtract
from tutela.fl.rounds import RoundPlan, RoundState
from tutela.fl.strategy import FedAvg
from tutela.fl.study import build_strategy, prepare_data, prepare_sites

REF = {"w": np.zeros((2, 3), np.float32), "b": np.zeros((1,), np.float32)}


def _config(**training: object):
    return parse_study(
        {
            "study": {"seed": 5},
            "data": {"dataset": "pima-diabetes", "sites": 3},
            "training": {"rounds": 2, "local_epochs": 1, "min_quorum": 2, **training},
        }
    )


def _state(bound: float | None, declared: dict[str, int] | None = None) -> RoundState:
    config = {} if bound is None else {MAX_UPDATE_NORM: bound}
    plan = RoundPlan(1, 1, ("honest", "liar"), config, 1, 0.0, math.inf)
    return RoundState(plan, REF, declared_examples=declared or {})


def _update(norm: float) -> Parameters:
    """An update whose float32 L2 norm is ``norm`` (to float32 precision), in one coordinate."""
    out = {k: np.zeros_like(v) for k, v in REF.items()}
    out["w"][0, 0] = np.float32(norm)
    return out


class _Liar:
    """A site that claims 10^15 rows and answers every round with 3e38 in every coordinate."""

    site_id = "liar"

    def fit(self, ins: FitIns) -> FitRes:
        huge = {k: np.full_like(v, 3e38) for k, v in ins.parameters.items()}
        return FitRes(huge, 10**15, {})

    def evaluate(self, ins):  # pragma: no cover - never asked in these rounds
        raise AssertionError


# the lying site, in process -------------------------------------------------------------


def _run(config, with_liar: bool):
    data = prepare_data(config)
    prepared = prepare_sites(config, data)
    initial = get_parameters(prepared.model_factory())
    sites: dict[str, object] = dict(prepared.sites)
    if with_liar:
        sites["liar"] = _Liar()
    engine = RoundEngine(
        build_strategy(config), sites, min_quorum=2, seed=config.study.seed,
        declared_examples={"liar": 10**15},
    )  # fmt: skip
    return engine, engine.run(config.training.rounds, initial)


def test_a_site_sending_3e38_with_10e15_rows_does_not_move_the_global_model() -> None:
    config = _config()
    engine, final = _run(config, with_liar=True)
    _, honest_only = _run(config, with_liar=False)
    for k in honest_only:  # bit for bit the model the honest sites alone produce
        np.testing.assert_array_equal(final[k], honest_only[k])
    for record in engine.history:
        assert "liar" in record.failed and "liar" not in record.sites
        reason = record.detail["failures"]["liar"]
        assert MAX_UPDATE_NORM in reason and "refused" in reason
    assert all(np.abs(v).max() < 100 for v in final.values())


def test_the_liar_counts_as_failed_with_its_reason_and_cannot_retry_the_round() -> None:
    state = _state(1.0, declared={"liar": 10**15})
    huge = {k: np.full_like(v, 3e38) for k, v in REF.items()}
    with pytest.raises(UpdateNormExceeded, match="max_update_norm of 1: refused"):
        state.accept("liar", huge, 10**15, is_update=True)
    assert "max_update_norm" in state.failures["liar"]
    assert state.responded == () and "liar" in state.failed
    with pytest.raises(Exception, match="already counted as failed"):
        state.accept("liar", _update(0.5), 10, is_update=True)


# just over and just under ------------------------------------------------------------------


@pytest.mark.parametrize("bound", [1.0, 0.37, 10.0])
def test_an_update_just_over_the_bound_is_refused_and_just_under_accepted(bound: float) -> None:
    over = bound * (1 + 4 * NORM_TOLERANCE)
    with pytest.raises(UpdateNormExceeded):
        _state(bound).accept("liar", _update(over), 10, is_update=True)
    state = _state(bound)
    assert state.accept("honest", _update(bound * (1 - 1e-6)), 10, is_update=True)
    assert state.accept("liar", _update(bound), 10, is_update=True)  # exactly at the bound
    assert state.responded == ("honest", "liar")


def test_the_bound_applies_to_locally_trained_parameters_too() -> None:
    ref = {k: np.full_like(v, 2.0) for k, v in REF.items()}
    plan = RoundPlan(1, 1, ("liar",), {MAX_UPDATE_NORM: 1.0}, 1, 0.0, math.inf)
    params = {k: v + _update(1.5)[k] for k, v in ref.items()}  # update norm 1.5
    with pytest.raises(UpdateNormExceeded):
        RoundState(plan, ref).accept("liar", params, 10)


def test_a_round_without_a_bound_checks_none() -> None:
    state = _state(None)
    assert state.accept("liar", _update(1e30), 10, is_update=True)


# honest sites clip, and are never refused --------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.floats(1e-6, 1e3),
    st.lists(st.floats(-1e4, 1e4, width=32), min_size=7, max_size=7),
    st.lists(st.floats(-1e4, 1e4, width=32), min_size=7, max_size=7),
)
def test_a_clipped_update_is_within_the_bound_exactly(
    bound: float, reference: list[float], local: list[float]
) -> None:
    ref = {
        "w": np.asarray(reference[:6], np.float32).reshape(2, 3),
        "b": np.float32([reference[6]]),
    }
    params = {"w": np.asarray(local[:6], np.float32).reshape(2, 3), "b": np.float32([local[6]])}
    clipped = clip_to_bound(params, ref, bound)
    update = subtract(clipped, ref)  # what the coordinator computes
    assert update_norm(update) <= bound  # no tolerance needed
    check_update_norm(update, bound, "honest")
    if update_norm(subtract(params, ref)) <= bound:  # within the bound: untouched
        for k in ref:
            np.testing.assert_array_equal(clipped[k], params[k])


def test_an_honest_site_clips_its_update_to_the_rounds_bound() -> None:
    config = _config()
    prepared = prepare_sites(config, prepare_data(config))
    site = next(iter(prepared.sites.values()))
    initial = get_parameters(prepared.model_factory())
    free = site.fit(FitIns(initial, {"local_epochs": 3, "learning_rate": 1.0}))
    assert update_norm(subtract(free.parameters, initial)) > 0.05
    res = site.fit(
        FitIns(initial, {"local_epochs": 3, "learning_rate": 1.0, MAX_UPDATE_NORM: 0.05})
    )
    update = subtract(res.parameters, initial)
    assert 0.049 < update_norm(update) <= 0.05
    state = RoundState(RoundPlan(1, 1, (site.site_id,), {MAX_UPDATE_NORM: 0.05}, 1, 0, 1), initial)
    assert state.accept(site.site_id, res.parameters, res.num_examples)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "10", True])
def test_a_site_refuses_a_malformed_bound_before_training(bad: object) -> None:
    config = _config()
    prepared = prepare_sites(config, prepare_data(config))
    site = next(iter(prepared.sites.values()))
    initial = get_parameters(prepared.model_factory())
    with pytest.raises(PolicyViolation, match=MAX_UPDATE_NORM):
        site.fit(FitIns(initial, {MAX_UPDATE_NORM: bad}))  # type: ignore[dict-item]
    assert site.steps_run == 0


def test_honest_runs_are_never_refused_even_with_a_tight_bound() -> None:
    config = _config(max_update_norm=0.01, learning_rate=1.0)
    engine, _ = _run(config, with_liar=False)
    for record in engine.history:
        assert record.failed == () and "failures" not in record.detail


# the study declares the bound ----------------------------------------------------------------


def test_the_study_declares_the_bound_and_every_round_carries_it() -> None:
    assert update_norm_bound(_config()) == DEFAULT_MAX_UPDATE_NORM
    assert update_norm_bound(_config(max_update_norm=2.5)) == 2.5
    client = {"privacy": {"mode": "client", "epsilon": 1.0, "clip_norm": 0.7}}
    assert update_norm_bound(parse_study(client)) == 0.7
    adaptive = {"privacy": {**client["privacy"], "adaptive_clipping": True}}
    assert update_norm_bound(parse_study(adaptive)) == DEFAULT_MAX_UPDATE_NORM
    strategy = build_strategy(_config(max_update_norm=2.5))
    plans = strategy.configure_fit(1, REF, ["a", "b"], np.random.default_rng(0))
    assert all(ins.config[MAX_UPDATE_NORM] == 2.5 for _, ins in plans)
    assert MAX_UPDATE_NORM not in FedAvg().fit_config(1)


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"training": {"max_update_norm": 0}}, "training.max_update_norm"),
        ({"training": {"max_update_norm": 1e7}}, "training.max_update_norm"),
        (
            {
                "training": {"max_update_norm": 2.0},
                "privacy": {"mode": "client", "epsilon": 1.0, "clip_norm": 1.0},
            },
            "is privacy.clip_norm",
        ),
        (
            {
                "training": {"max_update_norm": 0.5},
                "privacy": {
                    "mode": "client",
                    "epsilon": 1.0,
                    "clip_norm": 1.0,
                    "adaptive_clipping": True,
                },
            },
            "below privacy.clip_norm",
        ),
    ],
)
def test_an_impossible_bound_is_refused_naming_the_key(section: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_study(section)
