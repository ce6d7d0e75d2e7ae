"""Training data: labelled (class folders, CSV) or unlabelled images, bad-input checks, held-out splits.

Bad inputs never crash an epoch: missing CSV files, classes with a single image and undecodable images
are recorded as skips; an empty folder or nothing usable left is a one-line RetrError.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from index.errors import RetrError
from retrieval.images.decode import ImageLoadError, existing, load_image, scan, to_rgb
from retrieval.images.labelled import read_labelled

UNLABELLED = -1
Item = "Path | Image.Image"  # a file, or an image already in memory (benchmarks)
SPLITS = ("images", "classes", "none")


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """Images with integer labels (``UNLABELLED`` = -1) and the skips recorded while reading them."""

    items: Sequence[Any]  # Path or PIL image
    labels: np.ndarray  # int64
    classes: tuple[str, ...] = ()
    skipped: tuple[dict[str, str], ...] = ()

    def __post_init__(self) -> None:
        if len(self.items) != len(self.labels):
            raise ValueError(f"{len(self.items)} items but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labelled(self) -> bool:
        return len(self.labels) > 0 and bool((self.labels >= 0).all())

    def subset(self, positions: Sequence[int]) -> "ImageSet":
        pos = np.asarray(positions, dtype=np.int64)
        return ImageSet([self.items[i] for i in pos], self.labels[pos], self.classes, self.skipped)

    @classmethod
    def from_labels(cls, items: Sequence[Any], names: Sequence[str],
                    skipped: Sequence[dict[str, str]] = ()) -> "ImageSet":
        classes = tuple(sorted(set(names)))
        index = {c: i for i, c in enumerate(classes)}
        return cls(list(items), np.array([index[n] for n in names], np.int64), classes, tuple(skipped))


def read_images(data: str | Path, *, labelled: bool = True) -> ImageSet:
    """Class folders or a ``path,label`` CSV; with ``labelled=False`` also any folder of images."""
    data = existing(data)
    if labelled or data.is_file() or _has_class_folders(data):
        ls = read_labelled(data)
        skipped = [{"path": str(p), "reason": "file listed in the CSV does not exist"} for p in ls.missing]
        return ImageSet.from_labels(ls.paths, ls.labels, skipped)
    found = scan([data])
    if not found.files:
        raise RetrError(f"{data} holds no images")
    skipped = [{"path": p, "reason": r} for p, r in found.errors]
    return ImageSet([Path(f.path) for f in found.files], np.full(len(found.files), UNLABELLED, np.int64),
                    (), tuple(skipped))


def _has_class_folders(root: Path) -> bool:
    """Every image sits in a direct sub-folder of ``root`` (a class folder)."""
    files = scan([root]).files
    return bool(files) and all(Path(f.path).parent.parent == root.resolve() for f in files)


def drop_small_classes(images: ImageSet, minimum: int = 2) -> ImageSet:
    """Classes with fewer than ``minimum`` images cannot form positive pairs: recorded and left out."""
    counts = np.bincount(images.labels, minlength=len(images.classes))
    small = [c for c in range(len(images.classes)) if 0 < counts[c] < minimum]
    skipped = list(images.skipped) + [
        {"class": images.classes[c], "reason": f"only {counts[c]} image(s); a class needs {minimum} "
                                               f"for positive pairs"} for c in small]
    keep = np.flatnonzero(~np.isin(images.labels, small))
    # the left-out classes leave ``classes`` too, and labels are renumbered to stay 0..n_classes-1
    kept_classes = [c for c in range(len(images.classes)) if c not in small]
    code = np.full(len(images.classes), -1, np.int64)
    code[kept_classes] = np.arange(len(kept_classes))
    kept = ImageSet([images.items[i] for i in keep], code[images.labels[keep]],
                    tuple(images.classes[c] for c in kept_classes), tuple(skipped))
    n_classes = len(np.unique(kept.labels))
    if n_classes < 2:
        raise RetrError(f"metric learning needs at least 2 classes with {minimum}+ images each; the data "
                        f"has {n_classes} (skipped {len(small)} class(es) with too few images)")
    return kept


def split(images: ImageSet, how: str = "images", fraction: float = 0.2, seed: int = 0
          ) -> tuple[ImageSet, ImageSet | None]:
    """(train, validation): hold out images of every class, or whole classes (class-disjoint)."""
    if how not in SPLITS:
        raise RetrError(f"unknown --split {how!r}; use one of {', '.join(SPLITS)}")
    if how == "none" or not images.labelled:
        return images, None
    if not 0 < fraction < 1:
        raise RetrError(f"--val-fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    labels = images.labels
    classes = np.unique(labels)
    if how == "classes":
        n_val = int(round(fraction * len(classes)))
        if n_val < 2 or len(classes) - n_val < 2:
            raise RetrError(f"--split classes needs at least 2 training and 2 validation classes; "
                            f"{len(classes)} classes at --val-fraction {fraction} give {n_val} for validation")
        val_classes = rng.choice(classes, n_val, replace=False)
        is_val = np.isin(labels, val_classes)
    else:
        is_val = np.zeros(len(labels), bool)
        for c in classes:
            members = np.flatnonzero(labels == c)
            n_val = max(2, int(round(fraction * len(members))))  # a validation query needs a positive
            if len(members) - n_val >= 2:  # and training keeps a positive pair
                is_val[rng.choice(members, n_val, replace=False)] = True
        if is_val.sum() < 2:
            raise RetrError(f"too few images per class to hold out a validation split "
                            f"(--val-fraction {fraction}); use --split none")
    return images.subset(np.flatnonzero(~is_val)), images.subset(np.flatnonzero(is_val))


def load_item(item: Any) -> Image.Image:
    if isinstance(item, Image.Image):
        return to_rgb(item)
    return load_image(item)


class TrainDataset(Dataset):
    """Index -> {"x": transformed image (or a tuple of views), "label", "i"}; a bad file -> {"error"}."""

    def __init__(self, images: ImageSet, transform: Callable[[Image.Image], Any]):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            x = self.transform(load_item(self.images.items[i]))
        except ImageLoadError as exc:
            return {"i": int(i), "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop an epoch
            return {"i": int(i), "error": f"{self.images.items[i]}: {type(exc).__name__}: {str(exc)[:120]}"}
        return {"i": int(i), "x": x, "label": int(self.images.labels[i])}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the good items; the bad ones come back as ``errors`` (index, reason)."""
    good = [it for it in items if "x" in it]
    out: dict[str, Any] = {"errors": [(it["i"], it["error"]) for it in items if "error" in it],
                           "labels": torch.tensor([it["label"] for it in good], dtype=torch.int64),
                           "index": torch.tensor([it["i"] for it in good], dtype=torch.int64)}
    if good and isinstance(good[0]["x"], tuple):
        out["x"] = tuple(torch.stack([it["x"][v] for it in good]) for v in range(len(good[0]["x"])))
    else:
        out["x"] = torch.stack([it["x"] for it in good]) if good else None
    return out
