"""What a region source is: ``RegionSource`` (proposes regions of an image) and the options it may need."""
from __future__ import annotations

import abc
import dataclasses
from typing import Callable

from PIL import Image

from retrieval.regions.proposal import Proposal


@dataclasses.dataclass(frozen=True)
class SourceOptions:
    """What a source may need besides its spec."""

    detector_weights: str | None = None  # a weights file for torchvision detectors
    download: bool = True  # torchvision detectors may download their pretrained weights
    device: str = "auto"


class RegionSource(abc.ABC):
    """Proposes regions of an image. Subclasses write ``propose``; ``key`` identifies what they propose."""

    #: cheap, picklable sources propose inside DataLoader workers; model-backed ones in the main process
    in_workers: bool = False
    #: whether the source can propose regions for an arbitrary new image (a query)
    detects: bool = True

    def __init__(self, spec: str):
        self.spec = spec

    @abc.abstractmethod
    def propose(self, image: Image.Image, path: str | None = None) -> list[Proposal]:
        """Raw proposals for ``image`` (read from ``path``, when it came from a file)."""

    def key(self) -> str:
        """Identifies the proposals: a changed key rebuilds an index's regions."""
        return self.spec


# (argument after "NAME:", options) -> source
SourceFactory = Callable[[str | None, SourceOptions], RegionSource]
