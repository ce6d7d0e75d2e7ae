"""Boxes and segmentation masks from a COCO annotation file: every object of each image."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from index.errors import RetrError
from retrieval.regions.proposal import Proposal
from retrieval.regions.sources.base import RegionSource, SourceOptions


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """A COCO RLE mask (uncompressed counts list, or the compressed string) as bool [h, w]."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = _rle_from_string(counts)
    flat = np.zeros(h * w, dtype=bool)
    pos, value = 0, False
    for run in counts:
        if value:
            flat[pos:pos + run] = True
        pos += run
        value = not value
    return flat.reshape(w, h).T  # COCO runs go down columns (Fortran order)


def _rle_from_string(s: str) -> list[int]:
    """pycocotools' compressed RLE string (6 bits a char, continuation bit, deltas after the 3rd count)."""
    counts: list[int] = []
    pos = 0
    while pos < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[pos]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            pos += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def polygon_mask(polygons: list[list[float]], width: int, height: int) -> np.ndarray:
    canvas = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        if len(poly) >= 6:
            draw.polygon([(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)], fill=1)
    return np.array(canvas, dtype=bool)


class CocoSource(RegionSource):
    """``coco:FILE``: the annotations of each image, matched by its ``file_name`` (the longest path suffix)."""

    in_workers = True
    detects = False  # annotations describe catalog images, not a new query image

    def __init__(self, file: str | Path):
        path = Path(file).expanduser().resolve()
        try:
            raw = path.read_bytes()
            data = json.loads(raw)
        except OSError as exc:
            raise RetrError(f"cannot read COCO annotation file {file}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise RetrError(f"COCO annotation file {file} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
                or not isinstance(data.get("annotations"), list):
            raise RetrError(f"{file} is not a COCO annotation file (needs 'images' and 'annotations' lists)")
        super().__init__(f"coco:{path}")
        self.digest = hashlib.sha256(raw).hexdigest()[:16]
        names = {c["id"]: str(c.get("name", c["id"])) for c in data.get("categories", []) if "id" in c}
        self.images: dict[str, dict[str, Any]] = {}
        by_id: dict[Any, dict[str, Any]] = {}
        for img in data["images"]:
            if "file_name" not in img or "id" not in img:
                raise RetrError(f"{file}: an image entry lacks 'id' or 'file_name': {str(img)[:80]}")
            entry = {"width": img.get("width"), "height": img.get("height"), "objects": []}
            self.images[Path(str(img["file_name"])).as_posix().lstrip("./")] = entry
            by_id[img["id"]] = entry
        for ann in data["annotations"]:
            entry = by_id.get(ann.get("image_id"))
            if entry is None or "bbox" not in ann:
                continue
            ann = dict(ann)
            ann["label"] = names.get(ann.get("category_id"), None if ann.get("category_id") is None
                                     else str(ann.get("category_id")))
            entry["objects"].append(ann)

    @classmethod
    def from_arg(cls, arg: str | None, _options: SourceOptions) -> "CocoSource":
        if not arg:
            raise RetrError("the coco region source needs an annotation file: --regions coco:FILE")
        return cls(arg)

    def key(self) -> str:
        return f"{self.spec}@{self.digest}"

    def entry_for(self, path: str | None) -> dict[str, Any] | None:
        if path is None:
            return None
        parts = Path(path).as_posix().split("/")
        for start in range(len(parts)):  # longest suffix first
            entry = self.images.get("/".join(parts[start:]))
            if entry is not None:
                return entry
        return None

    def propose(self, image: Image.Image, path: str | None = None) -> list[Proposal]:
        entry = self.entry_for(path)
        if entry is None:
            return []
        # annotations are in the annotated image's pixels: scale to the file's when it was resized
        sx = image.width / entry["width"] if entry.get("width") else 1.0
        sy = image.height / entry["height"] if entry.get("height") else 1.0
        out = []
        for ann in entry["objects"]:
            x, y, w, h = (float(v) for v in ann["bbox"])
            mask = self._mask(ann.get("segmentation"), entry, image.size)
            out.append(Proposal((x * sx, y * sy, (x + w) * sx, (y + h) * sy), label=ann["label"],
                                score=float(ann["score"]) if "score" in ann else None, mask=mask))
        return out

    @staticmethod
    def _mask(seg: Any, entry: dict[str, Any], size: tuple[int, int]) -> np.ndarray | None:
        if not seg:
            return None
        width, height = int(entry.get("width") or size[0]), int(entry.get("height") or size[1])
        if isinstance(seg, list):
            mask = polygon_mask(seg, width, height)
        elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
            mask = decode_rle(seg)
        else:
            return None
        if mask.shape != (size[1], size[0]):
            mask = np.array(Image.fromarray(mask).resize(size, Image.NEAREST), dtype=bool)
        return mask
