"""Joining a study: the site policy's verdict, the accepted columns, and standardisation.

On a ``join`` task the site checks the study against its local
:class:`~tutela.governance.minimisation.SitePolicy` first (having read only the data file's
header), then accepts (sending its row count, its SecAgg+ identity key and what the study's
standardisation takes, see below) or refuses with every reason.

Standardisation statistics (:mod:`tutela.fl.standardisation`): under SecAgg+ the site's
feature sums and sums of squares (its features clipped to the study's declared ranges)
leave only masked, inside the SecAgg+ sum of round 0 (:meth:`StudyJoining.
standardisation_input`); in a private study with distributed noise whose plan the site
checks and charges to its own ledger before sending. In a private study without SecAgg+ the
site sends that vector with Gaussian noise it drew itself, charged first. Only in a study
with neither SecAgg+ nor DP (CKKS included, for now) do the exact moments travel in the
clear, in the join answer.

Privacy: only the columns the site policy allows for the study's purpose are loaded (the
file is read for those columns only, after the policy accepted the study). The row count
the site declares at join leaves in the clear, not noised: the coordinator caps the site's
weight with it and bounds SecAgg+ weights; the DP guarantees treat it as public.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tutela.data.tables import ColumnRoles
from tutela.errors import BudgetExceeded, ConfigError, DataError, PolicyViolation
from tutela.fl.client import LocalSite, LocalTraining, OptimizerKind
from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.models import check_parameter_spec, get_parameters
from tutela.fl.recipes import study_request
from tutela.fl.standardisation import StandardisationMode, StandardisationPlan
from tutela.fl.standardisation import secure_input as secure_moments
from tutela.fl.study import study_model_factory
from tutela.governance.minimisation import minimise
from tutela.secagg import SecAggClient
from tutela.secagg.config import RoundParams
from tutela.server.agent import privacy
from tutela.server.agent.peers import bind_identity
from tutela.server.agent.reports import split_holdout
from tutela.server.agent.settings import load_site_table
from tutela.server.agent.state import StudyState
from tutela.server.agent.transport import detail

if TYPE_CHECKING:
    from tutela.server.agent.site import SiteAgent


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


class StudyJoining:
    """The join task and the standardisation of one :class:`~tutela.server.agent.SiteAgent`
    (see the module docstring)."""

    def __init__(self, agent: SiteAgent) -> None:
        self.agent = agent

    def columns(self, config: dict[str, Any]) -> list[str]:
        """The feature columns the study asks for, as the site's file holds them (a study
        with declared column roles: its numeric and categorical columns; else its
        ``columns``, or every non-outcome column if unnamed)."""
        roles = _roles(config)
        if roles is not None:
            return roles.source_columns
        cols = config.get("data", {}).get("columns")
        if cols is not None:
            return [str(c) for c in cols]
        return [c for c in self.agent.header if c != self.agent.settings.outcome]

    def refusals(self, config: dict[str, Any]) -> list[str]:
        """Every reason this site refuses the study ``config`` (empty: it may join).

        Only the data file's header is consulted: no row is read before the policy agrees.
        """
        try:
            study = parse_study(config)
        except ConfigError as exc:
            return [str(exc)]
        columns = self.columns(config)
        policy = self.agent.settings.policy
        reasons = list(policy.evaluate(study_request(study, columns)).reasons)
        roles = study.data.roles()
        if roles is not None and roles.outcome not in self.agent.header:
            reasons.append(f"this site has no outcome column {roles.outcome!r}")
        missing = [c for c in columns if c not in self.agent.header]
        if missing:
            reasons.append(f"this site has no column(s) {', '.join(missing)}")
        if study.privacy.mode == "client" and study.secure_aggregation.protocol == "ckks":
            reasons.append("client-level DP with CKKS aggregation is not supported by this agent")
        return reasons

    def handle(self, task: dict[str, Any]) -> bool:
        """Answer a ``join`` task (accept or refuse with every reason); True: sent."""
        agent = self.agent
        study_id = task["study_id"]
        config = task["config"]
        reasons = self.refusals(config)
        if reasons:
            reason = "; ".join(reasons)
            agent.refused[study_id] = reason
            agent.log(f"{agent.name}: refusing study {study_id}: {reason}")
            body: dict[str, Any] = {"accept": False, "reason": reason}
        else:
            try:
                body = self._accept(task, config, parse_study(config))
            except (PolicyViolation, BudgetExceeded, ConfigError, DataError) as exc:
                # nothing was sent or charged; a model that cannot be built or does not
                # match the study's is refused before any training
                agent.studies.pop(study_id, None)
                agent.refused[study_id] = str(exc)
                body = {"accept": False, "reason": str(exc)}
        response = agent.transport.request(
            "POST",
            f"/v1/site/studies/{study_id}/participation",
            json=body,
            deadline=task.get("deadline"),
        )
        if response.status_code != 200:
            agent.log(f"{agent.name}: join answer refused: {detail(response)}")
        elif body["accept"]:
            agent.reporter.send(study_id, task.get("deadline"))
        return True

    def _accept(
        self, task: dict[str, Any], config: dict[str, Any], study: StudyConfig
    ) -> dict[str, Any]:
        """Load the accepted columns (and nothing else), build the site, sign its report.

        Raises:
            ConfigError: the study's model factory is missing here or its source differs
                from the declared hash (nothing imported).
            DataError: the model's parameter names or shapes differ from the study's.
        """
        agent = self.agent
        study_id = task["study_id"]
        settings = agent.settings
        columns = self.columns(config)
        policy = settings.policy
        roles = study.data.roles()
        outcome_column = roles.outcome if roles is not None else settings.outcome
        frame = load_site_table(settings.data, outcome_column, columns)
        kept, _ = minimise(
            frame.drop(columns=[outcome_column]), study.study.purpose, columns, policy
        )
        if roles is not None:  # encoded over the study's declared categories
            encoded, outcome = roles.encode(frame, where=f"site {agent.name}")
            features = encoded.to_numpy(dtype=np.float32)
            columns = roles.encoded_columns
        else:
            features = kept.to_numpy(dtype=np.float32)
            outcome = frame[outcome_column].to_numpy(dtype=np.int64)
        holdout = None
        if policy.report_metrics:  # rows kept out of training, to evaluate each model on
            features, outcome, holdout = split_holdout(
                features, outcome, study.data.test_fraction, seed=settings.seed
            )
        # the factory's source is checked against the study's hash before it is imported
        # (the policy allow-listed that pair in refusals()), and the model it builds must
        # have the parameter names and shapes of the study's initial model
        factory = study_model_factory(study, len(columns))
        built = get_parameters(factory())
        expected = task.get("parameters")
        if expected is not None:
            check_parameter_spec(built, expected)
        dimension = sum(int(v.size) for v in built.values())
        site_name, state_dir = agent.name, agent.state_dir
        privatize, dp = privacy.sample_level(
            study_id,
            config,
            len(outcome),
            dimension,
            site=site_name,
            policy=policy,
            state_dir=state_dir,
        )
        client_dp = privacy.client_level(
            study_id, study, dimension, site=site_name, policy=policy, state_dir=state_dir
        )
        site = LocalSite(
            agent.name,
            features,
            outcome,
            factory,
            _training(config),
            seed=settings.seed,
            privatize=privatize,
            policy=policy,
            identity=agent.identity,
            task=study.model.task,
        )
        agent.studies[study_id] = StudyState(
            site, columns, config, dp=dp, client_dp=client_dp, holdout=holdout
        )
        body: dict[str, Any] = {
            "accept": True,
            "num_examples": site.num_examples,
            "identity": agent.identity_public.hex(),
            **bind_identity(
                settings.cert_file, settings.key_file, study_id, agent.name, agent.identity_public
            ),
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
            state = agent.studies[study_id]
            privacy.charge_release(state, study, agent.name, event, attempt=1)
            body["noised"] = noised.tolist()
        agent.reporter.sign(study_id)
        return body

    def standardisation_input(
        self, task: dict[str, Any], params: RoundParams, client: SecAggClient
    ) -> SecAggClient:
        """Round 0: check the plan, charge a private study's release, set the moment vector
        (features clipped to the declared ranges) as the SecAgg+ input, weighted by rows.

        Raises:
            PolicyViolation: the plan is not the study's standardisation round or carries
                less noise than its calibration (nothing charged or sent).
            BudgetExceeded: the site's budget cannot pay for it.
        """
        agent = self.agent
        state = agent.studies[task["study_id"]]
        study = parse_study(state.config)
        plan = StandardisationPlan.of(study, state.columns)
        moments = plan.site_moments(state.site)
        event = plan.check_secure(params, moments.count)
        if event is not None:
            attempt = int(task.get("attempt", 1))
            privacy.charge_release(state, study, agent.name, event, attempt=attempt)
            agent.reporter.sign(task["study_id"])
            agent.reporter.send(task["study_id"], float(task["deadline"]))
        vector, weight = secure_moments(moments)
        client.set_input(vector, weight=weight)
        return client


def _roles(config: dict[str, Any]) -> ColumnRoles | None:
    """The study's declared column roles (``None``: none declared or the study is invalid;
    :meth:`StudyJoining.refusals` reports the latter)."""
    try:
        return parse_study(config).data.roles()
    except ConfigError:
        return None
