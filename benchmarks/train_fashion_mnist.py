"""Fashion-MNIST recall@1 of the metric-learning trainers: how much each `retr train` loss improves retrieval.

recall@1 on the 10,000 test images, each querying the other 9,999 (exact faiss k-NN), for the offline
pretrained backbone untrained and after each trainer (contrastive, triplet, SimCLR) trained on (a subset
of) the training split; then the class-disjoint variant: train on classes 0-4, test on classes 5-9.

CPU time is scarce here, so the default run is small (32 px inputs, a few thousand training images,
a few hundred steps); every figure printed says what it was measured with. Run:
    nice -n 10 .venv/bin/python benchmarks/train_fashion_mnist.py [--steps 150 --train-images 12000]
The README's 0.90 figures (about 100 CPU-minutes per trainer):
    .venv/bin/python benchmarks/train_fashion_mnist.py --only triplet --size 64 --steps 2400 --epochs 4 \
        --train-images 60000 --images-per-class 12 --min-crop 0.85 --val-fraction 0.02 --threads 1
"""
from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from retrieval.models.backbones import create_backbone, make_transform
from retrieval.models.load import DEFAULT_MODEL
from retrieval.models.net import EmbeddingNet
from retrieval.train import ImageSet, TrainConfig, train
from retrieval.train.loop import data_config_for, embed
from retrieval.train.validation import knn_recall

ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    return (read_idx(ROOT / f"{prefix}-images-idx3-ubyte.gz"), read_idx(ROOT / f"{prefix}-labels-idx1-ubyte.gz"))


def image_set(images: np.ndarray, labels: np.ndarray) -> ImageSet:
    return ImageSet.from_labels([Image.fromarray(a, "L") for a in images], [CLASSES[i] for i in labels])


def recall(net: torch.nn.Module, data_config: dict, test: ImageSet) -> float:
    vecs, pos = embed(net, test, make_transform(data_config), torch.device("cpu"), batch_size=256)
    return knn_recall(vecs, test.labels[pos], (1,))["recall@1"]


def untrained(size: int, test: ImageSet) -> float:
    backbone, _ = create_backbone(DEFAULT_MODEL)
    return recall(EmbeddingNet(backbone), data_config_for(backbone, size), test)


def trained(method: str, train_set: ImageSet, test: ImageSet, args, **overrides) -> tuple[float, dict]:
    cfg = TrainConfig(method=method, image_size=args.size, epochs=args.epochs,
                      steps_per_epoch=max(1, args.steps // args.epochs), workers=0, seed=0,
                      split="images", val_fraction=args.val_fraction, recall_ks=(1,), min_crop=args.min_crop,
                      **overrides)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train(cfg, train_set, Path(tmp) / "ckpt")
        seconds = time.perf_counter() - start
        from retrieval.models.load import load_checkpoint
        loaded = load_checkpoint(Path(tmp) / "ckpt")
        r1 = recall(loaded.net, loaded.info.data_config, test)
    return r1, {"seconds": seconds, "val": result.metrics.get("recall@1"), "loss": result.metrics.get("loss"),
                "img_s": result.metrics.get("images_per_second")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32, help="input side in pixels")
    ap.add_argument("--train-images", type=int, default=12000, help="training subset (stratified)")
    ap.add_argument("--steps", type=int, default=150, help="optimiser steps per trainer")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--images-per-class", type=int, default=6, help="K of the P=10 x K batches")
    ap.add_argument("--min-crop", type=float, default=0.6, help="random resized crop scale for labelled training")
    ap.add_argument("--val-fraction", type=float, default=0.05, help="held-out share for per-epoch validation")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    ap.add_argument("--only", default="untrained,triplet,contrastive,simclr,disjoint,mining")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    only = set(args.only.split(","))
    xtr, ytr = load("train")
    xte, yte = load("test")
    rng = np.random.default_rng(0)
    sub = rng.permutation(len(xtr))[:args.train_images]
    train_set, test = image_set(xtr[sub], ytr[sub]), image_set(xte, yte)
    pk = dict(classes_per_batch=10, images_per_class=args.images_per_class, lr=1e-3)
    print(f"Fashion-MNIST, backbone {DEFAULT_MODEL} (offline ImageNet weights), {args.size}px, "
          f"train subset {len(train_set)} images, {args.steps} steps x batch {10 * args.images_per_class} "
          f"(P=10 x K={args.images_per_class}; SimCLR 32 images = 64 views), min crop {args.min_crop}, "
          f"{args.epochs} epochs, torch threads {args.threads}")
    print(f"{'setting':44} {'recall@1':>9} {'val r@1':>8} {'train s':>8} {'img/s':>6}")
    base = None
    if "untrained" in only:
        base = untrained(args.size, test)
        print(f"{'test 10k, untrained backbone':44} {base:9.4f}", flush=True)
    runs = [("triplet", {"miner": "semi-hard", "margin": 0.2, **pk}), ("contrastive", {"margin": 0.8, **pk}),
            ("simclr", {"batch_size": 32, "lr": 3e-4}),
            ("mining", {"miner": "semi-hard", "margin": 0.2, "mine_every": 1, **pk})]
    for name, kw in runs:
        if name not in only:
            continue
        method = "triplet" if name == "mining" else name
        label = f"test 10k, {method}" + (f" + offline mining" if kw.get("mine_every") else "") + \
            (f" ({kw['miner']})" if kw.get("miner") else "")
        r1, info = trained(method, train_set, test, args, **kw)
        print(f"{label:44} {r1:9.4f} {info['val'] or float('nan'):8.4f} {info['seconds']:8.0f} "
              f"{info['img_s']:6.0f}", flush=True)
    if "disjoint" in only:
        tr_mask, te_mask = ytr[sub] < 5, yte >= 5
        train_a = image_set(xtr[sub][tr_mask], ytr[sub][tr_mask])
        test_b = image_set(xte[te_mask], yte[te_mask])
        print(f"class-disjoint: train on classes 0-4 ({len(train_a)} images), test on classes 5-9 "
              f"({len(test_b)} images, each querying the others)")
        b = untrained(args.size, test_b)
        print(f"{'disjoint, untrained backbone':44} {b:9.4f}", flush=True)
        five = {**pk, "classes_per_batch": 5, "images_per_class": 2 * args.images_per_class}  # same batch size
        for method, kw in (("triplet", {"miner": "semi-hard", "margin": 0.2, **five}),
                           ("contrastive", {"margin": 0.8, **five})):
            r1, info = trained(method, train_a, test_b, args, **kw)
            print(f"{'disjoint, ' + method:44} {r1:9.4f} {info['val'] or float('nan'):8.4f} "
                  f"{info['seconds']:8.0f} {info['img_s']:6.0f}", flush=True)


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
