"""torchvision's COCO detectors and segmenters (v2 FPN variants) as region sources.

Weights resolve in order: ``--detector-weights FILE``, torchvision's cached download, a download
(when allowed), else one clear error.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from index.errors import RetrError
from retrieval.models.load import resolve_device
from retrieval.models.weights import read_state_dict
from retrieval.regions.proposal import Proposal
from retrieval.regions.sources.base import RegionSource, SourceOptions
from retrieval.registry import Registry


@dataclasses.dataclass(frozen=True)
class Detector:
    name: str
    builder: Callable[..., torch.nn.Module]
    weights: Any  # the torchvision weights enum entry (its URL, categories)


@functools.cache
def detectors() -> Registry[Detector]:
    """The torchvision detectors by source name (built on first call: torchvision's detection models are
    imported only when a detector is asked for)."""
    from torchvision.models import detection as D

    registry: Registry[Detector] = Registry("detector")
    registry.register("fasterrcnn", Detector("fasterrcnn_resnet50_fpn_v2", D.fasterrcnn_resnet50_fpn_v2,
                                             D.FasterRCNN_ResNet50_FPN_V2_Weights.DEFAULT))
    registry.register("retinanet", Detector("retinanet_resnet50_fpn_v2", D.retinanet_resnet50_fpn_v2,
                                            D.RetinaNet_ResNet50_FPN_V2_Weights.DEFAULT))
    registry.register("maskrcnn", Detector("maskrcnn_resnet50_fpn_v2", D.maskrcnn_resnet50_fpn_v2,
                                           D.MaskRCNN_ResNet50_FPN_V2_Weights.DEFAULT))
    return registry


def cached_weights(weights: Any) -> Path | None:
    """torchvision's downloaded checkpoint for ``weights``, if it is already on this machine."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    return path if path.is_file() else None


def load_detector(detector: Detector, *, weights_file: str | None, download: bool) -> torch.nn.Module:
    """The detector with pretrained weights, or a RetrError saying how to get them."""
    if weights_file is not None:
        model = detector.builder(weights=None, weights_backbone=None,
                                 num_classes=len(detector.weights.meta["categories"]))
        try:
            model.load_state_dict(read_state_dict(weights_file))
        except RetrError:
            raise
        except (RuntimeError, KeyError, ValueError) as exc:
            raise RetrError(f"{weights_file} does not hold {detector.name} weights: "
                            f"{str(exc).splitlines()[0][:160]}") from exc
        return model.eval()
    if cached_weights(detector.weights) is None and not download:
        raise RetrError(f"no weights for the {detector.name} region source on this machine; pass "
                        f"--detector-weights FILE (torchvision's {Path(detector.weights.url).name})")
    try:
        return detector.builder(weights=detector.weights, progress=False).eval()
    except Exception as exc:  # noqa: BLE001 - offline, proxy, disk: one message
        raise RetrError(f"cannot download {detector.name} weights ({str(exc).splitlines()[0][:100]}); "
                        f"pass --detector-weights FILE (torchvision's {Path(detector.weights.url).name})") from exc


class DetectorSource(RegionSource):
    """``fasterrcnn`` / ``retinanet`` / ``maskrcnn``: COCO objects (boxes; masks from Mask R-CNN)."""

    def __init__(self, name: str, options: SourceOptions = SourceOptions()):
        self.detector = detectors().get(name)
        super().__init__(name)
        self.options = options
        self._net: torch.nn.Module | None = None
        self._device: torch.device | None = None

    @classmethod
    def from_arg(cls, name: str, arg: str | None, options: SourceOptions) -> "DetectorSource":
        if arg:
            raise RetrError(f"the {name} region source takes no argument, got {name}:{arg}")
        return cls(name, options)

    def key(self) -> str:
        weights = self.options.detector_weights
        return f"{self.spec}@{Path(weights).resolve() if weights else 'torchvision'}"

    def _model(self) -> torch.nn.Module:
        if self._net is None:
            self._device = resolve_device(self.options.device)
            self._net = load_detector(self.detector, weights_file=self.options.detector_weights,
                                      download=self.options.download).to(self._device)
        return self._net

    @torch.inference_mode()
    def propose(self, image: Image.Image, path: str | None = None) -> list[Proposal]:
        net = self._model()
        x = pil_to_tensor(image.convert("RGB")).float().div_(255.0).to(self._device)
        out = net([x])[0]
        names = self.detector.weights.meta["categories"]
        masks = out.get("masks")
        proposals = []
        for i, (box, label, score) in enumerate(zip(out["boxes"].tolist(), out["labels"].tolist(),
                                                    out["scores"].tolist())):
            mask = (masks[i, 0] > 0.5).cpu().numpy() if masks is not None else None
            name = names[label] if 0 <= label < len(names) else str(label)
            proposals.append(Proposal(tuple(box), label=name, score=float(score), mask=mask))
        return proposals
