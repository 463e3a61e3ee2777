"""What a site reports (signed) about its own privacy ledger.

Privacy: a summary adds no release of its own; it states the budget of the site's scope and
what was charged to it (``spent_epsilon``, the composition of every spend at the budget's
delta). A site that ran no DP claims nothing (:func:`no_ledger_summary`).
"""

from __future__ import annotations

from typing import Any

from tutela.dp.ledger import PrivacyLedger


def site_scope(site: str) -> str:
    """The ledger scope of a site's own spends."""
    return f"site:{site}"


def ledger_summary(ledger: PrivacyLedger, scope: str) -> dict[str, Any]:
    """What a site reports about its own ledger scope (JSON-ready; signed in its report).

    Shape: ``{"private": true, "scope", "accountant", "budget_epsilon", "delta",
    "spent_epsilon", "remaining_epsilon", "spends": [SpendRecord.to_dict(), ...]}``, where
    ``spent_epsilon`` is the composition of every spend at the budget's delta.
    """
    budget = ledger.budget(scope)
    spent = ledger.spent(scope)
    return {
        "private": True,
        "scope": scope,
        "accountant": budget.accountant.value,
        "budget_epsilon": budget.epsilon,
        "delta": budget.delta,
        "spent_epsilon": spent,
        "remaining_epsilon": max(0.0, budget.epsilon - spent),
        "spends": [r.to_dict() for r in ledger.records(scope)],
    }


def no_ledger_summary() -> dict[str, Any]:
    """The ledger summary of a site that ran no DP (nothing is charged, nothing claimed)."""
    return {"private": False}
