"""The site agent: runs beside a hospital's data and talks to the coordinator outbound only.

It polls ``/v1/site/tasks`` over mutual TLS and, for each task:

- ``join``: checks the study against the local
  :class:`~tutela.governance.minimisation.SitePolicy` first (having read only the data
  file's header), then accepts (sending its row count, its SecAgg+ identity key and what
  the study's standardisation takes, see below) or refuses with every reason;
- the standardisation round (round 0, under secure aggregation): answers a SecAgg+ round
  over its moment vector with the same SecAgg+ client code as a training round, after
  checking the plan and, in a private study, charging its own ledger;
- ``fit``: downloads the global model, trains locally with the same
  :class:`~tutela.fl.client.LocalSite` code the in-process engine uses, and uploads the
  update (local minus global parameters) as safetensors, exactly once (idempotency key);
- a SecAgg+ stage: answers the coordinator's protocol message with the
  :class:`~tutela.secagg.SecAggClient` state machine; the update only ever leaves masked.
  A round whose threshold is below the policy's ``min_secagg_threshold`` is refused before
  the site trains or spends anything;
- a CKKS stage: encrypts its update under the study's keyring, or decrypts an aggregate of
  enough named contributions (:mod:`tutela.server.agent_ckks`).

Before each round's training the site checks the round against its policy's limits and
charges its own ledger (``ledger-<study>.sqlite`` in its state directory) for exactly the
DP-SGD steps it will run; a round beyond its limits or its privacy plan is refused (logged,
not trained, nothing sent). After each round it signs its report: the policy it enforced
and its ledger summary (:func:`tutela.fl.client.site_report`), kept in :attr:`SiteAgent.
reports`, written to ``site-report-<study>.json`` in its state directory, sent to the
coordinator (after joining and after each round) and returned by :meth:`SiteAgent.run`; the
numeric privacy figures go to the coordinator as round metrics.

Under client-level DP (DP-FedAvg) the site owns the guarantee too
(:class:`~tutela.fl.privacy.SiteClientDP`): it checks each round's clip norm and noise (the
fit config with central noise, the SecAgg+ plan with distributed noise: at least the noise
and the survivors the study's calibration requires) against its own calibration, charges its
own ledger the round's event before training or sending anything, clips its update to the
round's clip norm and, under SecAgg+, adds its own noise share inside the masked sum.

Every request is retried with backoff while the coordinator is unreachable (for example
while it restarts), until the stage deadline.

Standardisation statistics (:mod:`tutela.fl.standardisation`): under SecAgg+ the site's
feature sums and sums of squares (its features clipped to the study's declared ranges)
leave only masked, inside the SecAgg+ sum of round 0; in a private study with distributed
noise whose plan the site checks and charges to its own ledger before sending. In a private
study without SecAgg+ the site sends that vector with Gaussian noise it drew itself, charged
first. Only in a study with neither SecAgg+ nor DP (CKKS included, for now) do the exact
moments travel in the clear, in the join answer.

Privacy: only the columns the site policy allows for the study's purpose are loaded (the
file is read for those columns only, after the policy accepted the study); the raw rows
never leave. What leaves: the row count the site declares at join (in the clear, not
noised: the coordinator caps the site's weight with it and bounds SecAgg+ weights; the DP
guarantees treat it as public), the standardisation statistics as above and, per round,
one update (masked under SecAgg+).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.dp.events import Event
from tutela.errors import (
    BudgetExceeded,
    ConfigError,
    DataError,
    PolicyViolation,
    ProtocolAbort,
    TransportError,
)
from tutela.fl.client import LocalSite, LocalTraining, OptimizerKind, site_report
from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.models import build_model
from tutela.fl.privacy import (
    WITHIN_CLIP,
    SampleLevelDP,
    SiteClientDP,
    clip_for_round,
    expected_sites,
    no_ledger_summary,
    secure_input,
)
from tutela.fl.recipes import LEDGER_PLD_GRID, study_request
from tutela.fl.records import FitIns, Parameters, ParameterSpec, parameters_to_bytes, subtract
from tutela.fl.standardisation import (
    StandardisationMode,
    StandardisationPlan,
    charge_standardisation,
)
from tutela.fl.standardisation import secure_input as secure_moments
from tutela.governance._files import atomic_write
from tutela.governance.minimisation import SitePolicy, minimise
from tutela.secagg import SecAggClient, decode_message, encode_message
from tutela.secagg.client import ClientPolicy
from tutela.secagg.config import RoundParams
from tutela.secagg.messages import (
    AdvertiseKeysRequest,
    MaskedInputRequest,
    ShareKeysRequest,
    UnmaskRequest,
)
from tutela.server.agent_ckks import CkksAgent
from tutela.server.ckks import STAGES as CKKS_STAGES
from tutela.server.standardisation import STANDARDISATION_CONFIG
from tutela.server.tls import client_context
from tutela.server.wire import parse_tensors

FIT_STAGE = "fit"


@dataclass(frozen=True)
class AgentSettings:
    """Where the agent connects and what it holds.

    Attributes:
        coordinator: base URL (``https://host:port``).
        ca_file: the deployment's CA certificate.
        cert_file: this site's certificate (from enrolment or ``tutela pki issue --site``).
        key_file: its private key.
        data: CSV file with the site's rows (a header row; one outcome column).
        policy: the site policy (the last word on what this site runs and shares).
        outcome: name of the outcome column.
        seed: seeds local data order (not privacy noise).
        state_dir: where the agent keeps its SecAgg+ identity key, its privacy ledgers and
            its signed reports (the data file's directory if ``None``).
        poll_interval: seconds between polls when idle.
        exit_when_done: stop once every study this site joined has ended.
        max_runtime_s: stop after this long regardless.
    """

    coordinator: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    data: Path
    policy: SitePolicy
    outcome: str = "outcome"
    seed: int = 0
    state_dir: Path | None = None
    poll_interval: float = 0.2
    exit_when_done: bool = True
    max_runtime_s: float = 3600.0


@dataclass
class _StudyState:
    site: LocalSite
    columns: list[str]
    config: dict[str, Any]
    standardised: bool = False
    updates: dict[int, tuple[Parameters, Parameters, int]] = field(default_factory=dict)
    secagg: dict[tuple[int, int], SecAggClient] = field(default_factory=dict)
    dp: SampleLevelDP | None = None
    client_dp: SiteClientDP | None = None


def _read_csv(
    path: Path, *, nrows: int | None = None, usecols: list[str] | None = None
) -> pd.DataFrame:
    try:
        return pd.read_csv(path, nrows=nrows, usecols=usecols)
    except FileNotFoundError:
        raise DataError(f"site data not found: {path}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read site data {path}: {exc}") from None


def read_site_header(path: Path, outcome: str) -> list[str]:
    """The column names of the site's CSV (no row is read); checks the outcome column."""
    columns = [str(c) for c in _read_csv(path, nrows=0).columns]
    if outcome not in columns:
        raise DataError(f"site data {path} has no outcome column {outcome!r}")
    return columns


def load_site_table(path: Path, outcome: str, columns: list[str]) -> pd.DataFrame:
    """Read only ``columns`` and the outcome column of the site's CSV.

    Call it after the site policy accepted ``columns``: no other column is ever parsed.
    """
    frame = _read_csv(path, usecols=[*columns, outcome])
    return frame.loc[:, [*columns, outcome]]


def identity_key(state_dir: Path | None) -> Ed25519PrivateKey:
    """The site's long-term SecAgg+ identity key (created once, mode 0600)."""
    if state_dir is None:
        return Ed25519PrivateKey.generate()
    path = state_dir / "secagg-identity.key"
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} is not an Ed25519 key")
        return key
    key = Ed25519PrivateKey.generate()
    state_dir.mkdir(parents=True, exist_ok=True)
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return key


def _training(config: dict[str, Any]) -> LocalTraining:
    t = config["training"]
    return LocalTraining(
        epochs=int(t["local_epochs"]),
        batch_size=int(t["batch_size"]),
        learning_rate=float(t["learning_rate"]),
        optimizer=OptimizerKind(t["optimizer"]),
        momentum=float(t["momentum"]),
        weight_decay=float(t["weight_decay"]),
    )


class SiteAgent:
    """One site's agent (see the module docstring)."""

    def __init__(
        self, settings: AgentSettings, *, name: str, log: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings
        self.name = name
        self._log = log or (lambda _msg: None)
        ctx = client_context(
            settings.ca_file, certfile=settings.cert_file, keyfile=settings.key_file
        )
        self.client = httpx.Client(base_url=settings.coordinator, verify=ctx, timeout=30.0)
        self.header = read_site_header(settings.data, settings.outcome)
        self.identity = identity_key(settings.state_dir)
        self.identity_public = self.identity.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.studies: dict[str, _StudyState] = {}
        self.refused: dict[str, str] = {}
        self.refused_rounds: dict[tuple[str, int], str] = {}
        self.reports: dict[str, dict[str, Any]] = {}
        """The latest signed site report per joined study (see the module docstring)."""
        self.finished: set[str] = set()
        self.ckks = CkksAgent(self)
        """The CKKS stages (:mod:`tutela.server.agent_ckks`)."""

    @property
    def state_dir(self) -> Path:
        """Where this site keeps its ledgers and reports."""
        return self.settings.state_dir or Path(self.settings.data).parent

    # transport --------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        give_up = deadline if deadline is not None else time.time() + 60.0
        delay = 0.1
        while True:
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if time.time() + delay > give_up:
                    raise TransportError(f"coordinator unreachable: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if response.status_code in (502, 503, 504) and time.time() + delay <= give_up:
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            return response

    @staticmethod
    def _detail(response: httpx.Response) -> str:
        try:
            return str(response.json().get("detail"))
        except (ValueError, AttributeError):
            return response.text[:200]

    # the loop ---------------------------------------------------------------------------

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
        response = self._request("GET", "/v1/site/tasks", deadline=time.time() + 600)
        if response.status_code != 200:
            raise TransportError(
                f"polling failed: HTTP {response.status_code}: {self._detail(response)}"
            )
        data: dict[str, Any] = response.json()
        return data

    def handle(self, task: dict[str, Any]) -> bool:
        """Do one task; return True if anything was sent."""
        kind = task["kind"]
        if kind == "join":
            return self._join(task)
        round_key = (str(task["study_id"]), int(task["round"]))
        if round_key in self.refused_rounds:
            return False
        try:
            if kind == FIT_STAGE:
                return self._fit(task)
            if kind in CKKS_STAGES:
                return self.ckks.handle(task)
            return self._secagg(task)
        except (PolicyViolation, BudgetExceeded) as exc:
            # The site's policy or privacy plan refuses this round: nothing was trained or
            # spent, nothing is sent; the round goes on without this site.
            self.refused_rounds[round_key] = str(exc)
            self._log(f"{self.name}: round {task['round']} refused: {exc}")
            return False
        except (ProtocolAbort, TransportError) as exc:
            # The round goes on without this site (the coordinator's deadline handles it);
            # the agent keeps polling for the next task.
            self._log(f"{self.name}: round {task.get('round')} stage {kind} given up: {exc}")
            return False

    # join -------------------------------------------------------------------------------

    def _study_columns(self, config: dict[str, Any]) -> list[str]:
        cols = config.get("data", {}).get("columns")
        if cols is not None:
            return [str(c) for c in cols]
        return [c for c in self.header if c != self.settings.outcome]

    def refusals(self, config: dict[str, Any]) -> list[str]:
        """Every reason this site refuses the study ``config`` (empty: it may join).

        Only the data file's header is consulted: no row is read before the policy agrees.
        """
        try:
            study = parse_study(config)
        except ConfigError as exc:
            return [str(exc)]
        columns = self._study_columns(config)
        reasons = list(self.settings.policy.evaluate(study_request(study, columns)).reasons)
        missing = [c for c in columns if c not in self.header]
        if missing:
            reasons.append(f"this site has no column(s) {', '.join(missing)}")
        if study.privacy.mode == "client" and study.secure_aggregation.protocol == "ckks":
            reasons.append("client-level DP with CKKS aggregation is not supported by this agent")
        return reasons

    def _join(self, task: dict[str, Any]) -> bool:
        study_id = task["study_id"]
        config = task["config"]
        reasons = self.refusals(config)
        if reasons:
            reason = "; ".join(reasons)
            self.refused[study_id] = reason
            self._log(f"{self.name}: refusing study {study_id}: {reason}")
            body: dict[str, Any] = {"accept": False, "reason": reason}
        else:
            try:
                body = self._accept(study_id, config, parse_study(config))
            except (PolicyViolation, BudgetExceeded) as exc:  # nothing was sent or charged
                self.studies.pop(study_id, None)
                self.refused[study_id] = str(exc)
                body = {"accept": False, "reason": str(exc)}
        response = self._request(
            "POST",
            f"/v1/site/studies/{study_id}/participation",
            json=body,
            deadline=task.get("deadline"),
        )
        if response.status_code != 200:
            self._log(f"{self.name}: join answer refused: {self._detail(response)}")
        elif body["accept"]:
            self._send_report(study_id, task.get("deadline"))
        return True

    def _accept(self, study_id: str, config: dict[str, Any], study: StudyConfig) -> dict[str, Any]:
        """Load the accepted columns (and nothing else), build the site, sign its report."""
        columns = self._study_columns(config)
        policy = self.settings.policy
        frame = load_site_table(self.settings.data, self.settings.outcome, columns)
        kept, _ = minimise(
            frame.drop(columns=[self.settings.outcome]), study.study.purpose, columns, policy
        )
        features = kept.to_numpy(dtype=np.float32)
        outcome = frame[self.settings.outcome].to_numpy(dtype=np.int64)
        model = study.model
        seed = study.study.seed
        n_features = len(columns)

        def factory() -> Any:
            return build_model(model.kind, n_features, hidden=tuple(model.hidden), seed=seed)

        dimension = sum(int(p.numel()) for p in factory().parameters())
        privatize, dp = self._privacy(study_id, config, len(outcome), dimension)
        client_dp = self._client_privacy(study_id, study, dimension)
        site = LocalSite(
            self.name,
            features,
            outcome,
            factory,
            _training(config),
            seed=self.settings.seed,
            privatize=privatize,
            policy=policy,
            identity=self.identity,
        )
        self.studies[study_id] = _StudyState(site, columns, config, dp=dp, client_dp=client_dp)
        body: dict[str, Any] = {
            "accept": True,
            "num_examples": site.num_examples,
            "identity": self.identity_public.hex(),
        }
        plan = StandardisationPlan.of(study, columns)
        if plan.mode is StandardisationMode.PLAIN:  # no secure aggregation, no DP
            moments = site.feature_moments()
            body["moments"] = {
                "count": moments.count,
                "total": moments.total.tolist(),
                "total_sq": moments.total_sq.tolist(),
            }
        elif plan.mode is StandardisationMode.NOISED:  # charged before it is sent
            noised, event = plan.noised_vector(plan.site_moments(site))
            self._charge_standardisation(study_id, study, event, attempt=1)
            body["noised"] = noised.tolist()
        self._sign_report(study_id)
        return body

    def _charge_standardisation(
        self, study_id: str, study: StudyConfig, event: Event, *, attempt: int
    ) -> None:
        """Charge this site's own ledger for its standardisation release (before sending)."""
        state = self.studies[study_id]
        ledger = state.dp.ledger if state.dp is not None else None
        if state.client_dp is not None:
            ledger = state.client_dp.ledger
        if ledger is None or study.privacy.epsilon is None:  # pragma: no cover - private
            raise PolicyViolation("a private standardisation needs the site's ledger")
        charge_standardisation(
            ledger, study.study.name, self.name, event,
            epsilon=study.privacy.epsilon, delta=study.privacy.delta,
            accountant=study.privacy.accountant, attempt=attempt,
        )  # fmt: skip

    def _standardisation_client(
        self, task: dict[str, Any], params: RoundParams, client: SecAggClient
    ) -> SecAggClient:
        """Round 0: check the plan, charge a private study's release, set the moment vector
        (features clipped to the declared ranges) as the SecAgg+ input, weighted by rows.

        Raises:
            PolicyViolation: the plan is not the study's standardisation round or carries
                less noise than its calibration (nothing charged or sent).
            BudgetExceeded: the site's budget cannot pay for it.
        """
        state = self.studies[task["study_id"]]
        study = parse_study(state.config)
        plan = StandardisationPlan.of(study, state.columns)
        moments = plan.site_moments(state.site)
        event = plan.check_secure(params, moments.count)
        if event is not None:
            attempt = int(task.get("attempt", 1))
            self._charge_standardisation(task["study_id"], study, event, attempt=attempt)
            self._sign_report(task["study_id"])
            self._send_report(task["study_id"], float(task["deadline"]))
        vector, weight = secure_moments(moments)
        client.set_input(vector, weight=weight)
        return client

    def _privacy(
        self, study_id: str, config: dict[str, Any], rows: int, dimension: int = 1
    ) -> tuple[Any, SampleLevelDP | None]:
        """DP-SGD at this site when the study asks for record-level DP (``privacy.mode =
        "sample"``), charged to a ledger the site keeps itself (the site, not the study's
        code, decides that the noise is added)."""
        p = config["privacy"]
        if p["mode"] in ("none", "client"):
            return None, None
        if p["mode"] != "sample":
            raise PolicyViolation(f"privacy.mode {p['mode']!r} is not supported by this agent")
        from tutela.dp.ledger import PrivacyLedger

        base = self.state_dir
        base.mkdir(parents=True, exist_ok=True)
        t = config["training"]
        dp = SampleLevelDP(
            PrivacyLedger(
                base / f"ledger-{study_id}.sqlite", value_discretization_interval=LEDGER_PLD_GRID
            ),
            str(config["study"]["name"]),
            epsilon=min(float(p["epsilon"]), self.settings.policy.max_epsilon),
            delta=float(p["delta"]),
            max_grad_norm=float(p["max_grad_norm"]),
            accountant=str(p["accountant"]),
            rounds=int(t["rounds"]),
            local_epochs=int(t["local_epochs"]),
            batch_size=int(t["batch_size"]),
            site_rows={self.name: rows},
            dimension=dimension,
            grid=LEDGER_PLD_GRID,
        )
        return dp.hook(self.name), dp

    def _ledger(self, study_id: str) -> Any:
        from tutela.dp.ledger import PrivacyLedger

        self.state_dir.mkdir(parents=True, exist_ok=True)
        return PrivacyLedger(
            self.state_dir / f"ledger-{study_id}.sqlite",
            value_discretization_interval=LEDGER_PLD_GRID,
        )

    def _client_privacy(
        self, study_id: str, study: StudyConfig, dimension: int
    ) -> SiteClientDP | None:
        """This site's part of DP-FedAvg when the study asks for client-level DP: it clips its
        own update, adds its own noise share under SecAgg+, and charges its own ledger for
        each round before anything leaves (see :class:`~tutela.fl.privacy.SiteClientDP`)."""
        p = study.privacy
        if p.mode != "client" or p.epsilon is None:
            return None
        return SiteClientDP(
            self._ledger(study_id),
            study.study.name,
            self.name,
            epsilon=p.epsilon,
            delta=p.delta,
            accountant=p.accountant,
            rounds=study.training.rounds,
            expected_sites=expected_sites(study),
            dimension=dimension,
            adaptive=p.adaptive_clipping,
            secure=study.secure_aggregation.protocol == "secagg+",
            budget_epsilon=min(p.epsilon, self.settings.policy.max_epsilon),
        )

    def _sign_report(self, study_id: str) -> dict[str, Any]:
        """Sign this site's policy and ledger summary for ``study_id``; keep and write it."""
        state = self.studies[study_id]
        if state.dp is not None:
            ledger = state.dp.ledger_summary(self.name)
        elif state.client_dp is not None:
            ledger = state.client_dp.ledger_summary()
        else:
            ledger = no_ledger_summary()
        report = site_report(self.name, self.settings.policy, ledger, self.identity)
        self.reports[study_id] = report
        text = json.dumps(report, sort_keys=True, indent=2, allow_nan=False) + "\n"
        atomic_write(self.state_dir / f"site-report-{study_id}.json", text.encode("utf-8"))
        return report

    def _send_report(self, study_id: str, deadline: float | None) -> None:
        """Send the latest signed report for ``study_id`` to the coordinator, which checks it
        against the identity key this site registered at join and keeps it verbatim (the
        same report sent again is kept once). A refusal or an unreachable coordinator is
        logged: the report stays in the state directory."""
        text = json.dumps(self.reports[study_id], sort_keys=True, allow_nan=False)
        try:
            response = self._request(
                "POST",
                f"/v1/site/studies/{study_id}/site-report",
                content=text.encode("utf-8"),
                headers={"Content-Type": "application/json"},
                deadline=deadline,
            )
        except TransportError as exc:
            self._log(f"{self.name}: site report for study {study_id} not sent: {exc}")
            return
        if response.status_code != 200:
            self._log(f"{self.name}: site report refused: {self._detail(response)}")

    def _report_privacy(self, task: dict[str, Any]) -> None:
        """Sign this round's site report; send its privacy figures as round metrics."""
        state = self.studies[task["study_id"]]
        report = self._sign_report(task["study_id"])
        self._send_report(task["study_id"], float(task["deadline"]))
        if state.dp is not None:
            noise = float(state.dp.report()["per_site"][self.name]["noise_multiplier"])
        elif state.client_dp is not None:
            noise = state.client_dp.noise_multiplier
        else:
            return
        ledger = report["ledger"]
        metrics = {  # floats only: the metrics endpoint takes numbers
            "epsilon": float(ledger["spent_epsilon"]),
            "delta": float(ledger["delta"]),
            "noise_multiplier": noise,
            "budget_epsilon": float(ledger["budget_epsilon"]),
            "budget_left": float(ledger["remaining_epsilon"]),
        }
        self._request(
            "POST",
            f"/v1/site/studies/{task['study_id']}/rounds/{task['round']}/metrics",
            json={"metrics": metrics},
            deadline=float(task["deadline"]),
        )

    # plain rounds -----------------------------------------------------------------------

    def _train(self, task: dict[str, Any]) -> tuple[Parameters, Parameters, int]:
        """Train for a round once (cached), returning (global, update, num_examples)."""
        state = self.studies[task["study_id"]]
        round_no = int(task["round"])
        if round_no in state.updates:
            return state.updates[round_no]
        if not state.standardised:
            std = task["standardisation"]
            state.site.standardise(
                np.asarray(std["mean"], np.float64), np.asarray(std["std"], np.float64)
            )
            state.standardised = True
        response = self._request(
            "GET", f"/v1/site/studies/{task['study_id']}/model", deadline=task["deadline"]
        )
        if response.status_code != 200:
            raise ProtocolAbort(f"cannot fetch the model: {self._detail(response)}")
        arrays, _ = parse_tensors(response.content)
        global_params: Parameters = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
        result = state.site.fit(FitIns(global_params, dict(task["config"])))
        update = subtract(result.parameters, global_params)
        state.updates = {round_no: (global_params, update, result.num_examples)}
        return global_params, update, result.num_examples

    def _submit(self, task: dict[str, Any], stage: str, body: bytes) -> None:
        study_id, round_no = task["study_id"], int(task["round"])
        key = f"{study_id}-r{round_no}-a{task.get('attempt', 1)}-{stage}"
        response = self._request(
            "POST",
            f"/v1/site/studies/{study_id}/rounds/{round_no}/stages/{stage}",
            content=body,
            headers={"Idempotency-Key": key, "Content-Type": "application/octet-stream"},
            deadline=float(task["deadline"]),
        )
        if response.status_code != 200:
            raise ProtocolAbort(
                f"submission refused: HTTP {response.status_code}: {self._detail(response)}"
            )

    def _fit(self, task: dict[str, Any]) -> bool:
        client_dp = self.studies[task["study_id"]].client_dp
        clip = None
        if client_dp is not None:  # checked and charged before training, before sending
            clip = client_dp.charge_central(
                int(task["round"]), int(task.get("attempt", 1)), task["config"]
            )
        _, update, num_examples = self._train(task)
        metadata = {
            "study": task["study_id"],
            "round": str(task["round"]),
            "num_examples": str(num_examples),
        }
        if clip is not None:
            update, within = clip_for_round(update, clip)
            metadata[WITHIN_CLIP] = str(within)
        body = parameters_to_bytes(update, metadata=metadata)
        self._submit(task, FIT_STAGE, body)
        self._report_privacy(task)
        return True

    # SecAgg+ rounds ---------------------------------------------------------------------

    def _start_secagg(self, task: dict[str, Any], message: object) -> SecAggClient:
        """Check the round against the policy floor, then train (charging) and set the input.

        Raises:
            PolicyViolation: the round's parameters are below the site's floor (nothing was
                trained or spent).
            ProtocolAbort: the round does not start with the key advertisement request.
        """
        if not isinstance(message, AdvertiseKeysRequest):
            raise ProtocolAbort(
                f"round {task['round']}: no SecAgg+ state for stage {task['stage']!r}"
            )
        floor = ClientPolicy(min_threshold=self.settings.policy.min_secagg_threshold)
        try:
            floor.check(message.params)
        except ProtocolAbort as exc:
            raise PolicyViolation(f"SecAgg+ round refused: {exc}") from None
        registry = {int(cid): bytes.fromhex(pub) for cid, pub in task["registry"].items()}
        if task["config"].get(STANDARDISATION_CONFIG):  # round 0: the moment vector
            client = SecAggClient(int(task["client_id"]), self.identity, registry, policy=floor)
            return self._standardisation_client(task, message.params, client)
        client_dp = self.studies[task["study_id"]].client_dp
        if client_dp is not None:  # DP-FedAvg: check the plan's noise, charge, then train
            clip = client_dp.charge_secure(
                int(task["round"]), int(task.get("attempt", 1)), task["config"], message.params
            )
            floor = client_dp.secagg_policy(clip, floor)
        client = SecAggClient(int(task["client_id"]), self.identity, registry, policy=floor)
        global_params, update, num_examples = self._train(task)
        spec = ParameterSpec.of(global_params)
        if client_dp is not None:
            clipped, within = clip_for_round(update, clip)
            client.set_input(
                secure_input(spec, clipped, within, client_dp.count_scale(clip)), weight=1.0
            )
        else:
            client.set_input(spec.flatten(update), weight=float(num_examples))
        self._report_privacy(task)  # what this round's local DP-SGD spent at this site
        return client

    def _secagg(self, task: dict[str, Any]) -> bool:
        study_id, round_no, attempt = (
            task["study_id"],
            int(task["round"]),
            int(task.get("attempt", 1)),
        )
        stage = task["stage"]
        state = self.studies[study_id]
        key = (round_no, attempt)
        client = state.secagg.get(key)
        response = self._request(
            "GET",
            f"/v1/site/studies/{study_id}/rounds/{round_no}/relay/{stage}",
            deadline=float(task["deadline"]),
        )
        if response.status_code != 200:
            raise ProtocolAbort(f"cannot fetch the {stage} message: {self._detail(response)}")
        messages, _ = parse_tensors(response.content)
        if "coordinator" not in messages:
            return False
        message = decode_message(messages["coordinator"].tobytes())
        if not isinstance(
            message, AdvertiseKeysRequest | ShareKeysRequest | MaskedInputRequest | UnmaskRequest
        ):
            raise ProtocolAbort(f"unexpected {type(message).__name__} from the coordinator")
        if client is None:
            client = self._start_secagg(task, message)
            state.secagg = {key: client}
        reply = client.handle(message)
        body_arrays = {"message": np.frombuffer(encode_message(reply), np.uint8).copy()}
        from safetensors.numpy import save as st_save

        body = st_save(
            body_arrays, metadata={"study": study_id, "round": str(round_no), "stage": stage}
        )
        self._submit(task, stage, body)
        return True


def enrol(
    coordinator: str, ca_file: Path, name: str, token: str, cert_file: Path, key_file: Path
) -> None:
    """Exchange a one-time enrolment token for a site certificate (written with its key).

    Security: the key pair is generated here and never leaves the site; only a CSR is sent,
    over TLS verified against the deployment's CA. The coordinator binds the certificate to
    the site the token was issued for, whatever name the CSR carries.
    """
    import os

    from tutela.server.pki import cert_to_pem, key_to_pem, make_csr, new_private_key

    key = new_private_key()
    with httpx.Client(base_url=coordinator, verify=client_context(ca_file), timeout=30.0) as client:
        delay, give_up = 0.1, time.time() + 60
        while True:
            try:
                response = client.post(
                    "/v1/enrol", json={"token": token, "csr_pem": make_csr(key, name).decode()}
                )
                break
            except httpx.TransportError as exc:
                if time.time() > give_up:
                    raise TransportError(f"coordinator unreachable: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
    if response.status_code != 200:
        raise PolicyViolation(f"enrolment refused: {SiteAgent._detail(response)}")
    cert_pem = response.json()["certificate_pem"].encode()
    from cryptography import x509

    cert_to_pem(x509.load_pem_x509_certificate(cert_pem))  # validates the PEM
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_to_pem(key))
    cert_file.write_bytes(cert_pem)


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
        agent.client.close()
