import json
import os

import pytest

from index.errors import RetrError
from retrieval.dedupe.actions import delete_duplicates, move_duplicates, read_manifest, undo
from retrieval.dedupe.options import DedupeOptions
from retrieval.dedupe.run import dedupe_paths
from tests.retrieval.dedupe.photos import digest, make_library


@pytest.fixture
def found(tmp_path):
    files = make_library(tmp_path / "lib")
    result, _ = dedupe_paths([tmp_path / "lib"], DedupeOptions(keep="first"), workers=1)
    assert result.n_duplicates == 4
    keeps = {g.keep.path: (digest(g.keep.path), os.stat(g.keep.path).st_mtime_ns) for g in result.groups}
    return tmp_path, files, result, keeps


def _untouched(keeps):
    for path, (sha, mtime) in keeps.items():
        assert digest(path) == sha and os.stat(path).st_mtime_ns == mtime


def test_move_keeps_relative_paths_and_undo_restores(found):
    tmp, files, result, keeps = found
    q = tmp / "quarantine"
    report = move_duplicates(result.groups, q, root=str(tmp / "lib"))
    assert len(report.done) == 4 and not report.skipped
    assert (q / "copies" / "phone" / "astronaut_small.jpg").exists()
    assert not files["astro_small"].exists()
    _untouched(keeps)
    header, records = read_manifest(report.manifest)
    assert header["action"] == "move"
    assert sum(r["op"] == "moved" for r in records) == 4
    back = undo(report.manifest)
    assert len(back.done) == 4
    assert files["astro_small"].exists() and not (q / "copies" / "phone" / "astronaut_small.jpg").exists()
    _untouched(keeps)
    assert undo(report.manifest).done == []  # a second undo finds nothing left to restore


def test_interrupted_move_leaves_a_manifest_matching_the_disk(found):
    tmp, files, result, keeps = found
    calls = []

    def flaky(src, dst):
        calls.append(src)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the third move
        os.replace(src, dst)

    q = tmp / "q"
    with pytest.raises(KeyboardInterrupt):
        move_duplicates(result.groups, q, manifest=tmp / "m.jsonl", mover=flaky)
    _, records = read_manifest(tmp / "m.jsonl")
    plans = [r for r in records if r["op"] == "plan"]
    moved = {r["src"] for r in records if r["op"] == "moved"}
    assert len(plans) == 4 and len(moved) == 2
    for rec in plans:  # the journal agrees with the disk, file by file
        assert os.path.exists(rec["dst"]) == (rec["src"] in moved)
        assert os.path.exists(rec["src"]) == (rec["src"] not in moved)
    _untouched(keeps)
    assert len(undo(tmp / "m.jsonl").done) == 2
    assert all(os.path.exists(r["src"]) for r in plans)


def test_undo_also_reverses_a_move_the_journal_missed(found):
    tmp, files, result, keeps = found
    report = move_duplicates(result.groups, tmp / "q")
    lines = open(report.manifest).read().splitlines()
    with open(report.manifest, "w") as fh:  # a crash right after a move, before its line was written
        fh.write("\n".join(line for line in lines if json.loads(line).get("op") != "moved") + "\n")
    assert len(undo(report.manifest).done) == 4


def test_move_refuses_to_overwrite(found):
    tmp, files, result, keeps = found
    q = tmp / "q"
    (q / "copies" / "phone").mkdir(parents=True)
    (q / "copies" / "phone" / "astronaut_small.jpg").write_bytes(b"x")
    with pytest.raises(RetrError, match="already exists"):
        move_duplicates(result.groups, q, root=str(tmp / "lib"))
    assert all(f.exists() for f in files.values())  # nothing moved


def test_delete_needs_yes_then_deletes_only_duplicates(found):
    tmp, files, result, keeps = found
    with pytest.raises(RetrError, match="--yes"):
        delete_duplicates(result.groups, yes=False)
    assert all(f.exists() for f in files.values())
    report = delete_duplicates(result.groups, yes=True)
    assert len(report.done) == 4
    assert sum(f.exists() for f in files.values()) == 4
    _untouched(keeps)


def test_catalog_rows_leave_with_the_move_and_come_back_with_undo(found):
    import numpy as np

    from index.catalog.database import Catalog
    from retrieval.dedupe.actions import CatalogLink
    from retrieval.dedupe.run import _find
    from retrieval.dedupe.collection import from_index
    from index.directory import IndexStore

    tmp, files, _, keeps = found
    cat = Catalog.for_index(tmp / "idx")
    rng = np.random.default_rng(0)
    vectors = {str(p): rng.standard_normal(4).astype(np.float32) for p in files.values()}
    cat.write_images([{"path": p, "sha256": digest(p), "bytes": os.path.getsize(p), "status": "ok", "vector": v}
                      for p, v in vectors.items()])
    with IndexStore.open(tmp / "idx") as store:
        result = _find(from_index(store, DedupeOptions(keep="first"), workers=1), DedupeOptions(keep="first"))
        assert result.n_duplicates == 4
        link = CatalogLink(store.catalog, 4, str(tmp / "idx"))
        report = move_duplicates(result.groups, tmp / "q", catalog=link)
        assert report.catalog_rows == 4
        rows = store.catalog.image_rows()
        moved = {src for src, _ in report.done}
        assert set(rows) == set(vectors) - moved and set(keeps) <= set(rows)
        back = undo(report.manifest, catalog=link)
        assert back.catalog_rows == 4
        rows = store.catalog.image_rows()
        assert set(rows) == set(vectors)
        ids = [rows[p].id for p in vectors]
        np.testing.assert_array_equal(store.catalog.vectors_for(ids, 4), np.stack(list(vectors.values())))
