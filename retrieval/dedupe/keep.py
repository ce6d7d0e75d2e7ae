"""Which image of a duplicate group to keep: a small registry of policies.

- ``largest``: the biggest file (most bytes; usually the least compressed copy);
- ``highest-resolution``: the most pixels (width x height), then the biggest file;
- ``oldest``: the earliest modification time (the original, before copies were made);
- ``first``: the first path in sorted order (predictable, e.g. for scripts).
Ties always fall back to the path, so the choice is deterministic.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from index.errors import RetrError


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What a keep policy looks at."""

    path: str
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    mtime: float | None = None


KeyFn = Callable[[Candidate], tuple]


def _largest(c: Candidate) -> tuple:
    return (-(c.bytes or 0), c.path)


def _resolution(c: Candidate) -> tuple:
    return (-((c.width or 0) * (c.height or 0)), -(c.bytes or 0), c.path)


def _oldest(c: Candidate) -> tuple:
    return (c.mtime if c.mtime is not None else float("inf"), c.path)


def _first(c: Candidate) -> tuple:
    return (c.path,)


KEEP_POLICIES: dict[str, KeyFn] = {}


def register_policy(name: str, key: KeyFn) -> None:
    if name in KEEP_POLICIES:
        raise ValueError(f"keep policy {name!r} is already registered")
    KEEP_POLICIES[name] = key


for _name, _key in (("largest", _largest), ("highest-resolution", _resolution), ("oldest", _oldest),
                    ("first", _first)):
    register_policy(_name, _key)

DEFAULT_KEEP = "largest"


def policy(name: str) -> KeyFn:
    try:
        return KEEP_POLICIES[name]
    except KeyError:
        raise RetrError(f"unknown --keep policy {name!r}; known: {', '.join(KEEP_POLICIES)}") from None


def choose_keep(candidates: Sequence[Candidate], name: str = DEFAULT_KEEP) -> int:
    """Index into ``candidates`` of the image to keep."""
    if not candidates:
        raise ValueError("cannot choose from an empty group")
    key = policy(name)
    return min(range(len(candidates)), key=lambda k: key(candidates[k]))
