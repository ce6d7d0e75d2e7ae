"""An index directory whose vectors.faiss is built on disk (RETR_ONDISK_MIN_BYTES forced low): rebuilt from the
catalog in shards, recorded with its .ivfdata, served memory-mapped; crashes and damage never serve a half
or wrong index."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from index.ann import ondisk
from index.ann.searcher import lists_on_disk
from index.atomic import file_sha256
from index.catalog.schema import STATUS_OK
from index.directory import IndexStore
from index.errors import RetrError
from index.manifest import Manifest, ids_digest, read_manifest, write_manifest
from tests.index.ann.vectors import clustered

DIM, N = 16, 3000
MODEL = {"spec": "m", "weights": "w", "dim": DIM}


def make_store(folder, n=N, seed=0) -> IndexStore:
    store = IndexStore.open(folder, create=True)
    write_manifest(store.dir, Manifest(model=MODEL, dim=DIM, factory="Flat", index_type="ivf", vectors=0,
                                       ids_digest=ids_digest([])))
    store.manifest = read_manifest(store.dir)
    x = clustered(np.random.default_rng(seed), n, DIM)
    store.catalog.write_images([{"path": f"/p/{i}.jpg", "status": STATUS_OK, "vector": v} for i, v in enumerate(x)])
    return store


@pytest.fixture
def on_disk(monkeypatch):
    """Every IVF index is built on disk, in three shards filled by two processes."""
    monkeypatch.setenv(ondisk.MIN_BYTES_ENV, "1")
    monkeypatch.setenv(ondisk.SHARD_BYTES_ENV, str(1000 * DIM * 4))
    monkeypatch.setenv(ondisk.WORKERS_ENV, "2")


@pytest.fixture
def built(tmp_path, on_disk):
    store = make_store(tmp_path / "ix")
    store.rebuild(index_type="ivf")
    yield store
    store.close()


def queries(store, n=50):
    return store.vectors_for(store.catalog.vector_ids()[::N // n])


def answers(store):
    results = store.search(queries(store), 10)
    return results.ids.copy(), results.scores.copy()


def data_files(folder):
    return sorted(p.name for p in folder.glob("vectors-*.ivfdata"))


def test_a_rebuild_above_the_threshold_is_on_disk_and_answers_as_the_one_in_memory(tmp_path, on_disk, monkeypatch):
    store = make_store(tmp_path / "ix")
    store.rebuild(index_type="ivf")
    m = store.manifest
    assert m.ivfdata is not None and data_files(store.dir) == [m.ivfdata["file"]]
    assert json.loads((store.dir / "manifest.json").read_text())["format_version"] == 2  # older retr refuse it
    assert m.vectors == N and m.factory.startswith("IVF") and m.search["nprobe"] >= 1
    assert store.consistent() and lists_on_disk(store.searcher().cpu)
    assert (store.dir / m.ivfdata["file"]).stat().st_size > 10 * (store.dir / "vectors.faiss").stat().st_size
    assert not list(store.dir.glob(".vectors-build-*"))
    on_disk_answers = answers(store)
    store.close()

    monkeypatch.delenv(ondisk.MIN_BYTES_ENV)  # the default threshold: this index is built in memory
    memory = make_store(tmp_path / "mem")
    memory.rebuild(index_type="ivf")
    assert memory.manifest.ivfdata is None and memory.manifest.search == m.search
    # the same sample trains the same quantizer: the same lists, the same answers
    np.testing.assert_array_equal(answers(memory)[0], on_disk_answers[0])
    np.testing.assert_allclose(answers(memory)[1], on_disk_answers[1], rtol=1e-6)
    memory.close()


def test_a_rebuild_fills_its_shards_through_the_mapper_it_is_given(built):
    from index.catalog.vectors import CatalogVectors
    seen = []

    def mapper(fill, tasks):  # e.g. Ray tasks on other nodes: each gets a task, returns its shard file
        for task in tasks:
            assert isinstance(task.source, CatalogVectors) and task.source.table == "images"
            seen.append(task.shard)
            yield fill(task)

    before = answers(built)
    built.rebuild(map_shards=mapper)
    assert seen == [0, 1, 2] and built.consistent()
    np.testing.assert_array_equal(answers(built)[0], before[0])


def test_a_rebuild_reports_each_stage_in_order_as_it_goes(built):
    calls = []
    built.rebuild(progress=lambda stage, done, total: calls.append((stage, done, total)))
    train, fill, merge, tune = ondisk.STAGES
    # three shards (the fixture's shard size): the fill advances once a shard, every stage starts at 0 and ends full
    assert calls == [(train, 0, 1), (train, 1, 1), (fill, 0, 3), (fill, 1, 3), (fill, 2, 3), (fill, 3, 3),
                     (merge, 0, 1), (merge, 1, 1), (tune, 0, 1), (tune, 1, 1)]
    assert built.consistent()


def test_a_rebuild_in_memory_reports_no_on_disk_stages(built):
    calls = []
    built.rebuild(index_type="flat", progress=lambda *call: calls.append(call))
    assert calls == [] and built.consistent()


def test_a_reader_serves_it_memory_mapped_and_info_reports_it(built):
    from retrieval.collection.info import index_info
    expected = answers(built)
    with IndexStore.open(built.dir) as reader:
        assert lists_on_disk(reader.searcher().cpu)
        np.testing.assert_array_equal(answers(reader)[0], expected[0])
        assert reader.repairs == []
    info = index_info(built.dir)
    assert info["ivfdata"] == {"file": built.manifest.ivfdata["file"], "bytes": built.manifest.ivfdata["bytes"]}
    assert info["vectors"] == N and info["bytes"] > info["ivfdata"]["bytes"]


def test_an_interrupted_merge_leaves_the_previous_index_served(built, monkeypatch):
    before, manifest, checksum = answers(built), read_manifest(built.dir), file_sha256(built.dir / "vectors.faiss")
    old_data = data_files(built.dir)
    built.catalog.write_images([{"path": "/p/new.jpg", "status": STATUS_OK, "vector": queries(built)[0]}])

    def broken_merge(trained, shards, data_tmp, data_path, index_out):
        with open(data_tmp, "wb") as fh:
            fh.write(b"half a merge")
        raise RetrError("the merge stopped")

    with monkeypatch.context() as patch, pytest.raises(RetrError, match="the merge stopped"):
        patch.setattr(ondisk, "_merge_in_child", broken_merge)
        built.rebuild()
    assert read_manifest(built.dir) == manifest and file_sha256(built.dir / "vectors.faiss") == checksum
    assert data_files(built.dir) == old_data and not list(built.dir.glob(".vectors-build-*"))
    with IndexStore.open(built.dir) as reader:  # the catalog gained a row: the old file is out of step, so a
        assert "out of step" in reader.vectors_problem()  # reader says so rather than serve it as current
    built.catalog.delete_images([max(built.catalog.vector_ids())])
    with IndexStore.open(built.dir) as reader:
        assert reader.consistent()
        np.testing.assert_array_equal(answers(reader)[0], before[0])

    built.catalog.write_images([{"path": "/p/new.jpg", "status": STATUS_OK, "vector": queries(built)[0]}])
    built.rebuild()  # the next rebuild succeeds and keeps one .ivfdata
    assert built.consistent() and built.manifest.vectors == N + 1 and len(data_files(built.dir)) == 1
    assert data_files(built.dir) != old_data


def test_a_crash_before_the_manifest_is_written_is_caught_by_the_checksum(built, monkeypatch):
    import index.directory
    built.catalog.write_images([{"path": "/p/new.jpg", "status": STATUS_OK, "vector": queries(built)[0]}])

    def crash(*args, **kwargs):
        raise OSError("power cut")

    with monkeypatch.context() as patch, pytest.raises(OSError):
        patch.setattr(index.directory, "write_manifest", crash)
        built.rebuild()  # vectors.faiss was replaced; the manifest still records the previous one
    with IndexStore.open(built.dir) as reader:
        assert "does not match its checksum" in reader.vectors_problem()
        assert not lists_on_disk(reader.searcher().cpu)  # the catalog searched in memory, the file not served
        assert "searching the catalog's" in reader.repairs[0]
    built.searcher()  # the writer
    assert "rebuilt it from the catalog's 3001 vectors" in built.repairs[0]
    assert built.consistent() and len(data_files(built.dir)) == 1


KILLED_MERGE = textwrap.dedent("""
    import os, sys
    from index.ann import ondisk
    from index.catalog.schema import STATUS_OK
    from index.directory import IndexStore
    real = ondisk._merge_in_child
    def merge_then_die(*args):
        real(*args)  # the new .ivfdata is complete, the index file not yet in place
        os._exit(9)
    ondisk._merge_in_child = merge_then_die
    store = IndexStore.open(sys.argv[1], mode="write")
    store.catalog.write_images([{"path": "/p/late.jpg", "status": STATUS_OK,
                                 "vector": store.vectors_for(store.catalog.vector_ids()[:1])[0]}])
    store.rebuild()
""")


def test_a_build_killed_after_the_merge_leaves_the_previous_index_and_the_next_one_tidies(built):
    before = answers(built)
    old_data = data_files(built.dir)
    built.close()
    done = subprocess.run([sys.executable, "-c", KILLED_MERGE, str(built.dir)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 9, done.stderr
    assert len(data_files(built.dir)) == 2 and list(built.dir.glob(".vectors-build-*"))  # what it left
    with IndexStore.open(built.dir) as reader:
        assert "out of step" in reader.vectors_problem()  # the late row is in the catalog, not in the file
    with IndexStore.open(built.dir, mode="write") as writer:
        writer.catalog.delete_images([writer.catalog.image_rows(["/p/late.jpg"])["/p/late.jpg"].id])
        assert writer.consistent()  # the previous index, whole
        np.testing.assert_array_equal(answers(writer)[0], before[0])
        writer.rebuild()
        assert data_files(writer.dir) != old_data and len(data_files(writer.dir)) == 1
        assert not list(writer.dir.glob(".vectors-build-*"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_ivfdata_is_reported_and_rebuilt_from_the_catalog(built, damage):
    data = built.dir / built.manifest.ivfdata["file"]
    expected = answers(built)
    if damage == "flip":
        blob = bytearray(data.read_bytes())
        blob[len(blob) // 3] ^= 0x55
        data.write_bytes(bytes(blob))
    elif damage == "truncate":
        data.write_bytes(data.read_bytes()[:-100])
    else:
        data.unlink()
    reason = {"flip": "does not match its checksum", "truncate": "does not match its size", "delete": "is missing"}
    with IndexStore.open(built.dir) as reader:
        assert reason[damage] in reader.vectors_problem()
        assert not lists_on_disk(reader.searcher().cpu)  # never served: the catalog's vectors, exactly
        assert reason[damage] in reader.repairs[0]
    built.images._searcher = None  # the writer opens it again
    assert lists_on_disk(built.searcher().cpu)
    assert f"rebuilt it from the catalog's {N} vectors" in built.repairs[0]
    assert built.consistent() and len(data_files(built.dir)) == 1
    np.testing.assert_array_equal(answers(built)[0], expected[0])


def test_a_later_index_in_memory_removes_the_ivfdata(built):
    data = built.dir / built.manifest.ivfdata["file"]
    built.rebuild(index_type="flat")
    assert built.manifest.ivfdata is None and not data.exists() and built.consistent()
    assert json.loads((built.dir / "manifest.json").read_text())["format_version"] == 1


def test_too_few_vectors_for_the_lists_is_a_one_line_error_and_changes_nothing(built):
    manifest = read_manifest(built.dir)
    with pytest.raises(RetrError, match=f"needs at least 4096 vectors to train, the collection has {N}"):
        built.rebuild(index_type="IVF4096,Flat")
    assert read_manifest(built.dir) == manifest and built.consistent()
    assert len(data_files(built.dir)) == 1 and not list(built.dir.glob(".vectors-build-*"))
