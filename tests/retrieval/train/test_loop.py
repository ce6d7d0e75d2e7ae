"""Short real training runs on a tiny synthetic set: learning, checkpoints, resume, offline mining."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from index.errors import RetrError
from retrieval.models.checkpoint import read_config
from retrieval.models.load import load_checkpoint
from retrieval.train import STATE_FILE, TrainConfig, train
from retrieval.train import loop as loop_mod
from retrieval.train.loop import Trainer

TINY = dict(model="test_vit", pretrained=False, embedding_dim=16, image_size=32, workers=0, seed=0,
            classes_per_batch=4, images_per_class=4, min_crop=0.9)


@pytest.fixture(scope="module")
def run(colour_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "model"
    cfg = TrainConfig(method="contrastive", epochs=3, steps_per_epoch=5, lr=1e-3, val_fraction=0.4, **TINY)
    return train(cfg, colour_set, out), out


def test_short_run_lowers_the_loss_and_raises_validation_recall(run):
    result, _ = run
    assert [h["epoch"] for h in result.history] == [1, 2, 3] and result.step == 15
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.history[-1]["recall@1"] > result.initial["recall@1"]


def test_checkpoint_round_trip(run, colour_set):
    result, out = run
    loaded = load_checkpoint(out)
    config = read_config(out)
    assert config["backbone"] == "test_vit" and config["embedding_dim"] == 16
    assert config["data_config"]["input_size"] == [3, 32, 32]
    assert config["training"]["method"] == "contrastive" and config["training"]["margin"] == 0.8
    assert config["metrics"]["recall@1"] == pytest.approx(result.history[-1]["recall@1"])
    x = torch.stack([loaded.transform(colour_set.items[i]) for i in range(4)])
    with torch.no_grad():
        v = loaded.net(x)
    assert v.shape == (4, 16) and torch.allclose(v.norm(dim=1), torch.ones(4), atol=1e-5)
    state = torch.load(out / STATE_FILE, weights_only=True)  # safe loading works
    assert state["step"] == 15 and state["epoch"] == 3


def test_checkpoint_works_with_index_build(run, tmp_path, colour_set):
    from retrieval.collection.build import BuildOptions, build_index
    from retrieval.runtimes.settings import InferenceSettings
    from retrieval.collection.query import query_index
    _, out = run
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(0, 64, 8):
        colour_set.items[i].save(folder / f"{i}.png")
    report = build_index([folder], tmp_path / "idx",
                         BuildOptions(model=str(out), inference=InferenceSettings(workers=0)))
    assert report.added == 8 and report.total == 8
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["dim"] == 16
    hits = query_index(tmp_path / "idx", [folder / "8.png"], k=1)[0].results
    assert hits[0].path.endswith("8.png")  # the trained model finds the image itself first


def test_resume_continues_from_the_saved_step(colour_set, tmp_path, monkeypatch):
    cfg = TrainConfig(method="triplet", miner="all", epochs=2, steps_per_epoch=2, split="none", **TINY)
    reference = train(cfg, colour_set, tmp_path / "ref")

    real_epoch = Trainer._train_epoch
    calls = []

    def crash_on_second(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(self)

    monkeypatch.setattr(Trainer, "_train_epoch", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, colour_set, tmp_path / "run")
    monkeypatch.setattr(Trainer, "_train_epoch", real_epoch)
    assert torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)["step"] == 2
    with pytest.raises(RetrError, match="already holds a training run"):
        train(cfg, colour_set, tmp_path / "run")
    resumed = train(cfg, colour_set, tmp_path / "run", resume=True)
    assert resumed.step == reference.step == 4 and [h["epoch"] for h in resumed.history] == [1, 2]
    a = load_checkpoint(tmp_path / "ref").net.state_dict()
    b = load_checkpoint(tmp_path / "run").net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same run as without the interruption

    with pytest.raises(RetrError, match="different settings.*lr"):
        train(TrainConfig(**{**cfg.__dict__, "lr": 0.5}), colour_set, tmp_path / "run", resume=True)
    with pytest.raises(RetrError, match="no training state"):
        train(cfg, colour_set, tmp_path / "nothing", resume=True)


def test_offline_mining_builds_batches_around_hard_negatives(colour_set, tmp_path, monkeypatch):
    seen = []
    from retrieval.train.samplers import PKSampler
    real = PKSampler.set_hard_negatives
    monkeypatch.setattr(PKSampler, "set_hard_negatives", lambda self, hn: (seen.append(hn), real(self, hn)))
    cfg = TrainConfig(method="triplet", epochs=2, steps_per_epoch=1, mine_every=1, split="none", **TINY)
    result = train(cfg, colour_set, tmp_path / "m")
    assert len(seen) == 1 and seen[0].shape[0] == len(colour_set)
    labels = colour_set.labels
    valid = seen[0] >= 0
    assert valid.any() and (labels[np.where(valid, seen[0], 0)][valid] != np.repeat(labels[:, None], 5, 1)[valid]).all()
    assert 0 <= result.history[1]["mined_confusion_rate"] <= 1


def test_simclr_saves_the_representation_without_the_projection_head(colour_set, tmp_path):
    cfg = TrainConfig(method="simclr", epochs=1, steps_per_epoch=2, batch_size=8, projection_dim=8,
                      **{k: v for k, v in TINY.items() if k not in ("classes_per_batch", "images_per_class")})
    result = train(cfg, colour_set, tmp_path / "s")
    assert result.step == 2 and np.isfinite(result.history[0]["loss"])
    assert "recall@1" in result.history[0]  # labelled data: validation still measured
    keys = load_checkpoint(tmp_path / "s").net.state_dict().keys()
    assert not any("projector" in k for k in keys)
    state = torch.load(tmp_path / "s" / STATE_FILE, weights_only=True)
    assert any(k.startswith("projector.") for k in state["model"])  # kept for --resume only


def test_bad_batch_settings_fail_before_training(colour_set, tmp_path):
    with pytest.raises(RetrError, match="smaller than P x K"):
        train(TrainConfig(method="triplet", batch_size=8, **TINY), colour_set, tmp_path / "x")
    with pytest.raises(RetrError, match="unknown training method"):
        TrainConfig(method="arcface")
    with pytest.raises(RetrError, match="unknown --miner 'hardest'; known: all, batch-hard"):
        TrainConfig(method="triplet", miner="hardest")
    with pytest.raises(RetrError, match="--margin must be > 0"):
        TrainConfig(method="contrastive", margin=0.0)


@pytest.mark.parametrize("freeze", [True, False])
def test_batchnorm_statistics_are_kept_unless_asked(colour_set, tmp_path, freeze):
    cfg = TrainConfig(method="contrastive", epochs=1, steps_per_epoch=1, split="none", freeze_bn=freeze,
                      **{**TINY, "model": "test_efficientnet"})
    trainer = Trainer(cfg, colour_set, tmp_path / "bn")
    before = {k: v.clone() for k, v in trainer.module.state_dict().items() if "running_mean" in k}
    trainer.run()
    after = trainer.module.state_dict()
    unchanged = all(torch.equal(before[k], after[k]) for k in before)
    assert before and unchanged == freeze


@pytest.mark.parametrize("size", [8, 4096])
def test_image_size_outside_what_a_checkpoint_may_hold_is_refused(size):
    # a checkpoint with sides above MAX_INPUT_SIDE could not be loaded again: refuse it before training
    from timm import create_model
    backbone = create_model("test_vit", pretrained=False, num_classes=0)
    with pytest.raises(RetrError, match=f"--image-size must be from 16 to 2048, got {size}"):
        loop_mod.data_config_for(backbone, size)
