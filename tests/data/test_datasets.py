import numpy as np
import pytest

from tutela.data import DatasetName, dataset_catalog, generate_ehr, load_dataset
from tutela.errors import DataError


@pytest.mark.parametrize(
    ("name", "rows", "features"),
    [(DatasetName.BREAST_CANCER, 569, 30), (DatasetName.PIMA, 532, 7)],
)
def test_shipped_datasets_load_offline(name, rows, features):
    ds = load_dataset(name)
    assert ds.rows == rows
    assert ds.numeric_matrix().shape == (rows, features)
    assert set(np.unique(ds.outcome)) == {0, 1}
    info = {d.name: d for d in dataset_catalog()}[name]
    assert (info.rows, info.features) == (rows, features)


def test_breast_cancer_outcome_is_malignant():
    ds = load_dataset("breast-cancer")
    assert ds.outcome.sum() == 212  # 212 malignant, 357 benign in WDBC


def test_unknown_dataset_is_named():
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_synthetic_ehr_is_seeded_and_realistic():
    a = generate_ehr(20_000, hospitals=6, seed=3)
    b = generate_ehr(20_000, hospitals=6, seed=3)
    assert a.equals(b)
    assert not a.equals(generate_ehr(20_000, hospitals=6, seed=4))
    for col in (
        "name",
        "ssn",
        "mrn",
        "phone",
        "email",
        "age",
        "sex",
        "bmi",
        "systolic_bp",
        "glucose",
        "smoker",
        "diabetes",
        "zip",
        "admission_date",
        "hospital",
        "outcome",
    ):
        assert col in a.columns
    assert a["mrn"].is_unique
    assert a["ssn"].str.match(r"^\d{3}-\d{2}-\d{4}$").all()
    assert not a["ssn"].str.startswith("666").any()
    assert a["age"].between(18, 100).all()
    assert 0.03 < a["outcome"].mean() < 0.4
    # Hospitals differ in size and case mix.
    sizes = a["hospital"].value_counts()
    assert sizes.max() > 1.5 * sizes.min()
    smoking = a.groupby("hospital")["smoker"].mean()
    assert smoking.max() - smoking.min() > 0.05
    # The documented risk model holds: older patients and smokers have more events.
    assert a.loc[a.age > 70, "outcome"].mean() > a.loc[a.age < 40, "outcome"].mean()
    assert a.loc[a.smoker == 1, "outcome"].mean() > a.loc[a.smoker == 0, "outcome"].mean()


def test_synthetic_dataset_via_loader():
    ds = load_dataset("synthetic-ehr", rows=500, seed=1)
    cols = ds.meta["model_features"].split(",")
    assert ds.numeric_matrix(cols).shape == (500, len(cols))
    with pytest.raises(DataError, match="not numeric"):
        ds.numeric_matrix(["name"])


def test_generator_rejects_bad_sizes():
    with pytest.raises(ValueError, match="positive"):
        generate_ehr(0)
