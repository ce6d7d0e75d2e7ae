"""Real photos: edited copies fall within the default radius, different photos do not."""
import numpy as np
import pytest

from retrieval.dedupe.options import DedupeOptions
from retrieval.dedupe.hashers import get_hasher
from retrieval.dedupe.parallel_hashing import HashJob, hash_file
from retrieval.dedupe.run import dedupe_paths
from tests.retrieval.dedupe.photos import make_library


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return make_library(tmp_path_factory.mktemp("lib"))


def _dist(a, b) -> int:
    ha, hb = hash_file(str(a), HashJob()), hash_file(str(b), HashJob())
    return int(np.bitwise_count(np.frombuffer(ha.bits, np.uint8) ^ np.frombuffer(hb.bits, np.uint8)).sum())


@pytest.mark.parametrize("copy", ["astro_small", "astro_q40", "astro_crop"])
def test_edited_copy_within_default_threshold(library, copy):
    assert _dist(library["astro"], library[copy]) <= get_hasher("phash").threshold()


@pytest.mark.parametrize("other", ["coffee", "chelsea", "rocket"])
def test_different_photos_are_not(library, other):
    assert _dist(library["astro"], library[other]) > get_hasher("phash").threshold()


def test_groups_reasons_and_keep(library):
    result, action = dedupe_paths([library["astro"].parent.parent], DedupeOptions(keep="highest-resolution"),
                                  workers=1)
    assert action is None
    assert result.n_images == 8
    by_keep = {g.keep.path: {d.item.path: d for d in g.duplicates} for g in result.groups}
    assert set(by_keep) == {str(library["astro"]), str(library["coffee"])} or \
        set(by_keep) == {str(library["astro"]), str(library["coffee_copy"])}
    astro = by_keep[str(library["astro"])]
    assert set(astro) == {str(library[k]) for k in ("astro_small", "astro_q40", "astro_crop")}
    assert all(d.reason == "verified" and d.inliers >= 10 and 0 <= d.distance <= 22 for d in astro.values())
    coffee = next(v for k, v in by_keep.items() if "coffee" in k)
    (dup,) = coffee.values()
    assert dup.reason == "exact" and dup.distance == 0
    assert result.n_duplicates == 4
    assert result.to_json()["groups"][0].keys() == {"keep", "kind", "duplicates"}
