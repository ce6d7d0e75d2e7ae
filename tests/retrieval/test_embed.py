import numpy as np
import torch
from PIL import Image

from retrieval.embed import Preprocess, embed_images
from retrieval.models.load import load_model
from tests.conftest import PHOTOS, TINY_MODEL


def test_preprocess_split_matches_timm_transform_exactly():
    model = load_model(TINY_MODEL, pretrained=False)
    img = Image.open(PHOTOS / "coffee.jpg").convert("RGB")
    prep = Preprocess.from_model(model)
    torch.testing.assert_close(prep.normalise(prep.to_uint8(img)[None]), model.transform(img)[None])
    vecs = embed_images(model, [img, img.rotate(90)], device="cpu")
    assert vecs.shape == (2, model.info.dim) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)


def test_embed_files_gives_the_same_vectors_and_errors_on_every_runtime():
    """The runtime is below the pipeline: the same files decode (or fail) alike and embed to torch's vectors."""
    from retrieval.embed import Embedder, embed_files
    from tests.conftest import ODD
    model = load_model(TINY_MODEL, pretrained=False)
    paths = [str(p) for p in sorted(PHOTOS.glob("*.jpg"))[:5]] + [str(ODD / "corrupt.jpg"), str(ODD / "cmyk.jpg")]
    results = {}
    for runtime in ("torch", "onnx", "openvino"):
        embedder = Embedder(model, "cpu", runtime)
        assert embedder.runtime_used == runtime
        batches = list(embed_files(model, paths, batch_size=3, workers=0, embedder=embedder))
        results[runtime] = (np.concatenate([b.vectors for b in batches]),
                            [e for b in batches for e in b.errors])
    vectors, errors = results["torch"]
    assert vectors.shape == (6, model.info.dim) and [p for p, _ in errors] == [str(ODD / "corrupt.jpg")]
    for runtime in ("onnx", "openvino"):
        got, got_errors = results[runtime]
        assert got_errors == errors
        assert (got * vectors).sum(axis=1).min() >= 0.9999
