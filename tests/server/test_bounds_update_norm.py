"""The update-norm bound through the coordinator: a lying site cannot move the global model.

The lying site plays what issue 11 measured: it tries to join claiming 10^15 rows (refused
by the schema and by the coordinator), joins with the most rows allowed, and sends 3e38 in
every coordinate. Its update is refused at submission with a clear reason that is audited;
the round closes on the honest sites' updates alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.server.conftest import Live, join_body, model_params, small_config
from tests.server.test_store import ADMIN, Clock, open_coordinator
from tutela.errors import DataError
from tutela.fl.bounds import MAX_UPDATE_NORM, UpdateNormExceeded
from tutela.fl.client import FeatureMoments
from tutela.fl.engine import weighted_mean
from tutela.fl.records import add, parameters_from_bytes, parameters_to_bytes
from tutela.fl.strategy import ClientUpdate
from tutela.server.coordinator import Coordinator, DeploymentSettings
from tutela.server.participation import MAX_SITE_ROWS

HONEST = ("hospital-1", "hospital-2")
LIAR = "hospital-3"


def _body(study: str, arrays: dict[str, np.ndarray], n: int) -> bytes:
    meta = {"study": study, "round": "1", "num_examples": str(n)}
    return parameters_to_bytes(arrays, metadata=meta)


def _scaled(norm: float) -> dict[str, np.ndarray]:
    """An update of the model's shapes with float32 L2 norm ``norm`` (one coordinate)."""
    out = {k: np.zeros_like(v) for k, v in model_params().items()}
    out["0.weight"][0, 0] = np.float32(norm)
    return out


def _running(co: Coordinator, clock: Clock, liar_rows: int, **training: object) -> str:
    for site in (*HONEST, LIAR):
        co.activate_site(ADMIN, site)
    study = co.create_study(
        ADMIN,
        small_config(rounds=1, **training),
        DeploymentSettings(join_timeout_s=10, stage_timeout_s=30),
    )
    co.set_initial_model(ADMIN, study, parameters_to_bytes(model_params()))
    co.start(ADMIN, study)
    for site, n in ((HONEST[0], 100), (HONEST[1], 300), (LIAR, liar_rows)):
        moments = FeatureMoments(n, np.ones(7), np.full(7, 3.0))
        co.answer_invitation(site, study, accept=True, num_examples=n, moments=moments)
    assert co.tick() and co.tick()  # recruiting -> running -> round 1 open
    return study


def test_a_liar_with_10e15_rows_and_3e38_updates_leaves_the_model_to_the_honest(
    tmp_path: Path,
) -> None:
    clock = Clock()
    co = open_coordinator(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "keyring", clock)
    for site in (*HONEST, LIAR):
        co.activate_site(ADMIN, site)
    probe = co.create_study(ADMIN, small_config(), DeploymentSettings(join_timeout_s=10))
    co.set_initial_model(ADMIN, probe, parameters_to_bytes(model_params()))
    co.start(ADMIN, probe)
    huge = FeatureMoments(10**15, np.ones(7), np.full(7, 3.0))
    with pytest.raises(DataError, match="num_examples"):  # the declared rows are bounded
        co.answer_invitation(LIAR, probe, accept=True, num_examples=10**15, moments=huge)

    study = _running(co, clock, liar_rows=MAX_SITE_ROWS)
    initial = parameters_from_bytes(co.final_model(study))
    task = next(t for t in co.tasks_for(LIAR)["tasks"] if t["kind"] == "fit")
    assert task["config"][MAX_UPDATE_NORM] == 10.0  # the study's default bound
    huge_update = {k: np.full_like(v, 3e38) for k, v in initial.items()}
    with pytest.raises(UpdateNormExceeded, match="max_update_norm of 10: refused"):
        co.submit(LIAR, study, 1, "fit", "lie", _body(study, huge_update, MAX_SITE_ROWS))
    honest = {HONEST[0]: (_scaled(0.5), 100), HONEST[1]: (_scaled(-0.25), 300)}
    for site, (update, n) in honest.items():
        co.submit(site, study, 1, "fit", f"{site}-1", _body(study, update, n))
    assert not co.tick()  # the liar has not replied: the round waits for its deadline
    clock.now += 31
    assert co.tick()
    final = parameters_from_bytes(co.final_model(study))
    expected = add(
        initial,
        weighted_mean([ClientUpdate(s, u, n, {}) for s, (u, n) in honest.items()], initial),
    )
    for k in expected:
        np.testing.assert_array_equal(final[k], expected[k])
    rounds = co.study_status(study)["rounds"]
    assert rounds[0]["failed"] == [LIAR] and rounds[0]["sites"] == list(HONEST)
    refusals = [
        e
        for e in co.audit_events(limit=10_000)
        if e["action"] == "round.submit" and e["outcome"] == "denied"
    ]
    assert len(refusals) == 1 and refusals[0]["actor"] == f"site:{LIAR}"
    assert "L2 norm" in refusals[0]["detail"]["reason"]
    assert "3e+38" not in str(refusals[0]["detail"])  # the values themselves are not echoed


def test_just_over_the_bound_refused_just_under_accepted_over_the_coordinator(
    tmp_path: Path,
) -> None:
    clock = Clock()
    co = open_coordinator(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "keyring", clock)
    study = _running(co, clock, liar_rows=100, max_update_norm=1.0)
    with pytest.raises(UpdateNormExceeded):
        co.submit(LIAR, study, 1, "fit", "over", _body(study, _scaled(1.0001), 100))
    receipt = co.submit(LIAR, study, 1, "fit", "under", _body(study, _scaled(0.9999), 100))
    assert receipt.duplicate is False
    exact = co.submit(HONEST[0], study, 1, "fit", "at", _body(study, _scaled(1.0), 100))
    assert exact.duplicate is False


def test_3e38_is_refused_over_https_with_a_clear_reason(live: Live) -> None:
    study = live.new_study(join_timeout_s=30, stage_timeout_s=30)
    with live.admin() as admin:
        assert admin.post(f"/v1/admin/studies/{study}/start").status_code == 200
    with live.client(site="hospital-3") as liar:
        lie = {**join_body(), "num_examples": 10**15}
        r = liar.post(f"/v1/site/studies/{study}/participation", json=lie)
        assert r.status_code == 422 and str(10**15) not in r.text  # bounded by the schema
    for site in ("hospital-1", "hospital-2", "hospital-3"):
        with live.client(site=site) as c:
            r = c.post(f"/v1/site/studies/{study}/participation", json=join_body())
            assert r.status_code == 200, r.text
    import time

    deadline = time.monotonic() + 10
    with live.client(site="hospital-3") as liar:
        while time.monotonic() < deadline:
            if any(t["kind"] == "fit" for t in liar.get("/v1/site/tasks").json()["tasks"]):
                break
            time.sleep(0.05)
        huge = {k: np.full_like(v, 3e38) for k, v in model_params().items()}
        r = liar.post(
            f"/v1/site/studies/{study}/rounds/1/stages/fit",
            content=_body(study, huge, 50),
            headers={"Idempotency-Key": "lie", "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 422, r.text
        assert "max_update_norm" in r.json()["detail"] and "refused" in r.json()["detail"]
    with live.admin() as admin:
        model = parameters_from_bytes(admin.get(f"/v1/admin/studies/{study}/model").content)
        assert all(np.abs(v).max() == 0 for v in model.values())  # unmoved
