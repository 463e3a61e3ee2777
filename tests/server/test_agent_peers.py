"""A site checks every SecAgg+ peer's identity key against the deployment CA it holds, never
against what the coordinator says: a substituted key, a certificate from another CA or of
another site, or a binding made for another study refuses the round."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tutela.errors import ProtocolAbort, ServiceError
from tutela.hazmat.kex import ed25519_public_bytes, generate_ed25519
from tutela.server import pki
from tutela.server.agent.peers import bind_identity, verified_registry, verify_peer

STUDY = "study-1"


def bound_peer(root: Path, site: str, study_id: str = STUDY) -> dict[str, Any]:
    """A registry entry as a site of the PKI in ``root`` sends it at join (new keys)."""
    paths = pki.PkiLayout(root).site(site)
    if not paths.cert.exists():
        pki.issue_to_files(root, kind="site", name=site)
    identity = ed25519_public_bytes(generate_ed25519())
    return {
        "site": site,
        "identity": identity.hex(),
        **bind_identity(paths.cert, paths.key, study_id, site, identity),
    }


@pytest.fixture
def deployment(tmp_path: Path) -> tuple[Path, x509.Certificate]:
    root = tmp_path / "pki"
    pki.init_ca(root)
    return root, pki.load_cert(pki.PkiLayout(root).ca.cert)


def test_a_binding_made_by_the_site_verifies(deployment: tuple[Path, x509.Certificate]) -> None:
    root, ca = deployment
    peers = {"0": bound_peer(root, "hospital-1"), "1": bound_peer(root, "hospital-2")}
    registry = verified_registry(ca, STUDY, peers)
    assert registry == {i: bytes.fromhex(peers[str(i)]["identity"]) for i in (0, 1)}


def test_a_key_the_coordinator_substituted_is_refused(
    deployment: tuple[Path, x509.Certificate],
) -> None:
    root, ca = deployment
    honest = bound_peer(root, "hospital-2")
    cheating = {**honest, "identity": ed25519_public_bytes(generate_ed25519()).hex()}
    peers = {"0": bound_peer(root, "hospital-1"), "1": cheating}
    with pytest.raises(ProtocolAbort, match=r"'hospital-2'.*not bound"):
        verified_registry(ca, STUDY, peers)


def test_a_certificate_from_another_ca_is_refused(
    deployment: tuple[Path, x509.Certificate], tmp_path: Path
) -> None:
    _, ca = deployment
    other = tmp_path / "other-pki"
    pki.init_ca(other)
    with pytest.raises(ProtocolAbort, match=r"'hospital-1'.*not issued by the deployment CA"):
        verified_registry(ca, STUDY, {"0": bound_peer(other, "hospital-1")})


def test_a_certificate_of_another_site_is_refused(
    deployment: tuple[Path, x509.Certificate],
) -> None:
    root, ca = deployment
    entry = {**bound_peer(root, "hospital-3"), "site": "hospital-2"}
    with pytest.raises(ProtocolAbort, match=r"'hospital-2'.*names 'hospital-3'"):
        verified_registry(ca, STUDY, {"0": entry})


def test_a_binding_for_another_study_is_refused(
    deployment: tuple[Path, x509.Certificate],
) -> None:
    root, ca = deployment
    with pytest.raises(ProtocolAbort, match=r"'hospital-1'.*not bound"):
        verified_registry(ca, STUDY, {"0": bound_peer(root, "hospital-1", "study-2")})


def test_an_expired_certificate_or_a_missing_binding_is_refused(
    deployment: tuple[Path, x509.Certificate],
) -> None:
    root, ca = deployment
    entry = bound_peer(root, "hospital-1")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=pki.DEFAULT_VALID_DAYS + 1)
    with pytest.raises(ProtocolAbort, match="not valid now"):
        verify_peer(
            ca,
            STUDY,
            "hospital-1",
            bytes.fromhex(entry["identity"]),
            entry["certificate"],
            bytes.fromhex(entry["binding"]),
            now=later,
        )
    unbound = {"site": "hospital-1", "identity": entry["identity"]}  # no certificate, binding
    with pytest.raises(ProtocolAbort, match=r"'hospital-1'.*no certificate-bound"):
        verified_registry(ca, STUDY, {"0": unbound})
    with pytest.raises(ProtocolAbort, match="listed twice"):
        verified_registry(ca, STUDY, {"0": entry, "1": entry})


def test_every_site_refuses_a_round_whose_registry_the_coordinator_tampered_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real coordinator and agents: the coordinator swaps its own key in for
    hospital-2's (keeping hospital-2's certificate and binding); every site refuses the
    SecAgg+ round, naming hospital-2, before it sends anything for it."""
    from tutela.fl.recipes import flagship_config
    from tutela.server.agent.site import SiteAgent
    from tutela.server.agent.transport import SiteTransport
    from tutela.server.deploy import run_study_over_network
    from tutela.server.participation import Participation

    cheat = ed25519_public_bytes(generate_ed25519()).hex()
    tasks_for = Participation.tasks_for

    def cheating_tasks_for(self: Participation, site: str) -> dict[str, Any]:
        answer = tasks_for(self, site)
        for task in answer["tasks"]:
            for entry in task.get("registry", {}).values():
                if entry["site"] == "hospital-2":
                    entry["identity"] = cheat
        return answer

    agents: list[SiteAgent] = []
    init = SiteAgent.__init__

    def recording_init(agent: SiteAgent, *args: Any, **kwargs: Any) -> None:
        init(agent, *args, **kwargs)
        agents.append(agent)

    submitted: list[tuple[str, str]] = []
    submit = SiteTransport.submit

    def recording_submit(
        transport: SiteTransport, task: dict[str, Any], stage: str, *a: Any
    ) -> Any:
        submitted.append((transport.site, stage))
        return submit(transport, task, stage, *a)

    monkeypatch.setattr(Participation, "tasks_for", cheating_tasks_for)
    monkeypatch.setattr(SiteAgent, "__init__", recording_init)
    monkeypatch.setattr(SiteTransport, "submit", recording_submit)
    config = flagship_config(rounds=1, sites=3).with_overrides(training={"local_epochs": 1})
    with pytest.raises(ServiceError, match=r"standardisation failed.*advertise_keys"):
        run_study_over_network(
            config,
            tmp_path / "net",
            sites_as_processes=False,
            with_baselines=False,
            stage_timeout_s=3.0,
            timeout_s=120.0,
        )
    assert sorted(a.name for a in agents) == ["hospital-1", "hospital-2", "hospital-3"]
    for agent in agents:
        (why,) = agent.refused_rounds.values()
        assert "SecAgg+ peer 'hospital-2' refused" in why
    assert submitted == []
