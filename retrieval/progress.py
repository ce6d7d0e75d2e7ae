"""The one progress bar of long work: shown only when the caller asks (off with --quiet or when not a TTY)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, TypeVar

if TYPE_CHECKING:
    from tqdm import tqdm

T = TypeVar("T")


def progress_bar(total: int | None = None, *, desc: str, unit: str = "img", enabled: bool = True,
                 iterable: Iterable[T] | None = None) -> "tqdm[T]":
    """A tqdm bar (a context manager; iterable when ``iterable`` is given) that draws nothing unless enabled."""
    from tqdm import tqdm  # on first use: a command that shows no bar never imports it (tqdm imports its GUI)
    return tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True, disable=not enabled)
