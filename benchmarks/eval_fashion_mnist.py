"""`retr eval recall` on the Fashion-MNIST test set (10,000 images, 10 classes).

Writes the 28x28 test images as PNG class folders (once) under --out, then runs the same code path as
`retr eval recall DIR --model SPEC` and prints the metrics, the wall time, and the share of it spent
embedding versus in the exact k-NN search.

    nice -n 10 .venv/bin/python benchmarks/eval_fashion_mnist.py [--limit 10000] [--model tf_efficientnet_lite0]
        [--runtime auto|torch|openvino|onnx] [--precision f32|bf16]

With --limit below 10,000 (embedding 10,000 images at 224 px is slow on a small shared CPU), the exact
k-NN search is also timed at the full 10,000 with the real labels and stand-in vectors of the model's
dimension (search time does not depend on what the vectors hold), and the full run is estimated from both.

Data: Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist).
"""
from __future__ import annotations

import argparse
import gzip
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

SOURCE = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_folders(out: Path, limit: int) -> Path:
    images = read_idx(SOURCE / "t10k-images-idx3-ubyte.gz")[:limit]
    labels = read_idx(SOURCE / "t10k-labels-idx1-ubyte.gz")[:limit]
    root = out / f"test-{len(images)}"
    if not (root / ".complete").exists():
        for i, (img, label) in enumerate(zip(images, labels)):
            folder = root / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, mode="L").save(folder / f"{i:05d}.png")
        (root / ".complete").touch()
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/fashion-mnist-png"))
    parser.add_argument("--limit", type=int, default=10000)
    parser.add_argument("--model", default=None, help="default: retr's default model (offline weights)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runtime", default="auto", help="auto, torch, openvino or onnx (retrieval.runtimes)")
    parser.add_argument("--precision", default="f32", help="f32, or bf16 (openvino) to measure its recall cost")
    args = parser.parse_args()

    from retrieval.evaluation.recall import RecallOptions, Split, run_recall
    from retrieval.models.load import DEFAULT_MODEL
    from retrieval.runtimes.settings import InferenceSettings
    root = write_folders(args.out, args.limit)
    inference = InferenceSettings(device=args.device, runtime=args.runtime, precision=args.precision,
                                  batch_size=args.batch_size, workers=args.workers)
    opts = RecallOptions(model=args.model, inference=inference, progress=True)  # tqdm on stderr
    start = time.perf_counter()
    report, missing = run_recall(Split.read(root, None, None), opts)
    wall = time.perf_counter() - start
    s = report.seconds
    other = wall - s["embed"] - s["search"]
    print(f"Fashion-MNIST test: {report.n} images, model {args.model or DEFAULT_MODEL} (ImageNet weights, "
          f"no fine-tuning), {os.cpu_count()} CPU cores, device {args.device}, --runtime {args.runtime} "
          f"--precision {args.precision}, {missing} unreadable")
    print("  " + "  ".join(f"{k} {v:.4f}" for k, v in report.to_json().items()
                           if isinstance(v, float)))
    print(f"wall time {wall:.1f}s: embedding (incl. model load) {s['embed']:.1f}s ({s['embed'] / wall:.1%}), "
          f"k-NN search {s['search']:.2f}s ({s['search'] / wall:.2%}), metrics and the rest {other:.2f}s "
          f"({other / wall:.2%})")
    print(f"embedding throughput {report.n / s['embed']:.1f} images/s; k-NN search "
          f"{report.n / max(s['search'], 1e-9):,.0f} queries/s (exact, k = max(8, R) = "
          f"{max(8, max(int(r['n']) for r in report.per_class.values()) - 1)})")
    if args.limit < 10000:
        full_search(report, s, dim=_dim(args.model))


def _dim(model: str | None) -> int:
    from retrieval.models.load import DEFAULT_MODEL, load_model
    return load_model(model or DEFAULT_MODEL).info.dim


def full_search(report, seconds: dict, dim: int) -> None:
    """Time the k-NN search of the full test set (real labels, stand-in unit vectors of the model's dim)."""
    from retrieval.evaluation.metrics import evaluate_embeddings
    labels = read_idx(SOURCE / "t10k-labels-idx1-ubyte.gz")
    vecs = np.random.default_rng(0).normal(size=(len(labels), dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    full = evaluate_embeddings(vecs, [CLASSES[i] for i in labels])
    search = full.seconds["search"]
    per_image = seconds["embed"] / report.n  # model load included: slightly pessimistic
    embed = per_image * len(labels)
    total = embed + search + full.seconds["metrics"]
    print(f"full {len(labels)} images: k-NN search measured {search:.2f}s ({len(labels) / search:,.0f} queries/s, "
          f"k = {max(int(r['n']) for r in full.per_class.values()) - 1}); embedding estimated at "
          f"{embed:.0f}s from the run above; estimated wall time {total:.0f}s, of it embedding "
          f"{embed / total:.2%}, k-NN search {search / total:.2%}")


if __name__ == "__main__":
    main()
