"""`retr dedupe --check IMAGE` stays fast with verification: it verifies only the image's candidates.

Uses the test half of benchmarks/dedupe_quality.py's set (bench-out/dedupe-verified/test) as a catalog-only
index (rows as `retr index build` records them, without vectors); the first check hashes the catalog
(stored), then each check of an edited copy is timed: hash the image, search the stored hashes, verify
the few candidates.

    nice -n 5 .venv/bin/python benchmarks/dedupe_check_speed.py
"""
from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.catalog.database import Catalog  # noqa: E402
from retrieval.dedupe.options import DedupeOptions  # noqa: E402
from retrieval.dedupe.run import check_image  # noqa: E402

FOLDER = ROOT / "bench-out" / "dedupe-verified" / "test"


def main() -> None:
    files = sorted(FOLDER.glob("*.jpg"))
    queries = [p for p in files if p.name.endswith("__combined.jpg")][:20]
    catalogued = [p for p in files if p not in set(queries)]
    with tempfile.TemporaryDirectory() as tmp:
        idx = Path(tmp) / "idx"
        cat = Catalog.for_index(idx)
        cat.write_images([{"path": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                           "bytes": p.stat().st_size, "width": 1, "height": 1, "mtime": p.stat().st_mtime,
                           "status": "ok"} for p in catalogued])
        cat.close()
        t = time.perf_counter()
        check_image(queries[0], idx, DedupeOptions())
        print(f"{len(catalogued)} catalogued images; first check (hashes the catalog once): "
              f"{time.perf_counter() - t:.1f}s")
        times, found = [], 0
        for q in queries:
            t = time.perf_counter()
            matches = check_image(q, idx, DedupeOptions())
            times.append(time.perf_counter() - t)
            found += any(m.path.endswith("__original.jpg") and m.path.split("__")[0] == str(q).split("__")[0]
                         for m in matches)
        times.sort()
        print(f"checks of {len(queries)} combined edits (crop, rotation, resize, tone, text, JPEG): median "
              f"{times[len(times) // 2] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms; original found for "
              f"{found}/{len(queries)}")


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
