import numpy as np
from PIL import Image

from retrieval.clustering import kmedoids as C
from retrieval.clustering.run import write_elbow
from tests.retrieval.clustering.blobs import blobs
from tests.retrieval.clustering.imports import fail_imports


def test_elbow_png_is_written_without_matplotlib(tmp_path, monkeypatch):
    fail_imports(monkeypatch, "matplotlib", ImportError("no matplotlib"))
    results = C.cluster_vectors(blobs(), range(2, 6))
    out = write_elbow(tmp_path / "elbow.png", results, best_k=4)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 400
        # the chosen k is drawn in red
        rgb = np.asarray(img.convert("RGB")).reshape(-1, 3).astype(int)
        assert ((rgb[:, 0] > 200) & (rgb[:, 1] < 80) & (rgb[:, 2] < 80)).any()
