"""Regions of image files -> crops -> embeddings, a few images at a time.

Cheap sources (grid, windows, annotations) propose and crop inside DataLoader workers; model-backed
sources (MTCNN, detectors) run in the main process, where their network lives.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from index.catalog.regions import ImageDone, PendingImage, RegionRecord
from retrieval.embed import Embedder, Preprocess
from retrieval.images.decode import MAX_ASPECT, ImageLoadError, decode_sized, read_bytes
from retrieval.models.load import LoadedModel
from retrieval.progress import progress_bar
from retrieval.regions.postprocess import crop, select
from retrieval.regions.proposal import Proposal
from retrieval.regions.settings import RegionSettings
from retrieval.regions.sources.base import RegionSource
from retrieval.workers import embed_workers, frozen_heap


def region_crops(image: Image.Image, source: RegionSource, settings: RegionSettings,
                 path: str | None = None) -> tuple[list[Proposal], list[Image.Image]]:
    """The kept proposals of one image and the crop of each (mask-blanked when asked).

    A sliver longer than MAX_ASPECT times its width is dropped: resized for the model it would be a giant.
    """
    proposals = [p for p in select(source.propose(image, path), image.size, settings)
                 if max(p.width, p.height) <= MAX_ASPECT * max(min(p.width, p.height), 1.0)]
    return proposals, [crop(image, p, blank_background=settings.blank_background) for p in proposals]


@dataclasses.dataclass
class RegionFailure:
    image_id: int
    path: str
    error: str


class _RegionDataset(Dataset):
    def __init__(self, items: Sequence[PendingImage], source: RegionSource, settings: RegionSettings,
                 prep: Preprocess):
        self.items, self.source, self.settings, self.prep = list(items), source, settings, prep

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.items[i]
        try:
            data = read_bytes(item.path)
            image, _, _ = decode_sized(data)
            proposals, crops = region_crops(image, self.source, self.settings, item.path)
            tensors = torch.stack([self.prep.to_uint8(c) for c in crops]) if crops else None
        except ImageLoadError as exc:
            return {"i": i, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop a build
            return {"i": i, "error": f"cannot make regions: {type(exc).__name__}: {str(exc)[:120]}"}
        return {"i": i, "sha256": hashlib.sha256(data).hexdigest(), "size": image.size, "tensors": tensors,
                "regions": [(p.box, p.label, p.score, p.mask_area) for p in proposals]}


def embed_regions(model: LoadedModel, source: RegionSource, settings: RegionSettings,
                  items: Sequence[PendingImage], *, batch_size: int = 32, workers: int | None = None,
                  images_per_step: int = 8, device: str = "auto", progress: bool = False,
                  embedder: Embedder | None = None, runtime: str = "auto",
                  precision: str = "f32") -> Iterator[tuple[list[ImageDone], list[RegionFailure]]]:
    """For each step of a few images: the regions of each (with vectors), and the images that failed."""
    embedder = embedder or Embedder(model, device, runtime, precision)
    workers = (embed_workers() if workers is None else workers) if source.in_workers else 0
    loader = DataLoader(_RegionDataset(items, source, settings, embedder.prep), batch_size=images_per_step,
                        num_workers=workers, collate_fn=list, shuffle=False,
                        prefetch_factor=2 if workers else None)
    with frozen_heap(), progress_bar(len(items), desc="regions", enabled=progress) as bar:
        for step in loader:
            yield _embed_step(step, items, model, embedder, batch_size)
            bar.update(len(step))


def _embed_step(step: list[dict[str, Any]], items: Sequence[PendingImage], model: LoadedModel,
                embedder: Embedder, batch_size: int) -> tuple[list[ImageDone], list[RegionFailure]]:
    """The regions (with vectors) of one step's images, and the images that failed."""
    good = [it for it in step if "error" not in it]
    stacks = [it["tensors"] for it in good if it["tensors"] is not None]
    crops = torch.cat(stacks) if stacks else torch.zeros((0, 3, 1, 1), dtype=torch.uint8)
    vectors = np.concatenate([np.zeros((0, model.info.dim), np.float32)] + [
        embedder(crops[s:s + batch_size]) for s in range(0, len(crops), batch_size)])
    done, pos = [], 0
    for it in good:
        item = items[it["i"]]
        records = []
        for box, label, score, area in it["regions"]:
            records.append(RegionRecord(box=box, vector=vectors[pos], label=label, score=score, mask_area=area))
            pos += 1
        # the marker records the content read now: if the file changed since the image was
        # embedded, its regions are made again once the image is
        done.append(ImageDone(item.id, it["sha256"], it["size"], records))
    failed = [RegionFailure(items[it["i"]].id, items[it["i"]].path, it["error"]) for it in step if "error" in it]
    return done, failed
