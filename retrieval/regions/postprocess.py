"""From a source's raw proposals to the regions that are embedded: filter, suppress, cap, pad, crop."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from retrieval.regions.proposal import Box, Proposal
from retrieval.regions.settings import RegionSettings

BLANK = (124, 116, 104)  # ImageNet mean colour: a blanked background normalises to about zero


def clip_box(box: Sequence[float], width: int, height: int) -> Box:
    x0, y0, x1, y1 = (float(v) for v in box)
    return (min(max(x0, 0.0), width), min(max(y0, 0.0), height), min(max(x1, 0.0), width),
            min(max(y1, 0.0), height))


def pad_box(box: Box, padding: float, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * padding, (y1 - y0) * padding
    return clip_box((x0 - dx, y0 - dy, x1 + dx, y1 + dy), width, height)


def _nms(proposals: list[Proposal], iou: float) -> list[Proposal]:
    """Per-label NMS (torchvision) over scored proposals; best score first."""
    if len(proposals) < 2:
        return proposals
    import torch  # only where there is something to suppress: region search and builds of grids import no torch
    from torchvision.ops import batched_nms
    boxes = torch.tensor([p.box for p in proposals], dtype=torch.float32)
    scores = torch.tensor([p.score for p in proposals], dtype=torch.float32)
    names = sorted({p.label or "" for p in proposals})
    groups = torch.tensor([names.index(p.label or "") for p in proposals], dtype=torch.int64)
    keep = batched_nms(boxes, scores, groups, iou).tolist()
    return [proposals[i] for i in keep]


def select(proposals: Sequence[Proposal], size: tuple[int, int], settings: RegionSettings) -> list[Proposal]:
    """Clip to the image, drop low scores and small boxes, NMS, cap, pad: the regions to embed."""
    width, height = size
    kept: list[Proposal] = []
    for p in proposals:
        p = p.with_box(clip_box(p.box, width, height))
        if p.score is not None and p.score < settings.score_threshold:
            continue
        if p.width < max(settings.min_size, 1.0) or p.height < max(settings.min_size, 1.0):
            continue
        kept.append(p)
    scored = [p for p in kept if p.score is not None]
    unscored = [p for p in kept if p.score is None]
    if settings.nms_iou is not None:
        scored = _nms(scored, settings.nms_iou)
    scored.sort(key=lambda p: -float(p.score))  # type: ignore[arg-type]
    out = scored + unscored
    if settings.max_regions is not None:
        out = out[:settings.max_regions]
    if settings.padding:
        out = [p.with_box(pad_box(p.box, settings.padding, width, height)) for p in out]
    return out


def crop(image: Image.Image, proposal: Proposal, *, blank_background: bool = True,
         fill: tuple[int, int, int] = BLANK) -> Image.Image:
    """The pixels of a region; with a mask (and ``blank_background``) everything outside it is blanked."""
    x0, y0, x1, y1 = (int(round(v)) for v in proposal.box)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    piece = image.crop((x0, y0, x1, y1))
    if proposal.mask is None or not blank_background:
        return piece
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    sub = proposal.mask[y0:y1, x0:x1]
    mask[:sub.shape[0], :sub.shape[1]] = sub
    arr = np.array(piece)
    arr[~mask] = fill
    return Image.fromarray(arr)
