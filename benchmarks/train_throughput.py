"""Training throughput: images/s of a retr training step divided by images/s of a bare
forward+backward of the same backbone and batch. Goal >= 0.7.

Three figures, measured side by side in one run (rounds interleaved, medians reported, so that load
from other processes hits all of them alike):
  bare      EmbeddingNet forward + backward of sum(output) on a ready tensor batch;
  step      Trainer._train_step on a ready, collated batch: forward, miner, loss, backward, gradient
            clipping, optimiser and one-cycle scheduler step;
  loop      Trainer._train_epoch: the P x K sampler, image decoding + augmentation (DataLoader), and the step.
Run:  nice -n 10 .venv/bin/python benchmarks/train_throughput.py [--size 32 --rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fashion_mnist import image_set, load  # noqa: E402

from retrieval.models.load import DEFAULT_MODEL, resolve_device  # noqa: E402
from retrieval.train import TrainConfig  # noqa: E402
from retrieval.train.loop import Trainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4, help="steps per measurement")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--method", default="triplet")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y = load("train")
    data = image_set(x[:3000], y[:3000])
    p, k = 10, 6
    cfg = TrainConfig(method=args.method, model=args.model, image_size=args.size, epochs=1000,
                      steps_per_epoch=args.steps, classes_per_batch=p, images_per_class=k, workers=0,
                      split="none", device=args.device, **({"batch_size": 32} if args.method == "simclr" else {}))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, data, Path(tmp) / "ckpt")
        device = resolve_device(args.device)
        batch = next(iter(trainer.loader))
        views = 2 if isinstance(batch["x"], tuple) else 1
        n = len(batch["labels"]) * views
        tensor = (torch.cat(batch["x"]) if views == 2 else batch["x"]).to(device)
        net = trainer.module.net
        if device.type == "cuda":
            tensor = tensor.contiguous(memory_format=torch.channels_last)

        def bare() -> float:
            sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
            start = time.perf_counter()
            for _ in range(args.steps):
                net.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=trainer.amp_dtype, enabled=trainer.use_amp):
                    out = net(tensor)
                out.float().sum().backward()
            sync()
            return n * args.steps / (time.perf_counter() - start)

        def step() -> float:
            sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer._train_step(batch)
            sync()
            return n * args.steps / (time.perf_counter() - start)

        def loop() -> float:
            return trainer._train_epoch()["images_per_second"]

        net.train()
        bare(), step()  # warm-up
        figures: dict[str, list[float]] = {"bare": [], "step": [], "loop": []}
        for _ in range(args.rounds):
            for name, fn in (("bare", bare), ("step", step), ("loop", loop)):
                figures[name].append(fn())
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"training throughput: {args.model} {args.size}px, {args.method}, batch {n} images "
          f"({'2 views x ' + str(n // 2) if views == 2 else f'P={p} x K={k}'}), device {device}, "
          f"torch threads {args.threads}, {args.rounds} rounds x {args.steps} steps, medians")
    print(f"  bare forward+backward   {med['bare']:8.1f} img/s")
    print(f"  training step           {med['step']:8.1f} img/s   ratio {med['step'] / med['bare']:.3f}")
    print(f"  training loop (+data)   {med['loop']:8.1f} img/s   ratio {med['loop'] / med['bare']:.3f}")


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
