"""Extraction efficiency: images/s of the whole build path (scan, read, decode, preprocess, forward,
catalog + faiss writes) over real photos, divided by images/s of the bare model forward on pre-made
tensors: same model, batch and device. Goal >= 0.9.

    .venv/bin/python benchmarks/extraction_efficiency.py [--copies 24] [--batch-size 32] [--device auto]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _common import write_photo_copies  # noqa: E402
from retrieval.embed import Embedder  # noqa: E402
from retrieval.collection.build import BuildOptions, build_index  # noqa: E402
from retrieval.runtimes.settings import InferenceSettings  # noqa: E402
from retrieval.models.load import load_model, resolve_device  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=24, help="copies of each of the 12 photos")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    device = resolve_device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        n = write_photo_copies(folder, args.copies)
        model = load_model()
        embedder = Embedder(model, InferenceSettings(device=str(device)))
        c, h, w = model.info.data_config["input_size"]
        batch = np.random.default_rng(0).integers(0, 256, (args.batch_size, c, h, w), dtype=np.uint8)
        embedder(batch)  # warm-up

        def bare() -> float:
            t = time.perf_counter()
            done = 0
            while done < n:
                embedder(batch[: min(args.batch_size, n - done)])
                done += args.batch_size
            if device.type == "cuda":
                torch.cuda.synchronize()
            return n / (time.perf_counter() - t)

        def build(round_no: int) -> float:
            t = time.perf_counter()
            report = build_index([folder], Path(tmp) / f"ix{round_no}",
                                 BuildOptions(
                inference=InferenceSettings(device=str(device), batch_size=args.batch_size, workers=args.workers)))
            assert report.total == n, report
            return n / (time.perf_counter() - t)

        fwd, bld = [], []
        for r in range(args.rounds):  # interleaved, so both see the same machine load
            fwd.append(bare())
            bld.append(build(r))
        print(f"{n} real photos ({args.copies} copies x 12, full size), model {model.info.spec}, "
              f"batch {args.batch_size}, device {device}, torch threads {torch.get_num_threads()}")
        print(f"bare forward (pre-made tensors): {max(fwd):8.1f} images/s")
        print(f"retr index build (whole path)  : {max(bld):8.1f} images/s")
        print(f"efficiency build/forward: {max(bld) / max(fwd):.3f}  (goal >= 0.9)")


if __name__ == "__main__":
    main()
