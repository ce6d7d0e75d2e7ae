"""Whatever goes wrong with a runtime, one warning line and torch's vectors: never a crash, never others."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from index.errors import RetrError
from retrieval.embed import Embedder
from retrieval.models.load import load_model
from retrieval.runtimes import RUNTIMES
from tests.conftest import TINY_MODEL, cpu
from tests.retrieval.runtimes.conftest import photo_batch


@pytest.fixture(scope="module")
def tiny():
    return load_model(TINY_MODEL, pretrained=False)


@pytest.fixture(scope="module")
def expected(tiny):
    reference = Embedder(tiny, cpu("torch"))
    batch = photo_batch(reference)
    return batch, reference(batch)


def _same_as_torch(embedder, expected) -> None:
    batch, want = expected
    np.testing.assert_array_equal(embedder(batch), want)  # torch itself: bit for bit


@pytest.mark.parametrize("runtime,module", [("openvino", "openvino"), ("onnx", "onnxruntime")])
def test_a_runtime_that_cannot_be_imported_falls_back_to_torch(tiny, expected, runtime, module, monkeypatch,
                                                               warnings_said):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    embedder = Embedder(tiny, cpu(runtime))
    assert embedder.runtime_used == "torch"
    said = warnings_said()
    assert len(said) == 1 and f"needs {module}, which cannot be imported" in said[0] and "\n" not in said[0]
    _same_as_torch(embedder, expected)


def test_auto_skips_a_missing_runtime_quietly(tiny, monkeypatch, warnings_said):
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert Embedder(tiny, cpu()).runtime_used == "onnx"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert Embedder(tiny, cpu()).runtime_used == "torch"
    assert not warnings_said()


def test_an_op_that_does_not_export_falls_back_to_torch(tiny, expected, monkeypatch, warnings_said, tmp_path):
    monkeypatch.setenv("RETR_CACHE", str(tmp_path))

    def fail(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::fancy_op' to ONNX opset version 17 is not supported")
    monkeypatch.setattr(type(RUNTIMES.get("onnx")), "export", fail)
    embedder = Embedder(tiny, cpu("onnx"))
    assert embedder.runtime_used == "torch"
    said = warnings_said()
    assert len(said) == 1 and "does not export to onnx" in said[0] and "aten::fancy_op" in said[0]
    _same_as_torch(embedder, expected)
    assert not any((tmp_path / "exports").iterdir())  # nothing half-written left


def test_vectors_that_differ_from_torch_s_are_refused(tiny, expected, monkeypatch, warnings_said, tmp_path):
    monkeypatch.setenv("RETR_CACHE", str(tmp_path))  # a new export, not yet checked
    rt = type(RUNTIMES.get("onnx"))
    real_open = rt.open

    def skewed_open(self, folder, **kwargs):
        session = real_open(self, folder, **kwargs)
        return lambda batch: session(batch) + 0.05  # what a wrong export would give
    monkeypatch.setattr(rt, "open", skewed_open)
    embedder = Embedder(tiny, cpu("onnx"))
    assert embedder.runtime_used == "torch"
    assert "differ from torch's" in warnings_said()[0]
    _same_as_torch(embedder, expected)


def test_bf16_is_only_for_openvino(tiny, warnings_said):
    assert Embedder(tiny, cpu("onnx", "bf16")).runtime_used == "torch"
    said = warnings_said()
    assert len(said) == 1 and "has no --precision bf16" in said[0]


def test_an_unknown_runtime_or_precision_is_a_one_line_error(tiny):
    with pytest.raises(RetrError, match="unknown --runtime 'tensorrt'; known: auto, torch, openvino, onnx"):
        Embedder(tiny, cpu("tensorrt"))
    with pytest.raises(RetrError, match="unknown --precision 'int4'"):
        Embedder(tiny, cpu("openvino", "int4"))
