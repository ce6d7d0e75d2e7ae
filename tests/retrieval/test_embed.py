import gc

import numpy as np
import pytest
from PIL import Image

from retrieval.embed import Embedder, embed_files, embed_images
from retrieval.models.load import load_model
from tests.conftest import ODD, PHOTOS, TINY_MODEL, cpu


def test_embed_images_runs_timm_s_own_transform_and_network():
    """The reference: timm's eval transform (PIL, torchvision) and the network in torch, image by image."""
    import torch
    model = load_model(TINY_MODEL, pretrained=False)
    images = [Image.open(PHOTOS / "coffee.jpg").convert("RGB"), Image.open(PHOTOS / "rocket.jpg").convert("RGB")]
    images.append(images[0].rotate(90, expand=True))
    with torch.inference_mode():
        want = model.net(torch.stack([model.transform(img) for img in images])).numpy()
    for runtime in ("torch", "openvino"):
        got = embed_images(model, images, settings=cpu(runtime))
        assert got.shape == (3, model.info.dim) and np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
        assert (got * want).sum(axis=1).min() >= 0.9999


def test_embed_files_gives_the_same_vectors_and_errors_on_every_runtime():
    """The runtime is below the pipeline: the same files decode (or fail) alike and embed to torch's vectors."""
    model = load_model(TINY_MODEL, pretrained=False)
    paths = [str(p) for p in sorted(PHOTOS.glob("*.jpg"))[:5]] + [str(ODD / "corrupt.jpg"), str(ODD / "cmyk.jpg")]
    results = {}
    for runtime in ("torch", "onnx", "openvino"):
        embedder = Embedder(model, cpu(runtime, batch_size=3, workers=0))
        assert embedder.runtime_used == runtime
        batches = list(embed_files(model, paths, embedder=embedder))
        assert [len(b.paths) for b in batches] == [3, 3, 1]
        results[runtime] = (np.concatenate([b.vectors for b in batches]),
                            [e for b in batches for e in b.errors])
    vectors, errors = results["torch"]
    assert vectors.shape == (6, model.info.dim) and [p for p, _ in errors] == [str(ODD / "corrupt.jpg")]
    for runtime in ("onnx", "openvino"):
        got, got_errors = results[runtime]
        assert got_errors == errors
        assert (got * vectors).sum(axis=1).min() >= 0.9999


def test_decode_workers_give_the_in_process_result_on_a_frozen_heap_and_thaw_it_after():
    """Worker processes decode what the calling process would (same vectors, same facts, same order); they fork
    from a frozen heap, which is thawed when the files are done, and also when the caller stops reading early."""
    model = load_model(TINY_MODEL, pretrained=False)
    paths = [str(p) for p in sorted(PHOTOS.glob("*.jpg"))[:5]] + [str(ODD / "truncated.jpg")]
    here = list(embed_files(model, paths, settings=cpu("torch", batch_size=2, workers=0)))
    counts, there = [], []
    for batch in embed_files(model, paths, settings=cpu("torch", batch_size=2, workers=2)):
        counts.append(gc.get_freeze_count())
        there.append(batch)
    assert len(there) == 3 and min(counts) > 0 and gc.get_freeze_count() == 0
    for a, b in zip(here, there):
        assert a.paths == b.paths and a.ok == b.ok and a.infos == b.infos and a.errors == b.errors
        np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-6)
    assert there[-1].errors and there[-1].errors[0][0] == str(ODD / "truncated.jpg")
    stream = embed_files(model, paths, settings=cpu("torch", batch_size=2, workers=1))
    next(stream)
    assert gc.get_freeze_count() > 0
    stream.close()
    assert gc.get_freeze_count() == 0


def test_a_bad_setting_is_a_one_line_error_naming_it():
    from index.errors import RetrError
    from retrieval.runtimes.settings import InferenceSettings
    for bad, word in ((dict(runtime="tensorrt"), "--runtime"), (dict(precision="int4"), "--precision"),
                      (dict(device="gpu"), "device"), (dict(batch_size=0), "--batch-size"),
                      (dict(workers=-1), "--workers")):
        with pytest.raises(RetrError, match=word):
            InferenceSettings(**bad)
