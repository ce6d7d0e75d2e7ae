"""Embedder.stream: batches run side by side on OpenVINO's async requests (one after another elsewhere),
and every batch comes back with its own tag, in order, with the vectors a single call gives."""
from __future__ import annotations

import numpy as np
import pytest

from retrieval.embed import Embedder
from retrieval.models.load import DEFAULT_MODEL, load_model
from tests.conftest import cpu
from tests.retrieval.runtimes.conftest import photo_batch


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_MODEL)


@pytest.mark.parametrize("runtime", ["openvino", "onnx", "torch"])
def test_a_stream_gives_each_batch_its_own_vectors_in_order(model, runtime):
    embedder = Embedder(model, cpu(runtime))
    assert embedder.runtime_used == runtime
    photos = photo_batch(embedder)
    # batches of different sizes and contents, an empty slot (a batch whose every file failed) among them
    batches = [photos[i % len(photos):][:1 + i % 3] for i in range(9)]
    batches.insert(4, None)
    batches.insert(6, np.concatenate([photos, photos, photos])[:20])  # more images than one request takes
    got = list(embedder.stream((b, f"tag{i}") for i, b in enumerate(batches)))
    assert [tag for _, tag in got] == [f"tag{i}" for i in range(len(batches))]
    for (vectors, _), batch in zip(got, batches):
        if batch is None:
            assert vectors is None
        else:
            assert vectors.shape == (len(batch), model.info.dim)
            np.testing.assert_allclose(vectors, embedder(batch), atol=1e-5)


def test_a_stream_left_early_finishes_its_requests_and_the_session_still_runs(model):
    embedder = Embedder(model, cpu("openvino"))
    photos = photo_batch(embedder)
    stream = embedder.stream((photos, i) for i in range(50))
    first, tag = next(stream)
    stream.close()  # the caller stops (an error while storing a batch): requests in flight are waited for
    assert tag == 0
    again = list(embedder.stream((photos[:2], i) for i in range(3)))
    np.testing.assert_allclose(again[2][0], first[:2], atol=1e-5)
    np.testing.assert_allclose(embedder(photos[:1].copy()), first[:1], atol=1e-5)


def test_embedders_that_stream_and_are_dropped_never_hang_the_process(tmp_path):
    """A streamed batch leaves nothing that needs the GIL behind: freeing the compiled network (which joins
    OpenVINO's threads) right after a stream once deadlocked a recall run. Checked in a child process."""
    import subprocess
    import sys
    code = (
        "import gc, numpy as np\n"
        "from retrieval.embed import Embedder\n"
        "from retrieval.models.load import DEFAULT_MODEL, load_model\n"
        "from tests.conftest import cpu\n"
        "model = load_model(DEFAULT_MODEL)\n"
        "batch = np.random.default_rng(0).integers(0, 255, (20, 3, 224, 224), dtype=np.uint8)\n"
        "for _ in range(6):\n"
        "    e = Embedder(model, cpu('openvino'))\n"
        "    assert sum(len(v) for v, _ in e.stream((batch, None) for _ in range(3))) == 60\n"
        "    del e\n"
        "    gc.collect()\n"
        "print('done')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[3]))
    assert out.returncode == 0 and out.stdout.strip().endswith("done"), out.stderr[-2000:]
