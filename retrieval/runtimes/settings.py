"""How to run inference, as one value: device, runtime, precision, batch size and decode workers."""
from __future__ import annotations

import dataclasses
import os

from index.errors import RetrError
from retrieval.runtimes.base import AUTO, check_choice

DEVICES = "auto, cpu, cuda or cuda:N"
# what a GPU torch can use leaves on a Linux machine: NVIDIA's driver, WSL's GPU device, AMD's ROCm
GPU_DEVICE_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg", "/dev/kfd")


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
    """Where and how the embedding network runs; every command that embeds takes one.

    ``device``: auto (CUDA when present), cpu, cuda, cuda:N. ``runtime``: auto (torch on CUDA; on a CPU the
    fastest exact runtime installed), torch, openvino, onnx. ``precision``: f32 (exact) or bf16 (openvino).
    ``batch_size``: images per forward pass. ``workers``: decode worker processes (None: as many as help,
    retrieval.workers.embed_workers; 0: decode in the calling process).
    """

    device: str = AUTO
    runtime: str = AUTO
    precision: str = "f32"
    batch_size: int = 32
    workers: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.runtime, self.precision)
        if not (self.device in (AUTO, "cpu", "cuda") or self.device.startswith("cuda:")
                and self.device[5:].isdigit()):
            raise RetrError(f"unknown device {self.device!r}: use {DEVICES}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise RetrError(f"--batch-size must be a whole number of at least 1, got {self.batch_size!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 0):
            raise RetrError(f"--workers must be a whole number of at least 0, got {self.workers!r}")

    def replace(self, **changes: object) -> "InferenceSettings":
        return dataclasses.replace(self, **changes)

    def needs_torch(self) -> bool:
        """Whether embedding runs on torch whatever the cache holds: --runtime torch, or a CUDA device (asked
        for, or ``auto`` on a machine that may have one: torch then decides)."""
        if self.runtime == "torch" or self.device.startswith("cuda"):
            return True
        return self.device == AUTO and gpu_present()


def gpu_present() -> bool:
    """Whether this machine may have a GPU for torch (its driver's files exist), known without importing torch."""
    return any(os.path.exists(path) for path in GPU_DEVICE_FILES)
