"""`retr serve` and the warm Python API: latency, throughput and memory, side by side in one run.

1. One single-image search: `retr query` as a new process, the warm Collection in this process, HTTP to
   `retr serve`, and the bare model forward of one preprocessed image (the reference: the same runtime
   session `retr serve` opens, OpenVINO on this CPU by default, on the same 1-image batch); interleaved rounds.
   The HTTP client is the standard library's keep-alive connection with the multipart body built once (what
   curl or a browser costs, not a Python client's per-request encoding); httpx is shown beside it.
2. Throughput with 1, 4 and 16 concurrent HTTP clients (threads of the same lean client), micro-batching on
   (the default, --max-batch 16) and off (--max-batch 1), against the bare model on batches of 16.
3. Memory (VmRSS) of the server process with 100,000 catalog images (synthetic vectors, flat index).

    nice -n 5 .venv/bin/python benchmarks/serve_latency.py [--index demo-out/index] [--quick]
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

# as `retr serve` does: OpenMP threads left spinning by this process's warm-API query (torch's, faiss's) would
# take the CPU from the server's request measured next on a small machine
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RETR = str(ROOT / ".venv" / "bin" / "retr")
PHOTO = ROOT / "tests" / "data" / "photos" / "coffee.jpg"
OUT = ROOT / "bench-out" / "serve"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`retr serve` in its own process on a free port."""

    def __init__(self, index: Path, *extra: str):
        import httpx
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([RETR, "serve", "--index", str(index), "--port", str(self.port),
                                      "--device", "cpu", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"retr serve did not start: {self.proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)

    def rss_mb(self) -> tuple[float, float]:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Client:
    """A keep-alive HTTP/1.1 connection posting one image as multipart (the body encoded once)."""

    BOUNDARY = "retr-bench-4c1e0a"

    def __init__(self, port: int, data: bytes, name: str = "coffee.jpg"):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.body = (f'--{self.BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
                     f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{self.BOUNDARY}--\r\n".encode()
        self.headers = {"Content-Type": f"multipart/form-data; boundary={self.BOUNDARY}"}

    def search(self, k: int = 10) -> tuple[int, bytes]:
        for attempt in (0, 1):
            try:
                self.conn.request("POST", f"/api/search?k={k}", self.body, self.headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self.conn.close()  # the server closed an idle keep-alive connection (after 5 s): connect again
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def ensure_index(index: Path) -> Path:
    if (index / "manifest.json").exists():
        return index
    subprocess.run([RETR, "index", "build", str(ROOT / "tests" / "data" / "photos"), "--index", str(index),
                    "--device", "cpu", "--quiet"], check=True)
    return index


def latency(index: Path, repeats: int, process_repeats: int) -> dict[str, list[float]]:
    import httpx

    from retrieval.collection.api import Collection
    from retrieval.runtimes.settings import InferenceSettings
    from retrieval.images.decode import load_image
    col = Collection(index, inference=InferenceSettings(device="cpu"))
    embedder = col._warm.embedder
    one = embedder.prep.to_uint8(load_image(PHOTO))[None]
    server = Server(index)
    data = PHOTO.read_bytes()
    lean = Client(server.port, data)
    times: dict[str, list[float]] = {"process": [], "api": [], "http": [], "httpx": [], "bare": []}
    with contextlib.ExitStack() as cleanup, httpx.Client(base_url=server.url, timeout=60) as http:
        cleanup.callback(server.stop)
        for _ in range(3):  # warm-up
            col.query(str(PHOTO), k=10)
            lean.search()
            http.post("/api/search?k=10", files={"image": ("coffee.jpg", data, "image/jpeg")})
            embedder(one)
        def lean_search() -> None:
            status, body = lean.search()
            assert status == 200, body

        def httpx_search() -> None:
            got = http.post("/api/search?k=10", files={"image": ("coffee.jpg", data, "image/jpeg")})
            assert got.status_code == 200, got.text
        runs = {"api": lambda: col.query(str(PHOTO), k=10), "http": lean_search, "httpx": httpx_search,
                "bare": lambda: embedder(one)}
        rng = random.Random(0)
        process_every = max(1, repeats // max(process_repeats, 1))
        for r in range(repeats):
            for key in rng.sample(list(runs), len(runs)):  # a new order each round: none always follows another
                time.sleep(0.005)  # the threads the previous one left spinning (OpenVINO's, OpenMP's) settle
                t = time.perf_counter()
                runs[key]()
                times[key].append(time.perf_counter() - t)
            if r % process_every == 0 and len(times["process"]) < process_repeats:
                t = time.perf_counter()
                subprocess.run([RETR, "query", str(PHOTO), "--index", str(index), "--json", "--device", "cpu"],
                               check=True, capture_output=True)
                times["process"].append(time.perf_counter() - t)
    lean.close()
    col.close()
    return times


def client_load(url: str, clients: int, per_client: int) -> float:
    """Images/s over ``clients`` threads, each sending ``per_client`` searches one after another."""
    data = PHOTO.read_bytes()
    port = int(url.rsplit(":", 1)[1])
    barrier = threading.Barrier(clients + 1)
    errors: list[str] = []

    def run() -> None:
        client = Client(port, data)
        barrier.wait()
        for _ in range(per_client):
            status, body = client.search()
            if status != 200:
                errors.append(body.decode(errors="replace"))
        client.close()
    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"errors under load: {errors[:3]}")
    return clients * per_client / (time.perf_counter() - start)


def throughput(index: Path, rounds: int, total: int) -> dict[str, list[float]]:
    from retrieval.collection.api import Collection
    from retrieval.runtimes.settings import InferenceSettings
    from retrieval.images.decode import load_image
    col = Collection(index, inference=InferenceSettings(device="cpu"))
    embedder = col._warm.embedder
    batch16 = embedder.prep.to_uint8(load_image(PHOTO))[None].repeat(16, 1, 1, 1)
    out: dict[str, list[float]] = {}
    for _ in range(rounds):  # interleaved: every configuration once per round, one server alive at a time
        for name, extra in (("on", ()), ("off", ("--max-batch", "1"))):  # on: the default
            server = Server(index, *extra)
            try:
                client_load(server.url, 4, 2)  # warm-up
                for clients in (1, 4, 16):
                    # the bare model right before each load, so that both meet the same moment of a shared machine
                    embedder(batch16)
                    t = time.perf_counter()
                    for _ in range(4):
                        embedder(batch16)
                    out.setdefault("bare16", []).append(64 / (time.perf_counter() - t))
                    t = time.perf_counter()
                    for _ in range(16):
                        embedder(batch16[:1])
                    out.setdefault("bare1", []).append(16 / (time.perf_counter() - t))
                    per_client = max(2, total // clients)
                    rate = client_load(server.url, clients, per_client)
                    out.setdefault(f"{name}{clients}", []).append(rate)
                    out.setdefault(f"{name}{clients}/bare16", []).append(rate / out["bare16"][-1])
            finally:
                server.stop()
    col.close()
    return out


def synthetic_index(index: Path, model_index: Path, n: int) -> Path:
    """``n`` catalog rows with random unit vectors, recorded as made by ``model_index``'s model (flat index)."""
    from index.catalog.schema import STATUS_OK
    from index.directory import IndexStore
    from index.manifest import read_manifest
    if (index / "manifest.json").exists():
        return index
    model = read_manifest(model_index).model
    rng = np.random.default_rng(0)
    with IndexStore.open(index, create=True) as store:
        for start in range(0, n, 10_000):
            m = min(10_000, n - start)
            v = rng.standard_normal((m, int(model["dim"]))).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            store.catalog.write_images([{"path": f"/synthetic/{start + i:07d}.jpg", "status": STATUS_OK, "vector": x}
                                        for i, x in enumerate(v)])
        store.rebuild(index_type="flat", model=model)
    return index


def memory(small: Path, n: int) -> dict[str, tuple[float, float]]:
    import httpx
    big = synthetic_index(OUT / f"synthetic-{n}", small, n)
    out = {}
    for name, index in (("small", small), ("big", big)):
        server = Server(index)
        assert httpx.get(server.url + "/api/search?id=1&k=10", timeout=60).status_code == 200
        out[name] = server.rss_mb()
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / "demo-out" / "index")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--process-repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--total", type=int, default=96, help="searches per throughput measurement")
    parser.add_argument("--memory-images", type=int, default=100_000)
    parser.add_argument("--only", choices=["latency", "throughput", "memory"], help="run one part")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, while iterating (not for figures)")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.process_repeats, args.rounds, args.total = 15, 1, 1, 32
    OUT.mkdir(parents=True, exist_ok=True)
    index = ensure_index(args.index)
    print(f"index {index}; {os.cpu_count()} CPUs; device cpu; photo {PHOTO.name}")

    if args.only in (None, "latency"):
        print_latency(index, args)
    if args.only in (None, "throughput"):
        print_throughput(index, args)
    if args.only in (None, "memory"):
        print_memory(index, args)


def print_latency(index: Path, args: argparse.Namespace) -> None:
    t = latency(index, args.repeats, args.process_repeats)
    print(f"\n1. one-image search, k=10 ({args.repeats} interleaved rounds; process {len(t['process'])} runs)")
    print(f"{'':28} {'p50 ms':>10} {'p90 ms':>10}")
    for key, label in (("process", "`retr query` process"), ("api", "warm Python API"), ("http", "HTTP to retr serve"),
                       ("httpx", "  the same, httpx client"), ("bare", "bare forward of 1 image")):
        print(f"{label:28} {pct(t[key], 50):10.1f} {pct(t[key], 90):10.1f}")
    http50, bare50, proc50 = (statistics.median(t[k]) for k in ("http", "bare", "process"))
    print(f"HTTP p50 / bare forward p50: {http50 / bare50:.2f}x (goal <= 2x: {'met' if http50 <= 2 * bare50 else 'NOT met'}); "
          f"with httpx {statistics.median(t['httpx']) / bare50:.2f}x")
    print(f"process p50 / HTTP p50: {proc50 / http50:.0f}x (goal >= 50x: {'met' if proc50 >= 50 * http50 else 'NOT met'})")
    spread = (pct(t["bare"], 90) - pct(t["bare"], 50)) / pct(t["bare"], 50)
    print(f"noise: bare forward p90 is {spread:.0%} above its p50")


def print_throughput(index: Path, args: argparse.Namespace) -> None:
    tp = throughput(index, args.rounds, args.total)
    print(f"\n2. throughput, images/s over HTTP (median of {args.rounds} interleaved rounds, {args.total} searches each)")
    print(f"{'clients':>8} {'batching on (default)':>22} {'batching off':>13}")
    for clients in (1, 4, 16):
        print(f"{clients:>8} {statistics.median(tp[f'on{clients}']):22.1f} {statistics.median(tp[f'off{clients}']):13.1f}")
    bare16 = statistics.median(tp["bare16"])
    print(f"bare model, batches of 16: {bare16:.1f} images/s (measured before each load: "
          f"{', '.join(f'{v:.0f}' for v in tp['bare16'])})")
    print(f"bare model, one image at a time: {statistics.median(tp['bare1']):.1f} images/s")
    ratio, off = statistics.median(tp["on16/bare16"]), statistics.median(tp["off16/bare16"])
    print(f"16 clients with batching / bare batch 16 measured just before: {ratio:.2f}x "
          f"(rounds: {', '.join(f'{v:.2f}' for v in tp['on16/bare16'])}; goal >= 0.8x: {'met' if ratio >= 0.8 else 'NOT met'}); "
          f"batching off: {off:.2f}x")


def print_memory(index: Path, args: argparse.Namespace) -> None:
    from index.manifest import read_manifest
    dim = read_manifest(index).dim
    mem = memory(index, args.memory_images)
    print("\n3. server memory (VmRSS / peak VmHWM, MB) after one search")
    print(f"small index ({index.name}): {mem['small'][0]:.0f} / {mem['small'][1]:.0f}")
    print(f"{args.memory_images:,} catalog images: {mem['big'][0]:.0f} / {mem['big'][1]:.0f} "
          f"(+{mem['big'][0] - mem['small'][0]:.0f} MB; the flat vectors alone are "
          f"{args.memory_images * dim * 4 / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
