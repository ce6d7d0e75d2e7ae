"""`retr dedupe` at scale: 100,000 images (variants of real photos), wall time and peak memory of one run.

The pictures are the 3 x 3 tiles of the real photos that benchmarks/dedupe_quality.py collects (its
originals and real distractors under bench-out/dedupe-verified; run it first): each tile is one picture,
saved with edited versions drawn from that benchmark's edits (crop, rotation, resize, tone, text, JPEG,
all combined) until there are ``--images`` files. The run is the default, verified `retr dedupe FOLDER`
in a child process, so its peak resident memory is its own; every stage is sub-quadratic (hash range
search, an HNSW graph of thumbnails beyond 20,000 images, keypoint buckets, verification of the pairs
the star groups need).

    nice -n 5 .venv/bin/python benchmarks/dedupe_scale.py [--images 100000] [--workers 2]
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "bench-out" / "dedupe-verified"
OUT = ROOT / "bench-out" / "dedupe-scale"


def _tiles(path: Path) -> list:
    from PIL import Image
    img = Image.open(path).convert("RGB")
    w, h = img.size
    return [img.crop((w * i // 3, h * j // 3, w * (i + 1) // 3, h * (j + 1) // 3)) for j in range(3) for i in range(3)]


def _write(job: tuple[int, str, int, str]) -> int:
    """Write one source photo's tiles and their versions: (first picture number, source, versions, folder)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from dedupe_verified import KINDS, version
    first, source, versions, folder = job
    rng = np.random.default_rng(first)
    n = 0
    for t, tile in enumerate(_tiles(Path(source))):
        if min(tile.size) < 64:
            continue
        tile.save(Path(folder) / f"p{first + t:05d}_v00.jpg", quality=92)
        for v in range(1, versions):
            edited, q = version(tile, KINDS[int(rng.integers(len(KINDS)))], rng)
            edited.save(Path(folder) / f"p{first + t:05d}_v{v:02d}.jpg", quality=q)
        n += versions
    return n


def build(n_images: int, workers: int) -> int:
    sources = sorted(p for half in ("calibrate", "test") for p in (SOURCE / half).glob("*.jpg")
                     if "__original" in p.name or (p.name.startswith("d") and "flat_" not in p.name))
    if not sources:
        raise SystemExit(f"no photos under {SOURCE}: run benchmarks/dedupe_quality.py first")
    versions = int(np.ceil(n_images / (9 * len(sources))))
    folder = OUT / "images"
    if folder.exists() and len(list(folder.glob("*.jpg"))) >= n_images:
        return len(list(folder.glob("*.jpg")))
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(9 * k, str(p), versions, str(folder)) for k, p in enumerate(sources)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        total = 0
        for n in pool.imap_unordered(_write, jobs):
            total += n
            if total >= n_images:
                break
    return len(list(folder.glob("*.jpg")))


CHILD = """
import sys, time, json
sys.path.insert(0, {root!r})
from retrieval.dedupe.options import DedupeOptions
from retrieval.dedupe.run import dedupe_paths
t = time.perf_counter()
res, _ = dedupe_paths([{folder!r}], DedupeOptions(), workers={workers})
print(json.dumps({{"seconds": time.perf_counter() - t, "images": res.n_images, "groups": len(res.groups),
                  "duplicates": res.n_duplicates, "similar_groups": len(res.similar), "pairs": res.verified_pairs,
                  "errors": len(res.errors)}}))
"""


class _TreeMemory:
    """The peak, sampled every 0.2 s, of the summed proportional set size (PSS: a page shared by n processes
    counts 1/n in each) of a process and its descendants: the memory a run with worker processes takes."""

    def __init__(self, pid: int):
        import threading
        self.pid, self.peak_mib, self._done = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            for task in Path(f"/proc/{p}/task").glob("*/children"):
                try:
                    todo += [int(c) for c in task.read_text().split()]
                except OSError:
                    pass
        return out

    def _run(self) -> None:
        while not self._done.wait(0.2):
            total = 0
            for p in self._tree():
                try:
                    for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
                except OSError:
                    pass
            self.peak_mib = max(self.peak_mib, total / 1024)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    t = time.perf_counter()
    n = build(args.images, args.workers)
    print(f"{n} images under {OUT / 'images'} (built or reused in {time.perf_counter() - t:.0f}s)", flush=True)
    code = CHILD.format(root=str(ROOT), folder=str(OUT / "images"), workers=args.workers)
    t = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree = _TreeMemory(child.pid)
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - t
    tree.stop()
    proc = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "the run failed")
    import json
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    print(f"retr dedupe (default, verified) on {data['images']} images: {wall:.0f}s wall "
          f"({data['images'] / wall:.0f} images/s), peak RSS {peak:,.0f} MiB; {data['duplicates']} duplicates in "
          f"{data['groups']} groups, {data['similar_groups']} similar groups, {data['pairs']} pairs verified, "
          f"{data['errors']} unreadable; the run's processes together (proportional set size, its worker processes' "
          f"shared pages counted once) at most {tree.peak_mib:,.0f} MiB")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import record_result
    with record_result(__file__):
        main()
