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
