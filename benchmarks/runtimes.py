"""CPU inference runtimes side by side, in one run, repeats interleaved:

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
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from _common import real_photos, write_photo_copies  # noqa: E402
from retrieval.collection.build import BuildOptions, build_index  # noqa: E402
from retrieval.embed import Embedder  # noqa: E402
from retrieval.models.load import DEFAULT_MODEL, load_model  # noqa: E402
from retrieval.models.weights import packaged_weights  # noqa: E402
from retrieval.runtimes.check import min_cosine  # noqa: E402
from retrieval.workers import usable_cores  # noqa: E402


def _torch_variant(model, kind: str):
    """A callable uint8 batch -> vectors for torch eager, channels_last or torch.compile (CPU)."""
    base = Embedder(model, "cpu", "torch")
    net = model.net.eval()
    if kind == "channels_last":
        net = net.to(memory_format=torch.channels_last)
    elif kind == "compile":
        net = torch.compile(net)

    @torch.inference_mode()
    def run(batch: torch.Tensor) -> np.ndarray:
        x = base.prep.normalise(batch)
        if kind == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        return net(x).float().numpy()
    return run


def _variants(model, do_compile: bool) -> dict:
    out = {"torch eager": _torch_variant(model, "eager"), "torch channels_last": _torch_variant(model, "channels_last")}
    if do_compile:
        out["torch.compile"] = _torch_variant(model, "compile")
    for label, runtime, precision in (("ONNX Runtime f32", "onnx", "f32"), ("OpenVINO f32", "openvino", "f32"),
                                      ("OpenVINO bf16", "openvino", "bf16")):
        embedder = Embedder(model, "cpu", runtime, precision)
        if embedder.runtime_used == runtime:
            out[label] = embedder
            if runtime == "openvino":  # the same network on parallel infer requests, as a build runs it
                out[f"{label} streams"] = lambda b, e=embedder: next(e.stream([(b, None)]))[0]
        else:
            print(f"  ({label}: not available, fell back to {embedder.runtime_used})")
    return out


def bare_forward(spec: str, batch_size: int, rounds: int, do_compile: bool) -> dict[str, tuple[float, float]]:
    """label -> (images/s, least cosine against torch eager)."""
    pretrained = spec != "mobilenetv2_100" or packaged_weights(spec) is not None
    model = load_model(spec, pretrained=pretrained)
    _, h, w = model.info.data_config["input_size"]
    photos = [Image.fromarray(a).convert("RGB") for a in real_photos().values()]
    prep = Embedder(model, "cpu", "torch").prep
    batch = torch.stack([prep.to_uint8(photos[i % len(photos)]) for i in range(batch_size)])
    runners = _variants(model, do_compile)
    reference = runners["torch eager"](batch)
    cosine, speed = {}, {k: [] for k in runners}
    for label, run in runners.items():
        t = time.perf_counter()
        cosine[label] = min_cosine(reference, run(batch))  # also the warm-up (and compile)
        if label == "torch.compile":
            print(f"  torch.compile: first batch (compiling) took {time.perf_counter() - t:.0f} s")
    for _ in range(rounds):  # interleaved: every runtime sees the same machine load
        for label, run in runners.items():
            t = time.perf_counter()
            run(batch)
            run(batch)
            speed[label].append(2 * batch_size / (time.perf_counter() - t))
    print(f"\nbare forward, {spec} ({'pretrained' if pretrained else 'random weights'}), batch {batch_size}, "
          f"{h}x{w}, {usable_cores()} cores")
    eager = statistics.median(speed["torch eager"])
    print(f"  {'runtime':24} {'images/s':>9} {'vs eager':>9} {'spread':>8} {'min cosine':>11}")
    for label in runners:
        med = statistics.median(speed[label])
        spread = (max(speed[label]) - min(speed[label])) / med
        print(f"  {label:24} {med:9.1f} {med / eager:9.2f} {spread:8.0%} {cosine[label]:11.5f}")
    return {label: (statistics.median(speed[label]), cosine[label]) for label in runners}


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the build's decode workers), every thread."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def preprocessing_cpu(folder: Path, model) -> float:
    """CPU ms per image of what a decode worker does (read, sha256, decode, resize, crop), one thread."""
    from retrieval.embed import _FileDataset
    paths = sorted(str(p) for p in folder.iterdir())
    dataset = _FileDataset(paths, Embedder(model, "cpu", "torch").prep)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    try:
        start = time.thread_time()
        for i in range(len(paths)):
            dataset[i]
        return 1000 * (time.thread_time() - start) / len(paths)
    finally:
        torch.set_num_threads(threads)


def build_speed(folder: Path, tmp: Path, runtimes: list[str], rounds: int, batch_size: int,
                device: str) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(--runtime -> images/s of each round, --runtime -> CPU ms per image of each round); "bare" is the
    default runtime's bare forward, interleaved."""
    n = len(list(folder.iterdir()))
    out: dict[str, list[float]] = {r: [] for r in [*runtimes, "bare"]}
    cpu: dict[str, list[float]] = {r: [] for r in [*runtimes, "bare"]}
    for r in runtimes:  # untimed: exports into the cache, as a user's first run does
        build_index([folder], tmp / f"warm-{r}", BuildOptions(batch_size=batch_size, runtime=r, device=device))
    default = Embedder(load_model(), device)
    photos = [Image.fromarray(a).convert("RGB") for a in real_photos().values()]
    batch = torch.stack([default.prep.to_uint8(photos[i % len(photos)]) for i in range(batch_size)])
    default(batch)
    list(default.stream((batch, None) for _ in range(2)))
    for i in range(rounds):
        # the bare forward at its best: pre-made batches streamed as the build streams them (OpenVINO runs
        # them on parallel infer requests; one after another for runtimes without a stream)
        c, t = _cpu_seconds(), time.perf_counter()
        list(default.stream((batch, None) for _ in range(8)))
        out["bare"].append(8 * batch_size / (time.perf_counter() - t))
        cpu["bare"].append(1000 * (_cpu_seconds() - c) / (8 * batch_size))
        for r in runtimes:
            c, t = _cpu_seconds(), time.perf_counter()
            report = build_index([folder], tmp / f"ix-{r}-{i}", BuildOptions(batch_size=batch_size, runtime=r,
                                                                            device=device))
            assert report.total == n, report
            out[r].append(n / (time.perf_counter() - t))
            cpu[r].append(1000 * (_cpu_seconds() - c) / n)
    return out, cpu


def query_latency(index: Path, photo: Path, runtimes: list[str], repeats: int) -> dict[str, float]:
    from retrieval.collection.api import Collection
    out = {}
    for r in runtimes:
        with Collection(index, runtime=r) as col:
            col.query([Image.open(photo)], k=10)  # warm
            times = []
            for _ in range(repeats):
                picture = Image.open(photo)
                t = time.perf_counter()
                col.query([picture], k=10)
                times.append(time.perf_counter() - t)
        out[r] = statistics.median(times) * 1000
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=24, help="copies of each of the 12 real photos (288)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also torch.compile (minutes to compile on 2 cores)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU figure (torch + AMP)")
    ap.add_argument("--skip-bare", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("RETR_CACHE", str(Path.home() / ".cache" / "retr"))
    print(f"torch {torch.__version__}, {usable_cores()} usable cores, device {args.device}, "
          f"export cache {os.environ['RETR_CACHE']}")
    bare = {}
    if not args.skip_bare and args.device == "cpu":
        for spec in (DEFAULT_MODEL, "mobilenetv2_100"):
            bare[spec] = bare_forward(spec, args.batch_size, args.rounds, args.compile)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "photos"
        n = write_photo_copies(folder, args.copies)
        runtimes = ["torch", "onnx", "openvino", "auto"] if args.device == "cpu" else ["auto"]
        speeds, cpu = build_speed(folder, tmp, runtimes, args.rounds, args.batch_size, args.device)
        default_used = Embedder(load_model(), args.device).runtime_used
        print(f"\nretr index build, {n} real photos (12 photos x {args.copies}, full size), default model, "
              f"batch {args.batch_size}, device {args.device}; auto chose {default_used}")
        print(f"  {'--runtime':10} {'median':>8} {'best':>8}  rounds (images/s)")
        med = {r: statistics.median(v) for r, v in speeds.items()}
        best = {r: max(v) for r, v in speeds.items()}
        for r, v in speeds.items():
            name = r if r != "bare" else f"({default_used} bare forward, interleaved)"
            print(f"  {name:10} {med[r]:8.1f} {best[r]:8.1f}  {', '.join(f'{x:.1f}' for x in v)}")
        if args.device == "cpu":
            print(f"  goal: default (auto) >= 5x --runtime torch: median {med['auto'] / med['torch']:.2f}x, "
                  f"best {best['auto'] / best['torch']:.2f}x")
        print(f"  goal: default build >= 0.85 of its bare forward: median {med['auto'] / med['bare']:.2f}, "
              f"best {best['auto'] / best['bare']:.2f}")
        prep = preprocessing_cpu(folder, load_model())
        fwd = statistics.median(cpu["bare"])
        print(f"\nCPU per image (every thread and decode worker; medians): bare forward {fwd:.2f} ms, "
              + ", ".join(f"build --runtime {r} {statistics.median(cpu[r]):.2f} ms" for r in runtimes))
        print(f"  a decode worker's share (read, sha256, decode, resize, crop; one thread): {prep:.2f} ms; "
              f"with every core busy all the time the build can reach at most {fwd / (fwd + prep):.2f} "
              f"of the bare forward")
        latency = query_latency(tmp / "ix-auto-0", folder / "coffee-000.jpg", runtimes, repeats=15)
        print("\nsingle-image query latency, Python API (Collection.query, k=10, median of 15)")
        for r, ms in latency.items():
            print(f"  {r:10} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
