"""Hashing throughput: retr's hashing (reduced-size JPEG decode, one read per file, worker processes)
against a plain `imagehash.phash(Image.open(p))` loop on the same files, side by side.

Files: real photos (scikit-image, scikit-learn) upscaled to camera-like sizes (about 12 and 3 megapixels)
and saved as JPEG, the common case in photo libraries.

    nice -n 10 .venv/bin/python benchmarks/dedupe_hash_throughput.py [--files 48]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval.dedupe.parallel_hashing import HashJob, hash_files  # noqa: E402
from retrieval.workers import process_pool_workers as default_workers  # noqa: E402


def make_files(folder: Path, n: int) -> list[str]:
    from skimage import data
    from sklearn.datasets import load_sample_images
    photos = [Image.fromarray(x).convert("RGB") for x in
              (data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), *load_sample_images().images)]
    sizes = [(4000, 3000), (2000, 1500)]
    paths = []
    for k in range(n):
        img = photos[k % len(photos)].resize(sizes[k % 2], Image.BICUBIC)
        p = folder / f"photo_{k:03d}.jpg"
        img.save(p, quality=90)
        paths.append(str(p))
    return paths


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=48)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_files(Path(tmp), args.files)
        mp = sum(Image.open(p).size[0] * Image.open(p).size[1] for p in paths) / len(paths) / 1e6
        print(f"{len(paths)} JPEG files, {mp:.1f} megapixels on average, "
              f"{sum(os.path.getsize(p) for p in paths) / len(paths) / 1e6:.1f} MB each; "
              f"{default_workers()} cores available")
        for p in paths[:4]:  # warm the page cache for both sides alike
            Path(p).read_bytes()
        t_plain, plain = timed(lambda: [imagehash.phash(Image.open(p)) for p in paths])
        t_one, ours = timed(lambda: list(hash_files(paths, HashJob("phash"), workers=1)))
        t_full, _ = timed(lambda: list(hash_files(paths, HashJob("phash", draft=False), workers=1)))
        workers = default_workers()
        t_par, _ = timed(lambda: list(hash_files(paths, HashJob("phash"), workers=workers, chunk=4)))
        diffs = [int(np.bitwise_count(np.frombuffer(r.bits, np.uint8)
                                      ^ np.packbits(np.asarray(h.hash).ravel())).sum()) for r, h in zip(ours, plain)]
        rate = lambda t: len(paths) / t  # noqa: E731
        print(f"plain imagehash.phash(Image.open(p)) loop, 1 process : {rate(t_plain):7.1f} img/s")
        print(f"retr, full decode (draft off), 1 process           : {rate(t_full):7.1f} img/s  "
              f"({t_plain / t_full:.2f}x)  also computes sha256")
        print(f"retr, reduced-size JPEG decode, 1 process          : {rate(t_one):7.1f} img/s  "
              f"({t_plain / t_one:.2f}x per core)")
        print(f"retr, reduced-size JPEG decode, {workers} processes        : {rate(t_par):7.1f} img/s  "
              f"({t_plain / t_par:.2f}x total)")
        print(f"hash agreement with the plain loop: max {max(diffs)} bits differ, mean {np.mean(diffs):.2f} "
              f"(default phash radius 12)")


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
