"""The site agent's loop: ask the coordinator for tasks and hand each to its part.

The agent asks ``/v1/site/tasks`` over mutual TLS (:mod:`~tutela.server.agent.transport`)
by long polling (:mod:`~tutela.server.push`): it names the version of the answer it last
acted on and the coordinator holds the request until that answer changes (a round opens, a
SecAgg+ stage advances, a query arrives) or the wait runs out; the agent asks again at once.
A stage's answer asks the same of the coordinator (``wait`` and ``seen`` on the submission),
so the next answer comes back with the receipt and the agent needs no separate request.
A coordinator that answers without a version (an older one) is polled every
``poll_interval`` instead, as is every coordinator after a task the agent gave up on (so the
task is retried). For each task:

- ``join``: the site policy's verdict, then an acceptance or a refusal
  (:mod:`~tutela.server.agent.join`);
- ``fit`` or a SecAgg+ stage (round 0 of a SecAgg+ study is its standardisation round):
  :mod:`~tutela.server.agent.rounds`;
- a CKKS stage: :mod:`~tutela.server.agent.ckks`.

A round the site's policy or privacy plan refuses is recorded in
:attr:`SiteAgent.refused_rounds` and skipped thereafter; a round the site gives up on (the
coordinator unreachable until the deadline, a protocol failure) goes on without it.

The site also witnesses the coordinator's audit log (:mod:`~tutela.server.agent.witness`):
whenever a study's status changes, when its round changes (at most every
``witness_interval_s`` seconds, as witnesses of transparency logs cosign on a cadence
rather than per entry), and before it stops, it checks and cosigns the latest checkpoint.
If the coordinator's log does not extend what the site cosigned before
(rewritten, truncated, forked, or signed by another key), the site records the evidence and
stops taking part in every study, with the reason (:attr:`SiteAgent.witness_refused`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tutela.errors import (
    AuditError,
    BudgetExceeded,
    ConfigError,
    PolicyViolation,
    ProtocolAbort,
    TransportError,
)
from tutela.fl.client import warm_up
from tutela.governance.checkpoint import VerifierKey
from tutela.governance.minimisation import SitePolicy
from tutela.governance.witness import WitnessRefusal
from tutela.server.agent.ckks import CkksAgent
from tutela.server.agent.enrol import enrol
from tutela.server.agent.join import StudyJoining
from tutela.server.agent.query import QUERY_TASK, SiteQueries
from tutela.server.agent.reports import SiteReporter
from tutela.server.agent.rounds import FIT_STAGE, SiteRounds
from tutela.server.agent.settings import AgentSettings, identity_key, read_site_header
from tutela.server.agent.state import StudyState
from tutela.server.agent.transport import SiteTransport, detail
from tutela.server.agent.witness import SiteWitness, parse_audit_key
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
        witness: the site as a witness of the coordinator's audit log.
        witness_refused: why the site stopped, if the coordinator's log did not extend what
            it cosigned before.
    """

    def __init__(
        self,
        settings: AgentSettings,
        *,
        name: str,
        log: Callable[[str], None] | None = None,
        audit_key: VerifierKey | None = None,
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
        self.queries = SiteQueries(self)
        self.witness = SiteWitness(
            lambda: self.transport.client,
            site=name,
            state_dir=self.state_dir,
            audit_key=audit_key,
            ca=self.ca,
        )
        self.witness_refused: str | None = None
        self._witnessed_statuses: list[tuple[str, Any]] | None = None
        self._witnessed_rounds: list[tuple[str, int]] | None = None
        self._witnessed_at = -float("inf")
        self._rounds: dict[str, int] = {}
        self._gave_up = False

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
        """Ask for tasks and work until every joined study has ended (or ``max_runtime_s``)."""
        started = time.time()
        seen: str | None = None
        while time.time() - started < self.settings.max_runtime_s:
            # The answer that came back with the last submission, else a (long) poll.
            payload, self.transport.followed = self.transport.followed, None
            if payload is None:
                payload = self.poll(seen)
            worked = False
            self._gave_up = False
            tasks = payload["tasks"]
            for i, task in enumerate(tasks):
                if i == len(tasks) - 1 and isinstance(payload.get("version"), str):
                    # its submission (if it makes one) may wait for the next answer
                    self.transport.follow = str(payload["version"])
                worked |= self.handle(task)
            self.transport.follow = None
            active = payload.get("studies", {})
            for study_id, status in active.items():
                if status in ("completed", "failed", "cancelled"):
                    self.finished.add(study_id)
            for t in payload["tasks"]:
                if t.get("round") is not None:
                    study = str(t["study_id"])
                    self._rounds[study] = max(self._rounds.get(study, -1), int(t["round"]))
            if self._witness_due(active) and not self.witness_checks():
                break
            joined = set(self.studies) | set(self.refused)
            if (
                self.settings.exit_when_done
                and joined
                and all(s in self.finished or s in self.refused for s in joined)
                and not payload["tasks"]
            ):
                self.witness_checks()  # the log as the site leaves it
                break
            version = payload.get("version")
            if isinstance(version, str) and not self._gave_up:
                seen = version  # the coordinator holds the next request until this changes
            else:
                seen = None
                if not worked or self._gave_up:
                    time.sleep(self.settings.poll_interval)
        return {
            "joined": sorted(self.studies),
            "refused": dict(self.refused),
            "refused_rounds": {
                f"{s}/round-{r}": why for (s, r), why in self.refused_rounds.items()
            },
            "finished": sorted(self.finished),
            "site_reports": dict(self.reports),
            "witness_refused": self.witness_refused,
        }

    def _witness_due(self, active: dict[str, Any]) -> bool:
        """Whether to witness now: a study's status changed, or its round did (not each
        protocol stage of the same round) and the last check is ``witness_interval_s`` old."""
        statuses, rounds = sorted(active.items()), sorted(self._rounds.items())
        if statuses == self._witnessed_statuses and rounds == self._witnessed_rounds:
            return False
        now = time.monotonic()
        if (
            statuses == self._witnessed_statuses
            and now - self._witnessed_at < self.settings.witness_interval_s
        ):
            return False
        self._witnessed_statuses, self._witnessed_rounds = statuses, rounds
        self._witnessed_at = now
        return True

    def witness_checks(self) -> bool:
        """Witness the coordinator's audit log once; False if the site must stop.

        A log that does not extend what this site cosigned stops the site: every study it
        joined is recorded as refused with the reason. A coordinator that cannot be reached
        is retried at the next change.
        """
        if self.witness_refused is not None:
            return False
        try:
            self.witness.witness_once()
        except WitnessRefusal as exc:
            self.witness_refused = exc.reason
            reason = f"stopped: the coordinator's audit log cannot be witnessed: {exc.reason}"
            for study_id in self.studies:
                if study_id not in self.finished:
                    self.refused[study_id] = reason
            self.log(f"{self.name}: {reason} (evidence in {exc.evidence})")
            return False
        except (TransportError, AuditError) as exc:
            self.log(f"{self.name}: audit checkpoint not witnessed this time: {exc}")
        return True

    def poll(self, seen: str | None = None) -> dict[str, Any]:
        """Fetch the current tasks; with ``seen``, once they differ from that version (or the
        long-poll wait ran out).

        A coordinator that refuses to hold the request (429: this site holds too many) is
        asked again without waiting, after ``poll_interval``; one that fails (a server
        error, e.g. while it stops) is asked again until the deadline.
        """
        wait = self.settings.long_poll_s
        deadline = time.time() + 600
        while True:
            if seen is not None and wait > 0:
                response = self.transport.request(
                    "GET",
                    "/v1/site/tasks",
                    params={"wait": wait, "seen": seen},
                    timeout=wait + 30.0,
                    deadline=deadline,
                )
            else:
                response = self.transport.request("GET", "/v1/site/tasks", deadline=deadline)
            if response.status_code == 200:
                data: dict[str, Any] = response.json()
                return data
            if response.status_code not in (429, 500) or time.time() > deadline:
                raise TransportError(
                    f"polling failed: HTTP {response.status_code}: {detail(response)}"
                )
            self.log(f"{self.name}: task request refused, asking again: {detail(response)}")
            seen = None  # ask without waiting
            time.sleep(self.settings.poll_interval)

    def handle(self, task: dict[str, Any]) -> bool:
        """Do one task; return True if anything was sent."""
        kind = task["kind"]
        if kind == "join":
            return self.joining.handle(task)
        if kind == QUERY_TASK:
            return self.queries.handle(task)
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
            # the agent keeps polling for the next task (and retries this one meanwhile).
            self._gave_up = True
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
    audit_key: str | VerifierKey | None = None,
) -> dict[str, Any]:
    """Enrol if needed (``enrol_token`` and no certificate yet), then run the agent.

    This is what ``tutela site run`` does. ``audit_key`` is the coordinator's audit key as
    the operator received it out of band: pinned on first use, the site witnesses the
    coordinator's audit log under it (see :mod:`~tutela.server.agent.witness`).
    """
    from tutela.server.pki import validate_site_name

    validate_site_name(name)
    pinned = parse_audit_key(audit_key)
    policy = SitePolicy.from_toml(policy_file)
    warm_up()  # before enrolling: a study may start as soon as this site is enrolled
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
    agent = SiteAgent(settings, name=name, log=log, audit_key=pinned)
    try:
        return agent.run()
    finally:
        agent.transport.close()
