"""Training-time image transforms: light augmentation for labelled metric learning, SimCLR's for views.

Sizes, mean and std always come from the model's timm data config, never hard-coded.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from PIL import Image
from torchvision import transforms as T

from retrieval.images.decode import to_rgb
from retrieval.train.config import AugmentConfig


def _size(data_config: dict[str, Any]) -> tuple[int, int]:
    _, h, w = data_config["input_size"]
    return int(h), int(w)


def _to_tensor(data_config: dict[str, Any]) -> list[Callable]:
    return [T.ToTensor(), T.Normalize(mean=list(data_config["mean"]), std=list(data_config["std"]))]


def metric_transform(data_config: dict[str, Any], *, min_crop: float = 0.6) -> Callable[[Image.Image], torch.Tensor]:
    """Labelled training: a mild random resized crop and a flip, then the model's normalisation."""
    return T.Compose([T.Lambda(to_rgb), T.RandomResizedCrop(_size(data_config), scale=(min_crop, 1.0),
                                                             antialias=True),
                      T.RandomHorizontalFlip(), *_to_tensor(data_config)])


def simclr_transform(data_config: dict[str, Any], cfg: AugmentConfig = AugmentConfig()
                     ) -> Callable[[Image.Image], torch.Tensor]:
    """One random SimCLR view: crop, flip, colour jitter, grayscale, Gaussian blur, normalisation."""
    h, w = _size(data_config)
    kernel = max(3, (min(h, w) // 10) | 1)  # about 10% of the side, odd, as in the paper
    s = cfg.jitter
    return T.Compose([
        T.Lambda(to_rgb),
        T.RandomResizedCrop((h, w), scale=(cfg.min_crop, 1.0), antialias=True),
        T.RandomHorizontalFlip(cfg.flip),
        T.RandomApply([T.ColorJitter(s, s, s, min(0.5, s / 4))], p=cfg.jitter_p),
        T.RandomGrayscale(cfg.grayscale_p),
        T.RandomApply([T.GaussianBlur(kernel, sigma=cfg.blur_sigma)], p=cfg.blur_p),
        *_to_tensor(data_config)])


class TwoViews:
    """Two independent draws of a random transform of the same image."""

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor]):
        self.transform = transform

    def __call__(self, img: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(img), self.transform(img)
