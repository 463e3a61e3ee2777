"""A site's own privacy: DP built from the study's privacy section, charged to its own ledger.

The site, not the study's code, decides that the noise is added and keeps the ledger
(``ledger-<study>.sqlite`` in its state directory):

- sample-level DP (``privacy.mode = "sample"``): DP-SGD at this site; before each round's
  training the site charges its ledger for exactly the DP-SGD steps it will run;
- client-level DP (DP-FedAvg, :class:`~tutela.fl.privacy.SiteClientDP`): the site checks
  each round's clip norm and noise (the fit config with central noise, the SecAgg+ plan
  with distributed noise: at least the noise and the survivors the study's calibration
  requires) against its own calibration, charges its own ledger the round's event before
  training or sending anything, clips its update to the round's clip norm and, under
  SecAgg+, adds its own noise share inside the masked sum;
- the standardisation release of a private study (:func:`charge_release`), charged before
  it is sent.

The budget is the study's epsilon, capped by the site policy's ``max_epsilon``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tutela.dp.events import Event
from tutela.errors import PolicyViolation
from tutela.fl.config import StudyConfig
from tutela.fl.privacy import SampleLevelDP, SiteClientDP, expected_sites
from tutela.fl.recipes import LEDGER_PLD_GRID
from tutela.fl.standardisation import charge_standardisation
from tutela.governance.minimisation import SitePolicy
from tutela.server.agent.state import StudyState

if TYPE_CHECKING:
    from tutela.dp.ledger import PrivacyLedger


def open_ledger(state_dir: Path, study_id: str) -> PrivacyLedger:
    """This site's ledger for ``study_id`` (created in ``state_dir`` if new)."""
    from tutela.dp.ledger import PrivacyLedger

    state_dir.mkdir(parents=True, exist_ok=True)
    return PrivacyLedger(
        state_dir / f"ledger-{study_id}.sqlite", value_discretization_interval=LEDGER_PLD_GRID
    )


def sample_level(
    study_id: str,
    config: dict[str, Any],
    rows: int,
    dimension: int = 1,
    *,
    site: str,
    policy: SitePolicy,
    state_dir: Path,
) -> tuple[Any, SampleLevelDP | None]:
    """DP-SGD at this site when the study asks for record-level DP (``privacy.mode =
    "sample"``): its privatize hook and its accounting; ``(None, None)`` otherwise.

    Raises:
        PolicyViolation: the study asks for a privacy mode this agent cannot enforce.
    """
    p = config["privacy"]
    if p["mode"] in ("none", "client"):
        return None, None
    if p["mode"] != "sample":
        raise PolicyViolation(f"privacy.mode {p['mode']!r} is not supported by this agent")
    t = config["training"]
    dp = SampleLevelDP(
        open_ledger(state_dir, study_id),
        str(config["study"]["name"]),
        epsilon=min(float(p["epsilon"]), policy.max_epsilon),
        delta=float(p["delta"]),
        max_grad_norm=float(p["max_grad_norm"]),
        accountant=str(p["accountant"]),
        rounds=int(t["rounds"]),
        local_epochs=int(t["local_epochs"]),
        batch_size=int(t["batch_size"]),
        site_rows={site: rows},
        dimension=dimension,
        grid=LEDGER_PLD_GRID,
    )
    return dp.hook(site), dp


def client_level(
    study_id: str,
    study: StudyConfig,
    dimension: int,
    *,
    site: str,
    policy: SitePolicy,
    state_dir: Path,
) -> SiteClientDP | None:
    """This site's part of DP-FedAvg when the study asks for client-level DP (``None``
    otherwise): it clips its own update, adds its own noise share under SecAgg+, and charges
    its own ledger for each round before anything leaves."""
    p = study.privacy
    if p.mode != "client" or p.epsilon is None:
        return None
    return SiteClientDP(
        open_ledger(state_dir, study_id),
        study.study.name,
        site,
        epsilon=p.epsilon,
        delta=p.delta,
        accountant=p.accountant,
        rounds=study.training.rounds,
        expected_sites=expected_sites(study),
        dimension=dimension,
        adaptive=p.adaptive_clipping,
        secure=study.secure_aggregation.protocol == "secagg+",
        budget_epsilon=min(p.epsilon, policy.max_epsilon),
    )


def charge_release(
    state: StudyState, study: StudyConfig, site: str, event: Event, *, attempt: int
) -> None:
    """Charge this site's own ledger for its standardisation release (before sending).

    Raises:
        BudgetExceeded: the site's budget cannot pay for it (nothing charged).
    """
    ledger = state.dp.ledger if state.dp is not None else None
    if state.client_dp is not None:
        ledger = state.client_dp.ledger
    if ledger is None or study.privacy.epsilon is None:  # pragma: no cover - private
        raise PolicyViolation("a private standardisation needs the site's ledger")
    charge_standardisation(
        ledger, study.study.name, site, event,
        epsilon=study.privacy.epsilon, delta=study.privacy.delta,
        accountant=study.privacy.accountant, attempt=attempt,
    )  # fmt: skip
