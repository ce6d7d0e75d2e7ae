"""A region source and the registry that names them (`--regions NAME[:ARGS]`)."""
from __future__ import annotations

import abc
import dataclasses
from typing import Callable

from PIL import Image

from index.errors import RetrError
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


SourceFactory = Callable[[str | None, SourceOptions], RegionSource]


@dataclasses.dataclass(frozen=True)
class SourceEntry:
    name: str
    factory: SourceFactory  # (argument after "NAME:", options) -> source
    help: str


SOURCES: dict[str, SourceEntry] = {}


def register_source(name: str, factory: SourceFactory, help: str) -> None:
    if name in SOURCES:
        raise ValueError(f"a region source named {name!r} is already registered")
    SOURCES[name] = SourceEntry(name, factory, help)


def parse_spec(spec: str) -> tuple[str, str | None]:
    name, sep, arg = spec.partition(":")
    return name.strip().lower(), (arg if sep else None)


def make_source(spec: str, options: SourceOptions = SourceOptions()) -> RegionSource:
    """The source a spec names: ``NAME`` or ``NAME:ARG`` (``coco:FILE``, ``grid:1,2,3``)."""
    from retrieval.regions.sources import builtin  # noqa: F401 - registers the built-in sources once

    name, arg = parse_spec(spec)
    entry = SOURCES.get(name)
    if entry is None:
        raise RetrError(f"unknown region source {spec!r}; known: {', '.join(sorted(SOURCES))}")
    return entry.factory(arg, options)


def known_sources() -> dict[str, str]:
    from retrieval.regions.sources import builtin  # noqa: F401

    return {name: entry.help for name, entry in sorted(SOURCES.items())}
