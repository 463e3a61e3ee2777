"""The site agent's loop: poll the coordinator's tasks and hand each to its part.

The agent polls ``/v1/site/tasks`` over mutual TLS (:mod:`~tutela.server.agent.transport`)
and, for each task:

- ``join``: the site policy's verdict, then an acceptance or a refusal
  (:mod:`~tutela.server.agent.join`);
- ``fit`` or a SecAgg+ stage (round 0 of a SecAgg+ study is its standardisation round):
  :mod:`~tutela.server.agent.rounds`;
- a CKKS stage: :mod:`~tutela.server.agent.ckks`.

A round the site's policy or privacy plan refuses is recorded in
:attr:`SiteAgent.refused_rounds` and skipped thereafter; a round the site gives up on (the
coordinator unreachable until the deadline, a protocol failure) goes on without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tutela.errors import (
    BudgetExceeded,
    ConfigError,
    PolicyViolation,
    ProtocolAbort,
    TransportError,
)
from tutela.governance.minimisation import SitePolicy
from tutela.server.agent.ckks import CkksAgent
from tutela.server.agent.enrol import enrol
from tutela.server.agent.join import StudyJoining
from tutela.server.agent.reports import SiteReporter
from tutela.server.agent.rounds import FIT_STAGE, SiteRounds
from tutela.server.agent.settings import AgentSettings, identity_key, read_site_header
from tutela.server.agent.state import StudyState
from tutela.server.agent.transport import SiteTransport, detail
from tutela.server.ckks import STAGES as CKKS_STAGES


class SiteAgent:
    """One site's agent (see :mod:`tutela.server.agent`).

    Attributes:
        settings: where it connects and what it holds.
        name: the site's name.
        transport: its connection to the coordinator.
        studies: the studies it joined.
        refused: the studies it refused, with the reason.
        refused_rounds: the rounds it refused, by (study, round), with the reason.
        reports: the latest signed site report per joined study.
        finished: the studies that ended.
    """

    def __init__(
        self, settings: AgentSettings, *, name: str, log: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings
        self.name = name
        self.log = log or (lambda _msg: None)
        self.transport = SiteTransport(settings, site=name)
        self.header = read_site_header(settings.data, settings.outcome)
        self.identity = identity_key(settings.state_dir)
        self.identity_public = self.identity.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.studies: dict[str, StudyState] = {}
        self.refused: dict[str, str] = {}
        self.refused_rounds: dict[tuple[str, int], str] = {}
        self.reports: dict[str, dict[str, Any]] = {}
        self.finished: set[str] = set()
        self.joining = StudyJoining(self)
        self.rounds = SiteRounds(self)
        self.reporter = SiteReporter(self)
        self.ckks = CkksAgent(self)

    @property
    def ca(self) -> x509.Certificate:
        """The deployment's CA certificate, read from this site's own file (what it checks
        its SecAgg+ peers' keys against)."""
        return x509.load_pem_x509_certificate(Path(self.settings.ca_file).read_bytes())

    @property
    def state_dir(self) -> Path:
        """Where this site keeps its ledgers and reports."""
        return self.settings.state_dir or Path(self.settings.data).parent

    def run(self) -> dict[str, Any]:
        """Poll and work until every joined study has ended (or ``max_runtime_s``)."""
        started = time.time()
        while time.time() - started < self.settings.max_runtime_s:
            payload = self.poll()
            worked = False
            for task in payload["tasks"]:
                worked |= self.handle(task)
            active = payload.get("studies", {})
            for study_id, status in active.items():
                if status in ("completed", "failed", "cancelled"):
                    self.finished.add(study_id)
            joined = set(self.studies) | set(self.refused)
            if (
                self.settings.exit_when_done
                and joined
                and all(s in self.finished or s in self.refused for s in joined)
                and not payload["tasks"]
            ):
                break
            if not worked:
                time.sleep(self.settings.poll_interval)
        return {
            "joined": sorted(self.studies),
            "refused": dict(self.refused),
            "refused_rounds": {
                f"{s}/round-{r}": why for (s, r), why in self.refused_rounds.items()
            },
            "finished": sorted(self.finished),
            "site_reports": dict(self.reports),
        }

    def poll(self) -> dict[str, Any]:
        """Fetch the current tasks."""
        response = self.transport.request("GET", "/v1/site/tasks", deadline=time.time() + 600)
        if response.status_code != 200:
            raise TransportError(f"polling failed: HTTP {response.status_code}: {detail(response)}")
        data: dict[str, Any] = response.json()
        return data

    def handle(self, task: dict[str, Any]) -> bool:
        """Do one task; return True if anything was sent."""
        kind = task["kind"]
        if kind == "join":
            return self.joining.handle(task)
        round_key = (str(task["study_id"]), int(task["round"]))
        if round_key in self.refused_rounds:
            return False
        try:
            if kind == FIT_STAGE:
                return self.rounds.fit(task)
            if kind in CKKS_STAGES:
                return self.ckks.handle(task)
            return self.rounds.secagg(task)
        except (PolicyViolation, BudgetExceeded) as exc:
            # The site's policy or privacy plan refuses this round: nothing was trained or
            # spent, nothing is sent; the round goes on without this site.
            self.refused_rounds[round_key] = str(exc)
            self.log(f"{self.name}: round {task['round']} refused: {exc}")
            return False
        except (ProtocolAbort, TransportError) as exc:
            # The round goes on without this site (the coordinator's deadline handles it);
            # the agent keeps polling for the next task.
            self.log(f"{self.name}: round {task.get('round')} stage {kind} given up: {exc}")
            return False


def run_site(
    *,
    coordinator: str,
    name: str,
    ca_file: Path,
    cert_file: Path,
    key_file: Path,
    data: Path,
    policy_file: Path,
    enrol_token: str | None = None,
    state_dir: Path | None = None,
    seed: int = 0,
    outcome: str = "outcome",
    max_runtime_s: float = 3600.0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Enrol if needed (``enrol_token`` and no certificate yet), then run the agent.

    This is what ``tutela site run`` does.
    """
    from tutela.server.pki import validate_site_name

    validate_site_name(name)
    policy = SitePolicy.from_toml(policy_file)
    if not cert_file.exists():
        if enrol_token is None:
            raise ConfigError(f"no site certificate at {cert_file}; pass --enrol-token to enrol")
        enrol(coordinator, ca_file, name, enrol_token, cert_file, key_file)
    settings = AgentSettings(
        coordinator=coordinator,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        data=data,
        policy=policy,
        outcome=outcome,
        seed=seed,
        state_dir=state_dir,
        max_runtime_s=max_runtime_s,
    )
    agent = SiteAgent(settings, name=name, log=log)
    try:
        return agent.run()
    finally:
        agent.transport.close()
