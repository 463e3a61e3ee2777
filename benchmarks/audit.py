"""Audit log: append and verification cost versus pymerkle (rebuilding the tree from scratch).

Baseline: pymerkle 6 ``InmemoryTree`` fed the same leaf bytes, then ``get_state()``: what a
verifier without a compact range or stored leaf hashes would do to recompute the tree head.
Tutela's ``AuditLog.verify()`` does more work than that baseline (re-encodes every record
from SQLite, checks its stored hash and index, rebuilds the tree head and compares it with
the stored state and a signed checkpoint), so the ratio is conservative.

Usage:  .venv/bin/python benchmarks/audit.py [--quick] [--records N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pymerkle
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.governance.audit import AuditLog, VerifierKey

PROOFS = 200
"""Consistency proofs timed after the first."""


def _timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 records instead of 100,000")
    parser.add_argument("--records", type=int, default=None)
    args = parser.parse_args()
    n = args.records or (10_000 if args.quick else 100_000)
    single = min(2_000, n)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.sqlite"
        log = AuditLog.open(path)

        def build() -> None:
            with log.batch():
                for i in range(n):
                    log.append(
                        f"user-{i % 17}",
                        "round:submit",
                        f"study/s{i % 5}/round/{i // 100}",
                        "success",
                        {"site": f"site-{i % 9}", "epsilon_spent": 0.01, "round": i // 100},
                    )

        t_build, _ = _timed(build)
        key = Ed25519PrivateKey.generate()
        cp = log.checkpoint(key)
        log.close()

        other = AuditLog.open(Path(tmp) / "single.sqlite")
        t_single, _ = _timed(
            lambda: [other.append("bench", "config:write", None, "success") for _ in range(single)]
        )
        other.close()

        leaves = []
        log = AuditLog.open(path)
        for rec in log.records(0, n):
            leaves.append(rec.leaf())

        t_verify, report = _timed(lambda: log.verify([VerifierKey.of(key)], [cp]))
        assert report.ok, report.problem

        pm_tree = pymerkle.InmemoryTree(algorithm="sha256")

        def pm_rebuild() -> bytes:
            for leaf in leaves:
                pm_tree.append_entry(leaf)
            return bytes(pm_tree.get_state())

        t_pm, pm_root = _timed(pm_rebuild)
        assert pm_root == cp.root, "pymerkle disagrees with the checkpoint root"
        # the first proof reads the stored leaf hashes and builds the tree the log then keeps
        t_incl, inc = _timed(lambda: log.prove_inclusion(n // 3, n))
        t_cons, con = _timed(lambda: log.prove_consistency(n // 2, n))
        assert inc.verify(cp.root)
        assert con.verify(new_root=cp.root)
        # what a witness asks for again and again: proofs from the kept tree
        t_kept, kept = _timed(
            lambda: [log.prove_consistency(n // 2 + i, n) for i in range(1, PROOFS + 1)]
        )
        assert all(k.verify(new_root=cp.root) for k in kept)
        t_pm_cons, _ = _timed(
            lambda: [pm_tree.prove_consistency(n // 2 + i, n) for i in range(1, PROOFS + 1)]
        )
        log.close()

    rows = [
        ("verify n records + checkpoint (tutela)", t_verify, t_pm),
        ("rebuild tree head (pymerkle, baseline)", t_pm, t_pm),
        ("build n records, one batch (tutela)", t_build, t_pm),
        (f"append {single} records, one commit each (tutela)", t_single, t_pm),
        ("first proof (inclusion): reads leaves, builds tree", t_incl, t_pm),
        ("consistency proof n/2 -> n, tree kept (tutela)", t_cons, t_pm),
    ]
    proofs = [
        ("tutela, tree kept in memory", t_kept),
        ("pymerkle InmemoryTree.prove_consistency (baseline)", t_pm_cons),
    ]
    print(f"audit log, n = {n:,} records (SQLite backend); baseline = pymerkle rebuild")
    print(f"{'operation':<48} {'seconds':>9} {'per record':>12} {'per-record vs baseline':>24}")
    base_per = t_pm / n * 1e6
    for name, secs, _ in rows:
        count = single if name.startswith("append") else n
        per = secs / count * 1e6
        print(f"{name:<48} {secs:>9.3f} {per:>10.2f}µs {per / base_per:>23.2f}x")
    print(f"verify result: {report.describe()}")
    print(f"\n{PROOFS} consistency proofs to size n after the first (a witness's requests)")
    print(f"{'prover':<52} {'ms per proof':>12} {'vs baseline':>12}")
    for name, secs in proofs:
        print(f"{name:<52} {secs / PROOFS * 1e3:>12.3f} {secs / t_pm_cons:>11.3f}x")


if __name__ == "__main__":
    main()
