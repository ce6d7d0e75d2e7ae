import numpy as np
import torch
from PIL import Image

from retrieval.embed import Embedder, Preprocess, embed_images
from retrieval.models.load import load_model
from tests.conftest import PHOTOS, TINY_MODEL


def test_preprocess_split_matches_timm_transform_exactly():
    model = load_model(TINY_MODEL, pretrained=False)
    img = Image.open(PHOTOS / "coffee.jpg").convert("RGB")
    prep = Preprocess.from_model(model, tensor_resize=False)
    assert prep.tensor_stage is None
    torch.testing.assert_close(prep.normalise(prep.to_uint8(img)[None]), model.transform(img)[None])
    vecs = embed_images(model, [img, img.rotate(90)], device="cpu")
    assert vecs.shape == (2, model.info.dim) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)


def test_tensor_resize_stays_within_two_grey_levels_of_timms_pil_stage_and_keeps_the_vectors():
    """The fast stage (torch's uint8 antialiased resize) against timm's own PIL stage on every sample photo,
    landscape, portrait and square, grey and colour, the pretrained default model's vectors compared."""
    model = load_model()
    fast, pil = Preprocess.from_model(model), Preprocess.from_model(model, tensor_resize=False)
    assert fast.tensor_stage is not None
    photos = [Image.open(p).convert("RGB") for p in sorted(PHOTOS.glob("*.jpg"))]
    photos += [photos[1].rotate(90, expand=True), photos[2].resize((300, 600))]  # portrait; 2:1 portrait
    a = torch.stack([fast.to_uint8(img) for img in photos])
    b = torch.stack([pil.to_uint8(img) for img in photos])
    assert a.shape == b.shape == (len(photos), 3, 224, 224) and a.is_contiguous()
    diff = (a.int() - b.int()).abs()
    assert diff.max() <= 2 and (diff > 0).float().mean() < 0.01
    embedder = Embedder(model, "cpu", "torch")
    assert (embedder(a) * embedder(b)).sum(axis=1).min() >= 0.9999
    for other in (photos[-1].resize((60, 80)), photos[2].resize((300, 900))):  # enlarged; portrait over 2:1
        assert torch.equal(fast.to_uint8(other), pil.to_uint8(other))  # timm's PIL stage, pixel for pixel


def test_a_stage_other_than_resize_and_centre_crop_runs_on_pil_as_timm_does():
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Resize
    from retrieval.embed import _tensor_stage
    assert _tensor_stage([Resize(256, InterpolationMode.BICUBIC), CenterCrop(224)]) is not None
    assert _tensor_stage([Resize((224, 224), InterpolationMode.BICUBIC), CenterCrop(224)]) is None  # squash
    assert _tensor_stage([Resize(256, InterpolationMode.NEAREST), CenterCrop(224)]) is None
    assert _tensor_stage([Resize(256, antialias=False), CenterCrop(224)]) is None
    assert _tensor_stage([Resize(256)]) is None
    calls = []
    prep = Preprocess(pil_stage=Compose([Resize(64), CenterCrop(56)]), mean=(0.5,) * 3, std=(0.5,) * 3,
                      draft_size=64, tensor_stage=lambda x: calls.append(x) or x[:, :56, :56].contiguous())
    assert prep.to_uint8(Image.new("L", (80, 64))).shape == (1, 56, 56) and not calls  # not RGB: PIL stage
    assert prep.to_uint8(Image.new("RGB", (80, 63))).shape == (3, 56, 56) and not calls  # enlarged: PIL
    assert prep.to_uint8(Image.new("RGB", (64, 129))).shape == (3, 56, 56) and not calls  # over 2:1: PIL
    assert prep.to_uint8(Image.new("RGB", (80, 64))).shape == (3, 56, 56) and len(calls) == 1


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


def test_embed_files_runs_its_workers_on_a_frozen_heap_and_thaws_it_after(monkeypatch):
    """The decode workers fork from a frozen heap; the heap is thawed when the files are done, and also when
    the caller stops reading early."""
    import gc

    from retrieval.embed import embed_files
    model = load_model(TINY_MODEL, pretrained=False)
    paths = [str(p) for p in sorted(PHOTOS.glob("*.jpg"))[:4]]
    counts = []
    for batch in embed_files(model, paths, batch_size=2, workers=1, runtime="torch"):
        counts.append(gc.get_freeze_count())
        assert batch.vectors.shape == (2, model.info.dim)
    assert len(counts) == 2 and min(counts) > 0
    assert gc.get_freeze_count() == 0
    stream = embed_files(model, paths, batch_size=2, workers=1, runtime="torch")
    next(stream)
    assert gc.get_freeze_count() > 0
    stream.close()
    assert gc.get_freeze_count() == 0
