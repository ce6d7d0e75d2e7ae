"""The settings behind a CPU build's speed, each against its alternative, side by side in one run:

1. OpenVINO's stream (pre-made batches of 32, the default model): the throughput compilation with a fixed
   batch of one image against the dynamic batch, and 3 infer requests per stream against 2 (images/s and
   CPU ms per image, all threads);
2. `retr index build` of the same real photos: two decode workers against one, and the heap frozen while
   the workers run (``frozen_heap``) against the garbage collector passing over every object.

Every measurement runs in a fresh process (as each `retr` command is one), rounds interleaved.

    nice -n -15 .venv/bin/python benchmarks/build_settings.py [--copies 96] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from _common import cpu_seconds, run_child, write_photo_copies  # noqa: E402

STREAMS = {"fixed shape, 3 requests a stream (default)": (True, 3),
           "dynamic batch, 3 requests a stream": (False, 3), "fixed shape, 2 requests a stream": (True, 2)}
BUILDS = {"default (2 workers, frozen heap)": (2, True), "one decode worker": (1, True),
          "heap not frozen": (2, False)}


def child_stream(fixed: bool, requests: int, batches: int) -> dict:
    import retrieval.runtimes.openvino as ov_runtime
    from retrieval.embed import Embedder
    from retrieval.models.load import load_model
    from retrieval.runtimes.settings import InferenceSettings
    from runtimes import _photo_batch
    ov_runtime.REQUESTS_PER_STREAM = requests
    if not fixed:
        ov_runtime._OpenVINOSession.fixed_throughput_batch = False
    embedder = Embedder(load_model(), InferenceSettings(device="cpu"))
    assert embedder.runtime_used == "openvino", embedder.runtime_used
    batch = _photo_batch(embedder.prep, 32)
    list(embedder.stream((batch, None) for _ in range(2)))
    c, t = cpu_seconds(), time.perf_counter()
    list(embedder.stream((batch, None) for _ in range(batches)))
    n = 32 * batches
    return {"images_s": n / (time.perf_counter() - t), "cpu_ms": 1000 * (cpu_seconds() - c) / n}


def child_build(folder: str, out: str, workers: int, frozen: bool) -> dict:
    import contextlib

    import retrieval.workers as pool
    from retrieval.collection.build import BuildOptions, build_index
    from retrieval.runtimes.settings import InferenceSettings
    if not frozen:
        pool.frozen_heap = contextlib.nullcontext
    n = len(list(Path(folder).iterdir()))
    c, t = cpu_seconds(), time.perf_counter()
    report = build_index([folder], out, BuildOptions(inference=InferenceSettings(batch_size=32, workers=workers)))
    dt = time.perf_counter() - t
    assert report.total == n, report
    return {"images_s": n / dt, "cpu_ms": 1000 * (cpu_seconds() - c) / n}


def in_child(kind: str, **kwargs) -> dict:
    return run_child(__file__, kind, **kwargs)


def table(title: str, got: dict[str, list[dict]]) -> None:
    print(f"\n{title}")
    print(f"  {'setting':50} {'images/s':>9} {'CPU ms/img':>11}  rounds (images/s)")
    base = None
    for name, runs in got.items():
        speed = statistics.median(r["images_s"] for r in runs)
        cpu = statistics.median(r["cpu_ms"] for r in runs)
        base = base or (speed, cpu)
        note = "" if (speed, cpu) == base else f"   ({speed / base[0]:.2f}x the first, CPU {cpu / base[1] - 1:+.0%})"
        rounds = ", ".join(f"{r['images_s']:.1f}" for r in runs)
        print(f"  {name:50} {speed:9.1f} {cpu:11.2f}  {rounds}{note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=96, help="copies of each of the 12 real photos")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        task = json.loads(args.child)
        print(json.dumps({"stream": child_stream, "build": child_build}[task.pop("kind")](**task)))
        return
    streams: dict[str, list[dict]] = {k: [] for k in STREAMS}
    builds: dict[str, list[dict]] = {k: [] for k in BUILDS}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        n = write_photo_copies(tmp / "photos", args.copies)
        in_child("build", folder=str(tmp / "photos"), out=str(tmp / "warm"), workers=2, frozen=True)
        for r in range(args.rounds):
            for name, (fixed, requests) in STREAMS.items():
                streams[name].append(in_child("stream", fixed=fixed, requests=requests, batches=24))
            for i, (name, (workers, frozen)) in enumerate(BUILDS.items()):
                builds[name].append(in_child("build", folder=str(tmp / "photos"), out=str(tmp / f"ix-{r}-{i}"),
                                             workers=workers, frozen=frozen))
    table("OpenVINO stream, default model, 24 batches of 32 pre-made images (medians)", streams)
    table(f"retr index build, {n} real photos, default model and runtime (medians)", builds)


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
