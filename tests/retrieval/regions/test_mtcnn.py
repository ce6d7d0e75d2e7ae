import numpy as np
import pytest
from PIL import Image

pytest.importorskip("facenet_pytorch")
skdata = pytest.importorskip("skimage.data")

from retrieval.regions import RegionSettings, make_source, select  # noqa: E402


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_mtcnn_finds_the_astronauts_face_offline():
    image = Image.fromarray(skdata.astronaut())  # 512 x 512; the face spans about x 175-270, y 55-175
    source = make_source("mtcnn")
    faces = select(source.propose(image), image.size, RegionSettings(score_threshold=0.9))
    assert len(faces) == 1
    assert faces[0].label == "face" and faces[0].score > 0.99
    assert iou(faces[0].box, (175, 55, 270, 175)) > 0.6
    # no face in a photo of a coffee cup
    coffee = Image.fromarray(skdata.coffee())
    assert select(source.propose(coffee), coffee.size, RegionSettings(score_threshold=0.9)) == []
    assert np.isfinite(faces[0].box).all()
