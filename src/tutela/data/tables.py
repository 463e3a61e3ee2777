"""Your own tables: CSV and Parquet files with declared column roles, encoded for a model.

A study (or a site) declares which column is the outcome, which are numeric and which are
categorical, and the categories each categorical column may take. :class:`ColumnRoles`
turns a table into the float matrix a model trains on, the same way at every site:

- numeric columns as they are (the study standardises them federatedly afterwards);
- categorical columns one-hot encoded over the declared categories plus one ``other``
  indicator for any value outside them (``encoding = "one-hot"``), or as the index of the
  value among the declared categories, ``len(categories)`` for any other value
  (``"ordinal"``).

The categories are part of the study, agreed before any row is read, so every site
produces the same columns in the same order and no site's own value set leaves it.

Files are read by suffix (``.csv``, ``.parquet``/``.pq``); the header is read first
(:func:`read_header`, no row parsed) so a site policy can judge the columns before any row
is loaded, then only the accepted columns (:func:`read_table`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from tutela.data.datasets import Dataset
from tutela.errors import DataError

__all__ = ["ColumnRoles", "Encoding", "read_header", "read_table", "table_dataset"]

Encoding = Literal["one-hot", "ordinal"]
_PARQUET = (".parquet", ".pq")


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in _PARQUET:
        return "parquet"
    raise DataError(f"{path}: unsupported table format {suffix or '(none)'}; use .csv or .parquet")


def read_header(path: str | Path) -> list[str]:
    """The column names of a CSV or Parquet file, without reading any row."""
    path = Path(path)
    kind = _kind(path)
    try:
        if kind == "csv":
            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        import pyarrow.parquet as pq

        return [str(c) for c in pq.read_schema(path).names]
    except FileNotFoundError:
        raise DataError(f"table not found: {path}") from None
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read ``columns`` (default: all) of a CSV or Parquet file, in that order.

    Raises:
        DataError: missing or unreadable file, unsupported format, or a missing column.
    """
    path = Path(path)
    kind = _kind(path)
    wanted = list(columns) if columns is not None else None
    if wanted is not None:
        missing = sorted(set(wanted) - set(read_header(path)))
        if missing:
            raise DataError(f"{path} has no column(s) {', '.join(missing)}")
    try:
        if kind == "csv":
            frame = pd.read_csv(path, usecols=wanted)
        else:
            frame = pd.read_parquet(path, columns=wanted)
    except FileNotFoundError:
        raise DataError(f"table not found: {path}") from None
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return frame if wanted is None else frame.loc[:, wanted]


@dataclass(frozen=True)
class ColumnRoles:
    """What each column of a table is for.

    Attributes:
        outcome: the label column (0/1, or class indices ``0..k-1``).
        numeric: numeric feature columns, used as they are.
        categorical: categorical feature columns, encoded over ``categories``.
        categories: the declared categories of each categorical column (values are
            compared as strings, so ``1`` and ``"1"`` are the same category).
        encoding: ``one-hot`` or ``ordinal`` (see the module docstring).
    """

    outcome: str
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    encoding: Encoding = "one-hot"

    def __post_init__(self) -> None:
        object.__setattr__(self, "numeric", tuple(self.numeric))
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(
            self,
            "categories",
            {k: tuple(str(v) for v in vs) for k, vs in self.categories.items()},
        )
        named = [self.outcome, *self.numeric, *self.categorical]
        dupes = sorted({c for c in named if named.count(c) > 1})
        if dupes:
            raise DataError(f"column(s) named in more than one role: {', '.join(dupes)}")
        missing = [c for c in self.categorical if not self.categories.get(c)]
        if missing:
            raise DataError(
                "declare the categories of each categorical column: " + ", ".join(missing)
            )
        extra = sorted(set(self.categories) - set(self.categorical))
        if extra:
            raise DataError(f"categories given for non-categorical column(s): {', '.join(extra)}")
        if self.encoding not in ("one-hot", "ordinal"):
            raise DataError(f"encoding must be one-hot or ordinal, not {self.encoding!r}")
        if not self.numeric and not self.categorical:
            raise DataError("no feature columns: name numeric or categorical columns")

    @property
    def source_columns(self) -> list[str]:
        """The feature columns read from the table (without the outcome)."""
        return [*self.numeric, *self.categorical]

    @property
    def encoded_columns(self) -> list[str]:
        """The model's input columns, in order (``col=category`` for one-hot indicators)."""
        out = list(self.numeric)
        for col in self.categorical:
            if self.encoding == "ordinal":
                out.append(col)
            else:
                out += [f"{col}={c}" for c in self.categories[col]] + [f"{col}=other"]
        return out

    def encode(
        self, frame: pd.DataFrame, *, where: str = "table"
    ) -> tuple[pd.DataFrame, npt.NDArray[np.int64]]:
        """The encoded feature frame (columns :attr:`encoded_columns`) and the labels.

        Raises:
            DataError: a missing column, a non-numeric or missing numeric value, a missing
                categorical value, or labels that are not non-negative integers.
        """
        missing = [c for c in [self.outcome, *self.source_columns] if c not in frame.columns]
        if missing:
            raise DataError(f"{where} has no column(s) {', '.join(missing)}")
        parts: dict[str, npt.NDArray[np.float32]] = {}
        for col in self.numeric:
            values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(values)
            if bad.any():
                raise DataError(
                    f"{where}: column {col!r} has {int(bad.sum())} missing or non-numeric "
                    f"value(s) (first at row {int(np.argmax(bad))})"
                )
            parts[col] = values.astype(np.float32)
        for col in self.categorical:
            if frame[col].isna().any():
                raise DataError(f"{where}: categorical column {col!r} has missing values")
            values = frame[col].astype(str).to_numpy()
            cats = self.categories[col]
            if self.encoding == "ordinal":
                index = {c: float(i) for i, c in enumerate(cats)}
                parts[col] = np.array([index.get(v, len(cats)) for v in values], np.float32)
                continue
            known = np.isin(values, cats)
            for c in cats:
                parts[f"{col}={c}"] = (values == c).astype(np.float32)
            parts[f"{col}=other"] = (~known).astype(np.float32)
        labels = pd.to_numeric(frame[self.outcome], errors="coerce").to_numpy(np.float64)
        if not np.isfinite(labels).all() or (labels < 0).any() or (labels % 1 != 0).any():
            raise DataError(
                f"{where}: outcome column {self.outcome!r} must hold non-negative integers"
            )
        encoded = pd.DataFrame(parts, index=frame.index).loc[:, self.encoded_columns]
        return encoded, labels.astype(np.int64)

    @classmethod
    def infer(
        cls,
        frame: pd.DataFrame,
        outcome: str,
        *,
        categorical: Sequence[str] = (),
        categories: Mapping[str, Sequence[str]] | None = None,
        encoding: Encoding = "one-hot",
    ) -> ColumnRoles:
        """Roles for a frame held by the caller: every other numeric column is numeric;
        ``categorical`` columns take the ``categories`` given, else the values seen."""
        if outcome not in frame.columns:
            raise DataError(f"no outcome column {outcome!r}")
        cats = {k: tuple(str(v) for v in vs) for k, vs in (categories or {}).items()}
        for col in categorical:
            if col not in cats:
                if col not in frame.columns:
                    raise DataError(f"no categorical column {col!r}")
                cats[col] = tuple(sorted(frame[col].dropna().astype(str).unique()))
        numeric = [
            str(c)
            for c in frame.select_dtypes(include=["number", "bool"]).columns
            if c != outcome and c not in categorical
        ]
        return cls(outcome, tuple(numeric), tuple(categorical), cats, encoding)


def table_dataset(path: str | Path, roles: ColumnRoles, *, name: str | None = None) -> Dataset:
    """A :class:`~tutela.data.datasets.Dataset` from a CSV or Parquet file and its roles
    (only the named columns are read)."""
    path = Path(path)
    frame = read_table(path, [*roles.source_columns, roles.outcome])
    features, labels = roles.encode(frame, where=str(path))
    if len(frame) == 0:
        raise DataError(f"{path} has no rows")
    return Dataset(
        name=name or path.stem,
        features=features,
        outcome=labels,
        outcome_name=roles.outcome,
        source=f"file {path.name}",
        meta={"path": str(path)},
    )
