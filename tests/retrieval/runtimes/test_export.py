"""The export cache: reused by later loads, a corrupt file exported again, two processes at once."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.embed import Embedder
from retrieval.models.load import load_model
from retrieval.runtimes import RUNTIMES
from retrieval.runtimes.export import cache_root, cached_export, export_folder
from tests.conftest import TINY_MODEL, cpu
from tests.retrieval.runtimes.conftest import cosines, photo_batch

ROOT = Path(__file__).resolve().parents[3]


def test_the_cache_lives_under_retr_cache(cache, tiny):
    assert cache_root() == cache
    folder = export_folder(tiny, RUNTIMES.get("onnx"))
    assert folder.parent == cache / "exports" and folder.name.startswith("onnx-")


@pytest.mark.parametrize("runtime", ["openvino", "onnx"])
def test_a_second_load_reuses_the_export(cache, tiny, runtime):
    rt = RUNTIMES.get(runtime)
    folder, exported = cached_export(tiny, rt)
    assert exported and sorted(p.name for p in folder.iterdir()) == sorted([*rt.files, "meta.json"])
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again, exported = cached_export(tiny, rt)
    assert again == folder and not exported
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left


@pytest.mark.parametrize("runtime", ["openvino", "onnx"])
def test_a_later_embedder_neither_exports_nor_checks_again(cache, tiny, runtime, monkeypatch):
    first = Embedder(tiny, cpu(runtime))
    assert first.runtime_used == runtime
    assert (export_folder(tiny, RUNTIMES.get(runtime)) / "checked-f32.json").is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("exported or checked again")
    monkeypatch.setattr(type(RUNTIMES.get(runtime)), "export", refuse)
    monkeypatch.setattr("retrieval.runtimes.torch.TorchSession.__call__", refuse)
    later = Embedder(tiny, cpu(runtime))
    assert later.runtime_used == runtime
    batch = photo_batch(later)
    np.testing.assert_allclose(later(batch), first(batch), rtol=0, atol=1e-6)


def test_another_model_identity_gets_another_export(cache, tiny):
    rt = RUNTIMES.get("onnx")
    other = load_model(TINY_MODEL, pretrained=False, embedding_dim=8)  # a head: another network, another dim
    assert export_folder(tiny, rt) != export_folder(other, rt)


@pytest.mark.parametrize("runtime", ["openvino", "onnx"])
def test_a_corrupt_cache_file_is_exported_again_and_the_vectors_stay_right(cache, tiny, runtime, warnings_said):
    rt = RUNTIMES.get(runtime)
    folder, _ = cached_export(tiny, rt)
    big = max((folder / name for name in rt.files), key=lambda p: p.stat().st_size)
    big.write_bytes(big.read_bytes()[: big.stat().st_size // 2])  # a truncated copy
    embedder = Embedder(tiny, cpu(runtime))
    assert embedder.runtime_used == runtime
    assert any("corrupt" in line for line in warnings_said())
    reference = Embedder(tiny, cpu("torch"))
    batch = photo_batch(reference)
    assert cosines(embedder(batch), reference(batch)).min() >= 0.9999


def test_a_damaged_export_whose_digests_were_rewritten_is_exported_again(cache, tiny, warnings_said):
    """Damage the digest check cannot see (meta.json rewritten to match) still never gives wrong vectors."""
    import hashlib
    import json
    rt = RUNTIMES.get("onnx")
    folder, _ = cached_export(tiny, rt)
    (folder / "model.onnx").write_bytes(b"not a model")
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"]["model.onnx"] = hashlib.sha256(b"not a model").hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))
    embedder = Embedder(tiny, cpu("onnx"))
    assert embedder.runtime_used == "onnx"
    assert any("cannot be opened" in line for line in warnings_said())
    assert (folder / "model.onnx").stat().st_size > 1000


_EXPORT = """
import sys
from retrieval.embed import Embedder
from retrieval.models.load import load_model
from retrieval.runtimes.settings import InferenceSettings
embedder = Embedder(load_model({model!r}, pretrained=False), InferenceSettings(device="cpu", runtime=sys.argv[1]))
print(embedder.runtime_used)
"""


@pytest.mark.parametrize("runtime", ["openvino"])  # the slow export: the two overlap for seconds
def test_two_processes_exporting_at_once_both_succeed_and_leave_one_export(cache, tiny, runtime):
    env = {**os.environ, "RETR_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    code = _EXPORT.format(model=TINY_MODEL)
    procs = [subprocess.Popen([sys.executable, "-c", code, runtime], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err
        assert out.split()[-1:] == [runtime], (out, err)  # neither fell back to torch
        assert "corrupt" not in err and "cannot be opened" not in err, err
    entries = sorted(p.name for p in (cache / "exports").iterdir())
    assert entries == [export_folder(tiny, RUNTIMES.get(runtime)).name], outs  # one export, no temporary left
    _, exported = cached_export(tiny, RUNTIMES.get(runtime))
    assert not exported  # and it verifies
