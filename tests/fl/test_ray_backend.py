"""The Ray simulation backend: the same study on Ray and in process, a two-node cluster, and
workers killed mid-task.

One local Ray instance serves the module (start-up takes 10-13 s here); the two-node test
shuts it down and starts its own cluster on loopback.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from tutela.errors import ConfigError, ProtocolAbort  # noqa: E402
from tutela.fl.config import parse_study  # noqa: E402
from tutela.fl.cross_device import (  # noqa: E402
    cross_device_config,
    digits_devices,
    digits_model,
)
from tutela.fl.privacy import SampleLevelDP  # noqa: E402
from tutela.fl.ray_backend import RayBackend  # noqa: E402
from tutela.fl.rounds import RoundStatus  # noqa: E402
from tutela.fl.study import prepare_data, prepare_sites, run_study  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def _study(**training):
    return parse_study(
        {
            "data": {"dataset": "breast-cancer", "sites": 6},
            "training": {"rounds": 3, "min_quorum": 1, "min_fit_sites": 2, **training},
        }
    )


def test_ray_and_in_process_agree_bit_for_bit(local_ray):
    """Same seed, same study (sampling, simulated dropouts): identical parameters, records."""
    config = _study(rounds=2, fraction_fit=0.7, dropout=0.4)
    here = run_study(config, with_baselines=False)
    there = run_study(config, with_baselines=False, backend=RayBackend())
    assert set(here.final_parameters) == set(there.final_parameters)
    for name, value in here.final_parameters.items():
        assert np.array_equal(value, there.final_parameters[name])
    assert [r.as_dict() for r in here.history] == [r.as_dict() for r in there.history]
    assert any(r.failed for r in there.history)  # the dropouts really happened


@pytest.mark.slow
def test_cross_device_study_with_dp_fedavg_and_secagg_on_ray(tmp_path, local_ray, monkeypatch):
    """Devices sampled per round, client-level DP-FedAvg with adaptive clipping inside
    SecAgg+ whose clients run on the workers: the rounds aggregate and the model learns the
    digits above chance.

    The noise comes from a CSPRNG, so the accuracy varies run to run: 40 devices a round for
    five rounds gave 0.32-0.57 over 16 runs here, against chance at 0.1 (20 devices for three
    rounds gave 0.13-0.26, too close to chance to test)."""
    config = cross_device_config(200, 40, rounds=5, epsilon=8.0, secure_aggregation=True)
    data = digits_devices(200, seed=0)
    from tutela.dp.ledger import PrivacyLedger
    from tutela.fl.privacy import client_level_dp
    from tutela.secagg import SecAggClient

    def not_here(self, message):
        raise AssertionError("a device's SecAgg+ client ran in the driver")

    monkeypatch.setattr(SecAggClient, "handle", not_here)  # the workers import their own
    dp = client_level_dp(config, PrivacyLedger(tmp_path / "ledger.sqlite"))
    run = run_study(
        config, data=data, model_factory=digits_model(0), aggregator=dp,
        with_baselines=False, backend=RayBackend(),
    )  # fmt: skip
    assert dp.client_hosts is None  # unbound when the backend was released
    assert [r.status for r in run.history] == [RoundStatus.AGGREGATED] * 5
    assert all(len(r.sites) == 40 for r in run.history)
    assert run.federated["accuracy"] > 0.2  # ten classes: chance is 0.1
    rounds = dp.report()["rounds"]
    assert [r["distributed"] for r in rounds] == [True] * 5
    assert rounds[-1]["clip_norm"] != rounds[0]["clip_norm"]  # adaptive clipping moved


def test_killed_worker_fails_its_sites_and_the_round_closes_under_quorum(local_ray):
    """A worker killed while it trains: its sites count as failed, the round still
    aggregates with the others, and a fresh worker serves the next round."""
    config = _study(rounds=2, local_epochs=400, min_quorum=2, min_fit_sites=6)
    backend = RayBackend(chunk_size=1, in_flight=1)
    killed: list[object] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            busy = backend.busy_actors
            if busy:
                ray.kill(busy[0], no_restart=True)
                killed.append(busy[0])
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    run = run_study(config, with_baselines=False, backend=backend)
    killer.join()
    assert killed
    first, second = run.history
    assert first.status is RoundStatus.AGGREGATED
    assert 1 <= len(first.failed) <= 2  # the chunks in flight on the killed worker
    assert len(first.sites) >= config.training.min_quorum
    reasons = first.detail.get("failures", {})
    assert all("Ray worker stopped mid-task" in reasons[s] for s in first.failed)
    assert second.status is RoundStatus.AGGREGATED and not second.failed
    assert backend.replaced_workers == 1


def _sample_dp(tmp_path, data, name):
    from tutela.dp.ledger import PrivacyLedger

    return SampleLevelDP(
        PrivacyLedger(tmp_path / f"{name}.sqlite"), "s", rounds=2, local_epochs=1,
        site_rows={n: len(r) for n, r in zip(data.site_names, data.site_rows, strict=True)},
        dimension=31, epsilon=4.0, delta=1e-5, max_grad_norm=1.0, accountant="rdp",
        batch_size=32,
    )  # fmt: skip


def test_sample_level_dp_on_ray_charges_in_the_driver_as_in_process(tmp_path, local_ray):
    """DP-SGD sites on Ray: the driver charges each site's ledger before dispatch, so Ray and
    in-process runs report the same epsilon per site, and a site past its budget is refused
    in the same rounds (nothing charged, nothing dispatched)."""
    from tutela.dp.events import (
        ComposedEvent,
        GaussianEvent,
        PoissonSampledEvent,
        SelfComposedEvent,
    )

    config = _study(rounds=2, local_epochs=1)
    data = prepare_data(config)
    victim = data.site_names[0]
    runs = {}
    for name, backend in (("here", None), ("there", RayBackend())):
        dp = _sample_dp(tmp_path, data, name)
        # the victim spent part of its budget before: what is left pays for one round
        q = min(1.0, 32 / len(data.site_rows[0]))
        one_round = SelfComposedEvent(
            PoissonSampledEvent(q, GaussianEvent(dp._effective(dp.noise_multipliers[victim]))),
            dp.steps_per_round[victim],
        )
        dp.ledger.charge(dp.scope(victim), ComposedEvent([dp.standardisation, one_round]),
                         label="an earlier study")  # fmt: skip
        before = dp.ledger.spent(dp.scope(victim))
        run = run_study(config, data=data, privatize=dp.hook, with_baselines=False,
                        backend=backend)  # fmt: skip
        runs[name] = (dp, run, before)
    (here_dp, here, before), (there_dp, there, _) = runs["here"], runs["there"]
    assert [r.failed for r in here.history] == [r.failed for r in there.history]
    refused = [r for r in there.history if victim in r.failed]
    assert refused, "the victim's budget should have run out"
    for r in refused:
        assert "budget" in r.detail["failures"][victim].lower()
    for record in (*here.history, *there.history):
        assert len(record.sites) >= 5  # every other site trained every round
    here_sites, there_sites = here_dp.report()["per_site"], there_dp.report()["per_site"]
    for site in data.site_names:
        assert there_sites[site]["epsilon"] == here_sites[site]["epsilon"]
        assert there_sites[site]["steps"] == here_sites[site]["steps"] > 0
        assert there_sites[site]["epsilon"] <= 4.0
    assert there_sites[victim]["rounds_charged"] < config.training.rounds
    assert there_dp.ledger.spent(there_dp.scope(victim)) > before  # it trained before refusal


def test_a_worker_trains_only_the_planned_dp_sgd_and_holds_no_ledger(tmp_path):
    """What a Ray worker receives for a private site: the planned noise multiplier, no
    ledger; it refuses more epochs than the driver charged for."""
    import dataclasses

    import torch

    from tutela.errors import BudgetExceeded

    config = _study()
    data = prepare_data(config)
    dp = _sample_dp(tmp_path, data, "w")
    site = data.site_names[1]
    training = dp.training(site)
    assert training.noise_multiplier == dp.noise_multipliers[site]
    assert not any(
        isinstance(getattr(training, f.name), type(dp.ledger)) for f in dataclasses.fields(training)
    )
    model = torch.nn.Linear(30, 1)
    x = torch.zeros(40, 30)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(40)),
                                         batch_size=32)  # fmt: skip
    with pytest.raises(BudgetExceeded, match="local epochs"):
        training(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, 1, 2)
    assert dp.ledger.spent(dp.scope(site)) == 0.0


def test_privatize_hooks_that_cannot_be_split_are_refused():
    config = _study()
    data = prepare_data(config)

    def opaque(name):
        return lambda model, optimizer, loader, server_round, epochs: (model, optimizer, loader)

    prepared = prepare_sites(config, data, opaque)
    with pytest.raises(ConfigError, match="privatize hook"):
        RayBackend().place(prepared.sites)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="workers"):
        RayBackend(workers=0)
    with pytest.raises(ConfigError, match="in_flight"):
        RayBackend(in_flight=0)


@pytest.mark.slow
def test_two_node_cluster_on_loopback_runs_a_study(local_ray):
    """A head and a worker node (Ray's test cluster utilities, on this machine): the pool
    spreads over both nodes and the study gives the in-process result."""
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        config = _study(rounds=2)
        here = run_study(config, with_baselines=False)
        backend = RayBackend(address=cluster.address)
        placed_on: list[set[str]] = []
        run = run_study(
            config, with_baselines=False, backend=backend,
            progress=lambda _r: placed_on.append(backend.nodes),
        )  # fmt: skip
        assert len(placed_on[0]) == 2
        for name, value in here.final_parameters.items():
            assert np.array_equal(value, run.final_parameters[name])
    finally:
        ray.shutdown()
        cluster.shutdown()
        ray.init(num_cpus=2, include_dashboard=False)  # the module's instance, for later tests


@pytest.mark.slow
def test_cli_study_run_on_ray(tmp_path):
    """``tutela study run --backend ray`` starts its own local instance and writes the run;
    ``--ray-address`` without ``--backend ray`` is a one-line error."""
    import json
    from pathlib import Path

    from tests.cli.run import tutela

    root = Path(__file__).resolve().parents[2]
    study = (root / "examples/healthcare/study.toml").read_text()
    (tmp_path / "s.toml").write_text(study.replace("rounds = 30", "rounds = 2"))
    r = tutela("study", "run", "s.toml", "--backend", "ray", "--out", "o.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "o.json").read_text())["rounds"] == 2
    r = tutela("study", "run", "s.toml", "--ray-address", "auto", cwd=tmp_path)
    assert r.returncode != 0 and "--ray-address needs --backend ray" in r.stderr
    assert "Traceback" not in r.stderr


# -- SecAgg+ clients on the workers ---------------------------------------------------------


def _secagg_inputs(n: int, dim: int = 40):
    rng = np.random.default_rng(4)
    inputs = {i: rng.uniform(-1, 1, dim) for i in range(n)}
    return inputs, {i: float(1 + i % 3) for i in inputs}


def test_secagg_clients_on_ray_agree_with_in_process_bit_for_bit(local_ray, monkeypatch):
    """The same seeded round with its clients on the workers and in this process: the same
    sum, survivors, dropouts and bytes; no client state machine runs in the driver."""
    from tutela.hazmat.rng import SecureRandom
    from tutela.secagg import DropoutPlan, SecAggClient, SecAggConfig, secure_sum

    inputs, weights = _secagg_inputs(24)
    config = SecAggConfig(ddp_sigma=0.3, dropout_tolerance=0.2)
    plan = DropoutPlan(
        share_keys=frozenset({3}), masked_input=frozenset({5, 17}), unmask=frozenset({9})
    )
    here = secure_sum(inputs, weights, config, dropouts=plan, rng=SecureRandom(11))

    def not_here(self, message):
        raise AssertionError("a SecAgg+ client ran in the driver")

    monkeypatch.setattr(SecAggClient, "handle", not_here)  # the workers import their own
    backend = RayBackend(workers=2)
    try:
        there = secure_sum(
            inputs, weights, config, dropouts=plan, rng=SecureRandom(11),
            hosts=backend.client_hosts,
        )  # fmt: skip
    finally:
        backend.release()
    assert np.array_equal(here.total, there.total)
    assert here.weight_total == there.weight_total
    assert here.survivors == there.survivors and len(there.survivors) == 21
    assert dict(here.dropped) == dict(there.dropped)
    assert here.bytes_up == there.bytes_up and here.bytes_down == there.bytes_down
    assert set(there.client_stage_cpu_seconds["masked_input"]) == set(there.survivors) | {9}


def test_a_worker_killed_mid_round_loses_its_devices_and_the_round_closes(local_ray):
    """A worker dies before its devices send their masked inputs: they drop out there, the
    survivors' shares remove their masks, the sum is the survivors' sum, and a fresh worker
    takes the dead one's place. (Devices 0-23 run in this process and 24-29 on the two
    workers, so that losing one worker stays within the round's dropout tolerance.)"""
    from tutela.secagg import SecAggConfig, secure_sum
    from tutela.secagg.simulate import LocalClients

    inputs, _ = _secagg_inputs(30)
    backend = RayBackend(workers=2)
    calls: list[int] = []

    class KillsAWorker:
        def __init__(self) -> None:
            self.here, self.there = LocalClients(), backend.client_hosts()

        def open(self, setups, registry):
            self.here.open({c: s for c, s in setups.items() if c < 24}, registry)
            self.there.open({c: s for c, s in setups.items() if c >= 24}, registry)

        def handle(self, messages, routes):
            calls.append(len(routes))
            if len(calls) == 3:  # the masked-input request
                ray.kill(backend.actors[1], no_restart=True)
            replies = self.here.handle(messages, {c: k for c, k in routes.items() if c < 24})
            replies.update(
                self.there.handle(messages, {c: k for c, k in routes.items() if c >= 24})
            )
            return replies

        def close(self):
            self.here.close()
            self.there.close()

    try:
        result = secure_sum(inputs, None, SecAggConfig(), hosts=KillsAWorker)
        assert backend.replaced_workers == 1
    finally:
        backend.release()
    assert result.dropped["masked_input"] == (27, 28, 29)  # the dead worker's devices
    assert result.survivors == tuple(range(27))
    expected = np.sum([inputs[i] for i in range(27)], axis=0)
    assert np.abs(result.total - expected).max() <= result.quantization_error_bound
    assert calls == [30, 30, 30, 27, 27]  # the lost devices were asked nothing more


def test_a_client_refusal_on_a_worker_is_the_same_error_as_in_process(local_ray):
    """A request a client must refuse (the first stage's request replayed): the worker sends
    back the client's own error, as the in-process host raises it."""
    from tutela.hazmat.kex import ed25519_from_seed, ed25519_public_bytes
    from tutela.secagg import SecAggConfig, SecAggServer, encode_message
    from tutela.secagg.simulate import ClientSetup, LocalClients

    ids = (0, 1, 2, 3)
    seeds = {c: bytes([c + 1]) * 32 for c in ids}
    registry = {c: ed25519_public_bytes(ed25519_from_seed(s)) for c, s in seeds.items()}
    setups = {c: ClientSetup(seeds[c], bytes([c + 9]) * 32, np.zeros(5), 1.0) for c in ids}
    params = SecAggConfig().plan(ids, 5, max_weight=1.0, round_id=bytes(32))
    first = next(iter(SecAggServer(params, registry).start().values()))
    messages, routes = {0: encode_message(first)}, dict.fromkeys(ids, 0)
    backend = RayBackend(workers=2)
    try:
        for host in (LocalClients(), backend.client_hosts()):
            host.open(setups, registry)
            replies = host.handle(messages, routes)
            assert all(error is None and raw for raw, _s, error in replies.values())
            if isinstance(host, LocalClients):
                with pytest.raises(ProtocolAbort) as raised:
                    host.handle(messages, routes)
                local_error = (type(raised.value).__name__, str(raised.value))
            else:
                again = host.handle(messages, routes)
                refused = [error for raw, _s, error in again.values() if error is not None]
                assert refused and refused[0] == local_error
                assert all(raw is None for raw, _s, error in again.values() if error)
            host.close()
    finally:
        backend.release()
