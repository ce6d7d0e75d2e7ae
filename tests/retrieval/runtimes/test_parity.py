"""Each exporting runtime gives torch's vectors (cosine >= 0.9999) on the sample photos, for the default
model, mobilenetv2_100 (offline weights) and a checkpoint `retr train` wrote; auto picks one of them."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app
from retrieval.embed import Embedder
from retrieval.models.load import DEFAULT_MODEL, load_model
from retrieval.models.weights import packaged_weights
from tests.conftest import TINY_MODEL, copy_photos, cpu
from tests.retrieval.runtimes.conftest import cosines, photo_batch

RUNTIMES = ["openvino", "onnx"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
    """A checkpoint from a tiny `retr train` run (two classes of sample photos, with a linear head)."""
    tmp = tmp_path_factory.mktemp("train")
    copy_photos(tmp / "classes" / "a", ("coffee", "chelsea", "flower"))
    copy_photos(tmp / "classes" / "b", ("rocket", "astronaut", "camera"))
    out = tmp / "model"
    result = CliRunner().invoke(app, ["train", "triplet", str(tmp / "classes"), "--out", str(out), "--model",
                                      TINY_MODEL, "--random-weights", "--workers", "0", "-P", "2", "-K", "2",
                                      "--split", "none", "--epochs", "1", "--steps-per-epoch", "2",
                                      "--embedding-dim", "24", "--image-size", "64"])
    assert result.exit_code == 0, result.output
    return str(out)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("spec", [DEFAULT_MODEL, "mobilenetv2_100", "trained"])
def test_a_runtime_gives_torch_s_vectors_on_the_sample_photos(spec, runtime, trained, warnings_said):
    # mobilenetv2_100's offline weights come from an optional package; the ops are the same without them
    pretrained = spec != "mobilenetv2_100" or packaged_weights(spec) is not None
    model = load_model(trained if spec == "trained" else spec, pretrained=pretrained)
    reference = Embedder(model, cpu("torch"))
    batch = photo_batch(reference)
    exported = Embedder(model, cpu(runtime))
    assert exported.runtime_used == runtime, warnings_said()
    got, want = exported(batch), reference(batch)
    assert got.shape == want.shape == (len(batch), model.info.dim)
    assert cosines(got, want).min() >= 0.9999
    one = exported(batch[:1])  # another batch size: the export's batch axis is dynamic
    assert cosines(one, want[:1]).min() >= 0.9999
    assert not warnings_said()


def test_auto_on_a_cpu_picks_openvino_first():
    model = load_model(TINY_MODEL, pretrained=False)
    assert Embedder(model, cpu()).runtime_used == "openvino"
    assert Embedder(model, cpu("torch")).runtime_used == "torch"
