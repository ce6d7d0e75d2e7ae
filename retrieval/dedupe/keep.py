"""Which image of a duplicate group to keep: a small registry of policies.

- ``original`` (default): the original rather than an edited copy: the most pixels (copies are
  downscaled or cropped), then a file whose EXIF names a camera (editors and re-saves usually drop it),
  then the earliest modification time, then the most bytes;
- ``largest``: the biggest file (most bytes; usually the least compressed copy);
- ``highest-resolution``: the most pixels (width x height), then the biggest file;
- ``oldest``: the earliest modification time (the original, before copies were made);
- ``first``: the first path in sorted order (predictable, e.g. for scripts).
Ties always fall back to the path, so the choice is deterministic.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from retrieval.registry import Registry


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What a keep policy looks at."""

    path: str
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    mtime: float | None = None
    camera: bool | None = None  # EXIF names a camera make or model (None: not read)


KeyFn = Callable[[Candidate], tuple]


def _original(c: Candidate) -> tuple:
    return (-((c.width or 0) * (c.height or 0)), not c.camera, c.mtime if c.mtime is not None else float("inf"),
            -(c.bytes or 0), c.path)


def _largest(c: Candidate) -> tuple:
    return (-(c.bytes or 0), c.path)


def _resolution(c: Candidate) -> tuple:
    return (-((c.width or 0) * (c.height or 0)), -(c.bytes or 0), c.path)


def _oldest(c: Candidate) -> tuple:
    return (c.mtime if c.mtime is not None else float("inf"), c.path)


def _first(c: Candidate) -> tuple:
    return (c.path,)


KEEP_POLICIES: Registry[KeyFn] = Registry("--keep policy")
KEEP_POLICIES.register("original", _original)
KEEP_POLICIES.register("largest", _largest)
KEEP_POLICIES.register("highest-resolution", _resolution)
KEEP_POLICIES.register("oldest", _oldest)
KEEP_POLICIES.register("first", _first)

DEFAULT_KEEP = "original"


def policy(name: str) -> KeyFn:
    return KEEP_POLICIES.get(name)


def choose_keep(candidates: Sequence[Candidate], name: str = DEFAULT_KEEP) -> int:
    """Index into ``candidates`` of the image to keep."""
    if not candidates:
        raise ValueError("cannot choose from an empty group")
    key = policy(name)
    return min(range(len(candidates)), key=lambda k: key(candidates[k]))
