"""Encrypted aggregation: CKKS and threshold Paillier against a plaintext numpy sum.

Three sites each hold an update of d floats in U(-1, 1). For each scheme: encrypt (per
site), aggregate (coordinator), decrypt (CKKS: one site; threshold: one site's partial
decryption, as sites run in parallel, plus the coordinator's combination), bytes per value
on the wire, and the max error against numpy. The baseline is the plaintext numpy sum of
the same updates, measured in the same run. Times are wall-clock seconds.

Paillier rows are measured on a prefix of the vector and extrapolated linearly to d
(every ciphertext costs the same); the table marks them. phe (python-paillier, one
ciphertext per value) runs only if installed.

    python benchmarks/he.py            # d in {1e4, 1e5}
    python benchmarks/he.py --quick    # d = 1e4, smaller Paillier samples
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tutela.he import threshold as th
from tutela.he.aggregation import AggregationServer, SiteKeyring

SITES = 3


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def bench_plain(updates):
    reps = 20
    t = time.perf_counter()
    for _ in range(reps):
        total = np.sum(updates, axis=0)
    return total, (time.perf_counter() - t) / reps


def bench_ckks(updates, expected):
    keyring = SiteKeyring.generate()
    server = AggregationServer(keyring.public_context())
    payloads, t_enc = _timed(lambda: [keyring.encrypt_update(u) for u in updates])
    agg, t_agg = _timed(lambda: server.aggregate(payloads))
    res, t_dec = _timed(lambda: keyring.decrypt_sum(agg))
    d = len(expected)
    return {
        "enc": t_enc / SITES,
        "agg": t_agg,
        "dec": t_dec,
        "bytes": len(payloads[0]) / d,
        "err": float(np.max(np.abs(res.values - expected))),
        "note": "",
    }


def bench_threshold(updates, expected, sample, key_bits):
    pk, shares = th.deal_threshold_keys(SITES, key_bits=key_bits)
    part = [u[:sample] for u in updates]
    payloads, t_enc = _timed(lambda: [th.encrypt_update(pk, u) for u in part])
    agg, t_agg = _timed(lambda: th.aggregate(pk, payloads))
    partials, t_part = _timed(lambda: [th.partial_decrypt(s, agg) for s in shares])
    res, t_comb = _timed(lambda: th.combine(pk, agg, partials))
    t_dec = t_part / SITES + t_comb  # sites compute their partials in parallel
    scale = len(expected) / sample
    return {
        "enc": t_enc / SITES * scale,
        "agg": t_agg * scale,
        "dec": t_dec * scale,
        "bytes": len(payloads[0]) / sample,
        "err": float(np.max(np.abs(res.values - expected[:sample]))),
        "note": f"x{scale:.0f} from {sample}",
    }


def bench_phe(updates, expected, sample, key_bits):
    try:
        import phe
    except ImportError:
        return None
    pub, priv = phe.generate_paillier_keypair(n_length=key_bits)
    part = [u[:sample] for u in updates]
    cts, t_enc = _timed(lambda: [[pub.encrypt(float(v)) for v in u] for u in part])

    def add():
        acc = cts[0]
        for other in cts[1:]:
            acc = [a + b for a, b in zip(acc, other, strict=True)]
        return acc

    agg, t_agg = _timed(add)
    out, t_dec = _timed(lambda: np.array([priv.decrypt(c) for c in agg]))
    scale = len(expected) / sample
    nbytes = sum((c.ciphertext(be_secure=False).bit_length() + 7) // 8 for c in cts[0]) / sample
    return {
        "enc": t_enc / SITES * scale,
        "agg": t_agg * scale,
        "dec": t_dec * scale,
        "bytes": nbytes,
        "err": float(np.max(np.abs(out - expected[:sample]))),
        "note": f"x{scale:.0f} from {sample}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="d = 1e4 only, small Paillier samples")
    ap.add_argument("--key-bits", type=int, default=2048, help="Paillier modulus bits")
    args = ap.parse_args()
    sizes = [10_000] if args.quick else [10_000, 100_000]
    th_sample = 360 if args.quick else 1080
    phe_sample = 20 if args.quick else 60
    rng = np.random.default_rng(0)
    rows = []
    for d in sizes:
        updates = [rng.uniform(-1, 1, d) for _ in range(SITES)]
        expected, t_plain = bench_plain(updates)
        rows.append(
            (
                d,
                "numpy float64 sum (baseline)",
                {"enc": 0.0, "agg": t_plain, "dec": 0.0, "bytes": 8.0, "err": 0.0, "note": ""},
            )
        )
        rows.append((d, "CKKS N=8192 [60,40,60] 2^40 (tutela.he)", bench_ckks(updates, expected)))
        rows.append(
            (
                d,
                f"threshold Paillier {args.key_bits} packed (tutela.he)",
                bench_threshold(updates, expected, th_sample, args.key_bits),
            )
        )
        phe_row = bench_phe(updates, expected, phe_sample, args.key_bits)
        if phe_row is not None:
            rows.append((d, f"phe Paillier {args.key_bits}, 1 value/ct", phe_row))
        base = t_plain
    header = (
        "| d | scheme | encrypt/site s | aggregate s | decrypt s | total s | x plaintext "
        "| bytes/value | expansion | max abs err | note |"
    )
    print(header)
    print("|" + "---|" * 11)
    for d, name, r in rows:
        total = r["enc"] + r["agg"] + r["dec"]
        base = next(rr["agg"] for dd, nn, rr in rows if dd == d and "baseline" in nn)
        print(
            f"| {d:.0e} | {name} | {r['enc']:.3g} | {r['agg']:.3g} | {r['dec']:.3g} | "
            f"{total:.3g} | {total / base:,.0f}x | {r['bytes']:.1f} | {r['bytes'] / 8:.1f}x | "
            f"{r['err']:.2g} | {r['note']} |"
        )


if __name__ == "__main__":
    main()
