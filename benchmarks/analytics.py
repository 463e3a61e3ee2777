"""Federated DP analytics: a count and a grouped mean over synthetic EHR rows split across
sites (one Parquet file each).

Per site (each measurement in a fresh process, so peak memory is that process's maximum
resident set, DuckDB's native memory included):

- **tutela**: the site's whole part of a federated query: parse, policy check, DuckDB
  evaluation of the statistics vector, cohort check (no noise: the noise is drawn inside
  the SecAgg+ client);
- **duckdb**: the same question as plain DuckDB SQL over the same file, no privacy (the
  named baseline; the ratio is tutela / duckdb).

Across sites: one SecAgg+ round over the 10 sites' statistics vectors with distributed
noise (the coordinator's and the sites' CPU, in process), and the end-to-end answer's error
against the exact pooled answer. On one pooled table (the sites' rows concatenated):
SmartNoise SQL where it installs (``--smartnoise PYTHON``: an interpreter of a venv that has
``smartnoise-sql``; it is run in that venv on the same Parquet files).

Usage:  .venv/bin/python benchmarks/analytics.py [--rows 10000000] [--sites 10]
            [--smartnoise /tmp/snsql-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

COUNT = "SELECT count(*) FROM patients WHERE age > 60 AND diabetes"
MEAN = "SELECT avg(clamp(bmi, 10, 60)) FROM patients WHERE age > 60 GROUP BY sex"
PLAIN = {
    COUNT: "SELECT count(*) FROM read_parquet(?) WHERE age > 60 AND diabetes = 1",
    MEAN: "SELECT sex, avg(least(greatest(bmi, 10), 60)), count(bmi) FROM read_parquet(?) "
    "WHERE age > 60 GROUP BY sex",
}
POLICY = {
    "purposes": {"bench": {"columns": ["age", "sex", "bmi", "diabetes"]}},
    "analytics": {"categories": {"sex": ["F", "M"]}, "max_rows": 2**24},
}


def write_sites(root: Path, rows: int, sites: int, seed: int = 0) -> list[Path]:
    """Synthetic EHR rows (age, sex, bmi with 3% missing, diabetes), one Parquet per site."""
    rng = np.random.default_rng(seed)
    paths = []
    for s in range(sites):
        n = rows // sites
        age = rng.integers(18, 95, n, dtype=np.int16)
        bmi = rng.normal(27 + 0.5 * s, 5, n)
        bmi[rng.random(n) < 0.03] = np.nan
        frame = pd.DataFrame(
            {
                "age": age,
                "sex": pd.Categorical(rng.choice(["F", "M"], n)).astype(str),
                "bmi": bmi,
                "diabetes": (rng.random(n) < 0.1 + 0.003 * (age - 18)).astype(np.int8),
                "outcome": np.zeros(n, np.int8),
            }
        )
        path = root / f"site-{s + 1}.parquet"
        frame.to_parquet(path, index=False, row_group_size=1_000_000)
        paths.append(path)
        del frame
    return paths


# -- one measurement in its own process ------------------------------------------------------


def _child(kind: str, sql: str, path: str) -> None:
    import resource

    import duckdb

    if kind == "tutela":
        from tutela.dp.sql.cohort import cohort_test
        from tutela.dp.sql.engine import TableSource, check, evaluate
        from tutela.dp.sql.parse import parse_sql
        from tutela.fl.queries import sql_policy
        from tutela.governance.minimisation import SitePolicy
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()  # imports are not timed (a site agent has them loaded)
    if kind == "tutela":
        source = TableSource.of(path)
        header = source.header()
        limits = sql_policy(SitePolicy.from_mapping(POLICY), "bench", header)
        stats = evaluate(check(parse_sql(sql), limits, header), source)
        test = cohort_test(limits.min_cohort, limits.cohort_share, 1.0)
        if test is not None:
            test.decide(stats)  # the noisy minimum-cohort test (charged by a real site)
        out = stats.vector.tolist()
    else:
        con = duckdb.connect()
        rows = con.execute(PLAIN[sql], [path]).fetchall()
        out = [list(map(float, r[1:])) if len(r) > 1 else float(r[0]) for r in rows]
    seconds = time.perf_counter() - start
    # the query's own peak: the process's maximum resident set above what the imports took
    peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - loaded) / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "out": out}))


def measure(kind: str, sql: str, path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, sql, str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def secure_round(paths: list[Path], sql: str, epsilon: float) -> tuple[float, float, float]:
    """(seconds, sigma, error of the first statistic) of one SecAgg+ round over the sites."""
    from tutela.dp.sql.engine import TableSource, check, evaluate
    from tutela.dp.sql.parse import parse_sql
    from tutela.fl.queries import QueryRequest, released_sigma, secure_config, sql_policy
    from tutela.governance.minimisation import SitePolicy
    from tutela.secagg import secure_sum

    policy = SitePolicy.from_mapping(POLICY)
    vectors = {}
    shape = None
    for i, path in enumerate(paths):
        source = TableSource.of(path)
        header = source.header()
        shape = check(parse_sql(sql), sql_policy(policy, "bench", header), header)
        vectors[i] = evaluate(shape, source).vector
    assert shape is not None
    request = QueryRequest(sql, epsilon, 1e-6, "bench", "bench")
    config = secure_config(shape, request.noise_multiplier, len(paths), 2**24)
    start = time.perf_counter()
    result = secure_sum(vectors, None, config)
    seconds = time.perf_counter() - start
    exact = np.sum(list(vectors.values()), axis=0)
    sigma = released_sigma(result.params, len(result.survivors))
    return seconds, sigma, float(result.total[0] - exact[0])


SMARTNOISE = r"""
import json, sys, time, resource
import pandas as pd
import snsql
from snsql import Privacy
paths, epsilon, rows = sys.argv[1].split(","), float(sys.argv[2]), int(sys.argv[3])
start = time.perf_counter()
frame = pd.concat([pd.read_parquet(p, columns=["age", "sex", "bmi", "diabetes"]) for p in paths])
frame["bmi"] = frame["bmi"].fillna(27.0)
meta = {"": {"": {"patients": {
    "row_privacy": True, "max_ids": 1, "rows": rows,
    "age": {"type": "int", "lower": 0, "upper": 120},
    "sex": {"type": "string"},
    "bmi": {"type": "float", "lower": 10.0, "upper": 60.0, "nullable": False},
    "diabetes": {"type": "int", "lower": 0, "upper": 1},
}}}}
reader = snsql.from_df(frame, privacy=Privacy(epsilon=epsilon, delta=1e-6), metadata=meta)
load = time.perf_counter() - start
out = {}
for name, sql in (("count", "SELECT count(*) FROM patients WHERE age > 60 AND diabetes = 1"),
                  ("mean", "SELECT sex, avg(bmi) FROM patients WHERE age > 60 GROUP BY sex")):
    t = time.perf_counter()
    reader.execute(sql)
    out[name] = time.perf_counter() - t
print(json.dumps({"load": load, **out,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def smartnoise(python: str, paths: list[Path], rows: int) -> dict[str, float] | str:
    done = subprocess.run(
        [python, "-c", SMARTNOISE, ",".join(map(str, paths)), "0.5", str(rows)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:200]
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--smartnoise", default=None, help="python of a smartnoise-sql venv")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = write_sites(Path(tmp), args.rows, args.sites)
        print(f"{args.rows:,} synthetic EHR rows over {args.sites} sites "
              f"({args.rows // args.sites:,} each, Parquet), written in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        print(
            "\nper site (median over sites; each a fresh process; MiB = peak resident memory "
            "above the process with its imports loaded)"
        )
        print(f"{'query':<7}{'tutela s':>10}{'duckdb s':>10}{'ratio':>8}"
              f"{'tutela MiB':>12}{'duckdb MiB':>12}")  # fmt: skip
        for label, sql in (("count", COUNT), ("mean", MEAN)):
            ours = [measure("tutela", sql, p) for p in paths]
            base = [measure("duckdb", sql, p) for p in paths]
            t_ours = float(np.median([m["seconds"] for m in ours]))
            t_base = float(np.median([m["seconds"] for m in base]))
            m_ours = float(np.median([m["peak_mib"] for m in ours]))
            m_base = float(np.median([m["peak_mib"] for m in base]))
            print(f"{label:<7}{t_ours:>10.3f}{t_base:>10.3f}{t_ours / t_base:>8.2f}"
                  f"{m_ours:>12.0f}{m_base:>12.0f}")  # fmt: skip
        print(f"\nSecAgg+ round over {args.sites} sites (in process), epsilon 0.5 per site")
        for label, sql in (("count", COUNT), ("mean", MEAN)):
            seconds, sigma, error = secure_round(paths, sql, 0.5)
            print(f"{label:<7}{seconds:>8.3f} s   noise std {sigma:.2f} per statistic   "
                  f"error of the first statistic {error:+.2f}")  # fmt: skip
        if args.smartnoise:
            print("\nSmartNoise SQL on the pooled table (one process, epsilon 0.5)")
            print(smartnoise(args.smartnoise, paths, args.rows))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
