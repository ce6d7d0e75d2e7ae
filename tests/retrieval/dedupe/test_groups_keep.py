import numpy as np
import pytest

from index.errors import RetrError
from retrieval.dedupe.candidates import exact_pairs
from retrieval.dedupe.finder import Item, find_duplicates
from retrieval.dedupe.options import DedupeOptions
from retrieval.dedupe.groups import UnionFind, group_pairs
from retrieval.dedupe.keep import Candidate, choose_keep


def test_union_find_joins_transitively():
    uf = UnionFind(6)
    uf.union_pairs(np.array([0, 1, 4]), np.array([1, 2, 5]))
    assert uf.groups() == [[0, 1, 2], [4, 5]]
    assert uf.find(2) == uf.find(0) != uf.find(3)


def test_group_pairs_merges_layers():
    groups = group_pairs((np.array([10]), np.array([3])), (np.array([3, 7]), np.array([4, 8])))
    assert groups == [[3, 4, 10], [7, 8]]
    assert group_pairs() == []


def test_exact_pairs_ignore_missing_digests():
    i, j = exact_pairs(["a", None, "b", "a", None, "a"])
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 3), (3, 5)]


@pytest.mark.parametrize("policy,expected", [("largest", "b"), ("highest-resolution", "c"), ("oldest", "d"),
                                             ("first", "a")])
def test_keep_policies(policy, expected):
    cands = [Candidate("a", 10, 100, 100, 5.0), Candidate("b", 99, 100, 100, 4.0),
             Candidate("c", 50, 400, 300, 3.0), Candidate("d", 20, 10, 10, 1.0)]
    assert cands[choose_keep(cands, policy)].path == expected


def test_unknown_policy_lists_known():
    with pytest.raises(RetrError, match="highest-resolution"):
        choose_keep([Candidate("a")], "newest")


def test_groups_never_chain_and_reasons_are_relative_to_the_kept_image():
    items = [Item(k, p, s, b) for k, (p, s, b) in enumerate(
        [("keep.png", "x", 100), ("near.png", "y", 50), ("far.png", "z", 40), ("copy.png", "x", 100)])]
    codes = np.zeros((4, 8), np.uint8)
    codes[1, 0] = 0b111  # 3 bits from keep
    codes[2, 0] = 0b111
    codes[2, 1] = 0xFF  # 11 bits from keep, 8 from near: only a chain through near
    result = find_duplicates(items, codes, DedupeOptions(threshold=8, keep="first", verify=False))
    (group,) = result.groups  # union-find would have chained far.png in through near.png
    assert group.keep.path == "copy.png"  # "first" in path order
    got = {d.item.path: (d.reason, d.distance) for d in group.duplicates}
    assert got == {"keep.png": ("exact", 0), "near.png": ("hash", 3)}


def test_a_chain_of_links_never_merges_two_groups():
    """a ~ b ~ c ~ d, each link within the radius, a and d 3 links apart: union-find makes one group of
    four; star groups keep a with b, and c with d (c is not within reach of a)."""
    items = [Item(k, f"{k}.png", f"s{k}", 100 - k) for k in range(4)]
    codes = np.zeros((4, 8), np.uint8)
    codes[1, 0], codes[2, 0], codes[3, 0] = 0x0F, 0xFF, 0xFF
    codes[3, 1] = 0x0F
    result = find_duplicates(items, codes, DedupeOptions(threshold=4, keep="first", verify=False))
    got = sorted((g.keep.path, [d.item.path for d in g.duplicates]) for g in result.groups)
    assert got == [("0.png", ["1.png"]), ("2.png", ["3.png"])]


def test_threshold_outside_hash_width_is_refused():
    with pytest.raises(RetrError, match="outside"):
        DedupeOptions(threshold=65).validated()


def test_embedding_layer_joins_what_hashes_miss():
    items = [Item(k, f"{k}.png", f"s{k}", 100 - k) for k in range(4)]
    codes = np.array([[0] * 8, [255] * 8, [0, 255] * 4, [15] * 8], np.uint8)  # far apart in Hamming space
    vecs = np.array([[1, 0, 0], [0.99, 0.141, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    off = find_duplicates(items, codes, DedupeOptions(threshold=4, verify=False), vecs)
    assert off.groups == []  # embeddings are only used when asked for
    on = find_duplicates(items, codes, DedupeOptions(threshold=4, embeddings=True, similarity=0.95, verify=False),
                         vecs)
    (group,) = on.groups
    (dup,) = group.duplicates
    assert (group.keep.path, dup.item.path, dup.reason) == ("0.png", "1.png", "embedding")
    assert dup.distance == pytest.approx(1 - float(vecs[0] @ vecs[1]), abs=1e-4)
