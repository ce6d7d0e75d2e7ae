"""Region sources by name (`--regions NAME[:ARG]`): detectors, faces, annotation files and grid windows.

``SOURCES`` is filled here, explicitly. Each entry imports its module only when a source is made, so the
names and help text are available without torch (the CLI's help lists them).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from retrieval.registry import Registry

if TYPE_CHECKING:
    from retrieval.regions.sources.base import RegionSource, SourceFactory, SourceOptions


@dataclasses.dataclass(frozen=True)
class SourceEntry:
    factory: SourceFactory  # (argument after "NAME:", options) -> source
    help: str


def _grid(arg: str | None, options: SourceOptions) -> RegionSource:
    from retrieval.regions.sources.grid import GridSource
    return GridSource.from_arg(arg, options)


def _windows(arg: str | None, options: SourceOptions) -> RegionSource:
    from retrieval.regions.sources.grid import WindowSource
    return WindowSource.from_arg(arg, options)


def _mtcnn(arg: str | None, options: SourceOptions) -> RegionSource:
    from retrieval.regions.sources.mtcnn import MTCNNSource
    return MTCNNSource.from_arg(arg, options)


def _coco(arg: str | None, options: SourceOptions) -> RegionSource:
    from retrieval.regions.sources.coco import CocoSource
    return CocoSource.from_arg(arg, options)


def _detector(name: str) -> SourceFactory:
    def make(arg: str | None, options: SourceOptions) -> RegionSource:
        from retrieval.regions.sources.detectors import DetectorSource
        return DetectorSource.from_arg(name, arg, options)
    return make


SOURCES: Registry[SourceEntry] = Registry("region source")
SOURCES.register("grid", SourceEntry(_grid, "n x n grid cells at each pyramid level (grid:1,2,3,4)"))
SOURCES.register("windows", SourceEntry(
    _windows, "half-overlapping square windows, sides as fractions of the shorter side (windows:0.6,0.4,0.25)"))
SOURCES.register("mtcnn", SourceEntry(_mtcnn, "faces (MTCNN, weights bundled with facenet-pytorch)"))
SOURCES.register("coco", SourceEntry(_coco, "objects and polygons from a COCO annotation file (coco:FILE)"))
SOURCES.register("fasterrcnn", SourceEntry(_detector("fasterrcnn"), "torchvision Faster R-CNN v2 (COCO objects)"))
SOURCES.register("retinanet", SourceEntry(_detector("retinanet"), "torchvision RetinaNet v2 (COCO objects)"))
SOURCES.register("maskrcnn", SourceEntry(_detector("maskrcnn"),
                                         "torchvision Mask R-CNN v2 (COCO objects, masks blank the background)"))


def parse_spec(spec: str) -> tuple[str, str | None]:
    name, sep, arg = spec.partition(":")
    return name.strip().lower(), (arg if sep else None)


def make_source(spec: str, options: SourceOptions | None = None) -> RegionSource:
    """The source a spec names: ``NAME`` or ``NAME:ARG`` (``coco:FILE``, ``grid:1,2,3``)."""
    from retrieval.regions.sources.base import SourceOptions

    name, arg = parse_spec(spec)
    return SOURCES.get(name).factory(arg, options if options is not None else SourceOptions())


def known_sources() -> dict[str, str]:
    """Help text by source name, in registration order."""
    return {name: SOURCES.get(name).help for name in SOURCES}
