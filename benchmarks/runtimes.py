"""CPU inference runtimes side by side, in one run, repeats interleaved, every measurement in a fresh
process (as each `retr` command is one; idle OpenMP threads that torch or a runtime leaves spinning would
otherwise slow whatever runs next in the same process):

1. bare forward images/s (pre-made uint8 batches, normalisation included) per runtime for the default model
   and mobilenetv2_100: torch eager NCHW, torch channels_last, torch.compile (--compile), ONNX Runtime f32,
   OpenVINO f32, OpenVINO bf16 -- and the least cosine of each against torch eager;
2. end-to-end `retr index build` images/s (scan, read, decode, resize, forward, catalog and faiss writes)
   over the same 288 real photos with --runtime torch, onnx, openvino and auto (the default), and the goals:
   default >= 5x torch, default >= 0.85 of the default runtime's bare forward;
3. single-image query latency in the Python API (retrieval.Collection) per runtime.

    nice -n 5 .venv/bin/python benchmarks/runtimes.py [--copies 24] [--rounds 3] [--compile] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from _common import cpu_seconds, real_photos, run_child, write_photo_copies  # noqa: E402
from retrieval.collection.build import BuildOptions, build_index  # noqa: E402
from retrieval.runtimes.settings import InferenceSettings  # noqa: E402
from retrieval.embed import Embedder  # noqa: E402
from retrieval.models.load import DEFAULT_MODEL, load_model  # noqa: E402
from retrieval.models.weights import packaged_weights  # noqa: E402
from retrieval.runtimes.check import min_cosine  # noqa: E402
from retrieval.workers import usable_cores  # noqa: E402


def _torch_variant(model, kind: str):
    """A callable uint8 batch -> vectors for torch eager, channels_last or torch.compile (CPU)."""
    cfg = model.info.data_config
    mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, -1, 1, 1)
    net = model.net.eval()
    if kind == "channels_last":
        net = net.to(memory_format=torch.channels_last)
    elif kind == "compile":
        net = torch.compile(net)

    @torch.inference_mode()
    def run(batch: np.ndarray) -> np.ndarray:
        x = (torch.from_numpy(np.ascontiguousarray(batch)).float() / 255.0 - mean) / std  # as TorchSession does
        if kind == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        return net(x).float().numpy()
    return run


LABELS = {  # bare-table row -> (runtime, precision, streamed); torch rows are _torch_variant kinds
    "torch eager": ("eager", "", False), "torch channels_last": ("channels_last", "", False),
    "torch.compile": ("compile", "", False), "ONNX Runtime f32": ("onnx", "f32", False),
    "OpenVINO f32": ("openvino", "f32", False), "OpenVINO f32 streams": ("openvino", "f32", True),
    "OpenVINO bf16": ("openvino", "bf16", False), "OpenVINO bf16 streams": ("openvino", "bf16", True),
}


def _bare_model(spec: str):
    pretrained = spec != "mobilenetv2_100" or packaged_weights(spec) is not None
    return load_model(spec, pretrained=pretrained), pretrained


def _photo_batch(prep, batch_size: int) -> np.ndarray:
    photos = [Image.fromarray(a).convert("RGB") for a in real_photos().values()]
    return prep.to_batch([photos[i % len(photos)] for i in range(batch_size)])


# --- what one child process measures (each measurement in a fresh process, as each `retr` run is one: torch's
# or a runtime's idle OpenMP threads left spinning by one measurement never slow the next) ---

def child_bare(spec: str, label: str, batch_size: int, batches: int, vectors: str) -> dict:
    """images/s and CPU ms per image of ``batches`` pre-made batches on one runtime; its vectors to ``vectors``."""
    model, _ = _bare_model(spec)
    kind, precision, streamed = LABELS[label]
    if kind in ("eager", "channels_last", "compile"):
        run, used = _torch_variant(model, kind), "torch"
        prep = Embedder(model, InferenceSettings(device="cpu", runtime="torch")).prep
    else:
        embedder = Embedder(model, InferenceSettings(device="cpu", runtime=kind, precision=precision))
        used, prep = embedder.runtime_used, embedder.prep
        # streamed: ``batches`` batches on parallel infer requests, as a build runs them
        run = (lambda b: [v for v, _ in embedder.stream((b, None) for _ in range(batches))][0]) if streamed \
            else embedder
    if used != ("torch" if kind in ("eager", "channels_last", "compile") else kind):
        return {"fell_back": used}
    batch = _photo_batch(prep, batch_size)
    t = time.perf_counter()
    np.save(vectors, run(batch))  # also the warm-up (and compile)
    warm = time.perf_counter() - t
    c, t = cpu_seconds(), time.perf_counter()
    for _ in range(1 if streamed else batches):
        run(batch)
    dt = time.perf_counter() - t
    return {"images_s": batches * batch_size / dt, "cpu_ms": 1000 * (cpu_seconds() - c) / (batches * batch_size),
            "warm_s": warm}


def child_build(folder: str, out: str, runtime: str, batch_size: int, device: str) -> dict:
    n = len(os.listdir(folder))
    c, t = cpu_seconds(), time.perf_counter()
    settings = InferenceSettings(device=device, runtime=runtime, batch_size=batch_size)
    report = build_index([folder], out, BuildOptions(inference=settings))
    dt = time.perf_counter() - t
    assert report.total == n, report
    return {"images_s": n / dt, "cpu_ms": 1000 * (cpu_seconds() - c) / n,
            "runtime_used": Embedder(load_model(), settings, lazy=True).runtime_used}


def child_stream(batch_size: int, batches: int, device: str, streamed: bool) -> dict:
    """The default runtime's bare forward on pre-made batches: one batch a call, as the bare tables measure
    it, or (``streamed``) at its best, streamed as a build streams them."""
    default = Embedder(load_model(), InferenceSettings(device=device))
    batch = _photo_batch(default.prep, batch_size)

    def run(n: int) -> None:
        if streamed:
            list(default.stream((batch, None) for _ in range(n)))
        else:
            for _ in range(n):
                default(batch)
    run(2)
    c, t = cpu_seconds(), time.perf_counter()
    run(batches)
    return {"images_s": batches * batch_size / (time.perf_counter() - t),
            "cpu_ms": 1000 * (cpu_seconds() - c) / (batches * batch_size), "runtime_used": default.runtime_used}


def child_prep(folder: str) -> dict:
    """CPU ms per image of what a decode worker does (read, sha256, decode, resize, crop), one thread."""
    from retrieval.images.preprocess import prepare_file
    paths = sorted(str(p) for p in Path(folder).iterdir())
    prep = Embedder(load_model(), InferenceSettings(device="cpu", runtime="torch"), lazy=True).prep
    start = time.thread_time()
    for path in paths:
        prepare_file(path, prep)
    return {"cpu_ms": 1000 * (time.thread_time() - start) / len(paths)}


def child_query(index: str, photo: str, runtime: str, repeats: int) -> dict:
    from retrieval.collection.api import Collection
    with Collection(index, inference=InferenceSettings(runtime=runtime)) as col:
        col.query([Image.open(photo)], k=10)  # warm
        times = []
        for _ in range(repeats):
            picture = Image.open(photo)
            t = time.perf_counter()
            col.query([picture], k=10)
            times.append(time.perf_counter() - t)
    return {"ms": statistics.median(times) * 1000}


CHILDREN = {"bare": child_bare, "build": child_build, "stream": child_stream, "prep": child_prep,
            "query": child_query}


def in_child(kind: str, **kwargs) -> dict:
    return run_child(__file__, kind, **kwargs)


def bare_forward(spec: str, batch_size: int, rounds: int, do_compile: bool, tmp: Path) -> None:
    """The bare-forward table for one model: every row in its own process, rounds interleaved."""
    model, pretrained = _bare_model(spec)
    _, h, w = model.info.data_config["input_size"]
    labels = [x for x in LABELS if do_compile or x != "torch.compile"]
    speed: dict[str, list[float]] = {x: [] for x in labels}
    for r in range(rounds):
        for label in labels:
            got = in_child("bare", spec=spec, label=label, batch_size=batch_size, batches=8,
                           vectors=str(tmp / f"{label}.npy"))
            if "fell_back" in got:
                speed.pop(label, None)
                if r == 0:
                    print(f"  ({label}: not available, fell back to {got['fell_back']})")
                continue
            speed[label].append(got["images_s"])
            if label == "torch.compile" and r == 0:
                print(f"  torch.compile: first batch (compiling) took {got['warm_s']:.0f} s")
    reference = np.load(tmp / "torch eager.npy")
    print(f"\nbare forward, {spec} ({'pretrained' if pretrained else 'random weights'}), batch {batch_size}, "
          f"{h}x{w}, {usable_cores()} cores (8 batches a round, each row in its own process)")
    eager = statistics.median(speed["torch eager"])
    print(f"  {'runtime':24} {'images/s':>9} {'vs eager':>9} {'spread':>8} {'min cosine':>11}")
    for label, v in speed.items():
        med = statistics.median(v)
        cosine = min_cosine(reference, np.load(tmp / f"{label}.npy"))
        print(f"  {label:24} {med:9.1f} {med / eager:9.2f} {(max(v) - min(v)) / med:8.0%} {cosine:11.5f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=24, help="copies of each of the 12 real photos (288)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also torch.compile (minutes to compile on 2 cores)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU figure (torch + AMP)")
    ap.add_argument("--skip-bare", action="store_true")
    ap.add_argument("--builds", default="torch,onnx,openvino,auto",
                    help="the --runtime values to build with, comma-separated (the 5x goal needs torch and auto)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("RETR_CACHE", str(Path.home() / ".cache" / "retr"))
    if args.child:
        task = json.loads(args.child)
        print(json.dumps(CHILDREN[task.pop("kind")](**task)))
        return
    print(f"torch {torch.__version__}, {usable_cores()} usable cores, device {args.device}, "
          f"export cache {os.environ['RETR_CACHE']}; every measurement in a fresh process")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not args.skip_bare and args.device == "cpu":
            for spec in (DEFAULT_MODEL, "mobilenetv2_100"):
                bare_forward(spec, args.batch_size, args.rounds, args.compile, tmp)

        folder = tmp / "photos"
        n = write_photo_copies(folder, args.copies)
        runtimes = [r for r in args.builds.split(",") if r] if args.device == "cpu" else ["auto"]
        if "auto" not in runtimes:
            raise SystemExit("--builds must include auto (the default runtime, which the goals are about)")
        build = {"batch_size": args.batch_size, "device": args.device, "folder": str(folder)}
        for r in runtimes:  # untimed: exports into the cache, as a user's first run does
            in_child("build", out=str(tmp / f"warm-{r}"), runtime=r, **build)
        speeds: dict[str, list[float]] = {r: [] for r in [*runtimes, "bare", "streamed"]}
        cpu: dict[str, list[float]] = {r: [] for r in [*runtimes, "bare", "streamed"]}
        for i in range(args.rounds):  # interleaved: every build sees the same machine load
            for ref in ("bare", "streamed"):
                got = in_child("stream", batch_size=args.batch_size, batches=16, device=args.device,
                               streamed=ref == "streamed")
                default_used = got["runtime_used"]
                speeds[ref].append(got["images_s"])
                cpu[ref].append(got["cpu_ms"])
            for r in runtimes:
                got = in_child("build", out=str(tmp / f"ix-{r}-{i}"), runtime=r, **build)
                speeds[r].append(got["images_s"])
                cpu[r].append(got["cpu_ms"])
        print(f"\nretr index build, {n} real photos (12 photos x {args.copies}, full size), default model, "
              f"batch {args.batch_size}, device {args.device}; auto chose {default_used}; each build in its own "
              f"process (images/s of the build_index call)")
        print(f"  {'--runtime':10} {'median':>8} {'best':>8}  rounds (images/s)")
        med = {r: statistics.median(v) for r, v in speeds.items()}
        best = {r: max(v) for r, v in speeds.items()}
        for r, v in speeds.items():
            name = {"bare": f"({default_used} bare forward, batch {args.batch_size} a call, interleaved)",
                    "streamed": f"({default_used} bare forward, streamed, interleaved)"}.get(r, r)
            print(f"  {name:10} {med[r]:8.1f} {best[r]:8.1f}  {', '.join(f'{x:.1f}' for x in v)}")
        if "torch" in runtimes and args.device == "cpu":
            print(f"  goal: default (auto) >= 5x --runtime torch: median {med['auto'] / med['torch']:.2f}x, "
                  f"best {best['auto'] / best['torch']:.2f}x")
        print(f"  goal: default build >= 0.85 of its bare forward (batch {args.batch_size} a call, as the bare "
              f"tables measure it): median {med['auto'] / med['bare']:.2f}, best {best['auto'] / best['bare']:.2f}")
        print(f"  the same against the streamed bare forward (the fastest way the runtime runs): median "
              f"{med['auto'] / med['streamed']:.2f}, best {best['auto'] / best['streamed']:.2f}")
        prep = in_child("prep", folder=str(folder))["cpu_ms"]
        fwd = statistics.median(cpu["streamed"])
        print("\nCPU per image (every thread and decode worker; medians): bare forward "
              f"{statistics.median(cpu['bare']):.2f} ms, streamed {fwd:.2f} ms, "
              + ", ".join(f"build --runtime {r} {statistics.median(cpu[r]):.2f} ms" for r in runtimes))
        print(f"  a decode worker's share (read, sha256, decode, resize, crop; one thread): {prep:.2f} ms; "
              f"with every core busy all the time the build can reach at most {fwd / (fwd + prep):.2f} "
              f"of the streamed bare forward")
        print("\nsingle-image query latency, Python API (Collection.query, k=10, median of 15; each in its own "
              "process)")
        for r in runtimes:
            got = in_child("query", index=str(tmp / "ix-auto-0"), photo=str(folder / "coffee-000.jpg"),
                           runtime=r, repeats=15)
            print(f"  {r:10} {got['ms']:8.1f} ms")


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
