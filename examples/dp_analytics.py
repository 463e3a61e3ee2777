"""Differentially private analytics on a DataFrame, under a budget the ledger enforces.

What it shows: a table of patients behind a :class:`~tutela.dp.analytics.PrivateTable`
whose ledger scope is the table's content :func:`~tutela.dp.analytics.fingerprint` (a copy
or a renamed file shares the same budget). Each query declares its bounds (never read from
the data), is planned (mechanisms and epsilon fixed before any row is read), charged to the
:class:`~tutela.dp.ledger.PrivacyLedger`, and only then answered with noise. It prints every
answer with its epsilon and the remaining budget, then asks one query too many: the ledger
refuses it (``BudgetExceeded``), and nothing is spent or released.

Run it::

    python examples/dp_analytics.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import tutela
from tutela.dp.analytics import fingerprint, parse_query
from tutela.errors import BudgetExceeded

BUDGET = 1.0  # the table's total epsilon (the queries are pure DP; the ledger needs a delta > 0)


def patients(n: int = 5000, seed: int = 0) -> pd.DataFrame:
    """A synthetic patient table (ages, BMI, sex, length of stay)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 95, n),
            "bmi": rng.normal(28.0, 5.0, n).round(1),
            "sex": rng.choice(["F", "M"], n),
            "los_days": rng.poisson(4.0, n),
        }
    )


def main() -> None:
    frame = patients()
    scope = fingerprint(frame)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = tutela.PrivacyLedger(Path(tmp) / "ledger.sqlite")
        ledger.create_scope(scope, epsilon=BUDGET, delta=1e-6)
        table = tutela.PrivateTable(frame, name=scope, ledger=ledger)
        print(f"table of {len(frame)} rows, ledger scope {scope[:30]}..., budget epsilon {BUDGET}")

        queries = [
            (parse_query("count(*)"), 0.1, len(frame)),
            (parse_query("mean(age)", bounds=(18, 95)), 0.2, frame["age"].mean()),
            (parse_query("quantile(bmi, 0.5)", bounds=(10, 60)), 0.2, frame["bmi"].median()),
            (parse_query("histogram(sex)", categories=["F", "M"]), 0.2, None),
            (parse_query("mean(los_days)", bounds=(0, 30)), 0.2, frame["los_days"].mean()),
        ]
        for query, epsilon, exact in queries:
            result = table.query(query, epsilon)
            answer = result.answer
            shown = (
                {k: int(v) for k, v in answer.items()}
                if isinstance(answer, dict)
                else round(float(answer), 2)
            )
            truth = "" if exact is None else f"  (exact {float(exact):.2f}, for comparison)"
            print(
                f"{query!s:<22} = {shown}  epsilon {result.epsilon:.2f}  "
                f"remaining {ledger.remaining(scope):.2f}{truth}"
            )

        over = parse_query("mean(bmi)", bounds=(10, 60))
        try:
            table.query(over, 0.5)
        except BudgetExceeded as exc:
            print(f"refused: {over} at epsilon 0.5: {exc}")
            print(f"remaining {ledger.remaining(scope):.2f} (nothing spent, nothing released)")
        else:
            raise SystemExit("the over-budget query was answered")


if __name__ == "__main__":
    main()
