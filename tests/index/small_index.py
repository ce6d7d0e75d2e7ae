"""A small index directory made without any model: three images with made-up 4-d vectors, and vectors.faiss."""
import numpy as np

from index.catalog.schema import STATUS_OK
from index.directory import IndexStore
from index.manifest import Manifest, ids_digest, read_manifest, write_manifest

DIM = 4


def unit(*values):
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def three_images(folder) -> IndexStore:
    """A writable store of images a, b, c (``/p/a.jpg`` ...) with vectors, its vectors.faiss built."""
    store = IndexStore.open(folder, create=True)
    write_manifest(store.dir, Manifest(model={"spec": "m", "weights": "w", "dim": DIM}, dim=DIM, factory="Flat",
                                       index_type="auto", vectors=0, ids_digest=ids_digest([])))
    store.manifest = read_manifest(store.dir)
    store.catalog.write_images([
        {"path": f"/p/{n}.jpg", "status": STATUS_OK, "sha256": f"sha-{n}", "width": 100, "height": 80,
         "vector": unit(1, i, 0, 0)} for i, n in enumerate("abc")])
    store.rebuild()
    return store


def ids_of(store):
    """Image id by name (a, b, c)."""
    return {p.rsplit("/", 1)[1][0]: r.id for p, r in store.catalog.image_rows().items()}
