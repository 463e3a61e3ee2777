"""Sites own their guarantees: each round is checked against the site's policy and privacy
plan, and charged to the site's ledger for exactly the steps it runs, before it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dp_accounting
import numpy as np
import pytest
import torch

from tutela.dp.ledger import PrivacyLedger
from tutela.errors import BudgetExceeded, PolicyViolation
from tutela.fl.client import LocalSite, LocalTraining, site_report
from tutela.fl.models import build_model, get_parameters
from tutela.fl.privacy import SampleLevelDP, ledger_summary
from tutela.fl.records import FitIns
from tutela.governance.minimisation import SitePolicy
from tutela.governance.site_report import verify_site_report

GRID = 1e-3
DELTA = 1e-5


def _factory() -> Any:
    return build_model("logistic", 3, seed=0)


def _site(
    tmp_path: Path,
    *,
    rows: int = 64,
    batch: int = 16,
    plan_epochs: int = 1,
    rounds: int = 3,
    policy: SitePolicy | None = None,
) -> tuple[LocalSite, SampleLevelDP, dict[str, Any]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    dp = SampleLevelDP(
        PrivacyLedger(tmp_path / "ledger.sqlite", value_discretization_interval=GRID),
        "s",
        epsilon=2.0,
        delta=DELTA,
        max_grad_norm=1.0,
        accountant="pld",
        rounds=rounds,
        local_epochs=plan_epochs,
        batch_size=batch,
        site_rows={"a": rows},
        dimension=4,
        grid=GRID,
    )
    hook = dp.hook("a")
    seen: dict[str, Any] = {}

    def spy(model: Any, opt: Any, loader: Any, server_round: int, epochs: int) -> Any:
        out = hook(model, opt, loader, server_round, epochs)
        seen["optimizer"] = out[1]  # the DP optimiser counts the steps it really takes
        return out

    training = LocalTraining(epochs=plan_epochs, batch_size=batch, learning_rate=0.1)
    site = LocalSite("a", x, y, _factory, training, privatize=spy, policy=policy)
    return site, dp, seen


def _epsilon_of_steps(optimizer: Any) -> float:
    """Epsilon of the steps the optimiser took, computed with dp-accounting directly."""
    steps = optimizer.steps_taken
    if steps == 0:
        return 0.0
    acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=GRID)
    step = dp_accounting.PoissonSampledDpEvent(
        optimizer.event.sampling_rate,
        dp_accounting.GaussianDpEvent(optimizer.effective_noise_multiplier),
    )
    acc.compose(dp_accounting.SelfComposedDpEvent(step, steps))
    return float(acc.get_epsilon(DELTA))


def _fit(site: LocalSite, **config: Any) -> None:
    site.fit(FitIns(get_parameters(_factory()), {"server_round": 1, **config}))


def test_a_hostile_round_with_ten_times_the_epochs_is_refused_or_charged_in_full(
    tmp_path: Path,
) -> None:
    """The measured bug: ``local_epochs = 10`` in the round config made a site run 10x the
    steps its ledger charged. Whatever the site does, its ledger covers every step run."""
    site, dp, seen = _site(tmp_path, plan_epochs=1)
    try:
        _fit(site, local_epochs=10)
    except (BudgetExceeded, PolicyViolation):
        refused = True
    else:
        refused = False
    taken = seen["optimizer"].steps_taken if "optimizer" in seen else 0
    if taken:  # whatever ran was paid for in full
        assert dp.ledger.spent("site:a") >= _epsilon_of_steps(seen["optimizer"]) - 1e-9
    # This site refuses it outright, before any step or spend.
    assert refused and taken == 0 and site.steps_run == 0
    assert dp.ledger.records("site:a") == ()
    # The planned round still runs, charged for exactly its steps.
    _fit(site, local_epochs=1)
    assert seen["optimizer"].steps_taken == site.steps_run == 4  # 64 rows / batch 16
    assert dp.ledger.spent("site:a") >= _epsilon_of_steps(seen["optimizer"]) - 1e-9


def test_the_charge_is_what_the_round_runs_not_what_the_plan_says(tmp_path: Path) -> None:
    site, dp, seen = _site(tmp_path, plan_epochs=3, rounds=2)
    _fit(site, local_epochs=2)  # fewer epochs than planned: charged for 2, not 3
    assert seen["optimizer"].steps_taken == site.steps_run == 8
    spent = dp.ledger.spent("site:a")
    assert spent == pytest.approx(_epsilon_of_steps(seen["optimizer"]), rel=1e-6)
    assert dp.report()["per_site"]["a"]["steps"] == 8


def test_empty_poisson_batches_still_take_the_charged_noise_step(tmp_path: Path) -> None:
    """With 4 rows and q = 1/4 a third of the batches are empty; the site still takes every
    charged step (noise only), so the released model is the accounted mechanism."""
    site, dp, seen = _site(tmp_path, rows=4, batch=1, plan_epochs=5, rounds=1)
    _fit(site, local_epochs=5)
    assert seen["optimizer"].steps_taken == site.steps_run == 20
    assert dp.ledger.spent("site:a") == pytest.approx(
        _epsilon_of_steps(seen["optimizer"]), rel=1e-6
    )


def test_a_round_beyond_the_site_policy_is_refused_before_training(tmp_path: Path) -> None:
    policy = SitePolicy(max_local_epochs=2, max_steps_per_round=6)
    site, dp, seen = _site(tmp_path, plan_epochs=3, policy=policy)
    with pytest.raises(PolicyViolation, match="3 local epochs") as exc:
        _fit(site, local_epochs=3)
    assert "12 optimiser steps" in str(exc.value)
    with pytest.raises(PolicyViolation, match="8 optimiser steps"):
        _fit(site, local_epochs=2)  # within the epoch cap, beyond the step cap
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(PolicyViolation, match="local_epochs must be a positive integer"):
            _fit(site, local_epochs=bad)
    with pytest.raises(PolicyViolation, match="learning_rate"):
        _fit(site, local_epochs=1, learning_rate=float("inf"))
    assert "optimizer" not in seen and dp.ledger.records("site:a") == ()
    _fit(site, local_epochs=1)
    assert site.steps_run == 4


def test_the_site_signs_the_policy_it_enforced_and_its_own_ledger(tmp_path: Path) -> None:
    policy = SitePolicy({"p": frozenset({"x"})}, max_local_epochs=2, site="a")
    site, dp, _ = _site(tmp_path, policy=policy)
    _fit(site, local_epochs=1)
    report = site.signed_report(dp.ledger_summary("a"))
    assert verify_site_report(report)
    assert report["site"] == "a" and report["policy"] == policy.to_json()
    ledger = report["ledger"]
    assert ledger["spent_epsilon"] == pytest.approx(dp.ledger.spent("site:a"))
    assert ledger["budget_epsilon"] == 2.0 and len(ledger["spends"]) == 1
    assert ledger == ledger_summary(dp.ledger, "site:a")
    # The same report from the module-level function, under a key the caller holds.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    again = site_report("a", policy, ledger, key)
    assert verify_site_report(again, trusted_keys=[key.public_key().public_bytes_raw()])
    tampered = {**report, "policy": {**report["policy"], "limits": {"max_local_epochs": 99}}}
    assert not verify_site_report(tampered)
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="no policy"):
        _site(tmp_path / "other", policy=None)[0].signed_report(ledger)


def test_hook_checks_its_own_arguments(tmp_path: Path) -> None:
    _, dp, _ = _site(tmp_path)
    model = torch.nn.Linear(3, 1)
    with pytest.raises(ValueError):
        dp.hook("a")(model, torch.optim.SGD(model.parameters(), lr=0.1), None, 1, 0)
