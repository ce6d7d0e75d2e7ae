"""Compiled OpenVINO networks kept next to the export: imported by later sessions, never used when damaged,
for another OpenVINO build, device or setting, or once the export they came from changed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from retrieval.embed import Embedder
from retrieval.models.identity import ModelName, ModelRef
from retrieval.runtimes import RUNTIMES, compiled
from retrieval.runtimes.export import cached_export
from tests.conftest import TINY_MODEL, cpu
from tests.retrieval.runtimes.conftest import cosines, photo_batch

OPENVINO = RUNTIMES.get("openvino")


@pytest.fixture
def compiles(monkeypatch):
    """How many times OpenVINO compiled a network (imports of a kept one are not counted)."""
    count = []
    real = ov.Core.compile_model
    monkeypatch.setattr(ov.Core, "compile_model", lambda self, *a, **k: count.append(1) or real(self, *a, **k))
    return count


@pytest.fixture
def export(cache, tiny) -> Path:
    folder, _ = cached_export(tiny, OPENVINO)
    return folder


def probe(tiny) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (2, 3, *tiny.info.data_config["input_size"][1:]), np.uint8)


def session(folder: Path, threads: int = 2, precision: str = "f32"):
    return OPENVINO.open(folder, threads=threads, precision=precision)


def blobs(folder: Path) -> list[Path]:
    return sorted((folder / compiled.FOLDER).glob("*.blob"))


def test_a_compiled_network_is_kept_and_imported_by_the_next_session(export, tiny, compiles):
    x = probe(tiny)
    first = session(export)(x)
    assert len(compiles) == 1 and len(blobs(export)) == 1
    again = session(export)
    assert again._model is None  # nothing read from the export: the kept network is imported
    np.testing.assert_array_equal(again(x), first)
    assert len(compiles) == 1


def test_each_mode_and_setting_has_its_own_blob(export, tiny, compiles, monkeypatch):
    x = probe(tiny)
    s = session(export)
    s(x)
    list(s.stream([(x, None)]))  # the throughput compilation (a batch of one image)
    session(export, threads=1)(x)
    assert len(blobs(export)) == 3 and len(compiles) == 3
    monkeypatch.setattr(s, "fixed_throughput_batch", False)  # build_settings.py's dynamic-batch stream
    s._compiled.clear()
    list(s.stream([(x, None)]))
    assert len(blobs(export)) == 4 and len(compiles) == 4


@pytest.mark.parametrize("change", ["bytes flipped", "truncated", "digest of other bytes"])
def test_a_damaged_blob_is_never_imported(export, tiny, compiles, change, warnings_said):
    x = probe(tiny)
    right = session(export)(x)
    (blob,) = blobs(export)
    data = bytearray(blob.read_bytes())
    if change == "bytes flipped":  # OpenVINO itself imports this one silently, with other weights
        mid = len(data) // 2
        data[mid:mid + 64] = bytes(b ^ 0x55 for b in data[mid:mid + 64])
    elif change == "truncated":
        data = data[:len(data) // 3]
    else:
        data[:compiled.DIGEST] = b"0" * compiled.DIGEST
    blob.write_bytes(bytes(data))
    got = session(export)(x)
    np.testing.assert_array_equal(got, right)
    assert len(compiles) == 2 and any("compiled network" in line for line in warnings_said())
    assert blob.read_bytes() != bytes(data)  # kept again, whole
    session(export)(x)
    assert len(compiles) == 2


def test_a_blob_of_another_openvino_build_or_cpu_is_not_used(export, tiny, compiles, monkeypatch):
    x = probe(tiny)
    session(export)(x)
    monkeypatch.setattr(ov, "get_version", lambda: "2099.1.0-other-build")
    session(export)(x)
    assert len(compiles) == 2 and len(blobs(export)) == 2
    monkeypatch.setattr(compiled, "cpu_flags", lambda: ["avx2"])  # a CPU with other instructions
    session(export)(x)
    assert len(compiles) == 3 and len(blobs(export)) == 3


def test_a_blob_of_another_export_in_the_same_folder_is_not_used(export, tiny, compiles):
    import json
    x = probe(tiny)
    session(export)(x)
    meta = json.loads((export / "meta.json").read_text())
    meta["files"]["model.bin"] = "0" * 64  # files the blob was not compiled from
    (export / "meta.json").write_text(json.dumps(meta))
    session(export)(x)
    assert len(compiles) == 2 and len(blobs(export)) == 2


def test_a_cache_that_cannot_be_written_only_costs_the_compile(export, tiny, compiles, warnings_said):
    (export / compiled.FOLDER).write_text("a file where the folder would be")
    x = probe(tiny)
    right = session(export)(x)
    np.testing.assert_array_equal(session(export)(x), right)
    assert len(compiles) == 2 and not warnings_said()


def test_a_changed_export_is_exported_again_and_its_old_blob_is_never_imported(cache, tiny, compiles,
                                                                                warnings_said):
    first = Embedder(ModelRef(ModelName(TINY_MODEL, pretrained=False)), cpu("openvino"))
    batch = photo_batch(first)
    right = first(batch)
    folder = first.found.folder if first.found else cached_export(tiny, OPENVINO)[0]
    later = Embedder(ModelRef(ModelName(TINY_MODEL, pretrained=False)), cpu("openvino"))
    later(batch)
    assert later.found is not None and blobs(folder)
    before = len(compiles)
    with open(folder / "model.bin", "r+b") as fh:  # the weights changed in place (same size)
        fh.seek(fh.seek(0, 2) // 2)
        fh.write(b"\x7f" * 256)
    ref = ModelRef(ModelName(TINY_MODEL, pretrained=False))
    again = Embedder(ref, cpu("openvino"))
    assert again.found is None and ref.loaded is not None  # the digest caught it: exported again with torch
    assert any("corrupt" in line for line in warnings_said())
    got = again(batch)
    assert len(compiles) > before  # compiled from the new export, not imported from the old one's blob
    assert cosines(got, right).min() >= 0.9999
