"""One registry type for every kind of named component (losses, miners, hashers, region sources, ...).

Registries are filled explicitly, in the module that owns them, never as a side effect of importing
another module. Names keep their registration order, so help text can put the default first.
"""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from index.errors import RetrError

T = TypeVar("T")


class Registry(Generic[T]):
    """Items of one kind by name: a duplicate name is a ValueError, an unknown one a RetrError."""

    def __init__(self, kind: str):
        self.kind = kind  # how an unknown-name message calls the name: "loss", "--hash", "region source"
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise RetrError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}") from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)
