"""The release gate: a table reaches the caller only if the independent checker finds every
equivalence class of size at least k. The gate is fed bad tables here, so a gate that let a
class of size k - 1 through would fail (the anonymiser never produces one on its own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tutela.anonymize import Profile, anonymize_table, check_privacy
from tutela.anonymize import pipeline as pipeline_module
from tutela.anonymize.mondrian import MondrianResult, mondrian
from tutela.anonymize.privacy import class_sizes
from tutela.errors import AnonymizationError

K = 5
QIS = ["age", "sex"]


def _people(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(17)
    return pd.DataFrame(
        {
            "age": rng.integers(20, 80, n),
            "sex": rng.choice(["F", "M"], n),
            "outcome": rng.choice(["a", "b", "c"], n),
        }
    )


def _smallest_class_cut_to(size: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Keep only ``size`` rows of the release's smallest equivalence class."""

    def cut(released: pd.DataFrame) -> pd.DataFrame:
        keys = released[QIS].astype("string").agg("|".join, axis=1)
        counts = keys.value_counts()
        smallest = counts.idxmin()
        assert int(counts.min()) >= size
        rows = np.flatnonzero((keys == smallest).to_numpy())
        drop = rows[size:]
        return released.drop(index=released.index[drop]).reset_index(drop=True)

    return cut


def _feed_gate(
    monkeypatch: pytest.MonkeyPatch, tamper: Callable[[pd.DataFrame], pd.DataFrame]
) -> Any:
    """Run the real pipeline, with the anonymiser's output altered before the gate sees it."""

    def anonymiser(*args: Any, **kwargs: Any) -> MondrianResult:
        result = mondrian(*args, **kwargs)
        return replace(result, released=tamper(result.released))

    monkeypatch.setattr(pipeline_module, "mondrian", anonymiser)
    return anonymize_table(_people(), profile=Profile.NONE, k=K, quasi_identifiers=QIS)


def test_checker_sees_a_class_of_size_k_minus_1() -> None:
    table = pd.DataFrame(
        {
            "age": ["[20-29]"] * K + ["[30-39]"] * K + ["[40-49]"] * (K - 1),
            "sex": ["F"] * (3 * K - 1),
        }
    )
    assert sorted(class_sizes(table, QIS).tolist()) == [K - 1, K, K]
    check = check_privacy(table, QIS)
    assert check.k == K - 1 and check.classes == 3 and check.rows == 3 * K - 1


def test_gate_refuses_a_release_with_one_class_of_size_k_minus_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(
        AnonymizationError,
        match=rf"^the release failed independent verification \(k={K - 1}, .*nothing was released$",
    ):
        _feed_gate(monkeypatch, _smallest_class_cut_to(K - 1))


def test_gate_passes_the_same_release_with_that_class_at_exactly_k(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the other side of the bound: the same tampering stopped at size k is a valid release
    result = _feed_gate(monkeypatch, _smallest_class_cut_to(K))
    assert result.report.k_achieved == K and result.report.verified
    assert class_sizes(result.table, QIS).min() == K


def test_gate_refuses_a_release_with_a_singleton_class(monkeypatch: pytest.MonkeyPatch) -> None:
    def add_unique_row(released: pd.DataFrame) -> pd.DataFrame:
        row = released.iloc[[0]].assign(age="[99-99]")
        return pd.concat([released, row], ignore_index=True)

    with pytest.raises(AnonymizationError, match=r"independent verification \(k=1,"):
        _feed_gate(monkeypatch, add_unique_row)
