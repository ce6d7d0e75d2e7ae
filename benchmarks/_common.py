"""Helpers shared by the benchmark scripts (not part of the package)."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def timer(out: dict, key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    out[key] = time.perf_counter() - start


def real_photos() -> dict[str, np.ndarray]:
    """Full-size freely licensed photos available offline (scikit-image, scikit-learn)."""
    import skimage.data as d
    from sklearn.datasets import load_sample_images
    out = {n: getattr(d, n)() for n in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                                         "retina", "brick", "gravel", "camera", "coins")}
    for name, img in zip(("china", "flower"), load_sample_images().images):
        out[name] = img
    return out


def clustered_unit_vectors(n: int, dim: int, *, centres: int = 1000, noise: float = 0.35,
                           seed: int = 0) -> np.ndarray:
    """Vectors shaped like real embeddings: a mixture of many clusters on the unit sphere."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = c[rng.integers(0, centres, m)] + noise / np.sqrt(dim) * rng.standard_normal((m, dim)).astype(np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def write_photo_copies(folder: Path, copies: int) -> int:
    """``copies`` JPEG copies of each real photo in ``folder`` (made here); how many files were written."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in real_photos().items():
        img = Image.fromarray(arr).convert("RGB")
        for i in range(copies):
            img.save(folder / f"{name}-{i:03}.jpg", quality=90)
    return len(list(folder.iterdir()))


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (decode workers), every thread."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_child(script: str, kind: str, **kwargs) -> dict:
    """Run ``script --child {"kind": kind, **kwargs}`` in a fresh Python process; the JSON it prints last.

    Each measurement in a fresh process, as each `retr` command is one: idle OpenMP threads left spinning
    by one measurement never slow the next."""
    proc = subprocess.run([sys.executable, script, "--child", json.dumps({"kind": kind, **kwargs})],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} {kwargs} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- result files: every figure a script prints is also kept under benchmarks/results/, as that script printed it

RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict:
    """What the figures were measured on: CPU model, usable cores, memory, GPUs (read without importing torch)."""
    import os
    import platform
    import shutil
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    mem_gib = None
    try:
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
        mem_gib = round(kib / 2**20)
    except (OSError, StopIteration, ValueError):
        pass
    gpus: list[str] = []
    if shutil.which("nvidia-smi"):
        proc = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True)
        gpus = [g.strip() for g in proc.stdout.splitlines() if g.strip()] if proc.returncode == 0 else []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "memory_gib": mem_gib, "gpus": gpus,
            "cpu_features": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
            "os": platform.platform(terse=True), "python": platform.python_version()}


def machine_slug(m: dict) -> str:
    """A file-name label for a machine, as timm names its result files by hardware: ``amd-epyc-2cpu``."""
    import re
    words = re.sub(r"\(r\)|\(tm\)|cpu @.*|processor", "", m["cpu"].lower())
    slug = "-".join(re.findall(r"[a-z0-9]+", words)[:4]) + f"-{m['cores']}cpu"
    if m["gpus"]:
        slug += f"-{len(m['gpus'])}x" + "-".join(re.findall(r"[a-z0-9]+", m["gpus"][0].lower())[-2:])
    return slug


def _versions() -> dict:
    from importlib import metadata
    out = {}
    for dist in ("retr", "torch", "timm", "faiss-cpu", "faiss-gpu", "openvino", "onnxruntime", "opencv-python-headless"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _commit() -> str | None:
    proc = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":(exclude)benchmarks/results"], cwd=ROOT, capture_output=True, text=True).stdout
    return proc.stdout.strip() + ("+changes" if dirty.strip() else "")


class _Tee:
    """Writes to the real stdout and keeps a copy."""

    def __init__(self, stream):
        self.stream, self.parts = stream, []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def result_name(argv: list[str]) -> str:
    """The file stem for a run: the machine's slug, plus its options when it was not run with the defaults."""
    import hashlib
    import re
    options = "-".join(re.findall(r"[A-Za-z0-9.]+", " ".join(argv)))
    if len(options) > 60:
        options = options[:48] + "-" + hashlib.sha256(" ".join(argv).encode()).hexdigest()[:8]
    return options


@contextmanager
def record_result(script: str) -> Iterator[None]:
    """Run a benchmark's ``main()`` inside this and what it prints is kept, with the command, machine and date.

    Writes ``benchmarks/results/<script>/<machine>[--<options>].json`` (a run with other options gets a file
    of its own; the same command on the same machine replaces its file) and re-renders that folder's
    ``README.md``, which the docs' benchmark pages include. Nothing is written when the script fails, exits
    early (``--help``, missing data) or runs as its own child process (``--child``)."""
    import datetime
    import os
    argv = sys.argv[1:]
    if "--child" in argv:
        yield
        return
    name = Path(script).stem
    tee, started, load0 = _Tee(sys.stdout), time.perf_counter(), os.getloadavg()
    sys.stdout = tee
    try:
        yield
    finally:
        sys.stdout = tee.stream
    m = machine()
    options = result_name(argv)
    record = {
        "benchmark": name,
        "command": " ".join(["python", f"benchmarks/{name}.py", *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": m,
        "commit": _commit(),
        "versions": _versions(),
        "seconds": round(time.perf_counter() - started, 1),
        "load_average": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
        "output": "".join(tee.parts),
    }
    folder = RESULTS / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (machine_slug(m) + (f"--{options}" if options else "") + ".json")
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    (folder / "README.md").write_text(render_results(folder))
    print(f"result file: {os.path.relpath(path, ROOT)}", file=sys.stderr)


def render_results(folder: Path) -> str:
    """The Markdown of every result file of one benchmark (its folder), one section per run."""
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    lines = ["<!-- written by benchmarks/_common.py from the .json files next to it; do not edit -->", ""]
    for r in sorted(runs, key=lambda r: (r["machine"]["cores"], machine_slug(r["machine"]), r["command"])):
        m = r["machine"]
        gpu = ", ".join(m["gpus"]) if m["gpus"] else "no GPU"
        features = f" ({', '.join(m['cpu_features'])})" if m.get("cpu_features") else ""
        lines += [f"**`{r['command']}`**", "",
                  f"{m['cpu']}{features}, {m['cores']} cores, {m['memory_gib']} GiB, {gpu}; "
                  f"{r['date']}; commit `{r['commit']}`; {r['seconds']} s; "
                  f"load average {r['load_average'][0]} at the start, {r['load_average'][1]} at the end", "",
                  "```text", r["output"].rstrip("\n"), "```", ""]
    return "\n".join(lines)
