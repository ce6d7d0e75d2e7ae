"""The runtime interface: a way to run the embedding network, and the registry of them by name.

Nothing here imports torch or a runtime library, so the CLI can list and check names at start-up.
"""
from __future__ import annotations

import abc
import dataclasses
import importlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from index.errors import RetrError
from retrieval.registry import Registry

if TYPE_CHECKING:
    import numpy as np
    import torch

AUTO = "auto"
PRECISIONS = ("f32", "bf16")  # f32 is exact (checked against torch); bf16 only when asked for


class Session(Protocol):
    """A loaded network: uint8 [B, 3, H, W] (a numpy array) -> L2-normalised float32 vectors [B, dim]."""

    def __call__(self, uint8_batch: np.ndarray) -> np.ndarray: ...


class Runtime(abc.ABC):
    """An exporting runtime: the network (normalisation + backbone + head + L2 norm) is exported once
    into a folder of ``files``, then opened from it with a thread count and a precision."""

    name: str
    module: str  # the library it needs, as imported
    distributions: tuple[str, ...]  # the packages that install it, as pip names them
    files: tuple[str, ...]  # what an export writes into its folder
    precisions: tuple[str, ...] = ("f32",)

    def load(self) -> None:
        """Import the library (ImportError, or whatever a broken install raises, when it cannot be)."""
        importlib.import_module(self.module)

    def installed(self) -> bool:
        """Whether the library is installed and not blocked, known without importing it."""
        try:
            self.version()
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):  # ValueError: a module set to None (blocked) in sys.modules
            return False

    def version(self) -> str:
        """The installed library's version, from package metadata (nothing imported); ImportError when it is
        not installed."""
        from retrieval.models.identity import installed_version
        version = installed_version(*self.distributions)
        if version is None:
            raise ImportError(f"{self.module} is not installed")
        return version

    @abc.abstractmethod
    def export(self, module: torch.nn.Module, example: torch.Tensor, folder: Path) -> None:
        """Write ``module`` (uint8 NCHW in, vectors out; batch size dynamic) into ``folder``."""

    @abc.abstractmethod
    def open(self, folder: Path, *, threads: int, precision: str) -> Session:
        """The exported network, ready to run."""


RUNTIMES: Registry[Runtime] = Registry("--runtime")


def runtime_names() -> list[str]:
    """Every name --runtime takes: auto, torch, then the exporting runtimes."""
    return [AUTO, "torch", *RUNTIMES.names()]


def check_choice(runtime: str, precision: str) -> None:
    if runtime not in runtime_names():
        raise RetrError(f"unknown --runtime {runtime!r}; known: {', '.join(runtime_names())}")
    if precision not in PRECISIONS:
        raise RetrError(f"unknown --precision {precision!r}; known: {', '.join(PRECISIONS)}")


@dataclasses.dataclass
class Opened:
    session: Session
    runtime: str  # the runtime that runs: "torch" after a fallback
    min_cosine: float = 1.0  # against torch on the probe batch
    exported: bool = False  # this call wrote the export (a later one reuses it)
