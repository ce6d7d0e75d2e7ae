"""Near-duplicate search scaling: every pair within Hamming radius 8 among 1,000,000 random 64-bit
hashes with planted near-duplicates, against a numpy brute force on 100,000 hashes (extrapolated), and
faiss's flat scan and IndexBinaryMultiHash on the same 100,000.

    nice -n 10 .venv/bin/python benchmarks/dedupe_search_scaling.py [--n 1000000] [--planted 1000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index.hamming import pairs_within, plan  # noqa: E402

RADIUS = 8


def make_codes(n: int, planted: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Random 64-bit codes; ``planted`` of them are copies of others with 1..RADIUS bits flipped."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    src = rng.choice(n // 2, planted, replace=False)
    dst = n // 2 + rng.choice(n - n // 2, planted, replace=False)
    for s, d in zip(src, dst):
        bits = np.unpackbits(codes[s])
        flip = rng.choice(64, rng.integers(1, RADIUS + 1), replace=False)
        bits[flip] ^= 1
        codes[d] = np.packbits(bits)
    return codes, {(int(min(s, d)), int(max(s, d))) for s, d in zip(src, dst)}


def numpy_brute_force(codes: np.ndarray, radius: int, block: int = 64) -> int:
    """All pairs within radius by comparing every pair (blocked so memory stays small)."""
    words = codes.view(np.uint64).ravel()
    found = 0
    for start in range(0, len(words), block):
        d = np.bitwise_count(words[start:start + block, None] ^ words[None, :])
        i, j = np.nonzero(d <= radius)
        found += int(((start + i) < j).sum())
    return found


CPU = {"last": 0.0}


def timed(fn):
    """Wall seconds (and, in CPU["last"], this process's CPU seconds: the machine is shared)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    CPU["last"] = time.process_time() - c
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--planted", type=int, default=1000)
    ap.add_argument("--small", type=int, default=100_000)
    args = ap.parse_args()

    codes, planted = make_codes(args.n, args.planted)
    p = plan(args.n, args.n, 64, RADIUS)
    print(f"{args.n:,} random 64-bit hashes, {len(planted)} planted near-duplicate pairs, radius {RADIUS}")
    print(f"plan: {p.method} ({p.nhash} slices of {p.b} bits, up to {p.nflip} flipped bits per probe)")
    t, (i, j, d) = timed(lambda: pairs_within(codes, RADIUS))
    got = set(zip(i.tolist(), j.tolist()))
    missing = planted - got
    print(f"retr pairs_within (auto)        : {t:7.1f} s wall, {CPU['last']:.1f} s CPU for {args.n:,}; {len(got)} pairs found, "
          f"planted found {len(planted) - len(missing)}/{len(planted)}")

    small, small_planted = make_codes(args.small, args.planted // 10, seed=1)
    print(f"\n{args.small:,} hashes, side by side:")
    t_np, n_np = timed(lambda: numpy_brute_force(small, RADIUS))
    scale = (args.n / args.small) ** 2
    print(f"numpy brute force               : {t_np:7.1f} s wall, {CPU['last']:.1f} s CPU ({n_np} pairs); "
          f"extrapolated to {args.n:,}: {t_np * scale:,.0f} s")
    for method in ("mih", "flat", "multihash"):
        t_m, (a, b, _) = timed(lambda: pairs_within(small, RADIUS, method=method))
        name = {"mih": "retr mih (vectorised MIH)", "flat": "faiss IndexBinaryFlat range",
                "multihash": "faiss IndexBinaryMultiHash"}[method]
        print(f"{name:32}: {t_m:7.1f} s wall, {CPU['last']:.1f} s CPU ({len(a)} pairs; {t_np / t_m:5.1f}x numpy)")
    print(f"\nretr at {args.n:,} vs numpy brute force extrapolated: {t_np * scale / t:,.0f}x faster")


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
