"""The secure-aggregation protocols a round can run, chosen by the study.

The round driver starts and advances a round's protocol and the inbox hands it the sites'
stage submissions; both go through :class:`RoundProtocols`, which picks SecAgg+
(:mod:`tutela.server.protocol`) or CKKS (:mod:`tutela.server.ckks`) from the study's
``secure_aggregation.protocol`` (and, for a submission, from its stage).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tutela.server.ckks import STAGES as CKKS_STAGES
from tutela.server.ckks import CkksProtocol
from tutela.server.core import Core
from tutela.server.protocol import SecAggProtocol
from tutela.server.store import StudyRow


@dataclass
class RoundProtocols:
    """SecAgg+ and CKKS rounds of the studies this process drives."""

    secagg: SecAggProtocol
    ckks: CkksProtocol

    @classmethod
    def of(cls, core: Core) -> RoundProtocols:
        """Both protocols over the shared core."""
        return cls(SecAggProtocol(core), CkksProtocol(core))

    def for_study(self, row: StudyRow) -> SecAggProtocol | CkksProtocol:
        """The protocol the study's rounds run."""
        protocol = json.loads(row.config_json)["secure_aggregation"]["protocol"]
        return self.ckks if protocol == "ckks" else self.secagg

    def receive(
        self, study_id: str, round_no: int, attempt: int, stage: str, site: str, body: bytes
    ) -> bool:
        """Hand a site's protocol message for ``stage`` to the protocol that runs it; True
        once every site the stage waits for has sent its message."""
        target = self.ckks if stage in CKKS_STAGES else self.secagg
        return target.receive(study_id, round_no, attempt, stage, site, body)
