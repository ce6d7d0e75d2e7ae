"""A model's eval preprocessing on Pillow and numpy, without torch: timm's eval transform of a data config.

timm's eval transform is resize, centre crop, ToTensor, Normalize (``timm.data.transforms_imagenet_eval``).
Its resize and crop run here on the decoded PIL image with the same Pillow calls and the same sizes and
offsets, so the pixels are timm's exactly; the result is a uint8 CHW array, and the normalisation (ToTensor's
/255, mean, std) runs inside the exported network or on the torch device (retrieval.runtimes). Worker
processes that decode and prepare images therefore need neither torch nor timm.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any, Sequence

import numpy as np
from PIL import Image

from retrieval.images.decode import ImageLoadError, check_resize, decode_sized, read_bytes

DEFAULT_CROP_PCT = 0.875  # timm's, for a data config without crop_pct
INTERPOLATIONS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC, "box": Image.Resampling.BOX,
                  "hamming": Image.Resampling.HAMMING, "lanczos": Image.Resampling.LANCZOS}
CROP_MODES = ("center", "squash", "border")


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """Resize and crop to the model's input as timm's eval transform does; uint8 CHW out.

    ``mode``: ``center`` (the shorter side to ``scale[0]`` when the scaled size is square, else the ratio kept
    so both sides reach ``scale``; then a centre crop), ``squash`` (resized to ``scale``, ratio lost; centre
    crop) or ``border`` (the longer side fitted into ``scale``; centre crop or pad with the mean colour).
    """

    size: tuple[int, int]  # (height, width) the network takes
    scale: tuple[int, int]  # (height, width) the resize aims at before the crop
    mode: str
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_data_config(cls, cfg: dict[str, Any]) -> "Preprocess":
        """The eval preprocessing of a timm data config (input_size, interpolation, crop_pct, crop_mode, mean, std)."""
        _, height, width = (int(v) for v in cfg["input_size"])
        crop_pct = float(cfg.get("crop_pct") or DEFAULT_CROP_PCT)
        mode = cfg.get("crop_mode") or "center"
        interpolation = cfg.get("interpolation") or "bilinear"
        if mode not in CROP_MODES:
            raise ValueError(f"data_config.crop_mode {mode!r} is not one of {', '.join(CROP_MODES)}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"data_config.interpolation {interpolation!r} is not one of "
                             f"{', '.join(INTERPOLATIONS)}")
        scale = (math.floor(height / crop_pct), math.floor(width / crop_pct))
        return cls((height, width), scale, mode, interpolation, tuple(float(v) for v in cfg["mean"]),
                   tuple(float(v) for v in cfg["std"]))

    @property
    def draft_size(self) -> int:
        """A shorter side the image may be decoded at (JPEG's reduced-scale decoding) with nothing lost."""
        return max(self.scale)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the resize, as torchvision and timm compute it for a PIL image."""
        if self.mode == "squash":
            return self.scale[1], self.scale[0]
        if self.mode == "center" and self.scale[0] == self.scale[1]:
            # torchvision's Resize(int): the shorter side to it, the longer one truncated
            side = self.scale[0]
            if width <= height:
                return side, int(side * height / width)
            return int(side * width / height), side
        # timm's ResizeKeepRatio: longest=0 (center) fits the shorter side, longest=1 (border) the longer one
        ratio_h, ratio_w = height / self.scale[0], width / self.scale[1]
        ratio = max(ratio_h, ratio_w) if self.mode == "border" else min(ratio_h, ratio_w)
        return round(width / ratio), round(height / ratio)

    def to_uint8(self, img: Image.Image) -> np.ndarray:
        """uint8 [3, H, W] of an RGB image; an image that would resize to a giant is refused first."""
        check_resize(*img.size, self.draft_size)
        width, height = self.resized_size(*img.size)
        if (width, height) != img.size:
            img = img.resize((width, height), INTERPOLATIONS[self.interpolation])
        pixels = np.asarray(img.convert("RGB") if img.mode != "RGB" else img)
        fill = [round(255 * v) for v in self.mean] if self.mode == "border" else [0, 0, 0]
        return np.ascontiguousarray(crop_or_pad(pixels, self.size, fill).transpose(2, 0, 1))

    def to_batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        """uint8 [n, 3, H, W] of RGB images."""
        if not images:
            return np.zeros((0, 3, *self.size), np.uint8)
        return np.stack([self.to_uint8(img) for img in images])


def crop_or_pad(pixels: np.ndarray, size: tuple[int, int], fill: Sequence[int]) -> np.ndarray:
    """torchvision's center_crop (timm's center_crop_or_pad with ``fill``) of an HWC array: padded first where
    smaller than ``size`` (the odd pixel after), then the centre, offsets rounded half to even as Python does."""
    crop_h, crop_w = size
    h, w = pixels.shape[:2]
    if crop_w > w or crop_h > h:
        left, top = max(0, (crop_w - w) // 2), max(0, (crop_h - h) // 2)
        right, bottom = max(0, (crop_w - w + 1) // 2), max(0, (crop_h - h + 1) // 2)
        padded = np.empty((h + top + bottom, w + left + right, pixels.shape[2]), np.uint8)
        padded[...] = np.asarray(fill, np.uint8)
        padded[top:top + h, left:left + w] = pixels
        pixels, (h, w) = padded, padded.shape[:2]
    y, x = int(round((h - crop_h) / 2.0)), int(round((w - crop_w) / 2.0))
    return pixels[y:y + crop_h, x:x + crop_w]


def prepare_file(path: str, prep: Preprocess) -> dict[str, Any]:
    """One image file read, decoded (reduced-scale JPEG where nothing is lost) and prepared for ``prep``'s
    model: its uint8 array and facts (sha256, bytes, width, height), or the reason it cannot be used."""
    try:
        data = read_bytes(path)
        img, width, height = decode_sized(data, draft_size=prep.draft_size, reduce=True)
        pixels = prep.to_uint8(img)
    except ImageLoadError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop a build
        return {"error": f"cannot process: {type(exc).__name__}: {str(exc)[:120]}"}
    return {"pixels": pixels, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "width": width, "height": height}


def prepare_files(prep: Preprocess, paths: Sequence[str]) -> dict[str, Any]:
    """A batch of files prepared (in a worker process): each one's facts or error, and one uint8 array
    [n_ok, 3, H, W] of the good ones in order (one array crosses between processes, not n)."""
    items = [prepare_file(path, prep) for path in paths]
    good = [it.pop("pixels") for it in items if "pixels" in it]
    return {"items": items, "batch": np.stack(good) if good else None}
