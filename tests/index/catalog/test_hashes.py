import numpy as np

from index.catalog.database import Catalog
from index.catalog.hashes import hash_counts, ids_with_sha256, load_hashes, pending_hashes, store_hashes


def _catalog(tmp_path):
    cat = Catalog.for_index(tmp_path / "idx")
    ids = cat.write_images([
        {"path": "/a.jpg", "sha256": "aa", "status": "ok"},
        {"path": "/b.jpg", "sha256": "bb", "status": "ok"},
        {"path": "/bad.jpg", "sha256": None, "status": "error", "error": "truncated"},
    ])
    return cat, ids


def test_store_load_and_incremental_by_sha256(tmp_path):
    cat, (a, b, bad) = _catalog(tmp_path)
    assert [p.path for p in pending_hashes(cat, "phash", 8)] == ["/a.jpg", "/b.jpg"]
    store_hashes(cat, "phash", 8, [(a, bytes(range(8)), "aa"), (b, bytes(8), "bb")])
    assert pending_hashes(cat, "phash", 8) == []
    assert [p.id for p in pending_hashes(cat, "dhash", 8)] == [a, b]  # per kind
    table = load_hashes(cat, "phash", 8, 8)
    assert table.ids.tolist() == [a, b]
    assert table.codes.dtype == np.uint8 and table.codes[0].tolist() == list(range(8))

    cat.write_images([{"path": "/b.jpg", "sha256": "b2"}])  # the file changed and was re-indexed
    assert [p.path for p in pending_hashes(cat, "phash", 8)] == ["/b.jpg"]
    assert load_hashes(cat, "phash", 8, 8).ids.tolist() == [a]  # the stale hash is never served
    store_hashes(cat, "phash", 8, [(b, bytes([1] * 8), "b2")])  # replaces, no duplicate row
    assert hash_counts(cat) == {("phash", 8): 2}
    assert load_hashes(cat, "phash", 8, 8).codes[1].tolist() == [1] * 8


def test_hashes_go_with_their_image(tmp_path):
    cat, (a, b, _) = _catalog(tmp_path)
    store_hashes(cat, "phash", 8, [(a, bytes(8), "aa"), (b, bytes(8), "bb")])
    cat.delete_images([a])
    assert hash_counts(cat) == {("phash", 8): 1}
    assert ids_with_sha256(cat, "bb") == {b: "/b.jpg"}
