"""The ledger scope of a table: a fingerprint of its content, so that every copy of the data
draws on one budget; and reading a CSV with one clear error."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from tutela.errors import DataError

__all__ = ["fingerprint", "read_csv"]

_FINGERPRINT_PREFIX = "table:sha256:"


def _canonical_cell(value: object) -> object:
    """A JSON value that two parses of the same table agree on (1 and 1.0 alike)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isnan(f):
            return None
        if f.is_integer() and abs(f) < 2**53:
            return int(f)
        return f  # repr round-trips; infinities become JSON Infinity, never a string
    return str(value)


def fingerprint(data: pd.DataFrame) -> str:
    """The ledger scope of a table: SHA-256 over a canonical form of its content.

    The canonical form is the column names in sorted order, then every row (cells in that
    column order, numbers normalised so that ``1`` and ``1.0`` agree, missing values as
    null) as JSON, the rows sorted. The scope therefore follows the data, not its name: a
    copy, rename or hard link of a file, a re-encoded CSV, or the same rows and columns in
    another order all get the same fingerprint and share one budget.

    Privacy: this stops the budget being reset by copying the data. It cannot tell an
    edited table (a row added or dropped, a column added) from new data; who may bring a
    table to the ledger is a matter for access control, not for the ledger.

    Returns:
        ``"table:sha256:<64 hex digits>"``.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError("data must be a pandas DataFrame")
    names = [str(c) for c in data.columns]
    order = sorted(range(len(names)), key=lambda i: names[i])
    digest = hashlib.sha256()
    digest.update(json.dumps([names[i] for i in order]).encode() + b"\n")
    rows = sorted(
        json.dumps([_canonical_cell(v) for v in row], separators=(",", ":"))
        for row in data.iloc[:, order].astype(object).itertuples(index=False, name=None)
    )
    for row in rows:
        digest.update(row.encode() + b"\n")
    return _FINGERPRINT_PREFIX + digest.hexdigest()


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV file; any failure is one :class:`~tutela.errors.DataError` line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"cannot read {p}: no such file")
    try:
        return pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise DataError(f"cannot read {p}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        detail = " ".join(str(exc).split())
        raise DataError(f"cannot read {p} as CSV: {detail}") from None
