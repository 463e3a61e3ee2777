"""CKKS aggregation through the coordinator, with the in-process results and no secret key.

The coordinator is driven directly over its store (as in :mod:`tests.server.test_runtimes`)
with site objects that answer its CKKS requests with the same code the site agent runs
(:mod:`tutela.server.agent.ckks`): the same study in process and through the coordinator
gives the same transcript, and weights within the CKKS error bound the aggregate states.
The coordinator's objects and store rows hold no secret key, and a site refuses to decrypt
an "aggregate" of one contribution, however the coordinator dresses it up.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tenseal as ts

from tests.server.test_store import ADMIN, Clock, open_coordinator
from tutela.errors import CryptoError, IntegrityError, PolicyViolation
from tutela.fl.ckks import CkksAggregator, CkksCoordinator, CkksSite, ckks_round_id
from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.engine import RoundEngine
from tutela.fl.models import get_parameters
from tutela.fl.records import FitIns, parameters_from_bytes, parameters_to_bytes, subtract
from tutela.fl.study import build_sites, build_strategy, prepare_data, prepare_sites
from tutela.he import _wire
from tutela.he.aggregation import SiteKeyring
from tutela.he.ckks import CkksParams, make_context
from tutela.server.agent import ckks as agent_ckks
from tutela.server.ckks import DECRYPT_STAGE, ENCRYPT_STAGE, decrypt_request
from tutela.server.coordinator import DeploymentSettings
from tutela.server.store import ParticipationRow, RelayRow, RoundRow, StudyRow, UpdateRow


def _config(rounds: int = 3) -> StudyConfig:
    return parse_study(
        {
            "study": {"seed": 5, "name": "ckks-study"},
            "data": {"dataset": "pima-diabetes", "sites": 4},
            "training": {
                "rounds": rounds,
                "local_epochs": 1,
                "min_quorum": 3,
                "min_fit_sites": 3,
                "fraction_fit": 0.75,
                "learning_rate": 0.1,
            },
            "secure_aggregation": {"protocol": "ckks"},
        }
    )


def _in_process(config: StudyConfig) -> tuple[list[dict[str, Any]], Any, Any, CkksAggregator]:
    data = prepare_data(config)
    prepared = prepare_sites(config, data)
    initial = get_parameters(prepared.model_factory())
    aggregator = CkksAggregator.ceremony(config.study.name, min_contributions=3)
    engine = RoundEngine(
        build_strategy(config), prepared.sites, aggregator=aggregator,
        min_quorum=config.training.min_quorum, seed=config.study.seed,
    )  # fmt: skip
    final = engine.run(config.training.rounds, initial)
    return [r.as_dict() for r in engine.history], final, initial, aggregator


class _Sites:
    """The study's hospitals: local training and each one's CKKS part (the keyring)."""

    def __init__(self, config: StudyConfig, keyring: SiteKeyring) -> None:
        data = prepare_data(config)
        self.local, _ = build_sites(config, data)
        self.ckks = {name: CkksSite(name, keyring, 3) for name in self.local}
        self.standardised: set[str] = set()

    def answer(self, co: Any, study: str, name: str, task: dict[str, Any]) -> bool:
        round_no, attempt, stage = task["round"], task["attempt"], task["stage"]
        request = co.relay_fetch(name, study, round_no, stage)["coordinator"]
        if stage == ENCRYPT_STAGE:
            site = self.local[name]
            if name not in self.standardised:
                std = task["standardisation"]
                site.standardise(np.asarray(std["mean"]), np.asarray(std["std"]))
                self.standardised.add(name)
            params = parameters_from_bytes(co.model_for_site(name, study))
            res = site.fit(FitIns(params, dict(task["config"])))
            body = agent_ckks.encrypt_reply(
                self.ckks[name], request, subtract(res.parameters, params),
                res.num_examples, study, round_no, attempt,
            )  # fmt: skip
        else:
            assert stage == DECRYPT_STAGE
            body = agent_ckks.decrypt_reply(self.ckks[name], request, study, round_no, attempt)
        co.submit(name, study, round_no, stage, f"{name}-{round_no}-{attempt}-{stage}", body)
        return True


def _through_coordinator(
    config: StudyConfig, initial: Any, keyring: SiteKeyring, db_url: str, tmp_path: Path
) -> tuple[list[dict[str, Any]], Any, Any]:
    clock = Clock()
    co = open_coordinator(db_url, tmp_path / "keyring", clock)
    sites = _Sites(config, keyring)
    for name in sites.local:
        co.activate_site(ADMIN, name)
    study = co.create_study(
        ADMIN, config, DeploymentSettings(join_timeout_s=10, stage_timeout_s=30)
    )
    co.set_initial_model(ADMIN, study, parameters_to_bytes(initial))
    co.start(ADMIN, study)
    for name, site in sites.local.items():
        co.answer_invitation(
            name, study, accept=True, num_examples=site.num_examples,
            moments=site.feature_moments(), identity=secrets.token_hex(32),
        )  # fmt: skip
    for _ in range(400):
        if co.study_status(study)["status"] in ("completed", "failed"):
            break
        worked = False
        for name in sites.local:
            for task in co.tasks_for(name)["tasks"]:
                worked |= sites.answer(co, study, name, task)
        if not co.tick() and not worked:
            clock.now += 31
    status = co.study_status(study)
    assert status["status"] == "completed", status
    final = parameters_from_bytes(co.final_model(study))
    return status["rounds"], final, co


def test_ckks_through_the_coordinator_matches_in_process_within_the_bound(
    db_url: str, tmp_path: Path
) -> None:
    config = _config()
    history, final_local, initial, aggregator = _in_process(config)
    rounds, final_remote, co = _through_coordinator(
        config, initial, aggregator.sites_keyring, db_url, tmp_path
    )
    local = [(h["round"], h["status"], h["sites"], h["failed"], h["num_examples"]) for h in history]
    remote = [(r["round"], r["status"], r["sites"], r["failed"], r["num_examples"]) for r in rounds]
    assert local == remote
    assert all(status == "aggregated" for _, status, *_ in local)
    # Each mean is within the bound the aggregate states; a round's error moves the next
    # round's training a little, so the final weights are compared at the bound times the
    # rounds, with a generous factor for that propagation.
    report = aggregator.report()
    assert report is not None
    bound = report["approximation_error_bound"]
    remote_reports = [r["secure_aggregation"] for r in rounds]
    assert max(r["error_bound"] for r in remote_reports) == pytest.approx(bound, rel=0.5)
    diff = max(float(np.max(np.abs(final_local[k] - final_remote[k]))) for k in final_local)
    print(f"CKKS error bound per mean value {bound:.3g}; final weights differ by {diff:.3g}")
    assert diff <= 10 * config.training.rounds * bound + 1e-6

    # The coordinator holds no secret key: not in its objects, not in its store.
    key = co.driver.protocol.ckks.public_key(next(iter(co.studies.list_studies()))["id"])
    assert key is not None and key.is_private() is False
    assert key.server._ctx.is_private() is False  # every context the coordinator holds
    with pytest.raises(ValueError, match="Secret key"):
        key.server._ctx.secret_key()
    # Try to decrypt a contribution with what the coordinator holds: it cannot.
    site = CkksSite("hospital-0", aggregator.sites_keyring, 2)
    contribution = site.encrypt(np.ones(3), ckks_round_id("x", 1))
    env = _wire.unpack(contribution, expected_kind=1, max_bytes=1 << 24, max_blobs=4)
    with pytest.raises(ValueError, match="secret_key"):
        ts.ckks_vector_from(key.server._ctx, env.blobs[0]).decrypt()
    secret = aggregator.sites_keyring.to_bytes()[-4096:]
    with co.store.read() as s:
        for table in (StudyRow, RoundRow, UpdateRow, RelayRow, ParticipationRow):
            for row in s.query(table).all():
                for column in table.__table__.columns:
                    value = getattr(row, column.key)
                    if isinstance(value, bytes | str):
                        raw = value.encode() if isinstance(value, str) else value
                        assert secret not in raw
    co.store.close()


def test_a_site_refuses_to_decrypt_a_single_contribution() -> None:
    keyring = SiteKeyring.generate()
    coordinator = CkksCoordinator(keyring.public_context())
    victim = CkksSite("hospital-0", keyring, 3)
    decryptor = CkksSite("hospital-1", keyring, 3)
    round_id = ckks_round_id("study", 1)
    update = np.linspace(-1, 1, 9)
    alone = {"hospital-0": victim.encrypt(update, round_id)}

    # Asked plainly: one contribution is refused before anything is decrypted.
    aggregate = coordinator.aggregate(alone, {"hospital-0": 100.0})
    request = decrypt_request(aggregate, {"hospital-0": 100.0})
    with pytest.raises(PolicyViolation, match="at least 3"):
        agent_ckks.decrypt_reply(decryptor, request, "study", 1, 1)

    # Dressed up: the coordinator pads the one update with encryptions of zero it made
    # with the public key and names three contributors: the contributor tags do not add up.
    zero = coordinator.server._ctx
    env = _wire.unpack(alone["hospital-0"], expected_kind=1, max_bytes=1 << 24, max_blobs=4)
    zeros = _wire.pack(
        1, env.fingerprint, env.label, env.fields, env.floats,
        [bytes(ts.ckks_vector(zero, [0.0] * 4096).serialize()) for _ in env.blobs],
    )  # fmt: skip
    padded = {"hospital-0": alone["hospital-0"], "hospital-2": zeros, "hospital-3": zeros}
    weights = {"hospital-0": 100.0, "hospital-2": 1.0, "hospital-3": 1.0}
    request = decrypt_request(coordinator.aggregate(padded, weights), weights)
    with pytest.raises(IntegrityError, match="named contributions"):
        agent_ckks.decrypt_reply(decryptor, request, "study", 1, 1)

    # The same update three times under three names fails the same way.
    tripled = dict.fromkeys(("hospital-0", "hospital-2", "hospital-3"), alone["hospital-0"])
    request = decrypt_request(coordinator.aggregate(tripled, weights), weights)
    with pytest.raises(IntegrityError, match="named contributions"):
        agent_ckks.decrypt_reply(decryptor, request, "study", 1, 1)

    # Three real contributions decrypt, once per round attempt.
    three = {
        name: CkksSite(name, keyring, 3).encrypt(update * (i + 1), round_id)
        for i, name in enumerate(("hospital-0", "hospital-2", "hospital-3"))
    }
    request = decrypt_request(coordinator.aggregate(three, weights), weights)
    agent_ckks.decrypt_reply(decryptor, request, "study", 1, 1)
    with pytest.raises(PolicyViolation, match="already decrypted"):
        agent_ckks.decrypt_reply(decryptor, request, "study", 1, 1)


def test_the_coordinator_refuses_a_context_with_a_secret_key() -> None:
    secret = make_context(CkksParams())
    with pytest.raises(CryptoError, match="secret key"):
        CkksCoordinator(bytes(secret.serialize(save_secret_key=True)))
