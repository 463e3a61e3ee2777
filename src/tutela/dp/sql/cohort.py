"""The minimum-cohort rule as a differentially private decision.

A site refuses a query whose cohort (the rows its filter keeps, and with GROUP BY each group
of them) holds fewer than its minimum ``m`` rows. Deciding that on the exact counts would
release one bit outside any DP guarantee ("this cohort has fewer than m rows"), so the
decision is made on noisy counts instead:

1. each group's count gets discrete Laplace noise of scale ``1 / epsilon_t`` (a row is in at
   most one group, so the counts' L1 sensitivity is 1; without GROUP BY there is one group,
   the whole cohort);
2. the site refuses when any noisy count is below ``m`` (with GROUP BY every group holding
   ``m`` implies the cohort does).

``epsilon_t`` is a fixed share of the query's epsilon, stated in the site policy
(``analytics.cohort_share``, default 0.1): a query at epsilon ``e`` costs the site its
release (``GaussianEvent`` calibrated to ``e``) *and* the test (``DiscreteLaplaceEvent`` at
``cohort_share * e``), composed in its ledger. The test is charged before the decision,
whether the query is then answered or refused; a refused query charges nothing more. A
minimum of 1 (no minimum) runs no test and charges nothing for it.

Accuracy (:meth:`CohortTest.margin`): the discrete Laplace noise ``X`` with ``p =
exp(-epsilon_t)`` has ``P(X >= t) = P(X <= -t) = p**t / (1 + p)`` for ``t >= 1``. With
``t = margin(beta)`` a group of ``n >= m + t`` rows is refused with probability at most
``beta``, and one of ``n <= m - t`` rows is accepted with probability at most ``beta``;
between the two the decision is random (at ``n = m`` it refuses with probability
``p / (1 + p)``, close to one half).

Privacy: the decision is post-processing of the noisy counts, so the test is
``epsilon_t``-DP (pure) under adding or removing one row; which groups a refusal names is
post-processing too. The counts themselves never leave the site.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tutela.dp.events import Event
from tutela.dp.mechanisms import DiscreteLaplaceMechanism
from tutela.dp.sql.engine import DEFAULT_COHORT_SHARE, SiteStatistics
from tutela.hazmat.rng import SecureRandom

__all__ = ["DEFAULT_COHORT_SHARE", "CohortTest", "cohort_test"]


@dataclass(frozen=True)
class CohortTest:
    """The noisy minimum-cohort test of one query at one site.

    Attributes:
        min_cohort: the site's minimum ``m`` (at least 2).
        epsilon: the test's epsilon (``share * the query's epsilon``).
        mechanism: discrete Laplace at that epsilon, sensitivity 1.
    """

    min_cohort: int
    epsilon: float
    mechanism: DiscreteLaplaceMechanism

    @property
    def event(self) -> Event:
        """What the site charges for the test (pure ``epsilon``-DP)."""
        return self.mechanism.event(1)

    def margin(self, beta: float) -> int:
        """The distance ``t`` from ``m`` beyond which one group's decision is the exact
        one except with probability at most ``beta`` (see the module docstring)."""
        if not 0 < beta < 1:
            raise ValueError("beta must be in (0, 1)")
        p = math.exp(-self.mechanism.epsilon(1))
        return max(1, math.ceil(math.log(beta * (1 + p)) / math.log(p)))

    def decide(self, stats: SiteStatistics, *, rng: SecureRandom | None = None) -> str | None:
        """Draw the noisy counts and decide: ``None`` to answer, else why it is refused.

        Privacy: ``epsilon``-DP; call only after :attr:`event` is charged.
        """
        counts = np.asarray(stats.cohort, dtype=np.int64)
        noisy = np.atleast_1d(np.asarray(self.mechanism.release(counts, rng=rng)))
        small = [
            k for k, v in zip(stats.shape.group_keys, noisy, strict=True) if v < self.min_cohort
        ]
        if not small:
            return None
        how = f"(decided on noisy counts at epsilon {self.epsilon:.3g})"
        if stats.shape.query.group_by:
            names = ", ".join("/".join(k) for k in small)
            return (
                f"query refused: the cohort's group(s) {names} are below this site's minimum of "
                f"{self.min_cohort} rows {how}"
            )
        return (
            f"query refused: the cohort is below this site's minimum of {self.min_cohort} "
            f"rows {how}"
        )


def cohort_test(min_cohort: int, share: float, epsilon: float) -> CohortTest | None:
    """The test for a query at ``epsilon`` under a minimum and a share (``None`` when the
    minimum is 1: there is nothing to test).

    Raises:
        ValueError: a share outside (0, 1] or an epsilon that is not positive and finite.
    """
    if not 0 < share <= 1:
        raise ValueError(f"the cohort test's share must be in (0, 1], got {share!r}")
    eps = float(epsilon)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"epsilon must be positive and finite, got {epsilon!r}")
    if min_cohort <= 1:
        return None
    mech = DiscreteLaplaceMechanism.for_epsilon(share * eps, 1)
    return CohortTest(min_cohort, mech.epsilon(1), mech)
