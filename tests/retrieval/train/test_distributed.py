"""DDP on CPU: 2 processes (gloo), as torchrun would start them; their weights stay in step."""
from __future__ import annotations

import hashlib
import json
import os
import socket

import torch
import torch.multiprocessing as mp

from tests.retrieval.train.conftest import write_folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, out: str, report: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from retrieval.train import TrainConfig, train
    from retrieval.train.loop import Trainer
    captured = {}
    real_run = Trainer.run

    def run(self):
        captured["trainer"] = self
        return real_run(self)

    Trainer.run = run
    cfg = TrainConfig(method="triplet", model="test_vit", pretrained=False, embedding_dim=8, image_size=32,
                      epochs=1, steps_per_epoch=2, classes_per_batch=2, images_per_class=2, workers=0,
                      device="cpu", split="none")
    result = train(cfg, data, out)
    weights = captured["trainer"].module.state_dict()
    digest = hashlib.sha256(b"".join(weights[k].numpy().tobytes() for k in sorted(weights))).hexdigest()
    with open(f"{report}.{rank}", "w") as fh:
        json.dump({"step": result.step, "digest": digest, "world": captured["trainer"].ctx.world_size}, fh)


def test_two_cpu_processes_train_in_step(tmp_path):
    write_folder(tmp_path / "data", per_class=4, classes=3)
    out, report = tmp_path / "out", str(tmp_path / "report")
    # fork: the children inherit the imported modules (spawn would re-import torch and timm in each)
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path / "data"), str(out), report), nprocs=2,
                       join=True, start_method="fork")
    r0, r1 = (json.loads(open(f"{report}.{r}").read()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["step"] == r1["step"] == 2
    assert r0["digest"] == r1["digest"]  # gradients were all-reduced: both ranks hold the same weights
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert json.loads((out / "config.json").read_text())["training"]["world_size"] == 2
