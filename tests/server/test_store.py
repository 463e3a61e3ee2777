"""The coordinator's store and round engine, on SQLite and (when available) PostgreSQL:
migrations, encryption at rest, idempotent submissions, deadlines, restart and resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from tests.server.conftest import model_params, small_config
from tutela.errors import DataError, IntegrityError, PermissionDenied
from tutela.fl.client import FeatureMoments
from tutela.fl.records import parameters_from_bytes, parameters_to_bytes
from tutela.governance.rbac import Role
from tutela.server.authz import Principal
from tutela.server.coordinator import ConflictError, Coordinator, DeploymentSettings, NotFoundError
from tutela.server.sealing import open_sealer
from tutela.server.store import RoundRow, Store, schema_revision

ADMIN = Principal("alice", Role.ADMIN)
SITES = ("hospital-1", "hospital-2", "hospital-3")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def open_coordinator(db_url: str, keyring: Path, clock: Clock) -> Coordinator:
    return Coordinator(Store(db_url, open_sealer(keyring)), clock=clock)


def running_study(
    co: Coordinator, clock: Clock, *, rounds: int = 2, stage_timeout: float = 30.0
) -> str:
    for site in SITES:
        co.activate_site(ADMIN, site)
    study = co.create_study(
        ADMIN,
        small_config(rounds=rounds, max_update_norm=1e6),  # these updates are synthetic
        DeploymentSettings(join_timeout_s=10, stage_timeout_s=stage_timeout),
    )
    co.set_initial_model(ADMIN, study, parameters_to_bytes(model_params()))
    assert co.start(ADMIN, study) == "recruiting"
    for i, site in enumerate(SITES):
        moments = FeatureMoments(100 * (i + 1), np.ones(7), np.full(7, 3.0))
        co.answer_invitation(site, study, accept=True, num_examples=100 * (i + 1), moments=moments)
    assert co.tick()  # recruiting -> running
    assert co.tick()  # round 1 opens
    return study


def update_body(study: str, round_no: int, value: float, n: int) -> bytes:
    params = {k: np.full_like(v, value) for k, v in model_params().items()}
    return parameters_to_bytes(
        params, metadata={"study": study, "round": str(round_no), "num_examples": str(n)}
    )


def test_migrations_run_and_are_idempotent(db_url: str, tmp_path: Path) -> None:
    store = Store(db_url, open_sealer(tmp_path / "keyring"))
    assert schema_revision(store.engine) == "0004"
    store.close()
    store = Store(db_url, open_sealer(tmp_path / "keyring"))  # second start: no-op upgrade
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {
        "studies",
        "rounds",
        "sites",
        "tokens",
        "updates",
        "relay",
        "audit_events",
        "site_reports",
    } <= tables
    store.close()


def test_blobs_are_encrypted_at_rest_and_bound_to_their_row(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = running_study(co, clock)
    marker = 12345.678
    co.submit("hospital-1", study, 1, "fit", "k1", update_body(study, 1, marker, 10))
    with co.store.engine.connect() as conn:
        model_blob = conn.execute(sa.text("SELECT model_blob FROM studies")).scalar_one()
        update_blob = conn.execute(sa.text("SELECT blob FROM updates")).scalar_one()
    plain_update = update_body(study, 1, marker, 10)
    assert np.float32(marker).tobytes() not in update_blob
    assert plain_update[8:40] not in update_blob  # not even the safetensors header
    assert b"0.weight" not in bytes(model_blob)
    # A blob moved to another row (another name) does not open.
    with pytest.raises(IntegrityError):
        co.store.unseal(bytes(update_blob), f"update/{study}/1/fit/hospital-2")
    # A different keyring cannot open it either.
    other = open_sealer(tmp_path / "other-keyring")
    with pytest.raises(IntegrityError):
        other.open(bytes(update_blob), name=f"update/{study}/1/fit/hospital-1")
    co.store.close()


def test_submission_is_idempotent_and_counted_once(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = running_study(co, clock, rounds=1)
    body = update_body(study, 1, 1.0, 10)
    first = co.submit("hospital-1", study, 1, "fit", "same-key", body)
    again = co.submit("hospital-1", study, 1, "fit", "same-key", body)
    assert not first.duplicate and again.duplicate and again.digest == first.digest
    with pytest.raises(ConflictError, match="different submission"):
        co.submit("hospital-1", study, 1, "fit", "same-key", update_body(study, 1, 2.0, 10))
    with pytest.raises(ConflictError, match="already submitted"):
        co.submit("hospital-1", study, 1, "fit", "other-key", update_body(study, 1, 2.0, 10))
    co.submit("hospital-2", study, 1, "fit", "k2", update_body(study, 1, 3.0, 30))
    co.submit("hospital-3", study, 1, "fit", "k3", update_body(study, 1, 5.0, 60))
    assert co.tick()
    status = co.study_status(study)
    assert status["rounds"][0]["status"] == "aggregated"
    assert status["rounds"][0]["num_examples"] == 100
    params = parameters_from_bytes(co.final_model(study))
    expected = (10 * 1.0 + 30 * 3.0 + 60 * 5.0) / 100  # FedAvg step from zero, each counted once
    assert np.allclose(params["0.weight"], expected)
    co.store.close()


def test_bad_submissions_are_refused(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = running_study(co, clock, rounds=2)
    with pytest.raises(NotFoundError):
        co.submit("hospital-1", "nope", 1, "fit", "k", update_body(study, 1, 1.0, 10))
    bad_shape = parameters_to_bytes(
        {"0.weight": np.zeros((1, 6), np.float32), "0.bias": np.zeros(1, np.float32)},
        metadata={"study": study, "round": "1", "num_examples": "10"},
    )
    with pytest.raises(DataError, match="shape"):
        co.submit("hospital-1", study, 1, "fit", "k", bad_shape)
    bad_dtype = parameters_to_bytes(
        {"0.weight": np.zeros((1, 7), np.float64), "0.bias": np.zeros(1, np.float32)},
        metadata={"study": study, "round": "1", "num_examples": "10"},
    )
    with pytest.raises(DataError, match="dtype"):
        co.submit("hospital-1", study, 1, "fit", "k", bad_dtype)
    nan = update_body(study, 1, float("nan"), 10)
    with pytest.raises(DataError, match="NaN"):
        co.submit("hospital-1", study, 1, "fit", "k", nan)
    with pytest.raises(DataError, match="safetensors"):
        co.submit("hospital-1", study, 1, "fit", "k", b"\x00" * 64)
    with pytest.raises(ConflictError, match="replayed or misdirected"):
        co.submit("hospital-1", study, 1, "fit", "k", update_body(study, 7, 1.0, 10))
    with pytest.raises(PermissionDenied):
        co.submit("stranger", study, 1, "fit", "k", update_body(study, 1, 1.0, 10))
    # Round 1 closes; a body for round 1 replayed later is refused as a replay.
    for i, site in enumerate(SITES):
        co.submit(site, study, 1, "fit", f"r1-{site}", update_body(study, 1, 1.0, 10 + i))
    assert co.tick() and co.tick()  # close round 1, open round 2
    with pytest.raises(ConflictError, match="earlier round"):
        co.submit("hospital-1", study, 1, "fit", "replay", update_body(study, 1, 1.0, 10))
    co.store.close()


def test_a_dropped_site_never_blocks_the_round(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = running_study(co, clock, rounds=2, stage_timeout=30)
    co.submit("hospital-1", study, 1, "fit", "a", update_body(study, 1, 1.0, 10))
    co.submit("hospital-2", study, 1, "fit", "b", update_body(study, 1, 3.0, 30))
    assert not co.tick()  # hospital-3 is still within the deadline
    clock.now += 31
    assert co.tick()  # deadline passed: quorum (2) met without hospital-3
    r1 = co.study_status(study)["rounds"][0]
    assert r1["status"] == "aggregated" and r1["failed"] == ["hospital-3"]
    assert co.tick()  # round 2 opens
    co.submit("hospital-1", study, 2, "fit", "c", update_body(study, 2, 1.0, 10))
    clock.now += 31
    assert co.tick()  # below quorum: recorded, the model does not change
    r2 = co.study_status(study)["rounds"][1]
    assert r2["status"] == "quorum-not-met"
    assert co.tick()
    assert co.study_status(study)["status"] == "completed"
    co.store.close()


def test_restart_resumes_the_open_round_without_losing_updates(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = running_study(co, clock, rounds=1)
    co.submit("hospital-1", study, 1, "fit", "a", update_body(study, 1, 1.0, 10))
    second = update_body(study, 1, 3.0, 30)
    co.submit("hospital-2", study, 1, "fit", "b", second)
    co.store.close()  # the process dies here
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    # The site whose HTTP reply was lost retries the same bytes: recognised, not counted twice.
    assert co.submit("hospital-2", study, 1, "fit", "b", second).duplicate
    co.submit("hospital-3", study, 1, "fit", "c", update_body(study, 1, 5.0, 60))
    assert co.tick()
    status = co.study_status(study)
    assert status["rounds"][0]["num_examples"] == 100
    params = parameters_from_bytes(co.final_model(study))
    assert np.allclose(params["0.weight"], (10 * 1.0 + 30 * 3.0 + 60 * 5.0) / 100)
    co.store.close()


def test_refusal_is_audited_and_too_few_sites_fail_the_study(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    for site in SITES:
        co.activate_site(ADMIN, site)
    study = co.create_study(
        ADMIN, small_config(min_quorum=3, min_fit_sites=3), DeploymentSettings(join_timeout_s=5)
    )
    co.set_initial_model(ADMIN, study, parameters_to_bytes(model_params()))
    co.start(ADMIN, study)
    co.answer_invitation(
        "hospital-1", study, accept=False, reason="differential privacy is required"
    )
    co.answer_invitation(
        "hospital-2",
        study,
        accept=True,
        num_examples=5,
        moments=FeatureMoments(5, np.ones(7), np.ones(7)),
    )
    clock.now += 6  # hospital-3 never answers
    assert co.tick()
    status = co.study_status(study)
    assert status["status"] == "failed"
    assert "hospital-1: differential privacy is required" in status["error"]
    assert status["participation"]["hospital-3"]["status"] == "timed-out"
    refusals = [e for e in co.audit_events() if e["action"] == "study.refuse"]
    assert refusals and refusals[0]["detail"]["reason"] == "differential privacy is required"
    co.store.close()


def test_pause_resume_and_cancel_are_audited_admin_actions(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = running_study(co, clock, rounds=3)
    assert co.pause(ADMIN, study) == "paused"
    for i, site in enumerate(SITES):  # the open round still finishes while paused
        co.submit(site, study, 1, "fit", f"p-{site}", update_body(study, 1, 1.0, 10 + i))
    assert co.tick()  # round 1 closes
    assert not co.tick()  # paused: no new round opens
    assert co.study_status(study)["current_round"] == 2
    assert co.start(ADMIN, study) == "running"
    assert co.tick()  # round 2 opens
    assert co.cancel(ADMIN, study) == "cancelled"
    status = co.study_status(study)
    assert status["status"] == "cancelled" and status["rounds"][-1]["status"] == "cancelled"
    with pytest.raises(ConflictError):
        co.start(ADMIN, study)
    actions = [e["action"] for e in co.audit_events() if e["actor"] == ADMIN.label]
    assert actions[-4:] == ["study.start", "study.pause", "study.start", "study.cancel"]
    co.store.close()


def test_every_submission_path_shares_one_idempotency_rule(db_url: str, tmp_path: Path) -> None:
    """Relay posts and metric reports follow the same rule as round submissions: the same
    key and content again is accepted again (stored once), the same key with other content
    is a conflict."""
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = running_study(co, clock, rounds=1)
    first = co.relay_post("hospital-1", study, 1, "fit", "hospital-2", "m1", b"opaque")
    again = co.relay_post("hospital-1", study, 1, "fit", "hospital-2", "m1", b"opaque")
    assert not first.duplicate and again.duplicate and again.digest == first.digest
    with pytest.raises(ConflictError, match="different message"):
        co.relay_post("hospital-1", study, 1, "fit", "hospital-2", "m1", b"other")
    with pytest.raises(ConflictError, match="different message"):  # same bytes, other recipient
        co.relay_post("hospital-1", study, 1, "fit", "hospital-3", "m1", b"opaque")
    assert co.relay_fetch("hospital-2", study, 1, "fit") == {"hospital-1": b"opaque"}
    assert co.relay_fetch("hospital-3", study, 1, "fit") == {}

    report = {"epsilon": 0.5, "delta": 1e-5}
    co.report_metrics("hospital-1", study, 1, report)
    co.report_metrics("hospital-1", study, 1, report)  # a retry after a lost reply
    with co.store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT COUNT(*) FROM metrics")).scalar_one()
    assert rows == 1
    ledger = co.privacy_ledger(study)
    assert ledger["site_reports"]["hospital-1"] == {"round": 1, **report}
    co.store.close()


def test_a_site_cannot_outweigh_what_it_declared_at_join(db_url: str, tmp_path: Path) -> None:
    """A lying site: it joined with 100 rows, then claims 10**15 (and 2**70) in a round."""
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = running_study(co, clock, rounds=1)
    for claim in (101, 10**15, 2**70):
        with pytest.raises(DataError, match="num_examples"):
            co.submit(
                "hospital-1", study, 1, "fit", f"k{claim}", update_body(study, 1, 3e38, claim)
            )
    co.submit("hospital-1", study, 1, "fit", "ok", update_body(study, 1, 1.0, 100))
    co.submit("hospital-2", study, 1, "fit", "k2", update_body(study, 1, 1.0, 200))
    co.submit("hospital-3", study, 1, "fit", "k3", update_body(study, 1, 1.0, 300))
    assert co.tick()
    params = parameters_from_bytes(co.final_model(study))
    assert np.allclose(params["0.weight"], 1.0)
    co.store.close()


def test_a_declared_size_beyond_any_hospital_is_refused_at_join(
    db_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    for site in SITES:
        co.activate_site(ADMIN, site)
    study = co.create_study(ADMIN, small_config(), DeploymentSettings(join_timeout_s=10))
    co.set_initial_model(ADMIN, study, parameters_to_bytes(model_params()))
    co.start(ADMIN, study)
    huge = FeatureMoments(10**15, np.ones(7), np.ones(7))
    with pytest.raises(DataError, match="num_examples"):
        co.answer_invitation("hospital-1", study, accept=True, num_examples=10**15, moments=huge)
    liar = FeatureMoments(5, np.ones(7), np.ones(7))
    with pytest.raises(DataError, match="count the declared rows"):
        co.answer_invitation("hospital-1", study, accept=True, num_examples=500, moments=liar)
    co.store.close()


def test_a_registered_site_is_no_principal_until_it_enrols_or_is_activated(
    db_url: str, tmp_path: Path
) -> None:
    """A CA certificate bearing a site's name is not enough: a site registered for token
    enrolment but never enrolled or activated is refused, whatever certificate it shows."""
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    co.register_site(ADMIN, "hospital-9")
    for fingerprint in ("00" * 32, "ab" * 32):
        assert co.principal_for_site("hospital-9", fingerprint) is None
    assert co.principal_for_site("nobody", "00" * 32) is None
    co.activate_site(ADMIN, "hospital-9")
    assert co.principal_for_site("hospital-9", "00" * 32) is not None
    co.store.close()


def test_the_relay_hands_out_only_the_latest_attempts_messages(db_url: str, tmp_path: Path) -> None:
    """A retried round keeps its earlier attempt's messages in the store; a site reading the
    relay gets the current attempt's only, never an earlier one's in their place."""
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = running_study(co, clock, rounds=1)
    co.relay_post("hospital-1", study, 1, "fit", "hospital-2", "a1", b"attempt one")
    with co.core.store.session() as s:  # the round is retried: attempt 2
        rr = s.scalar(sa.select(RoundRow).where(RoundRow.study_id == study))
        assert rr is not None
        rr.attempt = 2
    assert co.relay_fetch("hospital-2", study, 1, "fit") == {"hospital-1": b"attempt one"}
    co.relay_post("hospital-3", study, 1, "fit", "hospital-2", "a2", b"attempt two")
    assert co.relay_fetch("hospital-2", study, 1, "fit") == {"hospital-3": b"attempt two"}
    co.store.close()


def test_a_relayed_message_moved_to_another_attempt_does_not_open(
    db_url: str, tmp_path: Path
) -> None:
    """Someone who can write to the store moves an attempt-1 relay row into attempt 2 of the
    same stage: its seal names attempt 1, so reading it fails instead of handing the
    recipient an earlier attempt's message as the current one."""
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    study = running_study(co, clock, rounds=1)
    co.relay_post("hospital-1", study, 1, "fit", "hospital-2", "a1", b"attempt one")
    with co.core.store.session() as s:  # the round is retried: attempt 2
        rr = s.scalar(sa.select(RoundRow).where(RoundRow.study_id == study))
        assert rr is not None
        rr.attempt = 2
    with co.store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE relay SET attempt = 2 WHERE idempotency_key = 'a1'"))
    with pytest.raises(IntegrityError):
        co.relay_fetch("hospital-2", study, 1, "fit")
    co.store.close()
