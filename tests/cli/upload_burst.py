"""Concurrent uploads of a 12 KB picture that decodes to 100 Mpx, against `retr serve`'s app in this
process, with RSS sampled before, during and after: ``python -m tests.cli.upload_burst INDEX BUDGET_MB``
prints one JSON line (used by tests/cli/test_serve_memory.py and benchmarks/fault_injection.py)."""
from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def one_bit_png(side: int = 10000) -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")
    return out.getvalue()


def burst(index: str, budget_mb: float, *, clients: int = 6, rounds: int = 2) -> dict:
    from fastapi.testclient import TestClient

    from cli.server.app import ServeOptions, create_app
    from retrieval.collection.api import Collection
    app = create_app(lambda: Collection(index), ServeOptions(decode_budget=int(budget_mb * 2**20)))
    data = one_bit_png()
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        client.get("/api/search", params={"id": 1, "k": 1})
        photo = client.get("/api/images/1").content
        client.post("/api/search", files={"image": ("warm.jpg", photo)})  # warm: the model has run once
        client.post("/api/search", params={"box": "0,0,100,100"}, files={"image": ("warm.jpg", photo)})
        before, peak, stop = rss(), [0], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss())
                time.sleep(0.002)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def upload(i: int) -> int:
            params = {"box": "0,0,5000,5000"} if i % 2 else {}
            return client.post("/api/search", params=params, files={"image": (f"b{i}.png", data)}).status_code
        statuses = []
        with ThreadPoolExecutor(clients) as pool:
            for _ in range(rounds):
                statuses += list(pool.map(upload, range(clients)))
        stop.set()
        sampler.join()
        time.sleep(0.5)
        after = rss()
    return {"statuses": statuses, "before_mb": before / 2**20, "peak_mb": peak[0] / 2**20, "after_mb": after / 2**20,
            "budget_mb": budget_mb}


if __name__ == "__main__":
    print(json.dumps(burst(sys.argv[1], float(sys.argv[2]))))
