"""Secure multi-party computation: PSI, logistic regression and joint statistics.

PSI (``--psi N``, default 10**5): two parties with N records each, half of them common,
one key per record. Tutela's ECDH-PSI (P-256, in-process, both parties in this process, so
the CPU time is both parties' together) against OpenMined PSI 2.0.6 (ECDH over P-256 in
C++, run in a subprocess on the same records: server setup, client request, server
response, client intersection), with its setup message raw and Golomb-compressed (GCS,
false-positive rate 1e-9). OpenMined PSI is installed on first use with ``pip --target``
into ``.bench-venvs/openmined-psi-2.0.6`` (it pins its own protobuf; nothing is added to
the main environment). Ratios are Tutela over OpenMined in the same run.

Breast cancer (sklearn, 569 x 30), 75/25 split, training rows split among N parties. The
baselines are sklearn's LogisticRegression (lbfgs) and numpy mean/cov on the pooled data,
measured in the same run; the secure rows add the in-process protocol's rounds and bytes
(all parties together; no network latency is simulated).

    python benchmarks/smpc.py                    # PSI 10^5 x 10^5; 3 and 5 parties
    python benchmarks/smpc.py --quick            # PSI 10^4 x 10^4; 3 parties, 40 iterations
    python benchmarks/smpc.py --only psi --psi 100000
    python benchmarks/smpc.py --only vertical
    python benchmarks/smpc.py --only triples --triples 2000

Triples (``--only triples``): Beaver triples over Z_{2^64} for two parties, from the
trusted dealer (baseline: it draws and shares them, then sends each party 3 words per
triple) against dealer-free Gilboa products with each party's own Paillier key (2048 and
3072 bits; both parties in this process, so the time is both parties' work together, no
network). Bytes are everything on the wire per triple, both directions. Then vertical
training (2 parties, 120 rows x (3 + 3), 5 iterations) with the dealer's material against
Paillier-made material (2048-bit keys), parties as threads over queues.

Vertical (``--only vertical``): 2 parties (12 and 18 breast-cancer columns of the first 400
rows, the label at the second) train logistic regression on shares, each party a thread
exchanging real serialised messages through queues, with the dealer's material prepared
beforehand by its dry run; baseline: the same gradient descent in float64 on the joined
table, in the same run. Inference with the opened model on the other 169 rows, features
split the same way: each party's partial logits summed by the two-round secure sum;
baseline: numpy ``X @ w`` on the joined rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from tutela.smpc.logreg import Sigmoid, standardise, train_logistic_regression
from tutela.smpc.psi import PsiMode, private_set_intersection
from tutela.smpc.stats import joint_statistics

ROOT = Path(__file__).resolve().parents[1]
OPENMINED_DIR = ROOT / ".bench-venvs" / "openmined-psi-2.0.6"
OPENMINED = r"""
import json, sys, time
import private_set_intersection.python as psi
n = int(sys.argv[1])
client_items = [f"patient-{i}" for i in range(n)]
server_items = [f"patient-{i + n // 2}" for i in range(n)]
out = {}
for name, ds in (("raw", psi.DataStructure.RAW), ("gcs", psi.DataStructure.GCS)):
    wall, cpu = time.perf_counter(), time.process_time()
    client = psi.client.CreateWithNewKey(True)
    server = psi.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(1e-9, n, server_items, ds)
    request = client.CreateRequest(client_items)
    response = server.ProcessRequest(request)
    found = client.GetIntersection(setup, response)
    out[name] = {
        "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "found": len(found),
        "bytes": sum(len(m.SerializeToString()) for m in (setup, request, response)),
    }
print(json.dumps(out))
"""


def ensure_openmined() -> str:
    """Install OpenMined PSI into its own directory if needed; return "" or why not."""
    if (OPENMINED_DIR / "private_set_intersection").is_dir():
        return ""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(OPENMINED_DIR),
         "openmined-psi==2.0.6", "protobuf==6.30.2"],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
    return ""


def psi_table(n: int) -> None:
    """Tutela's PSI against OpenMined PSI on n x n records, half common."""
    print(f"\n| PSI {n} x {n} (half common) | wall s | CPU s | MB sent | x OpenMined GCS time | "
          "x OpenMined GCS bytes | x OpenMined raw bytes |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    base: dict[str, dict[str, float]] = {}
    why = ensure_openmined()
    if not why:
        proc = subprocess.run(
            [sys.executable, "-c", OPENMINED, str(n)],
            capture_output=True, text=True, check=False, timeout=3600,
            env={"PYTHONPATH": str(OPENMINED_DIR), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        if proc.returncode == 0:
            base = json.loads(proc.stdout)
        else:
            why = (proc.stderr.strip().splitlines() or ["failed"])[-1]
    for name in ("raw", "gcs"):
        if name in base:
            b = base[name]
            print(f"| OpenMined PSI 2.0.6, setup {name} (baseline) | {b['wall']:.1f} | "
                  f"{b['cpu']:.1f} | {b['bytes'] / 1e6:.2f} | - | - | - |")  # fmt: skip
    if why:
        print(f"| OpenMined PSI not run: {why} | - | - | - | - | - | - |")
    a_keys = [(f"patient-{i}".encode(),) for i in range(n)]
    b_keys = [(f"patient-{i + n // 2}".encode(),) for i in range(n)]
    for mode in (PsiMode.INTERSECTION, PsiMode.CARDINALITY, PsiMode.SHARES):
        wall, cpu = time.perf_counter(), time.process_time()
        ra, rb = private_set_intersection(a_keys, b_keys, mode)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert ra.size == n - n // 2
        sent = ra.bytes_sent + rb.bytes_sent
        ratios = ["-", "-", "-"]
        if "gcs" in base:
            ratios = [
                f"{cpu / base['gcs']['cpu']:.2f}x (CPU)",
                f"{sent / base['gcs']['bytes']:.2f}x",
                f"{sent / base['raw']['bytes']:.2f}x",
            ]
        print(f"| Tutela ECDH-PSI, {mode.value} | {wall:.1f} | {cpu:.1f} | {sent / 1e6:.2f} | "
              f"{' | '.join(ratios)} |")  # fmt: skip


def vertical_table(iterations: int) -> None:
    """Vertical training per iteration and inference per sample against float64."""
    import queue
    import threading

    from tutela.hazmat.ring import FixedPoint64
    from tutela.smpc.joint import SecureSum
    from tutela.smpc.party import MaterialStream, PartyRuntime, ShapeRuntime
    from tutela.smpc.vertical import VerticalPlan, plaintext_reference, train_vertical

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    parts, labels = [X[:400, :12], X[:400, 12:]], y[:400]
    plan = VerticalPlan(rows=400, widths=(12, 18), label_party=1, iterations=iterations)
    t = time.perf_counter()
    dry = ShapeRuntime(2)
    train_vertical(dry, plan, None)
    streams = [MaterialStream.from_bytes(st.to_bytes()) for st in dry.streams()]
    t_dealer = time.perf_counter() - t
    boxes: dict[tuple[str, int, int], queue.Queue[bytes]] = {}
    lock = threading.Lock()
    sent = [0]

    def box(key: tuple[str, int, int]) -> queue.Queue[bytes]:
        with lock:
            return boxes.setdefault(key, queue.Queue())

    def exchange_for(me: int):  # type: ignore[no-untyped-def]
        def exchange(step, outbox, senders):  # type: ignore[no-untyped-def]
            for j, msg in outbox.items():
                sent[0] += len(msg)
                box((step, me, j)).put(msg)
            return {j: box((step, j, me)).get() for j in senders}

        return exchange

    out: dict[int, np.ndarray] = {}

    def run(i: int) -> None:
        rt = PartyRuntime(i, 2, exchange_for(i), streams[i])
        out[i] = train_vertical(rt, plan, parts[i], labels if i == 1 else None)

    t = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t_secure = time.perf_counter() - t
    t = time.perf_counter()
    reference = plaintext_reference(parts, labels, plan)
    t_plain = time.perf_counter() - t
    err = float(np.max(np.abs(out[0] - reference)))
    print("\n| vertical LR, 2 parties, 400 rows x (12 + 18) | seconds | per iteration ms | "
          "x float64 | MB sent | max weight error |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    print(f"| float64 GD on the joined table (baseline) | {t_plain:.3g} | "
          f"{1e3 * t_plain / iterations:.3g} | 1x | - | - |")  # fmt: skip
    print(f"| secure GD on shares, {iterations} it (parties only) | {t_secure:.3g} | "
          f"{1e3 * t_secure / iterations:.3g} | {t_secure / t_plain:.0f}x | "
          f"{sent[0] / 1e6:.2f} | {err:.1e} |")  # fmt: skip
    print(f"| dealer's dry run (material for both parties) | {t_dealer:.3g} | - | - | "
          f"{sum(len(st.to_bytes()) for st in dry.streams()) / 1e6:.2f} | - |")  # fmt: skip
    w = out[0]
    Xt = X[400:]
    fxp = FixedPoint64()
    t = time.perf_counter()
    for _ in range(20):
        Xt @ w[:-1] + w[-1]
    t_np = (time.perf_counter() - t) / 20
    t = time.perf_counter()
    partial = [fxp.encode(Xt[:, :12] @ w[:12]), fxp.encode(Xt[:, 12:] @ w[12:-1] + w[-1])]
    sums = [SecureSum(i, 2, len(Xt)) for i in range(2)]
    first = [s_.share(v) for s_, v in zip(sums, partial, strict=True)]
    second = [sums[i].combine({1 - i: first[1 - i][i]}) for i in range(2)]
    logits = fxp.decode(sums[0].reveal({1: second[1][0]}))
    t_inf = time.perf_counter() - t
    acc = float(np.mean((logits > 0) == y[400:]))
    print(f"\n| LR inference, {len(Xt)} rows, features split 12 + 18 | ms per sample | x numpy | "
          "accuracy |")  # fmt: skip
    print("|---|---|---|---|")
    print(f"| numpy X @ w on joined rows (baseline) | {1e3 * t_np / len(Xt):.2g} | 1x | - |")
    print(f"| secure sum of partial logits (2 rounds, batch) | {1e3 * t_inf / len(Xt):.2g} | "
          f"{t_inf / t_np:.0f}x | {acc:.4f} |")  # fmt: skip


def triples_table(count: int) -> None:
    """Dealer against dealer-free (Paillier) triples: triples per second and bytes each."""
    from tutela.hazmat.paillier import generate_paillier_keypair
    from tutela.smpc.dealer import TrustedDealer
    from tutela.smpc.triples import PaillierTriples

    t = time.perf_counter()
    dealer = TrustedDealer(2)
    a, b, c = dealer.beaver_triple((count,))
    wire = sum(len(x.tobytes()) for share in (a, b, c) for x in share)
    t_dealer = time.perf_counter() - t
    assert np.array_equal((a[0] + a[1]) * (b[0] + b[1]), c[0] + c[1])
    print(f"\n| Beaver triples over Z_2^64, 2 parties, {count} triples | triples/s | "
          "x dealer time | bytes/triple | x dealer bytes |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(f"| trusted dealer (baseline) | {count / t_dealer:,.0f} | 1x | {wire / count:.0f} | 1x |")
    for bits in (2048, 3072):
        keys = [generate_paillier_keypair(bits) for _ in range(2)]
        t = time.perf_counter()
        p = [PaillierTriples(i, keys[i]) for i in range(2)]
        msgs = [p[0].key_message(), p[1].key_message()]
        p[0].accept_key(msgs[1])
        p[1].accept_key(msgs[0])
        offers = [p[0].offer((count,)), p[1].offer((count,))]
        answers = [p[0].answer(offers[1]), p[1].answer(offers[0])]
        t0, t1 = p[0].finish(answers[1]), p[1].finish(answers[0])
        elapsed = time.perf_counter() - t
        assert np.array_equal((t0.a + t1.a) * (t0.b + t1.b), t0.c + t1.c)
        sent = sum(len(m) for m in (*msgs, *offers, *answers))
        print(f"| dealer-free, Paillier {bits} (Gilboa) | {count / elapsed:,.0f} | "
              f"{elapsed / t_dealer:,.0f}x | {sent / count:,.0f} | "
              f"{sent / wire:,.0f}x |")  # fmt: skip
    vertical_sources()


class _Queues:
    """Parties as threads: one queue per (step, sender, recipient); counts bytes sent."""

    def __init__(self) -> None:
        import queue
        import threading

        self._queue = queue.Queue
        self._boxes: dict[tuple[str, int, int], Any] = {}
        self._lock = threading.Lock()
        self.sent = 0

    def _box(self, key: tuple[str, int, int]) -> Any:
        with self._lock:
            return self._boxes.setdefault(key, self._queue())

    def exchange_for(self, me: int):  # type: ignore[no-untyped-def]
        def exchange(step, outbox, senders):  # type: ignore[no-untyped-def]
            for j, msg in outbox.items():
                self.sent += len(msg)
                self._box((step, me, j)).put(msg)
            return {j: self._box((step, j, me)).get() for j in senders}

        return exchange


def _train_two(source: str, plan: Any, parts: list[np.ndarray], labels: np.ndarray) -> Any:
    """Vertical training between two threads; returns (weights, seconds, bytes)."""
    import threading

    from tutela.hazmat.paillier import generate_paillier_keypair
    from tutela.smpc.pairwise import PairwiseRuntime
    from tutela.smpc.party import MaterialStream, PartyRuntime, ShapeRuntime
    from tutela.smpc.vertical import train_vertical

    queues = _Queues()
    t = time.perf_counter()
    runtimes: list[PartyRuntime]
    if source == "dealer":
        dry = ShapeRuntime(2)
        train_vertical(dry, plan, None)
        streams = [st.to_bytes() for st in dry.streams()]
        queues.sent += sum(len(st) for st in streams)
        runtimes = [
            PartyRuntime(i, 2, queues.exchange_for(i), MaterialStream.from_bytes(streams[i]))
            for i in range(2)
        ]
    else:
        runtimes = [
            PairwiseRuntime(i, queues.exchange_for(i), generate_paillier_keypair(2048))
            for i in range(2)
        ]
    out: dict[int, np.ndarray] = {}

    def run(i: int) -> None:
        out[i] = train_vertical(runtimes[i], plan, parts[i], labels if i == 1 else None)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return out[0], time.perf_counter() - t, queues.sent


def vertical_sources() -> None:
    """Vertical training with the dealer's material against Paillier-made material."""
    from tutela.smpc.vertical import VerticalPlan, plaintext_reference

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    parts, labels = [X[:120, :3], X[:120, 3:6]], y[:120]
    plan = VerticalPlan(rows=120, widths=(3, 3), label_party=1, iterations=5)
    reference = plaintext_reference(parts, labels, plan)
    print("\n| vertical LR, 2 parties, 120 rows x (3 + 3), 5 it | seconds | x dealer | "
          "MB on the wire | max weight error |")  # fmt: skip
    print("|---|---|---|---|---|")
    base = 0.0
    for source in ("dealer", "paillier"):
        weights, elapsed, sent = _train_two(source, plan, parts, labels)
        base = base or elapsed
        err = float(np.max(np.abs(weights - reference)))
        label = "dealer's material (baseline)" if source == "dealer" else "Paillier 2048, no dealer"
        print(f"| {label} | {elapsed:.3g} | {elapsed / base:.0f}x | {sent / 1e6:.2f} | "
              f"{err:.1e} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="PSI 10^4; 3 parties, 40 iterations")
    ap.add_argument("--psi", type=int, default=None, help="records per party for PSI")
    ap.add_argument("--only", choices=("psi", "vertical", "triples", "compute"), default=None)
    ap.add_argument("--triples", type=int, default=2000, help="triples for --only triples")
    args = ap.parse_args()
    if args.only == "triples":
        triples_table(args.triples)
        return
    if args.only in (None, "psi"):
        psi_table(args.psi or (10_000 if args.quick else 100_000))
    if args.only in (None, "vertical"):
        vertical_table(20 if args.quick else 100)
    if args.only in ("psi", "vertical"):
        return
    party_counts = [3] if args.quick else [3, 5]
    iterations = 40 if args.quick else 100
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

    print("| task | parties | method | seconds | x baseline | accuracy | rounds | MB sent |")
    print("|---|---|---|---|---|---|---|---|")
    t = time.perf_counter()
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0, ddof=1)
    sk = LogisticRegression(max_iter=1000).fit((Xtr - mu) / sd, ytr)
    t_sk = time.perf_counter() - t
    acc_sk = sk.score((Xte - mu) / sd, yte)
    print(
        f"| logistic regression | 1 | sklearn lbfgs, pooled (baseline) | {t_sk:.3g} | 1x | "
        f"{acc_sk:.4f} | - | - |"
    )
    t = time.perf_counter()
    for _ in range(20):
        np.mean(X, axis=0)
        np.cov(X.T)
    t_np = (time.perf_counter() - t) / 20
    for n in party_counts:
        idx = np.array_split(np.arange(len(ytr)), n)
        t = time.perf_counter()
        std, m, s = standardise([Xtr[i] for i in idx])
        model = train_logistic_regression(
            [(std[k], ytr[i]) for k, i in enumerate(idx)],
            iterations=iterations,
            learning_rate=0.5,
            sigmoid=Sigmoid.LINEAR,
        )
        t_sec = time.perf_counter() - t
        acc = model.accuracy((Xte - m) / s, yte)
        print(
            f"| logistic regression | {n} | secure GD, {iterations} it, linear sigmoid "
            f"(incl. joint standardisation) | {t_sec:.3g} | {t_sec / t_sk:.1f}x | {acc:.4f} | "
            f"{model.traffic.rounds} | {model.traffic.bytes / 1e6:.2f} |"
        )
    print(
        f"| mean + covariance (30 cols) | 1 | numpy, pooled (baseline) | {t_np:.3g} | 1x | - | "
        f"- | - |"
    )
    for n in party_counts:
        parts = np.array_split(X, n)
        t = time.perf_counter()
        res = joint_statistics(parts)
        t_st = time.perf_counter() - t
        err = float(np.max(np.abs(res.correlation - np.corrcoef(X.T))))
        print(
            f"| mean + covariance (30 cols) | {n} | joint_statistics (max corr err {err:.1e}) | "
            f"{t_st:.3g} | {t_st / t_np:.0f}x | - | {res.traffic.rounds} | "
            f"{res.traffic.bytes / 1e6:.2f} |"
        )


if __name__ == "__main__":
    main()
