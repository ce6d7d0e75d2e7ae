"""Inference runtimes for the embedding network: torch, OpenVINO, ONNX Runtime.

base (the interface, RUNTIMES), settings (InferenceSettings: device, runtime, precision, batch size, workers),
torch (the reference, and CUDA), openvino, onnx (exporting runtimes), cache (the export cache, read without
torch), compiled (OpenVINO networks compiled once, kept next to their export), export (writing an export),
check (exactness against torch), choose (which runtime embeds).
Importing this package imports no runtime library and no torch.
"""
from retrieval.runtimes.base import AUTO, PRECISIONS, RUNTIMES, Runtime, Session, runtime_names
from retrieval.runtimes.onnx import OnnxRuntime
from retrieval.runtimes.openvino import OpenVINORuntime

RUNTIMES.register("openvino", OpenVINORuntime())
RUNTIMES.register("onnx", OnnxRuntime())

__all__ = ["AUTO", "PRECISIONS", "RUNTIMES", "Runtime", "Session", "runtime_names"]
