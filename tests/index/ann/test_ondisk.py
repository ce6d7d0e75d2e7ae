"""On-disk IVF: trained once, filled in shards, merged into an .ivfdata and memory-mapped, it answers exactly
as the same trained index filled in memory."""
import os
import pickle

import faiss
import numpy as np
import pytest

from index.ann import ondisk
from index.ann.searcher import Searcher, lists_on_disk
from index.errors import RetrError
from tests.index.ann.vectors import clustered

DIM = 32


@pytest.fixture
def npy(tmp_path):
    """6,000 clustered vectors in three .npy files, and the source over them (ids 100 ...)."""
    x = clustered(np.random.default_rng(0), 6000, DIM)
    paths = []
    for i, part in enumerate(np.array_split(x, 3)):
        paths.append(str(tmp_path / f"part{i}.npy"))
        np.save(paths[-1], part)
    return x, ondisk.NpyVectors(tuple(paths), DIM, first_id=100)


def in_memory(trained_file, x, ids):
    index = faiss.read_index(str(trained_file))
    index.add_with_ids(x, ids)
    return index


def same_answers(a, b, queries, nprobe):
    for index in (a, b):
        faiss.extract_index_ivf(index).nprobe = nprobe
    da, ia = a.search(queries, 10)
    db, ib = b.search(queries, 10)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(da, db)


@pytest.mark.parametrize("factory", ["IVF32,Flat", "IVF16,PQ8x4"])
def test_shards_merged_on_disk_answer_as_the_index_filled_in_memory(tmp_path, npy, factory):
    x, source = npy
    work = tmp_path / "work"
    built = ondisk.build_ondisk(source, factory, work, tmp_path / "v.ivfdata",
                                shard_bytes=1000 * DIM * 4, map_shards=lambda fn, t: ondisk.process_map(fn, t, workers=2))
    assert lists_on_disk(built.index) and built.index.ntotal == 6000
    assert built.data["file"] == "v.ivfdata" and built.data["bytes"] == os.path.getsize(tmp_path / "v.ivfdata")
    assert not list(work.glob("shard-*"))  # merged, then removed
    reference = in_memory(work / ondisk.TRAINED_FILE, x, source.ids())
    queries = x[::97]
    for nprobe in (1, 4, 16):
        same_answers(built.index, reference, queries, nprobe)
    # opened again from its two files, as a searcher does
    reopened = ondisk.open_ondisk(built.index_file, tmp_path / "v.ivfdata")
    same_answers(reopened, reference, queries, 4)
    assert Searcher(reopened).gpu is None  # an on-disk index is searched where it lies


def test_tuning_on_a_sample_reaches_the_target(tmp_path, npy):
    x, source = npy
    built = ondisk.build_ondisk(source, "IVF32,Flat", tmp_path / "w", tmp_path / "v.ivfdata")
    assert built.search["nprobe"] < 32 and built.recall >= 0.96
    faiss.extract_index_ivf(built.index).nprobe = built.search["nprobe"]
    truth = ondisk.exact_neighbours(source, source.ids(), x[:200], 10)
    np.testing.assert_array_equal(truth[:, 0], source.ids()[:200])  # each vector is its own nearest
    _, got = built.index.search(x[:200], 10)
    recall = np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth)])
    assert recall >= 0.9


def test_a_custom_mapper_gets_picklable_tasks(tmp_path, npy):
    x, source = npy
    seen = []

    def elsewhere(fill, tasks):  # as a remote runner would: every task travels as bytes
        for task in tasks:
            task = pickle.loads(pickle.dumps(task))
            seen.append((task.shard, task.first, task.last))
            yield fill(task)

    built = ondisk.build_ondisk(source, "IVF32,Flat", tmp_path / "w", tmp_path / "v.ivfdata",
                                shard_bytes=2500 * DIM * 4, map_shards=elsewhere, tune=False)
    assert seen == [(0, 100, 2599), (1, 2600, 5099), (2, 5100, 6099)] and built.search == {}
    same_answers(built.index, in_memory(tmp_path / "w" / ondisk.TRAINED_FILE, x, source.ids()), x[::50], 8)


def test_the_stages_one_by_one_with_an_empty_shard(tmp_path, npy):
    x, source = npy
    ids, trained = source.ids(), tmp_path / "trained.faiss"
    ondisk.train(source, ids, "IVF32,Flat", trained)
    tasks = ondisk.plan_shards(ids, source, trained, tmp_path, shard_bytes=4000 * DIM * 4)
    tasks.append(ondisk.ShardTask(shard=2, trained=str(trained), source=source, first=10**9, last=10**9 + 5,
                                  output=str(tmp_path / "empty.faiss")))  # an id range with no vectors
    shards = [ondisk.fill_shard(t) for t in tasks]
    assert faiss.read_index(shards[-1]).ntotal == 0
    ondisk.merge_shards(str(trained), shards, str(tmp_path / "tmp.ivfdata"), str(tmp_path / "v.ivfdata"),
                        str(tmp_path / "merged.faiss"))
    assert not (tmp_path / "tmp.ivfdata").exists()
    index = ondisk.open_ondisk(tmp_path / "merged.faiss", tmp_path / "v.ivfdata")
    same_answers(index, in_memory(trained, x, ids), x[::50], 8)


def test_a_mapper_that_loses_shards_is_refused(tmp_path, npy):
    _, source = npy
    with pytest.raises(RetrError, match="returned 1 shards for 3 tasks"):
        ondisk.build_ondisk(source, "IVF32,Flat", tmp_path / "w", tmp_path / "v.ivfdata",
                            shard_bytes=2000 * DIM * 4, map_shards=lambda fn, tasks: [fn(tasks[0])])
    assert not (tmp_path / "v.ivfdata").exists()


def test_fewer_vectors_than_lists_is_a_one_line_error(tmp_path):
    path = tmp_path / "few.npy"
    np.save(path, clustered(np.random.default_rng(1), 30, DIM))
    with pytest.raises(RetrError, match="needs at least 64 vectors to train, the collection has 30"):
        ondisk.build_ondisk(ondisk.NpyVectors((str(path),), DIM), "IVF64,Flat", tmp_path / "w", tmp_path / "v.ivfdata")


def test_a_truncated_or_missing_ivfdata_is_refused_not_mapped(tmp_path, npy):
    _, source = npy
    built = ondisk.build_ondisk(source, "IVF32,Flat", tmp_path / "w", tmp_path / "v.ivfdata", tune=False)
    data = tmp_path / "v.ivfdata"
    data.write_bytes(data.read_bytes()[:-4096])  # mapping it whole would crash the process on first touch
    with pytest.raises(RetrError, match="truncated"):
        ondisk.open_ondisk(built.index_file, data)
    data.unlink()
    with pytest.raises(RetrError, match="cannot read"):
        ondisk.open_ondisk(built.index_file, data)


def test_data_problem_checks_size_always_and_content_when_the_file_changed(tmp_path, npy):
    _, source = npy
    built = ondisk.build_ondisk(source, "IVF32,Flat", tmp_path / "w", tmp_path / "v.ivfdata", tune=False)
    record, data = built.data, tmp_path / "v.ivfdata"
    assert ondisk.data_problem(tmp_path, record) is None
    os.utime(data, ns=(record["mtime_ns"] + 10**9, record["mtime_ns"] + 10**9))  # touched, same bytes
    assert ondisk.data_problem(tmp_path, record) is None
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))  # same size, one byte flipped
    assert "does not match its checksum" in ondisk.data_problem(tmp_path, record)
    data.write_bytes(bytes(blob[:-1]))
    assert "does not match its size" in ondisk.data_problem(tmp_path, record)


def test_the_threshold_and_the_kinds_built_on_disk(monkeypatch):
    monkeypatch.setenv(ondisk.MIN_BYTES_ENV, "1000")
    assert ondisk.wanted("IVF64,Flat", 1000, DIM) and ondisk.wanted("IVF64,PQ8", 1000, DIM)
    assert ondisk.wanted("OPQ8,IVF64,PQ8", 1000, DIM)
    assert not ondisk.wanted("IVF64,Flat", 5, DIM)  # 640 bytes: below the threshold
    assert not ondisk.wanted("HNSW32", 1000, DIM) and not ondisk.wanted("Flat", 1000, DIM)
    assert not ondisk.wanted("IVF64,PQ16x4fs", 1000, DIM)  # fast-scan lists are blocks: built in memory
    monkeypatch.setenv(ondisk.MIN_BYTES_ENV, "lots")
    with pytest.raises(RetrError, match="RETR_ONDISK_MIN_BYTES='lots' is not a number"):
        ondisk.min_bytes()
