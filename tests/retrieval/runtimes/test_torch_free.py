"""With a checked export in the cache, embedding imports no torch, torchvision or timm: the export is found from
the model's identity, the photos are decoded and preprocessed on Pillow and numpy (in worker processes too),
and the vectors are torch's (cosine >= 0.9999) on the sample photos and the odd files, for each runtime, the
tiny test network, mobilenetv2_100 and a checkpoint `retr train` wrote."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.embed import Embedder, embed_files
from retrieval.models.identity import ModelName, ModelRef
from retrieval.models.load import load_model
from retrieval.models.weights import packaged_weights
from tests.conftest import ODD, PHOTOS, TINY_MODEL, cpu
from tests.retrieval.runtimes.conftest import cosines
from tests.retrieval.runtimes.test_parity import trained  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[3]
RUNTIMES = ["openvino", "onnx"]
PATHS = [str(p) for p in sorted(PHOTOS.glob("*.jpg")) + sorted(ODD.iterdir())]

# embeds PATHS with each (spec, pretrained, runtime) of argv[1] in a process where importing torch, torchvision
# or timm fails; prints each run's vectors, errors and runtime, and whether the export was found without torch
TORCHLESS = """
import json, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "timm"):
            raise ImportError(f"{name} is not to be imported here")
sys.meta_path.insert(0, Refuse())
from retrieval.embed import Embedder, embed_files
from retrieval.models.identity import ModelName, ModelRef
from tests.conftest import cpu
out = []
for spec, pretrained, runtime, workers in json.loads(sys.argv[1]):
    embedder = Embedder(ModelRef(ModelName(spec, pretrained=pretrained)), cpu(runtime, batch_size=5, workers=workers),
                        lazy=True)
    batches = list(embed_files(None, json.loads(sys.argv[2]), embedder=embedder))
    out.append({"found": embedder.found is not None, "runtime": embedder.runtime_used,
                "vectors": [v.tolist() for b in batches for v in b.vectors],
                "errors": [e for b in batches for e in b.errors], "infos": [i for b in batches for i in b.infos]})
print(json.dumps({"runs": out, "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "timm"))}))
"""


def torchless(cases: list[tuple[str, bool, str, int]]) -> tuple[list[dict], list[str]]:
    proc = subprocess.run([sys.executable, "-c", TORCHLESS, json.dumps(cases), json.dumps(PATHS)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    return data["runs"], data["heavy"]


def test_a_checked_export_embeds_files_without_torch_as_torch_does(trained):  # noqa: F811
    mobilenet = packaged_weights("mobilenetv2_100") is not None  # offline weights, or random ones: same ops
    specs = [(TINY_MODEL, False), ("mobilenetv2_100", mobilenet), (trained, True)]
    reference, cases = {}, []
    for spec, pretrained in specs:
        model = load_model(spec, pretrained=pretrained)
        batches = list(embed_files(model, PATHS, settings=cpu("torch", batch_size=5, workers=0)))
        reference[spec] = (np.concatenate([b.vectors for b in batches]), [list(e) for b in batches for e in b.errors],
                           [i for b in batches for i in b.infos])
        for runtime in RUNTIMES:
            assert Embedder(model, cpu(runtime)).runtime_used == runtime  # exported and checked, with torch
            cases.append((spec, pretrained, runtime, 2 if spec == TINY_MODEL else 0))
    runs, heavy = torchless(cases)
    assert heavy == []
    for (spec, _, runtime, _), run in zip(cases, runs):
        vectors, errors, infos = reference[spec]
        assert run["found"] and run["runtime"] == runtime
        assert run["errors"] == errors and len(errors) >= 5  # the odd files fail alike: empty, corrupt, bomb...
        assert run["infos"] == infos
        got = np.asarray(run["vectors"], dtype=np.float32)
        assert got.shape == vectors.shape and len(vectors) > len(list(PHOTOS.glob("*.jpg")))
        assert cosines(got, vectors).min() >= 0.9999, (spec, runtime)


def test_without_a_checked_export_the_model_loads_and_the_next_process_finds_it(cache_dir):
    ref = ModelRef(ModelName(TINY_MODEL, pretrained=False))
    first = Embedder(ref, cpu("onnx"))
    assert first.found is None and ref.loaded is not None and first.runtime_used == "onnx"
    again = ModelRef(ModelName(TINY_MODEL, pretrained=False))
    later = Embedder(again, cpu("onnx"))
    assert later.found is not None and later.found.runtime == "onnx" and again.loaded is None
    assert later.identity == first.identity and later.prep == first.prep
    probe = np.random.default_rng(0).integers(0, 255, (2, 3, *first.prep.size), dtype=np.uint8)
    np.testing.assert_allclose(later(probe), first(probe), atol=1e-6)
    # other weights are another export: not found, loaded (a checkpoint's or a --weights file's digest differs)
    other = ModelRef(ModelName(TINY_MODEL, pretrained=True))
    assert ModelName(TINY_MODEL, pretrained=True).export_key() != ModelName(TINY_MODEL, pretrained=False).export_key()
    assert other.name.export_key()["weights"] != "random:seed0"


def test_a_damaged_export_found_without_torch_is_exported_again(cache_dir, warnings_said):
    ref = ModelRef(ModelName(TINY_MODEL, pretrained=False))
    first = Embedder(ref, cpu("onnx"))
    folder = next(cache_dir.glob("exports/onnx-*"))
    with open(folder / "model.onnx", "r+b") as fh:
        fh.seek(200)
        fh.write(b"\0" * 64)
    again = ModelRef(ModelName(TINY_MODEL, pretrained=False))
    later = Embedder(again, cpu("onnx"))
    assert later.found is None and again.loaded is not None  # the digest caught it: the torch path re-exported
    assert later.runtime_used == "onnx" and any("corrupt" in line for line in warnings_said())
    probe = np.random.default_rng(1).integers(0, 255, (2, 3, *first.prep.size), dtype=np.uint8)
    np.testing.assert_allclose(later(probe), first(probe), atol=1e-6)


def test_on_a_gpu_machine_or_with_runtime_torch_no_export_is_looked_up(monkeypatch, cache_dir):
    from retrieval.runtimes import settings
    Embedder(ModelRef(ModelName(TINY_MODEL, pretrained=False)), cpu("openvino"))
    ref = ModelRef(ModelName(TINY_MODEL, pretrained=False))
    assert Embedder(ref, cpu("torch")).found is None and ref.loaded is not None
    monkeypatch.setattr(settings, "gpu_present", lambda: True)
    assert settings.InferenceSettings().needs_torch() and not cpu().needs_torch()
    ref = ModelRef(ModelName(TINY_MODEL, pretrained=False))
    assert Embedder(ref, settings.InferenceSettings(runtime="openvino"), lazy=True).found is None
    assert ref.loaded is not None


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A private export cache (these tests count and damage its exports)."""
    monkeypatch.setenv("RETR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_prefetched_export_is_opened_once_and_taken_by_one_embedder(cache_dir):
    from retrieval import embed
    Embedder(ModelRef(ModelName(TINY_MODEL, pretrained=False)), cpu("openvino"))  # exported and checked
    name = ModelName(TINY_MODEL, pretrained=False)
    embed.prefetch(name, cpu("openvino"))
    under_way = embed._prefetched[(name, "openvino", "f32")]
    embed.prefetch(name, cpu("openvino"))  # already under way: not started twice
    assert embed._prefetched[(name, "openvino", "f32")] is under_way
    first = Embedder(ModelRef(name), cpu("openvino"))
    assert first.found is not None and first._warm is not None and first.session is first._warm
    second = Embedder(ModelRef(name), cpu("openvino"))
    assert second._warm is None and second.session is not first.session  # a session serves one Embedder
    probe = np.random.default_rng(2).integers(0, 255, (2, 3, *first.prep.size), dtype=np.uint8)
    np.testing.assert_allclose(first(probe), second(probe), atol=1e-6)
    embed.prefetch(name, cpu("torch"))  # torch embeds: nothing to prefetch
    assert (name, "torch", "f32") not in embed._prefetched
    with embed.prefetching(name, cpu("onnx")):  # a command's block: what no Embedder took is dropped at its end
        assert (name, "onnx", "f32") in embed._prefetched
    assert (name, "onnx", "f32") not in embed._prefetched
