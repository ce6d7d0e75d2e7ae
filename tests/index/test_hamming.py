import numpy as np
import pytest

from index.hamming import hamming, pairs_within, plan, search_within, similar_pairs, similar_to


def _brute(codes, radius):
    bits = np.unpackbits(codes, axis=1).astype(np.int16)
    d = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    i, j = np.nonzero(np.triu(d <= radius, 1))
    return set(zip(i.tolist(), j.tolist(), d[i, j].tolist()))


def _planted(rng, n, nbytes, rate=0.06):
    codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    half = n // 2
    flips = np.packbits(rng.random((half, nbytes * 8)) < rate, axis=1)
    codes[half:2 * half] = codes[:half] ^ flips  # near-duplicates of the first half
    return codes


@pytest.mark.parametrize("method", ["flat", "mih", "multihash", "auto"])
@pytest.mark.parametrize("nbytes,radius", [(8, 0), (8, 8), (8, 12), (6, 4), (32, 20)])
def test_pairs_equal_brute_force(method, nbytes, radius):
    codes = _planted(np.random.default_rng(nbytes * 100 + radius), 400, nbytes)
    i, j, d = pairs_within(codes, radius, method=method)
    assert set(zip(i.tolist(), j.tolist(), d.tolist())) == _brute(codes, radius)
    assert (i < j).all()


def test_search_within_equals_brute_force():
    rng = np.random.default_rng(3)
    codes = _planted(rng, 600, 8)
    queries = codes[::7] ^ np.packbits(rng.random((len(codes[::7]), 64)) < 0.05, axis=1)
    for method in ("flat", "mih"):
        r, c, d = search_within(codes, queries, 10, method=method)
        full = np.bitwise_count(queries[:, None, :] ^ codes[None, :, :]).sum(-1)
        tr, tc = np.nonzero(full <= 10)
        assert list(zip(r.tolist(), c.tolist())) == list(zip(tr.tolist(), tc.tolist()))
        assert (d == full[tr, tc]).all()


def test_plan_prefers_multi_index_hashing_for_large_collections():
    assert plan(100, 100, 64, 8).method == "flat"
    big = plan(1_000_000, 1_000_000, 64, 8)
    assert big.method == "mih" and big.nhash * big.b <= 64 and big.nflip == 8 // big.nhash
    with pytest.raises(ValueError, match="known"):
        plan(10, 10, 64, 8, method="lsh")


def test_hamming_rows():
    a = np.array([[0, 0], [255, 1]], np.uint8)
    b = np.array([[1, 0], [0, 1]], np.uint8)
    assert hamming(a, b).tolist() == [1, 8]


def test_similar_pairs_threshold_is_inclusive():
    v = np.array([[1, 0], [0.96, 0.28], [0, 1], [1, 0]], np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    i, j, s = similar_pairs(v, 0.96)
    assert set(zip(i.tolist(), j.tolist())) == {(0, 1), (0, 3), (1, 3)}
    r, c, s = similar_to(v, v[2:3], 0.99)
    assert c.tolist() == [2]


def test_empty_inputs():
    empty = np.zeros((0, 8), np.uint8)
    assert all(len(x) == 0 for x in pairs_within(empty, 4))
    with pytest.raises(ValueError, match="uint8"):
        pairs_within(np.zeros((3, 8), np.float32), 4)
