import numpy as np
import pytest
from PIL import Image

from index.errors import RetrError
from retrieval.dedupe.hashers import HASHERS, Hasher, HasherRegistry, get_hasher, pack, unpack
from retrieval.dedupe.parallel_hashing import HashJob, hash_bytes, hash_file, hash_files
from tests.retrieval.dedupe.photos import photo


@pytest.mark.parametrize("name", HASHERS.names())
def test_every_hasher_packs_its_declared_width(name):
    hasher = get_hasher(name)
    img = photo("coffee")
    bits = hasher.packed(img)
    assert len(bits) == hasher.nbytes()
    h = hasher.hash_image(img)
    assert np.array_equal(unpack(bits, hasher.bits()), np.asarray(h.hash).ravel())
    assert 0 <= hasher.threshold() < hasher.bits()


def test_wraps_imagehash_exactly():
    import imagehash
    img = photo("chelsea")
    assert get_hasher("phash").packed(img) == pack(imagehash.phash(img))
    assert get_hasher("dhash").packed(img, 16) == pack(imagehash.dhash(img, hash_size=16))


def test_registry_rejects_duplicates_and_lists_known_names():
    reg = HasherRegistry()
    h = Hasher("x", lambda im, s: None, 8, 4, None, "")
    reg.register(h)
    with pytest.raises(ValueError, match="already registered"):
        reg.register(h)
    with pytest.raises(RetrError, match="phash"):
        get_hasher("nope")


def test_whash_needs_power_of_two():
    with pytest.raises(RetrError, match="power-of-two"):
        get_hasher("whash").size(6)


def test_draft_decode_keeps_the_phash(tmp_path):
    big = photo("astronaut").resize((2048, 2048), Image.BICUBIC)
    path = tmp_path / "big.jpg"
    big.save(path, quality=90)
    fast = hash_file(str(path), HashJob("phash", draft=True))
    full = hash_file(str(path), HashJob("phash", draft=False))
    assert (fast.width, fast.height) == (2048, 2048)  # full resolution reported despite the draft
    d = np.bitwise_count(np.frombuffer(fast.bits, np.uint8) ^ np.frombuffer(full.bits, np.uint8)).sum()
    assert d <= 2


def test_bad_file_is_a_result_not_an_exception(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    res = hash_bytes(bad.read_bytes(), HashJob(), str(bad))
    assert res.bits is None and res.sha256 and "not an image" in res.error


def test_parallel_hashing_matches_serial(tmp_path):
    paths = []
    for k, name in enumerate(["coffee", "chelsea", "rocket", "astronaut"]):
        p = tmp_path / f"{k}.jpg"
        photo(name).save(p)
        paths.append(str(p))
    serial = list(hash_files(paths, HashJob(), workers=1, chunk=1))
    parallel = list(hash_files(paths, HashJob(), workers=2, chunk=1))
    assert [r.path for r in parallel] == paths
    assert [r.bits for r in parallel] == [r.bits for r in serial]
