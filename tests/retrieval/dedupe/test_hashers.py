import numpy as np
import pytest
from PIL import Image

from index.errors import RetrError
from retrieval.dedupe.hashers import HASHERS, get_hasher, pack, unpack
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
    assert HASHERS.names() == ["phash", "dhash", "ahash", "whash", "colorhash"]
    with pytest.raises(ValueError, match="already registered"):
        HASHERS.register("phash", get_hasher("dhash"))
    with pytest.raises(RetrError, match="unknown --hash 'nope'; known: ahash, colorhash, dhash, phash, whash"):
        get_hasher("nope")


@pytest.mark.parametrize("name", HASHERS.names())
def test_each_hasher_is_registered_under_its_own_name(name):
    assert get_hasher(name).name == name


def test_colorhash_width_is_14_bins_of_its_size():
    hasher = get_hasher("colorhash")
    assert hasher.bits() == 14 * 3 and hasher.bits(4) == 56 and hasher.nbytes(4) == 7
    assert get_hasher("phash").bits(16) == 256


def test_whash_needs_power_of_two():
    with pytest.raises(RetrError, match="power-of-two"):
        get_hasher("whash").size(6)
    assert get_hasher("whash").size(16) == 16 and get_hasher("phash").size(6) == 6
    with pytest.raises(RetrError, match="at least 2"):
        get_hasher("phash").size(1)


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
