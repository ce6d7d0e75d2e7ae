"""Three kinds apart: exact copies, edited copies, and other shots of one scene (a real stereo pair), through
the verifier, a folder run, the actions, --check, and the features the catalog stores for the next run."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from index.catalog.database import Catalog
from index.catalog.features import feature_counts
from retrieval.dedupe.features import RECIPE, Features, features_of_bytes
from retrieval.dedupe.options import DedupeOptions
from retrieval.dedupe.reasons import Kind, Reason
from retrieval.dedupe.run import Action, check_image, dedupe_index, dedupe_paths
from retrieval.dedupe.verify import verify
from tests.retrieval.dedupe.libraries import catalog_index
from tests.retrieval.dedupe.photos import digest


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def stereo() -> tuple[Image.Image, Image.Image]:
    """scikit-image's stereo pair (left and right views of one scene: parallax), at 900 pixels."""
    from skimage import data
    left, right = (Image.fromarray(x).convert("RGB") for x in data.stereo_motorcycle()[:2])
    size = (900, round(900 * left.height / left.width))
    return left.resize(size, Image.LANCZOS), right.resize(size, Image.LANCZOS)


def _edited(img: Image.Image) -> Image.Image:
    w, h = img.size
    img = img.crop((w // 40, h // 40, w - w // 30, h - h // 30)).rotate(2, resample=Image.BICUBIC)
    img = img.resize((img.width * 2 // 3, img.height * 2 // 3), Image.LANCZOS)
    return ImageEnhance.Contrast(img).enhance(1.15)


def test_an_edited_copy_is_a_copy_and_the_other_view_another_shot(stereo):
    left, right = stereo
    a = features_of_bytes(_jpeg(left), "left")
    copy = verify(a, features_of_bytes(_jpeg(_edited(left), 50), "copy"))
    other = verify(a, features_of_bytes(_jpeg(right), "right"))
    assert copy.reason == Reason.VERIFIED and copy.reason.kind == Kind.COPY and copy.disagree <= 0.05, copy
    # the keypoints agree on one transform (most of the scene is far away) but the aligned views do not
    assert other.reason == Reason.OTHER_SHOT and other.reason.kind == Kind.SIMILAR and other.inliers >= 10, other
    assert not other.verified and other.disagree > copy.disagree


def test_reasons_say_their_kind_and_only_links_have_one():
    assert {r.kind for r in (Reason.EXACT, Reason.VERIFIED, Reason.OTHER_SHOT)} == set(Kind)
    assert Reason.ALIGNED.kind == Reason.HASH.kind == Reason.EMBEDDING.kind == Kind.COPY
    assert not any(r.links for r in (Reason.REJECTED, Reason.UNTEXTURED, Reason.ERROR))
    assert Reason("other shot") is Reason.OTHER_SHOT and str(Reason.OTHER_SHOT) == "other shot"


def test_features_survive_the_stored_form(stereo):
    f = features_of_bytes(_jpeg(stereo[0]), "left")
    back = Features.from_bytes(f.to_bytes(), "left", f.sha256, f.bytes, f.bits)
    assert (back.width, back.height, back.shape, back.camera) == (f.width, f.height, f.shape, f.camera)
    for name in ("points", "descriptors", "thumb", "small"):
        assert np.array_equal(getattr(back, name), getattr(f, name)), name
    assert back.std == f.std and back.entropy == f.entropy and back.low_info == f.low_info
    assert verify(f, back).reason == Reason.VERIFIED


@pytest.fixture
def scene(tmp_path, stereo):
    """left.jpg (the original), left_copy.jpg (edited), left_twin.jpg (the same bytes), right.jpg (other view)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    left, right = stereo
    (lib / "left.jpg").write_bytes(_jpeg(left, 92))
    (lib / "left_copy.jpg").write_bytes(_jpeg(_edited(left), 60))
    shutil.copyfile(lib / "left.jpg", lib / "left_twin.jpg")
    (lib / "right.jpg").write_bytes(_jpeg(right, 88))
    return lib


def test_a_folder_run_reports_copies_and_similar_groups_apart(scene):
    result, _ = dedupe_paths([scene], DedupeOptions(keep="first"), workers=2)
    (group,) = result.groups
    assert group.keep.path == str(scene / "left.jpg") and group.kind == Kind.COPY
    kinds = {d.item.path: (d.kind, d.reason) for d in group.duplicates}
    assert kinds == {str(scene / "left_copy.jpg"): (Kind.COPY, Reason.VERIFIED),
                     str(scene / "left_twin.jpg"): (Kind.EXACT, Reason.EXACT)}
    (similar,) = result.similar
    assert similar.keep.path == str(scene / "left.jpg") and similar.kind == Kind.SIMILAR
    assert [(d.item.path, d.reason) for d in similar.duplicates] == [(str(scene / "right.jpg"), Reason.OTHER_SHOT)]
    data = result.to_json()
    assert data["n_duplicates"] == 2 and data["n_similar"] == 1
    assert data["similar"][0]["kind"] == "similar" and data["similar"][0]["duplicates"][0]["reason"] == "other shot"
    assert {d["kind"] for d in data["groups"][0]["duplicates"]} == {"copy", "exact"}


@pytest.mark.parametrize("include", [False, True])
def test_only_copies_are_moved_unless_similar_ones_are_asked_for(scene, tmp_path, include):
    q = tmp_path / "q"
    _, done = dedupe_paths([scene], DedupeOptions(keep="first"),
                           Action(move_to=str(q), include_similar=include), workers=2)
    moved = {p.name for p in q.rglob("*.jpg")}
    assert moved == ({"left_copy.jpg", "left_twin.jpg", "right.jpg"} if include else {"left_copy.jpg", "left_twin.jpg"})
    assert (scene / "left.jpg").exists() and (scene / "right.jpg").exists() != include
    assert len(done.done) == len(moved) and not done.skipped


def test_the_catalog_keeps_features_for_the_next_run_and_check_says_the_kind(scene, tmp_path, monkeypatch):
    files = {p.stem: p for p in scene.glob("*.jpg")}
    idx = catalog_index(tmp_path, files)  # every file but one named "astro_q40": here, all four
    import retrieval.dedupe.features as F
    import retrieval.dedupe.verify as V
    made, matched = [], []
    real, real_pairs = F.features_of, V.verify_pairs
    monkeypatch.setattr(F, "features_of", lambda p, job=F.FeatureJob(): made.append(p) or real(p, job))
    monkeypatch.setattr(V, "verify_pairs", lambda pairs, feats, **kw: matched.append(
        sorted(tuple(sorted((feats[a].path, feats[b].path))) for a, b in pairs)) or real_pairs(pairs, feats, **kw))
    first, _ = dedupe_index(idx, DedupeOptions(keep="first"), workers=1)
    assert len(made) == 4 and feature_counts(Catalog.for_index(idx)) == {RECIPE: 4}
    assert sum(map(len, matched)) == first.verified_pairs >= 2
    matched.clear()
    second, _ = dedupe_index(idx, DedupeOptions(keep="first"), workers=1)
    assert len(made) == 4 and not matched  # nothing decoded or matched again: the stored result was reused
    assert second.to_json() == first.to_json() and first.n_similar == 1
    assert [d.item.id for d in second.groups[0].duplicates] == [d.item.id for d in first.groups[0].duplicates]

    extra = tmp_path / "extra.jpg"
    shutil.copyfile(scene / "left_copy.jpg", extra)
    cat = Catalog.for_index(idx)
    cat.write_images([{"path": str(extra), "sha256": digest(extra), "bytes": extra.stat().st_size, "width": 1,
                       "height": 1, "mtime": 0.0, "status": "ok"}])
    cat.close()
    third, _ = dedupe_index(idx, DedupeOptions(keep="first"), workers=1)
    assert made[4:] == [str(extra)]  # only the new image
    assert third.n_duplicates == 3
    # an exact twin of a stored image: its pairs' verdicts are known by content, nothing is matched again
    assert all(str(extra) in pair for batch in matched for pair in batch) or not any(matched)

    right = check_image(scene / "right.jpg", idx, DedupeOptions())
    assert [(m.path, m.kind) for m in right if m.path != str(scene / "right.jpg")] and \
        {m.kind for m in right} == {Kind.SIMILAR}
    copy = check_image(scene / "left_copy.jpg", idx, DedupeOptions())
    kinds = {m.path: m.kind for m in copy}
    assert kinds[str(extra)] == Kind.EXACT and kinds[str(scene / "left.jpg")] == Kind.COPY
    assert kinds.get(str(scene / "right.jpg")) in (None, Kind.SIMILAR)


def test_a_catalog_made_before_stored_features_gets_the_table_and_nothing_else(tmp_path, scene):
    files = {p.stem: p for p in scene.glob("*.jpg")}
    idx = catalog_index(tmp_path, files)
    cat = Catalog.for_index(idx)
    with cat.engine.begin() as conn:  # as a catalog written before the table existed
        conn.exec_driver_sql("DROP TABLE IF EXISTS image_features")
    rows = cat.image_rows()
    cat.close()
    result, _ = dedupe_index(idx, DedupeOptions(), workers=1)
    assert result.n_duplicates == 2
    cat = Catalog.for_index(idx, mode="read")
    assert feature_counts(cat) == {RECIPE: 4} and cat.image_rows() == rows


def test_features_and_verification_go_through_the_mapper_given(scene, tmp_path):
    """A caller's mapper (shaped like retrieval.workers.ordered_map, e.g. one backed by Ray) runs both stages:
    top-level functions, chunked tasks, the shared value sent once per call, results in order; the result is
    the default's."""
    import pickle

    from retrieval.workers import ordered_map
    calls = []

    def mapper(fn, tasks, *, shared=None, workers=0):
        tasks = list(tasks)
        pickle.dumps((fn, shared, tasks))  # what a remote mapper would ship
        calls.append((fn.__name__, len(tasks), sum(len(t[0]) for t in tasks)))
        return ordered_map(fn, tasks, shared=shared, workers=0)
    default, _ = dedupe_paths([scene], DedupeOptions(keep="first"), workers=2)
    mapped, _ = dedupe_paths([scene], DedupeOptions(keep="first"), workers=2, mapper=mapper)
    assert mapped.to_json() == default.to_json()
    names = [c[0] for c in calls]
    assert names[0] == "_features_chunk" and calls[0][2] == 4 and "_verify_chunk" in names
    assert sum(c[2] for c in calls if c[0] == "_verify_chunk") == mapped.verified_pairs
    calls.clear()
    idx = catalog_index(tmp_path, {p.stem: p for p in scene.glob("*.jpg")})
    first, _ = dedupe_index(idx, DedupeOptions(keep="first"), workers=2, mapper=mapper)
    assert [c[0] for c in calls][0] == "_features_chunk" and "_verify_chunk" in [c[0] for c in calls]
    assert {d.item.path for g in first.groups for d in g.duplicates} == \
        {d.item.path for g in default.groups for d in g.duplicates}
