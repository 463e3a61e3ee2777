"""Exact discrete Gaussian sampler: before and after vectorising the CKS steps, in one run.

Each row times ``sample_discrete_gaussian(sigma, n)`` (Canonne-Kamath-Steinke rejection
sampling, exact, on the AES-256-CTR CSPRNG) as it is now ("after") and as it was before the
steps of Bernoulli(exp(-gamma)) were vectorised ("before": a copy of that implementation
kept in this script, drawing from the same generator class). The named baseline is
numpy's ``Generator.normal`` rounded to integers: not secure (PCG64) and not exact, the
cheapest thing a careless implementation would do. ``n = 651`` is one device's update in
the 1,000-device SecAgg+ benchmark (benchmarks/scale.py --privacy); sigma = sqrt(9,000,001)
is an integer per-device variance in quantisation steps of the size SecAgg+ distributed DP
uses, 3000.3 needs Python integers for gamma's numerator, 2e5 for its denominator too.

Columns: milliseconds per call (median of repeats), ``speed-up`` = before / after and
``x numpy`` = after / numpy.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/noise.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from tutela.hazmat.noise import effective_discrete_gaussian_sigma2, sample_discrete_gaussian
from tutela.hazmat.rng import SecureRandom

# -- the implementation before this change (tutela 0126975^), for comparison only ---------

_INT64_SAFE = 1 << 62
_SQRT_SAFE = 1 << 31


def _old_unit(rng: SecureRandom, num: npt.NDArray[Any], den: npt.NDArray[Any]) -> Any:
    n = num.shape[0]
    k = np.ones(n, dtype=np.int64)
    certain = np.asarray(num == den, dtype=bool)
    pending = np.arange(n)
    while pending.size:
        a = certain[pending].copy()
        unsure = np.flatnonzero(~a)
        if unsure.size:
            sel = pending[unsure]
            a[unsure] = rng.bernoulli(num[sel], den[sel])
        kk = k[pending]
        hit = np.flatnonzero(a & (kk > 1))
        if hit.size:
            a[hit] = rng.integers(kk[hit]) == 0
        k[pending[a]] += 1
        pending = pending[a]
    return np.asarray((k % 2) == 1, dtype=bool)


def _old_bernoulli_exp_neg(rng: SecureRandom, num: npt.NDArray[Any], den: npt.NDArray[Any]) -> Any:
    whole = num // den
    frac = num - whole * den
    result = _old_unit(rng, frac, den)
    need = np.asarray(whole, dtype=object if whole.dtype == object else np.int64)
    alive = result.copy()
    one = np.ones(1, dtype=np.int64)
    while True:
        idx = np.flatnonzero(alive & np.asarray(need > 0, dtype=bool))
        if idx.size == 0:
            break
        ok = _old_unit(rng, np.repeat(one, idx.size), np.repeat(one, idx.size))
        alive[idx] = ok
        need[idx] = need[idx] - 1
    return alive


def _old_geometric(rng: SecureRandom, n: int) -> Any:
    v = np.zeros(n, dtype=np.int64)
    pending = np.arange(n)
    ones = np.ones(n, dtype=np.int64)
    while pending.size:
        ok = _old_bernoulli_exp_neg(rng, ones[: pending.size], ones[: pending.size])
        v[pending[ok]] += 1
        pending = pending[ok]
    return v


def _old_laplace(t: int, size: int, rng: SecureRandom) -> Any:
    out = np.empty(size, dtype=np.int64)
    pending = np.arange(size)
    while pending.size:
        m = pending.size
        if t == 1:
            u = np.zeros(m, dtype=np.int64)
            d = np.ones(m, dtype=bool)
        else:
            u = rng.integers(t, m)
            d = _old_bernoulli_exp_neg(rng, u, np.full(m, t, dtype=np.int64))
        idx = np.flatnonzero(d)
        x = u[idx] + t * _old_geometric(rng, idx.size)
        b = rng.bits(idx.size)
        accept = ~(b & (x == 0))
        out[pending[idx[accept]]] = np.where(b, -x, x)[accept]
        keep = np.ones(m, dtype=bool)
        keep[idx[accept]] = False
        pending = pending[keep]
    return out


def old_discrete_gaussian(sigma: float, size: int, rng: SecureRandom) -> Any:
    sigma2: Fraction = effective_discrete_gaussian_sigma2(sigma)
    p, q = sigma2.numerator, sigma2.denominator
    t = math.isqrt(p // q) + 1
    den = 2 * p * t * t * q
    out = np.empty(size, dtype=np.int64)
    pending = np.arange(size)
    while pending.size:
        m = pending.size
        y = _old_laplace(t, m, rng)
        absy = np.abs(y)
        fits = int(absy.max(initial=0)) * t * q + p < _SQRT_SAFE and den < _INT64_SAFE
        if fits:
            a = absy * (t * q) - p
            c = _old_bernoulli_exp_neg(rng, a * a, np.full(m, den, dtype=np.int64))
        else:
            a = absy.astype(object) * (t * q) - p
            c = _old_bernoulli_exp_neg(rng, a * a, np.full(m, den, dtype=object))
        out[pending[c]] = y[c]
        pending = pending[~c]
    return out


# -- timing ------------------------------------------------------------------------------


def _ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def _numpy_rounded(gen: np.random.Generator, sigma: float, n: int) -> Any:
    return np.rint(gen.normal(0.0, sigma, n)).astype(np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rows and repeats")
    args = ap.parse_args()
    sigmas: list[tuple[str, float]] = [
        ("0.5", 0.5),
        ("1", 1.0),
        ("3.7", 3.7),
        ("200", 200.0),
        ("sqrt(9000001)", math.sqrt(9_000_001)),
        ("3000.3", 3000.3),
        ("2e5", 2e5),
    ]
    sizes = [651, 100_000]
    if args.quick:
        sigmas, sizes = sigmas[:5:2], [651]
    print("exact discrete Gaussian, ms per call (median); baseline: numpy normal, rounded")
    print(
        f"{'sigma':>14} {'n':>8} {'numpy':>8} {'before':>9} {'after':>8} "
        f"{'speed-up':>9} {'x numpy':>8}"
    )
    rows = []
    for label, sigma in sigmas:
        for n in sizes:
            big = n > 10_000
            reps_old = 3 if big else (5 if args.quick else 15)
            reps_new = 5 if big else (20 if args.quick else 60)
            rng = SecureRandom(1)
            gen = np.random.default_rng(1)
            base = _ms(partial(_numpy_rounded, gen, sigma, n), 50)
            old = _ms(partial(old_discrete_gaussian, sigma, n, rng), reps_old)
            new = _ms(partial(sample_discrete_gaussian, sigma, n, rng=rng), reps_new)
            rows.append((label, n, base, old, new))
            print(
                f"{label:>14} {n:>8,} {base:>8.3f} {old:>9.2f} {new:>8.3f} "
                f"{old / new:>8.1f}x {new / base:>7.0f}x",
                flush=True,
            )
    print()
    print("| sigma | n | numpy ms | before ms | after ms | speed-up | after / numpy |")
    print("|---|---|---|---|---|---|---|")
    for label, n, base, old, new in rows:
        print(
            f"| {label} | {n:,} | {base:.3f} | {old:.2f} | {new:.3f} | {old / new:.1f}x "
            f"| {new / base:.0f}x |"
        )


if __name__ == "__main__":
    main()
