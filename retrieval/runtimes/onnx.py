"""ONNX Runtime: the network exported to ONNX (torch's TorchScript exporter, dynamic batch axis)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from retrieval.runtimes.base import Runtime, Session

OPSET = 17


class _OnnxSession:
    def __init__(self, session: Any):
        self.session = session
        self.input = session.get_inputs()[0].name

    def __call__(self, uint8_batch: Any) -> Any:
        import numpy as np
        out = self.session.run(None, {self.input: np.ascontiguousarray(uint8_batch)})[0]
        return np.asarray(out, dtype=np.float32)


class OnnxRuntime(Runtime):
    name = "onnx"
    module = "onnxruntime"
    distributions = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")
    files = ("model.onnx",)

    def export(self, module: Any, example: Any, folder: Path) -> None:
        import contextlib
        import io
        import warnings

        import torch
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(folder / "model.onnx"), dynamo=False,
                              input_names=["images"], output_names=["vectors"], opset_version=OPSET,
                              dynamic_axes={"images": {0: "batch"}, "vectors": {0: "batch"}})

    def open(self, folder: Path, *, threads: int, precision: str) -> Session:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        return _OnnxSession(ort.InferenceSession(str(folder / "model.onnx"), options,
                                                 providers=["CPUExecutionProvider"]))
