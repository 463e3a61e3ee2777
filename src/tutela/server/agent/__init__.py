"""The site agent: runs beside a hospital's data and talks to the coordinator outbound only.

:class:`SiteAgent` polls the coordinator's tasks and hands each to its part:

- :mod:`~tutela.server.agent.settings`: what the agent holds (:class:`AgentSettings`, its
  SecAgg+ identity key, its data file read header first);
- :mod:`~tutela.server.agent.transport`: outbound HTTPS over mutual TLS, retried with
  backoff while the coordinator is unreachable, until the stage deadline;
- :mod:`~tutela.server.agent.join`: the site policy's verdict on a study, the accepted
  columns, and the standardisation statistics (round 0 under SecAgg+);
- :mod:`~tutela.server.agent.rounds`: ``fit`` uploads and SecAgg+ stages;
- :mod:`~tutela.server.agent.ckks`: CKKS stages (encrypt, then decrypt);
- :mod:`~tutela.server.agent.privacy`: the site's own DP (sample-level DP-SGD, its part of
  client-level DP-FedAvg) charged to its own ledger before anything leaves;
- :mod:`~tutela.server.agent.reports`: its signed reports (policy and ledger summary);
- :mod:`~tutela.server.agent.enrol` and :func:`run_site`: enrolment and ``tutela site run``.

Privacy: only the columns the site policy allows for the study's purpose are loaded (the
file is read for those columns only, after the policy accepted the study); the raw rows
never leave. What leaves: the row count the site declares at join (in the clear, not
noised: the coordinator caps the site's weight with it and bounds SecAgg+ weights; the DP
guarantees treat it as public), the standardisation statistics (see
:mod:`~tutela.server.agent.join`) and, per round, one update (masked under SecAgg+,
encrypted under CKKS).
"""

from tutela.server.agent.enrol import enrol
from tutela.server.agent.settings import (
    AgentSettings,
    identity_key,
    load_site_table,
    read_site_header,
)
from tutela.server.agent.site import SiteAgent, run_site

__all__ = [
    "AgentSettings",
    "SiteAgent",
    "enrol",
    "identity_key",
    "load_site_table",
    "read_site_header",
    "run_site",
]
