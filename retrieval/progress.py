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


class StageBars:
    """Progress of work in named stages (index.ann.ondisk.Progress: ``(stage, done, total)``): one bar per
    stage, each closed as the next starts or as it completes."""

    def __init__(self, *, unit: str = "step"):
        self.unit = unit
        self._stage: str | None = None
        self._bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage or self._bar is None:
            self.close()
            self._stage = stage
            self._bar = progress_bar(total, desc=stage, unit=self.unit)
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def stage_progress(enabled: bool) -> StageBars | None:
    """Stage bars for a person watching; None (nothing reported, nothing imported) otherwise."""
    return StageBars() if enabled else None
