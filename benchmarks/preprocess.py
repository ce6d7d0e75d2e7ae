"""Resize-and-crop on uint8 tensors against timm's PIL stage: CPU per image, pixels, and vectors.

Pillow's bicubic resize was a large share of a decode worker's time; retr runs the
usual ``Resize(side) + CenterCrop`` on uint8 tensors with torch's antialiased kernels instead, when the
picture shrinks and is at most twice as long as wide (Preprocess.takes_tensor_stage; others take Pillow,
as timm does: the "tensor" column counts the pictures that took the tensor stage). This prints,
side by side in one process (one thread, as in a decode worker), what a worker's item costs with each
stage, how far the pixels move, and the cosine between the default model's vectors (torch runtime) of the
two inputs, on photos the change was never tuned on: the 12 scikit-image / scikit-learn photos, the
largest file of each Debian wallpaper picture (bench-out/wallpapers, fetched as benchmarks/dedupe_verified.py
does; skipped when absent and no network), crops of random size and shape (up to 4:1, either way) of those
photos, and Fashion-MNIST test images (28x28 PNG, upsampled).

    nice -n -5 .venv/bin/python benchmarks/preprocess.py [--wallpapers 150] [--fashion 300]
"""
from __future__ import annotations

import argparse
import gzip
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import real_photos  # noqa: E402
from retrieval.embed import Embedder, Preprocess  # noqa: E402
from retrieval.images.decode import ImageLoadError, decode_sized  # noqa: E402
from retrieval.models.load import load_model  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).convert("RGB").save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def sets(n_wallpapers: int, n_fashion: int) -> dict[str, list[bytes]]:
    photos = real_photos()
    out = {"photos (skimage, sklearn; JPEG)": [_jpeg(a) for a in photos.values()]}
    rng = np.random.default_rng(0)
    crops = []
    for arr in [a for a in photos.values() for _ in range(25)]:
        big = np.asarray(Image.fromarray(arr).resize((1200, 1200), Image.BICUBIC))
        short, ratio = int(rng.integers(256, 700)), float(rng.choice([1.0, rng.uniform(1, 2), rng.uniform(2, 4)]))
        h, w = (min(1200, int(short * ratio)), short) if rng.random() < 0.5 else (short, min(1200, int(short * ratio)))
        crops.append(_jpeg(big[:h, :w]))
    out["crops of them (256-1200 px, up to 4:1; JPEG)"] = crops
    try:
        from dedupe_verified import fetch, real_files
        fetch()
        plain, variants = real_files()
        files = sorted(plain + variants)[:n_wallpapers]
        out[f"Debian wallpapers (largest file of {len(files)} pictures)"] = [p.read_bytes() for p in files]
    except Exception as exc:  # noqa: BLE001 - no network and nothing unpacked: say so, go on
        print(f"wallpapers skipped: {type(exc).__name__}: {exc}")
    if FASHION.exists():
        raw = np.frombuffer(gzip.open(FASHION).read()[16:], dtype=np.uint8).reshape(-1, 28, 28)
        out[f"Fashion-MNIST test (28x28 PNG, first {n_fashion})"] = [_png(x) for x in raw[:n_fashion]]
    return out


def measure(data: list[bytes], fast: Preprocess, pil: Preprocess, embedder: Embedder) -> dict:
    """CPU ms per item (decode + stage, interleaved), pixel differences and vector cosines."""
    times = {"pil": [], "tensor": []}
    inputs = {"pil": [], "tensor": []}
    diffs, changed, sizes, tensor = [], [], [], 0
    for blob in data:
        try:
            tensor += fast.takes_tensor_stage(decode_sized(blob, draft_size=pil.draft_size)[0])
        except ImageLoadError:
            continue
        order = (("pil", pil), ("tensor", fast))  # alternating which goes first
        for name, prep in order if len(times["pil"]) % 2 else order[::-1]:
            t = time.thread_time()
            for _ in range(3):
                img, w, h = decode_sized(blob, draft_size=prep.draft_size)
                x = prep.to_uint8(img)
            times[name].append((time.thread_time() - t) / 3 * 1000)
            inputs[name].append(x)
        sizes.append(w * h)
        d = (inputs["pil"][-1].int() - inputs["tensor"][-1].int()).abs()
        diffs.append(int(d.max()))
        changed.append(float((d > 0).float().mean()))
    vec = {k: np.concatenate([embedder(torch.stack(v[i:i + 32])) for i in range(0, len(v), 32)])
           for k, v in inputs.items()}
    cos = (vec["pil"] * vec["tensor"]).sum(axis=1)
    return {"n": len(diffs), "tensor": tensor, "megapixels": statistics.median(sizes) / 1e6,
            "pil_ms": sum(times["pil"]) / len(diffs), "tensor_ms": sum(times["tensor"]) / len(diffs),
            "max_diff": max(diffs), "changed": statistics.mean(changed), "cos_min": float(cos.min()),
            "cos_median": float(np.median(cos))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wallpapers", type=int, default=150)
    ap.add_argument("--fashion", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)  # as in a decode worker
    model = load_model()
    fast, pil = Preprocess.from_model(model), Preprocess.from_model(model, tensor_resize=False)
    assert fast.tensor_stage is not None and pil.tensor_stage is None
    embedder = Embedder(model, cpu("torch"))
    print(f"default model {model.info.spec}; stage {fast.pil_stage}; torch {torch.__version__}, 1 thread")
    print(f"{'set':52} {'n':>5} {'tensor':>6} {'Mpx':>5} {'PIL ms':>7} {'tensor ms':>9} {'ratio':>6} {'max diff':>8} "
          f"{'px changed':>10} {'min cos':>8} {'median cos':>10}")
    worst = 1.0
    for name, data in sets(args.wallpapers, args.fashion).items():
        r = measure(data, fast, pil, embedder)
        worst = min(worst, r["cos_min"])
        print(f"{name:52} {r['n']:5d} {r['tensor']:6d} {r['megapixels']:5.2f} {r['pil_ms']:7.2f} {r['tensor_ms']:9.2f} "
              f"{r['pil_ms'] / r['tensor_ms']:5.2f}x {r['max_diff']:8d} {r['changed']:10.2%} {r['cos_min']:8.6f} "
              f"{r['cos_median']:10.7f}")
    print(f"least cosine over every set: {worst:.6f} (bar: 0.9999, the runtimes' exactness bar)")


if __name__ == "__main__":
    main()
