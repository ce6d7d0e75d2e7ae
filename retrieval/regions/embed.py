"""Regions of image files -> crops -> embeddings, a few images at a time.

Cheap sources (grid, windows, annotations) propose and crop inside DataLoader workers; model-backed
sources (MTCNN, detectors) run in the main process, where their network lives.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from index.catalog.regions import ImageDone, PendingImage, RegionRecord
from retrieval.embed import Embedder
from retrieval.images.decode import MAX_ASPECT, ImageLoadError, decode_sized, read_bytes
from retrieval.images.preprocess import Preprocess
from retrieval.progress import progress_bar
from retrieval.regions.postprocess import crop, select
from retrieval.regions.proposal import Proposal
from retrieval.regions.settings import RegionSettings
from retrieval.regions.sources.base import RegionSource
from retrieval.workers import embed_workers, ordered_map


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


def _region_item(i: int, item: PendingImage, source: RegionSource, settings: RegionSettings,
                 prep: Preprocess) -> dict[str, Any]:
    """One image's regions, cropped and prepared for the model (in a worker for the cheap sources)."""
    try:
        data = read_bytes(item.path)
        image, _, _ = decode_sized(data)
        proposals, crops = region_crops(image, source, settings, item.path)
        pixels = prep.to_batch(crops) if crops else None
    except ImageLoadError as exc:
        return {"i": i, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop a build
        return {"i": i, "error": f"cannot make regions: {type(exc).__name__}: {str(exc)[:120]}"}
    return {"i": i, "sha256": hashlib.sha256(data).hexdigest(), "size": image.size, "tensors": pixels,
            "regions": [(p.box, p.label, p.score, p.mask_area) for p in proposals]}


def _region_step(shared: tuple[RegionSource, RegionSettings, Preprocess], start: int,
                 items: Sequence[PendingImage]) -> list[dict[str, Any]]:
    return [_region_item(start + k, item, *shared) for k, item in enumerate(items)]


def embed_regions(embedder: Embedder, source: RegionSource, settings: RegionSettings,
                  items: Sequence[PendingImage], *, images_per_step: int = 8,
                  progress: bool = False) -> Iterator[tuple[list[ImageDone], list[RegionFailure]]]:
    """For each step of a few images: the regions of each (with vectors), and the images that failed.

    Cheap sources propose and crop in worker processes (``embedder.settings.workers``); model-backed ones here."""
    workers = embedder.settings.workers
    workers = (embed_workers() if workers is None else workers) if source.in_workers else 0
    items = list(items)
    steps = ((start, items[start:start + images_per_step]) for start in range(0, len(items), images_per_step))
    with progress_bar(len(items), desc="regions", enabled=progress) as bar:
        for step in ordered_map(_region_step, steps, shared=(source, settings, embedder.prep), workers=workers,
                                ahead=2):
            yield _embed_step(step, items, embedder)
            bar.update(len(step))


def _embed_step(step: list[dict[str, Any]], items: Sequence[PendingImage],
                embedder: Embedder) -> tuple[list[ImageDone], list[RegionFailure]]:
    """The regions (with vectors) of one step's images, and the images that failed."""
    good = [it for it in step if "error" not in it]
    stacks = [it["tensors"] for it in good if it["tensors"] is not None]
    crops = np.concatenate(stacks) if stacks else np.zeros((0, 3, 1, 1), dtype=np.uint8)
    batch_size = embedder.settings.batch_size
    vectors = np.concatenate([np.zeros((0, embedder.dim), np.float32)] + [
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
