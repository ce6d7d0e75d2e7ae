"""`retr train contrastive|triplet|simclr DATA --out DIR`: metric-learning trainers."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.errors import user_errors
from cli.options import (BatchSize, Device, JsonOut, ModelSpec, Quiet, RandomWeights, Seed, WeightsFile, Workers,
                         show_progress, weights_path)
from retrieval.train.config import MINER_NAMES, OPTIMIZERS

train_app = typer.Typer(help="Train embedding models. The checkpoint directory is a --model spec.",
                        no_args_is_help=True)

Data = Annotated[Path, typer.Argument(help="Class folders (DATA/<class>/<image>) or a path,label CSV.")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Checkpoint directory to write.")]
EmbeddingDim = Annotated[int, typer.Option("--embedding-dim", min=1, help="Embedding size (linear head).")]
ImageSize = Annotated[int | None, typer.Option("--image-size", min=16,
                                               help="Square input size (default: the backbone's).")]
Epochs = Annotated[int, typer.Option("--epochs", min=1)]
Steps = Annotated[int | None, typer.Option("--steps-per-epoch", min=1,
                                           help="Default: about one pass over the training images.")]
P = Annotated[int, typer.Option("--classes-per-batch", "-P", min=2, help="P classes per batch.")]
K = Annotated[int, typer.Option("--images-per-class", "-K", min=2, help="K images per class.")]
PKBatch = Annotated[int | None, typer.Option("--batch-size", min=1, help="Must equal P x K (default).")]
Optim = Annotated[str, typer.Option("--optimizer", help=f"{' or '.join(OPTIMIZERS)} (one-cycle learning rate).")]
Lr = Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate of the one-cycle policy.")]
Clip = Annotated[float, typer.Option("--grad-clip", min=0.0, help="Max gradient norm (0: off).")]
Margin = Annotated[float | None, typer.Option("--margin", min=0.0, help="Loss margin m.")]
MinerOpt = Annotated[str | None, typer.Option("--miner", help=f"{', '.join(MINER_NAMES)} or none.")]
MineEvery = Annotated[int, typer.Option("--mine-every", min=0, help="Offline hard-negative mining every "
                                                                   "E epochs (0: off).")]
Split = Annotated[str, typer.Option("--split", help="Validation split: images, classes (class-disjoint) "
                                                    "or none.")]
ValFraction = Annotated[float, typer.Option("--val-fraction", help="Share held out for validation.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run saved in --out.")]
TrainBn = Annotated[bool, typer.Option("--train-bn", help="Update BatchNorm statistics (default: keep the "
                                                         "pretrained ones).")]
MinCrop = Annotated[float, typer.Option("--min-crop", min=0.01, max=1.0,
                                        help="Smallest random-resized-crop scale of a training image "
                                             "(small, centred objects such as product shots want ~0.85).")]


def _run(config, data: Path, out: Path, resume: bool, quiet: bool, json_out: bool) -> None:
    from retrieval.images.decode import existing
    with user_errors():
        existing(data)  # before torch loads: a user error costs no start-up
        from retrieval.train.loop import train
        result = train(config, data, out, resume=resume, progress=show_progress(quiet))
    if json_out:
        return render.print_json(result.to_json())
    typer.echo(render.train_result(result))


def _labelled(method: str):
    def command(data: Data, out: Out, model: ModelSpec = None, weights: WeightsFile = None,
                random_weights: RandomWeights = False, embedding_dim: EmbeddingDim = 128,
                image_size: ImageSize = None, epochs: Epochs = 10, steps_per_epoch: Steps = None,
                classes_per_batch: P = 8, images_per_class: K = 4, batch_size: PKBatch = None,
                optimizer: Optim = "adamw", lr: Lr = 1e-3, grad_clip: Clip = 1.0, margin: Margin = None,
                miner: MinerOpt = None, mine_every: MineEvery = 0, split: Split = "images",
                val_fraction: ValFraction = 0.2, seed: Seed = 0, device: Device = "auto",
                workers: Workers = None, train_bn: TrainBn = False, min_crop: MinCrop = 0.6,
                resume: Resume = False, json_out: JsonOut = False, quiet: Quiet = False) -> None:
        from retrieval.models import DEFAULT_MODEL
        from retrieval.train.config import TrainConfig
        with user_errors():
            config = TrainConfig(
                method=method, model=model or DEFAULT_MODEL, weights=weights_path(weights),
                pretrained=not random_weights, embedding_dim=embedding_dim, image_size=image_size, epochs=epochs,
                steps_per_epoch=steps_per_epoch, classes_per_batch=classes_per_batch,
                images_per_class=images_per_class, batch_size=batch_size, optimizer=optimizer, lr=lr,
                grad_clip=grad_clip, margin=margin, miner=miner, mine_every=mine_every, split=split,
                val_fraction=val_fraction, seed=seed, device=device, workers=workers, freeze_bn=not train_bn,
                min_crop=min_crop)
        _run(config, data, out, resume, quiet, json_out)
    return command


train_app.command("contrastive", help="Contrastive loss over pairs: y d^2 + (1-y) max(0, m-d)^2.")(
    _labelled("contrastive"))
train_app.command("triplet", help="Triplet loss max(0, m + d(a,p)^2 - d(a,n)^2). Online and offline "
                                  "hard-negative mining.")(_labelled("triplet"))


@train_app.command("simclr")
def simclr(data: Annotated[Path, typer.Argument(help="Any folder of images (labels, if any, are used only "
                                                     "for validation), or a path,label CSV.")],
           out: Out, model: ModelSpec = None, weights: WeightsFile = None, random_weights: RandomWeights = False,
           embedding_dim: EmbeddingDim = 128,
           projection_dim: Annotated[int, typer.Option("--projection-dim", min=1)] = 128,
           image_size: ImageSize = None, epochs: Epochs = 10, steps_per_epoch: Steps = None,
           batch_size: BatchSize = 64, optimizer: Optim = "adamw", lr: Lr = 1e-3, grad_clip: Clip = 1.0,
           temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.1,
           min_crop: MinCrop = 0.2,
           jitter: Annotated[float, typer.Option("--jitter", help="Colour jitter strength.")] = 0.4,
           jitter_p: Annotated[float, typer.Option("--jitter-p")] = 0.8,
           grayscale_p: Annotated[float, typer.Option("--grayscale-p")] = 0.2,
           blur_p: Annotated[float, typer.Option("--blur-p")] = 0.5,
           split: Split = "images", val_fraction: ValFraction = 0.2, seed: Seed = 0, device: Device = "auto",
           workers: Workers = None, train_bn: TrainBn = False, resume: Resume = False, json_out: JsonOut = False,
           quiet: Quiet = False) -> None:
    """SimCLR: NT-Xent over two augmented views. The projection MLP is used by the loss only."""
    from retrieval.models import DEFAULT_MODEL
    from retrieval.train.augment import AugmentConfig
    from retrieval.train.config import TrainConfig
    with user_errors():
        try:
            augment = AugmentConfig(min_crop=min_crop, jitter=jitter, jitter_p=jitter_p, grayscale_p=grayscale_p,
                                    blur_p=blur_p)
        except ValueError as exc:
            from index.errors import RetrError
            raise RetrError(str(exc)) from None
        config = TrainConfig(
            method="simclr", model=model or DEFAULT_MODEL, weights=weights_path(weights),
            pretrained=not random_weights, embedding_dim=embedding_dim, projection_dim=projection_dim,
            image_size=image_size, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size,
            optimizer=optimizer, lr=lr, grad_clip=grad_clip, temperature=temperature, augment=augment,
            split=split, val_fraction=val_fraction, seed=seed, device=device, workers=workers,
            freeze_bn=not train_bn)
    _run(config, data, out, resume, quiet, json_out)
