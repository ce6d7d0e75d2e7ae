"""OpenVINO: the network converted from torch (no ONNX step), saved as IR (model.xml + model.bin).

f32 inference precision by default: OpenVINO's own default on a CPU with bf16 units is bf16, which
moves vectors (min cosine 0.98 against torch), so reduced precision is only used when asked for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from retrieval.runtimes.base import Runtime, Session


class _OpenVINOSession:
    def __init__(self, compiled: Any):
        self.compiled = compiled
        self.output = compiled.output(0)

    def __call__(self, uint8_batch: Any) -> Any:
        import numpy as np
        result = self.compiled(np.ascontiguousarray(uint8_batch.numpy()))
        return np.asarray(result[self.output], dtype=np.float32)


class OpenVINORuntime(Runtime):
    name = "openvino"
    module = "openvino"
    files = ("model.xml", "model.bin")
    precisions = ("f32", "bf16")

    def version(self) -> str:
        import openvino
        return str(openvino.__version__)

    def export(self, module: Any, example: Any, folder: Path) -> None:
        import warnings

        import openvino as ov
        import torch
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notes: not the user's concern
            converted = ov.convert_model(module, example_input=example,
                                         input=[(ov.PartialShape([-1, *example.shape[1:]]), ov.Type.u8)])
        ov.save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)

    def open(self, folder: Path, *, threads: int, precision: str) -> Session:
        import openvino as ov
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads,
                  "PERFORMANCE_HINT": "LATENCY"}
        # read the weights into memory, never mapped: a cache file rewritten under a mapping would crash us
        core.set_property({"ENABLE_MMAP": False})
        from retrieval.runtimes.altstack import enlarge_signal_stack
        enlarge_signal_stack()  # OpenVINO may enable AMX: see altstack
        return _OpenVINOSession(core.compile_model(core.read_model(str(folder / "model.xml")), "CPU", config))
