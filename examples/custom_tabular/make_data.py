"""Write the clinic's table: ``data/hospitals.csv``, one row per patient.

The rows come from Tutela's seeded synthetic EHR generator (``synthetic-ehr``: realistic
identifiers, per-hospital shifts, a five-year cardiovascular outcome). The table keeps
numeric columns (age, bmi, systolic_bp, glucose), categorical ones as text (sex ``F``/``M``,
smoker ``no``/``yes``), the outcome ``cv_event`` and two identifier columns (``name``,
``mrn``) that no study may read: the site policy never shares them and the study does not
ask for them.

Run it::

    python examples/custom_tabular/make_data.py [--rows 2400]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from tutela.data.datasets import DatasetName, load_dataset

HERE = Path(__file__).resolve().parent
TABLE = HERE / "data" / "hospitals.csv"


def write_table(rows: int = 2400, seed: int = 0, path: Path = TABLE) -> Path:
    """Generate ``rows`` patients and write them to ``path`` (CSV)."""
    ehr = load_dataset(DatasetName.SYNTHETIC_EHR, rows=rows, seed=seed)
    f = ehr.features
    table = pd.DataFrame(
        {
            "name": f["name"],
            "mrn": f["mrn"],
            "age": f["age"],
            "sex": f["sex"],
            "bmi": f["bmi"].round(1),
            "systolic_bp": f["systolic_bp"].round(0),
            "glucose": f["glucose"].round(0),
            "smoker": f["smoker"].map({0: "no", 1: "yes"}),
            "cv_event": ehr.outcome,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2400, help="patients to generate")
    args = parser.parse_args()
    path = write_table(args.rows)
    print(f"wrote {args.rows} patients to {path}")


if __name__ == "__main__":
    main()
