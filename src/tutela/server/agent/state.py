"""What a site agent keeps per joined study."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tutela.fl.client import LocalSite
from tutela.fl.privacy import SampleLevelDP, SiteClientDP
from tutela.fl.records import Parameters
from tutela.secagg import SecAggClient


@dataclass
class StudyState:
    """One joined study at this site.

    Attributes:
        site: the local training site (the accepted columns' rows only).
        columns: the feature columns the policy accepted.
        config: the study's configuration as the coordinator sent it.
        standardised: whether the site's features were standardised yet.
        updates: the latest round's (global, update, num_examples), trained once.
        secagg: the latest round attempt's SecAgg+ client.
        dp: sample-level DP-SGD at this site, if the study asks for it.
        client_dp: this site's part of client-level DP, if the study asks for it.
        holdout: the rows this site keeps out of training to evaluate each global model on
            (features as loaded, outcome), when its policy reports metrics.
        evaluated: the rounds whose global model this site evaluated and reported.
    """

    site: LocalSite
    columns: list[str]
    config: dict[str, Any]
    standardised: bool = False
    updates: dict[int, tuple[Parameters, Parameters, int]] = field(default_factory=dict)
    secagg: dict[tuple[int, int], SecAggClient] = field(default_factory=dict)
    dp: SampleLevelDP | None = None
    client_dp: SiteClientDP | None = None
    holdout: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]] | None = None
    evaluated: set[int] = field(default_factory=set)
