"""Anonymising a table (k-anonymity) and a folder of clinical notes (PII redaction).

What it shows:

1. A patient table with direct identifiers (name, SSN, phone, ...) and quasi-identifiers
   (ZIP, date of birth, age, sex, ...) released under the HIPAA Safe Harbor profile with
   k-anonymity (``tutela.anonymize.anonymize_table``): identifiers dropped, quasi-identifiers
   generalised until every row shares them with at least k - 1 others, free-text columns
   redacted. It prints rows before and after and the risk report, re-measured on the
   released table alone.
2. A folder of notes with planted identifiers (names, MRNs, SSNs, phone numbers, e-mails,
   dates): ``PiiDetector`` finds them (rules with checksum validation, plus a spaCy NER
   model where installed) and ``apply_operator(..., Redact())`` replaces each with its
   label. It prints a note before and after, and how many planted identifiers remain.

Run it::

    python examples/anonymise.py [--notes-dir DIR]

The notes are written to ``--notes-dir`` (default: a temporary folder) with the redacted
copies in ``DIR/redacted``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

import tutela
from tutela.anonymize import PiiDetector, Redact, apply_operator, generate_patients

K = 5

# (name, MRN, SSN, phone, e-mail, date of visit): planted in the notes, all must go
PATIENTS = [
    (
        "Maria Gonzalez",
        "48213377",
        "512-48-3921",
        "(617) 555-0142",
        "maria.g@example.com",
        "12 March 2024",
    ),
    (
        "James O'Brien",
        "59120834",
        "231-77-4102",
        "(312) 555-0199",
        "jobrien@example.net",
        "3 April 2024",
    ),
    (
        "Aiko Tanaka",
        "60418825",
        "402-19-6633",
        "(206) 555-0187",
        "aiko.tanaka@example.org",
        "27 May 2024",
    ),
]

NOTE = """Patient: {name}, MRN {mrn}, seen {date}.
SSN {ssn}. Call back on {phone} or {email}.
Assessment: type 2 diabetes, HbA1c 7.9%. Plan: metformin 500 mg BID; review in 3 months.
"""


def table_demo() -> None:
    patients = generate_patients(400, seed=0)
    shown = ["name", "ssn", "zip", "dob", "age", "sex", "race", "diagnosis"]
    print("table before (3 of 400 rows):")
    print(patients[shown].head(3).to_string(index=False))
    result = tutela.anonymize_table(patients, k=K)
    print(f"\ntable after (k={K}, HIPAA Safe Harbor):")
    kept = [c for c in shown if c in result.table.columns]
    print(result.table[kept].head(3).to_string(index=False))
    report = result.report
    dropped = sorted(c for c, a in report.actions.items() if a.startswith("drop"))
    print(f"\ndropped: {', '.join(dropped)}")
    print(
        f"k achieved {report.k_achieved} (requested {report.k_requested}, verified "
        f"{report.verified}), {report.suppressed_rows} rows suppressed, "
        f"{report.equivalence_classes} equivalence classes"
    )
    risk = report.risk
    print(
        f"re-identification risk: prosecutor max {risk['prosecutor_max']:.3f}, "
        f"avg {risk['prosecutor_avg']:.3f}; journalist max {risk['journalist_max']:.3f}; "
        f"records at risk {risk['records_at_risk']:.3f} (threshold {risk['threshold']})"
    )


def notes_demo(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "redacted"
    out.mkdir(exist_ok=True)
    planted: list[str] = []
    for i, (name, mrn, ssn, phone, email, date) in enumerate(PATIENTS):
        fields = {"name": name, "mrn": mrn, "ssn": ssn, "phone": phone, "email": email}
        (folder / f"note-{i + 1}.txt").write_text(NOTE.format(date=date, **fields))
        planted += [*fields.values(), date]

    detector = PiiDetector()
    found = 0
    for path in sorted(folder.glob("note-*.txt")):
        text = path.read_text()
        spans = detector.detect(text)
        found += len(spans)
        (out / path.name).write_text(apply_operator(text, spans, Redact()))

    first = sorted(folder.glob("note-*.txt"))[0]
    print(f"\nnote before ({first.name}):\n{first.read_text()}")
    print(f"note after ({out / first.name}):\n{(out / first.name).read_text()}")
    redacted = "\n".join(p.read_text() for p in sorted(out.glob("note-*.txt")))
    left = [value for value in planted if value in redacted]
    print(
        f"{len(list(out.glob('note-*.txt')))} notes, {found} identifiers redacted; "
        f"planted identifiers left in the redacted notes: {len(left)} of {len(planted)}"
    )
    for value in left:
        print(f"  left: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes-dir", type=Path, help="where the notes are written")
    args = parser.parse_args()
    pd.set_option("display.width", 120)
    table_demo()
    if args.notes_dir is not None:
        notes_demo(args.notes_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            notes_demo(Path(tmp) / "notes")


if __name__ == "__main__":
    main()
