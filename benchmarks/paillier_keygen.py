"""Threshold Paillier key generation: dealer-free (Boneh-Franklin) against the dealer.

For each modulus size and three key holders: the dealer baseline (OpenSSL primes, then the
split of ``d``: ``deal_threshold_keys``) and dealer-free generation (all parties run in this
one process, so the time is the sum of every party's work; run at separate key holders the
wall clock is about a third, plus network rounds). Reported: seconds, the ratio to the
dealer measured in the same run, candidate moduli tried, candidates that reached the
biprimality test, bytes of protocol messages per party, and the cost of one partial
decryption with each kind of share (dealer-free shares are wider exponents). Times are
wall-clock seconds; trial counts are geometric, so single runs vary by a factor of a few.

    python benchmarks/paillier_keygen.py                    # 1024-bit x3, 2048-bit x1
    python benchmarks/paillier_keygen.py --bits 1024 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tutela.he import threshold as th
from tutela.he.keygen import KeyGenMessage, KeyGenParams, KeyGenParty, run_parties

HOLDERS = 3


def _dealer(bits: int) -> tuple[float, th.KeyShare, th.PaillierPublicKey]:
    t = time.perf_counter()
    pk, shares = th.deal_threshold_keys(HOLDERS, key_bits=bits)
    return time.perf_counter() - t, shares[0], pk


def _distributed(bits: int) -> tuple[float, int, int, float, th.KeyShare]:
    params = KeyGenParams(key_bits=bits)
    _ = params.modulus_field, params.key_field  # public field primes: computed once, cached
    parties = [KeyGenParty(i, HOLDERS, params=params, session=b"bench") for i in range(HOLDERS)]
    sent = [0]

    def count(messages: list[KeyGenMessage]) -> list[KeyGenMessage]:
        sent[0] += sum(sum((v.bit_length() + 7) // 8 for v in m.values) for m in messages)
        return messages

    t = time.perf_counter()
    run_parties(parties, relay=count)
    elapsed = time.perf_counter() - t
    p0 = parties[0]
    return elapsed, p0.trials, p0.trials_tested, sent[0] / HOLDERS, p0.key_share()


def _partial_seconds(share: th.KeyShare) -> float:
    pk = share.public_key
    agg = th.aggregate(pk, [th.encrypt_update(pk, np.ones(pk.slots(th.PackingParams())))])
    t = time.perf_counter()
    for _ in range(5):
        th.partial_decrypt(share, agg)
    return (time.perf_counter() - t) / 5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--repeats", type=int, nargs="+", default=[3, 1])
    args = ap.parse_args()
    repeats = args.repeats + [args.repeats[-1]] * (len(args.bits) - len(args.repeats))
    print(f"{HOLDERS} key holders; dealer = deal_threshold_keys (OpenSSL primes), same run\n")
    head = (
        "| bits | run | dealer s | dealer-free s | x dealer | candidates | biprimality tests "
        "| KiB sent per party | partial dec. x dealer |"
    )
    print(head)
    print("|" + "---|" * 9)
    for bits, reps in zip(args.bits, repeats, strict=True):
        ratios = []
        for r in range(reps):
            dealer_s, dealer_share, _ = _dealer(bits)
            dist_s, trials, tested, sent, share = _distributed(bits)
            part = _partial_seconds(share) / _partial_seconds(dealer_share)
            ratios.append(dist_s / dealer_s)
            print(
                f"| {bits} | {r + 1} | {dealer_s:.3f} | {dist_s:.1f} | {dist_s / dealer_s:.0f}x "
                f"| {trials} | {tested} | {sent / 1024:.0f} | {part:.2f}x |",
                flush=True,
            )
        if reps > 1:
            print(f"| {bits} | median | | | {statistics.median(ratios):.0f}x | | | | |")


if __name__ == "__main__":
    main()
