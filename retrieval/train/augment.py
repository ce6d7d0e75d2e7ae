"""Training-time image transforms: light augmentation for labelled metric learning, SimCLR's for views.

Sizes, mean and std always come from the model's timm data config, never hard-coded. torchvision is
imported when a transform is made, so `AugmentConfig` can be checked without it.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from PIL import Image

from retrieval.images.decode import to_rgb

if TYPE_CHECKING:
    import torch


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """SimCLR's augmentations (Chen et al. 2020, appendix A) with configurable strengths."""

    min_crop: float = 0.2  # random resized crop: scale in [min_crop, 1]
    flip: float = 0.5
    jitter: float = 0.4  # brightness, contrast, saturation strength; hue is a quarter of it
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)

    def __post_init__(self) -> None:
        if not 0 < self.min_crop <= 1:
            raise ValueError(f"min_crop must be in (0, 1], got {self.min_crop}")
        for name in ("flip", "jitter_p", "grayscale_p", "blur_p"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} is a probability, got {value}")
        if self.jitter < 0:
            raise ValueError(f"jitter strength must be >= 0, got {self.jitter}")


def _size(data_config: dict[str, Any]) -> tuple[int, int]:
    _, h, w = data_config["input_size"]
    return int(h), int(w)


def _to_tensor(data_config: dict[str, Any]) -> list[Callable]:
    from torchvision import transforms as T
    return [T.ToTensor(), T.Normalize(mean=list(data_config["mean"]), std=list(data_config["std"]))]


def metric_transform(data_config: dict[str, Any], *, min_crop: float = 0.6) -> Callable[[Image.Image], torch.Tensor]:
    """Labelled training: a mild random resized crop and a flip, then the model's normalisation."""
    from torchvision import transforms as T
    return T.Compose([T.Lambda(to_rgb), T.RandomResizedCrop(_size(data_config), scale=(min_crop, 1.0),
                                                             antialias=True),
                      T.RandomHorizontalFlip(), *_to_tensor(data_config)])


def simclr_transform(data_config: dict[str, Any], cfg: AugmentConfig = AugmentConfig()
                     ) -> Callable[[Image.Image], torch.Tensor]:
    """One random SimCLR view: crop, flip, colour jitter, grayscale, Gaussian blur, normalisation."""
    from torchvision import transforms as T
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
